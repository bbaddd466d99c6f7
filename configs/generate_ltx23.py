"""Real story generation on LTX-2.3 (`unityshots generate STORY -o OUT.mp4 --config configs/generate_ltx23.py`).

Every key can be overridden with `--config.key=value`; the main ones also have flags (`--text-encoder`, `--weights`,
`--upsampler`, `--distilled-lora`, `--pipeline`, `--memory`), which win over the file. An empty string means "not
given". Defaults are LTX-2.3's (ltx-pipelines 1.0.0 `LTX_2_3_PARAMS`): 30 steps, video cfg 3 / STG 1 on block 28 /
rescale 0.7 / modality 3, audio cfg 7 / STG 1 / rescale 0.7 / modality 3, 24 fps, bf16.

pipeline: "one-stage" (the target size, guided), "two-stage" (half size guided, ×2 upsampler, 3 refine steps with
  the distilled LoRA merged into the backbone; needs files.upsampler and files.distilled_lora) or "distilled"
  (the distilled checkpoint: 8 unguided steps at half size, ×2 upsampler, 3 refine steps; needs files.upsampler).
Sharding (mesh, sharding_rules, distributed): see the keys below.

memory: "trained" (the checkpoint's own memory group — a story model trained here), "zero-shot" (the memory slots
  with the memory group at its neutral initialisation, on the official LTX-2.3 weights) or "none" (no memory slots:
  every shot generated on its own — the paper's "LTX-2.3 (no memory)" baseline). Empty: "trained" for a story model,
  "none" for the official weights.
"""

import ml_collections

from configs import sharding_rules


def _guidance(cfg: float) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {"cfg": cfg, "stg": 1.0, "rescale": 0.7, "modality": 3.0, "stg_blocks": (28,), "skip_step": 0})


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.pipeline = "one-stage"
    c.memory = ""
    c.height, c.width = 768, 1376
    c.steps = 30
    c.dtype = "bfloat16"
    c.negative_prompt = ""  # empty: the story's negative_caption, else the pipelines' default negative prompt
    c.lora_strength = 1.0
    c.files = ml_collections.ConfigDict({
        "weights": "",  # the official LTX-2.3 .safetensors (VAEs, vocoder, text connectors); empty: --checkpoint
        "text_encoder": "",  # the Hugging Face Gemma-3 12B directory
        "upsampler": "",  # ltx-2.3-spatial-upscaler-x2-*.safetensors (two-stage, distilled)
        "distilled_lora": "",  # ltx-2.3-22b-distilled-lora-*.safetensors (two-stage)
    })
    c.guidance = ml_collections.ConfigDict({"video": _guidance(3.0), "audio": _guidance(7.0)})
    c.execution = ml_collections.ConfigDict({"attention": "auto", "attention_chunk": 256, "remat": "none"})
    # Sharding: the story model's parameters by their logical axes (FSDP over fsdp × context), video tokens
    # context-parallel over `context`; fsdp=-1 takes every device (1 device: unsharded). Several hosts: set
    # distributed=True and launch one process per host (docs/launch.md); process 0 writes the outputs.
    c.mesh = ml_collections.ConfigDict({"data": 1, "fsdp": -1, "context": 1, "tensor": 1})
    c.sharding_rules = sharding_rules.fsdp_context()
    c.distributed = False
    c.distributed_coordinator, c.distributed_num_processes, c.distributed_process_id = "", -1, -1
    return c
