"""The ltx23 text encoder end to end: captions → contexts vs ltx-core 1.0.0's text encoding around the same tiny
Gemma (LTXVGemmaTokenizer → GemmaTextEncoder.encode → EmbeddingsProcessor), tokenizer rules, cache, bad input,
and no torch on the run path."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from helpers.text_fixtures import WORDS, cases, gemma_dirs  # noqa: F401  (fixture)
from unityshots_jax.codecs.base import CodecRequest, CodecUnavailable, TextEncoder
from unityshots_jax.parity_criterion import assert_parity
from unityshots_jax.reference import tiny_text
from unityshots_jax.reference.tiny_configs import tiny_transformer_config
from unityshots_jax.text.encoder import EmptyCaption, Ltx23TextEncoder
from unityshots_jax.text.tokenizer import CaptionTruncated, GemmaTokenizer, TokenizerError

torch.set_num_threads(1)
TOKENS = 128
LONG = " ".join(WORDS * 8)  # 136 words: truncated at 128 tokens
CAPTIONS = ["a cat sat on the mat", "  the big dog ran quickly under a red tree  ", LONG]
# the Gemma case each end-to-end config uses, and the LTX transformer config whose connectors follow it
E2E = {"b": dict(), "c": dict(heads=4, head_dim=8, audio_heads=4, audio_head_dim=6, rope_type="interleaved")}


@pytest.fixture(scope="module")
def text_weights(gemma_dirs, tmp_path_factory):
    """name -> (gemma dir, LTX text checkpoint path, reference processor)."""
    root = tmp_path_factory.mktemp("ltx_text")
    out = {}
    for name, sizes in E2E.items():
        case = cases()[name]
        cfg = tiny_transformer_config(**sizes)
        proc = tiny_text.build_processor(cfg, case.text["hidden_size"], case.text["num_hidden_layers"] + 1, seed=7)
        path = str(root / f"{name}.safetensors")
        tiny_text.write_text_checkpoint(path, cfg, proc)
        out[name] = (gemma_dirs(name), path, proc)
    return out


@pytest.mark.parametrize("name", sorted(E2E))
def test_captions_to_contexts_match_ltx_core(text_weights, name):
    gemma, weights, proc = text_weights[name]
    ref32 = tiny_text.ltx_text_path(gemma, proc, CAPTIONS, TOKENS)
    ref64 = tiny_text.ltx_text_path(gemma, proc, CAPTIONS, TOKENS, dtype="float64")
    encoder = Ltx23TextEncoder(gemma, weights, max_length=TOKENS)
    assert isinstance(encoder, TextEncoder)
    with pytest.warns(CaptionTruncated, match="caption 2 is longer than 128 tokens"):
        out = encoder.encode(CAPTIONS)
    assert encoder.last_truncated == (False, False, True)
    assert out.video.shape == (3, TOKENS, encoder.video_dim) and out.audio.shape == (3, TOKENS, encoder.audio_dim)
    assert_parity(f"{name}: video context", out.video, ref32[0], ref64[0])
    assert_parity(f"{name}: audio context", out.audio, ref32[1], ref64[1])
    np.testing.assert_array_equal(out.mask, ref32[2])


def test_bf16_contexts_within_the_references_own_bf16_error(text_weights):
    """bf16 end to end: our max error vs the float64 truth at most 2× ltx-core's own bf16 error, per stream.

    Measured (config "b", contexts of scale ~3): ltx-core bf16 0.026 (video) / 0.026 (audio), ours 0.030 / 0.031."""
    gemma, weights, proc = text_weights["b"]
    captions = CAPTIONS[:2]
    ref64 = tiny_text.ltx_text_path(gemma, proc, captions, TOKENS, dtype="float64")
    ref_bf16 = tiny_text.ltx_text_path(gemma, proc, captions, TOKENS, dtype="bfloat16")
    ours = Ltx23TextEncoder(gemma, weights, max_length=TOKENS, dtype="bfloat16").encode(captions)
    for i, (stream, got) in enumerate((("video", ours.video), ("audio", ours.audio))):
        ref_err = np.abs(ref_bf16[i] - ref64[i]).max()
        our_err = np.abs(got - ref64[i]).max()
        assert our_err <= 2.0 * ref_err, (stream, our_err, ref_err)


@pytest.mark.parametrize("pad_token", [True, False])
def test_tokenizer_rules_match_ltx_core(tmp_path, pad_token):
    """Left padding, pad = eos when the tokenizer has none, strip, BOS, truncation (and its report)."""
    directory = str(tmp_path / "tok")
    tiny_text.write_tiny_tokenizer(directory, WORDS, pad_token=pad_token)
    ours = GemmaTokenizer(directory, max_length=8)
    captions = ["  a cat sat  ", "the dog zebra", "", "a cat sat on the mat dog", "a cat sat on the mat dog a", "<bos> a"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = ours(captions)
    assert got.truncated == (False, False, False, False, True, False)
    assert [str(w.message)[:9] for w in caught if w.category is CaptionTruncated] == ["caption 4"]
    for i, caption in enumerate(captions):
        ids, mask = tiny_text.ltx_token_ids(directory, caption, 8)
        np.testing.assert_array_equal(got.ids[i], ids, err_msg=repr(caption))
        np.testing.assert_array_equal(got.mask[i], mask, err_msg=repr(caption))


def test_cache_hits_are_bit_identical_and_skip_the_model(text_weights, tmp_path, monkeypatch):
    import unityshots_jax.text.encoder as encoder_module

    gemma, weights, _ = text_weights["c"]
    cache = str(tmp_path / "cache")
    first = Ltx23TextEncoder(gemma, weights, max_length=TOKENS, cache_dir=cache).encode(CAPTIONS[:2])
    batches = []
    real = encoder_module._encode

    def counting(*args):
        batches.append(args[4].shape[0])
        return real(*args)

    monkeypatch.setattr(encoder_module, "_encode", counting)
    encoder = Ltx23TextEncoder(gemma, weights, max_length=TOKENS, cache_dir=cache)
    again = encoder.encode([CAPTIONS[1], "a small dog", CAPTIONS[0]])
    assert batches == [1]  # only the new caption ran
    np.testing.assert_array_equal(again.video[0], first.video[1])
    np.testing.assert_array_equal(again.audio[2], first.audio[0])
    fresh = Ltx23TextEncoder(gemma, weights, max_length=TOKENS).encode(["a small dog"])
    np.testing.assert_array_equal(again.video[1], fresh.video[0])
    files = [f for _, _, fs in os.walk(cache) for f in fs]
    assert len(files) == 3 and all(f.endswith(".safetensors") for f in files)
    other = text_weights["b"]  # other weights: another fingerprint, so no stale hit
    assert Ltx23TextEncoder(other[0], other[1], max_length=TOKENS, cache_dir=cache).fingerprint != encoder.fingerprint


def test_bad_input(text_weights, tmp_path):
    gemma, weights, _ = text_weights["c"]
    encoder = Ltx23TextEncoder(gemma, weights, max_length=TOKENS)
    with pytest.raises(EmptyCaption, match="caption 1 is empty"):
        encoder.encode(["a cat", "   "])
    assert Ltx23TextEncoder(gemma, weights, max_length=TOKENS, allow_empty=True).encode([""]).video.shape[0] == 1
    with pytest.raises(ValueError, match="multiple of 128"):
        Ltx23TextEncoder(gemma, weights, max_length=100)
    no_tok = str(tmp_path / "no_tok")
    os.makedirs(no_tok)
    for name in os.listdir(gemma):
        if name != "tokenizer.json":
            os.symlink(os.path.join(gemma, name), os.path.join(no_tok, name))
    with pytest.raises(TokenizerError, match=r"tokenizer\.json: missing"):
        Ltx23TextEncoder(no_tok, weights, max_length=TOKENS)


def test_codec_adapter(text_weights):
    from unityshots_jax.codecs.ltx23_text import build_text_encoder

    gemma, weights, _ = text_weights["b"]
    ok = CodecRequest((2, 2, 2, 16), 32, 16, TOKENS, weights=weights, text_encoder_dir=gemma)
    encoder = build_text_encoder(ok, cache_dir=None)
    assert (encoder.tokens, encoder.video_dim, encoder.audio_dim) == (TOKENS, 32, 16)
    with pytest.raises(CodecUnavailable, match="text_encoder_dir is not set"):
        build_text_encoder(CodecRequest((2, 2, 2, 16), 32, 16, TOKENS, weights=weights), cache_dir=None)
    with pytest.raises(CodecUnavailable, match="give width 32, the model's video_context_dim is 64"):
        build_text_encoder(CodecRequest((2, 2, 2, 16), 64, 16, TOKENS, weights=weights, text_encoder_dir=gemma),
                           cache_dir=None)


def test_run_path_does_not_import_torch(text_weights):
    gemma, weights, _ = text_weights["c"]
    script = (
        "import sys\n"
        "from unityshots_jax.codecs.ltx23_text import build_text_encoder\n"
        "from unityshots_jax.codecs.base import CodecRequest\n"
        f"r = CodecRequest((2, 2, 2, 16), 32, 24, {TOKENS}, weights={weights!r}, text_encoder_dir={gemma!r})\n"
        "out = build_text_encoder(r, cache_dir=None).encode(['a cat sat'])\n"
        "assert out.video.shape == (1, 128, 32), out.video.shape\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok')\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_story_captions_in_one_call(text_weights):
    """A tiny story's shot texts go through the encoder in one call; each row equals encoding it alone."""
    from unityshots_jax.prompt.story_prompt import compose_shot_texts, load_story_prompt

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    story = load_story_prompt(os.path.join(root, "configs", "stories", "meadow_three_shots.yaml"))
    texts = compose_shot_texts(story)
    gemma, weights, _ = text_weights["b"]
    encoder = Ltx23TextEncoder(gemma, weights, max_length=TOKENS)
    together = encoder.encode(texts)
    assert together.video.shape == (len(texts), TOKENS, encoder.video_dim)
    for i, text in enumerate(texts):
        alone = encoder.encode([text])
        np.testing.assert_allclose(together.video[i], alone.video[0], rtol=0, atol=1e-5)
        np.testing.assert_allclose(together.audio[i], alone.audio[0], rtol=0, atol=1e-5)
    with pytest.raises(EmptyCaption):  # the story's negative caption is empty
        encoder.encode([story.negative_caption])
