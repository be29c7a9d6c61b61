"""Optical strain of a flow field (spec models.md §10.2).

The infinitesimal strain tensor of the displacement (u, v) is ε = ½(∇d + ∇dᵀ):
    ε_xx = ∂u/∂x,  ε_yy = ∂v/∂y,  ε_xy = ε_yx = ½(∂u/∂y + ∂v/∂x),
and its magnitude (Frobenius norm, as in STSTNet, Bi-WOOF, ELRCN's os.m) is
    |ε| = √(ε_xx² + ε_yy² + 2 ε_xy²) = √((∂u/∂x)² + (∂v/∂y)² + ½(∂u/∂y + ∂v/∂x)²).
u, v are in pixels and derivatives are taken per pixel, so strain is dimensionless (px/px).
"""

from __future__ import annotations

import numpy as np

STRAIN_SCHEMES = ("backward", "central")


def _backward(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # os.m: f[i, j] - f[i, j-1], with the first column (row) replicated so its difference is 0.
    dx = np.zeros_like(f)
    dy = np.zeros_like(f)
    dx[:, 1:] = f[:, 1:] - f[:, :-1]
    dy[1:, :] = f[1:, :] - f[:-1, :]
    return dx, dy


def _central(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # np.gradient returns (d/drow, d/dcol) = (d/dy, d/dx); unpacking it as (x, y) is the bug spec §10.2
    # notes in a popular recipe. Edges use one-sided first differences.
    if min(f.shape) < 2:
        return np.zeros_like(f), np.zeros_like(f)
    dy, dx = np.gradient(f)
    return dx, dy


def strain_components(
    u: np.ndarray, v: np.ndarray, scheme: str = "backward"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Strain tensor components (ε_xx, ε_yy, ε_xy) of the flow (u, v).

    u, v: (H, W) horizontal and vertical displacement in px (u along columns/x, v along rows/y).
    scheme: "backward" (default, os.m): ∂f/∂x[i, j] = f[i, j] - f[i, j-1], 0 on the first column;
            ∂f/∂y[i, j] = f[i, j] - f[i-1, j], 0 on the first row.
            "central": np.gradient, (f[i, j+1] - f[i, j-1]) / 2 inside, one-sided differences at the edges.
    Returns three float32 (H, W) arrays, dimensionless: ε_xx = ∂u/∂x, ε_yy = ∂v/∂y, ε_xy = ½(∂u/∂y + ∂v/∂x).
    """
    if scheme not in STRAIN_SCHEMES:
        raise ValueError(f"unknown strain scheme {scheme!r}; valid schemes: {', '.join(STRAIN_SCHEMES)}")
    u = np.asarray(u, dtype=np.float32)
    v = np.asarray(v, dtype=np.float32)
    if u.ndim != 2 or u.shape != v.shape:
        raise ValueError(f"u and v must be (H, W) arrays of one shape, got {u.shape} and {v.shape}")
    derivatives = _backward if scheme == "backward" else _central
    du_dx, du_dy = derivatives(u)
    dv_dx, dv_dy = derivatives(v)
    exy = np.float32(0.5) * (du_dy + dv_dx)
    return du_dx.astype(np.float32), dv_dy.astype(np.float32), exy.astype(np.float32)


def optical_strain(u: np.ndarray, v: np.ndarray, scheme: str = "backward") -> np.ndarray:
    """Optical strain magnitude |ε| = √(ε_xx² + ε_yy² + 2 ε_xy²), float32 (H, W), dimensionless.

    u, v: (H, W) flow in px; `scheme` as in `strain_components` ("backward" = os.m, the reference).
    """
    exx, eyy, exy = strain_components(u, v, scheme)
    return np.sqrt(exx * exx + eyy * eyy + 2 * exy * exy).astype(np.float32)
