"""The one mapping between our parameter tree and ltx-core's state-dict keys (both directions).

Our tree mirrors ltx-core's module names, so a leaf path maps to a key by rule:
  <module>/kernel `[in, out]`        ↔ <module>.weight `[out, in]` (transposed)
  <module>/bias                      ↔ <module>.bias
  …/q_norm, …/k_norm                 ↔ ….q_norm.weight, ….k_norm.weight
  …/to_out/…                         ↔ ….to_out.0.…
  ff/proj_in, ff/proj_out            ↔ ff.net.0.proj, ff.net.2
  <adaln>/linear_1, linear_2         ↔ <adaln>.emb.timestep_embedder.linear_1 / linear_2
  blocks/… (leading layer axis)      ↔ transformer_blocks.{i}.…
  tables (…scale_shift_table…)       ↔ the same name, unchanged
"""

from __future__ import annotations

import dataclasses

TRANSFORMER_PREFIX = "model.diffusion_model."
# Keys under the transformer prefix that belong to the text connectors (loaded by a later component).
CONNECTOR_PREFIXES = (
    TRANSFORMER_PREFIX + "video_embeddings_connector.",
    TRANSFORMER_PREFIX + "audio_embeddings_connector.",
)
_RENAMES = {"to_out": "to_out.0", "proj_in": "net.0.proj", "proj_out": "net.2"}
_ADALN_INNER = ("linear_1", "linear_2")


@dataclasses.dataclass(frozen=True)
class LeafKey:
    """Where one leaf of our tree lives in the checkpoint.

    stacked: the leaf has a leading layer axis; `key` then contains "{i}".
    transpose: a Linear kernel, stored `[out, in]` in the checkpoint.
    """

    key: str
    stacked: bool
    transpose: bool


def _segment_names(path: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for i, name in enumerate(path):
        parent = path[i - 1] if i else ""
        if name in _ADALN_INNER and parent.endswith("adaln_single"):
            out.append(f"emb.timestep_embedder.{name}")
        elif name in ("proj_in", "proj_out") and parent in ("ff", "audio_ff"):
            out.append(_RENAMES[name])
        elif name == "to_out":
            out.append(_RENAMES[name])
        else:
            out.append(name)
    return out


def leaf_key(path: tuple[str, ...]) -> LeafKey:
    """Checkpoint key (without the file prefix) of the leaf at `path` in our parameter tree."""
    *modules, leaf = path
    stacked = bool(modules) and modules[0] == "blocks"
    if stacked:
        modules = modules[1:]
    names = _segment_names(tuple(modules) + (leaf,))
    if leaf == "kernel":
        names[-1] = "weight"
        transpose = True
    elif leaf in ("q_norm", "k_norm"):
        names.append("weight")
        transpose = False
    else:
        transpose = False
    key = ".".join(names)
    return LeafKey(("transformer_blocks.{i}." + key) if stacked else key, stacked, transpose)
