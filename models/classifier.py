"""MERClassifier: the supervised recipe (an injected network, a loss, an optimizer) as a LightningModule.

The network is any `nn.Module` mapping its inputs to logits: `inputs` names the batch entries it consumes,
in its forward-argument order (`("x",)` for a single-input network; `("stream_a", "stream_b")` for a
two-stream one). The loss takes (logits, target); the optimizer and optional scheduler arrive as partials and
are built here with `self.parameters()`.
Networks that also predict action units (`forward_with_aus` -> (logits, AU logits), e.g. AU-GACN) are trained
on CE + au_loss_weight * BCE over the batch's known AUs (`au`, `au_mask` from datamodule.action_units): a
clip whose AU is unknown adds nothing to that AU's loss, never a "not present".
Networks trained in stages (ELRCN's frame CNN, then its LSTM) are told each training epoch (`set_epoch`)
and give the training loss its logits and targets (`training_logits(*inputs, y=...)`); testing always uses
their forward.
There is no validation step on purpose: the held-out subject must never choose an epoch, a checkpoint or a
learning rate. `test_step` collects per-sample probabilities so the fold's predictions can be written out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import lightning.pytorch as L
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from evaluation.metrics import confusion_matrix, megc_scores


class MERClassifier(L.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        class_names: Sequence[str] = (),
        inputs: Sequence[str] = ("x",),
        au_loss_weight: float = 0.0,
        param_groups: Sequence[dict] | None = None,
        frozen_norms: Sequence[nn.Module] = (),
    ) -> None:
        """param_groups: optimizer groups over the network's parameters (models.finetune.parameter_groups:
        a head with its own lr; frozen parameters left out), None for all parameters at the optimizer's lr.
        frozen_norms: normalisation layers of a frozen part, kept in eval mode so their running statistics
        stay those of the weights they were loaded with (models.finetune.frozen_norm_layers)."""
        super().__init__()
        if not inputs:
            raise ValueError("a classifier consumes at least one named input")
        if au_loss_weight < 0:
            raise ValueError(f"au_loss_weight must be >= 0, got {au_loss_weight}")
        if au_loss_weight > 0 and not hasattr(net, "forward_with_aus"):
            raise ValueError(
                f"au_loss_weight > 0 needs a network that predicts AUs; {type(net).__name__} does not"
            )
        self.au_loss_weight = float(au_loss_weight)
        self.inputs = tuple(inputs)
        self.net = net
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.class_names = tuple(class_names)
        self.save_hyperparameters(
            ignore=["net", "loss", "optimizer", "scheduler", "param_groups", "frozen_norms", "teacher"]
        )
        self.param_groups = None if param_groups is None else list(param_groups)
        # A plain list, not a ModuleList: the layers are the network's own, not new submodules.
        self.frozen_norms = list(frozen_norms)
        self._test_rows: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self.test_predictions: dict[str, np.ndarray] | None = None

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.net(*inputs)

    def train(self, mode: bool = True) -> MERClassifier:
        super().train(mode)
        for layer in self.frozen_norms:
            layer.eval()
        return self

    def _logits(self, batch: dict) -> torch.Tensor:
        return self(*(batch[name] for name in self.inputs))

    def au_loss(self, au_logits: torch.Tensor, batch: dict) -> torch.Tensor:
        """Mean BCE over the batch's known (sample, AU) pairs; 0 when none is known."""
        if "au" not in batch:
            raise ValueError("au_loss_weight > 0 needs AU targets: set datamodule.action_units to an AU list")
        mask = batch["au_mask"].to(au_logits.dtype)
        bce = F.binary_cross_entropy_with_logits(au_logits.float(), batch["au"].float(), reduction="none")
        return (bce * mask).sum() / mask.sum().clamp_min(1.0)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        n = batch["y"].shape[0]
        inputs = [batch[name] for name in self.inputs]
        target = batch["y"]
        if self.au_loss_weight > 0:
            logits, au_logits = self.net.forward_with_aus(*inputs)
            au_loss = self.au_loss(au_logits, batch)
            loss = self.loss(logits, target) + self.au_loss_weight * au_loss
            self.log("train/au_loss", au_loss, on_step=False, on_epoch=True, batch_size=n)
        else:
            if hasattr(self.net, "training_logits"):  # staged training: this stage's logits and targets
                logits, target = self.net.training_logits(*inputs, y=target)
            else:
                logits = self(*inputs)
            loss = self.loss(logits, target)
        acc = (logits.argmax(1) == target).float().mean()
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        self.log("train/acc", acc, on_step=False, on_epoch=True, batch_size=n)
        return loss

    def on_train_epoch_start(self) -> None:
        if hasattr(self.net, "set_epoch"):
            self.net.set_epoch(self.current_epoch)

    def on_test_epoch_start(self) -> None:
        self._test_rows = []

    def test_step(self, batch: dict, batch_idx: int) -> None:
        logits = self._logits(batch)
        probs = torch.softmax(logits.float(), dim=1)
        self._test_rows.append((batch["index"].cpu(), batch["y"].cpu(), probs.cpu()))

    def on_test_epoch_end(self) -> None:
        index = torch.cat([r[0] for r in self._test_rows])
        y_true = torch.cat([r[1] for r in self._test_rows])
        probs = torch.cat([r[2] for r in self._test_rows])
        if self.trainer is not None and self.trainer.world_size > 1:
            index, y_true, probs = self._gathered(index, y_true, probs)
        index, y_true, probs = index.numpy(), y_true.numpy(), probs.numpy()
        y_pred = probs.argmax(1)
        self.test_predictions = {"index": index, "y_true": y_true, "y_pred": y_pred, "probs": probs}
        num_classes = probs.shape[1]
        # One subject's scores are noisy and often miss classes; they are logged for inspection only.
        # The numbers to report are pooled over all folds by `evaluation`.
        scores = megc_scores(confusion_matrix(y_true, y_pred, num_classes), self.class_names or None)
        self.log_dict(
            {"test/uf1": scores["uf1"], "test/uar": scores["uar"], "test/acc": scores["accuracy"]},
            batch_size=len(y_true),
        )

    def _gathered(self, index, y_true, probs):
        """Under DDP each rank tested a share of the held-out samples (the distributed sampler pads the
        shares to one length by repeating samples): every rank gets all of them, once each, in index order."""
        gathered = [
            self.all_gather(t.to(self.device)).reshape(-1, *t.shape[1:]).cpu() for t in (index, y_true, probs)
        ]
        index, y_true, probs = gathered
        order = torch.argsort(index, stable=True)
        index, y_true, probs = index[order], y_true[order], probs[order]
        first = torch.ones_like(index, dtype=torch.bool)
        first[1:] = index[1:] != index[:-1]
        return index[first], y_true[first], probs[first]

    def configure_optimizers(self):
        if self.param_groups is not None:
            optimizer = self.optimizer_factory(self.param_groups)
        elif all(p.requires_grad for p in self.parameters()):
            optimizer = self.optimizer_factory(self.parameters())
        else:  # a frozen part: the optimizer holds (and decays) only what trains
            optimizer = self.optimizer_factory([p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer)}}
