"""Tiled video decode and encode with ltx-core 1.0.0's tiling semantics (`TilingConfig`, `tiled_decode`,
`tiled_encode`): the same tile plan, the same blend masks, the same accumulation, so the results match.

Decode: the latent is cut into overlapping spatial tiles (sizes scaled to the aspect ratio, as ltx-core does) and
causal temporal tiles (each later tile starts one latent frame early); every tile is decoded on its own, weighted
by a separable trapezoidal mask (linear ramps over the overlaps) and accumulated in host memory; temporal groups
are blended into their predecessor and yielded chunk by chunk, so device memory holds one tile and host memory
one temporal group. Encode: pixel tiles, rectangular masks that drop one latent per inner edge, averaged.

Arrays are channels-last: latents `[B, F, h, w, C]`, video `[B, T, H, W, 3]`, numpy on the host.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Callable, Iterator

import numpy as np

MIN_ENCODE_OVERLAP_PX = 64
MIN_ENCODE_OVERLAP_FRAMES = 16


class TilingError(ValueError):
    """Invalid tiling options; the message names the field."""


@dataclasses.dataclass(frozen=True)
class Tiling:
    """ltx-core's `TilingConfig` as one record: spatial (tile, overlap) in pixels and temporal (tile, overlap) in
    frames; None switches tiling off on that axis. Same validation as ltx-core's configs."""

    spatial: tuple[int, int] | None = None
    temporal: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        for name, pair, minimum, step in (("spatial", self.spatial, 64, 32), ("temporal", self.temporal, 16, 8)):
            if pair is None:
                continue
            tile, overlap = pair
            if tile < minimum or tile % step:
                raise TilingError(f"tiling.{name} tile: {tile} must be at least {minimum} and divisible by {step}")
            if overlap < 0 or overlap % step or overlap >= tile:
                raise TilingError(
                    f"tiling.{name} overlap: {overlap} must be divisible by {step} and below the tile {tile}")

    @classmethod
    def default(cls) -> "Tiling":
        """ltx-core's `TilingConfig.default()`: 512 px tiles with 64 px overlap, 64-frame tiles with 24 overlap."""
        return cls(spatial=(512, 64), temporal=(64, 24))


@dataclasses.dataclass(frozen=True)
class Span:
    """One interval of an axis: [start, end) and the lengths of its left / right blend ramps."""

    start: int
    end: int
    left: int = 0
    right: int = 0


@dataclasses.dataclass(frozen=True)
class AxisTile:
    """Where a tile is cut from the input (`src`), where its output goes (`dst`) and its 1-D blend mask."""

    src: slice
    dst: slice
    mask: np.ndarray


def split_overlapping(length: int, size: int, overlap: int) -> list[Span]:
    """Tiles of `size` every `size − overlap`, the last one stretched to the end; one tile if it all fits."""
    if length <= size:
        return [Span(0, length)]
    count = (length + size - 2 * overlap - 1) // (size - overlap)
    starts = [i * (size - overlap) for i in range(count)]
    ends = [s + size for s in starts[:-1]] + [length]
    return [Span(s, e, 0 if i == 0 else overlap, overlap if i < count - 1 else 0)
            for i, (s, e) in enumerate(zip(starts, ends))]


def split_latent_time(length: int, size: int, overlap: int) -> list[Span]:
    """Causal temporal tiles in latent frames: every tile after the first starts one frame earlier (ramp + 1)."""
    spans = split_overlapping(length, size, overlap)
    if len(spans) == 1:
        return spans
    return [spans[0]] + [dataclasses.replace(s, start=s.start - 1, left=s.left + 1) for s in spans[1:]]


def split_frame_time(length: int, size: int, overlap: int) -> list[Span]:
    """Temporal tiles in pixel frames for encoding: each tile but the last one frame longer (8k+1), no right ramps."""
    spans = split_overlapping(length, size, overlap)
    if len(spans) == 1:
        return spans
    return [dataclasses.replace(s, end=s.end + (i < len(spans) - 1), right=0) for i, s in enumerate(spans)]


