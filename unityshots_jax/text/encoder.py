"""The `ltx23` text encoder: captions → LTX-2.3 video and audio contexts, as ltx-core 1.0.0 computes them.

    tokenize (ltx-core rules, left padded to max_length) → Gemma-3 text tower (all hidden states)
      → FeatureExtractorV2 → video / audio connectors → contexts `[B, max_length, Dv]`, `[B, max_length, Da]`

All captions of a call go through one jitted forward (compiled once per batch size). Results are cached on disk
per caption, keyed by (caption, weights fingerprint, max_length, dtype), one safetensors file each, written
atomically; a story re-run or a data job never encodes a caption twice.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from unityshots_jax.checkpoint.safetensors_io import CheckpointError, SafetensorsFile, write_safetensors
from unityshots_jax.codecs.base import TextContexts
from unityshots_jax.sharding import Rules
from unityshots_jax.text.connector import NUM_REGISTERS
from unityshots_jax.text.embeddings import TextEmbeddings, load_text_embeddings
from unityshots_jax.text.gemma3.loading import load_tower, weight_files
from unityshots_jax.text.gemma3.model import Gemma3TextTower
from unityshots_jax.text.tokenizer import MAX_LENGTH, CaptionTruncated, GemmaTokenizer

CACHE_FORMAT = "unityshots-ltx23-text-v1"
_SAMPLE = 1 << 20  # bytes hashed at the start, middle and end of each weights file


class EmptyCaption(ValueError):
    """A caption that is empty after stripping, where the encoder requires text."""


def _file_fingerprint(h: "hashlib._Hash", path: str) -> None:
    """Feed `path`'s name, size and sampled content (start, middle, end) into `h`."""
    size = os.path.getsize(path)
    h.update(f"{os.path.basename(path)}\0{size}\0".encode())
    with open(path, "rb") as f:
        for offset in sorted({0, max(0, size // 2 - _SAMPLE // 2), max(0, size - _SAMPLE)}):
            f.seek(offset)
            h.update(f.read(_SAMPLE))


def weights_fingerprint(gemma_dir: str, ltx_weights: str) -> str:
    """sha256 over the Gemma config and tokenizer files, each weights file's size and sampled bytes (which include
    its safetensors header: every name, shape and dtype), and the same for the LTX text tensors' file."""
    h = hashlib.sha256(CACHE_FORMAT.encode())
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        path = os.path.join(gemma_dir, name)
        if os.path.isfile(path):
            _file_fingerprint(h, path)
    for path in sorted(set(weight_files(gemma_dir).values())):
        _file_fingerprint(h, path)
    if os.path.isdir(ltx_weights):
        for name in ("config.json", "extras.safetensors"):
            _file_fingerprint(h, os.path.join(ltx_weights, name))
    else:
        _file_fingerprint(h, ltx_weights)
    return h.hexdigest()


@functools.partial(jax.jit, static_argnames=("tower_def", "emb_def", "dtype"))
def _encode(tower_def: nnx.GraphDef, tower_params: nnx.State, emb_def: nnx.GraphDef, emb_params: nnx.State,
            ids: jnp.ndarray, mask: jnp.ndarray, dtype: str) -> tuple[jnp.ndarray, jnp.ndarray]:
    """ids, mask `[batch, tokens]` → (video `[batch, tokens, Dv]`, audio `[batch, tokens, Da]`) float32."""
    states = nnx.merge(tower_def, tower_params)(ids, mask, jnp.dtype(dtype))
    video, audio = nnx.merge(emb_def, emb_params)(states, mask)
    return video.astype(jnp.float32), audio.astype(jnp.float32)


class Ltx23TextEncoder:
    """`TextEncoder` (codecs/base.py) over a Hugging Face Gemma-3 directory and the LTX-2.3 text tensors.

    gemma_dir: Hugging Face directory (config.json, safetensors weights, tokenizer.json);
    ltx_weights: the official LTX-2.3 checkpoint file or a directory converted from it;
    max_length: tokens per caption (ltx-core: 1024; a multiple of 128 for the connectors' registers);
    dtype: "float32" or "bfloat16" (parameters and activations);
    cache_dir: where encoded captions are kept (None: no cache);
    allow_empty: accept captions that are empty after stripping (e.g. an unconditional negative prompt);
    mesh, rules: place the parameters sharded over `mesh` by their logical axes under `rules` (the run's logical →
    mesh pairs); run `encode` inside `sharding.use_mesh(mesh, rules)` to shard the activations the same way.
    """

    def __init__(self, gemma_dir: str, ltx_weights: str, *, max_length: int = MAX_LENGTH, dtype: str = "float32",
                 cache_dir: str | None = None, allow_empty: bool = False, mesh: Mesh | None = None, rules: Rules | None = None):
        if max_length < 1 or max_length % NUM_REGISTERS:
            raise ValueError(f"max_length {max_length}: the connectors need a positive multiple of {NUM_REGISTERS} "
                             "tokens (ltx-core: 1024)")
        if dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype {dtype!r}: expected 'float32' or 'bfloat16'")
        self.tokenizer = GemmaTokenizer(gemma_dir, max_length)
        tower: Gemma3TextTower = load_tower(gemma_dir, dtype, mesh, rules)
        emb: TextEmbeddings = load_text_embeddings(ltx_weights, tower.cfg.hidden_size, tower.cfg.num_states, dtype,
                                                   mesh, rules)
        self._tower = nnx.split(tower)
        self._emb = nnx.split(emb)
        self.tokens = max_length
        self.video_dim = emb.video_connector.cfg.dim
        self.audio_dim = emb.audio_connector.cfg.dim
        self.dtype = dtype
        self.allow_empty = allow_empty
        self.cache_dir = cache_dir
        self.fingerprint = weights_fingerprint(gemma_dir, ltx_weights) if cache_dir else None
        self.last_truncated: tuple[bool, ...] = ()

    def _cache_path(self, caption: str) -> str:
        key = hashlib.sha256(f"{self.fingerprint}\0{self.tokens}\0{self.dtype}\0{caption}".encode()).hexdigest()
        return os.path.join(self.cache_dir, key[:2], key + ".safetensors")

    def _cached(self, caption: str) -> tuple[np.ndarray, np.ndarray] | None:
        path = self._cache_path(caption)
        if not os.path.isfile(path):
            return None
        try:
            f = SafetensorsFile(path)
            if f.metadata.get("caption") != caption or f.metadata.get("fingerprint") != self.fingerprint:
                return None
            video, audio = np.array(f.read("video"), np.float32), np.array(f.read("audio"), np.float32)
        except (CheckpointError, KeyError):
            return None  # a damaged entry is recomputed and rewritten
        if video.shape != (self.tokens, self.video_dim) or audio.shape != (self.tokens, self.audio_dim):
            return None
        return video, audio

    def _store(self, caption: str, video: np.ndarray, audio: np.ndarray) -> None:
        path = self._cache_path(caption)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        meta = {"format": CACHE_FORMAT, "caption": caption, "fingerprint": self.fingerprint}
        store = np.dtype(ml_dtypes.bfloat16) if self.dtype == "bfloat16" else np.dtype(np.float32)  # exact either way
        write_safetensors(path, {"video": video.astype(store), "audio": audio.astype(store)}, meta)

    def truncated(self, caption: str) -> bool:
        """Whether `caption` is longer than `tokens` (the rest would be ignored; callers warn). No warning here."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CaptionTruncated)
            return self.tokenizer([caption]).truncated[0]

    def encode(self, captions: Sequence[str]) -> TextContexts:
        """captions (B strings) → `TextContexts` video `[B, tokens, Dv]`, audio `[B, tokens, Da]` float32 and mask
        `[B, tokens]` int32 (all ones: the connectors' registers fill the padding). Truncated captions warn
        (`CaptionTruncated`) and are listed in `last_truncated`."""
        captions = list(captions)
        if not captions:
            raise ValueError("encode: no captions given")
        for i, c in enumerate(captions):
            if not isinstance(c, str):
                raise TypeError(f"caption {i}: expected a string, got {type(c).__name__}")
            if not self.allow_empty and not c.strip():
                raise EmptyCaption(f"caption {i} is empty; the ltx23 text encoder needs text (allow_empty=True to "
                                   "encode empty captions, e.g. an unconditional negative prompt)")
        tokens = self.tokenizer(captions)
        self.last_truncated = tokens.truncated
        results: list[tuple[np.ndarray, np.ndarray] | None] = [
            self._cached(c) if self.cache_dir else None for c in captions]
        todo = [i for i, r in enumerate(results) if r is None]
        if todo:
            video, audio = _encode(*self._tower, *self._emb, jnp.asarray(tokens.ids[todo]),
                                   jnp.asarray(tokens.mask[todo]), self.dtype)
            video, audio = np.asarray(video), np.asarray(audio)
            for j, i in enumerate(todo):
                results[i] = (video[j], audio[j])
                if self.cache_dir:
                    self._store(captions[i], video[j], audio[j])
        return TextContexts(
            video=np.stack([r[0] for r in results]),
            audio=np.stack([r[1] for r in results]),
            mask=np.ones((len(captions), self.tokens), np.int32),
        )
