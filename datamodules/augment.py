"""Flow-aware augmentation of feature batches.

Image augmentation libraries move pixels but not the vectors stored in them: a horizontal flip of a flow
field must also negate u (motion to the right becomes motion to the left), and a rotation must rotate each
(u, v) vector by the same angle. Scalar channels (strain, flow magnitude, grey frames) only move.
Augmentation runs on raw features (u, v in pixels), before per-sample normalisation.

Sequence inputs (N, T, C, H, W) get one flip and one angle per clip, for all its steps, and can be jittered
in time (`temporal_jitter`, the augmentation of Xia et al.'s STRCN): a random fraction of a clip's steps is
removed and the rest is resampled back to T steps with a kernel drawn per clip (nearest, linear or cubic).
The released STRCN code removes a single frame whatever the ratio (`indperm(rmN)`, specs/models.md section
5a); here ceil(fraction * T) steps go, as the paper describes. It works on the cached T steps, not on the
raw video (where the paper drops frames before TIM): steps are resampled, not recomputed from frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

VECTOR_CHANNELS = ("u", "v")
JITTER_KERNELS = ("nearest", "linear", "cubic")


class FlowAugment:
    """Random horizontal flip and small rotation of a (N, C, H, W) or (N, T, C, H, W) batch whose channels are
    named, and temporal jitter of the latter.

    hflip: probability of a horizontal mirror (negates u). rotate_degrees: rotation angle drawn uniformly
    from [-rotate_degrees, rotate_degrees] (rotates the (u, v) vectors with the image; needs both u and v).
    temporal_jitter: fraction of a sequence's steps removed (then resampled back to T), 0 <= f < 1; only for
    sequence inputs. jitter_kernels: the resampling kernels drawn from, a subset of JITTER_KERNELS.
    The random draws come in this order: flips, angles, jitter; a setting at 0 draws nothing, so adding
    jitter to a recipe leaves its flips and angles as they were.
    """

    def __init__(
        self,
        channels: Sequence[str],
        hflip: float = 0.0,
        rotate_degrees: float = 0.0,
        temporal_jitter: float = 0.0,
        jitter_kernels: Sequence[str] = JITTER_KERNELS,
    ) -> None:
        self.channels = tuple(channels)
        if not 0.0 <= hflip <= 1.0:
            raise ValueError(f"hflip is a probability, got {hflip}")
        if not 0.0 <= temporal_jitter < 1.0:
            raise ValueError(
                f"temporal_jitter is the fraction of steps removed, 0 <= f < 1, got {temporal_jitter}"
            )
        self.jitter_kernels = tuple(jitter_kernels)
        if not self.jitter_kernels or any(k not in JITTER_KERNELS for k in self.jitter_kernels):
            raise ValueError(f"jitter_kernels must be some of {JITTER_KERNELS}, got {self.jitter_kernels}")
        self.temporal_jitter = float(temporal_jitter)
        has_u, has_v = "u" in self.channels, "v" in self.channels
        if rotate_degrees and has_u != has_v:
            raise ValueError("rotating a flow field needs both u and v channels (got only one)")
        self.hflip = hflip
        self.rotate_degrees = float(rotate_degrees)

    @property
    def active(self) -> bool:
        return self.hflip > 0 or self.rotate_degrees > 0 or self.temporal_jitter > 0

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.active:
            return x
        if x.ndim not in (4, 5):
            raise ValueError(f"expected a (N, C, H, W) or (N, T, C, H, W) batch, got shape {tuple(x.shape)}")
        if self.temporal_jitter > 0 and x.ndim != 5:
            raise ValueError(
                f"temporal_jitter needs a sequence input (N, T, C, H, W), got shape {tuple(x.shape)}"
            )
        n = x.shape[0]
        steps = x.shape[1] if x.ndim == 5 else 1
        # A sequence is augmented as N * T maps, each clip's draws repeated over its T steps.
        maps = x.reshape(n * steps, *x.shape[-3:])
        if self.hflip > 0:
            flip = torch.rand(n, generator=generator) < self.hflip
            maps = hflip_flow(maps, self.channels, flip.repeat_interleave(steps).to(x.device))
        if self.rotate_degrees > 0:
            angles = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(self.rotate_degrees)
            maps = rotate_flow(maps, self.channels, angles.repeat_interleave(steps).to(x.device))
        x = maps.reshape(x.shape)
        if self.temporal_jitter > 0:
            x = temporal_jitter(x, self.temporal_jitter, self.jitter_kernels, generator)
        return x

    def __repr__(self) -> str:
        jitter = f", temporal_jitter={self.temporal_jitter}" if self.temporal_jitter else ""
        return f"FlowAugment(hflip={self.hflip}, rotate_degrees={self.rotate_degrees}{jitter})"


def _kernel_weights(kept: int, length: int, kernel: str) -> torch.Tensor:
    """(length, kept) weights resampling `kept` steps to `length`, positions spread from first to last."""
    at = torch.linspace(0.0, kept - 1.0, length, dtype=torch.float64) if length > 1 else torch.zeros(1)
    weights = torch.zeros(length, kept, dtype=torch.float64)
    rows = torch.arange(length)
    if kernel == "nearest":
        weights[rows, torch.floor(at + 0.5).long().clamp(0, kept - 1)] = 1.0
        return weights
    base = torch.floor(at).long()
    frac = at - base
    if kernel == "linear":
        taps = {0: 1.0 - frac, 1: frac}
    else:  # cubic convolution (Keys, a = -0.5: Catmull-Rom), edges clamped
        taps = {
            -1: ((-0.5 * frac + 1.0) * frac - 0.5) * frac,
            0: (1.5 * frac - 2.5) * frac * frac + 1.0,
            1: ((-1.5 * frac + 2.0) * frac + 0.5) * frac,
            2: (0.5 * frac - 0.5) * frac * frac,
        }
    for offset, weight in taps.items():
        weights.index_put_((rows, (base + offset).clamp(0, kept - 1)), weight, accumulate=True)
    return weights


def temporal_jitter(
    x: torch.Tensor,
    fraction: float,
    kernels: Sequence[str] = JITTER_KERNELS,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Remove ceil(fraction * T) random steps of each clip of `x` (N, T, C, H, W) (the first and the last
    step always stay, so the clip keeps its span) and resample the rest back to T steps with a kernel drawn
    per clip from `kernels`. Draws per clip: one permutation of the inner steps, one kernel index."""
    n, steps = x.shape[:2]
    remove = min(math.ceil(fraction * steps), max(steps - 2, 0))
    if remove == 0:
        return x
    mixing = torch.empty(n, steps, steps, dtype=torch.float64)
    for clip in range(n):
        inner = torch.randperm(steps - 2, generator=generator) + 1
        kept = torch.cat([torch.tensor([0]), inner[remove:].sort().values, torch.tensor([steps - 1])])
        kernel = kernels[int(torch.randint(len(kernels), (1,), generator=generator))]
        select = torch.zeros(len(kept), steps, dtype=torch.float64)
        select[torch.arange(len(kept)), kept] = 1.0
        mixing[clip] = _kernel_weights(len(kept), steps, kernel) @ select
    return torch.einsum("nts,ns...->nt...", mixing.to(x.device, x.dtype), x)


