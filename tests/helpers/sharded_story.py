"""Run in a subprocess with 8 forced CPU devices: the shot scan sharded over several meshes vs one device.

Prints one JSON line per mesh: {"mesh": …, "video_rel": …, "audio_rel": …, "sharded_leaves": …}.
"""

from __future__ import annotations

import json
import sys

import jax
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

sys.path.insert(0, __file__.rsplit("/tests/", 1)[0])
from tests.helpers.inputs import randomize  # noqa: E402
from unityshots_jax.ltx.config import ExecutionConfig, LTXConfig, StreamConfig  # noqa: E402
from unityshots_jax.ltx.sampler import SamplerConfig  # noqa: E402
from unityshots_jax.ltx.sampling import GuidanceParams  # noqa: E402
from configs import sharding_rules  # noqa: E402
from unityshots_jax.sharding import build_mesh, logical_to_spec, parse_rules, use_mesh  # noqa: E402
from unityshots_jax.story.shot_scan import SamplingConfig, generate_story  # noqa: E402
from unityshots_jax.story.story_config import StoryConfig  # noqa: E402
from unityshots_jax.story.story_inputs import make_story_inputs  # noqa: E402
from unityshots_jax.story.story_model import abstract_story_model  # noqa: E402
from unityshots_jax.train.train_step import param_logical_axes  # noqa: E402

RULES = parse_rules(sharding_rules.default())

MESHES = [{"fsdp": 2, "context": 2, "tensor": 2}, {"data": 2, "context": 2, "tensor": 2}, {"fsdp": 4, "tensor": 2}]
LTX = LTXConfig(
    model_type="audio_video", num_layers=2, video=StreamConfig(2, 16, 16, 16, 32, (20, 2048, 2048)),
    audio=StreamConfig(2, 8, 16, 16, 16, (20,)), av_ca_timestep_scale_multiplier=1000.0,
)
SC = StoryConfig(max_shots=4, video_frames=6, height=2, width=3, latent_channels=16, audio_frames=8,
                 audio_channels=16, text_tokens=4, ref_audio_frames=4, frame_limit=32)


def main() -> None:
    rng = np.random.default_rng(0)
    b, k = 2, 3
    inputs = make_story_inputs(
        SC, video_context=rng.standard_normal((b, k, 4, 32)), audio_context=rng.standard_normal((b, k, 4, 16)),
        context_mask=np.ones((b, k, 4)), modes=[["i2v", "t2v", "r2v"]] * b, cut_strength=[[0.0, 0.4, 1.0]] * b,
        n_frames=[[5, 6, 4]] * b, n_audio=[[7, 8, 6]] * b, first_frame=rng.standard_normal((b, k, 2, 3, 16)),
        ref_image=rng.standard_normal((b, 1, 2, 3, 16)), ref_audio=rng.standard_normal((b, 4, 16)),
    )
    abstract = abstract_story_model(LTX, SC)
    graphdef, state = nnx.split(abstract)
    params = randomize(state, seed=3)
    sampling = SamplingConfig(SamplerConfig(steps=2), video=GuidanceParams(3.0, 1.0, 3.0, 0.7, (1,)),
                              audio=GuidanceParams(7.0, 0.0, 1.0, 0.0, ()))
    execution = ExecutionConfig(attention="dense")
    ref_v, ref_a, _ = generate_story(graphdef, params, inputs, jax.random.key(0), sampling, execution)
    logical = param_logical_axes(abstract)
    pure = nnx.to_pure_dict(params)
    for shape in MESHES:
        mesh = build_mesh(shape)
        shardings = jax.tree.map(lambda names: NamedSharding(mesh, logical_to_spec(names, RULES)), logical,
                                 is_leaf=lambda x: isinstance(x, tuple))
        placed = jax.device_put(pure, shardings)
        sharded = sum(1 for x in jax.tree.leaves(placed) if not x.sharding.is_fully_replicated)
        data_spec = logical_to_spec(("activation_batch",), RULES)
        if b % (mesh.shape["data"] * mesh.shape["fsdp"]):
            data_spec = PartitionSpec(None)  # stories cannot split over this mesh: replicate them
        batch_in = jax.tree.map(
            lambda x: jax.device_put(x, NamedSharding(mesh, PartitionSpec(None, *data_spec) if x.ndim >= 2 and x.shape[1] == b else PartitionSpec())),
            inputs,
        )
        with use_mesh(mesh, RULES):
            v, a, _ = generate_story(graphdef, placed, batch_in, jax.random.key(0), sampling, execution)
        rel = lambda x, r: float(np.abs(np.asarray(x) - np.asarray(r)).max() / np.abs(np.asarray(r)).max())  # noqa: E731
        print(json.dumps({"mesh": shape, "video_rel": rel(v, ref_v), "audio_rel": rel(a, ref_a), "sharded_leaves": sharded,
                          "devices": len(jax.devices())}), flush=True)


if __name__ == "__main__":
    main()
