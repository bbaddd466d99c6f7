"""Reference side of the text-path parity tests (imports torch, transformers and ltx-core).

* tiny random Gemma-3 models written as Hugging Face directories (`save_pretrained`, safetensors, optional
  shards), with a tiny word-level tokenizer carrying Gemma's special tokens;
* transformers' hidden states for given ids/mask (float32 or float64);
* a tiny ltx-core text embeddings processor (FeatureExtractorV2 + the two connectors) built directly, as the
  ltx-core configurator hard-codes the 12B Gemma sizes, and written in the official checkpoint layout;
* ltx-core's whole text path (LTXVGemmaTokenizer → GemmaTextEncoder.encode → process_hidden_states) around the
  tiny Gemma.
"""

from __future__ import annotations

import copy
import json
import os

import numpy as np
import torch

SPECIAL = ("<pad>", "<eos>", "<bos>", "<unk>")  # ids 0..3, as in Gemma's vocabulary


def tiny_gemma_config(*, layers: int, hidden: int, heads: int, kv_heads: int, head_dim: int, window: int,
                      vocab: int = 64, intermediate: int | None = None, pattern: int | None = None,
                      layer_types: list[str] | None = None, rope_factor: float = 8.0,
                      query_pre_attn_scalar: int | None = None) -> dict:
    """A `Gemma3TextConfig` dict (model_type gemma3_text) with every field the text tower reads."""
    cfg = {
        "model_type": "gemma3_text",
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": intermediate or 3 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "query_pre_attn_scalar": query_pre_attn_scalar or head_dim,
        "sliding_window": window,
        "rope_theta": 1_000_000.0,
        "rope_local_base_freq": 10_000.0,
        "rope_scaling": {"rope_type": "linear", "factor": rope_factor},
        "rms_norm_eps": 1e-6,
        "max_position_embeddings": 4096,
        "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2,
    }
    if layer_types is not None:
        cfg["layer_types"] = layer_types
    if pattern is not None:
        cfg["sliding_window_pattern"] = pattern
    return cfg


