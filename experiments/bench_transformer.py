"""CPU benchmark: Flax LTX transformer vs ltx-core (PyTorch) on the same weights, in one process.

    python experiments/bench_transformer.py [--repeats N] [--quick] [--attention flash,chunked] [--attention-sweep]

Mid-size model (4 layers, video 8x64, audio 8x32, 128 channels, 1536 video / 126 audio / 128 text tokens, split
RoPE, gated attention, prompt AdaLN, caption projection outside, fp32, per-token timesteps with latent frame 0 at
timestep 0, batch 1). Prints a table and a final JSON line. Needs the `reference` extra (torch, ltx-core).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import tempfile
import time

import numpy as np

import jax
import jax.extend
import jax.numpy as jnp
import torch
from flax import nnx

from unityshots_jax.checkpoint.ltx_convert import convert
from unityshots_jax.ltx.attention_kernels import attention_kernel
from unityshots_jax.ltx.config import ExecutionConfig, LTXConfig
from unityshots_jax.ltx.inputs import Perturbations
from unityshots_jax.ltx.transformer import abstract_model, forward
from unityshots_jax.parity import load_flax, stream_input
from unityshots_jax.reference.ltx_reference import build_random_reference, save_official_checkpoint
from unityshots_jax.reference.run_reference import to_modality, to_perturbations
from unityshots_jax.reference.tiny_configs import tiny_transformer_config
from unityshots_jax.reference.verify_cases import StreamInputs, VerifyCase, audio_latent_layout

THREADS = 2
_JAXPR_TYPES = (jax.extend.core.Jaxpr, jax.extend.core.ClosedJaxpr)


def median_ms(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def make_case(config: dict, grid: tuple[int, int, int], audio_frames: int, text: int, seed: int) -> VerifyCase:
    """Batch-1 inputs built with ltx-core's latent tools (positions as the pipelines make them, 24 fps)."""
    from ltx_core.components.patchifiers import AudioPatchifier, VideoLatentPatchifier
    from ltx_core.tools import AudioLatentTools, VideoLatentTools
    from ltx_core.types import AudioLatentShape, VideoLatentShape

    rng = np.random.default_rng(seed)
    f, h, w = grid
    vshape = VideoLatentShape(batch=1, channels=config["in_channels"], frames=f, height=h, width=w)
    vtools = VideoLatentTools(patchifier=VideoLatentPatchifier(patch_size=1), target_shape=vshape, fps=24.0)
    vlat = torch.from_numpy(rng.standard_normal(tuple(vshape.to_torch_shape())).astype(np.float32))
    vstate = vtools.create_initial_state(torch.device("cpu"), torch.float32, vlat)
    channels, mel = audio_latent_layout(config["audio_in_channels"])
    ashape = AudioLatentShape(batch=1, channels=channels, frames=audio_frames, mel_bins=mel)
    atools = AudioLatentTools(patchifier=AudioPatchifier(patch_size=1), target_shape=ashape)
    alat = torch.from_numpy(rng.standard_normal(tuple(ashape.to_torch_shape())).astype(np.float32))
    astate = atools.create_initial_state(torch.device("cpu"), torch.float32, alat)
    first = torch.ones(tuple(vshape.mask_shape().to_torch_shape()))
    first[:, :, 0] = 0.0  # I2V: latent frame 0 is clean (timestep 0)
    vmask = vtools.patchifier.patchify(first)[..., 0].numpy()
    sigma = np.array([0.7], np.float32)
    vdim = config["num_attention_heads"] * config["attention_head_dim"]
    adim = config["audio_num_attention_heads"] * config["audio_attention_head_dim"]

    def stream(state, mask, dim):
        return StreamInputs(latent=state.latent.numpy(), sigma=sigma, timesteps=(sigma[:, None] * mask).astype(np.float32),
                            positions=state.positions.float().numpy(),
                            context=rng.standard_normal((1, text, dim)).astype(np.float32), context_mask=None)

    amask = astate.denoise_mask[..., 0].numpy()
    return VerifyCase("bench", stream(vstate, vmask, vdim), stream(astate, amask, adim), ((),))


def jaxpr_matmul_flops(jaxpr) -> float:
    """2·M·N·K summed over every dot_general, loop bodies multiplied by their trip count."""
    total = 0.0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            (lc, _), (lb, _) = eqn.params["dimension_numbers"]
            lhs, out = eqn.invars[0].aval.shape, eqn.outvars[0].aval.shape
            total += 2.0 * float(np.prod(out)) * float(np.prod([lhs[i] for i in lc]))
            continue
        mult = float(eqn.params.get("length", 1)) if eqn.primitive.name == "scan" else 1.0
        subs = [v for v in eqn.params.values() if isinstance(v, _JAXPR_TYPES)]
        subs += [b for v in eqn.params.values() if isinstance(v, tuple) for b in v
                 if isinstance(b, _JAXPR_TYPES)]
        if eqn.primitive.name == "cond":
            subs = subs[:1]
        for sub in subs:
            total += mult * jaxpr_matmul_flops(getattr(sub, "jaxpr", sub))
    return total


