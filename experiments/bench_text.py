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


def interleaved_times(fns: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each function, after one warm-up call each, the implementations alternating call by
    call (the order flipped every round) so a change in machine load hits both alike."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for r in range(repeats):
        for name in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return times


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
    parser.add_argument("--repeats", type=int, default=5)
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
        load_before = os.getloadavg()
        times = interleaved_times({"ours": lambda: ours.encode(captions), "reference": lambda: reference(captions)},
                                  args.repeats)
        load_after = os.getloadavg()
    ours_s, ref_s = statistics.median(times["ours"]), statistics.median(times["reference"])
    result = {"captions": len(captions), "tokens": tokens, "ours_s": ours_s, "reference_s": ref_s,
              "ours_range_s": [min(times["ours"]), max(times["ours"])],
              "reference_range_s": [min(times["reference"]), max(times["reference"])],
              "ratio": ours_s / ref_s, "max_rel_diff": rel, "repeats": args.repeats, "torch_threads": THREADS,
              "loadavg_before": load_before, "loadavg_after": load_after}
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    print(f"{'':<40}{'median s':>10}{'min':>8}{'max':>8}")
    for label, name in (("ltx-core + transformers (per caption)", "reference"), ("ours (one jitted batch)", "ours")):
        print(f"{label:<40}{statistics.median(times[name]):>10.3f}{min(times[name]):>8.3f}{max(times[name]):>8.3f}")
    print(f"ratio ours / reference: {ours_s / ref_s:.2f}  (max relative difference of the contexts {rel:.1e})")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
