"""Cross-entropy with optional class weights (from the training fold's counts) and label smoothing."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from losses.class_weights import class_weights


class CrossEntropyLoss(nn.Module):
    """Mean cross-entropy of (N, K) logits against (N,) int64 class indices -> scalar float32.

    With weights w (from `class_weights`) the mean is torch's weighted mean,
    sum_n w_{y_n} l_n / sum_n w_{y_n}.

    Args:
        class_counts: (K,) training samples per class; only needed when `class_weighting` is not "none".
        class_weighting: "none" | "inverse_frequency" | "effective_number" (see `losses.class_weights`).
        beta: effective-number hyper-parameter.
        label_smoothing: epsilon in [0, 1), as in `torch.nn.CrossEntropyLoss`.
    """

    weight: torch.Tensor | None

    def __init__(
        self,
        class_counts: Sequence[int] | torch.Tensor | None = None,
        class_weighting: str = "none",
        beta: float = 0.999,
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        self.class_weighting = class_weighting
        self.label_smoothing = label_smoothing
        # A buffer follows the module to the GPU; not persistent because it is derived from the fold's counts,
        # and a checkpoint must load into a loss built with another weighting.
        self.register_buffer("weight", class_weights(class_counts, class_weighting, beta), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # float32 log-softmax: bf16 logits (autocast or a bf16 model) would lose the small differences.
        return F.cross_entropy(
            logits.float(), target, weight=self.weight, label_smoothing=self.label_smoothing
        )

    def extra_repr(self) -> str:
        weight = None if self.weight is None else [round(w, 4) for w in self.weight.tolist()]
        return (
            f"class_weighting={self.class_weighting!r}, weight={weight}, "
            f"label_smoothing={self.label_smoothing}"
        )
