"""TV-L1 optical flow in PyTorch, batched, on GPU or CPU: OpenCV's `optflow::DualTVL1OpticalFlow`, ported.

The algorithm is Zach, Pock & Bischof's duality-based TV-L1 (DAGM 2007) as OpenCV's contrib `tvl1flow.cpp`
implements it (after Sánchez Pérez & Meinhardt-Llopis): an image pyramid (`nscales` levels, each
`scaleStep` times the previous by bilinear resizing; a level under 16 px ends it) and, at each level
coarse to fine, `warps` times: warp I1 and its central-difference gradient by the current flow u0
(bicubic), linearise the brightness constancy ρ(u) = I1(x + u0) + ∇I1·(u - u0) - I0 around u0, then
alternate, for up to `outerIterations` x `innerIterations` steps,
  v = TH(u)                           the pointwise thresholding step on ρ (threshold λθ|∇I1|²),
  u = v + θ div p                     the TV step, through the dual variable p,
  p = (p + τ/θ ∇u) / (1 + τ/θ |∇u|)   Chambolle's fixed-point projection,
with a `medianFiltering` x `medianFiltering` median of u before every outer iteration, and with `gamma`
> 0 an illumination-change variable u3 (Chambolle & Pock 2011) in ρ. Frames are scaled to 0..255 first,
as OpenCV scales a float32 [0, 1] frame, so λ means here what it means for `preprocessing.flow`'s "tvl1".

Stopping: OpenCV ends a warp once Σ|u_k+1 - u_k|² over the level is at most `epsilon`² x pixels. Here
every image of the batch runs until its own test says so and is then frozen (u and p kept, by a mask) for
the rest of that warp; the loop ends once every image has stopped or the iteration counts run out. So a
pair's flow does not depend on what it is batched with, and `epsilon` = 0 gives a fixed
`outerIterations` x `innerIterations` steps per warp. Asking "has every image stopped?" waits for the
device, so on a GPU it is asked every `_CHECK_EVERY_CUDA` steps (frozen images make the flow the same).

Deviations from OpenCV: floating-point order only (the stopping sums, grid_sample's normalised coordinates,
cubic weights computed rather than tabulated; OpenCV's rounding of remap positions to 1/32 px is copied).
TV-L1 amplifies last-bit differences at a few pixels: with one level and one warp the two flows agree to
1e-4 px; with the defaults to ~0.01 px on average and up to ~2 px at single pixels, which is also how far
OpenCV's own flow moves when its input moves by 1e-6. The EPE on known shifts agrees to < 0.01 px.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from preprocessing.flow import _tvl1_values

# OpenCV's TV-L1 pyramid stops before a level narrower or shorter than this (tvl1flow.cpp).
_MIN_LEVEL_SIZE = 16
# OpenCV's medianBlur filters float32 only with a 3x3 or 5x5 window.
_MEDIAN_SIZES = (3, 5)
# How many inner steps between "has every image stopped?" checks on a GPU, where each check waits for the
# queued kernels: a few wasted (masked) steps against a sync per step.
_CHECK_EVERY_CUDA = 8
# OpenCV's remap turns float maps into fixed point, 1/32 px steps (INTER_TAB_SIZE), before it samples; doing
# the same keeps this port's flow nearest OpenCV's (mean difference 0.007 vs 0.010 px with exact positions).
_REMAP_QUANTUM = 32
# Median-selection networks for 9 and 25 values (Paeth; Devillard, "Fast median search", 1998), the ones
# OpenCV's OpenCL median uses: (a, b) puts min in a and max in b; the median ends in the middle wire.
# Checked on all 2^9 and 2^25 binary inputs (the 0-1 principle) when they were written down.
_MEDIAN_NETWORKS = {
    3: ((1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3), (5, 8), (4, 7),
        (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2)),
    5: ((0, 1), (3, 4), (2, 4), (2, 3), (6, 7), (5, 7), (5, 6), (9, 10), (8, 10), (8, 9), (12, 13),
        (11, 13), (11, 12), (15, 16), (14, 16), (14, 15), (18, 19), (17, 19), (17, 18), (21, 22), (20, 22),
        (20, 21), (23, 24), (2, 5), (3, 6), (0, 6), (0, 3), (4, 7), (1, 7), (1, 4), (11, 14), (8, 14),
        (8, 11), (12, 15), (9, 15), (9, 12), (13, 16), (10, 16), (10, 13), (20, 23), (17, 23), (17, 20),
        (21, 24), (18, 24), (18, 21), (19, 22), (8, 17), (9, 18), (0, 18), (0, 9), (10, 19), (1, 19),
        (1, 10), (11, 20), (2, 20), (2, 11), (12, 21), (3, 21), (3, 12), (13, 22), (4, 22), (4, 13),
        (14, 23), (5, 23), (5, 14), (15, 24), (6, 24), (6, 15), (7, 16), (7, 19), (13, 21), (15, 23),
        (7, 13), (7, 15), (1, 9), (3, 11), (5, 17), (11, 17), (9, 17), (4, 10), (6, 12), (7, 14), (4, 6),
        (4, 7), (12, 14), (10, 14), (6, 7), (10, 12), (6, 10), (6, 17), (12, 17), (7, 17), (7, 10),
        (12, 18), (7, 12), (10, 18), (12, 20), (10, 20), (10, 12)),
}  # fmt: skip
_FLT_EPSILON = float(np.finfo(np.float32).eps)


def tvl1_parameters(params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The TV-L1 parameters in effect: OpenCV's names and defaults (read back from a cv2 DualTVL1 object),
    with `params` overrides. Raises ValueError for an unknown name or a value this port cannot follow."""
    values = _tvl1_values(dict(params or {}), "tvl1_torch")
    median = values["medianFiltering"]
    if median > 1 and median not in _MEDIAN_SIZES:
        raise ValueError(
            f"tvl1_torch flow parameter 'medianFiltering' must be 0, 1, 3 or 5, got {median} "
            "(OpenCV's medianBlur filters a float flow with a 3x3 or 5x5 window only)"
        )
    if values["nscales"] < 1:
        raise ValueError(f"tvl1_torch flow parameter 'nscales' must be at least 1, got {values['nscales']}")
    if not 0 < values["scaleStep"] < 1:
        raise ValueError(
            f"tvl1_torch flow parameter 'scaleStep' must be in (0, 1), got {values['scaleStep']}"
        )
    return values


