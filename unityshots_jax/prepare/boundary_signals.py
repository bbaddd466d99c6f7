"""The boundary signals of Eq. 2 at each cut of a decoded clip: s_vis, s_aud and s_beat, each in [0, 1].

* s_vis (visual cut score): d_cut, the mean absolute difference of the thumbnails (`shot_detection.thumbnails`) of
  the last frame before the cut and the first frame after it, minus d_local, the median difference of the other
  consecutive frame pairs within `VIS_WINDOW` frames of the cut (the motion the scene has anyway);
  s_vis = 1 − exp(−max(0, d_cut − d_local) / `VIS_SCALE`). 0 when the cut changes no more than the motion around it
  (a continuous cut), → 1 for a change of scene (0.63 at an excess of 0.05, 0.95 at 0.15).
* s_aud (RMS energy change): the RMS of the mono mix over `AUD_WINDOW` seconds before and after the cut (each side
  cut short at the neighbouring shot's far end); s_aud = min(1, |20·log10((rms_after + ε) / (rms_before + ε))| /
  `AUD_FULL_DB`), ε = 1e-4 (−80 dBFS): a 20 dB jump or more scores 1, an unchanged level 0.
* s_beat (beat proximity, the paper's {0.25, 0.5, 1.0}): onsets are the peaks of a spectral-flux onset strength
  (log-magnitude STFT, 10 ms hop, window the next power of two ≥ 40 ms, centred frames, the positive increase
  summed over bins) that exceed its mean + 1 standard deviation and are the largest within ±`PEAK_GAP` s;
  s_beat = 1.0 when an onset lies within `BEAT_NEAR` s of the cut, 0.5 within `BEAT_FAR` s, 0.25 otherwise.

Shot 0 has no cut before it: its entries are 0 (its cut type is FIRST, whose prior τ = 0 zeroes the boundary anyway).
"""

from __future__ import annotations

import numpy as np

from unityshots_jax.prepare.shot_detection import frame_differences, thumbnails

VIS_WINDOW, VIS_SCALE = 6, 0.05
AUD_WINDOW, AUD_FULL_DB, AUD_EPS = 0.25, 20.0, 1e-4
PEAK_GAP, BEAT_NEAR, BEAT_FAR = 0.1, 0.05, 0.15


def visual_cut_score(diffs: np.ndarray, cut: int, window: int = VIS_WINDOW) -> float:
    """s_vis at frame `cut` (the first frame after the cut) from the frame differences `[T]` (`frame_differences`)."""
    if not 0 < cut < len(diffs):
        return 0.0
    lo, hi = max(1, cut - window), min(len(diffs), cut + window + 1)
    local = [float(diffs[t]) for t in range(lo, hi) if t != cut]
    excess = float(diffs[cut]) - (float(np.median(local)) if local else 0.0)
    return float(1.0 - np.exp(-max(0.0, excess) / VIS_SCALE))


def rms_change(mono: np.ndarray, sample_rate: int, cut: float, before: float, after: float) -> float:
    """s_aud at time `cut` (s) of `mono` float `[N]`: windows of up to AUD_WINDOW s, not before `before` nor past
    `after` (s)."""
    c = round(cut * sample_rate)
    a = max(round(max(before, cut - AUD_WINDOW) * sample_rate), 0)
    b = min(round(min(after, cut + AUD_WINDOW) * sample_rate), len(mono))
    left, right = mono[a:c], mono[c:b]
    if len(left) == 0 or len(right) == 0:
        return 0.0
    rms = [float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) for x in (left, right)]
    db = abs(20.0 * np.log10((rms[1] + AUD_EPS) / (rms[0] + AUD_EPS)))
    return float(min(1.0, db / AUD_FULL_DB))


def onset_strength(mono: np.ndarray, sample_rate: int) -> tuple[np.ndarray, float]:
    """Spectral-flux onset strength of `mono` float `[N]`: (envelope float32 `[M]`, seconds per envelope frame);
    frame m is centred on sample m·hop."""
    hop = max(1, round(0.01 * sample_rate))
    n_fft = 1 << int(np.ceil(np.log2(max(2, 0.04 * sample_rate))))
    padded = np.pad(np.asarray(mono, np.float32), (n_fft // 2, n_fft // 2))
    count = 1 + max(0, len(padded) - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(count)[:, None]
    spectrum = np.abs(np.fft.rfft(padded[index] * np.hanning(n_fft).astype(np.float32), axis=1))
    log_mag = np.log1p(100.0 * spectrum)
    flux = np.zeros((count,), np.float32)
    flux[1:] = np.maximum(np.diff(log_mag, axis=0), 0.0).sum(axis=1)
    return flux, hop / sample_rate


def onset_times(envelope: np.ndarray, frame_seconds: float, gap: float = PEAK_GAP) -> np.ndarray:
    """Times (s) of the envelope's peaks: ≥ mean + std, > 0, and the largest within ±`gap` s (earliest on a tie)."""
    if envelope.size == 0:
        return np.zeros((0,), np.float64)
    floor = float(envelope.mean() + envelope.std())
    radius = max(1, round(gap / frame_seconds))
    peaks = []
    for m in np.flatnonzero((envelope >= floor) & (envelope > 0)):
        lo, hi = max(0, m - radius), min(len(envelope), m + radius + 1)
        if envelope[m] == envelope[lo:hi].max() and m == lo + int(np.argmax(envelope[lo:hi])):
            peaks.append(m)
    return np.asarray(peaks, np.float64) * frame_seconds


def beat_proximity(onsets: np.ndarray, cut: float) -> float:
    """s_beat at time `cut` (s) given onset times (s)."""
    nearest = float(np.min(np.abs(onsets - cut))) if len(onsets) else np.inf
    return 1.0 if nearest <= BEAT_NEAR else 0.5 if nearest <= BEAT_FAR else 0.25


def boundary_signals(frames: np.ndarray, times: np.ndarray, audio: np.ndarray, sample_rate: int,
                     shots: list[tuple[float, float]]) -> dict[str, np.ndarray]:
    """{"s_vis", "s_aud", "s_beat"} → float32 `[k]` for shots (start, end) s of a clip with frames uint8
    `[T, H, W, 3]` at `times` `[T]` s and audio float `[N, channels]` at `sample_rate`; entry 0 is 0 (no cut)."""
    diffs = frame_differences(thumbnails(frames))
    mono = np.asarray(audio, np.float32).mean(axis=1)
    onsets = onset_times(*onset_strength(mono, sample_rate))
    k = len(shots)
    out = {name: np.zeros((k,), np.float32) for name in ("s_vis", "s_aud", "s_beat")}
    for i in range(1, k):
        cut_time = shots[i][0]
        cut = int(np.searchsorted(times, cut_time - 1e-6))  # the first frame shown at or after the cut
        out["s_vis"][i] = visual_cut_score(diffs, cut)
        out["s_aud"][i] = rms_change(mono, sample_rate, cut_time, shots[i - 1][0], shots[i][1])
        out["s_beat"][i] = beat_proximity(onsets, cut_time)
    return out
