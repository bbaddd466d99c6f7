"""Sampling plan for a 5-shot 1376×768 story on the LTX-2.3 22B story model, without allocating any weight.

    python experiments/plan_sampling_22b.py                 # the default candidates, one subprocess each
    python experiments/plan_sampling_22b.py --only 64 --steps 8

For every candidate (forced CPU device count, mesh (data, fsdp, context, tensor), rules preset) a fresh subprocess
sets `XLA_FLAGS=--xla_force_host_platform_device_count=N` before importing jax, builds the abstract story model
(`configs/ltx23_22b.py` transformer; the story geometry of `configs/ltx23_22b_train_common.py`: 16 × 24 × 43 latent
frames per shot + 1 reference + 2 LTM + 4 STM frames = 23,736 video tokens, 126 + 128 audio tokens, 1024 text
tokens), bfloat16 weights sharded by their logical axes, and lowers + compiles `generate_story` (the whole sampler:
the scan over shots, the scan over steps, guidance passes stacked on the batch axis) for that mesh. Reported per
device: weight bytes from the shard shapes and XLA's `memory_analysis()` of the compiled sampler (argument, output,
temp); FLOPs per denoising step from `ltx/flops.forward_flops` × guidance passes; the FLOP-limited time of the story
on one H200 and on 8 × H100 (bf16 dense peak 989 TFLOP/s each) at 100 % and at `--mfu`.

With LTX-2.3's default guidance (`ltx/sampling.py` LTX23_VIDEO / LTX23_AUDIO: CFG, STG on block 28, modality
isolation) every step runs 4 passes (cond,
uncond, perturbed, isolated); the `data` axis of a mesh splits those passes, `context` splits each pass's tokens,
and the weights are sharded over (fsdp, context) by the `fsdp_context` preset, so no device holds all 44 GB of them.

Caveats: XLA:CPU upcasts bf16 dots to f32 and fuses differently from XLA:GPU, so the temp figure is an upper
bound, not a GPU number (as in plan_22b.py); the FLOP count is the matmuls of the transformer (VAEs, vocoder and the
text encoder are outside the step loop and not counted).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench_story import t2v_story
from plan_22b import compile_and_measure, spawn_worker

GiB = 1024**3
PEAK_TFLOPS = 989.0  # H100 / H200 SXM, bf16 dense
CANDIDATES = [
    # (name, mesh, rules)
    ("1 device (one H200)", {"data": 1, "fsdp": 1, "context": 1, "tensor": 1}, "default"),
    ("8 devices: passes 4 × context 2", {"data": 4, "fsdp": 1, "context": 2, "tensor": 1}, "fsdp_context"),
    ("8 devices: fsdp 2 × context 4", {"data": 1, "fsdp": 2, "context": 4, "tensor": 1}, "fsdp_context"),
    ("64 devices: passes 4 × fsdp 2 × context 8", {"data": 4, "fsdp": 2, "context": 8, "tensor": 1}, "fsdp_context"),
]


def worker(args) -> dict:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={args.devices}").strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    import jax.numpy as jnp
    from flax import nnx
    from jax.sharding import NamedSharding

    sys.path.insert(0, ROOT)
    from configs import ltx23_22b, sharding_rules
    from unityshots_jax.config_files import model_config
    from unityshots_jax.ltx.config import ExecutionConfig
    from unityshots_jax.ltx.flops import forward_flops
    from unityshots_jax.ltx.sampler import SamplerConfig
    from unityshots_jax.ltx.sampling import LTX23_AUDIO, LTX23_VIDEO
    from unityshots_jax.sharding import build_mesh, logical_to_spec, parse_rules
    from unityshots_jax.story.shot_scan import SamplingConfig, generate_story
    from unityshots_jax.story.story_config import StoryConfig
    from unityshots_jax.story.story_model import abstract_story_model
    from unityshots_jax.train.train_step import param_logical_axes

    t_start = time.perf_counter()
    mesh_shape = json.loads(args.mesh)
    rules = parse_rules(getattr(sharding_rules, args.rules)())
    cfg = ltx23_22b.get_config()
    cfg.transformer["num_layers"] = args.layers
    ltx = model_config(cfg)
    k = args.shots
    story = StoryConfig(max_shots=k, video_frames=16, height=24, width=43, latent_channels=128, audio_frames=126,
                        audio_channels=128, text_tokens=1024, ltm_frames=2, stm_frames=4, frame_limit=128,
                        ref_image_frames=1, ref_audio_frames=128, fps=24.0)
    mesh = build_mesh(mesh_shape)
    model = abstract_story_model(ltx, story)
    graphdef, state = nnx.split(model)
    logical = param_logical_axes(model)

    def abstract_param(x, names):
        dtype = jnp.bfloat16 if jnp.issubdtype(x.dtype, jnp.floating) else x.dtype
        return jax.ShapeDtypeStruct(x.shape, dtype, sharding=NamedSharding(mesh, logical_to_spec(names, rules)))

    pure = nnx.to_pure_dict(state)
    params = jax.tree.map(abstract_param, pure, logical, is_leaf=lambda x: isinstance(x, jax.ShapeDtypeStruct))
    n_params = sum(int(x.size) for x in jax.tree.leaves(params))
    weight_bytes = sum(2 * math.prod(x.sharding.shard_shape(x.shape)) for x in jax.tree.leaves(params))

    inputs = t2v_story(story, k, video_dim=ltx.video.context_dim, audio_dim=ltx.audio.context_dim)
    # STG on block 28 of 48; a shallower plan (--layers, for trying the script) perturbs its last block instead
    stg = lambda g: dataclasses.replace(g, stg_blocks=tuple(min(b, args.layers - 1) for b in g.stg_blocks))
    sampling = SamplingConfig(SamplerConfig(steps=args.steps), video=stg(LTX23_VIDEO), audio=stg(LTX23_AUDIO))
    execution = ExecutionConfig(attention=args.attention, attention_chunk=args.chunk, dtype="bfloat16")
    passes = 4
    video_tokens, audio_tokens = story.video_tokens, story.audio_tokens
    step_flops = forward_flops(ltx, video_tokens, audio_tokens, story.text_tokens, batch=passes)
    out = {
        "mesh": mesh_shape, "rules": args.rules, "devices": args.devices, "layers": args.layers, "shots": k,
        "steps": args.steps, "params_B": n_params / 1e9, "weight_bytes": weight_bytes,
        "video_tokens": video_tokens, "audio_tokens": audio_tokens, "text_tokens": story.text_tokens,
        "passes": passes, "step_flops": step_flops, "story_flops": step_flops * args.steps * k,
    }
    out.update(compile_and_measure(
        lambda: generate_story.lower(graphdef, params, inputs, jax.random.key(0), sampling, execution), mesh, rules))
    out["total_s"] = time.perf_counter() - t_start
    return out


def run_worker(name: str, mesh: dict, rules: str, args) -> dict:
    devices = math.prod(mesh.values())
    cmd = ["nice", "-n", "10", sys.executable, __file__, "--worker", "--devices", str(devices), "--mesh",
           json.dumps(mesh), "--rules", rules, "--layers", str(args.layers), "--shots", str(args.shots),
           "--steps", str(args.steps), "--attention", args.attention, "--chunk", str(args.chunk)]
    row = {"name": name, **spawn_worker(cmd, args.timeout)}
    if "error" in row:
        row["mesh"] = mesh
    return row


def print_table(rows: list[dict], mfu: float) -> None:
    print("| candidate | mesh d/f/c/t | weights / device | argument | temp (XLA:CPU) | peak | compile |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['name']} | error: {r['error'][-300:]!r} |")
            continue
        m = r["mesh"]
        g = lambda b: f"{b / GiB:.1f} GiB"
        print(f"| {r['name']} | {m['data']}/{m['fsdp']}/{m['context']}/{m['tensor']} | {g(r['weight_bytes'])} | "
              f"{g(r['argument_bytes'])} | {g(r['temp_bytes'])} | {g(r['peak_bytes'])} | {r['compile_s']:.0f} s |")
    ok = [r for r in rows if "error" not in r]
    if ok:
        r = ok[0]
        per_step, story = r["step_flops"], r["story_flops"]
        print(f"\nFLOPs: {per_step / 1e15:.3f} PFLOP per denoising step ({r['passes']} guidance passes × "
              f"{r['video_tokens']} video + {r['audio_tokens']} audio tokens, {r['layers']} layers), "
              f"{story / 1e15:.1f} PFLOP per {r['shots']}-shot story at {r['steps']} steps")
        for chips, label in ((1, "1 × H200"), (8, "8 × H100")):
            t = story / (chips * PEAK_TFLOPS * 1e12)
            print(f"FLOP-limited story time on {label}: {t:.0f} s at 100 % MFU, {t / mfu:.0f} s at {mfu:.0%} MFU "
                  f"({t / mfu / r['shots']:.0f} s per shot)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--devices", type=int, default=8, help=argparse.SUPPRESS)
    p.add_argument("--mesh", default="{}", help=argparse.SUPPRESS)
    p.add_argument("--rules", default="fsdp_context", help=argparse.SUPPRESS)
    p.add_argument("--only", default="", help="candidates whose name contains this")
    p.add_argument("--layers", type=int, default=48)
    p.add_argument("--shots", type=int, default=5)
    p.add_argument("--steps", type=int, default=30, help="denoising steps per shot (8: the distilled schedule)")
    p.add_argument("--attention", default="flash")
    p.add_argument("--chunk", type=int, default=512)
    p.add_argument("--mfu", type=float, default=0.4, help="assumed MFU for the time estimate")
    p.add_argument("--timeout", type=int, default=1800)
    p.add_argument("--out", default="", help="append each candidate's JSON row to this file")
    args = p.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return
    rows = []
    for name, mesh, rules in CANDIDATES:
        if args.only not in name:
            continue
        row = run_worker(name, mesh, rules, args)
        print(json.dumps(row), flush=True)
        rows.append(row)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
    print_table(rows, args.mfu)


if __name__ == "__main__":
    main()