def _randomize(model: torch.nn.Module, seed: int, norm_center: float = 0.0) -> None:
    """Seeded random parameters: norms `norm_center + 0.3·N`, embeddings and registers N, biases 0.2·N, matrices
    N/√fan_in (uninitialised or zero-initialised parameters would hide mistakes)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            center, scale = 0.0, p.shape[-1] ** -0.5
            if "norm" in name:
                center, scale = norm_center, 0.3
            elif "embed_tokens" in name or "registers" in name:
                scale = 1.0
            elif p.ndim < 2:
                scale = 0.2
            p.copy_((center + torch.randn(p.shape, generator=gen, dtype=torch.float32) * scale).to(p.dtype))


def build_gemma(text_cfg: dict, *, multimodal: bool, seed: int) -> torch.nn.Module:
    """A random Gemma3ForCausalLM, or a Gemma3ForConditionalGeneration with a tiny SigLIP tower, in eval mode."""
    from transformers import Gemma3Config, Gemma3ForCausalLM, Gemma3ForConditionalGeneration, Gemma3TextConfig

    if multimodal:
        vision = {"model_type": "siglip_vision_model", "hidden_size": 16, "intermediate_size": 32,
                  "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 28, "patch_size": 14}
        text = {k: v for k, v in text_cfg.items() if k != "model_type"}
        config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4)
        model = Gemma3ForConditionalGeneration(config)
    else:
        model = Gemma3ForCausalLM(Gemma3TextConfig(**{k: v for k, v in text_cfg.items() if k != "model_type"}))
    _randomize(model, seed)
    return model.eval()


def write_tiny_tokenizer(directory: str, words: list[str], *, pad_token: bool = True,
                         tokenizer_class: str = "GemmaTokenizer") -> None:
    """tokenizer.json (word level, whitespace split, Gemma's special ids) + tokenizer_config.json.

    pad_token False writes `"pad_token": null`, so the tokenizer has no pad token (ltx-core then pads with eos).
    """
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {tok: i for i, tok in enumerate(SPECIAL)}
    for w in words:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(list(SPECIAL))
    os.makedirs(directory, exist_ok=True)
    tok.save(os.path.join(directory, "tokenizer.json"))
    config = {"tokenizer_class": tokenizer_class, "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>",
              "pad_token": "<pad>" if pad_token else None, "add_bos_token": True, "add_eos_token": False,
              "model_max_length": 1_000_000}
    with open(os.path.join(directory, "tokenizer_config.json"), "w") as f:
        json.dump(config, f)


def write_gemma_dir(directory: str, text_cfg: dict, *, multimodal: bool, seed: int, words: list[str],
                    shard_size: str | None = None, pad_token: bool = True) -> torch.nn.Module:
    """Save a random tiny Gemma-3 (safetensors; sharded if `shard_size`, e.g. "20KB") and a tokenizer."""
    model = build_gemma(text_cfg, multimodal=multimodal, seed=seed)
    kwargs = {"max_shard_size": shard_size} if shard_size else {}
    model.save_pretrained(directory, safe_serialization=True, **kwargs)
    write_tiny_tokenizer(directory, words, pad_token=pad_token)
    return model


def load_gemma(directory: str, *, double: bool) -> torch.nn.Module:
    """The directory's model through transformers' own loader (float32, or float64 after `.double()`)."""
    from transformers import AutoConfig, Gemma3ForCausalLM, Gemma3ForConditionalGeneration

    cls = Gemma3ForConditionalGeneration if AutoConfig.from_pretrained(directory).model_type == "gemma3" else Gemma3ForCausalLM
    model = cls.from_pretrained(directory, torch_dtype=torch.float32).eval()
    return model.double() if double else model


def gemma_states(model: torch.nn.Module, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`model.model(ids, mask, output_hidden_states=True)` (as ltx-core calls it) → `[L+1, batch, tokens, hidden]`."""
    with torch.no_grad():
        out = model.model(input_ids=torch.from_numpy(ids).long(), attention_mask=torch.from_numpy(mask).long(),
                          output_hidden_states=True)
    return np.stack([(h.float() if h.dtype == torch.bfloat16 else h).numpy() for h in out.hidden_states])


def build_processor(transformer_cfg: dict, dim: int, num_states: int, seed: int) -> torch.nn.Module:
    """A random ltx-core EmbeddingsProcessor (FeatureExtractorV2 for a Gemma of width `dim` with `num_states`
    hidden states, and the configurators' video / audio connectors), float32 except the bf16 registers."""
    from ltx_core.text_encoders.gemma.embeddings_connector import (
        AudioEmbeddings1DConnectorConfigurator,
        Embeddings1DConnectorConfigurator,
    )
    from ltx_core.text_encoders.gemma.embeddings_processor import EmbeddingsProcessor
    from ltx_core.text_encoders.gemma.feature_extractor import FeatureExtractorV2

    config = {"transformer": transformer_cfg}
    video = Embeddings1DConnectorConfigurator.from_config(config)
    audio = AudioEmbeddings1DConnectorConfigurator.from_config(config)
    extractor = FeatureExtractorV2(
        video_aggregate_embed=torch.nn.Linear(dim * num_states, video.inner_dim, bias=True),
        embedding_dim=dim,
        audio_aggregate_embed=torch.nn.Linear(dim * num_states, audio.inner_dim, bias=True),
    )
    processor = EmbeddingsProcessor(feature_extractor=extractor, video_connector=video, audio_connector=audio)
    _randomize(processor, seed, norm_center=1.0)
    return processor.eval()


def processor_file_tensors(processor: torch.nn.Module) -> dict[str, np.ndarray]:
    """The processor's state dict under the official checkpoint keys (registers stay bf16, as uint16 bit views
    are not needed: safetensors keeps bf16)."""
    import ml_dtypes

    out = {}
    for key, value in processor.state_dict().items():
        if key.startswith("feature_extractor."):
            name = "text_embedding_projection." + key[len("feature_extractor."):]
        else:
            stream, rest = key.split("_connector.", 1)
            name = f"model.diffusion_model.{stream}_embeddings_connector.{rest}"
        t = value.detach().contiguous()
        if t.dtype == torch.bfloat16:
            out[name] = t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        else:
            out[name] = t.numpy()
    return out


def write_text_checkpoint(path: str, transformer_cfg: dict, processor: torch.nn.Module) -> None:
    """An official-layout single file holding the text-side tensors and `metadata["config"]`."""
    from unityshots_jax.checkpoint.safetensors_io import write_safetensors

    write_safetensors(path, processor_file_tensors(processor), {"config": json.dumps({"transformer": transformer_cfg})})


def _numpy(t: torch.Tensor) -> np.ndarray:
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()


def process(processor: torch.nn.Module, states: list[torch.Tensor], mask: torch.Tensor) -> tuple[np.ndarray, ...]:
    """ltx-core `process_hidden_states`, one prompt at a time (its register fill only handles batch 1).

    states: L+1 tensors `[batch, tokens, dim]`; mask `[batch, tokens]` → (video, audio, mask) numpy, batch stacked.
    """
    outs = []
    with torch.no_grad():
        for b in range(mask.shape[0]):
            res = processor.process_hidden_states(tuple(s[b:b + 1] for s in states), mask[b:b + 1])
            outs.append((_numpy(res.video_encoding), _numpy(res.audio_encoding), res.attention_mask.numpy()))
    return tuple(np.concatenate([o[i] for o in outs]) for i in range(3))


_TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}


