"""Run in a subprocess with 8 forced CPU devices: one LTX-2.3 story on the tiny stack, unsharded and sharded.

argv: story file, converted checkpoint, official file, Gemma directory. Prints one JSON line per mesh:
{"mesh": …, "devices": 8, "frames_err": max |sharded − single| of the decoded frames, "audio_err": … of the
waveform, "video_rel" / "audio_rel": of the final latents relative to their scale}.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys

import jax
import numpy as np

sys.path.insert(0, __file__.rsplit("/tests/", 1)[0])
from unityshots_jax.config_files import apply_override, load_config
from unityshots_jax.pipeline import ltx23_story
from unityshots_jax.pipeline.ltx23_plan import make_plan
from unityshots_jax.prompt.story_prompt import load_story_prompt

ROOT = __file__.rsplit("/tests/", 1)[0]
MESHES = [{"fsdp": 2, "context": 2, "tensor": 2}]


def main() -> None:
    story, converted, weights, gemma = sys.argv[1:5]
    cfg = load_config(os.path.join(ROOT, "configs", "generate_ltx23.py"))
    for item in ("--config.dtype=float32", "--config.height=64", "--config.width=96", "--config.steps=2",
                 "--config.memory=zero-shot", "--config.guidance.video.stg_blocks=(1,)",
                 "--config.guidance.audio.stg_blocks=(1,)", "--config.execution.attention=dense"):
        apply_override(cfg, item)
    cfg.files.weights, cfg.files.text_encoder = weights, gemma
    plan = make_plan(cfg, converted, num_layers=2)
    prompt = load_story_prompt(story)

    def run(mesh):
        """(media, the final latents handed to the decoder) of the story on `mesh` (None: one device)."""
        from unityshots_jax.pipeline import generate

        captured = {}
        decode = generate.StoryGenerator.decode

        def spy(self, story_, video, audio, **kwargs):
            captured["video"], captured["audio"] = np.asarray(video), np.asarray(audio)
            return decode(self, story_, video, audio, **kwargs)

        generate.StoryGenerator.decode = spy
        try:
            result = ltx23_story.run_ltx23_story(dataclasses.replace(plan, mesh=mesh), prompt, seed=3)
        finally:
            generate.StoryGenerator.decode = decode
        return result.media, captured

    single, single_latents = run(None)
    for mesh in MESHES:
        media, lat = run(mesh)
        rel = lambda a, b: float(np.abs(a - b).max() / np.abs(b).max())
        print(json.dumps({
            "mesh": mesh, "devices": len(jax.devices()),
            "frames_err": float(np.abs(media.frames - single.frames).max()),
            "audio_err": float(np.abs(media.audio - single.audio).max()),
            "video_rel": rel(lat["video"], single_latents["video"]),
            "audio_rel": rel(lat["audio"], single_latents["audio"]),
        }), flush=True)


if __name__ == "__main__":
    main()
