"""Local binary patterns of a clip: LBP codes, the uniform-2 mapping, LBP-TOP and LBP-SIP histograms.

Geometry, shared by every function here (the Oulu `lbp.m` / `LBPTOP.m` convention, which scikit-image's
`local_binary_pattern` also follows): neighbour p of P sits at angle 2πp/P on a circle (an ellipse when the
two radii differ) and sets bit p of the code when its grey value is >= the centre's. In the XY plane it
lies at (x + R_X cos, y - R_Y sin), so bit 0 is the right neighbour and bit 1 the one above; in XT at
(x + R_X cos, t - R_T sin); in YT at (y - R_Y cos, t - R_T sin). Neighbours off the pixel grid are read by
bilinear interpolation (`interpolation="nearest"` rounds them to the grid, as `LBPTOP.m` does).

Two details that decide codes:
* An interpolated neighbour of a flat patch differs from the centre by round-off only (weights such as
  1 - 1/√2 do not sum back to exactly 1), so neighbours within `TIE` (relative to the clip's peak value)
  of the centre count as equal, hence >=: a flat patch codes as all ones whatever the weights.
* Codes are computed only at pixels whose whole neighbourhood lies inside the volume (the border is the
  reach of the circles, one pixel per unit of radius), and the spatial blocks and temporal slices divide
  that interior, as `LBPTOP.m` does. Nothing outside the volume is ever read.

Everything is vectorised over whole planes: each neighbour is one shifted (and interpolated) copy of the
interior, never a loop over pixels.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

MAPPINGS = ("u2", "none")
INTERPOLATIONS = ("bilinear", "nearest")
PLANES = ("xy", "xt", "yt")
# Neighbours within TIE x (the clip's peak |value|, at least 1) of the centre count as equal to it.
TIE = 1e-9
# Offsets this close to a whole pixel are that pixel (cos(pi/2) is 6e-17, not 0).
_SNAP = 1e-9
# u2 tables are built for up to 16 neighbours (65,536 codes); more would need a table per call.
MAX_POINTS = 16
# LBP-SIP: its spatial code has 4 neighbours (16 patterns), its temporal code 2 (4 patterns).
SIP_BINS = (16, 4)


def uniform_bins(points: int) -> int:
    """Bins of the uniform-2 mapping for P neighbours: P(P-1) + 2 uniform patterns plus one for the rest."""
    return points * (points - 1) + 3


@lru_cache(maxsize=32)
def uniform_mapping(points: int) -> np.ndarray:
    """The uniform-2 ("u2") mapping of P-bit codes, as the Oulu `getmapping(P, 'u2')` builds it.

    A pattern is uniform when, read around the circle, it has at most two 0/1 transitions. Uniform codes
    get bins 0, 1, 2, ... in increasing code order; every other code shares the last bin, P(P-1) + 2.
    Returns an int64 table of length 2^P (read-only), code -> bin.
    """
    _check_points(points)
    codes = np.arange(2**points, dtype=np.int64)
    rotated = ((codes << 1) | (codes >> (points - 1))) & (2**points - 1)
    changes = np.zeros_like(codes)
    for bit in range(points):
        changes += ((codes ^ rotated) >> bit) & 1
    uniform = changes <= 2
    table = np.full_like(codes, uniform_bins(points) - 1)
    table[uniform] = np.arange(int(uniform.sum()))
    table.setflags(write=False)
    return table


def code_bins(points: int, mapping: str = "u2") -> int:
    """How many histogram bins a P-neighbour code has under `mapping` ("u2" or "none": all 2^P codes)."""
    _check_points(points)
    if mapping == "u2":
        return uniform_bins(points)
    if mapping == "none":
        return 2**points
    raise ValueError(f"unknown LBP mapping {mapping!r}; allowed: {', '.join(MAPPINGS)}")


def _check_points(points: int) -> None:
    if isinstance(points, bool) or int(points) != points or not 2 <= points <= MAX_POINTS:
        raise ValueError(
            f"the number of LBP neighbours must be an integer in 2..{MAX_POINTS}, got {points!r}"
        )


def _check_radius(name: str, radius: float) -> float:
    if isinstance(radius, bool) or not np.isfinite(radius) or radius <= 0:
        raise ValueError(
            f"LBP radius {name} must be a positive number of pixels (frames for R_T), got {radius!r}"
        )
    return float(radius)


def _snap(offset: float, interpolation: str) -> float:
    if interpolation == "nearest":
        return float(math.floor(offset + 0.5))
    nearest = round(offset)
    return float(nearest) if abs(offset - nearest) < _SNAP else offset


def plane_offsets(
    plane: str, points: int, radii: tuple[float, float, float], interpolation: str = "bilinear"
) -> np.ndarray:
    """The P neighbours of `plane` ("xy", "xt", "yt") as (dt, dy, dx) offsets from the centre, (P, 3).

    radii = (R_X, R_Y, R_T); see the module docstring for the circle's orientation in each plane.
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"unknown LBP interpolation {interpolation!r}; allowed: {', '.join(INTERPOLATIONS)}")
    _check_points(points)
    rx, ry, rt = (_check_radius(n, r) for n, r in zip(("R_X", "R_Y", "R_T"), radii, strict=True))
    angles = 2 * np.pi * np.arange(points) / points
    cos, sin = np.cos(angles), np.sin(angles)
    zero = np.zeros(points)
    if plane == "xy":
        rows = np.stack([zero, -ry * sin, rx * cos], axis=1)
    elif plane == "xt":
        rows = np.stack([-rt * sin, zero, rx * cos], axis=1)
    elif plane == "yt":
        rows = np.stack([-rt * sin, -ry * cos, zero], axis=1)
    else:
        raise ValueError(f"unknown LBP plane {plane!r}; allowed: {', '.join(PLANES)}")
    return np.array([[_snap(o, interpolation) for o in row] for row in rows])


