"""Shots-Forcing training: the loss, optimizer, sharded step, checkpoints and the training loop."""
