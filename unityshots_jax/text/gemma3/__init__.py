"""Gemma-3 text tower (Flax NNX) loaded from Hugging Face directories."""
