"""Facial regions the spotter watches, as fractions of the face frame, and their masks on the flow grid.

The face frame is the crop a face detector gives (preprocessing/face.py: the Haar box plus 10 % margin on
every side), resized to the spotter's working size. In such a crop of a frontal face the brows lie at about
0.25-0.33 of its height, the eyes at 0.37-0.44, the nose tip at 0.58 and the mouth at 0.72-0.76 (Haar
boxes place the eyes at ~0.38 and the mouth at ~0.78 of the box; the margin maps y to (y + 0.1) / 1.2).
The regions follow the facial action units spotting has to see: brows (AU1, 2, 4), nose and cheeks
(AU6, 9, 10), mouth corners and chin (AU12, 14, 15, 17, 25, 26); each side of the face is its own region
because many micro-expressions are one-sided.

The eye band (0.35-0.52) is left out on purpose: a blink is the largest, most frequent facial movement in
a long video and it is short, so it looks like a micro-expression to any motion signal; the MEGC spotting
baselines (MDMD, SoftNet, MEAN) mask the eyes for the same reason. The brows stay: they carry most upper-
face action units. The band reaches further below the eye line (0.10 of the face) than above it (0.065):
a closing lid drags the skin below the eye, and a blink's flow was measured down to 0.1 below the eye
line in the synthetic faces; above it the brows (0.345 and up) must stay in. The regions are drawn for an
eye line at 0.415 and moved to the video's own (`place_regions`) where the eyes are found.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import cv2
import numpy as np


@dataclass(frozen=True)
class Region:
    """A rectangle of the face frame: rows top..bottom and columns left..right, fractions in [0, 1]."""

    name: str
    top: float
    bottom: float
    left: float
    right: float

    def __post_init__(self) -> None:
        if not (0 <= self.top < self.bottom <= 1 and 0 <= self.left < self.right <= 1):
            raise ValueError(
                f"region {self.name!r}: needs 0 <= top < bottom <= 1 and 0 <= left < right <= 1, got "
                f"top={self.top}, bottom={self.bottom}, left={self.left}, right={self.right}"
            )


# Left and right are the image's (the subject's right side is the image's left).
FACE_REGIONS = (
    Region("brow_left", 0.17, 0.345, 0.10, 0.48),
    Region("brow_right", 0.17, 0.345, 0.52, 0.90),
    Region("cheek_left", 0.52, 0.68, 0.10, 0.33),
    Region("nose", 0.52, 0.68, 0.35, 0.65),
    Region("cheek_right", 0.52, 0.68, 0.67, 0.90),
    Region("mouth_left", 0.68, 0.92, 0.15, 0.50),
    Region("mouth_right", 0.68, 0.92, 0.50, 0.85),
)
# Not spotting regions: where blinks happen. Their signal (the larger of the two) tells how much a blink
# leaks into the regions around it; each eye on its own, as the regions are about its size (a band across
# the face would average a blink away over the skin between and beside the eyes).
EYES = (Region("eye_left", 0.35, 0.52, 0.12, 0.46), Region("eye_right", 0.35, 0.52, 0.54, 0.88))
# The rows the regions above are drawn for: the eye line (the eye band's middle) and the mouth line.
EYE_LINE = 0.415
MOUTH_LINE = 0.79
# Where a located eye line is believed: outside this, the detection is taken for something else.
EYE_LINE_RANGE = (0.28, 0.58)


@lru_cache(maxsize=1)
def _eye_cascade() -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_eye.xml")
    if cascade.empty():
        raise RuntimeError(f"OpenCV Haar cascade haarcascade_eye.xml is missing from {cv2.data.haarcascades}")
    return cascade


def locate_eye_line(face: np.ndarray) -> float | None:
    """The eye line of a face frame, a share of its height, from OpenCV's Haar eye cascade; None if it does
    not find two eyes side by side in the upper two thirds.

    Faces differ (and so do crops): in the synthetic faces the eyes lie anywhere in 0.40-0.46 of the frame,
    and a band fixed for one face lets the next one's blinks into the brows. The search covers the upper two
    thirds at a fine scale step (1.05): a face box's upper half, as preprocessing.face.detect_eyes searches,
    cuts through eyes that sit low in the frame.
    """
    gray = np.asarray(face)
    if gray.ndim == 3:
        gray = cv2.cvtColor(np.ascontiguousarray(gray[..., :3]), cv2.COLOR_RGB2GRAY)
    if gray.dtype != np.uint8:
        gray = np.clip(np.rint(gray * (255.0 if gray.max() <= 1.0 else 1.0)), 0, 255).astype(np.uint8)
    h, w = gray.shape
    found = _eye_cascade().detectMultiScale(
        gray[: 2 * h // 3], scaleFactor=1.05, minNeighbors=3, minSize=(max(w // 10, 8), max(w // 10, 8))
    )
    eyes = [(x + bw / 2, y + bh / 2, bw * bh) for x, y, bw, bh in found]
    best = None
    for i, (xa, ya, area_a) in enumerate(eyes):
        for xb, yb, area_b in eyes[i + 1 :]:
            # Two eyes: side by side (a sixth of the width apart at least), level within 8 % of the height.
            if abs(xa - xb) < w / 6 or abs(ya - yb) > 0.08 * h:
                continue
            if best is None or area_a + area_b > best[0]:
                best = (area_a + area_b, (ya + yb) / 2 / h)
    if best is None or not EYE_LINE_RANGE[0] <= best[1] <= EYE_LINE_RANGE[1]:
        return None
    return float(best[1])


def _warp_row(y: float, eye_line: float) -> float:
    """A row of the regions' standard face, moved so its eye line falls on `eye_line` (piecewise linear
    through the top, the eye line, the mouth line and the bottom, which stay put)."""
    if y <= EYE_LINE:
        return y * eye_line / EYE_LINE
    if y <= MOUTH_LINE:
        return eye_line + (y - EYE_LINE) * (MOUTH_LINE - eye_line) / (MOUTH_LINE - EYE_LINE)
    return y


def place_regions(regions: tuple[Region, ...], eye_line: float | None) -> tuple[Region, ...]:
    """The regions moved to a face whose eye line is `eye_line` (None: as drawn)."""
    if eye_line is None:
        return tuple(regions)
    return tuple(
        replace(r, top=_warp_row(r.top, eye_line), bottom=_warp_row(r.bottom, eye_line)) for r in regions
    )


def as_region(value) -> Region:
    """A Region from a Region, a mapping (a Hydra config) or a (name, top, bottom, left, right) sequence."""
    if isinstance(value, Region):
        return value
    if isinstance(value, dict) or hasattr(value, "keys"):
        return Region(**dict(value))
    return Region(*value)


def region_masks(grid: tuple[int, int], regions: tuple[Region, ...], border: float) -> np.ndarray:
    """(R, gh, gw) bool: the cells of a gh x gw flow grid whose centres fall in each region.

    Cells within `border` (a fraction of each side) of the frame's edge belong to no region: flow there
    is unreliable (the crop edge, where a head move brings in or hides image content).
    """
    gh, gw = grid
    ys = (np.arange(gh) + 0.5) / gh
    xs = (np.arange(gw) + 0.5) / gw
    inner_y = (ys >= border) & (ys <= 1 - border)
    inner_x = (xs >= border) & (xs <= 1 - border)
    masks = np.zeros((len(regions), gh, gw), dtype=bool)
    for r, region in enumerate(regions):
        rows = (ys >= region.top) & (ys < region.bottom) & inner_y
        cols = (xs >= region.left) & (xs < region.right) & inner_x
        masks[r] = rows[:, None] & cols[None, :]
        if not masks[r].any():
            raise ValueError(f"region {region.name!r} holds no cell of a {gh}x{gw} flow grid")
    return masks


def inner_mask(grid: tuple[int, int], border: float) -> np.ndarray:
    """(gh, gw) bool: the cells away from the frame's edge (those the head-motion fit uses)."""
    gh, gw = grid
    ys = (np.arange(gh) + 0.5) / gh
    xs = (np.arange(gw) + 0.5) / gw
    rows = (ys >= border) & (ys <= 1 - border)
    cols = (xs >= border) & (xs <= 1 - border)
    return rows[:, None] & cols[None, :]
