"""Classification losses for MER; each is built as `loss(class_counts=<training-fold counts>)`."""

from losses.class_weights import class_weights
from losses.cross_entropy import CrossEntropyLoss
from losses.focal import FocalLoss

__all__ = ["CrossEntropyLoss", "FocalLoss", "class_weights"]