def tvl1_flow_batch(
    prev: torch.Tensor | np.ndarray,
    next: torch.Tensor | np.ndarray,
    params: Mapping[str, Any] | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """TV-L1 flow from each `prev[i]` to `next[i]`, all pairs at once.

    prev, next: (N, H, W) grey frames, float in [0, 1] (uint8 is divided by 255), tensors or arrays.
    params: overrides by OpenCV's names (`flow_parameters("tvl1_torch")` lists them).
    device: where to compute; None keeps a tensor's device and sends arrays to CUDA when available.
    Returns (u, v): float32 (N, H, W) tensors on that device, in pixels; flow from prev to next, so
    prev[y, x] ≈ next[y + v, x + u]; u = +x (columns, rightwards), v = +y (rows, downwards).
    """
    values = tvl1_parameters(params)  # refuses useInitialFlow, as "tvl1" does
    device = torch.device(device) if device is not None else _default_device(prev)
    i0, i1 = _frames(prev, device), _frames(next, device)
    if i0.shape != i1.shape:
        raise ValueError(f"prev and next differ in shape: {tuple(i0.shape)} and {tuple(i1.shape)}")
    if i0.shape[-2] < 3 or i0.shape[-1] < 3:
        raise ValueError(f"frames must be at least 3x3, got {tuple(i0.shape[-2:])}")
    if i0.shape[0] == 0:
        empty = i0.new_zeros(i0.shape)
        return empty, empty.clone()
    # OpenCV's float32 input convention: [0, 1] is scaled to 0..255 before anything else.
    i0s, i1s = [i0 * 255], [i1 * 255]
    step = values["scaleStep"]
    for _ in range(1, values["nscales"]):
        height, width = i0s[-1].shape[-2:]
        # cv::resize with fx = fy = scaleStep: size rounded, the grid scaled by exactly 1/scaleStep.
        size = (round(height * step), round(width * step))
        if min(size) < _MIN_LEVEL_SIZE:
            break
        i0s.append(_resize_linear(i0s[-1], size, (step, step)))
        i1s.append(_resize_linear(i1s[-1], size, (step, step)))

    # u[:, 0] = u1 (x), u[:, 1] = u2 (y), u[:, 2] = u3 (illumination, only with gamma).
    channels = 3 if values["gamma"] != 0 else 2
    u = i0.new_zeros((i0.shape[0], channels, *i0s[-1].shape[-2:]))
    for level in range(len(i0s) - 1, -1, -1):
        u = _one_scale(i0s[level], i1s[level], u, values)
        if level == 0:
            break
        finer, coarser = i0s[level - 1].shape[-2:], i0s[level].shape[-2:]
        # Upsampled to the finer level's size (so the grid scale is the size ratio, not scaleStep), then the
        # displacements (not u3) grow by 1/scaleStep, as OpenCV does.
        u = _resize_linear(u, finer, (finer[0] / coarser[0], finer[1] / coarser[1]))
        u[:, :2] *= 1.0 / step
    return u[:, 0].contiguous(), u[:, 1].contiguous()


def _default_device(frames: Any) -> torch.device:
    if isinstance(frames, torch.Tensor):
        return frames.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _frames(frames: torch.Tensor | np.ndarray, device: torch.device) -> torch.Tensor:
    # np.array copies: torch.from_numpy warns on a read-only array (a memory-mapped cache, a broadcast view).
    tensor = frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.array(frames))
    if tensor.ndim != 3:
        raise ValueError(f"expected grey frames of shape (N, H, W), got {tuple(tensor.shape)}")
    if tensor.dtype == torch.uint8:
        return tensor.to(device=device, dtype=torch.float32) / 255
    if not tensor.is_floating_point():
        raise ValueError(f"expected float frames in [0, 1] or uint8, got {tensor.dtype}")
    tensor = tensor.to(device=device, dtype=torch.float32)
    # A 0..255 float frame would be scaled by 255 again and silently change λ's balance (as in to_gray).
    if tensor.numel() and float(tensor.max()) > 2.0:
        raise ValueError(
            f"float frames must be scaled to [0, 1]; these reach {float(tensor.max()):.1f} "
            "(pass uint8 or divide by 255)"
        )
    return tensor


