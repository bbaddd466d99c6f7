"""Run with 8 forced CPU devices: context parallelism under the `fsdp_context` rule preset (weights over
context × fsdp, video tokens over context, attention per shard with K/V all-gathered over context) against one
device. Prints one JSON line per check:
  forward   the transformer on the story model's real masks (padded shots, hidden reference, memory strata)
  gradients d(loss)/d(params) of a fixed linear read-out of that forward
  splash    the same forward with attention="splash" (composition with the Pallas kernel; interpret mode)
  loss      the Shots-Forcing loss and its parameter gradients (3-shot stories, teacher forcing)
  story     a sampled 3-shot story (2 Euler steps, CFG + STG guidance)
Each row has the largest relative difference, how many parameter leaves are sharded and the compiled program's
all-gather count where one is read.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))  # configs/

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

from helpers.story_fixtures import DA, DV, LTX, SC, story, story_params  # noqa: E402
from helpers.story_masks import rel, story_stream_inputs  # noqa: E402
from unityshots_jax.data.random_stories import random_story  # noqa: E402
from unityshots_jax.data.story_batch import pad_story, stack_examples  # noqa: E402
from unityshots_jax.ltx.config import ExecutionConfig  # noqa: E402
from unityshots_jax.ltx.sampler import SamplerConfig  # noqa: E402
from unityshots_jax.ltx.sampling import GuidanceParams  # noqa: E402
from unityshots_jax.ltx.transformer import forward  # noqa: E402
from configs import sharding_rules  # noqa: E402
from unityshots_jax.sharding import build_mesh, logical_to_spec, parse_rules, use_mesh  # noqa: E402
from unityshots_jax.story.shot_scan import SamplingConfig, generate_story  # noqa: E402
from unityshots_jax.story.story_model import abstract_story_model  # noqa: E402
from unityshots_jax.train.shots_forcing import LossConfig, story_loss, to_device  # noqa: E402
from unityshots_jax.train.train_step import param_logical_axes  # noqa: E402

MESH = {"fsdp": 2, "context": 4}
RULES = parse_rules(sharding_rules.fsdp_context())
EXEC = ExecutionConfig()  # attention="auto": flash on CPU


def _place(tree, logical, mesh):
    shardings = jax.tree.map(lambda names: NamedSharding(mesh, logical_to_spec(names, RULES)), logical,
                             is_leaf=lambda x: isinstance(x, tuple))
    return jax.device_put(tree, shardings)


def _batch_first(tree, mesh, axis: int = 0):
    """Leaves with a batch axis at `axis` split over the preset's activation batch axes, the rest replicated."""
    spec = logical_to_spec(("activation_batch",), RULES)
    size = int(np.prod([mesh.shape[a] for a in jax.tree.leaves(tuple(spec))]))

    def put(x):
        if x.ndim > axis and x.shape[axis] % size == 0:
            return jax.device_put(x, NamedSharding(mesh, PartitionSpec(*([None] * axis), *spec)))
        return jax.device_put(x, NamedSharding(mesh, PartitionSpec()))

    return jax.tree.map(put, tree)


def _row(what: str, **values) -> None:
    print(json.dumps({"check": what, "mesh": MESH, "devices": jax.device_count(), **values}), flush=True)


def _all_gathers(fn, *args) -> int:
    hlo = jax.jit(fn).lower(*args).compile().as_text()
    return hlo.count(" all-gather-start(") + hlo.count(" all-gather(")


