"""Peak host RAM of `unityshots convert` on synthetic files of the REAL LTX-2.3 22B layout with fewer layers.

Every tensor of the official single file (transformer, text connectors + projection for Gemma-3 12B, video VAE,
audio VAE, vocoder + BWE) with its real shape and bf16 dtype, values constant, written streaming (one tensor at a
time). For each layer count, `unityshots convert` runs in a subprocess and its peak RSS is read from
`resource.getrusage(RUSAGE_CHILDREN).ru_maxrss` (a fresh measuring process per size, so the maxima do not mix).
Files and outputs are deleted afterwards.

    nice -n 10 python experiments/convert_memory.py --layers 4 11 --dir /tmp/convert_memory
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys

import ml_dtypes
import numpy as np


def real_layout(num_layers: int) -> tuple[dict, dict[str, tuple[int, ...]]]:
    """(full metadata config, {file key: shape}) of the 22B file with `num_layers` transformer blocks."""
    from flax import nnx

    from unityshots_jax.checkpoint.components import expected_component_tensors
    from unityshots_jax.checkpoint.ltx_convert import transformer_file_tensors
    from unityshots_jax.ltx.config import LTXConfig
    from unityshots_jax.reference.tiny_audio import ltx23_audio_config
    from unityshots_jax.reference.tiny_configs import LTX23_TRANSFORMER_CONFIG
    from unityshots_jax.text.embeddings import TextEmbeddings, _file_key, projection_configs
    from unityshots_jax.vae.video.config import LTX23_VAE

    transformer = {**LTX23_TRANSFORMER_CONFIG, "num_layers": num_layers}
    config = {"transformer": transformer, "vae": LTX23_VAE, **ltx23_audio_config()}
    shapes = dict(transformer_file_tensors(LTXConfig.from_checkpoint_config(transformer, "audio_video")))
    video, audio = projection_configs(transformer, "22B")
    with nnx.use_eager_sharding(False):
        text = nnx.eval_shape(lambda: TextEmbeddings(3840, 49, video, audio, nnx.Rngs(0)))  # Gemma-3 12B
    for path, leaf in nnx.to_flat_state(nnx.state(text, nnx.Param)):
        key, transpose = _file_key(tuple(str(p) for p in path))
        shape = tuple(leaf.get_value().shape)
        one = shape[1:] if "{i}" in key else shape
        for i in range(shape[0]) if "{i}" in key else [None]:
            shapes[key.format(i=i)] = one[::-1] if transpose else one
    for table in expected_component_tensors(config, "22B").values():
        shapes.update({k: v for k, v in table.items() if v is not None})
    return config, shapes


def write_file(path: str, num_layers: int) -> int:
    """Write the synthetic file (bf16 constants, streamed); returns its size in bytes."""
    from unityshots_jax.checkpoint.safetensors_io import LazyTensor, write_safetensors

    config, shapes = real_layout(num_layers)
    bf16 = np.dtype(ml_dtypes.bfloat16)
    tensors = {k: LazyTensor(s, bf16, lambda s=s: np.full(s, 0.01, bf16)) for k, s in shapes.items()}
    write_safetensors(path, tensors, {"config": json.dumps(config), "model_version": "2.3.0"}, list(shapes))
    return os.path.getsize(path)


def _status_kib(pid: int) -> dict[str, int]:
    try:
        with open(f"/proc/{pid}/status") as f:
            return {ln.split(":")[0]: int(ln.split()[1]) for ln in f if ln.startswith(("VmRSS", "RssAnon", "RssFile"))}
    except (OSError, ValueError):
        return {}


def measure(src: str, dst: str) -> tuple[int, int, int, float]:
    """(peak RSS, sampled peak RssAnon, sampled peak RssFile) in bytes and the wall time in seconds of `unityshots convert src dst` run in a
    subprocess (call in a fresh process: the RSS peak is `getrusage(RUSAGE_CHILDREN)`, exact; the split into
    anonymous and file-backed pages is sampled every 0.1 s from /proc, so it can miss a short spike)."""
    import resource
    import time

    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "unityshots_jax.cli", "convert", src, dst, "--quiet"])
    anon = file = 0
    while proc.poll() is None:
        status = _status_kib(proc.pid)
        anon, file = max(anon, status.get("RssAnon", 0)), max(file, status.get("RssFile", 0))
        time.sleep(0.1)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, proc.args)
    seconds = time.monotonic() - start
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, anon * 1024, file * 1024, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, nargs="+", default=[4, 11])
    ap.add_argument("--dir", default="/tmp/convert_memory")
    ap.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(*measure(*args.measure))
        return
    os.makedirs(args.dir, exist_ok=True)
    for n in args.layers:
        src, dst = os.path.join(args.dir, f"22b-{n}.safetensors"), os.path.join(args.dir, f"22b-{n}-converted")
        try:
            size = write_file(src, n)
            out = subprocess.run([sys.executable, __file__, "--measure", src, dst], check=True, capture_output=True,
                                 text=True)
            peak, anon, file, seconds = map(float, out.stdout.strip().splitlines()[-1].split())
        finally:
            shutil.rmtree(dst, ignore_errors=True)
            if os.path.exists(src):
                os.remove(src)
        print(f"layers {n:>3}  file {size / 2**30:7.2f} GiB  convert peak RSS {peak / 2**30:6.2f} GiB  (sampled peaks: "
              f"RssAnon {anon / 2**30:6.2f} GiB, RssFile {file / 2**30:6.2f} GiB)  {seconds:.0f} s", flush=True)
    shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
