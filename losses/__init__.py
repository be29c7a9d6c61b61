"""Classification losses for MER; each is built as `loss(class_counts=<training-fold counts>)`; and the
transfer losses: gradient reversal with the DANN schedule and the domain loss (macro -> micro), and the
teacher -> student distillation terms."""

from losses.adversarial import GradientReversalLayer, dann_coefficient, domain_loss, grad_reverse
from losses.class_weights import class_weights
from losses.cross_entropy import CrossEntropyLoss
from losses.distillation import DistillationLoss, HintLoss, kd_loss
from losses.focal import FocalLoss

__all__ = [
    "CrossEntropyLoss",
    "DistillationLoss",
    "FocalLoss",
    "GradientReversalLayer",
    "HintLoss",
    "class_weights",
    "dann_coefficient",
    "domain_loss",
    "grad_reverse",
    "kd_loss",
]
