"""EMRClassifier: EMR's domain-adversarial macro->micro recipe (specs/models.md 7a) as a LightningModule.

Each training step takes a paired batch `{"micro": ..., "macro": ...}` (datamodules.paired): the micro fold's
training samples and macro-expression samples (in every fold's training set; the held-out micro subject
never). Both go through the network (models.emr.EMR) in one pass, and

    L = CE(main) + aux_weight * (CE(top) + CE(bottom)) + domain_weight * BCE(domain; macro 0, micro 1)

where the domain logit reads the fused features through a gradient reversal layer whose coefficient follows
the DANN schedule, c = 2 / (1 + exp(-alpha * step / max_steps)) - 1 (losses.adversarial), counted per fold
from the fold's first step (the authors' counter ran across folds, so only their first fold ramped up);
`grl_max_steps=None` makes max_steps the fold's own number of steps (DANN's p, the training progress).
The emotion losses are over macro and micro samples together, as the authors train; the emotion CE is the
configured loss (training-fold class weights, if asked, from the micro and macro counts together).

Optimiser as the authors': Adam with weight decay, the backbone at `backbone_lr` (1e-5) and the heads and
discriminator at `head_lr` (1e-3), the heads' rate halved every `head_lr_halving_epochs` while above
`head_lr_min`; each module's gradient norm clipped to `grad_clip_norm` (the discriminator's not).

Testing is MERClassifier's: the main head's logits on the held-out micro subject, deterministic transforms
(the authors' code applied random crops and jitter at test time, a bug this port does not copy).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from datamodules.paired import MACRO, MICRO
from losses.adversarial import MACRO_DOMAIN, MICRO_DOMAIN, dann_coefficient, domain_loss
from models.classifier import MERClassifier

# Modules whose gradient norm is clipped separately (EMR's code); the discriminator is not clipped.
CLIPPED_MODULES = ("backbone", "fc_top", "fc_bottom", "classifier", "classifier_top", "classifier_bottom")


class EMRClassifier(MERClassifier):
    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        class_names: Sequence[str] = (),
        inputs: Sequence[str] = ("x",),
        backbone_lr: float = 1e-5,
        head_lr: float = 1e-3,
        head_lr_halving_epochs: int = 10,
        head_lr_min: float = 1e-5,
        grad_clip_norm: float | None = 1.0,
        grl_alpha: float = 10.0,
        grl_max_steps: int | None = 10_000,
        aux_weight: float = 1.0,
        domain_weight: float = 1.0,
    ) -> None:
        for name in ("forward_heads", "param_groups", "grl"):
            if not hasattr(net, name):
                raise ValueError(
                    f"the EMR recipe needs an EMR-style network (models.emr.EMR), not {type(net).__name__}"
                )
        if len(tuple(inputs)) != 1:
            raise ValueError(f"the EMR recipe takes one named input, got {tuple(inputs)}")
        if backbone_lr <= 0 or head_lr <= 0 or head_lr_min <= 0:
            raise ValueError("EMR learning rates must be positive")
        if head_lr_halving_epochs < 1 or (grl_max_steps is not None and grl_max_steps < 1):
            raise ValueError("head_lr_halving_epochs and grl_max_steps must be at least 1")
        super().__init__(net, loss, optimizer, None, class_names, inputs)
        self.backbone_lr, self.head_lr = float(backbone_lr), float(head_lr)
        self.head_lr_halving_epochs, self.head_lr_min = int(head_lr_halving_epochs), float(head_lr_min)
        self.grad_clip_norm = None if grad_clip_norm is None else float(grad_clip_norm)
        self.grl_alpha = float(grl_alpha)
        self.grl_max_steps = None if grl_max_steps is None else int(grl_max_steps)
        self.aux_weight, self.domain_weight = float(aux_weight), float(domain_weight)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if MICRO not in batch or MACRO not in batch:
            raise ValueError(
                "the EMR recipe trains on paired batches {'micro', 'macro'} (datamodules.paired)"
            )
        name = self.inputs[0]
        micro, macro = batch[MICRO], batch[MACRO]
        x = torch.cat([micro[name], macro[name]])
        y = torch.cat([micro["y"], macro["y"]])
        n_micro = micro["y"].shape[0]
        domain = torch.full((x.shape[0],), float(MACRO_DOMAIN), device=x.device)
        domain[:n_micro] = float(MICRO_DOMAIN)
        # The counter starts at 1 for the first step, as the authors' forward-call count did.
        self.net.grl.coefficient = dann_coefficient(self.global_step + 1, self._grl_steps(), self.grl_alpha)
        heads = self.net.forward_heads(x)
        emotion = self.loss(heads["logits"], y)
        aux = self.loss(heads["logits_top"], y) + self.loss(heads["logits_bottom"], y)
        adversarial = domain_loss(heads["domain"], domain)
        loss = emotion + self.aux_weight * aux + self.domain_weight * adversarial
        n = x.shape[0]
        logged = {
            "train/loss": loss,
            "train/emotion_loss": emotion,
            "train/domain_loss": adversarial,
            "train/grl_coefficient": torch.tensor(self.net.grl.coefficient),
            "train/acc_micro": (heads["logits"][:n_micro].argmax(1) == micro["y"]).float().mean(),
        }
        self.log_dict(logged, on_step=False, on_epoch=True, batch_size=n)
        return loss

    def _grl_steps(self) -> int:
        """The schedule's length: grl_max_steps, or (None) this fold's whole run, DANN's training progress."""
        if self.grl_max_steps is not None:
            return self.grl_max_steps
        return max(int(self.trainer.estimated_stepping_batches), 1)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        # Per module, as EMR's code clips (a global norm would let the backbone's gradient swamp the heads').
        if self.grad_clip_norm is None:
            return
        for name in CLIPPED_MODULES:
            module = getattr(self.net, name, None)
            if module is not None:
                torch.nn.utils.clip_grad_norm_(module.parameters(), self.grad_clip_norm)

    def configure_optimizers(self):
        groups = self.net.param_groups(self.backbone_lr, self.head_lr)
        optimizer = self.optimizer_factory(groups)
        floor = self.head_lr_min / self.head_lr
        every = self.head_lr_halving_epochs

        def heads(epoch: int) -> float:
            # Halved every `every` epochs while above the floor (the authors' `if lr > 1e-5: lr /= 2`).
            return max(0.5 ** (epoch // every), min(floor, 1.0))

        lambdas = [
            (lambda epoch: 1.0) if g.get("name") == "backbone" else heads for g in optimizer.param_groups
        ]
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
