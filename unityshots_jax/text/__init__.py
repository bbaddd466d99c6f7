"""The LTX-2.3 text path in JAX: Gemma-3 text tower, ltx-core's tokenizer rules, FeatureExtractorV2, the two
embedding connectors and the `ltx23` text encoder. Nothing here imports torch."""
