"""The spotter's motion signal: how much each facial region moves and comes back, frame by frame.

For each analysed frame t and a window of k frames, g_k(t) is the optical flow from frame t - k (the start
of the window) to frame t: the face's displacement P(t) - P(t - k). Around a centre frame c the two
displacements
    d_before = P(c) - P(c - k) = g_k(c)        d_after = P(c + 1) - P(c + k + 1) = -g_k(c + k + 1)
(frame c + 1 stands for c in the second, so the two flows share no frame and a frame's own sensor
noise, which would move away in one and back in the other, is not read as a movement) point the same
way when the face moved away and came back within the window (an expression: onset, apex, offset), and
opposite ways or not at all for a movement that only goes one way (a head turn that stays,
a slow drift of pose or light, the rise or the fall of a long expression alone). So per flow cell
    C_k(c) = sqrt(max(0, <d_before, d_after>))     (px; the region's mean taken inside the root)
is the size of a go-and-return movement centred on c: for one expression of intensity profile a(t) and
no other motion inside the window it is a(c) times the expression's displacement, exactly the expression's
own profile, so its peak is the apex and its width is the expression's. It answers only to movements
shorter than 2 k, which is what separates the two scales: micro_window k_m sees micro-expressions and
short macro-expressions, macro_window k_M sees macro-expressions too.

Before the product, the global motion of the head is taken out of each flow: an affine (or translation)
flow is fitted to the face's cells by least squares, refitted once without the cells that moved far more
than the fit (the expression itself), and subtracted. Each region's signal is the square root of the mean
of <d_before, d_after> over its cells (averaging before the root lets the zero-mean products of noise
cancel, where rectifying each cell first would add them up); spotting/regions.py: the eyes are not a
region. The eyes' own signal and the removed head motion's are kept too: spotting/spotter.py takes what
blinks and head moves leak into the regions off them.

Memory: one pass over the frames, holding the last k_M + 2 working frames (128 x ~104 uint8) and the last
k + 2 cell flows per scale (2 x 32 x ~26 x 2 float32: with and without the head's motion): about 4 MB at
60 analysed frames a second, whatever the video's length. Cost: two optical flows per analysed frame,
plus k_m + k_M at the end of the video (benchmarks/spotting_speed.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from preprocessing.flow import dis_flow, farneback_flow
from spotting.config import SpotterConfig
from spotting.regions import EYES, inner_mask, locate_eye_line, place_regions, region_masks

# A cell whose residual exceeds this many times the median residual is left out of the head-motion refit.
_OUTLIER_FACTOR = 2.5


def working_size(shape: tuple[int, int], config: SpotterConfig) -> tuple[int, int]:
    """(W, H) the face frame is resized to: face_height high (a whole number of cells), aspect kept."""
    h, w = shape[:2]
    cell = config.cell_px
    height = config.face_height // cell * cell
    width = max(8, int(round(height * w / h / cell))) * cell
    return width, height


def prepare(frame: np.ndarray, size: tuple[int, int], blur_sigma: float) -> np.ndarray:
    """A frame as the flow reads it: grey uint8 (H, W) at the working `size` (W, H), lightly blurred."""
    frame = np.asarray(frame)
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[..., 0]
    if frame.ndim == 3:
        frame = cv2.cvtColor(np.ascontiguousarray(frame[..., :3]), cv2.COLOR_RGB2GRAY)
    if frame.ndim != 2:
        raise ValueError(f"expected a frame of shape (H, W) or (H, W, 3), got {frame.shape}")
    if frame.dtype != np.uint8:
        if np.issubdtype(frame.dtype, np.floating) and frame.size and float(np.nanmax(frame)) <= 1.0:
            frame = frame * 255.0
        frame = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    if (frame.shape[1], frame.shape[0]) != size:
        frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    if blur_sigma > 0:
        frame = cv2.GaussianBlur(frame, (0, 0), blur_sigma)
    return frame


class CellFlow:
    """Optical flow between two working frames, averaged over cells, with the head's motion removed."""

    def __init__(self, size: tuple[int, int], config: SpotterConfig) -> None:
        width, height = size
        self.cell = config.cell_px
        self.grid = (height // self.cell, width // self.cell)
        self.flow = dis_flow if config.flow == "dis" else farneback_flow
        self.head_motion = config.head_motion
        gh, gw = self.grid
        ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float64)
        # Cell centres in [-1, 1], so the affine fit is well conditioned at any size.
        x = (xs + 0.5) / gw * 2 - 1
        y = (ys + 0.5) / gh * 2 - 1
        fit = inner_mask(self.grid, config.border).ravel()
        columns = (
            [np.ones(gh * gw)]
            if self.head_motion == "translation"
            else [np.ones(gh * gw), x.ravel(), y.ravel()]
        )
        self.design = np.stack(columns, axis=1)
        self.fit_cells = np.flatnonzero(fit)

    def __call__(self, prev: np.ndarray, next: np.ndarray) -> np.ndarray:
        """(2, gh, gw, 2) float32: the cells' mean flow (u, v) from `prev` to `next` with the head's motion
        removed, and the head's motion that was removed (px)."""
        u, v = self.flow(prev, next)
        gh, gw = self.grid
        # The working size is a whole number of cells, so INTER_AREA is the exact mean of each cell.
        cells = cv2.resize(np.dstack([u, v]), (gw, gh), interpolation=cv2.INTER_AREA).astype(np.float64)
        if self.head_motion == "none":
            return np.stack([cells, np.zeros_like(cells)]).astype(np.float32)
        residual = self.remove_head_motion(cells)
        return np.stack([residual, cells - residual]).astype(np.float32)

    def remove_head_motion(self, cells: np.ndarray) -> np.ndarray:
        flat = cells.reshape(-1, 2).astype(np.float64)
        chosen = self.fit_cells
        for _ in range(2):
            coef, *_ = np.linalg.lstsq(self.design[chosen], flat[chosen], rcond=None)
            residual = flat - self.design @ coef
            size = np.hypot(residual[:, 0], residual[:, 1])
            inner = size[self.fit_cells]
            keep = self.fit_cells[inner <= _OUTLIER_FACTOR * max(float(np.median(inner)), 1e-6)]
            if len(keep) < self.design.shape[1] * 4:
                break
            chosen = keep
        return residual.reshape(cells.shape).astype(np.float32)


