"""CPU benchmark: our LTX-2.3 media path vs ltx-core 1.0.0 on the same weights and inputs, in one run.

    python experiments/bench_media.py [--rounds 5] [--repeats 3] [--threads 2]   # on a quiet machine only
    python experiments/bench_media.py --check     # tiny sizes, one iteration of each task, outputs compared

Tasks (fp32): video `decode` (untiled), video `encode`, `audio_decode` (audio VAE decoder + vocoder + BWE → 48 kHz
stereo), and tiled decode of a clip 1× and 4× longer (`tiled_1x`, `tiled_4x`; chunks consumed one by one, nothing
kept) for the peak-memory goal: flat within 10 % as the clip grows. Ours runs the code users run (the ltx23 codecs,
`vae.video.tiling.tiled_decode`); the reference runs ltx-core's modules loaded through its official loader from
the same file.

Every (task, implementation) pair runs in a fresh subprocess pinned to the same `--threads` cores (torch threads
set to match), so ru_maxrss is that implementation's own peak: the worker reports its high-water mark after
loading (`base_mb`) and after the timed calls (`peak_mb`, which for ours includes XLA compilation in the warm-up);
`task_mb` = peak − base; `run_peak_mb` is the largest current RSS sampled every 2 ms during the timed calls only
(the memory the decode itself needs; XLA's CPU buffers are invisible to tracemalloc; on a GPU the device's
`peak_bytes_in_use` is added). The tiled-decode goal is judged on `run_peak_mb` 4× vs 1×.
Rounds interleave the implementations (order alternating) so drifting machine load hits both alike; the load
average is recorded before and after. Prints a table and a final JSON line: per task the medians over all timed
calls, spread (min / max), ratio ours / reference (goal ≤ 1.0, stretch ≤ 0.8) and memory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TASKS = ("decode", "encode", "audio_decode", "tiled_1x", "tiled_4x")
IMPLS = ("ours", "reference")


def sizes(check: bool) -> dict:
    """Model and input sizes: tiny for --check, tiny-but-not-trivial for timing."""
    if check:
        return {"vae": dict(latent_channels=16, base=8, num_layers=1), "grid": (2, 2, 3), "tiled_frames": 3,
                "tiled_grid": (2, 3), "tiling": ((64, 32), (16, 8)),
                "audio": dict(ch=32, z_channels=2), "vocoder": dict(vocoder_channels=64, bwe_channels=32),
                "audio_frames": 4}
    return {"vae": dict(latent_channels=64, base=32, num_layers=2), "grid": (3, 6, 8), "tiled_frames": 4,
            "tiled_grid": (6, 8), "tiling": ((128, 64), (16, 8)),
            "audio": dict(ch=64, z_channels=4), "vocoder": dict(vocoder_channels=256, bwe_channels=128),
            "audio_frames": 50}


def write_weights(root: str, s: dict) -> tuple[str, str]:
    """(video VAE file, audio file) in the official layout, random, seeded."""
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
    from helpers.video_vae_configs import ltx23_tiny  # the tests' shrunk 2.3 VAE layout

    from unityshots_jax.reference import tiny_audio
    from unityshots_jax.reference.tiny_media import write_tiny_vae

    video = os.path.join(root, "vae.safetensors")
    write_tiny_vae(video, ltx23_tiny(**s["vae"]), seed=0)
    audio = os.path.join(root, "audio.safetensors")
    config = {"audio_vae": tiny_audio.tiny_audio_vae(**s["audio"]),
              "vocoder": tiny_audio.tiny_vocoder_bwe(**s["vocoder"])}
    tiny_audio.save_official(tiny_audio.build_random_audio(config, 1), config, audio)
    return video, audio


def inputs(s: dict, task: str) -> np.ndarray:
    """Channels-last inputs: latents `[F, h, w, C]`, frames `[T, H, W, 3]` or audio tokens `[Fa, Ca]`."""
    rng = np.random.default_rng(TASKS.index(task))
    c = s["vae"]["latent_channels"]
    if task == "decode":
        return rng.standard_normal((*s["grid"], c)).astype(np.float32)
    if task == "encode":
        f, h, w = s["grid"]
        return rng.uniform(0, 1, (8 * (f - 1) + 1, 32 * h, 32 * w, 3)).astype(np.float32)
    if task == "audio_decode":
        return (0.5 * rng.standard_normal((s["audio_frames"], 16 * s["audio"]["z_channels"]))).astype(np.float32)
    frames = s["tiled_frames"] * (4 if task == "tiled_4x" else 1)
    return rng.standard_normal((frames, *s["tiled_grid"], c)).astype(np.float32)


def _ours(task: str, video: str, audio: str, s: dict):
    """A function input → output numpy array, running our code."""
    if task == "audio_decode":
        from unityshots_jax.codecs.ltx23_audio import LTX23AudioCodec

        return LTX23AudioCodec(audio).decode
    from unityshots_jax.codecs.ltx23_video import LTX23VideoCodec, jit_module
    from unityshots_jax.vae.video.keys import load_video_decoder
    from unityshots_jax.vae.video.tiling import Tiling, tiled_decode

    if task in ("decode", "encode"):
        codec = LTX23VideoCodec.from_checkpoint(video, encoder=task == "encode")
        return codec.decode if task == "decode" else codec.encode
    decode, tiling = jit_module(load_video_decoder(video)), Tiling(*s["tiling"])
    return lambda z: np.asarray(sum(c.shape[1] for c in tiled_decode(decode, z[None], tiling)))


def _reference(task: str, video: str, audio: str, s: dict):
    """The same function on ltx-core's modules (channels-first inside, channels-last in and out)."""
    import torch

    from unityshots_jax.reference import tiny_media

    if task == "audio_decode":
        from unityshots_jax.reference import tiny_audio  # installs the torchaudio shim first

        from ltx_core.model.audio_vae import decode_audio

        m = tiny_audio.load_official(audio)
        z = s["audio"]["z_channels"]

        def run_audio(tokens):
            latent = torch.from_numpy(tokens).reshape(tokens.shape[0], z, -1).permute(1, 0, 2)[None]
            return decode_audio(latent, m["decoder"], m["vocoder"]).waveform.numpy().T

        return run_audio
    part = "encoder" if task == "encode" else "decoder"
    model = tiny_media.load_reference(video, part)
    if task == "decode":
        return lambda x: np.clip((model(torch.from_numpy(x).permute(3, 0, 1, 2)[None])[0].permute(1, 2, 3, 0).numpy()
                                  + 1.0) / 2.0, 0.0, 1.0)
    if task == "encode":
        return lambda x: model(torch.from_numpy(2.0 * x - 1.0).permute(3, 0, 1, 2)[None])[0].permute(1, 2, 3, 0).numpy()
    tiling = tiny_media.tiling_config(*s["tiling"])
    return lambda z: np.asarray(sum(c.shape[2] for c in model.tiled_decode(
        torch.from_numpy(z).permute(3, 0, 1, 2)[None], tiling)))


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