def trapezoid(length: int, left: int, right: int, left_from_zero: bool = False) -> np.ndarray:
    """Mask `[length]` float32: linear fade-in over `left`, fade-out over `right` (end points excluded, except 0 on
    the left when `left_from_zero`)."""
    left, right = max(0, min(left, length)), max(0, min(right, length))
    mask = np.ones(length, np.float64)
    if left:
        ramp = np.linspace(0.0, 1.0, left + 1 if left_from_zero else left + 2)[:-1]
        mask[:left] *= ramp if left_from_zero else ramp[1:]
    if right:
        mask[length - right:] *= np.linspace(1.0, 0.0, right + 2)[1:-1]
    return np.clip(mask, 0, 1).astype(np.float32)


def rectangle(length: int, left: int, right: int) -> np.ndarray:
    """Mask `[length]` float32 of ones with `left` zeros in front and `right` zeros at the end."""
    mask = np.ones(length, np.float32)
    mask[:left] = 0
    if right:
        mask[length - right:] = 0
    return mask


def decode_plan(grid: tuple[int, int, int], tiling: Tiling, time_scale: int,
                space_scale: int) -> list[tuple[AxisTile, ...]]:
    """Tiles (time, height, width) of a latent grid (F, h, w), in ltx-core's order (time outermost)."""
    frames, height, width = grid
    time = [AxisTile(slice(0, frames), slice(0, time_scale * (frames - 1) + 1), np.ones(1, np.float32))]
    if tiling.temporal is not None:
        size, overlap = (v // time_scale for v in tiling.temporal)
        time = []
        for s in split_latent_time(frames, size, overlap):
            left = 0 if s.left == 0 else 1 + (s.left - 1) * time_scale
            mask = trapezoid(1 + (s.end - 1 - s.start) * time_scale, left, s.right * time_scale, True)
            out = slice(s.start * time_scale, 1 + (s.end - 1) * time_scale)
            time.append(AxisTile(slice(s.start, s.end), out, mask))
    axes = []
    for length in (height, width):
        tiles = [AxisTile(slice(0, length), slice(0, length * space_scale), np.ones(1, np.float32))]
        if tiling.spatial is not None:
            size, overlap = (v // space_scale for v in tiling.spatial)
            size = max(max(2, overlap + 1), round(size * length / max(height, width)))
            tiles = [AxisTile(slice(s.start, s.end), slice(s.start * space_scale, s.end * space_scale),
                              trapezoid((s.end - s.start) * space_scale, s.left * space_scale, s.right * space_scale))
                     for s in split_overlapping(length, size, overlap)]
        axes.append(tiles)
    return list(itertools.product(time, *axes))


def encode_plan(size: tuple[int, int, int], tiling: Tiling, time_scale: int,
                space_scale: int) -> list[tuple[AxisTile, ...]]:
    """Tiles (time, height, width) of a video (T, H, W) for encoding, in ltx-core's order."""
    frames, height, width = size
    time = [AxisTile(slice(0, frames), slice(0, (frames - 1) // time_scale + 1), np.ones(1, np.float32))]
    if tiling.temporal is not None:
        tile, overlap = tiling.temporal[0], max(tiling.temporal[1], MIN_ENCODE_OVERLAP_FRAMES)
        if overlap >= tile:
            raise TilingError(
                f"tiling.temporal tile: {tile} frames; encoding overlaps at least {overlap}, so it must be larger")
        time = []
        for s in split_frame_time(frames, tile, overlap):
            start, stop = s.start // time_scale, (s.end - 1) // time_scale + 1
            left = 0 if s.left == 0 else 1 + (s.left - 1) // time_scale
            time.append(AxisTile(slice(s.start, s.end), slice(start, stop), rectangle(stop - start, left, 0)))
    axes = []
    for length in (height, width):
        tiles = [AxisTile(slice(0, length), slice(0, length // space_scale), np.ones(1, np.float32))]
        if tiling.spatial is not None:
            tile, overlap = tiling.spatial[0], max(tiling.spatial[1], MIN_ENCODE_OVERLAP_PX)
            if overlap >= tile:
                raise TilingError(
                    f"tiling.spatial tile: {tile} px; encoding overlaps at least {overlap}, so it must be larger")
            tiles = [AxisTile(slice(s.start, s.end), slice(s.start // space_scale, s.end // space_scale),
                              rectangle(s.end // space_scale - s.start // space_scale,
                                        max(0, s.left // space_scale - 1), 0 if s.right == 0 else 1))
                     for s in split_overlapping(length, tile, overlap)]
        axes.append(tiles)
    return list(itertools.product(time, *axes))


def _mask(tile: tuple[AxisTile, ...]) -> np.ndarray:
    """Separable blend mask `[1, t, h, w, 1]` of a (time, height, width) tile."""
    t, h, w = (a.mask for a in tile)
    return (t[:, None, None] * h[None, :, None] * w[None, None, :])[None, ..., None]


def tiled_decode(decode: Callable[[np.ndarray], np.ndarray], latent: np.ndarray, tiling: Tiling, *,
                 time_scale: int = 8, space_scale: int = 32) -> Iterator[np.ndarray]:
    """Decode `latent` `[B, F, h, w, C]` tile by tile with `decode` (`[B, f, h', w', C]` → `[B, T', H', W', 3]`);
    yields consecutive video chunks `[B, t, H, W, 3]` whose concatenation over time is the whole video."""
    b, _, h, w, _ = latent.shape
    plan = decode_plan(latent.shape[1:4], tiling, time_scale, space_scale)
    groups = [list(g) for _, g in itertools.groupby(plan, key=lambda tile: (tile[0].dst.start, tile[0].dst.stop))]
    previous = None  # (chunk, weights, time slice)
    for group in groups:
        span = group[0][0].dst
        chunk = weights = None
        for tile in group:
            out = np.asarray(decode(latent[:, tile[0].src, tile[1].src, tile[2].src]))
            if chunk is None:
                shape = (b, span.stop - span.start, h * space_scale, w * space_scale, out.shape[-1])
                chunk = np.zeros(shape, out.dtype)
                weights = np.zeros((1, *chunk.shape[1:4], 1), out.dtype)
            offset = tile[0].dst.start - span.start
            n = min(tile[0].dst.stop - tile[0].dst.start, out.shape[1], chunk.shape[1] - offset)
            mask = _mask(tile)
            mask = mask[:, :n] if mask.shape[1] > 1 else mask
            where = (slice(None), slice(offset, offset + n), tile[1].dst, tile[2].dst)
            chunk[where] += out[:, :n] * mask
            weights[where] += mask
        if previous is not None:
            p_chunk, p_weights, p_span = previous
            if p_span.stop > span.start:
                n, at = p_span.stop - span.start, span.start - p_span.start
                p_chunk[:, at:] += chunk[:, :n]
                p_weights[:, at:] += weights[:, :n]
                chunk[:, :n] = p_chunk[:, at:]
                weights[:, :n] = p_weights[:, at:]
            yield (p_chunk / np.maximum(p_weights, 1e-8))[:, : span.start - p_span.start]
        previous = (chunk, weights, span)
    if previous is not None:
        yield previous[0] / np.maximum(previous[1], 1e-8)


def tiled_encode(encode: Callable[[np.ndarray], np.ndarray], video: np.ndarray, tiling: Tiling, latent_channels: int,
                 *, time_scale: int = 8, space_scale: int = 32) -> np.ndarray:
    """Encode `video` `[B, T, H, W, 3]` tile by tile with `encode`; the weighted mean of the tiles' latents
    `[B, (T−1)/8+1, H/32, W/32, C]`."""
    b, t, h, w, _ = video.shape
    shape = (b, (t - 1) // time_scale + 1, h // space_scale, w // space_scale, latent_channels)
    total = weights = None
    for tile in encode_plan((t, h, w), tiling, time_scale, space_scale):
        out = np.asarray(encode(video[:, tile[0].src, tile[1].src, tile[2].src]))
        if total is None:
            total, weights = np.zeros(shape, out.dtype), np.zeros((1, *shape[1:4], 1), out.dtype)
        where = (slice(None), tile[0].dst, tile[1].dst, tile[2].dst)
        total[where] += out * _mask(tile)
        weights[where] += _mask(tile)
    return total / np.maximum(weights, 1e-8)