def _margins(offsets: np.ndarray) -> list[tuple[int, int]]:
    """Per axis (t, y, x): how many pixels before and after the centre the neighbours (and their
    interpolation corners) reach."""
    low = np.floor(offsets.min(axis=0)).astype(int)
    high = np.ceil(offsets.max(axis=0)).astype(int)
    return [(max(0, -int(lo)), max(0, int(hi))) for lo, hi in zip(low, high, strict=True)]


def _interior(shape: tuple[int, ...], margins: list[tuple[int, int]], what: str) -> list[tuple[int, int]]:
    box = []
    for axis, size, (before, after) in zip(("frames", "rows", "columns"), shape, margins, strict=True):
        if size - before - after < 1:
            need = before + after + 1
            raise ValueError(f"{what} needs at least {need} {axis} for its radii, the clip has {size}")
        box.append((before, size - after))
    return box


def _corners(offset: float) -> list[tuple[int, float]]:
    # (whole-pixel shift, weight) pairs of a linear interpolation along one axis.
    whole = math.floor(offset)
    fraction = offset - whole
    return [(whole, 1.0)] if fraction == 0 else [(whole, 1.0 - fraction), (whole + 1, fraction)]


def _lerp(parts: list[tuple[float, np.ndarray]]) -> np.ndarray:
    if len(parts) == 1:
        return parts[0][1]
    (wa, a), (wb, b) = parts
    return wa * a + wb * b


def _neighbour(volume: np.ndarray, box: list[tuple[int, int]], offset: np.ndarray) -> np.ndarray:
    """The value at centre + offset for every centre in `box`: shifted views, interpolated along x, then y,
    then t (the order scikit-image uses in the XY plane, so the two agree to the last bit)."""
    (t0, t1), (y0, y1), (x0, x1) = box
    dt, dy, dx = (float(o) for o in offset)

    def window(st: int, sy: int, sx: int) -> np.ndarray:
        return volume[t0 + st : t1 + st, y0 + sy : y1 + sy, x0 + sx : x1 + sx]

    def along_x(st: int, sy: int) -> np.ndarray:
        return _lerp([(wx, window(st, sy, sx)) for sx, wx in _corners(dx)])

    def along_y(st: int) -> np.ndarray:
        return _lerp([(wy, along_x(st, sy)) for sy, wy in _corners(dy)])

    return _lerp([(wt, along_y(st)) for st, wt in _corners(dt)])


