"""The memory study: does the story memory carry identity and voice across cuts, and does the cut knob work?

    python experiments/toy_world/memory_study.py            # the shipped model; writes experiments/toy_world/

Held-out toy stories (drawn from a seed stream training never reads) of k = 3, 6, 9 shots, every shot
text-to-video with no references: the character's identity (colour, pattern, shape) is named only in the opening
shot's text, so a later shot can only get it from memory. Variants (inference-time switches on the one trained
model): both slots, long-term only, short-term only, no memory (hidden slots are masked out of attention, as at
shot 0), and both slots with the rule gate (the content-aware ρ off). Measured on the decoded media by the toy
world's exact detectors (`unityshots_jax/toy_world/detectors.py`):
  identity accuracy   later shots whose detected identity is the character's (chance 1/24)
  voice accuracy      later shots with dialogue whose detected voice is the character's (chance 1/6)
  cut control         with both slots, every cut of 6-shot stories forced to one knob value x, the transition
                      strength measured across cuts (frame distance / the distance of unrelated frames)
Writes RESULTS.md, results.json and two PNG plots into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from unityshots_jax.pipeline.generate import StoryGenerator
from unityshots_jax.pipeline.story_conditioning import prepare_story
from unityshots_jax.train.package import load_trained_model
from unityshots_jax.toy_world.detectors import read_identity, read_voice, transition_strength, unrelated_distance
from unityshots_jax.toy_world.render import render_shot_video
from unityshots_jax.toy_world.toy_records import story_prompt
from unityshots_jax.toy_world.world_spec import NUM_IDENTITIES, NUM_VOICES, sample_story

VARIANTS = {  # name → StoryConfig overrides
    "both": {"memory_slots": "both"},
    "ltm only": {"memory_slots": "ltm"},
    "stm only": {"memory_slots": "stm"},
    "no memory": {"memory_slots": "none"},
    "both, rule gate": {"memory_slots": "both", "gate": {"learned_rho": False}},
}
KNOB = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
STUDY_SEED = 7  # training draws stories from default_rng([data.seed, i]); the study from default_rng([7, k, i])


def held_out_stories(k: int, n: int):
    return [sample_story(np.random.default_rng([STUDY_SEED, k, i]), k, story_id=f"study-{k}-{i}") for i in range(n)]


def score_identity_voice(stories, media) -> dict:
    """Identity / voice hits over the later shots (and the opening and final shots separately)."""
    later, final, opening, consistent, voice = [], [], [], [], []
    for story, m in zip(stories, media):
        truth = story.character.identity
        readings = [read_identity(m.shot(i)).identity for i in range(len(story.shots))]
        opening.append(readings[0] == truth)
        later += [r == truth for r in readings[1:]]
        consistent += [r == readings[0] and r >= 0 for r in readings[1:]]
        final.append(readings[-1] == truth)
        voice += [read_voice(m.shot_audio(i)) == story.character.voice for i, plan in enumerate(story.shots) if i > 0 and plan.dialogue]
    mean = lambda xs: float(np.mean(xs)) if xs else float("nan")  # noqa: E731
    return {"identity": mean(later), "identity_final_shot": mean(final), "identity_opening_shot": mean(opening),
            "consistent_with_opening": mean(consistent), "voice": mean(voice), "later_shots": len(later),
            "voiced_shots": len(voice)}


def cut_strengths_measured(stories, media, scale: float) -> list[float]:
    out = []
    for story, m in zip(stories, media):
        for i in range(1, len(story.shots)):
            out.append(transition_strength(m.shot(i - 1)[-1], m.shot(i)[0], scale))
    return out


def reference_strengths(stories, scale: float) -> dict:
    """Transition strengths of the rendered ground truth, per cut type."""
    out: dict = {"CONTINUE": [], "HARD": []}
    for s in stories:
        for i in range(1, len(s.shots)):
            out[s.shots[i].cut].append(transition_strength(render_shot_video(s, i - 1)[-1], render_shot_video(s, i)[0], scale))
    return {k: float(np.mean(v)) for k, v in out.items() if v}


def run(args) -> dict:
    scale = unrelated_distance()
    results: dict = {"config": vars(args).copy(), "scale": scale, "variants": {}, "knob": {}}
    stories = {k: held_out_stories(k, args.stories) for k in args.ks}
    prepared = {}
    for name in args.variants:
        overrides = VARIANTS[name]
        model = load_trained_model(args.checkpoint, overrides={"max_shots": max(args.ks), **overrides})
        gen = StoryGenerator(model)
        results["variants"][name] = {}
        for k in args.ks:
            if k not in prepared:
                prepared[k] = [prepare_story(story_prompt(s), model.story, gen.codecs) for s in stories[k]]
            t0 = time.perf_counter()
            media = gen.generate(prepared[k], seed=args.seed, steps=args.steps)
            row = score_identity_voice(stories[k], media)
            row["seconds"] = time.perf_counter() - t0
            results["variants"][name][str(k)] = row
            print(f"{name:>16} k={k}: identity {row['identity']:.3f} (final shot {row['identity_final_shot']:.3f}, "
                  f"opening {row['identity_opening_shot']:.3f}), voice {row['voice']:.3f}  [{row['seconds']:.0f} s]", flush=True)
        if name == "both" and not args.no_knob:
            k = args.knob_shots
            knob_stories = held_out_stories(k, args.stories)
            results["reference_strength"] = reference_strengths(knob_stories, scale)
            for x in KNOB:
                preps = [prepare_story(story_prompt(s), model.story, gen.codecs, cut_strength=x) for s in knob_stories]
                media = gen.generate(preps, seed=args.seed, steps=args.steps)
                measured = cut_strengths_measured(knob_stories, media, scale)
                results["knob"][f"{x:.1f}"] = {"mean": float(np.mean(measured)), "std": float(np.std(measured)), "cuts": len(measured)}
                print(f"            knob {x:.1f}: transition strength {np.mean(measured):.3f}", flush=True)
    return results


def plot(results: dict, out: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = results["config"]["ks"]
    names = list(results["variants"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(names)
    for metric, ax, chance in (("identity", axes[0], 1 / NUM_IDENTITIES), ("voice", axes[1], 1 / NUM_VOICES)):
        for j, name in enumerate(names):
            vals = [results["variants"][name][str(k)][metric] for k in ks]
            ax.bar(np.arange(len(ks)) + (j - (len(names) - 1) / 2) * width, vals, width, label=name)
        ax.axhline(chance, color="k", ls="--", lw=1, label="chance")
        ax.set_xticks(np.arange(len(ks)), [f"k = {k}" for k in ks])
        ax.set_ylim(0, 1)
        ax.set_title(f"{metric} accuracy, later shots")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    p1 = os.path.join(out, "memory_ablation.png")
    fig.savefig(p1, dpi=110)
    if not results["knob"]:
        plt.close("all")
        return [p1]
    fig, ax = plt.subplots(figsize=(5, 4))
    xs = [float(x) for x in results["knob"]]
    means = [v["mean"] for v in results["knob"].values()]
    stds = [v["std"] / np.sqrt(max(v["cuts"], 1)) for v in results["knob"].values()]
    ax.errorbar(xs, means, yerr=stds, marker="o", label="generated (both slots)")
    for cut, value in results.get("reference_strength", {}).items():
        ax.axhline(value, ls=":", color="gray")
        ax.text(0.0, value, f" ground truth {cut.lower()}", va="bottom", fontsize=8)
    ax.set_xlabel("requested cut strength (knob)")
    ax.set_ylabel("measured transition strength")
    ax.set_title("cut control")
    fig.tight_layout()
    p2 = os.path.join(out, "cut_knob.png")
    fig.savefig(p2, dpi=110)
    plt.close("all")
    return [p1, p2]


def write_markdown(results: dict, out: str, command: str) -> str:
    ks = results["config"]["ks"]
    lines = [
        "# Toy-world memory study",
        "",
        "Produced by `experiments/toy_world/memory_study.py` (see its docstring for the protocol):",
        "",
        f"    {command}",
        "",
        f"{results['config']['stories']} held-out stories per k, {results['config']['steps']} denoising steps, seed "
        f"{results['config']['seed']}, checkpoint `{results['config']['checkpoint_label']}`. Identity accuracy is over "
        f"the later shots (chance {1 / NUM_IDENTITIES:.3f}); voice over later shots with dialogue (chance {1 / NUM_VOICES:.3f}).",
        "",
        "| variant | " + " | ".join(f"identity k={k}" for k in ks) + f" | identity, final shot k={ks[-1]} | "
        + " | ".join(f"voice k={k}" for k in ks) + " |",
        "|---|" + "---|" * (2 * len(ks) + 1),
    ]
    for name, rows in results["variants"].items():
        ident = " | ".join(f"{rows[str(k)]['identity']:.3f}" for k in ks)
        voice = " | ".join(f"{rows[str(k)]['voice']:.3f}" for k in ks)
        lines.append(f"| {name} | {ident} | {rows[str(ks[-1])]['identity_final_shot']:.3f} | {voice} |")
    opening = np.mean([rows[str(k)]["identity_opening_shot"] for rows in results["variants"].values() for k in ks])
    opening_line = f"Opening shot (identity from its text, same for every variant up to sampling): {opening:.3f}."
    lines += ["", opening_line, ""]
    if results["knob"]:
        lines += ["Cut control (both slots, every cut of the stories forced to the knob value):", "",
                  "| knob | " + " | ".join(results["knob"]) + " |", "|---|" + "---|" * len(results["knob"]),
                  "| measured strength | " + " | ".join(f"{v['mean']:.3f}" for v in results["knob"].values()) + " |", ""]
        ref = results.get("reference_strength", {})
        if ref:
            lines.append("Ground truth for scale: " + ", ".join(f"{k.lower()} cuts {v:.3f}" for k, v in ref.items()) + ".")
        means = [v["mean"] for v in results["knob"].values()]
        mono = all(b > a for a, b in zip(means, means[1:]))
        lines += [f"Measured strength strictly increasing in the knob: {'yes' if mono else 'no'}.", "",
                  "![cut knob](cut_knob.png)", ""]
    lines += ["![memory ablation](memory_ablation.png)", ""]
    path = os.path.join(out, "RESULTS.md")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def main(argv=None) -> int:
    from unityshots_jax.story.story_checkpoint import DEFAULT_CHECKPOINT

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    p.add_argument("--stories", type=int, default=24, help="held-out stories per k")
    p.add_argument("--ks", type=int, nargs="+", default=[3, 6, 9])
    p.add_argument("--knob-shots", type=int, default=6)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="VARIANT",
                   help=f"which of {list(VARIANTS)}")
    p.add_argument("--no-knob", action="store_true", help="skip the cut-knob sweep")
    args = p.parse_args(argv)
    args.checkpoint_label = "shipped toy-world model" if args.checkpoint == DEFAULT_CHECKPOINT else args.checkpoint
    os.makedirs(args.out, exist_ok=True)
    t0 = time.perf_counter()
    results = run(args)
    results["seconds"] = time.perf_counter() - t0
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    plot(results, args.out)
    shown = [a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith("--out")]
    print("wrote", write_markdown(results, args.out, " ".join(["python experiments/toy_world/memory_study.py", *shown])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
