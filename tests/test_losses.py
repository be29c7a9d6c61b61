"""losses: class weights, cross-entropy and focal loss against hand-computed values and torch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from losses import CrossEntropyLoss, FocalLoss, class_weights

# Two samples with round softmax values: p = (1/4, 1/4, 1/2) for target 2, p = (3/5, 1/5, 1/5) for target 0.
LOGITS = torch.tensor([[0.0, 0.0, math.log(2.0)], [math.log(3.0), 0.0, 0.0]])
TARGET = torch.tensor([2, 0])
NLL = (math.log(2.0), math.log(5.0 / 3.0))  # -log p_target per sample


def test_cross_entropy_by_hand() -> None:
    loss = CrossEntropyLoss()(LOGITS, TARGET)
    assert loss.item() == pytest.approx((NLL[0] + NLL[1]) / 2, rel=1e-6)


def test_weighted_cross_entropy_by_hand_and_against_torch() -> None:
    # inverse_frequency on counts (1, 3, 2): N = 6, K' = 3 -> w = 6 / (3 n_c) = (2, 2/3, 1).
    loss_fn = CrossEntropyLoss(class_counts=[1, 3, 2], class_weighting="inverse_frequency")
    torch.testing.assert_close(loss_fn.weight, torch.tensor([2.0, 2.0 / 3.0, 1.0]))
    expected = (1.0 * NLL[0] + 2.0 * NLL[1]) / (1.0 + 2.0)  # weighted mean: sum w l / sum w
    assert loss_fn(LOGITS, TARGET).item() == pytest.approx(expected, rel=1e-6)

    torch.manual_seed(0)
    logits, target = torch.randn(16, 3), torch.randint(0, 3, (16,))
    for smoothing in (0.0, 0.1):
        ours = CrossEntropyLoss([5, 1, 9], "effective_number", beta=0.9, label_smoothing=smoothing)
        reference = F.cross_entropy(logits, target, weight=ours.weight, label_smoothing=smoothing)
        torch.testing.assert_close(ours(logits, target), reference)


def test_focal_gamma_zero_is_cross_entropy() -> None:
    torch.manual_seed(0)
    logits, target = torch.randn(32, 4) * 3, torch.randint(0, 4, (32,))
    counts = [3, 10, 1, 7]
    for weighting in ("none", "inverse_frequency", "effective_number"):
        for smoothing in (0.0, 0.2):
            kwargs = {"class_counts": counts, "class_weighting": weighting, "label_smoothing": smoothing}
            focal = FocalLoss(gamma=0.0, **kwargs)(logits, target)
            torch.testing.assert_close(focal, CrossEntropyLoss(**kwargs)(logits, target))


def test_focal_by_hand() -> None:
    # gamma 2: l = (1 - p_t)^2 * -log p_t with p_t = 1/2 and 3/5.
    expected = ((1 / 2) ** 2 * NLL[0] + (2 / 5) ** 2 * NLL[1]) / 2
    assert FocalLoss(gamma=2.0)(LOGITS, TARGET).item() == pytest.approx(expected, rel=1e-6)
    # Weighted: alpha = (2, 2/3, 1) as in the CE test, same normalisation sum alpha_t l / sum alpha_t.
    weighted = FocalLoss([1, 3, 2], "inverse_frequency", gamma=2.0)(LOGITS, TARGET)
    expected = (1.0 * (1 / 2) ** 2 * NLL[0] + 2.0 * (2 / 5) ** 2 * NLL[1]) / 3.0
    assert weighted.item() == pytest.approx(expected, rel=1e-6)


def test_focal_down_weights_easy_examples() -> None:
    easy = torch.tensor([[math.log(9.0), 0.0]])  # p_target = 0.9
    hard = torch.tensor([[0.0, math.log(9.0)]])  # p_target = 0.1
    target = torch.tensor([0])
    focal, ce = FocalLoss(gamma=2.0), CrossEntropyLoss()
    assert focal(easy, target).item() == pytest.approx(0.1**2 * math.log(10 / 9), rel=1e-5)
    assert focal(hard, target).item() == pytest.approx(0.9**2 * math.log(10), rel=1e-5)
    # Relative to CE the easy sample keeps 1 %, the hard one 81 %.
    assert (focal(easy, target) / ce(easy, target)).item() == pytest.approx(0.01, rel=1e-4)
    assert (focal(hard, target) / ce(hard, target)).item() == pytest.approx(0.81, rel=1e-4)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0])
def test_focal_is_finite_for_extreme_logits(gamma: float) -> None:
    # One sample certain and right (1 - p_t rounds to 0, where a fractional gamma has an infinite
    # derivative), one certain and wrong.
    logits = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], requires_grad=True)
    target = torch.tensor([0, 0])
    loss = FocalLoss(gamma=gamma)(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert loss.item() == pytest.approx(2e4 / 2, rel=1e-6)  # the wrong sample: (1 - 0)^gamma * 2e4, mean of 2


def test_bf16_logits_give_float32_loss() -> None:
    logits = LOGITS.to(torch.bfloat16)
    for loss_fn in (CrossEntropyLoss(), FocalLoss()):
        assert loss_fn(logits, TARGET).dtype == torch.float32


def test_class_weights_inverse_frequency() -> None:
    weights = class_weights([2, 6, 0], "inverse_frequency")
    # N / (K' n_c) with N = 8 and K' = 2 present classes: 8 / 4 = 2, 8 / 12 = 2/3, absent class 0.
    torch.testing.assert_close(weights, torch.tensor([2.0, 0.6667, 0.0]), rtol=0, atol=5e-5)
    assert weights.dtype == torch.float32
    # The weighted sample count equals the real one.
    assert (weights * torch.tensor([2.0, 6.0, 0.0])).sum().item() == pytest.approx(8.0)
    torch.testing.assert_close(class_weights(torch.tensor([4, 4]), "inverse_frequency"), torch.ones(2))


def test_class_weights_effective_number() -> None:
    counts = [2, 6, 0, 40]
    weights = class_weights(counts, "effective_number", beta=0.99)
    assert weights.sum().item() == pytest.approx(3.0)  # three present classes
    assert weights[2].item() == 0.0
    assert weights[0] > weights[1] > weights[3]
    # By hand, counts (1, 2), beta 1/2: raw (1 - b) / (1 - b^n) = 1 and 2/3, scaled to sum 2 -> 6/5, 4/5.
    torch.testing.assert_close(class_weights([1, 2], "effective_number", beta=0.5), torch.tensor([1.2, 0.8]))
    # beta = 0 is no re-weighting.
    torch.testing.assert_close(
        class_weights([1, 50, 0], "effective_number", beta=0.0), torch.tensor([1.0, 1, 0])
    )


def test_class_weights_none_and_errors() -> None:
    assert class_weights([2, 6, 0], "none") is None
    assert class_weights(None) is None
    with pytest.raises(ValueError, match="none, inverse_frequency, effective_number"):
        class_weights([1, 2], "balanced")
    with pytest.raises(ValueError, match="unknown"):
        CrossEntropyLoss([1, 2], class_weighting="sqrt")
    with pytest.raises(ValueError, match="needs class_counts"):
        FocalLoss(class_weighting="inverse_frequency")
    with pytest.raises(ValueError, match="beta"):
        class_weights([1, 2], "effective_number", beta=1.0)
    with pytest.raises(ValueError, match="all zero"):
        class_weights([0, 0], "inverse_frequency")


def test_weights_are_a_non_persistent_buffer() -> None:
    loss_fn = FocalLoss([2, 6, 1], "inverse_frequency")
    assert "weight" in dict(loss_fn.named_buffers())
    # Not in the state_dict: a checkpoint must load into a loss built with other fold counts or no weights.
    assert "weight" not in loss_fn.state_dict()
    assert loss_fn.to(torch.float64).weight.dtype == torch.float64  # follows .to(), as it would to a GPU
    assert CrossEntropyLoss().weight is None
