"""CPU benchmark: the story model's constant-size memory (shot scan) vs a growing bank of all previous shots.

    python experiments/bench_story.py [--repeats N] [--steps S] [--shots 3,6,9] [--methods scan,bank]

Small random-weight model (2 layers, video 2 heads × 32, audio 2 × 16, 128 latent channels, latent grid
8 frames × 4 × 6, 16 audio frames, 8 text tokens, fp32, batch 1), every shot T2V, no guidance (one pass per
step), 8 denoising steps.

Methods
  scan      `generate_story` (one `lax.scan` over shots, `StoryConfig.max_shots = 9`): every story length runs
            the same compiled program; shots past k are padding, skipped at run time by `lax.cond`.
  scan-k    (optional, `--methods`) `max_shots = k`: one compilation per k, no padding shots (k = 9 reuses
            the scan run: the same program).
  bank      the growing-bank baseline, written here: the same backbone (`StoryModel.backbone`, an `LTXModel`);
            for shot n the video sequence is [current noisy shot (timestep σ), the clean latents of shots
            0 … n−1 (timestep 0)] with every frame at its own index on one story timeline (shot j occupies
            latent frames j·F … j·F+F−1, the current shot n·F …); the shot's audio (16 frames, no audio bank)
            is placed at the shot's start time. A Python loop over shots; the context grows every shot, so each
            shot is a new program (compiled once per context length).

Measurements, each method and k in a fresh subprocess (`--worker`):
  compile   every program is compiled ahead of time (`jit(...).lower(...).compile()`) before anything runs;
            `memory_analysis()` of the compiled programs gives XLA's argument / output / temp bytes (bank:
            the largest, i.e. last, shot program; generated-code size is not reported on CPU);
  memory    /proc/self/status VmHWM is reset (`echo 5 > /proc/self/clear_refs`) after compilation, the first
            generation runs, and the run's peak RSS is read back: `peak_mb` = that peak (absolute RSS: Python,
            jaxlib, the compiled programs, weights, inputs and the run's working set); `run_delta_mb` = peak −
            RSS just before the run (the working set the generation added); `maxrss_mb` = the lifetime
            `ru_maxrss` (includes the compiler's own peak);
  time      median over `--repeats` generations after that first one (total time / k = s per shot);
  count     `generate_story._cache_size()` after k = 3, 6, 9 with max_shots = 9 through the ordinary jit path
            in one process; for the bank, `bank_shot._cache_size()` after k = 3, 6, 9 likewise.

Prints a table, a `DETAIL {...}` line with everything, and a final JSON line.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


# --------------------------------------------------------------------------------------------------- configs
def configs(max_shots: int):
    from unityshots_jax.ltx.config import LTXConfig, StreamConfig
    from unityshots_jax.story.story_config import StoryConfig

    ltx = LTXConfig(
        model_type="audio_video",
        num_layers=2,
        video=StreamConfig(2, 32, 128, 128, 64, (20, 2048, 2048)),
        audio=StreamConfig(2, 16, 128, 128, 32, (20,)),
        av_ca_timestep_scale_multiplier=1000.0,
    )
    sc = StoryConfig(
        max_shots=max_shots, video_frames=8, height=4, width=6, latent_channels=128,
        audio_frames=16, audio_channels=128, text_tokens=8, ref_audio_frames=8,
    )
    return ltx, sc


def shot_texts(sc, k: int, batch: int = 1, seed: int = 0, video_dim: int = 64, audio_dim: int = 32):
    """Per-shot text contexts (`[batch, k, S, D]`), identical for every method."""
    import numpy as np

    rng = np.random.default_rng(seed)
    vc = rng.standard_normal((batch, k, sc.text_tokens, video_dim)).astype(np.float32)
    ac = rng.standard_normal((batch, k, sc.text_tokens, audio_dim)).astype(np.float32)
    return vc, ac, np.ones((batch, k, sc.text_tokens), np.int32)


def t2v_story(sc, k: int, video_dim: int = 64, audio_dim: int = 32):
    """`StoryInputs` of one k-shot T2V story: full-length shots, boundary 0.5, cut strength 0.4 after the first
    (also used by bench_scan_step.py and plan_sampling_22b.py)."""
    from unityshots_jax.story.story_inputs import make_story_inputs

    vc, ac, cm = shot_texts(sc, k, video_dim=video_dim, audio_dim=audio_dim)
    return make_story_inputs(
        sc, video_context=vc, audio_context=ac, context_mask=cm, modes=[["t2v"] * k],
        cut_strength=[[0.0] + [0.4] * (k - 1)], boundary=[[0.5] * k],
        n_frames=[[sc.video_frames] * k], n_audio=[[sc.audio_frames] * k],
    )


# --------------------------------------------------------------------------------------------------- memory
def _status(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # kB → MiB
    raise RuntimeError(field)


def trim() -> None:
    """Hand freed heap memory back to the OS so the RSS before a run is not inflated by the compiler's garbage."""
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)


