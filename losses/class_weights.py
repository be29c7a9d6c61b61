"""Per-class loss weights from the training fold's class counts, for imbalanced MER databases.

Micro-expression databases are skewed (MEGC2019 composite: 250 negative / 109 positive / 83 surprise), and a
LOSO training fold can lack a class entirely; such a class gets weight 0 rather than an infinite one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

SCHEMES = ("none", "inverse_frequency", "effective_number")


def class_weights(
    class_counts: Sequence[int] | torch.Tensor | None, scheme: str = "none", beta: float = 0.999
) -> torch.Tensor | None:
    """(K,) float32 weights w_c for the K classes, or None for `scheme="none"`.

    Args:
        class_counts: (K,) training samples per class (non-negative integers).
        scheme:
            "none": no weighting (returns None, so the loss skips the weight entirely).
            "inverse_frequency": w_c = N / (K' * n_c), N = sum of counts, K' = classes with n_c > 0
                (scikit-learn's "balanced"); the weighted sample count sum_c w_c n_c equals N.
            "effective_number": Cui et al., CVPR 2019, "Class-Balanced Loss Based on Effective Number of
                Samples": w_c proportional to (1 - beta) / (1 - beta^n_c), scaled so the weights of the K'
                present classes sum to K'.
        beta: effective-number hyper-parameter in [0, 1); 0 gives equal weights, towards 1 inverse frequency.

    Classes with n_c = 0 get w_c = 0 under both schemes.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown class weighting scheme {scheme!r}; valid: {', '.join(SCHEMES)}")
    if scheme == "none":
        return None
    if class_counts is None:
        raise ValueError(f"class weighting {scheme!r} needs class_counts")
    # float64 so that beta^n_c for large counts and the normalisation do not lose digits; cast at the end.
    counts = torch.as_tensor(class_counts, dtype=torch.float64).flatten()
    if counts.numel() == 0 or (counts < 0).any():
        raise ValueError(f"class_counts must be non-empty and non-negative, got {counts.tolist()}")
    present = counts > 0
    num_present = int(present.sum())
    if num_present == 0:
        raise ValueError("class_counts are all zero: no class to weight")

    weights = torch.zeros_like(counts)
    if scheme == "inverse_frequency":
        weights[present] = counts.sum() / (num_present * counts[present])
    else:
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"effective_number needs 0 <= beta < 1, got {beta}")
        effective = (1.0 - beta ** counts[present]) / (1.0 - beta)
        raw = 1.0 / effective
        weights[present] = raw * num_present / raw.sum()
    return weights.float()