def _volume(volume: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(volume)
    if array.ndim != 3:
        raise ValueError(
            f"{what} expects a grey clip of shape (T, H, W), got an array of shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"{what} expects real grey values, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: the clip holds NaN or infinite values")
    return array


def _codes(volume: np.ndarray, box: list[tuple[int, int]], offsets: np.ndarray) -> np.ndarray:
    """Binary codes (int64) of the centres in `box` for the neighbours `offsets` (bit p = neighbour p)."""
    (t0, t1), (y0, y1), (x0, x1) = box
    centre = volume[t0:t1, y0:y1, x0:x1]
    tie = TIE * max(1.0, float(np.abs(volume).max(initial=0.0)))
    codes = np.zeros(centre.shape, dtype=np.int64)
    for bit, offset in enumerate(offsets):
        codes |= ((_neighbour(volume, box, offset) - centre) >= -tie).astype(np.int64) << bit
    return codes


def lbp_codes(
    image: np.ndarray, points: int = 8, radius: float = 1.0, interpolation: str = "bilinear"
) -> np.ndarray:
    """Basic LBP codes (no mapping) of a grey image (H, W): int64 (H - 2m, W - 2m), the pixels whose circle
    lies inside the image (m = the circle's reach, ceil(R) for bilinear neighbours)."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"lbp_codes expects a grey image (H, W), got an array of shape {image.shape}")
    volume = _volume(image[None], "LBP")
    offsets = plane_offsets("xy", points, (radius, radius, 1.0), interpolation)
    box = _interior(volume.shape, _margins(offsets), f"LBP with P={points}, R={radius}")
    return _codes(volume, box, offsets)[0]


def lbp_top_codes(
    volume: np.ndarray,
    radii: tuple[float, float, float] = (1.0, 1.0, 1.0),
    points: tuple[int, int, int] = (8, 8, 8),
    interpolation: str = "bilinear",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Basic codes of the XY, XT and YT planes at every interior voxel of a grey clip (T, H, W).

    radii = (R_X, R_Y, R_T), points = (P_XY, P_XT, P_YT). All three code arrays cover the same centres: the
    voxels whose three circles lie inside the clip. Returns three int64 arrays of one shape (T', H', W').
    """
    volume = _volume(volume, "LBP-TOP")
    offsets = [plane_offsets(plane, p, radii, interpolation) for plane, p in zip(PLANES, points, strict=True)]
    box = _interior(volume.shape, _margins(np.concatenate(offsets)), f"LBP-TOP with radii {tuple(radii)}")
    xy, xt, yt = (_codes(volume, box, o) for o in offsets)
    return xy, xt, yt


def block_edges(length: int, count: int, overlap: float = 0.0) -> list[tuple[int, int]]:
    """`count` intervals [start, stop) covering 0..length, each overlapping the next by `overlap` of its size.

    Block size b and step s satisfy b + (count - 1) s = length and s = (1 - overlap) b; the ends are rounded
    to whole pixels. overlap=0 is a partition into near-equal blocks; meb's LBP-TOP uses overlap 0.7.
    """
    if isinstance(count, bool) or int(count) != count or count < 1:
        raise ValueError(f"the number of blocks must be a positive integer, got {count!r}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"block overlap must be a ratio in [0, 1), got {overlap!r}")
    size = length / (1 + (count - 1) * (1 - overlap))
    step = size * (1 - overlap)
    edges = []
    for k in range(count):
        start = int(math.floor(k * step + 0.5))
        stop = length if k == count - 1 else int(math.floor(k * step + size + 0.5))
        if stop <= start:
            raise ValueError(f"{length} pixels cannot be split into {count} blocks (overlap {overlap})")
        edges.append((start, stop))
    return edges


def _histograms(
    codes: list[np.ndarray], bins: list[int], blocks: tuple[int, int], slices: int, overlap: float
) -> np.ndarray:
    """Per temporal slice, block row and block column (in that order), each code array's histogram over the
    block, normalised to sum 1, concatenated: float32 (slices * rows * cols * sum(bins),)."""
    frames, height, width = codes[0].shape
    rows, cols = blocks
    pieces = []
    for t0, t1 in block_edges(frames, slices, overlap):
        for y0, y1 in block_edges(height, rows, overlap):
            for x0, x1 in block_edges(width, cols, overlap):
                for plane_codes, n in zip(codes, bins, strict=True):
                    block = plane_codes[t0:t1, y0:y1, x0:x1]
                    pieces.append(np.bincount(block.ravel(), minlength=n) / block.size)
    return np.concatenate(pieces).astype(np.float32)


def _check_layout(blocks: tuple[int, int], slices: int, shape: tuple[int, ...], what: str) -> tuple[int, int]:
    blocks = tuple(blocks)
    if len(blocks) != 2 or any(isinstance(b, bool) or int(b) != b or b < 1 for b in blocks):
        raise ValueError(f"{what}: blocks must be (rows, columns) of positive integers, got {blocks!r}")
    if isinstance(slices, bool) or int(slices) != slices or slices < 1:
        raise ValueError(f"{what}: slices must be a positive integer, got {slices!r}")
    for name, count, size in zip(
        ("slices", "block rows", "block columns"), (slices, *blocks), shape, strict=True
    ):
        if count > size:
            raise ValueError(
                f"{what}: {count} {name} need at least {count} interior voxels, the clip has {size}"
            )
    return int(blocks[0]), int(blocks[1])


def lbp_top_length(
    points: tuple[int, int, int] = (8, 8, 8),
    blocks: tuple[int, int] = (5, 5),
    slices: int = 1,
    mapping: str = "u2",
) -> int:
    """Length of the `lbp_top` descriptor: slices x rows x cols x (bins(P_XY) + bins(P_XT) + bins(P_YT))."""
    return int(slices * blocks[0] * blocks[1] * sum(code_bins(p, mapping) for p in points))


def lbp_top(
    volume: np.ndarray,
    radii: tuple[float, float, float] = (1.0, 1.0, 1.0),
    points: tuple[int, int, int] = (8, 8, 8),
    blocks: tuple[int, int] = (5, 5),
    slices: int = 1,
    overlap: float = 0.0,
    mapping: str = "u2",
    interpolation: str = "bilinear",
) -> np.ndarray:
    """LBP-TOP (Zhao & Pietikäinen, TPAMI 2007) of a grey clip (T, H, W): float32 (`lbp_top_length(...)`,).

    radii = (R_X, R_Y, R_T) in pixels and frames; points = (P_XY, P_XT, P_YT); mapping "u2" (uniform-2,
    P(P-1)+3 bins: 59 for P=8, 15 for P=4) or "none" (2^P bins). The interior (see the module docstring) is
    cut into `slices` temporal slices and blocks = (rows, cols) spatial blocks, neighbours overlapping by
    `overlap` of a block (`block_edges`); each block's XY, XT and YT histograms are normalised to sum 1 and
    concatenated in the order slice, row, column, plane (as `LBPTOP.m` and meb store them).
    """
    code_bins(points[0], mapping)  # reject an unknown mapping before any work
    if len(points) != 3:
        raise ValueError(f"LBP-TOP points must be (P_XY, P_XT, P_YT), got {points!r}")
    codes = list(lbp_top_codes(volume, radii, points, interpolation))
    layout = _check_layout(blocks, slices, codes[0].shape, "LBP-TOP")
    if mapping == "u2":
        codes = [uniform_mapping(p)[c] for p, c in zip(points, codes, strict=True)]
    return _histograms(codes, [code_bins(p, mapping) for p in points], layout, slices, overlap)


def sip_offsets(
    radii: tuple[float, float, float], interpolation: str = "bilinear"
) -> tuple[np.ndarray, np.ndarray]:
    """LBP-SIP's six points as (dt, dy, dx) offsets: the spatial four E (right), D (up), G (left), F (down),
    i.e. the XY circle with P=4, and the temporal two A (t - R_T), B (t + R_T). Returns ((4, 3), (2, 3))."""
    spatial = plane_offsets("xy", 4, radii, interpolation)
    rt = _check_radius("R_T", radii[2])
    temporal = np.array([[_snap(-rt, interpolation), 0.0, 0.0], [_snap(rt, interpolation), 0.0, 0.0]])
    return spatial, temporal


def lbp_sip_codes(
    volume: np.ndarray, radii: tuple[float, float, float] = (1.0, 1.0, 1.0), interpolation: str = "bilinear"
) -> tuple[np.ndarray, np.ndarray]:
    """LBP-SIP's two codes at every interior voxel: spatial (bits E, D, G, F; 0..15) and temporal (bit 0 = A,
    the frame R_T before, bit 1 = B, the frame R_T after; 0..3). Two int64 arrays of one shape."""
    volume = _volume(volume, "LBP-SIP")
    spatial, temporal = sip_offsets(radii, interpolation)
    box = _interior(
        volume.shape, _margins(np.concatenate([spatial, temporal])), f"LBP-SIP with radii {tuple(radii)}"
    )
    return _codes(volume, box, spatial), _codes(volume, box, temporal)


def lbp_sip_length(blocks: tuple[int, int] = (5, 5), slices: int = 1) -> int:
    """Length of the `lbp_sip` descriptor: slices x rows x cols x (16 + 4)."""
    return int(slices * blocks[0] * blocks[1] * sum(SIP_BINS))


def lbp_sip(
    volume: np.ndarray,
    radii: tuple[float, float, float] = (1.0, 1.0, 1.0),
    blocks: tuple[int, int] = (5, 5),
    slices: int = 1,
    overlap: float = 0.0,
    interpolation: str = "bilinear",
) -> np.ndarray:
    """LBP-SIP, LBP on six intersection points (Wang, See, Phan, Oh, "LBP with Six Intersection Points:
    Reducing Redundant Information in LBP-TOP for Micro-expression Recognition", ACCV 2014), as the seed
    tutorial describes it: float32 (`lbp_sip_length(...)`,).

    LBP-TOP with P=4 reads the 4 XY neighbours {D, E, F, G}, the XT ones {E, A, G, B} and the YT ones
    {D, A, F, B}: twelve comparisons of which only six points differ. LBP-SIP keeps each point once: per
    voxel a 4-point spatial code (16 patterns) and a 2-point temporal code (A, B: 4 patterns), no uniform
    mapping; per block (and slice) the two histograms, each normalised to sum 1, concatenated: 20 bins
    against LBP-TOP's 3 x 16 = 48 (the seed's 2.4x smaller feature). Blocks, slices and overlap as `lbp_top`.
    """
    codes = list(lbp_sip_codes(volume, radii, interpolation))
    layout = _check_layout(blocks, slices, codes[0].shape, "LBP-SIP")
    return _histograms(codes, list(SIP_BINS), layout, slices, overlap)