def go_and_return(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """(gh, gw) -<g(c), g(c + k)> = <d_before, d_after>: each cell's movement away and back around c (px^2).

    before = g(c) (flow into the centre frame), after = g(c + k) (flow out of it, from c to c + k)."""
    return -(before[..., 0] * after[..., 0] + before[..., 1] * after[..., 1])


@dataclass
class _Scale:
    window: int
    flows: deque  # g(t) of the last window + 1 analysed frames
    rows: list  # (R,) per centre frame, in order


@dataclass
class MotionSignals:
    """Signals of one video on the analysed frames, px, per scale: (N, R) per region (R = len(regions)),
    and (N,) of the eye band and of the head's own (removed) motion."""

    micro: np.ndarray
    macro: np.ndarray
    micro_eyes: np.ndarray
    macro_eyes: np.ndarray
    micro_head: np.ndarray
    macro_head: np.ndarray
    region_names: tuple[str, ...]
    micro_window: int  # in analysed frames
    macro_window: int
    eye_line: float | None  # the located eye line (share of the face frame's height); None: regions as drawn


class _Regions:
    """The cell masks of the regions, the eye band and the face, placed once on the video's eye line."""

    def __init__(self, grid: tuple[int, int], config: SpotterConfig, frames: Sequence[np.ndarray]) -> None:
        self.eye_line = None
        if config.locate_eyes:
            self.eye_line = next((e for e in map(locate_eye_line, frames) if e is not None), None)
        placed = place_regions((*config.regions, *EYES), self.eye_line)
        masks = np.concatenate(
            [region_masks(grid, placed, config.border), inner_mask(grid, config.border)[None]]
        )
        self.masks = masks.reshape(len(placed) + 1, -1).astype(np.float64)
        self.counts = self.masks.sum(axis=1)

    def values(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """(R + 2,) sqrt(max(0, mean of the products over each region's cells)) (px): the regions on the
        flow with the head's motion removed, then the larger of the two eyes' on that flow, then the face
        on the head's own motion."""
        residual = go_and_return(before[0], after[0]).ravel()
        head = go_and_return(before[1], after[1]).ravel()
        means = np.concatenate([self.masks[:-1] @ residual, [self.masks[-1] @ head]]) / self.counts
        values = np.sqrt(np.maximum(means, 0.0))
        eyes = len(EYES)
        return np.concatenate([values[: -1 - eyes], [values[-1 - eyes : -1].max()], values[-1:]])


def motion_signals(
    frames: Iterable[np.ndarray],
    windows: Sequence[int],
    config: SpotterConfig,
    size: tuple[int, int] | None = None,
) -> MotionSignals:
    """The signals of `frames` (the analysed frames, in order; any length) at the windows (k_m, k_M).

    frames: grey uint8 (H, W) or RGB face frames, all one size; read once, one at a time.
    windows: (micro, macro) comparison distances in analysed frames, each >= 1.
    size: the working (W, H); None derives it from the first frame.
    The eyes are looked for (config.locate_eyes) on the first, middle and last frame of the first window.
    """
    k_micro, k_macro = (int(k) for k in windows)
    if min(k_micro, k_macro) < 1:
        raise ValueError(f"windows must be at least 1 analysed frame, got {tuple(windows)}")
    horizon = max(k_micro, k_macro)
    ring: deque[np.ndarray] = deque(maxlen=horizon + 2)
    scales = [_Scale(k, deque(maxlen=k + 2), []) for k in (k_micro, k_macro)]
    flow: CellFlow | None = None
    regions: _Regions | None = None
    shape = None
    count = 0

    def placed() -> _Regions:
        nonlocal regions
        if regions is None:
            picks = sorted({0, len(ring) // 2, len(ring) - 1})
            regions = _Regions(flow.grid, config, [ring[i] for i in picks])
        return regions

    for t, frame in enumerate(frames):
        frame = np.asarray(frame)
        if flow is None:
            shape = frame.shape[:2]
            size = size or working_size(shape, config)
            flow = CellFlow(size, config)
        elif frame.shape[:2] != shape:
            raise ValueError(f"frame {t} is {frame.shape[:2]}, the first frame was {shape}")
        ring.append(prepare(frame, size, config.blur_sigma))
        count = t + 1
        for scale in scales:
            k = scale.window
            if t == 0:
                g = np.zeros((2, *flow.grid, 2), np.float32)
            else:
                # Before the first full window the reference is the first frame (still in the ring).
                ref = ring[-1 - k] if t >= k else ring[len(ring) - 1 - t]
                g = flow(ref, ring[-1])
            scale.flows.append(g)
            if t >= k + 1:
                # g(c) and g(c + k + 1), c = t - k - 1: no frame in common, so a frame's own noise (which
                # moves away in one flow and back in the other) is not read as a movement.
                scale.rows.append(placed().values(scale.flows[0], g))
    if flow is None:
        raise ValueError("no frames to spot")
    # The last window of each scale: centres c > N - 2 - k have no frame k + 1 later; the last frame stands
    # in for it (flow from c + 1 to N - 1), so an expression near the end is still seen.
    for scale in scales:
        k = scale.window
        for c in range(max(count - k - 1, 0), count):
            before = scale.flows[c - (count - len(scale.flows))]
            if c + 1 >= count - 1:
                after = np.zeros_like(before)
            else:
                after = flow(ring[c + 1 - (count - len(ring))], ring[-1])
            scale.rows.append(placed().values(before, after))
    micro, macro = (np.asarray(s.rows, dtype=np.float64).reshape(count, -1) for s in scales)
    return MotionSignals(
        micro=micro[:, :-2],
        macro=macro[:, :-2],
        micro_eyes=micro[:, -2],
        macro_eyes=macro[:, -2],
        micro_head=micro[:, -1],
        macro_head=macro[:, -1],
        region_names=tuple(r.name for r in config.regions),
        micro_window=k_micro,
        macro_window=k_macro,
        eye_line=placed().eye_line,
    )
