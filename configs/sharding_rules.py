"""Sharding-rule presets for configs: lists of (logical axis, mesh axes) pairs, as maxtext's `logical_axis_rules`.

A config sets `c.sharding_rules = sharding_rules.default()` (or another preset, or its own list); the trainer reads
the list from the config (`unityshots_jax.sharding.parse_rules` checks it). Model code names logical axes only
("embed", "heads", "activation_length", …); mesh axes are "data", "fsdp", "context", "tensor"; a target may be
one mesh axis, several (sharded over their product) or None (replicated).
"""


def default() -> list:
    """Weights FSDP-sharded on their embed dim and tensor-parallel on heads / mlp; activations batch-sharded over
    data × fsdp and sequence-sharded over context."""
    return [
        ("activation_batch", ("data", "fsdp")),
        ("activation_length", "context"),
        ("activation_heads", "tensor"),
        ("activation_embed", None),
        ("layers", None),
        ("embed", "fsdp"),
        ("heads", "tensor"),
        ("mlp", "tensor"),
        ("caption", None),
    ]


def fsdp_context() -> list:
    """`default` with weights sharded over context and fsdp together (the context devices also hold weight
    shards, as maxdiffusion's LTX-2 rules do); activations are sequence-sharded on context as before."""
    return [(name, ("context", "fsdp")) if name == "embed" else (name, target) for name, target in default()]
