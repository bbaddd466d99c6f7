"""A contact sheet of a story: one representative frame per shot, upscaled, labelled, in rows of at most five (PNG)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from unityshots_jax.media.mp4_writer import MediaError, atomic_output, check_output_path, default_scale

MAX_COLUMNS = 5
_GAP = 4  # pixels between tiles and around the sheet
_BACKGROUND = (24, 24, 24)
_TEXT = (235, 235, 235)


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """`text` on one line, shortened with an ellipsis until it fits in `width` pixels. Pillow's bitmap fallback
    font (no FreeType) only encodes Latin-1, so other characters become '?' there."""
    text = " ".join(text.split())
    ellipsis = "…"
    if not isinstance(font, ImageFont.FreeTypeFont):
        text, ellipsis = text.encode("latin-1", "replace").decode("latin-1"), "..."
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + ellipsis, font=font) > width:
        text = text[:-1]
    return text + ellipsis if text else ""


def sheet_layout(n_tiles: int, tile_h: int, tile_w: int, label_h: int) -> tuple[int, int, int, int]:
    """Grid of `n_tiles` tiles of `tile_h × tile_w` pixels with a `label_h` label strip under each:
    (rows, columns, sheet height, sheet width)."""
    cols = min(n_tiles, MAX_COLUMNS)
    rows = math.ceil(n_tiles / cols)
    return rows, cols, _GAP + rows * (tile_h + label_h + _GAP), _GAP + cols * (tile_w + _GAP)


def write_contact_sheet(path: str | os.PathLike, frames, labels, *, scale: int | None = None) -> Path:
    """Write a PNG with one tile per shot: `frames` is a list of `uint8 [H, W, 3]` (all the same size), `labels` one
    string per frame, printed under its tile with Pillow's default font. Tiles are upscaled nearest-neighbour by
    `scale` (default: the smallest factor making both sides >= 128). Written atomically; returns the path."""
    out = check_output_path(path, suffix=".png")
    sheet = render_contact_sheet(frames, labels, scale=scale)
    with atomic_output(out) as tmp:
        sheet.save(tmp, format="PNG")
    return out


def render_contact_sheet(frames, labels, *, scale: int | None = None) -> Image.Image:
    """The contact sheet of `write_contact_sheet` as an RGB image (nothing written)."""
    frames = [np.asarray(f) for f in frames]
    labels = [str(label) for label in labels]
    if not frames:
        raise MediaError("frames: at least one frame is required")
    if len(labels) != len(frames):
        raise MediaError(f"labels: expected one per frame ({len(frames)}), got {len(labels)}")
    shape = frames[0].shape
    for i, f in enumerate(frames):
        if f.dtype != np.uint8 or f.ndim != 3 or f.shape[-1] != 3 or f.shape != shape or min(f.shape[:2]) < 1:
            raise MediaError(f"frames[{i}]: expected uint8 {list(shape)} like frames[0] (an [H, W, 3] RGB frame), "
                             f"got {f.dtype} {list(f.shape)}")
    if scale is None:
        scale = default_scale(shape[0], shape[1], min_side=128)
    elif not (isinstance(scale, (int, np.integer)) and scale >= 1):
        raise MediaError(f"scale: expected an integer >= 1, got {scale!r}")
    tile_h, tile_w = shape[0] * scale, shape[1] * scale

    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    _, top, _, bottom = probe.textbbox((0, 0), "Ag", font=font)
    label_h = (bottom - top) + 2 * _GAP
    _, cols, height, width = sheet_layout(len(frames), tile_h, tile_w, label_h)

    sheet = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for i, (frame, label) in enumerate(zip(frames, labels)):
        r, c = divmod(i, cols)
        x, y = _GAP + c * (tile_w + _GAP), _GAP + r * (tile_h + label_h + _GAP)
        tile = np.repeat(np.repeat(frame, scale, axis=0), scale, axis=1)
        sheet.paste(Image.fromarray(np.ascontiguousarray(tile)), (x, y))
        draw.text((x, y + tile_h + _GAP - top), _fit(draw, label, font, tile_w), fill=_TEXT, font=font)
    return sheet
