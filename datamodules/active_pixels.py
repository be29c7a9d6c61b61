"""STRCN-A's input: the clip's active pixels as rows, its frames as columns, one (1, P, T) image per clip.

Xia et al.'s appearance connectivity (specs/models.md section 5a, `AppearanceConnect/*.m` of the authors'
code): a mask of the pixels that move in micro-expressions is learned from the training videos, and each
clip becomes the matrix of those pixels over time, so a 2-D network convolves over space and time at once.
The mask, as the code computes it:

    E_v = sum_k |I_k - I_1|            per video v, over its frames (grey, 64x32 in the paper)
    E_v = E_v / max(E_v)
    E   = mean over the training videos of E_v
    mask = E >= 75th percentile of E, then a morphological opening with a disk of radius 1

The code computes it once per database; here it is fitted per fold on the fold's training subjects only
(`ActivePixels.fit`), so nothing about the held-out subject's motion chooses the pixels its clips are read
through. P (the number of active pixels) can differ between folds; STRCN pools globally, so its weights
do not depend on P.

Input: a sequence input of grey frames (N, T, 1, H, W) (features `channels: [frame]`, `sequence.length`
150 as the code's time axis); output (N, 1, P, T), pixels in row-major order of the frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch


class ActivePixels:
    """A fold's active-pixel mask and the pixels-by-time image it reads; see the module docstring.

    percentile: pixels whose mean normalised energy reaches this percentile are active (75 in the code).
    radius: of the disk of the morphological opening (1 for frames under 100 rows, as in the code); 0 skips.
    """

    def __init__(self, percentile: float = 75.0, radius: int = 1) -> None:
        if not 0.0 <= percentile < 100.0:
            raise ValueError(f"percentile must be in [0, 100), got {percentile}")
        if int(radius) != radius or radius < 0:
            raise ValueError(f"radius must be a whole number >= 0, got {radius}")
        self.percentile = float(percentile)
        self.radius = int(radius)
        self.mask: torch.Tensor | None = None  # (H, W) bool once fitted

    def fit(self, array, rows: Sequence[int], chunk: int = 32) -> ActivePixels:
        """Learn the mask from rows `rows` (the training samples) of `array` (N, T, 1, H, W), a tensor or
        anything `datamodules.datamodule.take` reads (a DiskArray), `chunk` clips at a time."""
        from datamodules.datamodule import take  # the module imports this one

        if array.ndim != 5 or array.shape[2] != 1:
            raise ValueError(
                "active pixels need a sequence of grey frames (N, T, 1, H, W), "
                f"got shape {tuple(array.shape)}"
            )
        rows = list(rows)
        if not rows:
            raise ValueError("active pixels need at least one training clip to learn the mask from")
        total = torch.zeros(array.shape[-2:], dtype=torch.float64)
        for start in range(0, len(rows), chunk):
            clips = take(array, torch.as_tensor(rows[start : start + chunk], dtype=torch.long))[:, :, 0]
            energy = (clips - clips[:, :1]).abs().sum(dim=1).double()  # (n, H, W)
            peak = energy.amax(dim=(-2, -1), keepdim=True)
            # A clip with no motion at all adds nothing (0 / 0 would be NaN).
            total += torch.where(peak > 0, energy / peak.clamp_min(1e-30), 0.0).sum(dim=0)
        mean = (total / len(rows)).numpy()
        # At or above the percentile, but never the least-moving pixels: where most of the frame is still
        # (tied at the minimum), the percentile can fall on that minimum, which would make all of it active.
        mask = (mean >= np.percentile(mean, self.percentile)) & (mean > mean.min())
        if not mask.any():
            raise ValueError(
                "no pixel moves more than the others in the training clips: the active-pixel mask is empty"
            )
        if self.radius > 0:
            disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * self.radius + 1, 2 * self.radius + 1))
            opened = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, disk).astype(bool)
            # An opening that removes everything (scattered single pixels) would leave no input at all.
            mask = opened if opened.any() else mask
        self.mask = torch.from_numpy(mask)
        return self

    @property
    def num_pixels(self) -> int:
        self._check_fitted()
        return int(self.mask.sum())

    def _check_fitted(self) -> None:
        if self.mask is None:
            raise RuntimeError("ActivePixels.fit must run (on the training fold) before it is used")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(N, T, 1, H, W) -> (N, 1, P, T): the masked pixels of every frame as the columns of one image."""
        self._check_fitted()
        if x.ndim != 5 or x.shape[2] != 1 or tuple(x.shape[-2:]) != tuple(self.mask.shape):
            raise ValueError(
                f"expected (N, T, 1, {self.mask.shape[0]}, {self.mask.shape[1]}), got {tuple(x.shape)}"
            )
        pixels = x[:, :, 0].flatten(2)[:, :, self.mask.flatten().to(x.device)]  # (N, T, P)
        return pixels.transpose(1, 2).unsqueeze(1).contiguous()

    def __repr__(self) -> str:
        fitted = f", P={self.num_pixels}" if self.mask is not None else ""
        return f"ActivePixels(percentile={self.percentile}, radius={self.radius}{fitted})"