def transformer_checks(mesh, graphdef, pure, logical) -> None:
    bb_graph = nnx.split(nnx.merge(graphdef, pure).backbone)[0]
    bb = pure["backbone"]
    video, audio = story_stream_inputs()
    wv, wa = (fn(jnp.arange(np.prod(s.latent.shape[:2]) * 16, dtype=jnp.float32)).reshape(*s.latent.shape[:2], 16)
              for fn, s in ((jnp.cos, video), (jnp.sin, audio)))

    def loss(params, v_in, a_in):
        v, a = forward(bb_graph, params, v_in, a_in, None, EXEC)
        return jnp.sum(v * wv) + jnp.sum(a * wa)

    ref = forward(bb_graph, bb, video, audio, None, EXEC)
    ref_grads = jax.jit(jax.grad(loss))(bb, video, audio)
    ref_splash = forward(bb_graph, bb, video, audio, None, ExecutionConfig(attention="splash"))
    placed = _place(bb, logical["backbone"], mesh)
    v_in, a_in = _batch_first((video, audio), mesh)
    with use_mesh(mesh, RULES):
        out = forward(bb_graph, placed, v_in, a_in, None, EXEC)
        grads = jax.jit(jax.grad(loss))(placed, v_in, a_in)
        splash = forward(bb_graph, placed, v_in, a_in, None, ExecutionConfig(attention="splash"))
        gathers = _all_gathers(lambda p, v, a: forward(bb_graph, p, v, a, None, EXEC), placed, v_in, a_in)
    sharded = sum(1 for x in jax.tree.leaves(placed) if not x.sharding.is_fully_replicated)
    _row("forward", rel=max(rel(o, r) for o, r in zip(out, ref)), sharded_leaves=sharded, all_gathers=gathers)
    _row("gradients", rel=max(rel(g, r) for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads))),
         sharded_leaves=sharded)
    _row("splash", rel=max(rel(o, r) for o, r in zip(splash, ref_splash)),
         rel_to_flash=max(rel(o, r) for o, r in zip(splash, ref)), sharded_leaves=sharded)


def loss_checks(mesh, graphdef, pure, logical) -> None:
    rng = np.random.default_rng(0)
    records = [random_story(SC, rng, video_context_dim=DV, audio_context_dim=DA, k=3) for _ in range(2)]
    batch = to_device(stack_examples([pad_story(r, SC) for r in records]))

    def loss(params, batch):
        value, _ = story_loss(nnx.merge(graphdef, params), batch, jax.random.key(3), LossConfig(), EXEC)
        return value

    fn = jax.jit(jax.value_and_grad(loss))
    ref_loss, ref_grads = fn(pure, batch)
    placed = _place(pure, logical, mesh)
    with use_mesh(mesh, RULES):
        value, grads = fn(placed, _batch_first(batch, mesh))
    _row("loss", rel=rel(value, ref_loss), loss=float(value),
         grad_rel=max(rel(g, r) for g, r in zip(jax.tree.leaves(grads), jax.tree.leaves(ref_grads))))


def story_checks(mesh, graphdef, pure, logical) -> None:
    inputs = story(SC, 3, [["i2v", "t2v", "r2v"], ["t2v", "r2v", "t2v"]], n_frames=[[5, 6, 4], [6, 4, 5]],
                   n_audio=[[7, 8, 6], [8, 5, 7]])
    sampling = SamplingConfig(SamplerConfig(steps=2), video=GuidanceParams(3.0, 1.0, 3.0, 0.7, (1,)),
                              audio=GuidanceParams(7.0, 0.0, 1.0, 0.0, ()))
    ref_v, ref_a, _ = generate_story(graphdef, pure, inputs, jax.random.key(0), sampling, EXEC)
    placed = _place(pure, logical, mesh)
    with use_mesh(mesh, RULES):
        split = _batch_first(inputs, mesh, axis=1)
        v, a, _ = generate_story(graphdef, placed, split, jax.random.key(0), sampling, EXEC)
    _row("story", rel=max(rel(v, ref_v), rel(a, ref_a)))


def main() -> None:
    assert jax.device_count() == 8, jax.devices()
    mesh = build_mesh(MESH)
    graphdef, params = story_params()
    pure = nnx.to_pure_dict(params)
    logical = param_logical_axes(abstract_story_model(LTX, SC))
    for check in sys.argv[1:] or ("transformer", "loss", "story"):
        checks = {"transformer": transformer_checks, "loss": loss_checks, "story": story_checks}
        checks[check](mesh, graphdef, pure, logical)


if __name__ == "__main__":
    main()
