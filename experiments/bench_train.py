"""CPU benchmark: one Shots-Forcing training step (story model, 3 shots) vs ltx-core forward+backward per shot.

    python experiments/bench_train.py [--repeats N] [--shots 3] [--attention flash] [--chunk 128]

Small configuration: 2 layers, video 4 heads × 32 (dim 128), audio 4 × 16 (dim 64), 128 latent channels both
streams, LTX-2.3 layout (split RoPE, gated attention, prompt AdaLN, caption projection outside), fp32, batch 1.
Story: 3 shots, latent grid 4 × 8 × 12 per shot, 16 audio frames, 32 text tokens, 1 reference frame, LTM 2 and
STM 4 frames, 8 reference-audio frames: every shot runs the transformer on (4 + 1 + 2 + 4) × 96 = 1056 video
tokens and 16 + 8 = 24 audio tokens.

Flax: the jitted, donated `make_train_step` (Shots-Forcing loss over all shots, AdamW, clipping; 1-device mesh),
median step time after warm-up. ltx-core: a random `LTXModel` of the same transformer configuration (different
weights: timing only), per-token timesteps (latent frame 0 clean), 11 × 8 × 12 = 1056 video tokens, 24 audio
tokens, 32 text tokens, fp32, 2 threads, forward + backward (and, as an extra column, + AdamW), timed
interleaved with the Flax step. Ratio = (Flax step / shots) / ltx-core fwd+bwd: the per-shot-equivalent cost.

FLOPs: `unityshots_jax.ltx.flops.train_flops` per shot (matmuls, backward = 2 × forward) × shots; MFU against the
measured fp32 matmul peak of this CPU (jitted JAX 2048² @ 2048²). Prints a table and a final JSON line.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time

import numpy as np

import jax
import jax.numpy as jnp
import torch
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # configs/
from configs import sharding_rules  # noqa: E402
from bench_transformer import make_case  # noqa: E402  (ltx-core latent tools → positions, timesteps)

from unityshots_jax.data.random_stories import random_story  # noqa: E402
from unityshots_jax.data.story_batch import pad_story, stack_examples  # noqa: E402
from unityshots_jax.ltx.config import ExecutionConfig, LTXConfig  # noqa: E402
from unityshots_jax.ltx.flops import train_flops  # noqa: E402
from unityshots_jax.sharding import parse_rules  # noqa: E402
from unityshots_jax.ltx.inputs import Perturbations  # noqa: E402
from unityshots_jax.ltx.transformer import forward  # noqa: E402
from unityshots_jax.parity import stream_input  # noqa: E402
from unityshots_jax.reference.ltx_reference import build_random_reference  # noqa: E402
from unityshots_jax.reference.run_reference import to_modality, to_perturbations  # noqa: E402
from unityshots_jax.reference.tiny_configs import tiny_transformer_config  # noqa: E402
from unityshots_jax.sharding import build_mesh  # noqa: E402
from unityshots_jax.story.story_config import StoryConfig  # noqa: E402
from unityshots_jax.story.story_model import build_story_model  # noqa: E402
from unityshots_jax.train.optimizer import OptimizerConfig  # noqa: E402
from unityshots_jax.train.shots_forcing import LossConfig, story_loss, to_device  # noqa: E402
from unityshots_jax.train.train_step import (StepConfig, batch_sharding, init_train_state, make_train_step,  # noqa: E402
                                             model_params, param_logical_axes, state_shardings)

THREADS = 2


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--shots", type=int, default=3)
    p.add_argument("--attention", default="auto")
    p.add_argument("--chunk", type=int, default=128)
    p.add_argument("--remat", default="none")
    args = p.parse_args()
    torch.set_num_threads(THREADS)

    config = tiny_transformer_config(num_layers=2, heads=4, head_dim=32, audio_heads=4, audio_head_dim=16,
                                     in_channels=128, audio_channels=128)
    ltx = LTXConfig.from_checkpoint_config(config)
    story = StoryConfig(max_shots=args.shots, video_frames=4, height=8, width=12, latent_channels=128,
                        audio_frames=16, audio_channels=128, text_tokens=32, ltm_frames=2, stm_frames=4,
                        frame_limit=32, ref_image_frames=1, ref_audio_frames=8)
    vt, at, tt = story.video_tokens, story.audio_tokens, story.text_tokens
    frames_per_shot = story.video_frames + story.ref_image_frames + story.ltm_frames + story.stm_frames
    execution = ExecutionConfig(attention=args.attention, attention_chunk=args.chunk, remat=args.remat,
                                dtype="float32")
    step_cfg = StepConfig(loss=LossConfig(loss_on="all"), optimizer=OptimizerConfig(warmup_steps=0), execution=execution)

    # ---- Flax: the sharded, donated train step on a 1-device mesh (as the trainer builds it)
    mesh = build_mesh(dict(data=1, fsdp=1, context=1, tensor=1), jax.devices()[:1])
    model = build_story_model(ltx, story, nnx.Rngs(0))
    graphdef = nnx.graphdef(model)
    params = jax.jit(lambda: nnx.to_pure_dict(nnx.state(build_story_model(ltx, story, nnx.Rngs(0)), nnx.Param)))()
    n_params = sum(int(x.size) for x in jax.tree.leaves(params))
    state = init_train_state(params, jax.random.key(0), step_cfg)
    rules = parse_rules(sharding_rules.default())
    state_sh = state_shardings(state, param_logical_axes(model), mesh, rules, step_cfg.optimizer)
    state = jax.device_put(state, state_sh)
    rng = np.random.default_rng(0)
    records = [random_story(story, rng, video_context_dim=ltx.video.context_dim, audio_context_dim=ltx.audio.context_dim,
                            k=args.shots) for _ in range(1)]
    batch = to_device(stack_examples([pad_story(r, story) for r in records]))
    batch_sh = batch_sharding(mesh, batch, rules)
    batch = jax.device_put(batch, batch_sh)
    step = make_train_step(graphdef, step_cfg, mesh, state_sh, batch_sh, rules)
    t0 = time.perf_counter()
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    first_call_s = time.perf_counter() - t0
    print(f"flax first call (compile + run) {first_call_s:.1f}s, loss {float(metrics['loss']):.4f}", flush=True)

    holder = {"state": state}

    def flax_step():
        holder["state"], m = step(holder["state"], batch)
        jax.block_until_ready(m)

    # ---- ltx-core: same transformer configuration, one shot's token counts
    reference = build_random_reference(config, seed=0)
    grid = (frames_per_shot, story.height, story.width)
    case = make_case(config, grid, at, tt, seed=1)
    assert case.video.latent.shape[1] == vt and case.audio.latent.shape[1] == at, (case.video.latent.shape, vt)
    tv, ta = to_modality(case.video, "float32", is_video=True), to_modality(case.audio, "float32", is_video=False)
    tpert = to_perturbations(case)
    ctv = torch.from_numpy(rng.standard_normal(case.video.latent.shape).astype(np.float32))
    cta = torch.from_numpy(rng.standard_normal(case.audio.latent.shape).astype(np.float32))
    opt = torch.optim.AdamW(reference.parameters(), lr=1e-5)
    n_params_torch = sum(p.numel() for p in reference.parameters())

    def torch_fwd_bwd():
        for q in reference.parameters():
            q.grad = None
        out_v, out_a = reference(tv, ta, tpert)
        ((out_v * ctv).sum() + (out_a * cta).sum()).backward()

    # ---- Flax transformer alone, one shot (same inputs as ltx-core): splits story overhead from the backbone
    bb_graphdef, bb_params = nnx.split(model.backbone)
    jv, ja = stream_input(case.video, "float32", is_video=True), stream_input(case.audio, "float32", is_video=False)
    jpert = Perturbations.none(ltx.num_layers, 1)
    jct_v, jct_a = jnp.asarray(ctv.numpy()), jnp.asarray(cta.numpy())

    def bb_loss(p, v, a, pt, cv, ca):
        out_v, out_a = forward(bb_graphdef, p, v, a, pt, execution)
        return jnp.sum(out_v * cv) + jnp.sum(out_a * ca)

    bb_grad = jax.jit(jax.grad(bb_loss))

    def flax_backbone():
        jax.block_until_ready(bb_grad(bb_params, jv, ja, jpert, jct_v, jct_a))

    # ---- Flax Shots-Forcing loss and its gradients alone (no clipping, AdamW, EMA, metrics): splits the step's own
    # overhead into the story machinery (memory, gate, loss masking, shot scan) and the optimizer side
    def story_loss_only(trainable, frozen, batch, key):
        return story_loss(nnx.merge(graphdef, model_params(trainable, frozen, step_cfg)), batch, key, step_cfg.loss,
                          execution)

    loss_grad = jax.jit(jax.value_and_grad(story_loss_only, has_aux=True))
    # copies: the step donates (deletes) the state it is given
    trainable0, frozen0 = jax.tree.map(jnp.copy, (holder["state"].trainable, holder["state"].frozen))

    def flax_loss_grad():
        jax.block_until_ready(loss_grad(trainable0, frozen0, batch, jax.random.key(1)))

    def torch_fwd_bwd_adam():
        torch_fwd_bwd()
        opt.step()

    # ---- matmul peak (fp32, jitted JAX) measured in the same run
    n = 2048
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
    mm = jax.jit(lambda x: x @ x)

    def matmul():
        mm(a).block_until_ready()

    for fn in (flax_step, torch_fwd_bwd, torch_fwd_bwd_adam, matmul, flax_backbone, flax_loss_grad, flax_step,
               torch_fwd_bwd, flax_backbone, flax_loss_grad):  # warm-up
        fn()
    times = {"flax": [], "torch": [], "torch_adam": [], "matmul": [], "flax_backbone": [], "flax_loss_grad": []}
    for _ in range(args.repeats):  # interleaved so background load hits both sides alike
        times["flax"].append(timed(flax_step))
        times["torch"].append(timed(torch_fwd_bwd))
        times["torch_adam"].append(timed(torch_fwd_bwd_adam))
        times["matmul"].append(timed(matmul))
        times["flax_backbone"].append(timed(flax_backbone))
        times["flax_loss_grad"].append(timed(flax_loss_grad))
    med = {k: statistics.median(v) for k, v in times.items()}

    flops_shot = train_flops(ltx, vt, at, tt)
    flops_step = flops_shot * args.shots
    peak = 2 * n**3 / med["matmul"]
    tokens_step = args.shots * (vt + at)
    res = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "loadavg": os.getloadavg(),
        "params_M_flax": n_params / 1e6,
        "params_M_torch": n_params_torch / 1e6,
        "shots": args.shots,
        "video_tokens_per_shot": vt,
        "audio_tokens_per_shot": at,
        "text_tokens": tt,
        "execution": f"{args.attention}/{args.chunk}, remat {args.remat}, fp32",
        "repeats": args.repeats,
        "flax_step_ms": 1e3 * med["flax"],
        "flax_step_ms_min": 1e3 * min(times["flax"]),
        "flax_per_shot_ms": 1e3 * med["flax"] / args.shots,
        "torch_fwd_bwd_ms": 1e3 * med["torch"],
        "torch_fwd_bwd_ms_min": 1e3 * min(times["torch"]),
        "torch_fwd_bwd_adamw_ms": 1e3 * med["torch_adam"],
        "flax_backbone_fwd_bwd_ms": 1e3 * med["flax_backbone"],
        "flax_loss_grad_ms": 1e3 * med["flax_loss_grad"],
        "ratio_backbone": med["flax_backbone"] / med["torch"],
        "ratio_per_shot": med["flax"] / args.shots / med["torch"],
        "ratio_per_shot_vs_adamw": med["flax"] / args.shots / med["torch_adam"],
        "ratio_per_shot_min": min(times["flax"]) / args.shots / min(times["torch"]),
        "train_flops_per_shot_G": flops_shot / 1e9,
        "train_flops_step_G": flops_step / 1e9,
        "matmul_peak_gflops": peak / 1e9,
        "flax_gflops": flops_step / med["flax"] / 1e9,
        "torch_gflops": flops_shot / med["torch"] / 1e9,
        "flax_mfu": flops_step / med["flax"] / peak,
        "torch_mfu": flops_shot / med["torch"] / peak,
        "flax_tokens_per_s": tokens_step / med["flax"],
        "torch_tokens_per_s": (vt + at) / med["torch"],
        "flax_first_call_s": first_call_s,
        "final_loss": float(metrics["loss"]),
    }
    print(f"\nShots-Forcing step vs ltx-core fwd+bwd, {res['params_M_flax']:.2f} M params, {args.shots} shots × "
          f"({vt} video + {at} audio + {tt} text tokens), fp32, {THREADS} threads, medians of {args.repeats}, "
          f"load {res['loadavg'][0]:.1f}")
    print(f"{'':<34}{'ms':>9}{'ms/shot':>9}{'tok/s':>9}{'GFLOP/s':>9}{'MFU':>7}{'ratio':>7}")
    print(f"{'flax Shots-Forcing step (+AdamW)':<34}{res['flax_step_ms']:>9.0f}{res['flax_per_shot_ms']:>9.0f}"
          f"{res['flax_tokens_per_s']:>9.0f}{res['flax_gflops']:>9.1f}{res['flax_mfu']:>7.1%}{res['ratio_per_shot']:>7.2f}")
    print(f"{'ltx-core fwd+bwd, one shot':<34}{res['torch_fwd_bwd_ms']:>9.0f}{res['torch_fwd_bwd_ms']:>9.0f}"
          f"{res['torch_tokens_per_s']:>9.0f}{res['torch_gflops']:>9.1f}{res['torch_mfu']:>7.1%}{1.0:>7.2f}")
    print(f"{'flax transformer fwd+bwd, one shot':<34}{res['flax_backbone_fwd_bwd_ms']:>9.0f}"
          f"{res['flax_backbone_fwd_bwd_ms']:>9.0f}{(vt + at) / med['flax_backbone']:>9.0f}"
          f"{flops_shot / med['flax_backbone'] / 1e9:>9.1f}{flops_shot / med['flax_backbone'] / peak:>7.1%}"
          f"{res['ratio_backbone']:>7.2f}")
    print(f"{'flax story loss + grads (no optim.)':<34}{res['flax_loss_grad_ms']:>9.0f}"
          f"{res['flax_loss_grad_ms'] / args.shots:>9.0f}{'':>25}{res['flax_loss_grad_ms'] / args.shots / res['torch_fwd_bwd_ms']:>14.2f}")
    print(f"{'ltx-core fwd+bwd+AdamW, one shot':<34}{res['torch_fwd_bwd_adamw_ms']:>9.0f}")
    print(f"train FLOPs {res['train_flops_per_shot_G']:.2f} G/shot, {res['train_flops_step_G']:.2f} G/step; matmul peak "
          f"{res['matmul_peak_gflops']:.0f} GFLOP/s; min-of-runs ratio {res['ratio_per_shot_min']:.2f}")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
