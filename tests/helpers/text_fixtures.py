"""Tiny Gemma-3 configurations and inputs for the text-path tests.

Config "a" is the one the tower was developed against; "b" and "c" were written afterwards and never tuned on:
"b" is a multimodal (Gemma3ForConditionalGeneration) checkpoint in shards, GQA ratio 3, explicit layer_types,
query_pre_attn_scalar ≠ head_dim, a window of 3; "c" is plain multi-head attention (ratio 1) with 7 layers from
the default sliding_window_pattern 6 and a window longer than the sequence.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

WORDS = "a the cat dog sat ran on under mat tree red blue small big and quickly slowly".split()


@dataclasses.dataclass(frozen=True)
class GemmaCase:
    name: str
    text: dict
    multimodal: bool
    tokens: int
    shard_size: str | None = None


def cases() -> dict[str, GemmaCase]:
    from unityshots_jax.reference.tiny_text import tiny_gemma_config

    return {
        "a": GemmaCase("a", tiny_gemma_config(layers=4, hidden=32, heads=4, kv_heads=2, head_dim=16, window=5,
                                              pattern=3), multimodal=False, tokens=12),
        "b": GemmaCase("b", tiny_gemma_config(layers=3, hidden=24, heads=6, kv_heads=2, head_dim=8, window=3,
                                              layer_types=["sliding_attention", "full_attention",
                                                           "sliding_attention"],
                                              rope_factor=4.0, query_pre_attn_scalar=12, vocab=40),
                       multimodal=True, tokens=17, shard_size="4KB"),
        "c": GemmaCase("c", tiny_gemma_config(layers=7, hidden=16, heads=2, kv_heads=2, head_dim=8, window=1024,
                                              intermediate=40), multimodal=False, tokens=9),
    }


def left_padded_inputs(case: GemmaCase, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """ids, mask `[3, tokens]`: a full row, a row with a few pads and a mostly padded row (pad id 0)."""
    rng = np.random.default_rng(seed)
    t = case.tokens
    vocab = case.text["vocab_size"]
    ids = rng.integers(4, vocab, (3, t))
    ids[:, 0] = 2
    mask = np.ones((3, t), np.int64)
    for row, pads in ((1, 3), (2, t - 2)):
        mask[row, :pads] = 0
        ids[row, :pads] = 0
        ids[row, pads] = 2
    return ids, mask


@pytest.fixture(scope="session")
def gemma_dirs(tmp_path_factory):
    """gemma_dirs(name) -> a Hugging Face directory of case `name` (written once per session)."""
    from unityshots_jax.reference.tiny_text import write_gemma_dir

    made: dict[str, str] = {}
    root = tmp_path_factory.mktemp("gemma")

    def get(name: str) -> str:
        if name not in made:
            case = cases()[name]
            path = str(root / name)
            write_gemma_dir(path, case.text, multimodal=case.multimodal, seed=ord(name), words=WORDS,
                            shard_size=case.shard_size)
            made[name] = path
        return made[name]

    return get