def ltx_text_encoder(gemma_dir: str, processor: torch.nn.Module, max_length: int, *, dtype: str = "float32"):
    """ltx-core 1.0.0's text encoding around the tiny Gemma, loaded once: a function captions → (video, audio,
    mask) numpy, each caption through LTXVGemmaTokenizer(max_length) → GemmaTextEncoder.encode →
    EmbeddingsProcessor.process_hidden_states, stacked.

    dtype: "float32" (registers kept in bf16, as ltx-core builds them), "float64" or "bfloat16" (model and
    processor cast, as the pipelines run them)."""
    from ltx_core.text_encoders.gemma.encoders.base_encoder import GemmaTextEncoder
    from ltx_core.text_encoders.gemma.tokenizer import LTXVGemmaTokenizer

    torch_dtype = _TORCH_DTYPES[dtype]
    model = load_gemma(gemma_dir, double=dtype == "float64").to(torch_dtype)
    proc = copy.deepcopy(processor).to(torch_dtype)  # never round the caller's processor
    if dtype == "float32":
        for conn in (proc.video_connector, proc.audio_connector):
            conn.learnable_registers.data = conn.learnable_registers.data.to(torch.bfloat16)
    encoder = GemmaTextEncoder(model=model, tokenizer=LTXVGemmaTokenizer(gemma_dir, max_length))

    def run(captions: list[str]) -> tuple[np.ndarray, ...]:
        outs = []
        with torch.no_grad():
            for caption in captions:
                states, mask = encoder.encode(caption)
                outs.append(process(proc, list(states), mask))
        return tuple(np.concatenate([o[i] for o in outs]) for i in range(3))

    return run


def ltx_text_path(gemma_dir: str, processor: torch.nn.Module, captions: list[str], max_length: int,
                  *, dtype: str = "float32") -> tuple[np.ndarray, ...]:
    """`ltx_text_encoder(...)(captions)`: (video, audio, mask) of ltx-core's text encoding."""
    return ltx_text_encoder(gemma_dir, processor, max_length, dtype=dtype)(captions)


def ltx_token_ids(gemma_dir: str, caption: str, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """LTXVGemmaTokenizer's (ids, mask) `[max_length]` for one caption."""
    from ltx_core.text_encoders.gemma.tokenizer import LTXVGemmaTokenizer

    pairs = LTXVGemmaTokenizer(gemma_dir, max_length).tokenize_with_weights(caption)["gemma"]
    return np.array([int(p[0]) for p in pairs]), np.array([int(p[1]) for p in pairs])
