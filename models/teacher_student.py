"""DistillationClassifier: teacher-student distillation (TS-AUCNN style, specs/models.md section 8).

A teacher (a larger network trained on macro-expressions, or on AU detection, kept in a MERLin checkpoint)
is loaded, frozen and kept in eval mode (its batch-norm statistics never move); a shallow micro student
(STSTNet, RCN-A, SSSN, ...) is trained on

    L = CE(student logits, y) + beta * ||r(f_S) - f_T||^2 / D_T + kd_weight * T^2 KL(p_T^(1/T) || p_S^(1/T))

with f_S, f_T the two networks' `forward_features` on the same training batch (the FC-level hint of FitNets
through a learned linear regressor r, losses.distillation.HintLoss) and the soft-target term only when the
teacher predicts the student's classes (the same label space; an AU or a 7-class macro teacher gives hints
alone). The teacher sees the micro training fold's batches only: its outputs are computed in
`training_step`, never on the held-out subject.

The teacher is held outside the module's parameters and state_dict (a plain attribute, moved to the device
at fit start): the fold checkpoint keeps the student and the regressor, and no optimizer can touch the
teacher's weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from losses.distillation import DistillationLoss
from models.classifier import MERClassifier


class DistillationClassifier(MERClassifier):
    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        teacher: nn.Module,
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        class_names: Sequence[str] = (),
        inputs: Sequence[str] = ("x",),
        teacher_inputs: Sequence[str] | None = None,
        beta: float = 1.0,
        kd_weight: float = 0.0,
        temperature: float = 4.0,
    ) -> None:
        for who, module in (("student", net), ("teacher", teacher)):
            if not hasattr(module, "forward_features") or not hasattr(module, "num_features"):
                raise ValueError(
                    f"the {who} ({type(module).__name__}) needs forward_features and num_features "
                    "for the hint"
                )
        if not hasattr(net, "forward_head"):
            raise ValueError(f"the student ({type(net).__name__}) needs forward_head")
        if beta < 0 or kd_weight < 0:
            raise ValueError(f"beta and kd_weight must be >= 0, got {beta}, {kd_weight}")
        super().__init__(net, loss, optimizer, scheduler, class_names, inputs)
        self.teacher_inputs = tuple(teacher_inputs or inputs)
        self.distillation = DistillationLoss(
            int(net.num_features), int(teacher.num_features), beta, kd_weight, temperature
        )
        for p in teacher.parameters():
            p.requires_grad_(False)
        teacher.eval()
        self._teacher = [teacher]  # a list: not a submodule, so not in parameters() or the checkpoint

    @property
    def teacher(self) -> nn.Module:
        return self._teacher[0]

    def train(self, mode: bool = True) -> DistillationClassifier:
        super().train(mode)
        self.teacher.eval()  # frozen: dropout off, BN statistics fixed
        return self

    def on_fit_start(self) -> None:
        self.teacher.to(self.device)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        n = batch["y"].shape[0]
        features = self.net.forward_features(*(batch[name] for name in self.inputs))
        logits = self.net.forward_head(features)
        with torch.no_grad():
            teacher_inputs = [batch[name] for name in self.teacher_inputs]
            teacher_features = self.teacher.forward_features(*teacher_inputs)
            teacher_logits = (
                self.teacher.forward_head(teacher_features) if self.distillation.kd_weight else None
            )
        ce = self.loss(logits, batch["y"])
        # The hint compares flat FC-level vectors (STSTNet's features are its (16, 5, 5) map: 400 values).
        terms = self.distillation(
            ce, features.flatten(1), teacher_features.flatten(1), logits, teacher_logits
        )
        acc = (logits.argmax(1) == batch["y"]).float().mean()
        self.log("train/loss", terms["loss"], on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        self.log_dict(
            {"train/ce": terms["ce"], "train/hint": terms["hint"], "train/kd": terms["kd"], "train/acc": acc},
            on_step=False,
            on_epoch=True,
            batch_size=n,
        )
        return terms["loss"]
