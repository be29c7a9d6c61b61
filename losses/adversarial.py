"""Domain-adversarial pieces for macro->micro transfer: gradient reversal, the DANN schedule, the domain loss.

specs/models.md section 7a (EMR, read from the authors' code `xiaobaishu0097/MEGC2019` `Train/main.py`
`ReverseLayerF`), after Ganin & Lempitsky, "Unsupervised Domain Adaptation by Backpropagation" (ICML 2015).
A domain classifier learns to tell macro- from micro-expression features; the gradient reversal layer (GRL)
between it and the features makes the feature extractor *maximise* that classifier's loss, so the features
it learns carry less of what separates the two domains.

The GRL holds its coefficient c but never updates it: the schedule lives outside, in the training recipe,
which sets `layer.coefficient = dann_coefficient(step, max_steps)` from its global step. The authors' layer
counted its own forward calls instead; that counter was one module-level object shared by all 68 folds of
their LOSO loop, so only the first fold ramped up from c = 0: at about 2,400 steps a fold (~770 training
clips at batch 32 for 100 epochs) the second fold started at c = 0.83 and the third above 0.98. A counter
driven by the recipe's step restarts with every fold, which is the DANN schedule's intent and keeps the
folds alike (it also means that a fold of 2,400 steps ends at c = 0.83 with max_steps 10,000).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Domain labels of EMR's discriminator (BCE target): the macro-expression source (CK+) is 0, micro is 1.
MACRO_DOMAIN = 0
MICRO_DOMAIN = 1


class GradientReversal(torch.autograd.Function):
    """Identity in the forward pass; multiplies the incoming gradient by -coefficient in the backward pass.

    `GradientReversal.apply(x, coefficient)`: x any float tensor, coefficient a Python float (not a tensor, so
    it is never part of the graph and gets no gradient).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, coefficient: float) -> torch.Tensor:
        ctx.coefficient = coefficient
        # A view, not x itself: autograd needs a new tensor to attach this node's backward to.
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad_output * -ctx.coefficient, None


def grad_reverse(x: torch.Tensor, coefficient: float = 1.0) -> torch.Tensor:
    """x unchanged (same shape, dtype and values); its gradient is scaled by -coefficient on the way back.

    coefficient 0 stops the gradient (the DANN schedule's value at step 0); 1 reverses it unscaled.
    """
    coefficient = float(coefficient)
    if not math.isfinite(coefficient):
        raise ValueError(f"gradient reversal coefficient must be finite, got {coefficient}")
    return GradientReversal.apply(x, coefficient)


class GradientReversalLayer(nn.Module):
    """`grad_reverse` as a module, with a settable `coefficient` (a plain float attribute, not a buffer or
    a parameter: it is set from the global step before every training step, so a checkpoint need not hold
    it, and a resumed run recomputes it from its step).

    Args:
        coefficient: c, the scale of the reversed gradient until the caller sets another.
    """

    def __init__(self, coefficient: float = 1.0):
        super().__init__()
        self.coefficient = float(coefficient)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(...) float -> the same tensor values; backward multiplies the gradient by -coefficient."""
        return grad_reverse(x, self.coefficient)

    def extra_repr(self) -> str:
        return f"coefficient={self.coefficient:.6g}"


def dann_coefficient(
    step: int | float, max_steps: int | float, alpha: float = 10.0, high: float = 1.0, low: float = 0.0
) -> float:
    """The DANN ramp of the gradient reversal coefficient (EMR's `ReverseLayerF`, specs/models.md 7a):

        p = step / max_steps
        c = 2 (high - low) / (1 + exp(-alpha p)) - (high - low) + low

    c rises smoothly from `low` at step 0 to `high`: with alpha 10 it is 0.462 at p = 0.1, 0.987 at p = 0.5
    and 0.99991 at p = 1. p is not clipped at 1, as in the authors' code (max_iter 10,000 for any run
    length): beyond max_steps c keeps approaching `high` (by less than 1e-4 for alpha 10), so clipping
    would change nothing that matters and would hide the schedule's shape from a caller with another alpha.

    To reproduce the authors' count exactly, pass the number of training steps *including* the current one
    (Lightning: `self.global_step + 1`; their counter was incremented in the forward pass before the
    backward read it); passing `global_step` lags by one step (c differs by at most alpha / max_steps / 2).

    Args:
        step: training steps so far (>= 0; counted per fold).
        max_steps: the step scale of the ramp (> 0; EMR: 10,000).
        alpha: steepness (EMR and DANN: 10).
        high, low: the coefficient's limits (EMR: 1 and 0).

    Returns:
        c as a Python float.
    """
    if max_steps <= 0:
        raise ValueError(f"max_steps must be positive, got {max_steps}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    span = high - low
    return 2.0 * span / (1.0 + math.exp(-alpha * step / max_steps)) - span + low


def domain_loss(domain_logits: torch.Tensor, domain_labels: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of the domain classifier (EMR: `BCEWithLogitsLoss`).

    Args:
        domain_logits: (N,) or (N, 1) raw scores, positive for "micro".
        domain_labels: (N,) MACRO_DOMAIN (0) for macro-expression samples, MICRO_DOMAIN (1) for micro;
            int, bool or float.

    Returns:
        scalar float32.
    """
    logits = domain_logits.reshape(-1)
    labels = domain_labels.reshape(-1)
    if logits.shape != labels.shape:
        raise ValueError(
            f"domain_loss: {tuple(domain_logits.shape)} logits vs {tuple(domain_labels.shape)} labels; "
            "expected one logit per sample, (N,) or (N, 1), and (N,) labels"
        )
    # float32: bf16 logits (autocast) would round the small margins of a confident discriminator.
    return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
