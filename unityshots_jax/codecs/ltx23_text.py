"""The text encoder of the `ltx23` codec bundle: `Ltx23TextEncoder` built from a `CodecRequest`.

The request names the Hugging Face Gemma-3 directory (`text_encoder_dir`) and the LTX-2.3 checkpoint or converted
directory holding the text connectors (`weights`); `text_tokens` is the caption length (1024 for LTX-2.3) and
`dtype` the parameter/activation dtype. Encoded captions are cached under `default_cache_dir()`.
"""

from __future__ import annotations

import os

from unityshots_jax.codecs.base import CodecRequest, CodecUnavailable
from unityshots_jax.text.encoder import Ltx23TextEncoder

CACHE_ENV = "UNITYSHOTS_TEXT_CACHE"


def default_cache_dir() -> str | None:
    """`$UNITYSHOTS_TEXT_CACHE` (empty: no cache), else `$XDG_CACHE_HOME/unityshots/ltx23_text` (~/.cache)."""
    if CACHE_ENV in os.environ:
        return os.environ[CACHE_ENV] or None
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "unityshots", "ltx23_text")


def build_text_encoder(request: CodecRequest, *, cache_dir: str | None = "default",
                       allow_empty: bool = False) -> Ltx23TextEncoder:
    """The ltx23 text encoder for `request`; its context widths and length must be the request's."""
    if not request.text_encoder_dir:
        raise CodecUnavailable("ltx23: text_encoder_dir is not set; give the Hugging Face Gemma-3 directory")
    if not request.weights:
        raise CodecUnavailable("ltx23: weights is not set; give the LTX-2.3 checkpoint (or converted directory) "
                               "that holds the text connectors")
    if request.dtype not in ("float32", "bfloat16"):
        raise CodecUnavailable(f"ltx23: text encoder dtype {request.dtype!r} is not float32 or bfloat16")
    encoder = Ltx23TextEncoder(
        request.text_encoder_dir,
        request.weights,
        max_length=request.text_tokens,
        dtype=request.dtype,
        cache_dir=default_cache_dir() if cache_dir == "default" else cache_dir,
        allow_empty=allow_empty,
    )
    for field, want, got in (("video_context_dim", request.video_context_dim, encoder.video_dim),
                             ("audio_context_dim", request.audio_context_dim, encoder.audio_dim)):
        if want != got:
            raise CodecUnavailable(f"ltx23: the text connectors in {request.weights} give width {got}, the model's "
                                   f"{field} is {want}")
    return encoder
