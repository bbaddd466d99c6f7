"""Official LTX-2 / LTX-2.3 single-file checkpoint → orbax directory (same as `unityshots convert`)."""

import sys

from unityshots_jax.cli import main

if __name__ == "__main__":
    sys.exit(main(["convert", *sys.argv[1:]]))
