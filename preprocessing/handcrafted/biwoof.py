"""Bi-WOOF: bi-weighted oriented optical flow (Liong, See, Wong, Phan, "Less is more", Signal Processing:
Image Communication 62, 2018), step for step as specs/models.md section 10.3 and the authors' `biwoof.m`:

1. from the flow onset -> apex: magnitude ρ = √(u² + v²), orientation θ = atan2(v, u) in degrees, optical
   strain magnitude |ε| (preprocessing.strain, the `os.m` backward differences by default);
2. the face in 5 x 5 blocks laid out as `biwoof.m` does (`biwoof_block_edges`: neighbouring blocks share
   two pixel rows / columns);
3. per block an 8-bin orientation histogram over [-180°, 180°), each pixel voting with its *local weight*
   ρ, normalised to sum 1;
4. the block's histogram times its *global weight*, the block's sum of |ε|;
5. the 25 blocks concatenated (200-D) and L2-normalised.

The seed's ablations are switches: local weight none | flow (ρ) | strain (|ε|), global weight none | flow
(block sum of ρ) | strain (block sum of |ε|), 1..10 bins (its table), and the flow pair (apex & onset or
random frame & onset), which preprocessing.handcrafted.spec chooses.

One departure from `biwoof.m`: it bins with MATLAB `histc` on the edges -180:45:135, whose last bin holds
only θ == 135° exactly, so flow pointing between 135° and 180° (left and slightly down) is dropped. Here
the last bin is [135°, 180°), as the spec and the paper describe the histogram.
"""

from __future__ import annotations

import numpy as np

from preprocessing.handcrafted.hoof import (
    as_flow,
    check_bins,
    flow_orientation,
    orientation_bins,
    orientation_histogram,
)
from preprocessing.strain import optical_strain

WEIGHTS = ("none", "flow", "strain")


def biwoof_block_edges(length: int, count: int = 5) -> list[tuple[int, int]]:
    """`biwoof.m`'s blocks along one axis as [start, stop) intervals: with h = floor(length / count), block
    k spans rows k*h - 1 .. (k+1)*h (MATLAB's (k-1)h .. kh+1, one-based), the first starts at 0 and the last
    ends at the image edge; so neighbours share two rows."""
    if isinstance(count, bool) or int(count) != count or count < 1:
        raise ValueError(f"Bi-WOOF blocks must be a positive integer per axis, got {count!r}")
    size = length // count
    if size < 1 or (count > 1 and size + 1 > length):
        raise ValueError(f"Bi-WOOF: {length} pixels cannot hold {count} blocks")
    edges = []
    for k in range(count):
        start = 0 if k == 0 else k * size - 1
        stop = length if k == count - 1 else (k + 1) * size + 1
        edges.append((start, stop))
    return edges


def _blocks(shape: tuple[int, int], blocks: tuple[int, int]) -> list[tuple[slice, slice]]:
    rows, cols = (int(b) for b in blocks)
    return [
        (slice(y0, y1), slice(x0, x1))
        for y0, y1 in biwoof_block_edges(shape[0], rows)
        for x0, x1 in biwoof_block_edges(shape[1], cols)
    ]


def block_sums(values: np.ndarray, blocks: tuple[int, int] = (5, 5)) -> np.ndarray:
    """Sum of `values` (H, W) over each Bi-WOOF block, row by row: float64 (rows * cols,)."""
    values = np.asarray(values, dtype=np.float64)
    return np.array([values[rows, cols].sum() for rows, cols in _blocks(values.shape, blocks)])


def _weight(name: str, what: str, magnitude: np.ndarray, strain: np.ndarray) -> np.ndarray:
    if name == "flow":
        return magnitude
    if name == "strain":
        return strain
    if name == "none":
        return np.ones_like(magnitude)
    raise ValueError(f"unknown Bi-WOOF {what} weight {name!r}; allowed: {', '.join(WEIGHTS)}")


def _strain(u: np.ndarray, v: np.ndarray, strain: np.ndarray | None, scheme: str) -> np.ndarray:
    if strain is None:
        return optical_strain(u, v, scheme).astype(np.float64)
    strain = np.asarray(strain, dtype=np.float64)
    if strain.shape != u.shape:
        raise ValueError(f"strain must have the flow's shape {u.shape}, got {strain.shape}")
    return strain


def global_weights(
    u: np.ndarray,
    v: np.ndarray,
    strain: np.ndarray | None = None,
    blocks: tuple[int, int] = (5, 5),
    global_weight: str = "strain",
    strain_scheme: str = "backward",
) -> np.ndarray:
    """Each block's global weight, float64 (rows * cols,): its sum of |ε| ("strain"), of ρ ("flow"), or 1."""
    u, v = as_flow(u, v)
    strain = _strain(u, v, strain, strain_scheme)
    weights = _weight(global_weight, "global", np.hypot(u, v), strain)
    return (
        np.ones(int(blocks[0]) * int(blocks[1])) if global_weight == "none" else block_sums(weights, blocks)
    )


def biwoof_length(blocks: tuple[int, int] = (5, 5), bins: int = 8) -> int:
    """Length of the `biwoof` descriptor: rows x cols x bins (200 for the paper's 5 x 5 x 8)."""
    return int(blocks[0] * blocks[1] * bins)


def biwoof(
    u: np.ndarray,
    v: np.ndarray,
    strain: np.ndarray | None = None,
    bins: int = 8,
    blocks: tuple[int, int] = (5, 5),
    local_weight: str = "flow",
    global_weight: str = "strain",
    strain_scheme: str = "backward",
) -> np.ndarray:
    """Bi-WOOF of the flow u, v (H, W) in px (onset -> apex): float32 (rows * cols * bins,), L2 norm 1
    (all zero when every block's global weight is 0, e.g. a pure translation has no strain).

    strain: |ε| (H, W), or None to compute it from u, v with `strain_scheme`. local_weight / global_weight:
    one of WEIGHTS (see the module docstring). A block whose local weights sum to 0 contributes zeros.
    """
    u, v = as_flow(u, v)
    bins = check_bins(bins)
    strain = _strain(u, v, strain, strain_scheme)
    magnitude = np.hypot(u, v)
    local = _weight(local_weight, "local", magnitude, strain)
    scale = global_weights(u, v, strain, blocks, global_weight)
    index = orientation_bins(flow_orientation(u, v), bins)
    pieces = []
    for (rows, cols), weight in zip(_blocks(u.shape, blocks), scale, strict=True):
        histogram = orientation_histogram(index[rows, cols], local[rows, cols], bins)
        total = histogram.sum()
        pieces.append(histogram / total * weight if total > 0 else histogram)
    descriptor = np.concatenate(pieces)
    norm = np.linalg.norm(descriptor)
    return (descriptor / norm if norm > 0 else descriptor).astype(np.float32)
