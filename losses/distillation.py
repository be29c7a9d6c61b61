"""Teacher->student distillation losses: Hinton's soft-target KD and a FitNets-style hint on features.

specs/models.md section 8 (TS-AUCNN, Sun et al., IEEE TAFFC 2020; closed paper, no code: a reconstruction).
A frozen deep teacher (e.g. an AU detector trained on macro-expression data) guides a shallow student on
micro-expression clips: L = CE(student logits, label) + beta * hint + kd_weight * KD.

* `kd_loss`: Hinton, Vinyals & Dean (2015), T^2 KL(softmax(z_T / T) || softmax(z_S / T)). Only meaningful
  when teacher and student predict the same classes; TS-AUCNN's AU teacher does not, so its recipe uses the
  hint alone (kd_weight 0).
* `HintLoss`: a learned linear regressor r maps the student's features onto the teacher's width (Romero et
  al., FitNets, ICLR 2015, at the FC level as TS-AUCNN: "features extracted from the teacher network are used
  as prior knowledge"): mean over samples of ||r(f_S) - f_T||^2 / D_T.

The teacher is a target, never trained through these losses: its logits and features are detached inside,
so a caller that forgets `torch.no_grad()` around the teacher still leaves it untouched. `HintLoss` owns
parameters (the regressor), so the recipe must hand them to its optimizer with the student's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 4.0
) -> torch.Tensor:
    """Hinton's distillation loss, T^2 * KL(p_T || p_S) with p = softmax(logits / T), mean over the batch.

    The T^2 factor keeps the gradient's scale independent of T (the soft targets' gradients shrink as 1/T^2),
    so `kd_weight` means the same at any temperature.

    Args:
        student_logits: (N, K) raw scores of the student.
        teacher_logits: (N, K) raw scores of the teacher for the same samples (detached here).
        temperature: T > 0; 1 compares the plain softmax outputs.

    Returns:
        scalar float32 in nats, >= 0 (0 when the two softened distributions agree).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"kd_loss: student logits {tuple(student_logits.shape)} vs teacher "
            f"{tuple(teacher_logits.shape)}; "
            "soft-target distillation needs the same classes on both sides"
        )
    # float32 log-softmax: bf16 (autocast) loses the small probabilities the soft targets are made of.
    log_p_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    # batchmean: KL summed over classes, averaged over samples (the true KL; "mean" would also divide by K).
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


class HintLoss(nn.Module):
    """FitNets hint at the FC level: mean over samples of ||r(f_S) - f_T||^2 / teacher_dim.

    Normalisation: the squared distance is divided by the teacher's width D_T (equivalently, the mean squared
    error over all elements). A plain sum would grow with D_T, so `beta` would have to be retuned for every
    teacher; per element it stays comparable across teachers, and equals the mean squared error per feature.

    Args:
        student_dim: D_S, width of the student's features (its `forward_features`).
        teacher_dim: D_T, width of the teacher's features (its penultimate FC layer).

    `regressor` is a Linear(D_S, D_T) with bias, PyTorch's default initialisation; it is trained with the
    student (and thrown away after training).
    """

    def __init__(self, student_dim: int, teacher_dim: int):
        super().__init__()
        self.student_dim = student_dim
        self.teacher_dim = teacher_dim
        self.regressor = nn.Linear(student_dim, teacher_dim)

    def forward(self, student_features: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
        """(N, D_S) student and (N, D_T) teacher features -> scalar float32.

        Leading dimensions beyond N (e.g. (N, T, D) per-frame features) are averaged over too: the loss is
        the mean over every feature vector of its squared distance / D_T. The teacher side is detached.
        """
        if student_features.shape[-1] != self.student_dim:
            raise ValueError(
                f"HintLoss: student features {tuple(student_features.shape)}, "
                f"expected last dim {self.student_dim}"
            )
        expected = (*student_features.shape[:-1], self.teacher_dim)
        if tuple(teacher_features.shape) != expected:
            shape = tuple(teacher_features.shape)
            raise ValueError(f"HintLoss: teacher features {shape}, expected {expected}")
        projected = self.regressor(student_features)
        # MSE over all elements = mean over vectors of ||.||^2 / D_T; float32 so bf16 squares do not round.
        return F.mse_loss(projected.float(), teacher_features.detach().float())

    def extra_repr(self) -> str:
        return f"student_dim={self.student_dim}, teacher_dim={self.teacher_dim}"


class DistillationLoss(nn.Module):
    """L = ce + beta * hint + kd_weight * KD, with the terms returned for logging.

    The cross-entropy comes in computed (`ce`), so the repository's `CrossEntropyLoss` with its training-fold
    class weights and label smoothing stays the one place that defines it; this module adds the teacher terms.

    Args:
        student_dim, teacher_dim: feature widths for the hint's regressor.
        beta: weight of the hint (TS-AUCNN's beta; not published, 1.0 a neutral start).
        kd_weight: weight of the soft-target term; 0 (TS-AUCNN: the AU teacher predicts other classes).
        temperature: T of the soft targets.
    """

    def __init__(
        self,
        student_dim: int,
        teacher_dim: int,
        beta: float = 1.0,
        kd_weight: float = 0.0,
        temperature: float = 4.0,
    ):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.hint = HintLoss(student_dim, teacher_dim)
        self.beta = beta
        self.kd_weight = kd_weight
        self.temperature = temperature

    def forward(
        self,
        ce: torch.Tensor,
        student_features: torch.Tensor,
        teacher_features: torch.Tensor,
        student_logits: torch.Tensor | None = None,
        teacher_logits: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Scalar `ce`, (N, D_S) / (N, D_T) features, (N, K) logits when kd_weight > 0.

        Returns:
            {"loss": total, "ce": ce, "hint": unweighted hint, "kd": unweighted KD (0 when kd_weight is 0)},
            all scalar float32.
        """
        hint = self.hint(student_features, teacher_features)
        if self.kd_weight:
            if student_logits is None or teacher_logits is None:
                raise ValueError("kd_weight > 0 needs both student_logits and teacher_logits")
            kd = kd_loss(student_logits, teacher_logits, self.temperature)
        else:
            kd = hint.new_zeros(())
        ce = ce.float()
        loss = ce + self.beta * hint + self.kd_weight * kd
        return {"loss": loss, "ce": ce, "hint": hint, "kd": kd}

    def extra_repr(self) -> str:
        return f"beta={self.beta}, kd_weight={self.kd_weight}, temperature={self.temperature}"
