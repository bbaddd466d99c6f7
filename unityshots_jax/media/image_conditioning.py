"""A conditioning image prepared as the LTX-2.3 pipelines prepare it (ltx-pipelines' `load_image_conditioning`).

1. decode the file to RGB (alpha dropped);
2. round-trip it through a one-frame H.264 encode at constant rate factor `crf` (33 by default; 0 skips it) and
   decode it again, so the first frame carries the compression the model saw in training (height and width are
   first cut down to even numbers, as the encoder needs);
3. resize with bilinear interpolation (half-pixel centres, no antialiasing) so that the image covers the target,
   keeping its aspect ratio (sizes rounded up), and crop the centre to exactly `height × width`.

The result is float32 `[height, width, 3]` in [0, 255]; the video codecs take frames in [0, 1].
"""

from __future__ import annotations

import io
import math
import os

import numpy as np

DEFAULT_IMAGE_CRF = 33


class ImageConditioningError(ValueError):
    """A conditioning image that cannot be read or prepared; the message names the file."""


def read_rgb(path: str) -> np.ndarray:
    """uint8 `[H, W, 3]` of an image file (PNG, JPEG, … — anything Pillow reads)."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        raise ImageConditioningError(f"image {path}: no such file")
    try:
        with Image.open(path) as image:
            array = np.array(image.convert("RGBA") if image.mode in ("P", "LA", "L", "I;16") else image)
    except (UnidentifiedImageError, OSError) as err:
        raise ImageConditioningError(f"image {path}: not a readable image ({err})") from err
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] < 3 or min(array.shape[:2]) < 2:
        raise ImageConditioningError(f"image {path}: expected an RGB image of at least 2×2 px, got {array.shape}")
    return np.ascontiguousarray(array[..., :3].astype(np.uint8))


def h264_round_trip(image: np.ndarray, crf: float = DEFAULT_IMAGE_CRF) -> np.ndarray:
    """uint8 `[H, W, 3]` → the same image after a one-frame libx264 encode (yuv420p, preset veryfast) at `crf` and
    a decode, cut to even height and width; `crf == 0` returns the image unchanged."""
    if crf == 0:
        return image
    import av

    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=1, options={"crf": str(crf), "preset": "veryfast"})
        stream.height, stream.width = h, w
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:h, :w]), format="rgb24").reformat(format="yuv420p")
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    buffer.seek(0)
    with av.open(buffer) as container:
        decoded = next(container.decode(video=0))
        return decoded.to_ndarray(format="rgb24")


def _bilinear_axis(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lower index, upper index, upper weight) per output sample of a half-pixel bilinear resize src → dst."""
    scale = np.float32(src / dst)
    pos = np.maximum((np.arange(dst, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5), np.float32(0))
    lo = np.minimum(np.floor(pos).astype(np.int64), src - 1)
    hi = np.minimum(lo + 1, src - 1)
    return lo, hi, (pos - lo).astype(np.float32)


def resize_and_center_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """`[H, W, 3]` → float32 `[height, width, 3]`: scaled by max(height/H, width/W) (sizes rounded up) with
    bilinear interpolation, then the centre cut out."""
    src_h, src_w = image.shape[:2]
    scale = max(height / src_h, width / src_w)
    new_h, new_w = math.ceil(src_h * scale), math.ceil(src_w * scale)
    x = image.astype(np.float32)
    lo, hi, t = _bilinear_axis(src_h, new_h)
    x = x[lo] * (1 - t)[:, None, None] + x[hi] * t[:, None, None]
    lo, hi, t = _bilinear_axis(src_w, new_w)
    x = x[:, lo] * (1 - t)[None, :, None] + x[:, hi] * t[None, :, None]
    top, left = (new_h - height) // 2, (new_w - width) // 2
    return np.ascontiguousarray(x[top:top + height, left:left + width], np.float32)


def load_conditioning_image(path: str, height: int, width: int, crf: float = DEFAULT_IMAGE_CRF) -> np.ndarray:
    """The image at `path` prepared for a `height × width` clip: float32 `[height, width, 3]` in [0, 255]."""
    if height < 1 or width < 1:
        raise ImageConditioningError(f"image {path}: target size {height}×{width} is not positive")
    try:
        return resize_and_center_crop(h264_round_trip(read_rgb(path), crf), height, width)
    except ImageConditioningError:
        raise
    except Exception as err:
        raise ImageConditioningError(f"image {path}: preparing it failed ({type(err).__name__}: {err})") from err
