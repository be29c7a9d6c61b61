"""Apex spotting for clips without an apex annotation (SMIC; CASME II `/`), specs/models.md section 10.7.

Methods (each returns a frame number present in the clip):
- "middle": the frame nearest the middle of onset..offset (EMR, Dual-Inception; the usual SMIC choice).
- "frame_difference": the frame that differs most from both ends of the clip. Frames are turned grey,
  blurred and down-scaled by 4 (sensor noise and JPEG blocks average out, sub-pixel facial motion survives
  as an intensity change along edges), scored by the mean absolute difference to the onset plus that to
  the offset, and the scores are smoothed over 3 frames so a single noisy frame cannot win. (The difference
  to the onset alone picks the last frame whenever the head drifts or the light changes during the clip.)
  STRCN's `DetectApexFrame.m` uses a similar score (std of the difference to the first frame on a 10x8
  face) but only searches 20-70 % of the clip; we search all of it, since annotated apexes fall anywhere
  (CASME II has apex == onset and apex == offset rows).
- "strain": the frame whose flow from the onset has the largest mean optical strain; strain ignores global
  translation, so head drift cannot win. Costs one optical flow per frame examined (Farneback, ~3 ms at
  170x140): every `step`-th frame, then the neighbours of the best one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from preprocessing.flow import optical_flow, to_gray
from preprocessing.strain import optical_strain

SPOTTERS = ("middle", "frame_difference", "strain")


def middle_frame(numbers: Sequence[int], onset: int | None = None, offset: int | None = None) -> int:
    """The frame number nearest (onset + offset) / 2 (lower on a tie), among `numbers`."""
    onset = numbers[0] if onset is None else onset
    offset = numbers[-1] if offset is None else offset
    middle = (onset + offset) / 2
    return min(numbers, key=lambda n: (abs(n - middle), n))


def _small(frame: np.ndarray) -> np.ndarray:
    gray = cv2.GaussianBlur(to_gray(frame), (0, 0), 1.0)
    h, w = gray.shape
    return cv2.resize(gray, (max(w // 4, 1), max(h // 4, 1)), interpolation=cv2.INTER_AREA)


def _smooth(scores: np.ndarray) -> np.ndarray:
    if scores.size < 3:
        return scores
    padded = np.pad(scores, 1, mode="edge")
    return (padded[:-2] + padded[1:-1] + padded[2:]) / 3


def spot_apex(
    read: Callable[[int], np.ndarray],
    numbers: Sequence[int],
    method: str = "frame_difference",
    onset: int | None = None,
    offset: int | None = None,
    step: int = 3,
) -> int:
    """The apex frame number of a clip by `method` (one of SPOTTERS), searching onset..offset."""
    if method not in SPOTTERS:
        raise ValueError(f"unknown apex spotter {method!r}; choose from {', '.join(SPOTTERS)}")
    onset = numbers[0] if onset is None else onset
    offset = numbers[-1] if offset is None else offset
    window = [n for n in numbers if onset <= n <= offset]
    if not window:
        raise ValueError(f"no frames between onset {onset} and offset {offset}")
    if method == "middle" or len(window) < 3:
        return middle_frame(window, onset, offset)
    first = read(window[0])
    if method == "frame_difference":
        small = [_small(read(n)) for n in window]
        # Distance to the onset plus distance to the offset: slow monotonic changes (head drift, lighting)
        # add up to the same total on every frame, while the expression, back near neutral at the offset,
        # makes the apex far from both ends.
        scores = np.array([np.abs(f - small[0]).mean() + np.abs(f - small[-1]).mean() for f in small])
        return window[int(np.argmax(_smooth(scores)))]

    def strain_score(n: int) -> float:
        u, v = optical_flow(first, read(n), "farneback")
        return float(optical_strain(u, v).mean())

    coarse = window[::step]
    best = coarse[int(np.argmax([strain_score(n) for n in coarse]))]
    i = window.index(best)
    near = window[max(i - step + 1, 0) : i + step]
    return max(near, key=lambda n: (strain_score(n), -n))
