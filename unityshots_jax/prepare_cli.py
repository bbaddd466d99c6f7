"""`unityshots prepare-data MANIFEST --out DIR`: the subcommand's arguments and its run (Beam imported only here).

    unityshots prepare-data manifest.jsonl --out data/films --config configs/ltx23_22b.py \
        --weights ltx-2.3-22b-dev.safetensors --text-encoder gemma-3-12b [--bucket 1376x768x121] \
        [--runner dataflow --project P --region R --temp_location gs://B/tmp]   (any Beam pipeline option)

The records fit the training config's story grid, transformer context widths and codec (`config.codec`), so
`train` reads them with `data.source = DIR/stories` (its manifest `DIR/stories.manifest.json`).
"""

from __future__ import annotations

import argparse

RUNNERS = {"direct": "DirectRunner", "dataflow": "DataflowRunner", "flink": "FlinkRunner", "spark": "SparkRunner",
           "portable": "PortableRunner", "prism": "PrismRunner"}


def add_parser(sub) -> None:
    """Add the `prepare-data` subparser to `sub` (argparse subparsers); unknown options go to Beam."""
    p = sub.add_parser(
        "prepare-data",
        help="a manifest of multi-shot videos -> story records in ArrayRecord shards (Apache Beam)",
        description="Prepare training records with Apache Beam (pip install 'unityshots-jax[prepare]'). Options "
                    "not listed here (--project, --region, --temp_location, --num_workers, …) go to Beam.",
    )
    p.add_argument("manifest", help="JSONL manifest or a folder of story files (docs/design.md, data preparation)")
    p.add_argument("--out", required=True, help="output folder (local or gs://…); a rerun resumes it")
    p.add_argument("--config", required=True,
                   help="training config whose story grid, context widths and codec the records fit")
    p.add_argument("--runner", default="direct",
                   help=f"Beam runner: {', '.join(RUNNERS)} or a runner class name")
    p.add_argument("--bucket", default=None, metavar="WxHxF", help="shot size and frames (default: the model's grid)")
    p.add_argument("--weights", default=None, metavar="FILE", help="official LTX-2.3 file (VAE, vocoder, connectors)")
    p.add_argument("--text-encoder", default=None, metavar="DIR", help="the Hugging Face Gemma-3 12B directory")
    p.add_argument("--num-shards", type=int, default=16, help="ArrayRecord shards (items dealt by a hash of the id)")
    p.add_argument("--latent-dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                   help="dtype the records store latents and contexts in")
    p.set_defaults(run=run, takes_overrides=True, passes_unknown=True)


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    """Read the manifest (ManifestError: line and field), load the config, run the pipeline, print the summary."""
    from unityshots_jax.prepare.buckets import parse_bucket
    from unityshots_jax.prepare.item_types import PrepareOptions
    from unityshots_jax.prepare.manifest import read_manifest

    items = read_manifest(args.manifest)
    bucket = None if args.bucket is None else parse_bucket(args.bucket)
    try:
        from unityshots_jax.prepare.beam_pipeline import BeamPrepareOptions, run_prepare
    except ImportError as exc:
        raise RuntimeError(f"prepare-data needs Apache Beam: pip install 'unityshots-jax[prepare]' ({exc})") from exc
    from unityshots_jax.config_files import load_config
    from unityshots_jax.story.story_codecs import codec_request
    from unityshots_jax.train.train_config import run_config

    config = run_config(load_config(args.config, [o for o in overrides if o.startswith("--config.")]))
    request = codec_request(config.story, config.ltx.video.context_dim, config.ltx.audio.context_dim,
                            weights=args.weights, text_encoder_dir=args.text_encoder)
    options = BeamPrepareOptions(config.codec, request, config.story,
                                 PrepareOptions(bucket=bucket, latent_dtype=args.latent_dtype), args.num_shards)
    beam_args = [f"--runner={RUNNERS.get(args.runner, args.runner)}"]
    beam_args += [o for o in overrides if not o.startswith("--config.")]
    plan, summary, _ = run_prepare(items, args.out, options, beam_args)
    print(f"prepare-data: {summary['records']} records, {summary['skipped']} skipped "
          f"({len(plan.done)} of {len(plan.shards)} shards were already done) in {args.out}; "
          f"dead letters in {args.out}/dead_letter.jsonl")
    return 0
