"""Apex spotting for clips without an apex annotation (SMIC; CASME II `/`), specs/models.md section 10.7.

Methods (each returns a frame number present in the clip, searching onset..offset):
- "middle": the frame nearest the middle of onset..offset (EMR, Dual-Inception; the usual SMIC choice).
- "frame_difference": the frame whose grey levels differ most from the onset's, in the spirit of STRCN's
  `DetectApexFrame.m` (std over pixels of I_k - I_onset). Before differencing, each (blurred, grey) frame is
  registered to the onset by phase correlation (global sub-pixel translation) and its mean matched to the
  onset's: head drift and lighting change grow monotonically through a clip and otherwise make the LAST
  frame the "apex" (measured on synthetic clips: MAE 19 frames without registration, 2 with). A border of
  BORDER_FRACTION is left out (edge replication after the shift). Cost: one blur + one phase correlation per
  frame, ~1 ms at 170x140. STRCN searches only 20-70 % of the clip; we search all of it, since annotated
  apexes fall anywhere (CASME II has apex == onset and apex == offset rows).
  No temporal smoothing by default (SMOOTH_FRAMES = 1): the score already averages thousands of pixels,
  and the expression profile is skewed (fast rise, slow decay), so a moving average moves the peak late;
  on synthetic clips 3-frame smoothing raised the MAE from 2.1 to 2.3 frames.
  A blink is a larger grey change than a micro-expression and wins: grey differences cannot tell them apart.
- "strain": the frame whose optical flow from the onset has the largest mean optical strain (inside the
  border). Strain is the symmetric gradient of the flow, so global translation (head drift) contributes
  nothing. Flow is DIS (OpenCV's fast preset, ~2-3 ms per pair at 170x140; on synthetic clips it spots
  better than Farneback, MAE ~1 vs ~2.8 frames, and is faster). Cost: one flow per examined frame: every
  `step`-th frame of the clip, then the 2 * (step - 1) neighbours of the best one, i.e. about
  K / step + 2 * step flows for a K-frame clip (a 60-frame clip with step 3: ~24 flows, ~60 ms).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np

from preprocessing.flow import optical_flow, to_gray
from preprocessing.strain import optical_strain

SPOTTERS = ("middle", "frame_difference", "strain")

BLUR_SIGMA = 1.0  # px: averages sensor noise and JPEG blocks; sub-pixel motion survives along edges
BORDER_FRACTION = 0.06  # of each side, left out of the scores: replicated edges after registration / flow
SMOOTH_FRAMES = 1  # moving-average width over the frame-difference scores (1 = none; see the module doc)
STRAIN_FLOW = "dis"
DEFAULT_STEP = 3


def middle_frame(numbers: Sequence[int], onset: int | None = None, offset: int | None = None) -> int:
    """The frame number nearest (onset + offset) / 2 (lower on a tie), among `numbers`."""
    onset = numbers[0] if onset is None else onset
    offset = numbers[-1] if offset is None else offset
    middle = (onset + offset) / 2
    return min(numbers, key=lambda n: (abs(n - middle), n))


def _inner(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    dy, dx = int(h * BORDER_FRACTION), int(w * BORDER_FRACTION)
    return image[dy : h - dy or None, dx : w - dx or None]


def _blurred(frame: np.ndarray) -> np.ndarray:
    """Grey float64 in [0, 1], blurred: (H, W)."""
    return cv2.GaussianBlur(to_gray(frame), (0, 0), BLUR_SIGMA).astype(np.float64)


def _registered_to(reference: np.ndarray, image: np.ndarray) -> np.ndarray:
    """`image` moved by the global translation that best aligns it with `reference`, mean matched."""
    (dx, dy), _ = cv2.phaseCorrelate(reference, image)
    shift = np.float64([[1, 0, -dx], [0, 1, -dy]])
    moved = cv2.warpAffine(
        image, shift, image.shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return moved * (reference.mean() / max(float(moved.mean()), 1e-9))


def frame_difference_scores(read: Callable[[int], np.ndarray], window: Sequence[int]) -> np.ndarray:
    """(len(window),) std over pixels of (registered frame - onset frame), grey in [0, 1] units."""
    first = _blurred(read(window[0]))
    scores = [float(np.std(_inner(_registered_to(first, _blurred(read(n))) - first))) for n in window]
    return np.asarray(scores)


def strain_score(first: np.ndarray, frame: np.ndarray) -> float:
    """Mean optical strain (dimensionless) of the DIS flow first -> frame, border left out."""
    u, v = optical_flow(first, frame, STRAIN_FLOW)
    return float(_inner(optical_strain(u, v)).mean())


def _smooth(scores: np.ndarray, width: int) -> np.ndarray:
    if width <= 1 or scores.size < width:
        return scores
    padded = np.pad(scores, width // 2, mode="edge")
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def spot_apex(
    read: Callable[[int], np.ndarray],
    numbers: Sequence[int],
    method: str = "frame_difference",
    onset: int | None = None,
    offset: int | None = None,
    step: int = DEFAULT_STEP,
) -> int:
    """The apex frame number of a clip by `method` (one of SPOTTERS), searching onset..offset.

    read(n): frame n as uint8 (H, W) or (H, W, 3); numbers: the clip's frame numbers, ascending; onset/offset
    default to the first/last number; step: the strain spotter's coarse stride (>= 1). Returns a member of
    `numbers` in [onset, offset]; clips of fewer than 3 frames get the middle frame.
    """
    if method not in SPOTTERS:
        raise ValueError(f"unknown apex spotter {method!r}; choose from {', '.join(SPOTTERS)}")
    if step < 1:
        raise ValueError(f"step must be at least 1, got {step}")
    onset = numbers[0] if onset is None else onset
    offset = numbers[-1] if offset is None else offset
    window = [n for n in numbers if onset <= n <= offset]
    if not window:
        raise ValueError(f"no frames between onset {onset} and offset {offset}")
    if method == "middle" or len(window) < 3:
        return middle_frame(window, onset, offset)
    if method == "frame_difference":
        scores = _smooth(frame_difference_scores(read, window), SMOOTH_FRAMES)
        return window[int(np.argmax(scores))]

    first = read(window[0])
    cache: dict[int, float] = {}

    def score(n: int) -> float:
        if n not in cache:
            cache[n] = strain_score(first, read(n))
        return cache[n]

    coarse = window[::step]
    best = max(coarse, key=lambda n: (score(n), -n))
    i = window.index(best)
    near = window[max(i - step + 1, 0) : i + step]
    return max(near, key=lambda n: (score(n), -n))
