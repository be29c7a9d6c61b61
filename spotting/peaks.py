"""From a motion signal to intervals: smoothing, the MEGC threshold, peaks, onset/offset, micro or macro.

Threshold (Moilanen et al. 2014; the MEGC spotting baselines LTP-ML, MDMD and SoftNet): over the video's
signal S, T = mean(S) + p * (max(S) - mean(S)), p in [0, 1). A relative threshold alone always reports the
video's largest peak, even in a video without any expression, so a peak must also clear a noise floor:
min_peak_ratio times the video's quiet level, the 25th percentile of S. The quiet level is what S is
when nothing moves (noise makes the signal a small positive value) as long as expressions and other
movements fill less than three quarters of the video; a median or MAD is not, in a recording busy with
macro-expressions. A ratio (not quiet level + a multiple of a spread) because the noise part of S is the
square root of a rectified zero-mean product: its spread grows with its level.

Interval of a peak: the signal of one expression is its intensity profile (spotting/signal.py), so where
it crosses edge_level of its height (above the quiet level) on each side of the peak are points of the
expression's rise and fall, and the onset and offset lie edge_extend times their distance from the peak's
top beyond them (the top: the middle of where the signal is within 10 % of its height, i.e. the apex, or
the middle of a plateau). Half height and once as far again is exact for the shapes expressions are
modelled with, a raised cosine or a triangle rising and falling at their own speeds (the half height falls
halfway up the rise and halfway down the fall), to about a tenth of the difference of rise and fall from
taking the top's middle for the apex; a plateau (a macro-expression held) makes the interval longer by
the plateau's length, half on each side.

Peaks are taken strongest first; one whose apex lies inside an interval already taken, or whose interval
shares more than MAX_OVERLAP of its length with one, is dropped. The first is the same movement seen twice
(a plateau's wiggles); the second is mostly an echo: between two expressions of the same muscles less
than two windows apart, the neutral face in the middle differs from both neighbours in the same direction
and the signal (which cannot tell away-from-neutral from back-to-neutral) rises there too. Such an echo
is never stronger than the stronger of the two expressions, so that one is taken first and the echo,
which overlaps it, is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import find_peaks

QUIET_PERCENTILE = 25
MAX_OVERLAP = 0.25
TOP_LEVEL = 0.9  # the peak's top: where the signal is within 10 % of its height


@dataclass(frozen=True)
class Peak:
    """One peak of a signal: apex, onset and offset as (fractional) sample indices, its height (px)."""

    apex: int
    onset: float
    offset: float
    height: float


def smooth(signal: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of a 1-D signal, sigma in samples (edges replicated); sigma < 0.3: unchanged."""
    signal = np.asarray(signal, dtype=np.float64)
    if sigma < 0.3 or signal.size < 3:
        return signal.copy()
    radius = int(np.ceil(3 * sigma))
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    return np.convolve(np.pad(signal, radius, mode="edge"), kernel, mode="valid")


def megc_threshold(signal: np.ndarray, p: float) -> float:
    """mean + p * (max - mean) of the signal (the MEGC baselines' adaptive threshold)."""
    mean = float(np.mean(signal))
    return mean + p * (float(np.max(signal)) - mean)


def quiet_level(signal: np.ndarray) -> float:
    """The signal when nothing moves: its 25th percentile (module doc)."""
    return float(np.percentile(signal, QUIET_PERCENTILE))


def _crossing(signal: np.ndarray, apex: int, level: float, step: int) -> float:
    """Where the signal, walking from `apex` by `step` (-1 or +1), first falls to `level` (interpolated)."""
    i = apex
    last = len(signal) - 1
    while 0 <= i + step <= last and signal[i + step] > level:
        i += step
    if not 0 <= i + step <= last:
        return float(i)
    inside, outside = signal[i], signal[i + step]
    share = (inside - level) / (inside - outside) if inside > outside else 0.0
    return i + step * float(np.clip(share, 0.0, 1.0))


def peak_interval(
    signal: np.ndarray, apex: int, baseline: float, edge_level: float, edge_extend: float
) -> tuple[float, float]:
    """(onset, offset) around `apex`, fractional indices clipped to the signal (module doc)."""
    height = signal[apex] - baseline
    left = _crossing(signal, apex, baseline + edge_level * height, -1)
    right = _crossing(signal, apex, baseline + edge_level * height, +1)
    top = baseline + TOP_LEVEL * height
    pivot = (_crossing(signal, apex, top, -1) + _crossing(signal, apex, top, +1)) / 2
    last = len(signal) - 1
    onset = left - edge_extend * max(pivot - left, 0.0)
    offset = right + edge_extend * max(right - pivot, 0.0)
    return max(0.0, onset), min(float(last), offset)


def find_intervals(
    signal: np.ndarray,
    threshold: float,
    baseline: float,
    edge_level: float,
    edge_extend: float,
    allowed: np.ndarray | None = None,
) -> list[Peak]:
    """Peaks of `signal` above `threshold` with their intervals, strongest first, one per movement.

    allowed: (N,) bool, where an apex may lie (None: anywhere)."""
    signal = np.asarray(signal, dtype=np.float64)
    if signal.size < 3:
        return []
    apexes, _ = find_peaks(signal, height=threshold)
    if allowed is not None:
        apexes = apexes[allowed[apexes]]
    taken: list[Peak] = []
    for apex in sorted(apexes.tolist(), key=lambda i: -signal[i]):
        if any(p.onset <= apex <= p.offset for p in taken):
            continue
        onset, offset = peak_interval(signal, apex, baseline, edge_level, edge_extend)
        length = offset - onset + 1
        if any(min(offset, p.offset) - max(onset, p.onset) + 1 > MAX_OVERLAP * length for p in taken):
            continue
        taken.append(Peak(apex=int(apex), onset=onset, offset=offset, height=float(signal[apex])))
    return taken
