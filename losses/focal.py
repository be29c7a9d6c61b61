"""Focal loss (Lin, Goyal, Girshick, He, Dollar; "Focal Loss for Dense Object Detection", ICCV 2017)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from losses.class_weights import class_weights


class FocalLoss(nn.Module):
    """Multi-class focal loss of (N, K) logits against (N,) int64 class indices -> scalar float32.

    Per sample, with p = softmax(logits), target distribution q (one-hot, or label-smoothed
    q_c = (1 - eps) [c = y] + eps / K) and class weights alpha_c:

        l_n = - sum_c q_c alpha_c (1 - p_c)^gamma log p_c

    The class weights play the role of Lin et al.'s alpha (alpha_c = 1 when `class_weighting="none"`, not the
    paper's 0.25, which was tuned for one-vs-background detection).

    Normalisation: the batch value is sum_n l_n / sum_n alpha_{y_n}, exactly the weighted mean of
    `torch.nn.functional.cross_entropy` (label smoothing included), so gamma = 0 reproduces `CrossEntropyLoss`
    with the same arguments and the loss scale does not jump when switching between the two. Without weights
    it is the plain mean over the N samples (Lin et al. instead divide a sum by the number of positive
    anchors, which has no counterpart in classification).

    Args:
        class_counts, class_weighting, beta, label_smoothing: as in `losses.CrossEntropyLoss`.
        gamma: focusing parameter >= 0; larger values down-weight well-classified samples more.
    """

    weight: torch.Tensor | None

    def __init__(
        self,
        class_counts: Sequence[int] | torch.Tensor | None = None,
        class_weighting: str = "none",
        beta: float = 0.999,
        label_smoothing: float = 0.0,
        gamma: float = 2.0,
    ):
        super().__init__()
        if gamma < 0:
            raise ValueError(f"focal loss needs gamma >= 0, got {gamma}")
        self.class_weighting = class_weighting
        self.label_smoothing = label_smoothing
        self.gamma = gamma
        # Not persistent: derived from the fold's counts (see CrossEntropyLoss).
        self.register_buffer("weight", class_weights(class_counts, class_weighting, beta), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # float32 log_softmax is the stable route: log p never underflows to -inf as log(softmax) can.
        log_p = F.log_softmax(logits.float(), dim=1)
        num_classes = log_p.shape[1]
        # 1 - p via expm1 keeps precision when p is tiny; clamp guards the last ulp so a fractional gamma
        # never sees a negative base.
        modulator = (-torch.expm1(log_p)).clamp_min(0.0).pow(self.gamma)
        q = F.one_hot(target, num_classes).to(log_p.dtype)
        if self.label_smoothing > 0:
            q = q * (1.0 - self.label_smoothing) + self.label_smoothing / num_classes
        alpha = self.weight if self.weight is not None else log_p.new_ones(num_classes)
        per_sample = -(q * alpha * modulator * log_p).sum(dim=1)
        return per_sample.sum() / alpha[target].sum()

    def extra_repr(self) -> str:
        weight = None if self.weight is None else [round(w, 4) for w in self.weight.tolist()]
        return (
            f"gamma={self.gamma}, class_weighting={self.class_weighting!r}, weight={weight}, "
            f"label_smoothing={self.label_smoothing}"
        )
