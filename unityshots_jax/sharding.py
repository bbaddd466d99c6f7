"""Logical axis names → mesh axes, one mesh built from config, and activation constraints.

Model code names logical axes only ("embed", "heads", "activation_length", …). The rules that map them onto the
mesh axes ("data", "fsdp", "context", "tensor") live in config (`config.sharding_rules`, a list of pairs; presets in
`configs/sharding_rules.py`), are checked by `parse_rules`, and `use_mesh(mesh, rules)` activates them;
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

Rules = tuple[tuple[str, str | tuple[str, ...] | None], ...]


def parse_rules(value, where: str = "config.sharding_rules") -> Rules:
    """A config's list of (logical axis, target) pairs as a tuple of pairs; ValueError naming the entry when a pair
    is malformed, a logical axis repeats, or a target is not None, a mesh axis, or a list of mesh axes."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{where}: expected a list of (logical axis, mesh axes) pairs (see configs/sharding_rules.py), "
                         f"got {value!r}")
    out, seen = [], set()
    for i, pair in enumerate(value):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not isinstance(pair[0], str):
            raise ValueError(f"{where}[{i}]: expected (logical axis, mesh axes), got {pair!r}")
        name, target = pair
        if name in seen:
            raise ValueError(f"{where}[{i}]: logical axis {name!r} appears twice")
        seen.add(name)
        axes = () if target is None else (target,) if isinstance(target, str) else tuple(target)
        bad = [a for a in axes if a not in MESH_AXES]
        if bad or (target is not None and not axes):
            raise ValueError(f"{where}[{i}]: {name!r} → {target!r}; mesh axes are {', '.join(MESH_AXES)}")
        out.append((name, None if target is None else axes[0] if isinstance(target, str) else axes))
    return tuple(out)


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
def use_mesh(mesh: Mesh, rules: Sequence[tuple[str, object]]) -> Iterator[None]:
    """Activate `mesh` and logical `rules` for `constrain` (and as JAX's current mesh)."""
    token = _ACTIVE.set((mesh, tuple(rules)))
    try:
        with jax.set_mesh(mesh):
            yield
    finally:
        _ACTIVE.reset(token)


def active() -> tuple[Mesh, Rules] | None:
    """(mesh, rules) of the innermost `use_mesh` block, or None outside one."""
    return _ACTIVE.get()


def constrain(x: jax.Array, names: Sequence[str | None]) -> jax.Array:
    """`with_sharding_constraint` by logical names when a mesh is active; identity otherwise."""
    active = _ACTIVE.get()
    if active is None:
        return x
    mesh, rules = active
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, logical_to_spec(names, rules)))