def _resize_linear(
    images: torch.Tensor, size: tuple[int, int], inv_scale: tuple[float, float]
) -> torch.Tensor:
    """cv::resize(INTER_LINEAR) of float images (..., H, W) to `size`, with OpenCV's inverse scales
    (destination px per source px): half-pixel centres, positions clamped into the frame (replicate)."""
    for axis, (length, factor) in enumerate(zip(size, inv_scale, strict=True)):
        dim = images.ndim - 2 + axis
        source = images.shape[dim]
        # OpenCV computes each source position in double, rounds it to float, then splits it.
        position = ((np.arange(length) + 0.5) * (1.0 / factor) - 0.5).astype(np.float32)
        start = np.floor(position)
        frac = position - start
        start = start.astype(np.int64)
        low, high = start < 0, start >= source - 1
        frac[low | high] = 0
        start = np.clip(start, 0, source - 1)
        stop = np.minimum(start + 1, source - 1)
        shape = [1] * images.ndim
        shape[dim] = length
        weight = torch.from_numpy(frac).to(images.device).view(shape)
        first = images.index_select(dim, torch.from_numpy(start).to(images.device))
        second = images.index_select(dim, torch.from_numpy(stop).to(images.device))
        images = first * (1 - weight) + second * weight
    return images


def _centered_gradient(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(I_x, I_y) of (N, H, W): half the central difference, one-sided (still halved) at the borders, as
    OpenCV's centeredGradient; that is the central difference of the frame padded by replication."""
    padded = F.pad(image[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    return (
        0.5 * (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2]),
        0.5 * (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1]),
    )


def _forward_gradient(u: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """∇u of (N, C, H, W) into `out` (N, C, 2, H, W): forward differences, 0 across the last column/row
    (Neumann), as OpenCV's forwardGradient. `out` must start zeroed; its borders are never written."""
    torch.sub(u[..., :, 1:], u[..., :, :-1], out=out[:, :, 0, :, :-1])
    torch.sub(u[..., 1:, :], u[..., :-1, :], out=out[:, :, 1, :-1, :])
    return out


def _divergence(p: torch.Tensor) -> torch.Tensor:
    """div p of (N, C, 2, H, W): backward differences with p = 0 outside, the negative adjoint of
    `_forward_gradient`, as OpenCV's divergence."""
    px, py = p[:, :, 0], p[:, :, 1]
    div = px + py
    div[..., :, 1:] -= px[..., :, :-1]
    div[..., 1:, :] -= py[..., :-1, :]
    return div


def _median(u: torch.Tensor, size: int) -> torch.Tensor:
    """cv::medianBlur of (N, C, H, W) with a size x size window, borders replicated (exact medians)."""
    half = size // 2
    padded = F.pad(u, (half, half, half, half), mode="replicate")
    height, width = u.shape[-2:]
    if u.device.type == "cuda":
        # One sort kernel beats the network's 2 x 99 elementwise launches on a GPU.
        windows = padded.unfold(2, size, 1).unfold(3, size, 1)
        return windows.reshape(*u.shape, size * size).median(dim=-1).values
    # On a CPU, torch.median over 25 values per pixel is ~10x slower than a selection network on whole planes.
    planes = [padded[..., i : i + height, j : j + width] for i in range(size) for j in range(size)]
    for a, b in _MEDIAN_NETWORKS[size]:
        planes[a], planes[b] = torch.minimum(planes[a], planes[b]), torch.maximum(planes[a], planes[b])
    return planes[size * size // 2]


def _one_scale(
    i0: torch.Tensor, i1: torch.Tensor, u: torch.Tensor, values: Mapping[str, Any]
) -> torch.Tensor:
    """OpenCV's procOneScale for a batch: `warps` warps of the linearised TV-L1 at one pyramid level.

    i0, i1: (N, H, W) on the 0..255 scale; u: (N, C, H, W) initial flow (and u3), returned refined.
    """
    n, channels, height, width = u.shape
    f32 = np.float32
    # The constants as OpenCV rounds them to float.
    l_t = float(f32(values["lambda"] * values["theta"]))
    taut = float(f32(values["tau"] / values["theta"]))
    theta, gamma = float(f32(values["theta"])), float(f32(values["gamma"]))
    scaled_epsilon = float(f32(values["epsilon"] ** 2 * height * width))
    median = values["medianFiltering"]
    check_every = _CHECK_EVERY_CUDA if u.device.type == "cuda" else 1
    # A stopped image is frozen (masked) while the others run on; a lone image checked every step simply
    # ends the loop instead.
    masked = n > 1 or check_every > 1
    l_t_pos, l_t_neg = u.new_tensor(l_t), u.new_tensor(-l_t)

    i1x, i1y = _centered_gradient(i1)
    target = torch.stack((i1, i1x, i1y), dim=1)
    columns = torch.arange(width, device=u.device, dtype=u.dtype).view(1, 1, width)
    rows = torch.arange(height, device=u.device, dtype=u.dtype).view(1, height, 1)
    # Pixel positions to grid_sample's coordinates (align_corners=True: -1 and 1 are the outer pixel centres).
    to_grid = u.new_tensor([2 / (width - 1), 2 / (height - 1)])
    # The dual variable p: one 2-vector field per flow channel, reset at every level (not every warp).
    p = u.new_zeros((n, channels, 2, height, width))
    grad_u = u.new_zeros((n, channels, 2, height, width))
    for _ in range(values["warps"]):
        # OpenCV's remap map: x + u, rounded to 1/32 px (INTER_TAB_SIZE) before it samples.
        position = torch.stack((columns + u[:, 0], rows + u[:, 1]), dim=-1)
        if _REMAP_QUANTUM:
            position = torch.round(position * _REMAP_QUANTUM) / _REMAP_QUANTUM
        grid = position * to_grid - 1
        warped = F.grid_sample(target, grid, mode="bicubic", padding_mode="zeros", align_corners=True)
        i1w, i1wx, i1wy = warped.unbind(1)
        # g = ∂ρ/∂u, with the illumination term's constant gamma as the third component.
        g = torch.stack((i1wx, i1wy, torch.full_like(i1wx, gamma))[:channels], dim=1)
        # |∇I1|² without gamma², as OpenCV has it.
        grad = i1wx * i1wx + i1wy * i1wy
        rho_c = i1w - i1wx * u[:, 0] - i1wy * u[:, 1] - i0
        lt_grad = l_t * grad
        neg_lt_grad = -lt_grad
        # -ρ/|∇I1|² is rho / neg_grad; an infinite denominator gives OpenCV's 0 where |∇I1|² <= FLT_EPSILON.
        neg_grad = torch.where(grad > _FLT_EPSILON, -grad, torch.inf)

        active = torch.ones(n, dtype=torch.bool, device=u.device)
        steps = 0
        for _ in range(values["outerIterations"]):
            if not bool(active.any()):
                break
            if median > 1:
                # Removes the outliers u picks up between warps (Wedel et al. 2009, as OpenCV does).
                filtered = torch.cat((_median(u[:, :2], median), u[:, 2:]), dim=1)
                u = torch.where(active.view(n, 1, 1, 1), filtered, u) if masked else filtered
            for _ in range(values["innerIterations"]):
                # TH: v minimises λθ|ρ(v)| + |v - u|²/2 pointwise; three cases by where ρ(u) lies.
                rho = rho_c
                for channel in range(channels):
                    rho = torch.addcmul(rho, g[:, channel], u[:, channel])
                step = torch.where(
                    rho < neg_lt_grad, l_t_pos, torch.where(rho > lt_grad, l_t_neg, rho / neg_grad)
                )
                v = torch.addcmul(u, step[:, None], g)
                u_next = torch.add(v, _divergence(p), alpha=theta)
                error = (u_next - u).square_().sum(dim=(1, 2, 3))
                u = torch.where(active.view(n, 1, 1, 1), u_next, u) if masked else u_next
                _forward_gradient(u, grad_u)
                shrink = torch.hypot(grad_u[:, :, 0], grad_u[:, :, 1]).mul_(taut).add_(1)
                p_next = torch.add(p, grad_u, alpha=taut).div_(shrink[:, :, None])
                p = torch.where(active.view(n, 1, 1, 1, 1), p_next, p) if masked else p_next
                active &= error > scaled_epsilon
                steps += 1
                if steps % check_every == 0 and not bool(active.any()):
                    break
    return u
