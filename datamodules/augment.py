"""Flow-aware augmentation of feature batches.

Image augmentation libraries move pixels but not the vectors stored in them: a horizontal flip of a flow
field must also negate u (motion to the right becomes motion to the left), and a rotation must rotate each
(u, v) vector by the same angle. Scalar channels (strain, flow magnitude, grey frames) only move.
Augmentation runs on raw features (u, v in pixels), before per-sample normalisation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

VECTOR_CHANNELS = ("u", "v")


class FlowAugment:
    """Random horizontal flip and small rotation of a (N, C, H, W) batch whose channels are named.

    hflip: probability of a horizontal mirror (negates u). rotate_degrees: rotation angle drawn uniformly
    from [-rotate_degrees, rotate_degrees] (rotates the (u, v) vectors with the image; needs both u and v).
    """

    def __init__(self, channels: Sequence[str], hflip: float = 0.0, rotate_degrees: float = 0.0) -> None:
        self.channels = tuple(channels)
        if not 0.0 <= hflip <= 1.0:
            raise ValueError(f"hflip is a probability, got {hflip}")
        has_u, has_v = "u" in self.channels, "v" in self.channels
        if rotate_degrees and has_u != has_v:
            raise ValueError("rotating a flow field needs both u and v channels (got only one)")
        self.hflip = hflip
        self.rotate_degrees = float(rotate_degrees)

    @property
    def active(self) -> bool:
        return self.hflip > 0 or self.rotate_degrees > 0

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.active:
            return x
        n = x.shape[0]
        if self.hflip > 0:
            flip = torch.rand(n, generator=generator) < self.hflip
            x = hflip_flow(x, self.channels, flip.to(x.device))
        if self.rotate_degrees > 0:
            angles = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(self.rotate_degrees)
            x = rotate_flow(x, self.channels, angles.to(x.device))
        return x

    def __repr__(self) -> str:
        return f"FlowAugment(hflip={self.hflip}, rotate_degrees={self.rotate_degrees})"


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
