"""Save a parameter tree as a standard orbax checkpoint without ever holding a whole leaf in memory.

Each leaf is a `StreamedLeaf`: its shape, dtype and a function that yields it part by part (one layer of a stacked
leaf, or the whole of a small one). Orbax writes the checkpoint's structure and metadata exactly as it does for numpy
arrays (the type string is `np.ndarray`, so `StandardCheckpointer.metadata` / `restore`, sharded or not, read the
result unchanged); only the data write differs: the leaf's tensorstore is opened with orbax's own spec and the parts
are written one at a time, one leaf at a time, each awaited before the next is produced. Stacked leaves are chunked
one layer per chunk (orbax `SaveArgs(shard_axes=(0,))`), so a layer's write touches only its own chunks.

Peak memory is therefore one part of one leaf (plus tensorstore's copy and compression buffers), whatever the number of
layers. See docs/design.md, "Peak host RAM of `convert`".
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterator

import numpy as np

Part = tuple[int | tuple[()], np.ndarray]  # (index into the leaf: a layer, or () for the whole leaf, the values)


@dataclasses.dataclass(frozen=True)
class StreamedLeaf:
    """A leaf written part by part: `parts()` yields `(index, array)`; stacked leaves yield one per layer.

    shape: the full leaf shape (`[num_layers, ...]` when `stacked`); dtype: its (numpy) dtype.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    parts: Callable[[], Iterator[Part]]
    stacked: bool

    # orbax's save path reads `size` (its empty-leaf check) as it would of an array
    @property
    def size(self) -> int:
        return math.prod(self.shape)


def _handler_class():
    import jax
    import orbax.checkpoint as ocp
    import tensorstore as ts

    class StreamedLeafHandler(ocp.type_handlers.NumpyHandler):
        """orbax's numpy handler (same spec, metadata, type string) writing a `StreamedLeaf` part by part."""

        def __init__(self):
            super().__init__(deepcopy_host_arrays=False)  # a copy would materialise the leaf
            self._specs: dict[int, tuple[dict, object]] = {}

        async def _open_and_write(self, value: StreamedLeaf, tspec: dict, ts_context) -> None:
            self._specs[id(value)] = (tspec, ts_context)  # orbax gathers these for all leaves: only note the spec

        async def _background_serialize(self, values, infos, args=None) -> None:
            await super()._background_serialize(values, infos, args)  # builds each leaf's spec (orbax's own)
            if jax.process_index() == 0 and any(id(v) not in self._specs for v in values):
                raise RuntimeError(  # never leave a leaf unwritten (it would restore as zeros)
                    f"orbax {ocp.__version__} did not hand over every leaf's spec; this handler relies on orbax "
                    "0.12.8's NumpyHandler internals (docs/design.md, Peak host RAM of convert)"
                )
            for value in values:  # then write the leaves in turn, never two at once
                if id(value) in self._specs:  # (orbax writes numpy leaves from the primary process only)
                    await _write_parts(value, *self._specs.pop(id(value)))

    async def _write_parts(value: StreamedLeaf, tspec: dict, ts_context) -> None:
        store = await ts.open(ts.Spec(tspec), create=True, open=True, context=ts_context)
        for index, part in value.parts():
            target = store[index] if index != () else store
            if tuple(part.shape) != tuple(target.shape) or np.dtype(part.dtype) != np.dtype(value.dtype):
                raise ValueError(
                    f"part {index} of a leaf of shape {value.shape}: got {part.shape} {part.dtype}, expected "
                    f"{tuple(target.shape)} {np.dtype(value.dtype)}"
                )
            await target.write(part)  # committed (and `part` released) before the next part is made
            del part

    return StreamedLeafHandler


def save_streamed(path: str, tree: dict) -> None:
    """Write `tree` (nested dicts of `StreamedLeaf`) to the new orbax checkpoint directory `path`."""
    import jax
    import orbax.checkpoint as ocp

    handler = _handler_class()()
    registry = ocp.type_handlers.create_type_handler_registry((StreamedLeaf, handler))
    save_args = jax.tree.map(lambda leaf: ocp.SaveArgs(shard_axes=(0,) if leaf.stacked else ()), tree)
    with ocp.Checkpointer(ocp.PyTreeCheckpointHandler(type_handler_registry=registry)) as ckpt:
        ckpt.save(os.path.abspath(path), args=ocp.args.PyTreeSave(tree, save_args=save_args))  # synchronous
