"""A clip of any length as a fixed number of frames: TIM, linear resampling, uniform sampling.

Sequence networks (ELRCN, STRCN, AU-GACN's 3D trunk) need every clip at the same length T, while clips last
from a handful of frames (SMIC at 100 fps) to over a hundred (CASME II, SAMM at 200 fps). Three ways are used
in the field:

* `tim`: the Temporal Interpolation Model (Zhou, Zhao, Pietikäinen, CVPR 2011), step for step as the Oulu
  `tim.m` does it (specs/models.md section 10.4): the frames are embedded on the continuous curve that the
  path graph's Laplacian eigenvectors sample, and the curve is read off at T new times. The path graph's
  eigenvectors are the DCT-II basis, so TIM amounts to cosine (DCT) interpolation of every pixel; the tests
  check it against that closed form. TIM needs the mean-removed frames to be linearly independent (rank
  n - 1): repeated frames, or a clip that only fades linearly, are refused with an error that says so.
* `linear`: each output frame blends the two nearest input frames (positions spread evenly from the first
  to the last frame); a linear ramp stays exactly linear.
* `uniform`: the nearest input frame at each of those positions (frames are picked, never blended; up-
  sampling repeats frames).

Every method keeps the first and the last frame in place and works for up- and down-sampling. Frames are
2-D (H, W) float arrays; the output is float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RESAMPLERS = ("tim", "linear", "uniform")


class TemporalError(ValueError):
    """A clip cannot be brought to the asked length by the asked method (too short, degenerate)."""


def _stack(frames: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    stack = np.asarray(frames if isinstance(frames, np.ndarray) else [np.asarray(f) for f in frames])
    if stack.ndim < 2:
        raise TemporalError(f"expected frames of shape (n, H, W), got an array of shape {stack.shape}")
    if not np.issubdtype(stack.dtype, np.number):
        raise TemporalError(f"expected numeric frames, got dtype {stack.dtype}")
    return stack


def _check_length(length: int) -> int:
    if int(length) != length or length < 1:
        raise TemporalError(f"the output length must be a positive integer, got {length!r}")
    return int(length)


def positions(n: int, length: int) -> np.ndarray:
    """Where the `length` output frames sit on the input's frame axis: evenly from 0 to n - 1."""
    if length == 1:
        return np.zeros(1)
    return np.linspace(0.0, n - 1.0, length)


def linear_resample(frames: Sequence[np.ndarray] | np.ndarray, length: int) -> np.ndarray:
    """`length` frames, each the linear blend of its two neighbours in `frames` (see the module docstring)."""
    stack, length = _stack(frames).astype(np.float64), _check_length(length)
    n = len(stack)
    if n == 0:
        raise TemporalError("a clip with no frames cannot be resampled")
    at = positions(n, length)
    lower = np.floor(at).astype(int).clip(0, n - 1)
    upper = np.minimum(lower + 1, n - 1)
    weight = (at - lower).reshape(-1, *([1] * (stack.ndim - 1)))
    return ((1.0 - weight) * stack[lower] + weight * stack[upper]).astype(np.float32)


def uniform_sample(frames: Sequence[np.ndarray] | np.ndarray, length: int) -> np.ndarray:
    """`length` frames picked from `frames` at evenly spread positions (nearest frame, halves rounded up)."""
    stack, length = _stack(frames), _check_length(length)
    if len(stack) == 0:
        raise TemporalError("a clip with no frames cannot be resampled")
    picked = np.floor(positions(len(stack), length) + 0.5).astype(int)
    return stack[picked].astype(np.float32)


def tim(frames: Sequence[np.ndarray] | np.ndarray, length: int) -> np.ndarray:
    """The Temporal Interpolation Model: `frames` (n, H, W) -> (length, H, W) float32, n >= 2.

    The steps of the Oulu code (specs/models.md section 10.4), in float64:
    1. frames as columns X (d x n), minus the mean frame mu;
    2. thin SVD, n - 1 components: Q = S V^T, the frames' PCA coordinates ((n-1) x n);
    3. Y: the eigenvectors of the path graph's Laplacian L = D - W, the constant one dropped (n x (n-1));
    4. W = (Q Q^T)^-1 Q Y, the linear map from PCA space onto the curve;
    5. m_k = (q_1^T w_k) / sin(pi k / n + pi (n - k) / (2n)), the curve's amplitudes fixed by frame 1;
    6. at t_j = j / (length - 1) * (1 - 1/n) + 1/n: solve W^T z_j = m * f(t_j), with
       f_k(t) = sin(pi k t + pi (n - k) / (2n)); frame_j = U z_j + mu.
    The Oulu code rounds the result to uint8; here it stays float (no clipping, no rounding).

    Raises TemporalError for fewer than two frames, and when the mean-removed frames have rank below n - 1
    (identical frames, or frames that are blends of fewer than n others): TIM's map W does not exist then.
    """
    stack, length = _stack(frames), _check_length(length)
    n = len(stack)
    if n < 2:
        raise TemporalError(
            f"TIM needs at least 2 frames, got {n}: a one-frame clip has no motion to interpolate"
        )
    shape = stack.shape[1:]
    x = stack.reshape(n, -1).astype(np.float64).T  # d x n
    mean = x.mean(axis=1, keepdims=True)
    u, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    # numpy.linalg.matrix_rank's tolerance: singular values below it are round-off, not content.
    tolerance = s.max(initial=0.0) * max(x.shape) * np.finfo(np.float64).eps
    rank = int((s > tolerance).sum())
    if rank < n - 1:
        raise TemporalError(
            f"TIM needs the {n} frames minus their mean to have rank {n - 1}, they have rank {rank}: "
            "the clip repeats frames (or its frames are blends of one another), so TIM's curve is not "
            "defined; use resample=linear or uniform for such clips"
        )
    u, q = u[:, : n - 1], s[: n - 1, None] * vt[: n - 1]

    adjacency = np.eye(n, k=1) + np.eye(n, k=-1)
    laplacian = np.diag(adjacency.sum(axis=1)) - adjacency
    _, eigenvectors = np.linalg.eigh(laplacian)  # ascending eigenvalues, all distinct for a path
    y = eigenvectors[:, 1:]

    w = np.linalg.solve(q @ q.T, q @ y)
    k = np.arange(1, n)
    phase = np.pi * (n - k) / (2 * n)
    m = (q[:, 0] @ w) / np.sin(np.pi * k / n + phase)

    # The output times spread from the first frame's 1/n to the last frame's 1.
    t = np.linspace(1.0 / n, 1.0, length) if length > 1 else np.array([1.0 / n])
    curve = m[:, None] * np.sin(np.pi * k[:, None] * t[None, :] + phase[:, None])  # (n-1) x length
    z = np.linalg.lstsq(w.T, curve, rcond=None)[0]
    out = (u @ z + mean).T
    return out.reshape(length, *shape).astype(np.float32)


def resample(frames: Sequence[np.ndarray] | np.ndarray, length: int, method: str = "tim") -> np.ndarray:
    """`frames` (n, H, W) as `length` frames by `method` ("tim", "linear" or "uniform"), float32."""
    if method == "tim":
        return tim(frames, length)
    if method == "linear":
        return linear_resample(frames, length)
    if method == "uniform":
        return uniform_sample(frames, length)
    raise ValueError(f"unknown resample method {method!r}; allowed: {', '.join(RESAMPLERS)}")
