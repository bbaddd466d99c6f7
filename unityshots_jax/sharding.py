"""Logical axis names → mesh axes, one mesh built from config, and activation constraints.

Model code names logical axes only ("embed", "heads", "activation_length", …). The rules that map them onto the
mesh axes ("data", "fsdp", "context", "tensor") live in config; `use_mesh(mesh, rules)` activates them, and
`constrain` is a no-op outside such a context (single-device runs, tests, notebooks).
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "context", "tensor")

# Default rules: weights FSDP-sharded on their embed dim and tensor-parallel on heads/mlp; activations
# batch-sharded over data×fsdp and sequence-sharded over context.
DEFAULT_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    ("activation_batch", ("data", "fsdp")),
    ("activation_length", "context"),
    ("activation_heads", "tensor"),
    ("activation_embed", None),
    ("layers", None),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("mlp", "tensor"),
    ("caption", None),
)

# Context parallelism with weights sharded over fsdp and context together (the context devices also hold
# weight shards, as maxdiffusion's LTX-2 rules do); activations are sequence-sharded on context as before.
FSDP_CONTEXT_RULES = tuple((name, ("context", "fsdp")) if name == "embed" else (name, target) for name, target in DEFAULT_RULES)
RULE_PRESETS = {"default": DEFAULT_RULES, "fsdp_context": FSDP_CONTEXT_RULES}


def rules_preset(name: str) -> tuple:
    """The logical-axis rules named `name` ("default" or "fsdp_context")."""
    if name not in RULE_PRESETS:
        raise ValueError(f"sharding rules {name!r}: expected one of {sorted(RULE_PRESETS)}")
    return RULE_PRESETS[name]


_ACTIVE: contextvars.ContextVar[tuple[Mesh, tuple] | None] = contextvars.ContextVar("unityshots_mesh", default=None)


def logical_to_spec(names: Sequence[str | None], rules: Sequence[tuple[str, object]]) -> PartitionSpec:
    """PartitionSpec for logical axis `names` under `rules`; a mesh axis is used at most once per spec."""
    table = dict(rules)
    used: set[str] = set()
    out: list[object] = []
    for name in names:
        target = table.get(name) if name is not None else None
        axes = (target,) if isinstance(target, str) else tuple(target or ())
        axes = tuple(a for a in axes if a not in used)
        used.update(axes)
        out.append(None if not axes else axes[0] if len(axes) == 1 else axes)
    return PartitionSpec(*out)


def build_mesh(shape: dict[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A mesh over `MESH_AXES` from `{axis: size}`; one size may be -1 to take the remaining devices."""
    devices = list(devices if devices is not None else jax.devices())
    sizes = [int(shape.get(axis, 1)) for axis in MESH_AXES]
    if sizes.count(-1) > 1:
        raise ValueError("mesh: at most one axis may be -1")
    known = int(np.prod([s for s in sizes if s != -1]))
    if -1 in sizes:
        if len(devices) % known:
            raise ValueError(f"mesh: {len(devices)} devices do not divide by {known}")
        sizes[sizes.index(-1)] = len(devices) // known
    if int(np.prod(sizes)) != len(devices):
        raise ValueError(f"mesh: shape {dict(zip(MESH_AXES, sizes))} needs {np.prod(sizes)} devices, have {len(devices)}")
    return Mesh(np.asarray(devices).reshape(sizes), MESH_AXES, axis_types=(jax.sharding.AxisType.Auto,) * 4)


@contextlib.contextmanager
def use_mesh(mesh: Mesh, rules: Sequence[tuple[str, object]] = DEFAULT_RULES) -> Iterator[None]:
    """Activate `mesh` and logical `rules` for `constrain` (and as JAX's current mesh)."""
    token = _ACTIVE.set((mesh, tuple(rules)))
    try:
        with jax.set_mesh(mesh):
            yield
    finally:
        _ACTIVE.reset(token)


def constrain(x: jax.Array, names: Sequence[str | None]) -> jax.Array:
    """`with_sharding_constraint` by logical names when a mesh is active; identity otherwise."""
    active = _ACTIVE.get()
    if active is None:
        return x
    mesh, rules = active
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, logical_to_spec(names, rules)))
