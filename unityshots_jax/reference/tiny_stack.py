"""One tiny official-layout LTX-2.3 file holding every component (imports torch and ltx-core).

The component builders (`ltx_reference` transformer, `tiny_media` video VAE, `tiny_audio` audio VAE + vocoder/BWE,
`tiny_text` connectors + a Gemma-3 directory) each write their own official-layout file; `merge_official_files`
joins them into one single file as the released checkpoint is: all tensors under their official keys, one
`metadata["config"]` with the `transformer`, `vae`, `audio_vae` and `vocoder` entries.
"""

from __future__ import annotations

import json
import os
import tempfile

import safetensors
import safetensors.torch

from unityshots_jax.reference import ltx_reference, tiny_audio, tiny_media, tiny_text


def merge_official_files(paths: list[str], out: str, model_version: str = "2.3.0") -> None:
    """Write the union of the files' tensors and config entries to `out` (atomic). A tensor key in two files, or a
    config entry two files give differently, is an error."""
    tensors, config = {}, {}
    for path in paths:
        with safetensors.safe_open(path, "pt") as f:
            entries = json.loads(f.metadata()["config"])
        for key, value in safetensors.torch.load_file(path).items():
            if key in tensors:
                raise ValueError(f"{path}: tensor {key!r} is also in another component file")
            tensors[key] = value
        for entry, value in entries.items():
            if entry in config and config[entry] != value:
                raise ValueError(f"{path}: config entry {entry!r} differs from another component file's")
            config[entry] = value
    folder = os.path.dirname(os.path.abspath(out))
    fd, tmp = tempfile.mkstemp(prefix=".tmp_stack_", suffix=".safetensors", dir=folder)
    os.close(fd)
    try:
        safetensors.torch.save_file(tensors, tmp, metadata={"config": json.dumps(config),
                                                            "model_version": model_version})
        os.replace(tmp, out)
    except BaseException:
        os.remove(tmp)
        raise


def write_full_stack(path: str, gemma_dir: str, *, transformer: dict, vae: dict, audio: dict, gemma: dict,
                     words: list[str], seed: int = 0) -> None:
    """A random tiny LTX-2.3 single file at `path` (transformer, video VAE, audio VAE, vocoder, text connectors)
    and a random Gemma-3 Hugging Face directory at `gemma_dir` whose width and depth the connectors follow.

    transformer: a `transformer` entry (e.g. `tiny_transformer_config(...)`); vae: a `vae` entry; audio: the
    `{"audio_vae": …, "vocoder": …}` entries; gemma: a `tiny_gemma_config(...)` dict; words: the tokenizer's
    vocabulary. Consistency (latent channels, audio token width) is the caller's: the point of some tests is a
    stack that disagrees.
    """
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(path))) as tmp:
        parts = [os.path.join(tmp, f"{name}.safetensors") for name in ("transformer", "vae", "audio", "text")]
        model = ltx_reference.build_random_reference(transformer, seed)
        ltx_reference.save_official_checkpoint(model, transformer, parts[0])
        tiny_media.write_tiny_vae(parts[1], vae, seed=seed + 1)
        tiny_audio.save_official(tiny_audio.build_random_audio(audio, seed + 2), audio, parts[2])
        tiny_text.write_gemma_dir(gemma_dir, gemma, multimodal=False, seed=seed + 3, words=words)
        processor = tiny_text.build_processor(transformer, gemma["hidden_size"], gemma["num_hidden_layers"] + 1,
                                              seed=seed + 4)
        tiny_text.write_text_checkpoint(parts[3], transformer, processor)
        merge_official_files(parts, path)
