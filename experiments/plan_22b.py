"""Memory plan for Shots-Forcing training of the real LTX-2.3 22B story model, without allocating any weight.

    python experiments/plan_22b.py                      # the default candidate list, one subprocess each
    python experiments/plan_22b.py --only 8xH200        # candidates whose name contains this
    python experiments/plan_22b.py --shots 3 --layers 48 --remat full,dots,none

For every candidate (target chip, device count, mesh split (data, fsdp, context, tensor), remat policy) a fresh
subprocess sets `XLA_FLAGS=--xla_force_host_platform_device_count=N` before importing jax, builds the abstract
story model (`abstract_story_model`: `configs/ltx23_22b.py` transformer, StoryConfig 1376×768 → 16×24×43 latent
grid + 1 reference frame + 2 LTM + 4 STM frames = 23,736 video tokens, 126 + 128 audio tokens, 1024 text tokens),
the abstract `TrainState` (`jax.eval_shape(init_train_state)`: fp32 master weights, AdamW mu/nu fp32), its
shardings (`state_shardings` from the parameters' logical axes), a `TrainBatch` of `ShapeDtypeStruct`s sharded
by `batch_sharding` (global batch = data × fsdp, one story per data-parallel group), and compiles the jitted,
donated `train_step` (bf16 compute) for the forced CPU mesh. Reported per device: parameter / optimizer bytes
from the shard shapes, and XLA's `memory_analysis()` (argument, output, alias, temp) of the compiled step.
peak ≈ argument + output − alias + temp.

Caveats: XLA:CPU's buffer assignment and fusion are not those of XLA:GPU / XLA:TPU (the CPU compiler may upcast
bf16 ops to f32, inflating temps); attention is the pure-JAX `flash` kernel (keeps only output + log-sum-exp for
the backward, like cuDNN / splash), so attention scores are never stored.

Recipe (RESULTS.md, "22B recipe"): one compile per (target, k), one at a time, under `nice`:
    python experiments/plan_22b.py --only "v5p-64 fsdp8 ctx4" --remat full --shots 3 --out recipe.jsonl
    python experiments/plan_22b.py --table recipe.jsonl       # markdown rows, with the step time at --mfu
v5p-N counts TensorCores: v5p-64 is 32 chips (JAX devices), v5p-128 is 64.

Rules: `--rules default` is `configs/sharding_rules.default()` (weights FSDP-sharded over `fsdp` only);
`--rules fsdp_context` shards the weights' embed dim over (fsdp, context) as maxdiffusion does
(`embed → [context, fsdp]`), so a context-parallel group does not replicate the weights.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GiB = 1024**3

# target: (HBM per chip in GiB, chips, bf16 dense peak TFLOP/s). A v5p-N slice has N TensorCores = N/2 chips (one
# JAX device per chip, megacore): v5p-64 is 32 chips on 8 hosts, v5p-128 is 64 chips on 16 hosts (one cube).
TARGETS = {
    "v5p-64": (95e9 / GiB, 32, 459.0),
    "v5p-128": (95e9 / GiB, 64, 459.0),
    "8xH200": (141e9 / GiB, 8, 989.0),
    "64xH100": (80e9 / GiB, 64, 989.0),
}
CANDIDATES = [
    # (name, target, mesh dict, rules)
    ("8xH200 fsdp8", "8xH200", dict(data=1, fsdp=8, context=1, tensor=1), "default"),
    ("8xH200 fsdp4 ctx2", "8xH200", dict(data=1, fsdp=4, context=2, tensor=1), "fsdp_context"),
    ("64xH100 fsdp64", "64xH100", dict(data=1, fsdp=64, context=1, tensor=1), "default"),
    ("64xH100 dp2 fsdp32", "64xH100", dict(data=2, fsdp=32, context=1, tensor=1), "default"),
    ("64xH100 fsdp16 ctx4", "64xH100", dict(data=1, fsdp=16, context=4, tensor=1), "fsdp_context"),
    # weights inside a node (fsdp 2 x context 4 over NVLink), data across the 8 nodes: InfiniBand carries only the
    # per-step gradient all-reduce, not per-layer weight gathers
    ("64xH100 dp8 fsdp2 ctx4", "64xH100", dict(data=8, fsdp=2, context=4, tensor=1), "fsdp_context"),
    ("v5p-64 fsdp32", "v5p-64", dict(data=1, fsdp=32, context=1, tensor=1), "default"),
    ("v5p-64 fsdp8 ctx4", "v5p-64", dict(data=1, fsdp=8, context=4, tensor=1), "fsdp_context"),
    ("v5p-128 fsdp64", "v5p-128", dict(data=1, fsdp=64, context=1, tensor=1), "default"),
    ("v5p-128 fsdp16 ctx4", "v5p-128", dict(data=1, fsdp=16, context=4, tensor=1), "fsdp_context"),
]


# ------------------------------------------------------------------------------------------------------- worker
def worker(args) -> dict:
    if args.platform == "cpu":
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={args.devices}").strip()
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    import jax.numpy as jnp
    from flax import nnx
    from jax.sharding import NamedSharding, PartitionSpec

    sys.path.insert(0, ROOT)
    try:
        import ml_collections  # noqa: F401
    except ImportError:  # device images without ml_collections: a dict with attribute access is enough here
        import types

        class _ConfigDict(dict):
            __getattr__, __setattr__ = dict.__getitem__, dict.__setitem__

        sys.modules["ml_collections"] = types.SimpleNamespace(ConfigDict=_ConfigDict)
    from configs import ltx23_22b
    from unityshots_jax.config_files import model_config
    from unityshots_jax.ltx.config import ExecutionConfig
    from configs import sharding_rules
    from unityshots_jax.ltx.flops import train_flops
    from unityshots_jax.sharding import build_mesh, parse_rules
    from unityshots_jax.story.story_config import StoryConfig
    from unityshots_jax.story.story_model import abstract_story_model
    from unityshots_jax.train.optimizer import OptimizerConfig
    from unityshots_jax.train.shots_forcing import LossConfig, TrainBatch
    from unityshots_jax.train.train_step import (StepConfig, batch_sharding, init_train_state, param_logical_axes,
                                                 state_shardings, train_step)

    t_start = time.perf_counter()
    mesh_shape = json.loads(args.mesh)
    rules = parse_rules(getattr(sharding_rules, args.rules)())  # the presets the configs use
    cfg = ltx23_22b.get_config()
    cfg.transformer["num_layers"] = args.layers
    ltx = model_config(cfg)
    story = StoryConfig(max_shots=args.shots, video_frames=16, height=24, width=43, audio_frames=126,
                        text_tokens=args.text_tokens)
    execution = ExecutionConfig(attention=args.attention, attention_chunk=args.chunk, remat=args.remat,
                                dtype="bfloat16")
    step_cfg = StepConfig(loss=LossConfig(loss_on="all", remat_shots=args.remat_shots), optimizer=OptimizerConfig(), execution=execution)
    mesh = build_mesh(mesh_shape)
    batch = mesh_shape["data"] * mesh_shape["fsdp"]

    model = abstract_story_model(ltx, story)
    graphdef, abstract_state = nnx.split(model)
    params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
    params = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, jnp.float32), params)
    n_params = sum(int(x.size) for x in jax.tree.leaves(params))
    state_shape = jax.eval_shape(lambda p: init_train_state(p, jax.random.key(0), step_cfg), params)
    state_sh = state_shardings(state_shape, param_logical_axes(model), mesh, rules, step_cfg.optimizer)

    K, F, H, W, C = story.max_shots, story.video_frames, story.height, story.width, story.latent_channels
    S, Fa, Ca, Fr = story.text_tokens, story.audio_frames, story.audio_channels, story.ref_audio_frames
    f32, i32, bf = jnp.float32, jnp.int32, jnp.bool_
    batch_shape = TrainBatch(
        video_latents=jax.ShapeDtypeStruct((batch, K, F, H, W, C), f32),
        n_frames=jax.ShapeDtypeStruct((batch, K), i32),
        audio_latents=jax.ShapeDtypeStruct((batch, K, Fa, Ca), f32),
        n_audio=jax.ShapeDtypeStruct((batch, K), i32),
        video_context=jax.ShapeDtypeStruct((batch, K, S, ltx.video.context_dim), f32),
        audio_context=jax.ShapeDtypeStruct((batch, K, S, ltx.audio.context_dim), f32),
        context_mask=jax.ShapeDtypeStruct((batch, K, S), i32),
        cut_strength=jax.ShapeDtypeStruct((batch, K), f32),
        boundary=jax.ShapeDtypeStruct((batch, K), f32),
        allowed_modes=jax.ShapeDtypeStruct((batch, K, 3), bf),
        shot_valid=jax.ShapeDtypeStruct((batch, K), bf),
        ref_image=jax.ShapeDtypeStruct((batch, story.ref_image_frames, H, W, C), f32),
        has_ref_image=jax.ShapeDtypeStruct((batch,), bf),
        ref_audio=jax.ShapeDtypeStruct((batch, Fr, Ca), f32),
        ref_audio_mask=jax.ShapeDtypeStruct((batch, Fr), f32),
    )
    batch_sh = batch_sharding(mesh, batch_shape, rules)
    with_sh = lambda tree, sh: jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, sh)  # noqa: E731
    state_in, batch_in = with_sh(state_shape, state_sh), with_sh(batch_shape, batch_sh)

    def per_device(tree, sh) -> int:
        return sum(int(jnp.dtype(x.dtype).itemsize) * math.prod(s.shard_shape(x.shape))
                   for x, s in zip(jax.tree.leaves(tree), jax.tree.leaves(sh)))

    out = {
        "layers": args.layers, "shots": args.shots, "remat": args.remat, "remat_shots": args.remat_shots, "mesh": mesh_shape, "rules": args.rules,
        "devices": args.devices, "platform": str(jax.devices()[0].platform), "global_batch": batch, "attention": f"{args.attention}/{args.chunk}",
        "params_B": n_params / 1e9, "video_tokens_per_shot": story.video_tokens,
        "audio_tokens_per_shot": story.audio_tokens, "text_tokens": story.text_tokens,
        "param_bytes": per_device(state_shape.trainable, state_sh.trainable),
        "opt_bytes": per_device(state_shape.opt_state, state_sh.opt_state),
        "batch_bytes": per_device(batch_shape, batch_sh),
        # model FLOPs of one story shot (forward + backward = 3 x forward, ltx/flops.py); the step trains
        # global_batch stories of `shots` shots each
        "train_flops_per_shot": train_flops(ltx, story.video_tokens, story.audio_tokens, story.text_tokens),
    }
    replicated = NamedSharding(mesh, PartitionSpec())
    jitted = jax.jit(lambda s, b: train_step(s, b, graphdef, step_cfg), in_shardings=(state_sh, batch_sh),
                     out_shardings=(state_sh, replicated), donate_argnums=(0,))
    out.update(compile_and_measure(lambda: jitted.lower(state_in, batch_in), mesh, rules))
    out["total_s"] = time.perf_counter() - t_start
    return out


def compile_and_measure(lower, mesh, rules) -> dict:
    """`lower()` and compile under `mesh`: their times, XLA's `memory_analysis()` of the compiled program per
    device in bytes (peak ≈ argument + output − alias + temp), and this process's peak RSS."""
    from unityshots_jax.sharding import use_mesh

    out = {}
    with use_mesh(mesh, rules):
        t0 = time.perf_counter()
        lowered = lower()
        out["lower_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        compiled = lowered.compile()
        out["compile_s"] = time.perf_counter() - t0
    ma = compiled.memory_analysis()
    for f in ("argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes", "temp_size_in_bytes",
              "generated_code_size_in_bytes"):
        out[f.replace("_size_in_bytes", "_bytes")] = int(getattr(ma, f, 0) or 0)
    out["peak_bytes"] = out["argument_bytes"] + out["output_bytes"] - out["alias_bytes"] + out["temp_bytes"]
    out["maxrss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return out


# ------------------------------------------------------------------------------------------------------- driver
def run_worker(mesh: dict, rules: str, remat: str, args) -> dict:
    devices = mesh["data"] * mesh["fsdp"] * mesh["context"] * mesh["tensor"]
    cmd = ["nice", "-n", "10", sys.executable, __file__, "--worker", "--devices", str(devices), "--mesh", json.dumps(mesh),
           "--rules", rules, "--remat", remat, "--layers", str(args.layers), "--shots", str(args.shots),
           "--attention", args.attention, "--chunk", str(args.chunk), "--text-tokens", str(args.text_tokens),
           "--platform", args.platform] + (["--remat-shots"] if args.remat_shots else [])
    row = spawn_worker(cmd, args.timeout)
    if "error" in row:
        row.update(mesh=mesh, remat=remat, rules=rules)
    return row


def spawn_worker(cmd: list[str], timeout: float) -> dict:
    """Run a `--worker` command line (repository on PYTHONPATH): its `RESULT {json}` row, or {"error": the tail of its
    output}."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {"error": (proc.stderr or proc.stdout)[-1500:]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", action="store_true")
    p.add_argument("--devices", type=int, default=8)
    p.add_argument("--mesh", default='{"data": 1, "fsdp": 8, "context": 1, "tensor": 1}')
    p.add_argument("--rules", default="default", choices=("default", "fsdp_context"))
    p.add_argument("--mfu", type=float, default=0.40, help="assumed model-FLOPs utilisation for the step time")
    p.add_argument("--remat", default="full,dots,none")
    p.add_argument("--layers", type=int, default=48)
    p.add_argument("--remat-shots", action="store_true", help="loss.remat_shots: recompute each shot in the backward")
    p.add_argument("--shots", type=int, default=3)
    p.add_argument("--text-tokens", type=int, default=1024)
    p.add_argument("--attention", default="flash")
    p.add_argument("--chunk", type=int, default=512)
    p.add_argument("--platform", default="cpu", help="cpu: forced host devices; gpu/cuda: the real device(s)")
    p.add_argument("--single", default="", help="driver: single-device compiles instead of the mesh list, e.g. "
                   "'full:1,full:3,dots:3' (remat:shots), batch 1; on a GPU this gives XLA:GPU's activation bytes")
    p.add_argument("--analytic", action="store_true", help="print the analytic per-device estimate and exit")
    p.add_argument("--only", default="", help="run only candidates whose name contains this")
    p.add_argument("--headroom", type=float, default=0.85, help="usable fraction of device memory")
    p.add_argument("--timeout", type=int, default=1800)
    p.add_argument("--out", default="", help="append each result as a JSON line to this file")
    p.add_argument("--table", default="", help="print the markdown recipe table of a --out file and exit")
    args = p.parse_args()
    if args.table:
        recipe_table(args.table)
        return
    if args.worker:
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return
    if args.analytic:
        analytic(args)
        return

    rows = []
    if args.single:
        one = dict(data=1, fsdp=1, context=1, tensor=1)
        for item in args.single.split(","):
            remat, shots = item.split(":")
            args.shots = int(shots)
            t0 = time.perf_counter()
            r = run_worker(one, "default", remat, args)
            r.update(name=f"single {remat} {shots} shots", wall_s=time.perf_counter() - t0)
            rows.append(r)
            print(json.dumps(r), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(r) + "\n")
        return
    for name, target, mesh, rules in CANDIDATES:
        if args.only and args.only not in name:
            continue
        for remat in args.remat.split(","):
            t0 = time.perf_counter()
            r = run_worker(mesh, rules, remat, args)
            r.update(name=name, target=target, wall_s=time.perf_counter() - t0)
            if "peak_bytes" in r:
                hbm, chips, peak = TARGETS[target]
                r["hbm_gib"] = hbm
                r["fits"] = r["peak_bytes"] / GiB <= args.headroom * hbm
                r.update(step_estimate(r, chips, peak, args.mfu))
            rows.append(r)
            print(json.dumps(r), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(r) + "\n")
    print_table(rows, args)


def step_estimate(r: dict, chips: int, peak_tflops: float, mfu: float) -> dict:
    """Model FLOPs of one step (global batch x shots x 3 x forward) and its time on `chips` at `mfu` of peak.
    Remat "full" adds one forward (hardware FLOPs 4/3 of model FLOPs) and `remat_shots` one more; MFU counts model
    FLOPs only, so recomputation shows up as a lower MFU, not as more FLOPs."""
    model = r["global_batch"] * r["shots"] * r["train_flops_per_shot"]
    per_chip = model / chips
    seconds = per_chip / (peak_tflops * 1e12 * mfu)
    return {"step_pflop": model / 1e15, "mfu": mfu, "step_s": seconds, "stories_per_s": r["global_batch"] / seconds}


def analytic(args) -> None:
    """Per-device estimate for real accelerators: static state by FSDP degree + bf16 activations per story.

    static = 18 B/parameter (fp32 master 4 + AdamW mu/nu 8 + fp32 gradient 4 + bf16 compute copy 2) / shards;
    residuals per shot and story (remat "full"): the block carry (video T×Dv + audio Ta×Da, bf16) for every layer
    + the per-token modulation tables kept outside the layer scan ([T, (9+4+1+1)·Dv] bf16) + ~1 GB of inputs;
    working set of one block's recomputed forward + backward ≈ 10 GB (from the XLA:GPU buffer report at 23.7k
    tokens, without the materialised attention bias). Context parallelism c divides activations by c.
    """
    n_params, layers, t, ta, dv, da = 18.988891697e9, 48, 23736, 254, 4096, 2048
    carry = (t * dv + ta * da) * 2 * layers
    tables = t * 15 * dv * 2
    per_shot = carry + tables + 1e9
    work = 10e9
    print(f"analytic: per shot and story {per_shot / 1e9:.1f} GB (carries {carry / 1e9:.1f}, tables "
          f"{tables / 1e9:.1f}); working set {work / 1e9:.0f} GB; static 18 B/param = {18 * n_params / 1e9:.0f} GB total")
    print("target | HBM GB | mesh d/f/c/t | weight shards | static GB | act. GB (3 shots) | total GB | use | max shots @85% "
          "| total GB, 9 shots + per-shot remat")
    for name, target, mesh, rules in CANDIDATES:
        hbm = TARGETS[target][0] * GiB  # bytes
        shards = mesh["fsdp"] * (mesh["context"] if rules == "fsdp_context" else 1) * mesh["tensor"]
        static = 18 * n_params / shards
        c = mesh["context"] * mesh["tensor"]
        act = (3 * per_shot + work) / c
        max_shots = int((0.85 * hbm - static - work / c) / (per_shot / c))
        remat9 = static + (per_shot + work) / c + 9 * 0.2e9  # per-shot remat: one shot's residuals + story carries
        print(f"{name} | {hbm / 1e9:.0f} | {'/'.join(str(mesh[a]) for a in ('data', 'fsdp', 'context', 'tensor'))} | {shards} | "
              f"{static / 1e9:.1f} | {act / 1e9:.1f} | {(static + act) / 1e9:.1f} | {(static + act) / hbm:.0%} | "
              f"{max_shots} | {remat9 / 1e9:.1f}")


def recipe_table(path: str) -> None:
    """Markdown rows of the compiled candidates in `path` (JSON lines written by --out)."""
    print("| target | mesh d/f/c/t | rules | batch | shots | remat | params+AdamW | argument | temp | peak | HBM | "
          "use | step PFLOP | step @ MFU | stories/s | compile |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    for r in rows:
        if "peak_bytes" not in r:
            continue
        m, g = r["mesh"], (lambda b: f"{b / GiB:.1f}")  # noqa: E731
        remat = r["remat"] + (" + shots" if r.get("remat_shots") else "")
        print(f"| {r['target']} | {'/'.join(str(m[a]) for a in ('data', 'fsdp', 'context', 'tensor'))} | {r['rules']} | "
              f"{r['global_batch']} | {r['shots']} | {remat} | {g(r['param_bytes'] + r['opt_bytes'])} | "
              f"{g(r['argument_bytes'])} | {g(r['temp_bytes'])} | **{g(r['peak_bytes'])}** | {r['hbm_gib']:.1f} | "
              f"{r['peak_bytes'] / GiB / r['hbm_gib']:.0%} | {r['step_pflop']:.1f} | {r['step_s']:.1f} s @ "
              f"{r['mfu']:.0%} | {r['stories_per_s']:.2f} | {r['compile_s']:.0f} s |")


def print_table(rows, args) -> None:
    g = lambda b: f"{b / GiB:.1f}"  # noqa: E731
    print(f"\nLTX-2.3 22B story model, {args.shots} shots, {args.layers} layers, bf16 compute, fp32 master + AdamW; "
          f"per-device GiB; fits = peak ≤ {args.headroom:.0%} of HBM")
    head = ["candidate", "mesh d/f/c/t", "rules", "batch", "remat", "params", "opt", "argument", "output", "alias",
            "temp", "peak", "HBM", "fits", "compile s"]
    print(" | ".join(head))
    for r in rows:
        m = r.get("mesh", {})
        ms = "/".join(str(m.get(a, "?")) for a in ("data", "fsdp", "context", "tensor"))
        if "error" in r:
            print(f"{r['name']} | {ms} | {r['rules']} | - | {r['remat']} | error: {r['error'].splitlines()[-1][:120]}")
            continue
        print(" | ".join([r["name"], ms, r["rules"], str(r["global_batch"]), r["remat"], g(r["param_bytes"]),
                          g(r["opt_bytes"]), g(r["argument_bytes"]), g(r["output_bytes"]), g(r["alias_bytes"]),
                          g(r["temp_bytes"]), g(r["peak_bytes"]), f"{r['hbm_gib']:.0f}", "yes" if r["fits"] else "no",
                          f"{r['compile_s']:.0f}"]))


if __name__ == "__main__":
    main()
