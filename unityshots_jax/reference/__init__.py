"""PyTorch (ltx-core 1.0.0) reference side of the transformer parity harness.

Torch-free modules: `tiny_configs` (config dicts) and `verify_cases` (numpy parity cases; its
`make_verify_cases` imports torch lazily). Torch modules: `ltx_reference` (random tiny models,
official checkpoint layout, official loader) and `run_reference` (run a model on a case).
This `__init__` imports nothing, so `import unityshots_jax.reference` never imports torch.
"""
