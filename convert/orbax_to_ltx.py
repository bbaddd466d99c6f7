"""Orbax directory → official LTX single-file checkpoint, byte for byte (same as `unityshots export`)."""

import sys

from unityshots_jax.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
