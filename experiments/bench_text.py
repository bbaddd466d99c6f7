"""CPU benchmark: our ltx23 text encoding vs transformers' Gemma-3 + ltx-core's text path, same weights and prompts.

    python experiments/bench_text.py [--repeats N] [--tokens 1024] [--captions 4]
    python experiments/bench_text.py --check        # tiny sizes, one run each, outputs compared, no timing

Mid-size Gemma-3 (hidden 640, 8 layers, 8 heads / 4 KV heads of 80, sliding window 512, pattern 6, vocab 8192)
written as a Hugging Face directory; LTX-2.3 text embeddings with 2-layer connectors 8×64 (video) and 8×32
(audio). Reference: ltx-core 1.0.0 as the pipelines run it — one caption at a time through LTXVGemmaTokenizer,
GemmaTextEncoder.encode (transformers SDPA) and EmbeddingsProcessor.process_hidden_states; ours: all captions in
one jitted call (`Ltx23TextEncoder`, no cache). fp32, torch threads = 2. Prints a table and a final JSON line
with medians and the ratio ours / reference (goal ≤ 0.8).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np
import torch

from unityshots_jax.reference import tiny_text
from unityshots_jax.reference.tiny_configs import tiny_transformer_config
from unityshots_jax.text.encoder import Ltx23TextEncoder

THREADS = 2
WORDS = [f"w{i}" for i in range(2000)]


def median_s(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def setup(root: str, check: bool) -> tuple[str, str, torch.nn.Module]:
    if check:
        gemma = tiny_text.tiny_gemma_config(layers=2, hidden=32, heads=4, kv_heads=2, head_dim=8, window=64,
                                            vocab=2100)
        ltx = tiny_transformer_config()
    else:
        gemma = tiny_text.tiny_gemma_config(layers=8, hidden=640, heads=8, kv_heads=4, head_dim=80, window=512,
                                            vocab=8192, intermediate=2560)
        ltx = tiny_transformer_config(heads=8, head_dim=64, audio_heads=8, audio_head_dim=32)
    gemma_dir = os.path.join(root, "gemma")
    tiny_text.write_gemma_dir(gemma_dir, gemma, multimodal=False, seed=0, words=WORDS)
    proc = tiny_text.build_processor(ltx, gemma["hidden_size"], gemma["num_hidden_layers"] + 1, seed=1)
    weights = os.path.join(root, "text.safetensors")
    tiny_text.write_text_checkpoint(weights, ltx, proc)
    return gemma_dir, weights, proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--captions", type=int, default=4)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    tokens = 128 if args.check else args.tokens
    rng = np.random.default_rng(0)
    captions = [" ".join(rng.choice(WORDS, size=int(rng.integers(20, tokens // 2)))) for _ in range(args.captions)]
    with tempfile.TemporaryDirectory() as root:
        gemma_dir, weights, proc = setup(root, args.check)
        ours = Ltx23TextEncoder(gemma_dir, weights, max_length=tokens)
        out = ours.encode(captions)
        reference = tiny_text.ltx_text_encoder(gemma_dir, proc, tokens)
        ref = reference(captions)
        rel = max(float(np.abs(a - b).max() / np.abs(b).max()) for a, b in ((out.video, ref[0]), (out.audio, ref[1])))
        if args.check:
            print(json.dumps({"check": "ok" if rel < 1e-4 else "MISMATCH", "max_rel_diff": rel}))
            return
        ours_s = median_s(lambda: ours.encode(captions), args.repeats)
        ref_s = median_s(lambda: reference(captions), args.repeats)
    result = {"captions": len(captions), "tokens": tokens, "ours_s": ours_s, "reference_s": ref_s,
              "ratio": ours_s / ref_s, "max_rel_diff": rel, "repeats": args.repeats, "torch_threads": THREADS}
    print(f"{'':<34}{'median s':>10}")
    print(f"{'ltx-core + transformers (per caption)':<34}{ref_s:>10.3f}")
    print(f"{'ours (one jitted batch)':<34}{ours_s:>10.3f}")
    print(f"ratio ours / reference: {ours_s / ref_s:.2f}  (max relative difference of the contexts {rel:.1e})")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