class RssSampler:
    """Samples the process's current RSS (/proc/self/statm) every `interval` s in a thread; `peak_mb` is the largest
    seen while running — the memory of the timed calls alone, without the compile high-water mark of the warm-up."""

    def __init__(self, interval: float = 0.002):
        import threading

        self.interval, self.peak_mb, self._stop = interval, 0.0, threading.Event()
        self._page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with open("/proc/self/statm") as f:
                self.peak_mb = max(self.peak_mb, int(f.read().split()[1]) * self._page_mb)
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def worker(args) -> None:
    """One implementation, one task, fresh process: load, one warm-up call, `repeats` timed calls; JSON on stdout."""
    os.sched_setaffinity(0, set(range(min(args.threads, os.cpu_count() or 1))))
    s = sizes(args.check)
    video, audio = os.path.join(args.root, "vae.safetensors"), os.path.join(args.root, "audio.safetensors")
    if args.impl == "reference":
        import torch

        torch.set_num_threads(args.threads)
        ctx = torch.no_grad()
    else:
        import contextlib

        ctx = contextlib.nullcontext()
    x = inputs(s, args.task)
    with ctx:
        fn = (_ours if args.impl == "ours" else _reference)(args.task, video, audio, s)
        base = _rss_mb()
        out = np.asarray(fn(x))  # warm-up (compiles ours)
        times = []
        with RssSampler() as sampler:
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                np.asarray(fn(x))
                times.append(time.perf_counter() - t0)
    result = {"times": times, "base_mb": base, "peak_mb": _rss_mb(), "run_peak_mb": sampler.peak_mb}
    if args.impl == "ours":
        import jax

        stats = jax.devices()[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            result["device_peak_mb"] = stats["peak_bytes_in_use"] / 2**20
    if args.save:
        np.save(os.path.join(args.root, f"{args.impl}_{args.task}.npy"), out)
    print(json.dumps(result))


def run_worker(root: str, impl: str, task: str, repeats: int, threads: int, check: bool) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", impl, task, "--root", root,
           "--repeats", str(repeats), "--threads", str(threads)] + (["--check", "--save"] if check else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    if proc.returncode:
        raise RuntimeError(f"worker {impl} {task} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summarize(runs: dict) -> dict:
    """{task: {impl: {median_s, min_s, max_s, peak_mb, task_mb}, ratio}} from the workers' reports."""
    out = {}
    for task in TASKS:
        row = {}
        for impl in IMPLS:
            reports = runs[task][impl]
            times = [t for r in reports for t in r["times"]]
            row[impl] = {"median_s": statistics.median(times) if times else None,
                         "min_s": min(times, default=None), "max_s": max(times, default=None),
                         "peak_mb": max(r["peak_mb"] for r in reports),
                         "task_mb": max(r["peak_mb"] - r["base_mb"] for r in reports),
                         "run_peak_mb": max(r["run_peak_mb"] for r in reports)}
            if any("device_peak_mb" in r for r in reports):
                row[impl]["device_peak_mb"] = max(r.get("device_peak_mb", 0.0) for r in reports)
        if row["ours"]["median_s"] and row["reference"]["median_s"]:
            row["ratio"] = row["ours"]["median_s"] / row["reference"]["median_s"]
        out[task] = row
    for impl in IMPLS:
        for key in ("peak_mb", "run_peak_mb"):
            one, four = out["tiled_1x"][impl][key], out["tiled_4x"][impl][key]
            out[f"tiled_{key}_growth_{impl}"] = four / one - 1.0
    return out


def check_outputs(root: str) -> dict:
    """Max relative difference ours vs reference per task (tiled: the decoded frame counts must be equal)."""
    diffs = {}
    for task in TASKS:
        a, b = (np.load(os.path.join(root, f"{impl}_{task}.npy")) for impl in IMPLS)
        if a.shape != b.shape:
            raise AssertionError(f"{task}: ours {a.shape} vs reference {b.shape}")
        diffs[task] = float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))
    return diffs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--check", action="store_true", help="tiny sizes, one iteration each, outputs compared")
    parser.add_argument("--worker", nargs=2, metavar=("IMPL", "TASK"), help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--save", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.impl, args.task = args.worker
        return worker(args)
    rounds, repeats = (1, 1) if args.check else (args.rounds, args.repeats)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as root:
        write_weights(root, sizes(args.check))
        runs = {task: {impl: [] for impl in IMPLS} for task in TASKS}
        for r in range(rounds):
            for task in TASKS:
                for impl in (IMPLS if r % 2 == 0 else IMPLS[::-1]):
                    runs[task][impl].append(run_worker(root, impl, task, repeats, args.threads, args.check))
        diffs = check_outputs(root) if args.check else None
    result = {"summary": summarize(runs), "rounds": rounds, "repeats": repeats, "threads": args.threads,
              "loadavg_before": load_before, "loadavg_after": os.getloadavg(), "check": args.check}
    if diffs is not None:
        result["max_rel_diff"] = diffs
        result["check_ok"] = all(d < 1e-3 for d in diffs.values())
    print(f"{'task':<14}{'ours s':>10}{'ref s':>10}{'ratio':>8}{'ours MB':>10}{'ref MB':>10}"
          "  (MB: peak RSS while running)")
    for task in TASKS:
        row = result["summary"][task]
        print(f"{task:<14}{row['ours']['median_s']:>10.4f}{row['reference']['median_s']:>10.4f}"
              f"{row.get('ratio', float('nan')):>8.2f}{row['ours']['run_peak_mb']:>10.0f}"
              f"{row['reference']['run_peak_mb']:>10.0f}")
    print(f"load average before {load_before}, after {result['loadavg_after']}")
    print(json.dumps(result))
    if args.check and not result["check_ok"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
