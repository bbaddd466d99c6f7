"""A story's inputs as fixed-shape arrays, checked before any compute, padded to the configured maximum.

The one padding rule for the shots a story does not have (`shot_padding` / `pad_shots`) and the one layout change
to the shot-major order the scans consume (`shots_first`) live here; the training batch (`data/story_batch.py`)
uses both, so a story looks the same to the sampler's scan and to the loss's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from unityshots_jax.story.boundary_gate import SIGNALS, boundary_from_signals
from unityshots_jax.story.shot_sequence import MODES, T2V, References, ShotConditioning
from unityshots_jax.story.story_config import StoryConfig


class StoryInputError(ValueError):
    """Inconsistent story inputs; the message names the field."""


@struct.dataclass
class StoryInputs:
    """Every shot's conditioning with a leading shot axis (`ShotConditioning` fields `[shots, batch, …]`), the
    story's references (`References` fields `[batch, …]`), the negative prompt for classifier-free guidance
    (`[batch, text_tokens, dim]` each), and optionally each shot's own references `shot_refs` (`References`
    fields `[shots, batch, …]`: a story with several characters binds each shot to its subject's portrait and its
    speaker's voice). `shot_refs` None means `refs` for every shot; when given, the sampler uses it instead of
    `refs`. Training keeps story-level references."""

    shots: ShotConditioning
    refs: References
    negative_video_context: jnp.ndarray
    negative_audio_context: jnp.ndarray
    negative_context_mask: jnp.ndarray
    shot_refs: References | None = None

    @property
    def num_shots(self) -> int:
        return int(self.shots.mode.shape[0])

    @property
    def batch(self) -> int:
        return int(self.shots.mode.shape[1])

    def per_shot_refs(self) -> References:
        """Each shot's references, `References` fields `[shots, batch, …]`: `shot_refs`, or else `refs` repeated
        for every shot."""
        if self.shot_refs is not None:
            return self.shot_refs
        return jax.tree.map(lambda x: jnp.broadcast_to(x[None], (self.num_shots, *x.shape)), self.refs)


def shot_padding(cfg: StoryConfig) -> dict[str, object]:
    """What a per-shot field holds on the shots beyond a story's k (up to `cfg.max_shots`), by field name:
    context_mask 1 (no all-masked attention row), n_frames F and n_audio Fa (whole shots, so no token count is
    zero), allowed_modes T2V only; every other field (latents, contexts, τ, b̄, mode, valid, …) 0 / False."""
    t2v_only = np.zeros((3,), bool)
    t2v_only[T2V] = True
    return {"context_mask": 1, "n_frames": cfg.video_frames, "n_audio": cfg.audio_frames, "allowed_modes": t2v_only}


def pad_shots(name: str, arr, cfg: StoryConfig, *, axis: int = 0) -> np.ndarray:
    """Host array `arr` of field `name` with k shots on `axis` → `cfg.max_shots` shots, filled by `shot_padding`."""
    arr = np.asarray(arr)
    pad = cfg.max_shots - arr.shape[axis]
    if pad < 0:
        raise StoryInputError(f"{name}: {arr.shape[axis]} shots, the configuration allows at most {cfg.max_shots}")
    if pad == 0:
        return arr
    shape = list(arr.shape)
    shape[axis] = pad
    return np.concatenate([arr, np.full(shape, shot_padding(cfg).get(name, 0), arr.dtype)], axis)


def shots_first(tree):
    """Every leaf `[batch, shots, …]` → `[shots, batch, …]` (jax arrays): the order the shot scans consume."""
    return jax.tree.map(lambda x: jnp.swapaxes(jnp.asarray(x), 0, 1), tree)


def _check_shape(name: str, arr, expected: tuple) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.shape != tuple(expected):
        raise StoryInputError(f"{name}: expected shape {list(expected)}, got {list(arr.shape)}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise StoryInputError(f"{name}: contains NaN or infinity")
    return arr


def make_story_inputs(
    cfg: StoryConfig,
    *,
    video_context,
    audio_context,
    context_mask,
    modes,
    cut_strength,
    n_frames,
    boundary=None,
    boundary_signals=None,
    n_audio,
    first_frame=None,
    ref_image=None,
    ref_audio=None,
    ref_audio_mask=None,
    negative_video_context=None,
    negative_audio_context=None,
    negative_context_mask=None,
    shot_refs: References | None = None,
) -> StoryInputs:
    """Validate host arrays for k shots (batch first: `[batch, k, …]`) and pad them to `cfg.max_shots`.

    video_context `[batch, k, S, Dv]`, audio_context `[batch, k, S, Da]`, context_mask `[batch, k, S]`;
    modes `[batch, k]` ints or "t2v"/"i2v"/"r2v"; cut_strength `[batch, k]` τ in [0, 1]; boundary `[batch, k]` b̄ in
    [0, 1] given directly, or else derived by Eq. 2 from `boundary_signals` {"s_vis", "s_aud", "s_beat"} (each
    `[batch, k]` in [0, 1]; missing signals count as present, 1) and τ; n_frames `[batch, k]` in [stm_frames, video_frames]; n_audio `[batch, k]` in [1, audio_frames];
    first_frame `[batch, k, H, W, C]` (required where a shot is I2V); ref_image `[batch, R, H, W, C]` (required
    for R2V unless `shot_refs` is given); ref_audio `[batch, Fr, Ca]` with ref_audio_mask `[batch, Fr]`; negative
    contexts like one shot's. shot_refs: each shot's own references as a `References` of host arrays, batch first
    like the other per-shot fields: image `[batch, k, R, H, W, C]`, image_valid `[batch, k]` (0 / 1; 1 on every R2V
    shot), audio `[batch, k, Fr, Ca]`, audio_mask `[batch, k, Fr]` (0 / 1); padded shots get zeros (invalid).
    Raises StoryInputError naming the field on any inconsistency.
    """
    vc = np.asarray(video_context)
    if vc.ndim != 4:
        raise StoryInputError(f"video_context: expected [batch, shots, tokens, dim], got shape {list(vc.shape)}")
    b, k, s, _ = vc.shape
    vc = _check_shape("video_context", vc, vc.shape)
    if k < 1 or k > cfg.max_shots:
        raise StoryInputError(f"shots: {k} shots, the configuration allows 1 to {cfg.max_shots}")
    if s != cfg.text_tokens:
        raise StoryInputError(f"video_context: {s} text tokens, the configuration has {cfg.text_tokens}")
    ac = _check_shape("audio_context", audio_context, (b, k, s, np.asarray(audio_context).shape[-1]))
    cm = _check_shape("context_mask", context_mask, (b, k, s))
    md = _checked_modes(modes, (b, k))
    tau, bnd = _checked_boundaries(cfg, cut_strength, boundary, boundary_signals, (b, k))
    nf, na = _checked_lengths(cfg, n_frames, n_audio, (b, k))
    frame = (cfg.height, cfg.width, cfg.latent_channels)
    if first_frame is None:
        if (md == MODES["i2v"]).any():
            raise StoryInputError("first_frame: an i2v shot needs a first-frame latent")
        first_frame = np.zeros((b, k, *frame), np.float32)
    ff = _check_shape("first_frame", first_frame, (b, k, *frame)).astype(np.float32)
    r2v = bool((md == MODES["r2v"]).any()) and shot_refs is None
    refs = _checked_references(cfg, ref_image, ref_audio, ref_audio_mask, b, needs_image=r2v)
    per_shot_refs = None if shot_refs is None else _checked_shot_references(cfg, shot_refs, md)
    nvc = np.zeros_like(vc[:, 0]) if negative_video_context is None else negative_video_context
    nac = np.zeros_like(ac[:, 0]) if negative_audio_context is None else negative_audio_context
    ncm = np.ones_like(cm[:, 0]) if negative_context_mask is None else negative_context_mask
    nvc = _check_shape("negative_video_context", nvc, vc[:, 0].shape)
    nac = _check_shape("negative_audio_context", nac, ac[:, 0].shape)
    ncm = _check_shape("negative_context_mask", ncm, cm[:, 0].shape)

    per_shot = dict(
        video_context=vc.astype(np.float32), audio_context=ac.astype(np.float32), context_mask=cm.astype(np.int32),
        mode=md, first_frame=ff, n_frames=nf, n_audio=na, cut_strength=tau, boundary=bnd, valid=np.ones((b, k), bool),
    )  # fmt: skip
    shots = ShotConditioning(**shots_first({name: pad_shots(name, arr, cfg, axis=1) for name, arr in per_shot.items()}))
    return StoryInputs(shots, refs, jnp.asarray(nvc, jnp.float32), jnp.asarray(nac, jnp.float32),
                       jnp.asarray(ncm, jnp.int32), per_shot_refs)


def _checked_modes(modes, shape: tuple[int, int]) -> np.ndarray:
    """modes `[batch, k]` (ints or "t2v"/"i2v"/"r2v") → int32 codes."""
    raw_modes = np.asarray(modes)
    if raw_modes.shape != shape:
        raise StoryInputError(f"modes: expected shape {list(shape)}, got {list(raw_modes.shape)}")
    if raw_modes.dtype.kind in "US":
        bad = [m for m in raw_modes.reshape(-1) if str(m).lower() not in MODES]
        if bad:
            raise StoryInputError(f"modes: unknown mode {bad[0]!r}; expected one of {sorted(MODES)}")
        return np.vectorize(lambda m: MODES[str(m).lower()])(raw_modes).astype(np.int32)
    md = raw_modes.astype(np.int32)
    if not np.isin(md, list(MODES.values())).all():
        raise StoryInputError(f"modes: values must be 0 (t2v), 1 (i2v) or 2 (r2v), got {sorted(set(md.reshape(-1)))}")
    return md


def _checked_boundaries(cfg: StoryConfig, cut_strength, boundary, boundary_signals, shape) -> tuple[np.ndarray, np.ndarray]:
    """(τ `[batch, k]`, b̄ `[batch, k]`): b̄ as given, or by Eq. 2 from the boundary signals and τ."""
    tau = _check_shape("cut_strength", cut_strength, shape).astype(np.float32)
    if boundary is None:
        signals = {}
        for name, value in (boundary_signals or {}).items():
            if name not in SIGNALS:
                raise StoryInputError(f"boundary_signals: unknown signal {name!r}; expected {', '.join(SIGNALS)}")
            signals[name] = _check_shape(f"boundary_signals.{name}", value, shape).astype(np.float32)
            if signals[name].min() < 0 or signals[name].max() > 1:
                raise StoryInputError(f"boundary_signals.{name}: values must lie in [0, 1]")
        boundary = boundary_from_signals(tau, signals, cfg.gate)
    bnd = _check_shape("boundary", boundary, shape).astype(np.float32)
    for name, arr in (("cut_strength", tau), ("boundary", bnd)):
        if arr.min() < 0 or arr.max() > 1:
            raise StoryInputError(f"{name}: values must lie in [0, 1], got [{arr.min():g}, {arr.max():g}]")
    return tau, bnd


def _checked_lengths(cfg: StoryConfig, n_frames, n_audio, shape) -> tuple[np.ndarray, np.ndarray]:
    """(video latent frames, audio latent frames) per shot, `[batch, k]` int32, within the configured maxima."""
    nf = _check_shape("n_frames", n_frames, shape).astype(np.int32)
    if nf.min() < cfg.stm_frames or nf.max() > cfg.video_frames:
        raise StoryInputError(f"n_frames: each shot needs {cfg.stm_frames} to {cfg.video_frames} latent frames, got {nf.min()}..{nf.max()}")
    na = _check_shape("n_audio", n_audio, shape).astype(np.int32)
    if na.min() < 1 or na.max() > cfg.audio_frames:
        raise StoryInputError(f"n_audio: each shot needs 1 to {cfg.audio_frames} audio latent frames, got {na.min()}..{na.max()}")
    return nf, na


def _checked_references(cfg: StoryConfig, ref_image, ref_audio, ref_audio_mask, b: int, *, needs_image: bool) -> References:
    """The story's reference identity latent and voice tokens (zeros and invalid where absent)."""
    frame = (cfg.height, cfg.width, cfg.latent_channels)
    if ref_image is None:
        if needs_image:
            raise StoryInputError("ref_image: an r2v shot needs a reference identity latent")
        ref_image, image_valid = np.zeros((b, cfg.ref_image_frames, *frame), np.float32), np.zeros((b,), np.float32)
    else:
        image_valid = np.ones((b,), np.float32)
    ri = _check_shape("ref_image", ref_image, (b, cfg.ref_image_frames, *frame)).astype(np.float32)
    if ref_audio is None:
        ref_audio = np.zeros((b, cfg.ref_audio_frames, cfg.audio_channels), np.float32)
        ref_audio_mask = np.zeros((b, cfg.ref_audio_frames), np.float32)
    ra = _check_shape("ref_audio", ref_audio, (b, cfg.ref_audio_frames, cfg.audio_channels)).astype(np.float32)
    if ref_audio_mask is None:
        ref_audio_mask = np.ones((b, cfg.ref_audio_frames), np.float32)
    ram = _check_shape("ref_audio_mask", ref_audio_mask, (b, cfg.ref_audio_frames)).astype(np.float32)
    return References(jnp.asarray(ri), jnp.asarray(image_valid), jnp.asarray(ra), jnp.asarray(ram))


