"""Sparse sampling: a clip condensed to its few significant dynamics by sparsity-promoting DMD (DMDSP), the
seed tutorial's alternative to TIM before LBP-TOP (Le Ngo, Liong, See, Phan, ICDSP 2015; Le Ngo, See,
Phan, IEEE TAC 2017: "SS" in the seed's tables).

The steps, as the seed lists them:
1. Dynamic mode decomposition (Schmid 2010, in the projected form Jovanović et al. 2014 use): the frames
   x_0..x_{N-1} as columns, X0 = [x_0..x_{N-2}], X1 = [x_1..x_{N-1}]; thin SVD X0 = U Σ V* (rank r, tiny
   singular values dropped); F = U* X1 V Σ^-1 (r x r), F = Y diag(μ) Y^-1; modes φ_i = U y_i (unit
   norm), eigenvalues μ_i, so that x_k ≈ Σ_i α_i φ_i μ_i^k.
2. Amplitudes α by DMDSP (Jovanović, Schmid, Nichols, "Sparsity-promoting dynamic mode decomposition",
   Physics of Fluids 26, 2014): minimise J(α)/s + γ ||α||_1 with J(α) = ||Σ V* - Y diag(α) V_and||_F^2
   (V_and the Vandermonde matrix μ_i^k, k = 0..N-2) and s = ||Σ V*||_F^2, by ADMM (augmented Lagrangian
   weight ρ); then "polishing": with the zero pattern fixed, the least-squares amplitudes of the kept modes
   (the seed's KKT solution [I 0] [[P, E], [E^T, 0]]^-1 [q; 0], solved here as the equivalent reduced
   system P_kk α_k = q_k). γ = 0 keeps every mode and gives the optimal amplitudes P^-1 q.
3. A shorter sequence reconstructed from the kept modes: x(t) = Re Σ_kept α_i φ_i μ_i^t read at `length`
   times spread evenly over the clip (frame 0 to frame N-1, as TIM spreads its output). The seed does
   not say at which times its condensed sequence is read; evenly spread times are this module's choice.
   By default the sequence has as many frames as modes were kept (the "reduce and compress" of the
   seed); a fixed `length` makes clips comparable, and length N with γ = 0 gives the clip back.

Units: the clip is scaled to RMS frame norm 1 before the fit, so J/s is the fraction of the clip's energy
left unexplained and |α| a fraction of a typical frame's norm: γ is dimensionless, and a mode survives
roughly when the energy it explains (relative) exceeds γ times its amplitude. The DMD reconstructs frames
0..N-2 exactly when their rank is N-1; the last frame only as far as it lies in the span of the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg

from preprocessing.temporal import positions

# ADMM settings of Jovanović's dmdsp.m.
RHO = 1.0
MAX_ITERATIONS = 10_000
EPS_ABS = 1e-6
EPS_REL = 1e-4


@dataclass(frozen=True)
class DynamicModes:
    """A clip's DMD with (DMDSP) amplitudes.

    modes: (H*W, r) complex128, unit-norm columns; eigenvalues: μ (r,) complex128, per frame;
    amplitudes: α (r,) complex128 in the clip's grey units (0 for a mode DMDSP dropped); frame_shape (H, W);
    frames: N, the clip's length; residual: J(α)/s of the kept modes (0 = frames 0..N-2 explained fully).
    """

    modes: np.ndarray
    eigenvalues: np.ndarray
    amplitudes: np.ndarray
    frame_shape: tuple[int, int]
    frames: int
    residual: float

    @property
    def kept(self) -> np.ndarray:
        """Which modes have a non-zero amplitude, bool (r,)."""
        return self.amplitudes != 0

    @property
    def num_kept(self) -> int:
        return int(self.kept.sum())

    def reconstruct(self, times: np.ndarray | None = None) -> np.ndarray:
        """Re Σ_kept α_i φ_i μ_i^t at frame times `times` (float, 0 = the first frame; None: 0..N-1):
        float32 (len(times), H, W)."""
        times = np.arange(self.frames, dtype=np.float64) if times is None else np.asarray(times, np.float64)
        kept = self.kept
        powers = np.power(self.eigenvalues[kept, None], times[None, :])  # principal branch for fractions
        frames = (self.modes[:, kept] @ (self.amplitudes[kept, None] * powers)).real.T
        return frames.reshape(len(times), *self.frame_shape).astype(np.float32)


@dataclass(frozen=True)
class _Problem:
    """DMDSP's quadratic form J(α)/s = α* P α - 2 Re(q* α) + 1 and the modes it weighs."""

    modes: np.ndarray
    eigenvalues: np.ndarray
    p: np.ndarray
    q: np.ndarray
    scale: float  # the clip's RMS frame norm: amplitudes of the scaled clip times this are grey units