def reset_hwm() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def mem_analysis(compiled) -> dict:
    m = compiled.memory_analysis()
    mb = lambda x: round(x / 2**20, 3)  # noqa: E731
    return {
        "argument_mb": mb(m.argument_size_in_bytes),
        "output_mb": mb(m.output_size_in_bytes),
        "temp_mb": mb(m.temp_size_in_bytes),
        "code_mb": mb(m.generated_code_size_in_bytes),
    }


# --------------------------------------------------------------------------------------------------- the growing bank
def _bank_shot_impl(graphdef, params, prev, ctx_v, ctx_a, cmask, key, sc, steps):
    """Shot n = len(prev) with every previous shot in context. prev: tuple of `[b, F, H, W, C]` clean latents."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from unityshots_jax.ltx.inputs import StreamInput
    from unityshots_jax.ltx.sampling import euler_step, ltx2_sigmas
    from unityshots_jax.ltx.sampling import to_denoised
    from unityshots_jax.story.strata_rope import audio_positions, video_positions

    backbone = nnx.merge(graphdef, params)
    b = ctx_v.shape[0]
    n = len(prev)
    f, ft, c = sc.video_frames, sc.frame_tokens, sc.latent_channels
    kv, ka = jax.random.split(key)
    xv = jax.random.normal(kv, (b, f * ft, c), jnp.float32)
    xa = jax.random.normal(ka, (b, sc.audio_frames, sc.audio_channels), jnp.float32)
    bank = jnp.concatenate([p.reshape(b, f * ft, c) for p in prev], 1) if n else jnp.zeros((b, 0, c), jnp.float32)
    frames = jnp.concatenate([jnp.arange(n * f, (n + 1) * f), jnp.arange(n * f)]).astype(jnp.float32)
    vpos = video_positions(jnp.broadcast_to(frames[None], (b, frames.shape[0])), sc)
    t0 = n * f * sc.temporal_scale / sc.fps  # the shot's start time on the story timeline, seconds
    aidx = jnp.broadcast_to(jnp.arange(sc.audio_frames, dtype=jnp.float32)[None], (b, sc.audio_frames))
    apos = audio_positions(aidx, sc) + t0
    sigmas = jnp.asarray(ltx2_sigmas(steps))

    def step(carry, sig):
        xv, xa = carry
        s, s_next = sig
        sb = jnp.full((b,), s, jnp.float32)
        video = StreamInput(
            latent=jnp.concatenate([xv, bank], 1), sigma=sb,
            timesteps=jnp.concatenate([jnp.full((b, f * ft), s), jnp.zeros((b, n * f * ft))], 1),
            positions=vpos, context=ctx_v, context_mask=cmask,
        )
        audio = StreamInput(latent=xa, sigma=sb, timesteps=jnp.full((b, sc.audio_frames), s), positions=apos,
                            context=ctx_a, context_mask=cmask)
        vv, va = backbone(video, audio)
        x0v = to_denoised(xv, vv[:, : f * ft], s)
        x0a = to_denoised(xa, va, s)
        return (euler_step(xv, x0v, s, s_next), euler_step(xa, x0a, s, s_next)), None

    (xv, xa), _ = jax.lax.scan(step, (xv, xa), (sigmas[:-1], sigmas[1:]))
    return xv.reshape(b, f, sc.height, sc.width, c), xa


_BANK_SHOT = None


def bank_shot():
    global _BANK_SHOT
    if _BANK_SHOT is None:
        import jax

        _BANK_SHOT = jax.jit(_bank_shot_impl, static_argnames=("graphdef", "sc", "steps"))
    return _BANK_SHOT


def bank_story(run_shot, k, ctx, key):
    """run_shot(n, prev, ctx_v, ctx_a, cmask, key) → (video, audio); a Python loop over shots."""
    import jax

    vc, ac, cm = ctx
    prev, audio = (), []
    for n in range(k):
        key, sub = jax.random.split(key)
        v, a = run_shot(n, prev, vc[:, n], ac[:, n], cm[:, n], sub)
        prev, audio = prev + (v,), audio + [a]
    jax.block_until_ready((prev, audio))
    return prev, audio


# --------------------------------------------------------------------------------------------------- workers
def worker(method: str, k: int, steps: int, repeats: int) -> dict:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from unityshots_jax.ltx.config import ExecutionConfig
    from unityshots_jax.ltx.sampler import SamplerConfig
    from unityshots_jax.story.shot_scan import SamplingConfig, generate_story
    from unityshots_jax.story.story_model import build_story_model

    max_shots = k if method == "scan-k" else 9
    ltx, sc = configs(max_shots)
    model = build_story_model(ltx, sc, nnx.Rngs(0))
    vc, ac, cm = shot_texts(sc, k)
    key = jax.random.key(0)
    out: dict = {"method": method, "k": k, "rss_imports_mb": _status("VmRSS")}

    if method in ("scan", "scan-k"):
        graphdef, params = nnx.split(model)
        inputs = t2v_story(sc, k)
        sampling = SamplingConfig(SamplerConfig(steps=steps))
        t = time.perf_counter()
        compiled = generate_story.lower(graphdef, params, inputs, key, sampling, ExecutionConfig()).compile()
        out["compile_s"] = time.perf_counter() - t
        out["xla"] = mem_analysis(compiled)
        out["programs"] = 1

        def run():
            jax.block_until_ready(compiled(params, inputs, key))
    else:
        graphdef, params = nnx.split(model.backbone)
        jit_shot = bank_shot()
        ctx = tuple(jnp.asarray(x) for x in (vc, ac, cm))
        shot_shape = jax.ShapeDtypeStruct((1, sc.video_frames, sc.height, sc.width, sc.latent_channels), jnp.float32)
        programs, analyses = [], []
        t = time.perf_counter()
        for n in range(k):
            prev = (shot_shape,) * n
            shot_ctx = (ctx[0][:, n], ctx[1][:, n], ctx[2][:, n])
            c = jit_shot.lower(graphdef, params, prev, *shot_ctx, key, sc, steps).compile()
            programs.append(c)
            analyses.append(mem_analysis(c))
        out["compile_s"] = time.perf_counter() - t
        out["programs"] = len(programs)
        last = analyses[-1]
        out["xla"] = dict(last, code_mb=round(sum(a["code_mb"] for a in analyses), 3))
        out["xla_per_shot_temp_mb"] = [a["temp_mb"] for a in analyses]

        def run():
            bank_story(lambda n, prev, v, a, m, s: programs[n](params, prev, v, a, m, s), k, ctx, key)

    out["rss_compiled_mb"] = _status("VmRSS")
    trim()
    reset_hwm()
    before = _status("VmRSS")
    t = time.perf_counter()
    run()
    out["first_run_s"] = time.perf_counter() - t
    out["peak_mb"] = _status("VmHWM")
    out["run_delta_mb"] = out["peak_mb"] - before
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    out["run_s"] = times
    out["sec_per_shot"] = statistics.median(times) / k
    out["sec_per_computed_shot"] = statistics.median(times) / (sc.max_shots if method == "scan" else k)
    out["maxrss_mb"] = maxrss_mb()
    return out


def count_worker(method: str, shots: list[int], steps: int, repeats: int) -> dict:
    """Every k in one process through the ordinary jit path: a cold story per k (compiling what is new), then
    `repeats` rounds that time one story per k, the k interleaved so that load drift hits them alike."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from unityshots_jax.ltx.sampler import SamplerConfig
    from unityshots_jax.story.shot_scan import SamplingConfig, generate_story
    from unityshots_jax.story.story_model import build_story_model

    ltx, sc = configs(9)
    model = build_story_model(ltx, sc, nnx.Rngs(0))
    key = jax.random.key(0)
    out: dict = {"method": method, "cold_s": {}}
    runs = {}
    if method == "scan":
        gen = generate_story
        graphdef, params = nnx.split(model)
        for k in shots:
            inputs = t2v_story(sc, k)
            runs[k] = functools.partial(
                lambda inputs: jax.block_until_ready(gen(graphdef, params, inputs, key, SamplingConfig(SamplerConfig(steps=steps)))),
                inputs,
            )
        cache_size = gen._cache_size
    else:
        graphdef, params = nnx.split(model.backbone)
        jit_shot = bank_shot()
        for k in shots:
            ctx = tuple(jnp.asarray(x) for x in shot_texts(sc, k))
            runs[k] = functools.partial(
                bank_story,
                lambda n, prev, v, a, m, s: jit_shot(graphdef, params, prev, v, a, m, s, sc, steps),
                k, ctx, key,
            )
        cache_size = jit_shot._cache_size
    for k in shots:
        t = time.perf_counter()
        runs[k]()
        out["cold_s"][str(k)] = time.perf_counter() - t  # includes compiling what this k needs and no smaller k did
    out["compilations"] = cache_size()
    times: dict = {k: [] for k in shots}
    for _ in range(repeats):
        for k in shots:
            t = time.perf_counter()
            runs[k]()
            times[k].append(time.perf_counter() - t)
    out["run_s"] = {str(k): v for k, v in times.items()}
    out["sec_per_shot"] = {str(k): statistics.median(v) / k for k, v in times.items()}
    out["compilations_after_timing"] = cache_size()
    return out


