"""Per-sample normalisation of network inputs: shared by training (MERDataModule) and inference (predict.py).

A module of its own, importing torch alone, so that a trained model can be fed without importing Lightning.
"""

from __future__ import annotations

import torch

NORMALIZATIONS = ("minmax", "none", "flow_image")


def normalize_per_sample(x: torch.Tensor, method: str) -> torch.Tensor:
    """Per sample and channel over the last two (spatial) axes:
    "minmax" maps each map to [0, 1] (STSTNet's norm_u_v_os); "none" keeps raw units;
    "flow_image" is the field's flow-image convention (ELRCN/DSSN `output_flo.m`) for a (u, v, magnitude)
    input in pixels: clip(16 * value + 128, 0, 255) / 255 per channel, a fixed scale (no statistics).
    """
    if method == "none":
        return x
    if method == "flow_image":
        return (16.0 * x + 128.0).clamp(0.0, 255.0) / 255.0
    if method != "minmax":
        raise ValueError(f"unknown normalize {method!r}; choose from {NORMALIZATIONS}")
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    # A constant map (e.g. no motion at all) becomes 0, not NaN.
    return (x - lo) / (hi - lo).clamp_min(1e-8)