def _snapshots(frames: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    stack = np.asarray(frames)
    if stack.ndim != 3:
        raise ValueError(f"DMD expects frames of shape (N, H, W), got an array of shape {stack.shape}")
    if len(stack) < 2:
        raise ValueError(f"DMD needs at least 2 frames, got {len(stack)}")
    if not np.issubdtype(stack.dtype, np.number) or np.issubdtype(stack.dtype, np.complexfloating):
        raise ValueError(f"DMD expects real grey frames, got dtype {stack.dtype}")
    snapshots = stack.reshape(len(stack), -1).astype(np.float64).T  # d x N
    if not np.isfinite(snapshots).all():
        raise ValueError("DMD: the frames hold NaN or infinite values")
    return snapshots, (int(stack.shape[1]), int(stack.shape[2]))


def _problem(snapshots: np.ndarray) -> _Problem:
    x0, x1 = snapshots[:, :-1], snapshots[:, 1:]
    scale = float(np.linalg.norm(x0) / np.sqrt(x0.shape[1]))
    if scale == 0:
        raise ValueError("DMD: the frames are all zero, there are no dynamics to decompose")
    x0, x1 = x0 / scale, x1 / scale
    u, sigma, vh = np.linalg.svd(x0, full_matrices=False)
    # numpy.linalg.matrix_rank's tolerance: singular values below it are round-off.
    rank = int((sigma > sigma[0] * max(x0.shape) * np.finfo(np.float64).eps).sum())
    u, sigma, v = u[:, :rank], sigma[:rank], vh[:rank].conj().T
    f = (u.conj().T @ x1 @ v) / sigma[None, :]
    eigenvalues, y = np.linalg.eig(f)
    vandermonde = np.power(eigenvalues[:, None], np.arange(x0.shape[1])[None, :])
    g = sigma[:, None] * v.conj().T  # Σ V*, the frames in POD coordinates
    energy = float(np.sum(sigma**2))  # s = ||Σ V*||_F^2
    p = (y.conj().T @ y) * (vandermonde @ vandermonde.conj().T).conj() / energy
    q = np.diag(vandermonde @ g.conj().T @ y).conj() / energy
    return _Problem(modes=u @ y, eigenvalues=eigenvalues, p=p, q=q, scale=scale)


def dmdsp_amplitudes(
    p: np.ndarray,
    q: np.ndarray,
    gamma: float,
    rho: float = RHO,
    max_iterations: int = MAX_ITERATIONS,
    eps_abs: float = EPS_ABS,
    eps_rel: float = EPS_REL,
) -> tuple[np.ndarray, np.ndarray]:
    """Minimise α* P α - 2 Re(q* α) + γ ||α||_1 by ADMM, then polish: (sparse α, polished α), complex (r,).

    ADMM as in Jovanović's dmdsp.m: α-step (P + ρ/2 I) α = q + ρ/2 (z - λ/ρ); z-step soft-thresholds
    α + λ/ρ at γ/ρ; λ += ρ (α - z); stop when the primal and dual residuals fall below
    √r eps_abs + eps_rel max(|α|, |z|) and √r eps_abs + eps_rel |λ|. Polishing re-fits the amplitudes that
    ADMM left non-zero with the others held at 0.
    """
    if not np.isfinite(gamma) or gamma < 0:
        raise ValueError(f"DMDSP gamma must be a non-negative number, got {gamma!r}")
    if rho <= 0:
        raise ValueError(f"DMDSP rho must be positive, got {rho!r}")
    n = len(q)
    if gamma == 0:  # no sparsity asked: ADMM would only converge (slowly) to the least-squares optimum
        optimal = linalg.solve(p, q, assume_a="her")
        return optimal, optimal
    factor = linalg.cho_factor(p + (rho / 2) * np.eye(n))
    z = np.zeros(n, dtype=np.complex128)
    multiplier = np.zeros(n, dtype=np.complex128)
    threshold = gamma / rho
    for _ in range(max_iterations):
        alpha = linalg.cho_solve(factor, q + (rho / 2) * (z - multiplier / rho))
        target = alpha + multiplier / rho
        size = np.abs(target)
        shrink = np.where(size > threshold, 1 - threshold / np.maximum(size, np.finfo(float).tiny), 0.0)
        z_new = shrink * target
        primal = np.linalg.norm(alpha - z_new)
        dual = rho * np.linalg.norm(z_new - z)
        multiplier = multiplier + rho * (alpha - z_new)
        z = z_new
        if primal < np.sqrt(n) * eps_abs + eps_rel * max(np.linalg.norm(alpha), np.linalg.norm(z)) and (
            dual < np.sqrt(n) * eps_abs + eps_rel * np.linalg.norm(multiplier)
        ):
            break
    kept = z != 0
    polished = np.zeros(n, dtype=np.complex128)
    if kept.any():
        polished[kept] = linalg.solve(p[np.ix_(kept, kept)], q[kept], assume_a="her")
    return z, polished


def dmdsp(frames: np.ndarray, gamma: float = 0.0, rho: float = RHO) -> DynamicModes:
    """DMD of a grey clip (N, H, W) with DMDSP amplitudes at sparsity weight `gamma` (0: all modes)."""
    snapshots, shape = _snapshots(frames)
    problem = _problem(snapshots)
    _, alpha = dmdsp_amplitudes(problem.p, problem.q, gamma, rho)
    residual = float(np.real(alpha.conj() @ problem.p @ alpha) - 2 * np.real(problem.q.conj() @ alpha) + 1.0)
    return DynamicModes(
        modes=problem.modes,
        eigenvalues=problem.eigenvalues,
        amplitudes=alpha * problem.scale,
        frame_shape=shape,
        frames=len(frames),
        residual=max(residual, 0.0),
    )


def sparse_sample(frames: np.ndarray, gamma: float, length: int | None = None) -> np.ndarray:
    """The clip (N, H, W) as the sequence its DMDSP-kept modes reconstruct: float32 (length, H, W), read at
    `length` evenly spread times from frame 0 to frame N-1; length None: as many frames as modes kept."""
    modes = dmdsp(frames, gamma)
    if modes.num_kept == 0:
        raise ValueError(
            f"DMDSP with gamma={gamma} keeps none of the clip's {len(modes.kept)} modes: lower gamma"
        )
    count = modes.num_kept if length is None else length
    if isinstance(count, bool) or int(count) != count or count < 1:
        raise ValueError(f"sparse sampling length must be a positive integer, got {length!r}")
    return modes.reconstruct(positions(modes.frames, int(count)))