# --------------------------------------------------------------------------------------------------- driver
def spawn(args: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, os.path.abspath(__file__), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"worker {args} failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--shots", default="3,6,9")
    ap.add_argument("--methods", default="scan,bank")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--count", help=argparse.SUPPRESS)
    ap.add_argument("--k", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    shots = [int(s) for s in a.shots.split(",")]
    if a.worker:
        print("RESULT " + json.dumps(worker(a.worker, a.k, a.steps, a.repeats)), flush=True)
        return
    if a.count:
        print("RESULT " + json.dumps(count_worker(a.count, shots, a.steps, a.repeats)), flush=True)
        return

    t_start = time.time()
    load0 = os.getloadavg()
    methods = a.methods.split(",")
    res: dict = {m: {} for m in methods}
    for m in methods:
        for k in shots:
            if m == "scan-k" and k == 9 and "9" in res.get("scan", {}):
                r = dict(res["scan"]["9"], method="scan-k", reused="scan k=9 (the same program)")
            else:
                r = spawn(["--worker", m, "--k", str(k), "--steps", str(a.steps), "--repeats", str(a.repeats)])
            res[m][str(k)] = r
            print(f"[{time.time() - t_start:6.1f}s] {m:6s} k={k}: {r['sec_per_shot']:.4f} s/shot, "
                  f"peak {r['peak_mb']:.1f} MiB, "
                  f"compile {r['compile_s']:.1f} s", file=sys.stderr, flush=True)
    counts = {}
    for m in ("scan", "bank"):
        if m in methods:
            counts[m] = spawn(["--count", m, "--shots", a.shots, "--steps", str(a.steps), "--repeats", str(a.repeats)])
            print(f"[{time.time() - t_start:6.1f}s] {m} compilations: {counts[m]['compilations']}",
                  file=sys.stderr, flush=True)
    load1 = os.getloadavg()

    print(f"\nstory benchmark: {a.steps} steps, {a.repeats} repeats, shots {shots}; load average before "
          f"{load0[0]:.2f}/{load0[1]:.2f}/{load0[2]:.2f}, after {load1[0]:.2f}/{load1[1]:.2f}/{load1[2]:.2f}")
    print("fresh subprocess per method and k:")
    hdr = ("method", "k", "programs", "compile s", "s/shot", "s/computed shot", "peak RSS MiB", "run Δ MiB",
           "maxrss MiB", "XLA arg+out MiB", "XLA temp MiB")
    print(" | ".join(hdr))
    for m in methods:
        for k in shots:
            r = res[m][str(k)]
            x = r["xla"]
            print(" | ".join([
                m, str(k), str(r["programs"]), f"{r['compile_s']:.1f}", f"{r['sec_per_shot']:.4f}",
                f"{r['sec_per_computed_shot']:.4f}", f"{r['peak_mb']:.1f}", f"{r['run_delta_mb']:.1f}",
                f"{r['maxrss_mb']:.1f}", f"{x['argument_mb'] + x['output_mb']:.2f}", f"{x['temp_mb']:.3f}",
            ]))
    print("\none process per method, every k, interleaved rounds (s/shot = median story time / k; ratio to the "
          "smallest k):")
    cols = (*(f"cold story k={k} s" for k in shots), *(f"s/shot k={k}" for k in shots))
    print(" | ".join(("method", "compilations", *cols)))
    for m, c in counts.items():
        base = c["sec_per_shot"][str(shots[0])]
        print(" | ".join([
            m, str(c["compilations"]), *(f"{c['cold_s'][str(k)]:.1f}" for k in shots),
            *(f"{c['sec_per_shot'][str(k)]:.4f} ({c['sec_per_shot'][str(k)] / base:.2f})" for k in shots),
        ]))
    print(f"total wall time {time.time() - t_start:.0f} s")
    print("DETAIL " + json.dumps({"results": res, "counts": counts, "load": [load0, load1]}))

    def pick(m, field):
        """peak_mb: the fresh subprocess per k; sec_per_shot: the one-process interleaved timing."""
        if field == "sec_per_shot" and m in counts:
            return {str(k): round(counts[m]["sec_per_shot"][str(k)], 4) for k in shots}
        if m not in res:
            return None
        return {str(k): round(res[m][str(k)][field], 4 if field == "sec_per_shot" else 1) for k in shots}

    final = {
        "compilations": counts.get("scan", {}).get("compilations"),
        "peak_mb": pick("scan", "peak_mb"),
        "sec_per_shot": pick("scan", "sec_per_shot"),
        "baseline": {
            "peak_mb": pick("bank", "peak_mb"),
            "sec_per_shot": pick("bank", "sec_per_shot"),
            "compilations": counts.get("bank", {}).get("compilations"),
        },
    }
    print(json.dumps(final))


if __name__ == "__main__":
    main()
