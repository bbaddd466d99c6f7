"""The `unityshots` command line: generate, train, package, prepare-data, convert, export, verify, make-tiny.

Every failure is one line on stderr naming the cause, and a non-zero exit (2 for bad input, 1 for a failed
verification); nothing half-written is left behind. `--debug` (or UNITYSHOTS_DEBUG=1) prints the traceback first.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import traceback


def _cmd_convert(args: argparse.Namespace) -> int:
    from unityshots_jax.checkpoint.ltx_convert import convert

    cfg = convert(args.src, args.dst, progress=not args.quiet)
    print(f"converted {args.src} -> {args.dst} ({cfg.model_type}, {cfg.num_layers} layers, rope {cfg.rope_type})")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from unityshots_jax.checkpoint.ltx_convert import export

    export(args.src, args.out, progress=not args.quiet)
    print(f"exported {args.src} -> {args.out}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    try:
        import ltx_core  # noqa: F401
    except ImportError:
        raise _UsageError("verify needs the reference implementation: pip install 'unityshots-jax[reference]'") from None
    from unityshots_jax.parity import format_rows, verify, verify_components

    rows = verify(args.src, args.dst, dtype=args.dtype, seed=args.seed, attention=args.attention)
    if args.dtype == "float32":  # every other component the file holds: one row each
        text_shape = None
        if args.text_encoder:
            from unityshots_jax.text.gemma3.config import read_config

            gemma = read_config(args.text_encoder)
            text_shape = gemma.hidden_size, gemma.num_states
        rows += verify_components(args.src, args.dst, seed=args.seed, text_shape=text_shape)
    print(format_rows(rows, args.dtype))
    failed = [r for r in rows if not r.ok]
    print(f"verify: {len(rows) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def _cmd_make_tiny(args: argparse.Namespace) -> int:
    try:
        from unityshots_jax.reference.ltx_reference import (
            add_fake_connector_tensors,
            build_random_reference,
            save_official_checkpoint,
        )
    except ImportError:
        raise _UsageError("make-tiny needs the reference implementation: pip install 'unityshots-jax[reference]'") from None
    from unityshots_jax.reference.tiny_configs import tiny_19b_config, tiny_transformer_config

    if os.path.exists(args.out):
        raise _UsageError(f"{args.out}: output file exists; choose a new name")
    sizes = dict(
        num_layers=args.layers,
        heads=args.heads,
        head_dim=args.head_dim,
        audio_heads=args.audio_heads,
        audio_head_dim=args.audio_head_dim,
        in_channels=args.channels,
        audio_channels=args.channels,
    )
    # A single-stream model has no A<->V attention, so the absent stream's head count need not match.
    if args.model_type == "audio_only":
        sizes["heads"] = args.audio_heads
    elif args.model_type == "video_only":
        sizes["audio_heads"] = args.heads
    make = tiny_19b_config if args.layout == "19b" else tiny_transformer_config
    config = make(rope_type=args.rope, **sizes)
    model = build_random_reference(config, args.seed, model_type=args.model_type)
    save_official_checkpoint(model, config, args.out, extra_tensors=add_fake_connector_tensors(config, args.seed))
    print(f"wrote a random {args.layout} {args.model_type} transformer ({args.rope} RoPE) to {args.out}")
    return 0


def _cmd_train(args: argparse.Namespace, overrides: list[str]) -> int:
    from unityshots_jax.config_files import load_config
    from unityshots_jax.train.trainer import train

    config = load_config(args.config, overrides)
    last = train(config, args.workdir, progress=not args.quiet)
    if last:
        print(f"train: step {last['step']} loss {last['loss']:.4f} (metrics in {args.workdir}/metrics.jsonl)")
    else:
        print(f"train: {args.workdir} has already reached config.steps; nothing to run (raise --config.steps to go on)")
    return 0


LTX23_FLAGS = (("text_encoder", "files.text_encoder"), ("weights", "files.weights"), ("upsampler", "files.upsampler"),
               ("distilled_lora", "files.distilled_lora"), ("pipeline", "pipeline"), ("memory", "memory"))


def _wants_ltx23(args: argparse.Namespace, overrides: list[str]) -> bool:
    return bool(args.config or overrides or any(getattr(args, flag) for flag, _ in LTX23_FLAGS))


def _cmd_generate(args: argparse.Namespace, overrides: list[str] | None = None) -> int:
    import time

    if _wants_ltx23(args, overrides or []):
        return _generate_ltx23(args, overrides or [])

    from unityshots_jax.media.mp4_writer import encoded_size, plan_story_outputs
    from unityshots_jax.pipeline.generate import StoryGenerator, write_story
    from unityshots_jax.pipeline.story_conditioning import prepare_story
    from unityshots_jax.prompt.story_prompt import load_story_prompt
    from unityshots_jax.story.story_checkpoint import DEFAULT_CHECKPOINT
    from unityshots_jax.train.package import load_trained_model

    outputs = plan_story_outputs(args.output, overwrite=args.overwrite)  # before any compute
    _check_generate_numbers(args)
    args.steps = 20 if args.steps is None else args.steps
    if args.guidance is not None and not 1.0 <= args.guidance <= 20.0:
        raise _UsageError(f"--guidance: {args.guidance}; expected 1 (off) to 20")
    prompt = load_story_prompt(args.story)
    t0 = time.perf_counter()
    model = load_trained_model(args.checkpoint or DEFAULT_CHECKPOINT, overrides={"max_shots": len(prompt.shots)})
    generator = StoryGenerator(model, guidance=args.guidance)
    story = prepare_story(prompt, model.story, generator.codecs, cut_strength=args.cut_strength)
    for i in story.truncated:
        print(f"unityshots generate: warning: shots[{i}]: text longer than the encoder's {model.story.text_tokens} tokens; "
              "the rest is ignored", file=sys.stderr)
    (media,) = _interruptible(lambda: generator.generate([story], seed=args.seed, steps=args.steps, progress=not args.quiet))
    strengths = [float(b) for b in story.cut_strength] if args.cut_strength is not None else None
    write_story(media, str(outputs.mp4), [s.caption for s in prompt.shots], [s.transition for s in prompt.shots],
                strengths=strengths, overwrite=args.overwrite)
    total = len(media.frames) / media.fps
    height, width = encoded_size(*media.frames.shape[1:3])
    channels = 1 if media.audio.ndim == 1 else media.audio.shape[1]
    print(f"wrote {outputs.mp4} ({len(prompt.shots)} shots, {total:g} s, video {width}x{height} "
          f"({media.frames.shape[2]}x{media.frames.shape[1]} upscaled) @ {media.fps:g} fps + audio {media.sample_rate} Hz "
          f"{'stereo' if channels == 2 else 'mono'}), {outputs.sidecar} and {outputs.sheet} in {time.perf_counter() - t0:.1f} s")
    return 0


def _generate_ltx23(args: argparse.Namespace, overrides: list[str]) -> int:
    """`generate` on the real LTX-2.3 stack (configs/generate_ltx23.py, flags win over the file)."""
    import time

    from unityshots_jax.config_files import load_config
    from unityshots_jax.media.mp4_writer import plan_story_outputs
    from unityshots_jax.pipeline.generate import write_story
    from unityshots_jax.pipeline.ltx23_plan import make_plan
    from unityshots_jax.pipeline.ltx23_story import checkpoint_shape, peak_device_memory, read_plan_lora, run_ltx23_story
    from unityshots_jax.prompt.story_prompt import load_story_prompt

    outputs = plan_story_outputs(args.output, overwrite=args.overwrite)  # before any compute
    _check_generate_numbers(args)
    if args.guidance is not None:
        raise _UsageError("--guidance is the toy models' one CFG scale; LTX-2.3 guides each stream: "
                          "--config.guidance.video.cfg=3 --config.guidance.audio.cfg=7 (and .stg, .rescale, .modality)")
    if not args.checkpoint:
        raise _UsageError("--checkpoint is required with the LTX-2.3 stack: a directory converted from the official "
                          "ltx-2.3-22b-*.safetensors (unityshots convert), or a story model trained from it")
    config_path = args.config or os.path.join(_REPO_ROOT, "configs", "generate_ltx23.py")
    cfg = load_config(config_path, overrides)
    for flag, key in LTX23_FLAGS:
        if getattr(args, flag):
            node, leaf = (cfg.files, key.split(".")[1]) if key.startswith("files.") else (cfg, key)
            node[leaf] = getattr(args, flag)
    if args.steps is not None:
        cfg.steps = args.steps
    if cfg.get("distributed", False):
        import jax

        from unityshots_jax.train.distributed import initialize_args

        jax.distributed.initialize(**initialize_args(cfg))
    prompt = load_story_prompt(args.story)
    layers, _, _ = checkpoint_shape(args.checkpoint)
    plan = make_plan(cfg, args.checkpoint, layers)
    lora = read_plan_lora(plan)  # a LoRA for another model is refused before any compute
    print(f"unityshots generate: {plan.describe()}", flush=True)
    t0 = time.perf_counter()
    run = _interruptible(lambda: run_ltx23_story(plan, prompt, seed=args.seed, cut_strength=args.cut_strength,
                                                 progress=not args.quiet, lora=lora))
    media = run.media
    if _process_index() != 0:  # every host computed its share; the first one writes the outputs
        return 0
    strengths = [float(b) for b in run.story.cut_strength] if args.cut_strength is not None else None
    write_story(media, str(outputs.mp4), [s.caption for s in prompt.shots], [s.transition for s in prompt.shots],
                strengths=strengths, overwrite=args.overwrite)
    channels = 1 if media.audio.ndim == 1 else media.audio.shape[1]
    print(f"wrote {outputs.mp4} ({len(prompt.shots)} shots, {len(media.frames) / media.fps:g} s, video "
          f"{media.frames.shape[2]}x{media.frames.shape[1]} @ {media.fps:g} fps + audio {media.sample_rate} Hz "
          f"{'stereo' if channels == 2 else 'mono'}), {outputs.sidecar} and {outputs.sheet} in "
          f"{time.perf_counter() - t0:.1f} s; {plan.describe()}; {peak_device_memory()}")
    return 0


def _process_index() -> int:
    import jax

    return jax.process_index()


def _check_generate_numbers(args: argparse.Namespace) -> None:
    if args.steps is not None and not 1 <= args.steps <= 1000:
        raise _UsageError(f"--steps: {args.steps}; expected 1 to 1000")
    if not 0 <= args.seed < 2**63:
        raise _UsageError(f"--seed: {args.seed}; expected an integer from 0 to 2**63 - 1")
    if args.cut_strength is not None and not 0.0 <= args.cut_strength <= 1.0:
        raise _UsageError(f"--cut-strength: {args.cut_strength}; expected a value in [0, 1]")


def _interruptible(work):
    """Run `work()` in a worker thread so Ctrl-C takes effect at once, not when a long compiled call returns:
    the main thread waits in short slices; on KeyboardInterrupt nothing has been written yet, so the process
    ends right away (exit 130) without waiting for the device computation."""
    import threading

    box: dict = {}

    def run() -> None:
        try:
            box["value"] = work()
        except BaseException as e:  # handed to the main thread
            box["error"] = e

    worker = threading.Thread(target=run, name="unityshots-generate", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except KeyboardInterrupt:
        print("unityshots generate: interrupted; nothing was written", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(130)
    if "error" in box:
        raise box["error"]
    return box["value"]


def _cmd_package(args: argparse.Namespace) -> int:
    from unityshots_jax.train.package import package_run

    path = package_run(args.workdir, args.out, use_ema=not args.no_ema, meta={"made_by": args.note} if args.note else None)
    print(f"packaged {args.workdir} -> {path} ({os.path.getsize(path) / 2**20:.1f} MiB)")
    return 0


_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _UsageError(ValueError):
    pass


class _DefaultsFormatter(argparse.HelpFormatter):
    """Help that shows each option's default, unless it is unset (None / False) or the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if unset or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("unityshots-jax")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    from unityshots_jax import prepare_cli  # no jax or beam import: the parser stays fast
    from unityshots_jax.ltx.config import ATTENTION_CHOICES

    parser = argparse.ArgumentParser(prog="unityshots", description="UnityShots on JAX: LTX-2.3 multi-shot audio-video.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("--debug", action="store_true",
                        help="print the traceback behind an error (also: environment UNITYSHOTS_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser = functools.partial(sub.add_parser, formatter_class=_DefaultsFormatter)

    p = sub.add_parser("generate", help="a story file -> one mp4 (video + audio, one segment per shot) + contact sheet")
    p.add_argument("story", help="story file (.yaml / .json, see docs/story_format.md)")
    p.add_argument("-o", "--output", required=True, help="output .mp4 (OUT.shots.json and a contact sheet OUT.png are written beside it)")
    p.add_argument("--checkpoint", default=None,
                   help="a packaged story model (directory with model.safetensors) or a training workdir; "
                        "default: the shipped toy-world model")
    p.add_argument("--seed", type=int, default=0, help="random seed (0 to 2**63 - 1)")
    p.add_argument("--steps", type=int, default=None,
                   help="denoising steps per shot (default: 20 for the toy world; for LTX-2.3 the config's steps, 30)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUT.mp4, OUT.shots.json and OUT.png if they exist (otherwise existing outputs are refused)")
    p.add_argument("--cut-strength", type=float, default=None,
                   help="the cut-type knob: one boundary strength in [0, 1] for every cut (0.4 continue ... 1.0 hard)")
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance scale (default: 3 for models trained with caption dropout, else 1 = off)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    ltx = p.add_argument_group("LTX-2.3 stack", "real generation (any of these, --config or --config.KEY=VALUE "
                               "selects it; keys and defaults: configs/generate_ltx23.py)")
    ltx.add_argument("--config", default=None, help="generate config file (default: configs/generate_ltx23.py)")
    ltx.add_argument("--text-encoder", default=None, metavar="DIR", help="the Hugging Face Gemma-3 12B directory")
    ltx.add_argument("--weights", default=None, metavar="FILE",
                     help="the official LTX-2.3 .safetensors holding the VAEs, vocoder and text connectors "
                          "(default: --checkpoint when it is a converted directory)")
    ltx.add_argument("--upsampler", default=None, metavar="FILE", help="ltx-2.3-spatial-upscaler-x2 (two-stage, distilled)")
    ltx.add_argument("--distilled-lora", default=None, metavar="FILE", help="ltx-2.3-22b-distilled-lora (two-stage)")
    ltx.add_argument("--pipeline", default=None, choices=("one-stage", "two-stage", "distilled"),
                     help="one-stage (target size), two-stage (half size + ×2 upsample + LoRA refine), distilled")
    ltx.add_argument("--memory", default=None, choices=("trained", "zero-shot", "none"),
                     help="trained (a story model's memory), zero-shot (memory slots, untrained memory group, official "
                          "weights) or none (each shot on its own); default: trained for a story model, none for the "
                          "official weights")
    p.set_defaults(run=_cmd_generate, takes_overrides=True)

    p = sub.add_parser("package", help="a training workdir's latest checkpoint -> DIR/model.safetensors")
    p.add_argument("workdir", help="directory written by 'unityshots train'")
    p.add_argument("out", help="output directory")
    p.add_argument("--no-ema", action="store_true", help="the raw weights, not their moving average")
    p.add_argument("--note", default="", help="how the run was made (stored in the file's metadata)")
    p.set_defaults(run=_cmd_package)

    prepare_cli.add_parser(sub)

    p = sub.add_parser("convert", help="official LTX .safetensors -> orbax directory")
    p.add_argument("src", help="official single-file checkpoint (.safetensors)")
    p.add_argument("dst", help="new (or empty) output directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_cmd_convert)

    p = sub.add_parser("export", help="orbax directory -> official LTX .safetensors")
    p.add_argument("src", help="directory written by 'unityshots convert'")
    p.add_argument("out", help="new output file (.safetensors)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=_cmd_export)

    p = sub.add_parser("verify", help="compare the converted model with ltx-core on seeded inputs")
    p.add_argument("src", help="the official .safetensors the directory was converted from")
    p.add_argument("dst", help="directory written by 'unityshots convert'")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--attention", choices=ATTENTION_CHOICES, default="auto")
    p.add_argument("--text-encoder", default=None, metavar="DIR",
                   help="Gemma-3 directory the text projection was made for (default: Gemma-3 12B's width and "
                        "49 hidden states, as the official file)")
    p.set_defaults(run=_cmd_verify)

    p = sub.add_parser(
        "train",
        help="Shots-Forcing training (resumes from --workdir)",
        description="Train with an ml_collections config file; override any key with --config.key=value.",
    )
    p.add_argument("--config", required=True, help="config file, e.g. configs/smoke.py")
    p.add_argument("--workdir", required=True, help="checkpoints, metrics.jsonl and TensorBoard logs; resumed if present")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_cmd_train, takes_overrides=True)

    p = sub.add_parser("make-tiny", help="write a tiny random LTX transformer checkpoint in the official layout")
    p.add_argument("out", help="new output file (.safetensors)")
    p.add_argument("--layout", choices=("22b", "19b"), default="22b", help="LTX-2.3 (22b) or LTX-2 (19b) options")
    p.add_argument("--rope", choices=("split", "interleaved"), default="split")
    p.add_argument("--model-type", choices=("audio_video", "video_only", "audio_only"), default="audio_video")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--head-dim", type=int, default=16)
    p.add_argument("--audio-heads", type=int, default=2)
    p.add_argument("--audio-head-dim", type=int, default=8)
    p.add_argument("--channels", type=int, default=16, help="latent channels per token (both streams)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_cmd_make_tiny)
    return parser


def main(argv: list[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    overrides = extra if getattr(args, "passes_unknown", False) else [a for a in extra if a.startswith("--config.")]
    if len(overrides) != len(extra) or (overrides and not getattr(args, "takes_overrides", False)):
        build_parser().error(f"unrecognized arguments: {' '.join(a for a in extra if a not in overrides) or ' '.join(extra)}")
    from unityshots_jax.checkpoint.safetensors_io import CheckpointError
    from unityshots_jax.ltx.config import ConfigError

    try:
        return args.run(args, overrides) if getattr(args, "takes_overrides", False) else args.run(args)
    except (CheckpointError, ConfigError, _UsageError, ValueError, OSError, RuntimeError) as e:
        if args.debug or os.environ.get("UNITYSHOTS_DEBUG") == "1":
            traceback.print_exc()
        print(f"unityshots {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"unityshots {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
