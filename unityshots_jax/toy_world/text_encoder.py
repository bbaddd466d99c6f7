"""A small deterministic text encoder for captions (no downloads): hashed word vectors plus positions.

Text is lower-cased and split into words (runs of letters and digits). Word w becomes a vector whose entries
are uniform with unit variance, read from SHAKE-256("unityshots-toy-text/<stream>/" + w) — the same vector on
every machine, for any word, including words never seen in training. Token i adds 0.5·sin/cos of i (the usual
sinusoidal position code), so order is visible. Up to `tokens` words are kept (the rest dropped, as a real
encoder truncates at its context length); the mask marks real tokens. Video and audio streams read
independent vectors (salted by the stream name) of their own widths.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re

import numpy as np

from unityshots_jax.codecs.base import TextContexts

WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """The encoder's tokens of `text`."""
    return WORD.findall(str(text).lower())


@functools.lru_cache(maxsize=4096)
def _word_vector(stream: str, word: str, dim: int) -> np.ndarray:
    raw = hashlib.shake_256(f"unityshots-toy-text/{stream}/{word}".encode()).digest(4 * dim)
    u = np.frombuffer(raw, dtype="<u4").astype(np.float64) / 2.0**32
    v = ((u - 0.5) * np.sqrt(12.0)).astype(np.float32)
    v.setflags(write=False)
    return v


def _positions(n: int, dim: int) -> np.ndarray:
    i = np.arange(n)[:, None]
    freq = 1.0 / (100.0 ** (np.arange(dim // 2) / max(dim // 2, 1)))
    return np.concatenate([np.sin(i * freq), np.cos(i * freq)], axis=1)[:, :dim].astype(np.float32)


@dataclasses.dataclass(frozen=True)
class HashTextEncoder:
    """tokens: context length S; video_dim / audio_dim: the widths of the two streams' contexts."""

    tokens: int
    video_dim: int
    audio_dim: int

    def encode(self, captions) -> TextContexts:
        """captions (B strings) → `TextContexts`: video `[B, S, video_dim]`, audio `[B, S, audio_dim]`, mask `[B, S]`."""
        if isinstance(captions, str):
            raise TypeError("HashTextEncoder.encode: pass a sequence of captions, not one string")
        parts = [self._encode_one(t) for t in captions]
        return TextContexts(*(np.stack([p[i] for p in parts]) for i in range(3)))

    def _encode_one(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """text → (video context `[S, video_dim]`, audio context `[S, audio_dim]`, mask `[S]` int32)."""
        toks = words(text)[: self.tokens]
        out = []
        for stream, dim in (("video", self.video_dim), ("audio", self.audio_dim)):
            ctx = np.zeros((self.tokens, dim), np.float32)
            if toks:
                ctx[: len(toks)] = np.stack([_word_vector(stream, w, dim) for w in toks]) + 0.5 * _positions(len(toks), dim)
            out.append(ctx)
        mask = np.zeros((self.tokens,), np.int32)
        mask[: max(len(toks), 1)] = 1  # an empty text still attends to one (zero) token
        return out[0], out[1], mask

    def truncated(self, text: str) -> bool:
        """Whether `text` has more words than the encoder keeps."""
        return len(words(text)) > self.tokens
