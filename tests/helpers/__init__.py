"""Shared test helpers (tiny checkpoints, hand-made inputs, file surgery). Imported as `helpers.*`."""
