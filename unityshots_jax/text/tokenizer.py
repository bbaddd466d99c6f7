"""ltx-core 1.0.0's Gemma tokenizer rules (`LTXVGemmaTokenizer`), through the `tokenizers` library (no torch).

Per caption: text stripped; encoded with the tokenizer's special tokens (Gemma: a leading `<bos>`, no `<eos>`);
truncated to `max_length` (default 1024; the tokenizer's `truncation_side`, right by default); padded on the
LEFT to exactly `max_length` with the pad token, or with eos when the tokenizer has no pad token. A caption that
had to be truncated is reported (`TokenizedCaptions.truncated` and a `CaptionTruncated` warning), never cut
silently.

Files: `tokenizer.json` (required), `tokenizer_config.json` and `special_tokens_map.json` (optional), read as
transformers' `AutoTokenizer` reads them for the classes Gemma checkpoints name (GemmaTokenizer[Fast], whose
post-processor transformers rebuilds from `add_bos_token` / `add_eos_token`) and for PreTrainedTokenizerFast
(tokenizer.json's own post-processor).
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Sequence

import numpy as np

MAX_LENGTH = 1024
_GEMMA_CLASSES = ("GemmaTokenizer", "GemmaTokenizerFast")
_GENERIC_CLASSES = ("PreTrainedTokenizerFast",)
_TOKEN_KEYS = ("bos_token", "eos_token", "pad_token", "unk_token")
_GEMMA_DEFAULTS = {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
                   "add_bos_token": True, "add_eos_token": False}


class TokenizerError(ValueError):
    """Tokenizer files that cannot be used; the message names the file and field."""


class CaptionTruncated(UserWarning):
    """A caption longer than `max_length` tokens was truncated."""


@dataclasses.dataclass(frozen=True)
class TokenizedCaptions:
    """ids, mask `[batch, max_length]` int32 (left padded; mask 1 = real token); truncated: one flag per caption."""

    ids: np.ndarray
    mask: np.ndarray
    truncated: tuple[bool, ...]


def _read_json(path: str) -> dict:
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as f:
            out = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise TokenizerError(f"{path}: unreadable ({e})") from None
    if not isinstance(out, dict):
        raise TokenizerError(f"{path}: expected a JSON object")
    return out


def _content(value: object) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value if value is None or isinstance(value, str) else None


def _settings(directory: str) -> dict:
    """Special tokens and switches: class defaults ← tokenizer_config.json ← special_tokens_map.json."""
    config_path = os.path.join(directory, "tokenizer_config.json")
    config = _read_json(config_path)
    cls = config.get("tokenizer_class", "PreTrainedTokenizerFast")
    if cls not in _GEMMA_CLASSES + _GENERIC_CLASSES:
        raise TokenizerError(f"{config_path}: tokenizer_class {cls!r} is not supported "
                             f"(expected one of {', '.join(_GEMMA_CLASSES + _GENERIC_CLASSES)})")
    out = dict(_GEMMA_DEFAULTS) if cls in _GEMMA_CLASSES else {}
    out.update({k: config[k] for k in _TOKEN_KEYS + ("add_bos_token", "add_eos_token") if k in config})
    special = _read_json(os.path.join(directory, "special_tokens_map.json"))
    out.update({k: v for k, v in special.items() if k in _TOKEN_KEYS})
    out = {k: (_content(v) if k in _TOKEN_KEYS else v) for k, v in out.items()}
    out["gemma"] = cls in _GEMMA_CLASSES
    out["truncation_side"] = config.get("truncation_side", "right")
    return out


class GemmaTokenizer:
    """Tokenizes captions as ltx-core 1.0.0 does for Gemma (see the module docstring)."""

    def __init__(self, directory: str, max_length: int = MAX_LENGTH):
        from tokenizers import Tokenizer, processors

        path = os.path.join(directory, "tokenizer.json")
        if not os.path.isfile(path):
            raise TokenizerError(f"{path}: missing; the Gemma directory must hold its tokenizer.json "
                                 "(a sentencepiece tokenizer.model alone is not read)")
        if max_length < 1:
            raise TokenizerError(f"max_length must be positive, got {max_length}")
        try:
            tok = Tokenizer.from_file(path)
        except Exception as e:  # the tokenizers library raises its own exception type
            raise TokenizerError(f"{path}: not a tokenizers file ({e})") from None
        s = _settings(directory)
        self.max_length = max_length
        self.special = {k: s.get(k) for k in ("bos_token", "eos_token", "pad_token")}
        ids = {}
        for key in ("bos_token", "eos_token", "pad_token"):
            token = s.get(key)
            if token is not None:
                ids[key] = tok.token_to_id(token)
                if ids[key] is None:
                    raise TokenizerError(f"{path}: {key} {token!r} is not in the vocabulary")
        pad_key = "pad_token" if "pad_token" in ids else "eos_token"
        if pad_key not in ids:
            raise TokenizerError(f"{directory}: the tokenizer has neither a pad_token nor an eos_token to pad with")
        self.pad_id = int(ids[pad_key])
        if s["gemma"]:
            add_bos, add_eos = bool(s["add_bos_token"]), bool(s["add_eos_token"])
            for flag, key in ((add_bos, "bos_token"), (add_eos, "eos_token")):
                if flag and key not in ids:
                    raise TokenizerError(f"{directory}: add_{key} is set but there is no {key}")
            single = " ".join(([f"{s['bos_token']}:0"] if add_bos else []) + ["$A:0"] +
                              ([f"{s['eos_token']}:0"] if add_eos else []))
            specials = [(s[k], ids[k]) for k, f in (("bos_token", add_bos), ("eos_token", add_eos)) if f]
            pair = f"{single} " + " ".join(([f"{s['bos_token']}:1"] if add_bos else []) + ["$B:1"] +
                                           ([f"{s['eos_token']}:1"] if add_eos else []))
            tok.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=specials)
        tok.no_padding()
        tok.enable_truncation(max_length, direction=s["truncation_side"])
        self._tok = tok

    def __call__(self, captions: Sequence[str]) -> TokenizedCaptions:
        """captions (B strings) → `TokenizedCaptions` `[B, max_length]`; warns `CaptionTruncated` per long caption."""
        if isinstance(captions, str):
            raise TypeError("captions: expected a sequence of strings, got one string")
        encodings = self._tok.encode_batch([c.strip() for c in captions])
        b, n = len(captions), self.max_length
        ids = np.full((b, n), self.pad_id, np.int32)
        mask = np.zeros((b, n), np.int32)
        truncated = []
        for i, enc in enumerate(encodings):
            row = enc.ids
            ids[i, n - len(row):] = row
            mask[i, n - len(row):] = 1
            truncated.append(bool(enc.overflowing))
            if truncated[-1]:
                warnings.warn(f"caption {i} is longer than {n} tokens and was truncated: {captions[i][:60]!r}…",
                              CaptionTruncated, stacklevel=2)
        return TokenizedCaptions(ids, mask, tuple(truncated))
