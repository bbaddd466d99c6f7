"""CPU benchmark: one denoising step of the story scan vs a plain transformer forward of the same token count.

    python experiments/bench_scan_step.py [--repeats N] [--steps S] [--shots K] [--layers L] [--grid F,H,W]

The story model's sampler (`generate_story`: a `lax.scan` over shots carrying the memory, a scan over denoising
steps inside each) does more per step than the transformer: the memory gate, building the shot block
(memory slots, reference, Strata-RoPE positions, masks), reading the shot's tokens back out, the Euler update,
and once per shot the memory update. This measures that overhead (issue 14, item 5).

Both sides run the same random-weight backbone on the same token count, fp32, batch 1, no guidance (one pass per
step), attention `auto` (flash on CPU):

  story      `generate_story` on a k-shot T2V story, `max_shots = k` (no padding shots), S steps:
             time / (k · S) per step (the per-shot memory update is spread over the shot's steps)
  forward    the backbone alone (`LTXModel`), jitted, on the exact stream inputs the story step builds for a
             shot (same tokens, positions and attention masks): one call per step
  loop       the same forward inside a jitted `lax.scan` of S Euler steps on the shot's tokens (a single-clip
             sampler: what the story step would cost with no memory plumbing)

Every program is compiled before timing; the three are timed interleaved in one process, `--repeats` rounds,
medians and spreads reported; the load average is recorded before and after (run it alone on the machine).
Overhead = story / forward − 1 and story / loop − 1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)
from bench_story import t2v_story  # noqa: E402


def configs(layers: int, grid: tuple[int, int, int], shots: int):
    from unityshots_jax.ltx.config import LTXConfig, StreamConfig
    from unityshots_jax.story.story_config import StoryConfig

    f, h, w = grid
    ltx = LTXConfig(
        model_type="audio_video",
        num_layers=layers,
        video=StreamConfig(8, 64, 128, 128, 512, (20, 2048, 2048)),
        audio=StreamConfig(8, 32, 128, 128, 256, (20,)),
        av_ca_timestep_scale_multiplier=1000.0,
    )
    story = StoryConfig(max_shots=shots, video_frames=f, height=h, width=w, latent_channels=128,
                        audio_frames=4 * f, audio_channels=128, text_tokens=32, ref_audio_frames=8)
    return ltx, story


def shot_stream_inputs(model, inputs, sigma: float):
    """The (video, audio) `StreamInput`s the story step feeds the backbone for shot 1 (memory slots filled)."""
    import jax
    import jax.numpy as jnp

    from unityshots_jax.story.shot_sequence import build_inputs
    from unityshots_jax.story.story_model import memory_gains
    from unityshots_jax.story.story_state import enter_shot, init_state

    cfg = model.story_cfg
    shot = jax.tree.map(lambda x: x[1], inputs.shots)
    state = enter_shot(init_state(cfg, 1), shot.boundary, shot.valid, cfg)
    xv = jax.random.normal(jax.random.key(1), (1, cfg.video_frames, cfg.height, cfg.width, cfg.latent_channels))
    xa = jax.random.normal(jax.random.key(2), (1, cfg.audio_frames, cfg.audio_channels))
    g_ltm, g_stm, _ = memory_gains(model, xv, shot, state)
    offsets = (model.memory.cut_video(shot.cut_strength), model.memory.cut_audio(shot.cut_strength))
    sig = jnp.full((1,), sigma, jnp.float32)
    return build_inputs(cfg, xv, xa, sig, shot, inputs.refs, state, g_ltm, g_stm, offsets)


def plain_loop(graphdef, params, video, audio, steps: int):
    """S Euler steps of the bare backbone on the shot block's tokens (the first `n` video tokens are the shot)."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from unityshots_jax.ltx.sampling import euler_step, ltx2_sigmas, to_denoised

    backbone = nnx.merge(graphdef, params)
    sigmas = jnp.asarray(ltx2_sigmas(steps))

    def step(carry, sig):
        xv, xa = carry
        s, s_next = sig
        vv, va = backbone(video.replace(latent=xv, sigma=jnp.full((1,), s)),
                          audio.replace(latent=xa, sigma=jnp.full((1,), s)))
        return (euler_step(xv, to_denoised(xv, vv, s), s, s_next), euler_step(xa, to_denoised(xa, va, s), s, s_next)), None

    (xv, xa), _ = jax.lax.scan(step, (video.latent, audio.latent), (sigmas[:-1], sigmas[1:]))
    return xv, xa


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--shots", type=int, default=3)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--grid", default="8,8,12", help="latent frames, height, width of one shot")
    a = p.parse_args(argv)

    import jax
    from flax import nnx

    from unityshots_jax.ltx.config import ExecutionConfig
    from unityshots_jax.ltx.sampler import SamplerConfig
    from unityshots_jax.story.shot_scan import SamplingConfig, generate_story
    from unityshots_jax.story.story_model import build_story_model

    load_before = os.getloadavg()[0]
    ltx, sc = configs(a.layers, tuple(int(x) for x in a.grid.split(",")), a.shots)
    model = build_story_model(ltx, sc, nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    bb_graph, bb_params = nnx.split(model.backbone)
    inputs = t2v_story(sc, a.shots, video_dim=ltx.video.context_dim, audio_dim=ltx.audio.context_dim)
    key = jax.random.key(0)
    sampling, execution = SamplingConfig(SamplerConfig(steps=a.steps)), ExecutionConfig()
    video, audio = shot_stream_inputs(model, inputs, 0.5)

    compiled, compile_s = {}, {}
    t = time.perf_counter()
    compiled["story"] = generate_story.lower(graphdef, params, inputs, key, sampling, execution).compile()
    compile_s["story"] = time.perf_counter() - t
    fwd = jax.jit(lambda p, v, au: nnx.merge(bb_graph, p)(v, au, None, execution))
    t = time.perf_counter()
    compiled["forward"] = fwd.lower(bb_params, video, audio).compile()
    compile_s["forward"] = time.perf_counter() - t
    loop = jax.jit(plain_loop, static_argnames=("graphdef", "steps"))
    t = time.perf_counter()
    compiled["loop"] = loop.lower(bb_graph, bb_params, video, audio, steps=a.steps).compile()
    compile_s["loop"] = time.perf_counter() - t

    runs = {
        "story": lambda: compiled["story"](params, inputs, key),
        "forward": lambda: compiled["forward"](bb_params, video, audio),
        "loop": lambda: compiled["loop"](bb_params, video, audio),
    }
    per_step = {"story": a.shots * a.steps, "forward": 1, "loop": a.steps}
    for run in runs.values():  # warm-up
        jax.block_until_ready(run())
    times: dict = {name: [] for name in runs}
    for _ in range(a.repeats):
        for name, run in runs.items():
            t = time.perf_counter()
            jax.block_until_ready(run())
            times[name].append((time.perf_counter() - t) / per_step[name] * 1e3)
    med = {n: statistics.median(v) for n, v in times.items()}
    out = {
        "video_tokens": int(video.latent.shape[1]), "audio_tokens": int(audio.latent.shape[1]),
        "shot_video_tokens": sc.video_frames * sc.height * sc.width, "layers": a.layers, "shots": a.shots,
        "steps": a.steps, "repeats": a.repeats, "ms_per_step_median": med,
        "ms_per_step_min": {n: min(v) for n, v in times.items()},
        "ms_per_step_max": {n: max(v) for n, v in times.items()},
        "overhead_vs_forward": med["story"] / med["forward"] - 1, "overhead_vs_loop": med["story"] / med["loop"] - 1,
        "compile_s": compile_s, "load_before": load_before, "load_after": os.getloadavg()[0],
    }
    print(f"tokens per step: video {out['video_tokens']} (shot {out['shot_video_tokens']}), audio "
          f"{out['audio_tokens']}; {a.layers} layers, {a.shots} shots × {a.steps} steps, {a.repeats} rounds")
    print("| what | ms/step median | min | max |\n|---|---:|---:|---:|")
    for n in runs:
        print(f"| {n} | {med[n]:.1f} | {out['ms_per_step_min'][n]:.1f} | {out['ms_per_step_max'][n]:.1f} |")
    print(f"story-scan overhead: {100 * out['overhead_vs_forward']:+.1f} % vs a plain forward, "
          f"{100 * out['overhead_vs_loop']:+.1f} % vs a plain Euler loop; load {load_before:.2f} → {out['load_after']:.2f}")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