def xla_flops(jitted, *args) -> float:
    cost = jitted.lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", float("nan")))


def matmul_peaks(repeats: int) -> tuple[float, float]:
    n = 2048
    a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
    mm = jax.jit(lambda x: x @ x)
    jax_ms = median_ms(lambda: mm(a).block_until_ready(), repeats)
    t = torch.from_numpy(np.asarray(a))
    torch_ms = median_ms(lambda: t @ t, repeats)
    return 2 * n**3 / jax_ms / 1e6, 2 * n**3 / torch_ms / 1e6


def attention_sweep(repeats: int) -> list[dict]:
    """One self-attention, batch 1, 1536 tokens, 8 heads x 64, fp32: forward and forward+backward per kernel."""
    rng = np.random.default_rng(0)
    q, k, v, ct = (jnp.asarray(rng.standard_normal((1, 1536, 8, 64)), jnp.float32) for _ in range(4))
    ref = attention_kernel("dense")(q, k, v, None)
    rows = []
    kernels = [("dense", 0), ("xla", 0)] + [("chunked", c) for c in (64, 128, 256, 512)] + \
        [("flash", c) for c in (64, 96, 128, 192, 256, 512)]
    for kind, chunk in kernels:
        fn = attention_kernel(kind, chunk or 256)
        fwd = jax.jit(lambda q, k, v, fn=fn: fn(q, k, v, None))
        grad = jax.jit(jax.grad(lambda q, k, v, fn=fn: jnp.sum(fn(q, k, v, None) * ct), argnums=(0, 1, 2)))
        err = float(jnp.max(jnp.abs(fwd(q, k, v) - ref)))
        rows.append({"kernel": kind if not chunk else f"{kind}/{chunk}", "max_err": err,
                     "fwd_ms": median_ms(lambda: fwd(q, k, v).block_until_ready(), repeats),
                     "fwd_bwd_ms": median_ms(lambda: jax.block_until_ready(grad(q, k, v)), repeats)})
    tq, tk, tv, tct = (torch.from_numpy(np.asarray(x).transpose(0, 2, 1, 3).copy()) for x in (q, k, v, ct))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    with torch.inference_mode():
        fwd_ms = median_ms(lambda: sdpa(tq, tk, tv), repeats)
    tq.requires_grad_(True), tk.requires_grad_(True), tv.requires_grad_(True)
    rows.append({"kernel": "torch sdpa", "max_err": float("nan"), "fwd_ms": fwd_ms,
                 "fwd_bwd_ms": median_ms(lambda: (sdpa(tq, tk, tv) * tct).sum().backward(), repeats)})
    return rows


def variant(spec: str, chunk: int) -> tuple[ExecutionConfig, dict | None]:
    """`KERNEL[+remat=POLICY][+chunk=N][+xla_OPTION=VALUE…]` → (execution config, XLA compiler options of its jits).

    e.g. `flash+remat=dots` or `flash+xla_cpu_use_fusion_emitters=false`: variants of one model timed interleaved
    in one process (the options apply to that variant's programs only)."""
    kind, *mods = spec.split("+")
    fields, options = {"attention": kind, "attention_chunk": chunk}, {}
    for mod in mods:
        key, _, value = mod.partition("=")
        if key == "remat":
            fields["remat"] = value
        elif key == "chunk":
            fields["attention_chunk"] = int(value)
        elif key.startswith("xla_") and "=" in mod:  # an empty value is a value (e.g. no YNNPACK fusions)
            options[key] = {"true": True, "false": False}.get(value.lower(), int(value) if value.isdigit() else value)
        else:
            raise SystemExit(f"--attention {spec!r}: unknown modifier {mod!r} (remat=, chunk=, xla_…=)")
    return ExecutionConfig(**fields), options or None


