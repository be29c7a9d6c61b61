"""HOOF: histograms of oriented optical flow (Chaudhry et al., CVPR 2009), one per spatial block: the
apex-frame baseline of the seed's "Less is more" table (flow from the onset to the apex, or to a random
frame).

Orientation is θ = atan2(v, u) in degrees, in [-180, 180) (u along columns, v along rows, downwards, as
preprocessing.flow returns them); `bins` equal sectors from -180°, so with 8 bins bin 4 is [0°, 45°):
rightward to slightly downward flow. Each pixel votes with its flow magnitude √(u² + v²); each block's
histogram is normalised to sum 1 (a block without motion stays all zero). Chaudhry's HOOF folds left and
right motion into one bin (angles taken from the vertical axis); here the whole circle is kept, so HOOF
and Bi-WOOF bin orientations the same way and differ only in their weights.
"""

from __future__ import annotations

import numpy as np

from preprocessing.handcrafted.lbp import block_edges

MAX_BINS = 360


def as_flow(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """u, v as float64 (H, W) arrays of one shape, finite; anything else is refused with its shapes."""
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if u.ndim != 2 or u.shape != v.shape:
        raise ValueError(f"u and v must be (H, W) arrays of one shape, got {u.shape} and {v.shape}")
    if not (np.isfinite(u).all() and np.isfinite(v).all()):
        raise ValueError("the flow holds NaN or infinite values")
    return u, v


def check_bins(bins: int) -> int:
    """The number of orientation bins as an int in 1..MAX_BINS."""
    if isinstance(bins, bool) or int(bins) != bins or not 1 <= bins <= MAX_BINS:
        raise ValueError(f"orientation bins must be an integer in 1..{MAX_BINS}, got {bins!r}")
    return int(bins)


def flow_orientation(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """atan2(v, u) in degrees, float64 (H, W) in [-180, 180); 180° (leftward) is -180°, zero flow is 0°."""
    u, v = as_flow(u, v)
    theta = np.degrees(np.arctan2(v, u))
    theta[theta >= 180.0] -= 360.0
    return theta


def orientation_bins(orientation: np.ndarray, bins: int = 8) -> np.ndarray:
    """The bin (int64, same shape) of each orientation in degrees: `bins` equal sectors of [-180, 180)."""
    bins = check_bins(bins)
    index = np.floor((np.asarray(orientation, dtype=np.float64) + 180.0) * (bins / 360.0)).astype(np.int64)
    return np.clip(index, 0, bins - 1)  # round-off at 180 - 1e-14 must not open bin `bins`


def orientation_histogram(bin_index: np.ndarray, weights: np.ndarray, bins: int) -> np.ndarray:
    """Sum of `weights` per orientation bin, float64 (bins,)."""
    return np.bincount(np.ravel(bin_index), weights=np.ravel(weights).astype(np.float64), minlength=bins)


def _normalised(histogram: np.ndarray) -> np.ndarray:
    total = histogram.sum()
    return histogram / total if total > 0 else histogram


def hoof_length(blocks: tuple[int, int] = (5, 5), bins: int = 8) -> int:
    """Length of the `hoof` descriptor: rows x cols x bins."""
    return int(blocks[0] * blocks[1] * bins)


def hoof(u: np.ndarray, v: np.ndarray, blocks: tuple[int, int] = (5, 5), bins: int = 8) -> np.ndarray:
    """HOOF of a flow field u, v (H, W) in px: float32 (rows * cols * bins,), blocks row by row.

    The image is partitioned into blocks = (rows, cols) near-equal blocks (`block_edges`, no overlap); per
    block, the magnitude-weighted orientation histogram, normalised to sum 1.
    """
    u, v = as_flow(u, v)
    bins = check_bins(bins)
    rows, cols = (int(b) for b in blocks)
    height, width = u.shape
    if rows > height or cols > width:
        raise ValueError(f"HOOF: {rows}x{cols} blocks do not fit a {height}x{width} flow field")
    index = orientation_bins(flow_orientation(u, v), bins)
    magnitude = np.hypot(u, v)
    pieces = [
        _normalised(orientation_histogram(index[y0:y1, x0:x1], magnitude[y0:y1, x0:x1], bins))
        for y0, y1 in block_edges(height, rows)
        for x0, x1 in block_edges(width, cols)
    ]
    return np.concatenate(pieces).astype(np.float32)