def _checked_shot_references(cfg: StoryConfig, shot_refs: References, md: np.ndarray) -> References:
    """Each shot's references (`References` of host arrays `[batch, k, …]`, see `make_story_inputs`) checked
    against modes `md` `[batch, k]`, padded to `cfg.max_shots` with zeros (invalid) → `[shots, batch, …]`."""
    if not isinstance(shot_refs, References):
        raise StoryInputError(f"shot_refs: expected References of [batch, shots, …] arrays, got {type(shot_refs).__name__}")
    b, k = md.shape
    shapes = {"image": (b, k, cfg.ref_image_frames, cfg.height, cfg.width, cfg.latent_channels), "image_valid": (b, k),
              "audio": (b, k, cfg.ref_audio_frames, cfg.audio_channels), "audio_mask": (b, k, cfg.ref_audio_frames)}
    arrays = {}
    for name, shape in shapes.items():
        arrays[name] = _check_shape(f"shot_refs.{name}", getattr(shot_refs, name), shape).astype(np.float32)
        if name in ("image_valid", "audio_mask") and not np.isin(arrays[name], (0.0, 1.0)).all():
            raise StoryInputError(f"shot_refs.{name}: values must be 0 or 1")
    missing = np.argwhere((md == MODES["r2v"]) & (arrays["image_valid"] == 0))
    if len(missing):
        story, shot = (int(x) for x in missing[0])
        raise StoryInputError(f"shot_refs.image_valid: shot {shot} of story {story} is r2v but has no reference image")
    padded = {name: pad_shots(f"shot_refs.{name}", arr, cfg, axis=1) for name, arr in arrays.items()}
    return References(**shots_first(padded))