def compile_times(layers: int) -> dict:
    """lower+compile wall time (s) of forward and grad for a small-width model with `layers` layers, fresh jit."""
    config = tiny_transformer_config(num_layers=layers)
    cfg = LTXConfig.from_checkpoint_config(config)
    graphdef, params = nnx.split(abstract_model(cfg))
    case = make_case(config, (2, 4, 4), 8, 8, seed=0)
    video, audio = stream_input(case.video, "float32", is_video=True), stream_input(case.audio, "float32", is_video=False)
    pert = Perturbations.none(layers, 1)
    out = {}
    for name in ("fwd", "fwd_bwd"):
        jax.clear_caches()

        def run(p, v, a, pt):
            return nnx.merge(graphdef, p)(v, a, pt, ExecutionConfig())

        fn = run if name == "fwd" else jax.grad(lambda p, v, a, pt: sum(jnp.sum(o) for o in run(p, v, a, pt)))
        t0 = time.perf_counter()
        jax.jit(fn).lower(params, video, audio, pert).compile()
        out[name] = time.perf_counter() - t0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 repeats, no 48-layer compile")
    parser.add_argument("--attention", default="flash",
                        help="comma-separated Flax variants to time (first is main): KERNEL[+remat=P][+chunk=N][+xla_OPT=V]")
    parser.add_argument("--chunk", type=int, default=ExecutionConfig().attention_chunk)
    parser.add_argument("--attention-sweep", action="store_true", help="only the single-attention kernel table")
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    torch.set_num_threads(THREADS)
    if args.attention_sweep:
        rows = attention_sweep(repeats)
        print(f"{'kernel':<14}{'fwd ms':>9}{'fwd+bwd ms':>12}{'max err':>10}")
        for r in rows:
            print(f"{r['kernel']:<14}{r['fwd_ms']:>9.1f}{r['fwd_bwd_ms']:>12.1f}{r['max_err']:>10.1e}")
        print(json.dumps({"attention_sweep": rows, "repeats": repeats}))
        return

    config = tiny_transformer_config(num_layers=4, heads=8, head_dim=64, audio_heads=8, audio_head_dim=32,
                                     in_channels=128, audio_channels=128)
    reference = build_random_reference(config, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        save_official_checkpoint(reference, config, os.path.join(tmp, "m.safetensors"))
        convert(os.path.join(tmp, "m.safetensors"), os.path.join(tmp, "conv"), progress=False)
        cfg, graphdef, params = load_flax(os.path.join(tmp, "conv"), "float32")
    case = make_case(config, (4, 16, 24), 126, 128, seed=1)
    n_params = sum(p.numel() for p in reference.parameters())
    video, audio = stream_input(case.video, "float32", is_video=True), stream_input(case.audio, "float32", is_video=False)
    pert = Perturbations.none(cfg.num_layers, 1)
    tv, ta = to_modality(case.video, "float32", is_video=True), to_modality(case.audio, "float32", is_video=False)
    tpert = to_perturbations(case)
    rng = np.random.default_rng(2)
    ct_v = rng.standard_normal(case.video.latent.shape).astype(np.float32)
    ct_a = rng.standard_normal(case.audio.latent.shape).astype(np.float32)
    res: dict = {"params_M": n_params / 1e6, "repeats": repeats, "threads": THREADS, "device": str(jax.devices()[0])}

    # ---- ltx-core
    with torch.inference_mode():
        ref_v, ref_a = (t.numpy().copy() for t in reference(tv, ta, tpert))
    ctv, cta = torch.from_numpy(ct_v), torch.from_numpy(ct_a)

    def torch_fwd():
        with torch.inference_mode():
            reference(tv, ta, tpert)

    def torch_fwd_bwd():
        for p in reference.parameters():
            p.grad = None
        out_v, out_a = reference(tv, ta, tpert)
        ((out_v * ctv).sum() + (out_a * cta).sum()).backward()

    # ---- Flax
    jct_v, jct_a = jnp.asarray(ct_v), jnp.asarray(ct_a)
    flax_runs = {}
    for kind in args.attention.split(","):
        execution, options = variant(kind, args.chunk)

        # inputs are arguments, not closed-over constants (XLA would constant-fold the RoPE tables etc.)
        def loss(p, v, a, pt, cv, ca, execution=execution):
            out_v, out_a = forward(graphdef, p, v, a, pt, execution)
            return jnp.sum(out_v * cv) + jnp.sum(out_a * ca)

        fwd_j = jax.jit(lambda p, v, a, pt, execution=execution: forward(graphdef, p, v, a, pt, execution),
                        compiler_options=options)
        grad_j = jax.jit(jax.grad(loss), compiler_options=options)
        fwd = functools.partial(fwd_j, params, video, audio, pert)
        grad = functools.partial(grad_j, params, video, audio, pert, jct_v, jct_a)
        t0 = time.perf_counter()
        out_v, out_a = jax.block_until_ready(fwd())
        t_fwd_compile = time.perf_counter() - t0
        t0 = time.perf_counter()
        jax.block_until_ready(grad())
        t_grad_compile = time.perf_counter() - t0
        rel = max(float(np.max(np.abs(np.asarray(o) - r)) / np.max(np.abs(r))) for o, r in ((out_v, ref_v), (out_a, ref_a)))
        print(f"[{kind}] max rel error vs ltx-core: {rel:.2e}; first-call (compile) fwd {t_fwd_compile:.1f}s, "
              f"fwd+bwd {t_grad_compile:.1f}s", flush=True)
        flax_runs[kind] = (fwd, grad, {"max_rel_err": rel, "first_call_fwd_s": t_fwd_compile,
                                       "first_call_fwd_bwd_s": t_grad_compile})
        if kind == args.attention.split(",")[0]:
            fargs, gargs = (params, video, audio, pert), (params, video, audio, pert, jct_v, jct_a)
            res["xla_cost_flops_fwd_G"] = xla_flops(fwd_j, *fargs) / 1e9  # loop bodies counted once by XLA
            res["xla_cost_flops_fwd_bwd_G"] = xla_flops(grad_j, *gargs) / 1e9
            res["matmul_flops_fwd_G"] = jaxpr_matmul_flops(jax.make_jaxpr(fwd_j)(*fargs).jaxpr) / 1e9
            res["matmul_flops_fwd_bwd_G"] = jaxpr_matmul_flops(jax.make_jaxpr(grad_j)(*gargs).jaxpr) / 1e9

    # ---- timings, interleaved so background load hits both sides alike
    res["torch_fwd_ms"] = median_ms(torch_fwd, repeats)
    for kind, (fwd, grad, info) in flax_runs.items():
        info["fwd_ms"] = median_ms(lambda: jax.block_until_ready(fwd()), repeats)
    res["torch_fwd_bwd_ms"] = median_ms(torch_fwd_bwd, repeats)
    for kind, (fwd, grad, info) in flax_runs.items():
        info["fwd_bwd_ms"] = median_ms(lambda: jax.block_until_ready(grad()), repeats)
        info["ratio_fwd"] = info["fwd_ms"] / res["torch_fwd_ms"]
        info["ratio_fwd_bwd"] = info["fwd_bwd_ms"] / res["torch_fwd_bwd_ms"]
        res[f"flax[{kind}]"] = info
    main_info = res[f"flax[{args.attention.split(',')[0]}]"]
    res["jax_matmul_peak_gflops"], res["torch_matmul_peak_gflops"] = matmul_peaks(repeats)
    res["gflops_fwd"] = res["matmul_flops_fwd_G"] / main_info["fwd_ms"] * 1e3
    res["gflops_fwd_bwd"] = res["matmul_flops_fwd_bwd_G"] / main_info["fwd_bwd_ms"] * 1e3
    res["compile_2_layers_s"] = compile_times(2)
    if not args.quick:
        res["compile_48_layers_s"] = compile_times(48)

    print(f"\nmid model, {res['params_M']:.2f} M params, {THREADS} threads, medians of {repeats}")
    print(f"{'implementation':<22}{'fwd ms':>9}{'ratio':>7}{'fwd+bwd ms':>12}{'ratio':>7}")
    print(f"{'ltx-core (torch)':<22}{res['torch_fwd_ms']:>9.0f}{'':>7}{res['torch_fwd_bwd_ms']:>12.0f}")
    for kind in flax_runs:
        i = res[f"flax[{kind}]"]
        print(f"{'flax/' + kind + '/' + str(args.chunk):<22}{i['fwd_ms']:>9.0f}{i['ratio_fwd']:>7.2f}"
              f"{i['fwd_bwd_ms']:>12.0f}{i['ratio_fwd_bwd']:>7.2f}")
    print(f"matmul FLOPs (jaxpr) fwd {res['matmul_flops_fwd_G']:.1f} G, fwd+bwd {res['matmul_flops_fwd_bwd_G']:.1f} G; "
          f"XLA cost_analysis fwd {res['xla_cost_flops_fwd_G']:.1f} G, fwd+bwd {res['xla_cost_flops_fwd_bwd_G']:.1f} G "
          "(counts scan/map bodies once)")
    print(f"achieved: fwd {res['gflops_fwd']:.0f} GFLOP/s, fwd+bwd {res['gflops_fwd_bwd']:.0f} GFLOP/s; matmul peak "
          f"jax {res['jax_matmul_peak_gflops']:.0f}, torch {res['torch_matmul_peak_gflops']:.0f} GFLOP/s")
    c2, c48 = res["compile_2_layers_s"], res.get("compile_48_layers_s")
    print(f"compile 2 layers: fwd {c2['fwd']:.1f}s fwd+bwd {c2['fwd_bwd']:.1f}s" +
          (f"; 48 layers: fwd {c48['fwd']:.1f}s ({c48['fwd'] / c2['fwd']:.2f}x) fwd+bwd {c48['fwd_bwd']:.1f}s "
           f"({c48['fwd_bwd'] / c2['fwd_bwd']:.2f}x)" if c48 else ""))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
