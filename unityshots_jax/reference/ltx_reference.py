"""Tiny random ltx-core `LTXModel`s, written and reloaded in the official single-file checkpoint layout.

Uses only the public ltx-core 1.0.0 API (configurators, `SingleGPUModelBuilder`, SDOps). Imports torch.
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np
import safetensors.torch
import torch
from ltx_core.loader import SingleGPUModelBuilder
from ltx_core.model.transformer import (
    LTXV_MODEL_COMFY_RENAMING_MAP,
    LTXModel,
    LTXModelConfigurator,
    LTXVideoOnlyModelConfigurator,
)
from ltx_core.model.transformer.attention import AttentionFunction
from ltx_core.model.transformer.model import LTXModelType
from ltx_core.model.transformer.rope import LTXRopeType
from ltx_core.model.transformer.text_projection import create_caption_projection

CHECKPOINT_PREFIX = "model.diffusion_model."
MODEL_TYPES = ("audio_video", "video_only", "audio_only")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}


def torch_dtype(name: str) -> torch.dtype:
    """Map a dtype name ("float32", "bfloat16", "float16", "float64") to the torch dtype."""
    if name not in _DTYPES:
        raise ValueError(f"unknown dtype {name!r}; expected one of {sorted(_DTYPES)}")
    return _DTYPES[name]


class AudioOnlyConfigurator:
    """`ModelConfigurator` for an audio-only `LTXModel` (ltx-core 1.0.0 ships none).

    Reads the same config keys with the same defaults as `LTXModelConfigurator`, restricted to the
    audio stream (caption projection inside the transformer when `caption_proj_before_connector` is false).
    """

    @classmethod
    def from_config(cls, config: dict) -> LTXModel:
        """Build an uninitialised `LTXModel(model_type=AudioOnly)` from `{"transformer": {...}}`."""
        cfg = config.get("transformer", {})
        caption_projection = None
        if not cfg.get("caption_proj_before_connector", False):
            with torch.device("meta"):
                caption_projection = create_caption_projection(cfg, audio=True)
        return LTXModel(
            model_type=LTXModelType.AudioOnly,
            num_layers=cfg.get("num_layers", 48),
            norm_eps=cfg.get("norm_eps", 1e-06),
            attention_type=AttentionFunction(cfg.get("attention_type", "default")),
            positional_embedding_theta=cfg.get("positional_embedding_theta", 10000.0),
            timestep_scale_multiplier=cfg.get("timestep_scale_multiplier", 1000),
            use_middle_indices_grid=cfg.get("use_middle_indices_grid", True),
            audio_num_attention_heads=cfg.get("audio_num_attention_heads", 32),
            audio_attention_head_dim=cfg.get("audio_attention_head_dim", 64),
            audio_in_channels=cfg.get("audio_in_channels", 128),
            audio_out_channels=cfg.get("audio_out_channels", 128),
            audio_cross_attention_dim=cfg.get("audio_cross_attention_dim", 2048),
            audio_positional_embedding_max_pos=cfg.get("audio_positional_embedding_max_pos", [20]),
            rope_type=LTXRopeType(cfg.get("rope_type", "interleaved")),
            double_precision_rope=cfg.get("frequencies_precision", False) == "float64",
            apply_gated_attention=cfg.get("apply_gated_attention", False),
            audio_caption_projection=caption_projection,
            cross_attention_adaln=cfg.get("cross_attention_adaln", False),
        )


def configurator_for(model_type: str) -> type:
    """The configurator class for `model_type` in `MODEL_TYPES` (official ones for AV and video-only)."""
    configurators = {
        "audio_video": LTXModelConfigurator,
        "video_only": LTXVideoOnlyModelConfigurator,
        "audio_only": AudioOnlyConfigurator,
    }
    if model_type not in configurators:
        raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")
    return configurators[model_type]


@torch.no_grad()
def build_random_reference(config: dict, seed: int, *, model_type: str = "audio_video") -> torch.nn.Module:
    """Build a float32 `LTXModel` from a `transformer` config with deterministic random weights, in eval mode.

    Every parameter (visited in `named_parameters()` order) is drawn from one `torch.Generator(seed)`:
    `0.2 * N(0, 1)`; `0.5 * N(0, 1)` for names containing `scale_shift_table`; `1 + 0.1 * N(0, 1)` for
    `q_norm.weight` / `k_norm.weight`. Parameters the configurator leaves on the meta device (the 19B
    caption projections) are materialised on CPU first.
    """
    model = configurator_for(model_type).from_config({"transformer": config})
    if any(p.is_meta for p in model.parameters()) or any(b.is_meta for b in model.buffers()):
        if any(True for _ in model.buffers()):
            raise RuntimeError("meta buffers cannot be materialised deterministically")
        model = model.to_empty(device=torch.device("cpu"))
    model = model.to(dtype=torch.float32)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    for name, param in model.named_parameters():
        noise = torch.randn(param.shape, generator=generator, dtype=torch.float32)
        if name.endswith(("q_norm.weight", "k_norm.weight")):
            value = 1.0 + 0.1 * noise
        elif "scale_shift_table" in name:
            value = 0.5 * noise
        else:
            value = 0.2 * noise
        param.copy_(value)
    return model.eval()


def save_official_checkpoint(
    model: torch.nn.Module,
    config: dict,
    path: str | os.PathLike,
    *,
    extra_tensors: dict[str, np.ndarray] | None = None,
    model_version: str = "2.3.0",
) -> None:
    """Write `model` as a single-file safetensors checkpoint in the official LTX layout.

    Keys: every state-dict key prefixed `model.diffusion_model.` (contiguous CPU tensors, model dtype);
    `extra_tensors` are added verbatim (full file keys, numpy arrays, e.g. from `add_fake_connector_tensors`).
    Metadata: `{"config": json.dumps({"transformer": config}), "model_version": model_version}`.
    The file is written to a temporary name in the same folder and renamed into place.
    """
    tensors = {CHECKPOINT_PREFIX + key: value.detach().to("cpu").contiguous()
               for key, value in model.state_dict().items()}
    for key, array in (extra_tensors or {}).items():
        if key in tensors:
            raise ValueError(f"extra tensor {key!r} collides with a model tensor")
        tensors[key] = torch.from_numpy(np.ascontiguousarray(array))
    metadata = {"config": json.dumps({"transformer": config}), "model_version": model_version}
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(prefix=".tmp_ckpt_", suffix=".safetensors", dir=folder)
    os.close(fd)
    try:
        safetensors.torch.save_file(tensors, tmp_path, metadata=metadata)
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise


def add_fake_connector_tensors(config: dict, seed: int) -> dict[str, np.ndarray]:
    """Small float32 stand-ins for the text-side tensors stored in the same checkpoint file.

    Returns file keys -> arrays: `model.diffusion_model.{video,audio}_embeddings_connector.*` (learnable
    registers `[4, D]`, one attention `to_q` `[D, D]` + bias `[D]`, one FF `[4D, D]`) and
    `text_embedding_projection.{video,audio}_aggregate_embed.{weight,bias}` (`[D, caption_channels*3]`, `[D]`),
    with `D` = Dv (video) / Da (audio). A transformer converter must keep these out of the transformer.
    """
    rng = np.random.default_rng(seed)
    widths = {
        "video": config["num_attention_heads"] * config["attention_head_dim"],
        "audio": config["audio_num_attention_heads"] * config["audio_attention_head_dim"],
    }
    features = config.get("caption_channels", 24) * 3

    def normal(*shape: int) -> np.ndarray:
        return (0.2 * rng.standard_normal(shape)).astype(np.float32)

    tensors: dict[str, np.ndarray] = {}
    for stream, dim in widths.items():
        connector = f"{CHECKPOINT_PREFIX}{stream}_embeddings_connector."
        block = connector + "transformer_1d_blocks.0."
        tensors[connector + "learnable_registers"] = normal(4, dim)
        tensors[block + "attn1.to_q.weight"] = normal(dim, dim)
        tensors[block + "attn1.to_q.bias"] = normal(dim)
        tensors[block + "ff.net.0.proj.weight"] = normal(4 * dim, dim)
        projection = f"text_embedding_projection.{stream}_aggregate_embed."
        tensors[projection + "weight"] = normal(dim, features)
        tensors[projection + "bias"] = normal(dim)
    return tensors


def load_reference(
    path: str | os.PathLike,
    dtype: str = "float32",
    *,
    threads: int | None = 1,
    model_type: str = "audio_video",
) -> torch.nn.Module:
    """Load an `LTXModel` from a single-file checkpoint through the official ltx-core loader, in eval mode.

    `SingleGPUModelBuilder(model_class_configurator=..., model_path=path,
    model_sd_ops=LTXV_MODEL_COMFY_RENAMING_MAP).build(device=cpu, dtype=dtype)`; the config comes from the
    file's `metadata["config"]`. `threads` (if not None) is passed to `torch.set_num_threads` (fp32 outputs
    change by ~2e-6 between thread counts). `dtype="float64"` loads the float32 model and `.double()`s it (the
    ground-truth run of the parity criterion; run it through `run_reference(..., "float64")`). Raises
    RuntimeError if any parameter stayed on the meta device (the builder itself only logs a warning and returns
    the meta model).
    """
    if threads is not None:
        torch.set_num_threads(threads)
    builder = SingleGPUModelBuilder(
        model_class_configurator=configurator_for(model_type),
        model_path=os.fspath(path),
        model_sd_ops=LTXV_MODEL_COMFY_RENAMING_MAP,
    )
    model = builder.build(device=torch.device("cpu"), dtype=torch_dtype("float32" if dtype == "float64" else dtype))
    if dtype == "float64":
        model = model.double()
    missing = [name for name, p in model.named_parameters() if p.is_meta]
    if missing:
        raise RuntimeError(f"checkpoint {path} left {len(missing)} parameters uninitialised, e.g. {missing[:5]}")
    return model.eval()
