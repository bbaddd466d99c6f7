"""One short, prepared GPU run: throughput and MFU of the Flax LTX transformer in bf16.

Times forward and forward+backward (gradients w.r.t. all parameters) of a ~1.5 B-parameter audio-video
configuration (LTX-2.3 options: split RoPE, gated attention, prompt AdaLN) for each attention kernel that
applies ("xla" and "cudnn" on a GPU), and reports MFU from the analytic model FLOPs
(`unityshots_jax.ltx.flops`; XLA's cost analysis counts a scanned layer once and cannot see into cuDNN) against
the chip's dense bf16 peak. Runs on the CPU too with --tiny (a smoke test of the script itself).

    PYTHONPATH=. python3 experiments/gpu_transformer_bench.py            # on the GPU machine
    python experiments/gpu_transformer_bench.py --tiny                    # here, to check the script
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unityshots_jax.ltx.config import ExecutionConfig, LTXConfig, StreamConfig
from unityshots_jax.ltx.flops import forward_flops, train_flops
from unityshots_jax.ltx.inputs import Perturbations, StreamInput
from unityshots_jax.ltx.transformer import build_model

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0}  # dense, SXM


def make_config(tiny: bool) -> tuple[LTXConfig, dict]:
    if tiny:
        layers, vh, vd, ah, ad, grid, audio_t, text = 2, 2, 16, 2, 8, (4, 2, 3), 17, 8
    else:
        layers, vh, vd, ah, ad, grid, audio_t, text = 12, 16, 128, 16, 64, (16, 16, 24), 126, 256
    cfg = LTXConfig(
        model_type="audio_video",
        num_layers=layers,
        video=StreamConfig(vh, vd, 128, 128, vh * vd, (20, 2048, 2048)),
        audio=StreamConfig(ah, ad, 128, 128, ah * ad, (20,)),
        av_ca_timestep_scale_multiplier=1000.0,
    )
    return cfg, {"grid": grid, "audio_tokens": audio_t, "text_tokens": text}


def make_inputs(cfg: LTXConfig, shape: dict, batch: int, dtype) -> tuple[StreamInput, StreamInput]:
    f, h, w = shape["grid"]
    tv, ta, s = f * h * w, shape["audio_tokens"], shape["text_tokens"]
    rng = np.random.default_rng(0)
    fi, hi, wi = np.meshgrid(np.arange(f), np.arange(h), np.arange(w), indexing="ij")
    t0 = np.maximum(fi.reshape(-1) * 8 - 7, 0) / 24.0
    t1 = (fi.reshape(-1) * 8 + 1) / 24.0
    vpos = np.stack(
        [np.stack([t0, t1], -1), np.stack([hi.reshape(-1) * 32, hi.reshape(-1) * 32 + 32], -1),
         np.stack([wi.reshape(-1) * 32, wi.reshape(-1) * 32 + 32], -1)], 0)
    i = np.arange(ta)
    apos = np.stack([np.maximum(4 * i - 3, 0) * 0.01, np.maximum(4 * (i + 1) - 3, 0) * 0.01], -1)[None]
    sigma = np.full((batch,), 0.7, np.float32)
    video = StreamInput(
        latent=jnp.asarray(rng.standard_normal((batch, tv, 128)), dtype),
        sigma=jnp.asarray(sigma),
        timesteps=jnp.asarray(np.concatenate([np.zeros((batch, h * w)), np.full((batch, tv - h * w), 0.7)], 1), jnp.float32),
        positions=jnp.asarray(np.broadcast_to(vpos, (batch,) + vpos.shape), dtype),
        context=jnp.asarray(rng.standard_normal((batch, s, cfg.video.dim)), dtype),
    )
    audio = StreamInput(
        latent=jnp.asarray(rng.standard_normal((batch, ta, 128)), dtype),
        sigma=jnp.asarray(sigma),
        timesteps=jnp.full((batch, ta), 0.7, jnp.float32),
        positions=jnp.asarray(np.broadcast_to(apos, (batch,) + apos.shape), jnp.float32),
        context=jnp.asarray(rng.standard_normal((batch, s, cfg.audio.dim)), dtype),
    )
    return video, audio


def timed(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def train_step_mfu(cfg: LTXConfig, shape: dict, args, dtype, peak: float) -> dict:
    """MFU of the full Shots-Forcing train step (story model, 3 shots, memory and references in context, AdamW)."""
    from unityshots_jax.story.story_config import StoryConfig
    from unityshots_jax.story.story_model import build_story_model
    from unityshots_jax.train.optimizer import OptimizerConfig
    from unityshots_jax.train.shots_forcing import LossConfig, TrainBatch
    from unityshots_jax.train.train_step import StepConfig, init_train_state, train_step

    f, h, w = shape["grid"]
    shots, b = 3, args.batch
    sc = StoryConfig(max_shots=shots, video_frames=f, height=h, width=w, latent_channels=128, audio_frames=shape["audio_tokens"],
                     audio_channels=128, text_tokens=shape["text_tokens"], ref_audio_frames=32, frame_limit=max(128, f + 9))
    model = build_story_model(cfg, sc, nnx.Rngs(0))
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    step_cfg = StepConfig(loss=LossConfig(), optimizer=OptimizerConfig(warmup_steps=0),
                          execution=ExecutionConfig(attention=args.train_kernel, dtype=jnp.dtype(dtype).name, remat=args.remat))
    state = init_train_state(params, jax.random.key(0), step_cfg)
    rng = np.random.default_rng(0)
    r = lambda *shp: jnp.asarray(rng.standard_normal(shp), jnp.float32)  # noqa: E731
    batch = TrainBatch(
        video_latents=r(b, shots, f, h, w, 128), n_frames=jnp.full((b, shots), f, jnp.int32),
        audio_latents=r(b, shots, sc.audio_frames, 128), n_audio=jnp.full((b, shots), sc.audio_frames, jnp.int32),
        video_context=r(b, shots, sc.text_tokens, cfg.video.dim), audio_context=r(b, shots, sc.text_tokens, cfg.audio.dim),
        context_mask=jnp.ones((b, shots, sc.text_tokens), jnp.int32), cut_strength=jnp.full((b, shots), 0.4),
        boundary=jnp.full((b, shots), 0.5), allowed_modes=jnp.ones((b, shots, 3), bool), shot_valid=jnp.ones((b, shots), bool),
        ref_image=r(b, 1, h, w, 128), has_ref_image=jnp.ones((b,), bool), ref_audio=r(b, 32, 128), ref_audio_mask=jnp.ones((b, 32)),
    )
    graphdef = nnx.graphdef(model)
    fn = jax.jit(lambda st, bt: train_step(st, bt, graphdef, step_cfg), donate_argnums=(0,))
    t0 = time.perf_counter()
    compiled = fn.lower(state, batch).compile()
    compile_s = time.perf_counter() - t0
    times = []
    for i in range(args.repeats + 1):
        t = time.perf_counter()
        state, metrics = compiled(state, batch)
        jax.block_until_ready(metrics)
        if i:
            times.append(time.perf_counter() - t)
    sec = statistics.median(times)
    flops = shots * train_flops(cfg, sc.video_tokens, sc.audio_tokens, sc.text_tokens, b)
    out = {"ms": sec * 1e3, "tflop": flops / 1e12, "tflops_per_s": flops / sec / 1e12, "mfu": flops / sec / peak,
           "compile_s": compile_s, "video_tokens_per_shot": sc.video_tokens, "loss": float(metrics["loss"])}
    print(f"  train step ({args.train_kernel}, remat {args.remat}, {shots} shots × {sc.video_tokens} video tokens incl. memory): "
          f"{sec * 1e3:.1f} ms, {flops / sec / 1e12:.1f} TFLOP/s, MFU {out['mfu'] * 100:.1f} % (compile {compile_s:.1f} s)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--kernels", default="")
    ap.add_argument("--train", action="store_true", help="also time the full Shots-Forcing train step")
    ap.add_argument("--train-kernel", default="cudnn")
    ap.add_argument("--remat", default="none", help="comma-separated remat policies to try for the train step")
    args = ap.parse_args()
    device = jax.devices()[0]
    on_gpu = device.platform == "gpu"
    kernels = args.kernels.split(",") if args.kernels else (["xla", "cudnn"] if on_gpu else ["chunked"])
    dtype = jnp.bfloat16 if on_gpu else jnp.float32
    cfg, shape = make_config(args.tiny)
    model = build_model(cfg, nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    params = jax.tree.map(lambda a: jnp.asarray(a, dtype), params)
    n_params = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(params))
    video, audio = make_inputs(cfg, shape, args.batch, dtype)
    pert = Perturbations.none(cfg.num_layers, args.batch)
    name = next((k for k in PEAK_BF16_TFLOPS if k in device.device_kind), None)
    peak = PEAK_BF16_TFLOPS.get(name, float("nan")) * 1e12
    results = {"device": device.device_kind, "params": n_params, "batch": args.batch,
               "video_tokens": int(video.latent.shape[1]), "audio_tokens": int(audio.latent.shape[1]), "runs": {}}
    print(f"{device.device_kind}: {n_params / 1e9:.2f} B params, batch {args.batch}, "
          f"{video.latent.shape[1]} video + {audio.latent.shape[1]} audio tokens, {jnp.dtype(dtype).name}")
    for kernel in kernels:
        execution = ExecutionConfig(attention=kernel, dtype=jnp.dtype(dtype).name, remat="none")

        def fwd(p, v, a):
            out_v, out_a = nnx.merge(graphdef, p)(v, a, pert, execution)
            return out_v, out_a

        def loss(p, v, a):
            out_v, out_a = fwd(p, v, a)
            return jnp.mean(out_v.astype(jnp.float32) ** 2) + jnp.mean(out_a.astype(jnp.float32) ** 2)

        for label, fn in (("forward", jax.jit(fwd)), ("fwd+bwd", jax.jit(jax.grad(loss)))):
            try:
                t0 = time.perf_counter()
                compiled = fn.lower(params, video, audio).compile()
                compile_s = time.perf_counter() - t0
                count = forward_flops if label == "forward" else train_flops
                flops = float(count(cfg, video.latent.shape[1], audio.latent.shape[1], video.context.shape[1], args.batch))
                sec = timed(compiled, params, video, audio, repeats=args.repeats)
            except Exception as e:  # a kernel that does not apply here (e.g. cudnn on CPU)
                print(f"  {kernel:8s} {label:8s} failed: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
                continue
            tflops = flops / sec / 1e12
            mfu = flops / sec / peak if peak == peak else float("nan")
            results["runs"][f"{kernel}/{label}"] = {"ms": sec * 1e3, "tflop": flops / 1e12, "tflops_per_s": tflops,
                                                    "mfu": mfu, "compile_s": compile_s}
            print(f"  {kernel:8s} {label:8s} {sec * 1e3:9.2f} ms  {flops / 1e12:8.2f} TFLOP  "
                  f"{tflops:7.1f} TFLOP/s  MFU {mfu * 100:5.1f} %  (compile {compile_s:.1f} s)")
    if args.train:
        for remat in args.remat.split(","):
            try:
                results[f"train_step/remat_{remat}"] = train_step_mfu(cfg, shape, argparse.Namespace(**{**vars(args), "remat": remat}), dtype, peak)
            except Exception as e:  # e.g. out of memory without remat
                print(f"  train step (remat {remat}) failed: {type(e).__name__}: {str(e).splitlines()[0][:160]}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