def hflip_flow(x: torch.Tensor, channels: Sequence[str], mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mirror left-right the samples where `mask` is True (all if None) and negate their u channel."""
    if mask is None:
        mask = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    flipped = x.flip(-1)
    if "u" in channels:
        sign = torch.ones(len(channels), device=x.device, dtype=x.dtype)
        sign[list(channels).index("u")] = -1
        flipped = flipped * sign.view(1, -1, 1, 1)
    return torch.where(mask.view(-1, 1, 1, 1), flipped, x)


def rotate_flow(x: torch.Tensor, channels: Sequence[str], angles: torch.Tensor) -> torch.Tensor:
    """Rotate each sample's maps by `angles` (radians, counter-clockwise as displayed) and its (u, v) vectors.

    Image coordinates have y pointing down, so a counter-clockwise turn on screen maps a displacement
    (dx, dy) to (dx cos a + dy sin a, -dx sin a + dy cos a); the maps are resampled with the same rotation.
    """
    n, _, h, w = x.shape
    cos, sin = torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)
    # grid_sample pulls: output pixel p samples input at R^-1 p (normalised coords, y down).
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * h / w
    theta[:, 1, 0], theta[:, 1, 1] = sin * w / h, cos
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if "u" in channels and "v" in channels:
        iu, iv = list(channels).index("u"), list(channels).index("v")
        u, v = out[:, iu], out[:, iv]
        c, s = cos.view(-1, 1, 1), sin.view(-1, 1, 1)
        out = out.clone()
        out[:, iu] = u * c + v * s
        out[:, iv] = -u * s + v * c
    return out
