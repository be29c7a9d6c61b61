"""losses/distillation.py: KD and the hint loss against hand computations; the teacher gets no gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from losses import DistillationLoss, HintLoss, kd_loss


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


STUDENT = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]])
TEACHER = np.array([[3.0, 0.0, 0.0], [0.0, 1.0, 1.0]])


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_kd_loss_by_hand(temperature: float) -> None:
    p_s, p_t = softmax(STUDENT / temperature), softmax(TEACHER / temperature)
    # KL(p_T || p_S) summed over classes, mean over the 2 samples, times T^2.
    expected = temperature**2 * np.mean(np.sum(p_t * (np.log(p_t) - np.log(p_s)), axis=1))
    loss = kd_loss(torch.tensor(STUDENT), torch.tensor(TEACHER), temperature)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_kd_loss_is_zero_for_agreeing_logits_and_checks_its_inputs() -> None:
    z = torch.randn(4, 5)
    assert kd_loss(z, z + 3.0, 2.0).item() == pytest.approx(0.0, abs=1e-6)  # softmax ignores a shift
    with pytest.raises(ValueError, match="same classes"):
        kd_loss(torch.zeros(4, 3), torch.zeros(4, 10))
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(z, z, 0.0)


def test_hint_loss_by_hand() -> None:
    hint = HintLoss(student_dim=2, teacher_dim=3)
    weight = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, -1.0]])  # (D_T, D_S)
    bias = np.array([0.5, 0.0, -0.5])
    with torch.no_grad():
        hint.regressor.weight.copy_(torch.tensor(weight))
        hint.regressor.bias.copy_(torch.tensor(bias))
    f_s = np.array([[1.0, 2.0], [0.0, -1.0]])
    f_t = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 2.0]])
    residual = f_s @ weight.T + bias - f_t  # r(f_S) - f_T, (N, D_T)
    expected = np.mean(np.sum(residual**2, axis=1) / 3)  # mean over samples of ||.||^2 / D_T
    loss = hint(torch.tensor(f_s, dtype=torch.float32), torch.tensor(f_t, dtype=torch.float32))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # Sample 1: r = (1.5, 4, -1.5) vs (1, 1, 1) -> 0.25 + 9 + 6.25; sample 2: (0.5, -2, 0.5) vs (0, 0, 2)
    # -> 0.25 + 4 + 2.25; (15.5 + 6.5) / 3 / 2.
    assert expected == pytest.approx(22.0 / 6.0)


def test_hint_loss_averages_over_frames_and_checks_shapes() -> None:
    torch.manual_seed(0)
    hint = HintLoss(4, 6)
    f_s, f_t = torch.randn(2, 5, 4), torch.randn(2, 5, 6)  # (N, T, D) per-frame features
    by_frame = torch.stack([hint(f_s[:, t], f_t[:, t]) for t in range(5)]).mean()
    torch.testing.assert_close(hint(f_s, f_t), by_frame)
    with pytest.raises(ValueError, match="student features"):
        hint(torch.randn(2, 3), torch.randn(2, 6))
    with pytest.raises(ValueError, match="teacher features"):
        hint(torch.randn(2, 4), torch.randn(3, 6))


def test_gradients_reach_the_student_and_regressor_but_not_the_teacher() -> None:
    torch.manual_seed(0)
    loss_fn = DistillationLoss(student_dim=4, teacher_dim=6, beta=0.5, kd_weight=1.0, temperature=2.0)
    student_features = torch.randn(3, 4, requires_grad=True)
    student_logits = torch.randn(3, 5, requires_grad=True)
    # The teacher's outputs as a careless caller would pass them: still attached to a graph.
    teacher_features = torch.randn(3, 6, requires_grad=True)
    teacher_logits = torch.randn(3, 5, requires_grad=True)
    terms = loss_fn(torch.tensor(0.0), student_features, teacher_features, student_logits, teacher_logits)
    terms["loss"].backward()
    assert student_features.grad is not None and student_features.grad.abs().sum() > 0
    assert student_logits.grad is not None and student_logits.grad.abs().sum() > 0
    regressor_grad = loss_fn.hint.regressor.weight.grad
    assert regressor_grad is not None and regressor_grad.abs().sum() > 0
    assert teacher_features.grad is None and teacher_logits.grad is None

    # With only the teacher side requiring grad, the losses have no graph at all.
    frozen_student = student_features.detach()
    loss_fn.hint.regressor.requires_grad_(False)
    assert not loss_fn.hint(frozen_student, teacher_features).requires_grad
    assert not kd_loss(student_logits.detach(), teacher_logits).requires_grad


def test_distillation_loss_combines_its_terms() -> None:
    torch.manual_seed(0)
    loss_fn = DistillationLoss(student_dim=4, teacher_dim=6, beta=0.25, kd_weight=2.0, temperature=3.0)
    assert {n for n, _ in loss_fn.named_parameters()} == {"hint.regressor.weight", "hint.regressor.bias"}
    ce = torch.tensor(1.5)
    f_s, f_t, z_s, z_t = torch.randn(5, 4), torch.randn(5, 6), torch.randn(5, 3), torch.randn(5, 3)
    terms = loss_fn(ce, f_s, f_t, z_s, z_t)
    torch.testing.assert_close(terms["hint"], loss_fn.hint(f_s, f_t))
    torch.testing.assert_close(terms["kd"], kd_loss(z_s, z_t, 3.0))
    torch.testing.assert_close(terms["loss"], ce + 0.25 * terms["hint"] + 2.0 * terms["kd"])

    # TS-AUCNN: an AU teacher has other outputs, so the hint alone (kd_weight 0) needs no logits.
    hint_only = DistillationLoss(student_dim=4, teacher_dim=6, beta=0.25)
    terms = hint_only(ce, f_s, f_t)
    assert terms["kd"].item() == 0.0
    torch.testing.assert_close(terms["loss"], ce + 0.25 * terms["hint"])
    with pytest.raises(ValueError, match="teacher_logits"):
        loss_fn(ce, f_s, f_t, z_s)
