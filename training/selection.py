"""Choosing a fold's epoch without its test subject, and what choosing on it would have reported.

`selection=inner`: each fold sets aside `inner_validation.subjects` of its *training* subjects (seeded,
subject-disjoint: datamodules.protocols.holdout_fold over them) as a validation set that no statistic, count
or batch is fitted on; `InnerSelection` scores it after every training epoch and keeps the weights of the
best epoch (`monitor`: validation loss, lowest, or UF1, highest; the earliest on a tie), optionally stopping
after `patience` epochs without improvement. The held-out subject is then tested once, with those weights.

`diagnostics.oracle_epoch=true`: `OracleEpochs` additionally predicts the held-out subject after every epoch
and keeps those predictions (`fold_k/oracle_epochs.json`); `oracle_report` pools, for each fold, the epoch
with the best accuracy on its own test subject: the leaky practice of published code, reported apart
(`oracle.json`, a labelled row in results.md: "oracle, leaky: not a result"), never as the run's result.

Both evaluate with `MERDataModule.evaluation_batches` (no DataLoader, no random draws, eval mode, no
gradients), so a watched fold trains exactly as an unwatched one (tests/test_selection.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning.pytorch as L
import torch
from torch.nn import functional as F

from evaluation.metrics import confusion_matrix, megc_scores
from evaluation.oracle import ORACLE_EPOCHS_NAME, ORACLE_LABEL
from training.settings import MONITORS
from utils.atomic import atomic_write_json

log = logging.getLogger(__name__)

SELECTION_NAME = "selection.json"  # beside fold k's checkpoint: the validation subjects and chosen epoch


def _predict(module: L.LightningModule, datamodule, rows: Sequence[int], features=None):
    """(y_true, probs) of `rows` in eval mode without gradients; the module's mode is restored."""
    was_training = module.training
    module.eval()
    ys, probs = [], []
    try:
        with torch.no_grad():
            for batch in datamodule.evaluation_batches(rows, features):
                batch = {k: v.to(module.device) if torch.is_tensor(v) else v for k, v in batch.items()}
                logits = module._logits(batch)
                ys.append(batch["y"].cpu())
                probs.append(torch.softmax(logits.float(), dim=1).cpu())
    finally:
        module.train(was_training)
    return torch.cat(ys), torch.cat(probs)


def _micro(datamodule):
    """The data module holding the fold's rows (a PairedDataModule's micro side)."""
    return getattr(datamodule, "micro", datamodule)


class FoldWatch(L.Callback):
    """A callback that, after fit, finishes its work for the fold: `finish(module, folder)`."""

    def finish(self, module: L.LightningModule, folder: Path, write: bool = True) -> None:
        """After fit: act on `module` (every DDP rank) and, with `write` (the primary one), record."""
        raise NotImplementedError


class InnerSelection(FoldWatch):
    """Keep the weights of the epoch that scores best on the fold's inner validation subjects."""

    def __init__(self, datamodule, monitor: str = "loss", patience: int | None = None) -> None:
        if monitor not in MONITORS:
            raise ValueError(f"inner_validation.monitor={monitor}: expected one of {', '.join(MONITORS)}")
        self.datamodule = _micro(datamodule)
        if not self.datamodule.val_idx:
            raise ValueError("selection=inner needs validation subjects in the data module")
        self.monitor, self.patience = monitor, patience
        self.curve: list[dict] = []
        self.best_epoch: int | None = None
        self.best_value: float | None = None
        self.best_state: dict | None = None
        self.stopped_early = False

    def _better(self, value: float) -> bool:
        if self.best_value is None:
            return True
        return value < self.best_value if self.monitor == "loss" else value > self.best_value

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        y, probs = _predict(pl_module, self.datamodule, self.datamodule.val_idx)
        loss = float(F.nll_loss(torch.log(probs.clamp_min(1e-12)), y))
        cm = confusion_matrix(y.numpy(), probs.argmax(1).numpy(), probs.shape[1])
        uf1 = float(megc_scores(cm)["uf1"])
        epoch = trainer.current_epoch + 1
        self.curve.append({"epoch": epoch, "loss": loss, "uf1": uf1})
        value = loss if self.monitor == "loss" else uf1
        pl_module.log(f"val/{self.monitor}", value, on_step=False, on_epoch=True)
        if self._better(value):
            self.best_epoch, self.best_value = epoch, value
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.state_dict().items()}
        elif self.patience is not None and epoch - self.best_epoch >= self.patience:
            self.stopped_early = True
            trainer.should_stop = True

    def finish(self, module: L.LightningModule, folder: Path, write: bool = True) -> None:
        """Load the chosen epoch's weights into `module` and write `selection.json` beside its checkpoint."""
        if self.best_state is None:
            raise RuntimeError("selection=inner: no epoch was scored")
        module.load_state_dict(self.best_state)
        record = {
            "selection": "inner",
            "validation_subjects": list(self.datamodule.validation_subjects),
            "validation_samples": len(self.datamodule.val_idx),
            "monitor": f"val/{self.monitor}",
            "best_epoch": self.best_epoch,
            "best_value": self.best_value,
            "epochs_trained": len(self.curve),
            "stopped_early": self.stopped_early,
            "curve": self.curve,
        }
        if write:
            atomic_write_json(folder / SELECTION_NAME, record, what="epoch selection")
        log.info(
            "fold %s: epoch %d of %d chosen on validation subjects %s (val/%s %.4f)",
            self.datamodule.fold.name,
            self.best_epoch,
            len(self.curve),
            ", ".join(self.datamodule.validation_subjects),
            self.monitor,
            self.best_value,
        )


class OracleEpochs(FoldWatch):
    """Predict the held-out subject after every epoch (a diagnostic of the leaky practice; see module)."""

    def __init__(self, datamodule) -> None:
        self.datamodule = _micro(datamodule)
        self.y_true: list[int] | None = None
        self.y_pred: list[list[int]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dm = self.datamodule
        y, probs = _predict(pl_module, dm, dm.test_idx, dm.test_features)
        self.y_true = y.tolist()
        self.y_pred.append(probs.argmax(1).tolist())

    def finish(self, module: L.LightningModule, folder: Path, write: bool = True) -> None:
        if not write:
            return
        record = {
            "label": ORACLE_LABEL,
            "fold": self.datamodule.fold.name,
            "index": list(self.datamodule.test_idx),
            "y_true": self.y_true,
            "y_pred_by_epoch": self.y_pred,
        }
        atomic_write_json(folder / ORACLE_EPOCHS_NAME, record, what="oracle-epoch diagnostic")


def inner_validation_subjects(train_subjects: Sequence[str], count: int | float, seed: int) -> list[str]:
    """`count` subjects (or that fraction, at least one) of a fold's training subjects, drawn with `seed`."""
    from datamodules.protocols import holdout_fold

    try:
        return sorted(holdout_fold(train_subjects, count, seed)[0].test_subjects)
    except ValueError as err:
        raise ValueError(str(err).replace("holdout test_subjects", "inner_validation.subjects")) from err


def watchers(datamodule, settings: Mapping) -> list[FoldWatch]:
    """The callbacks a fold's Trainer gets for `selection` and `diagnostics.oracle_epoch`."""
    out: list[FoldWatch] = []
    if settings.get("selection", "fixed") == "inner":
        inner = settings.get("inner_validation") or {}
        out.append(InnerSelection(datamodule, inner.get("monitor", "loss"), inner.get("patience")))
    if (settings.get("diagnostics") or {}).get("oracle_epoch") and _micro(datamodule).test_idx:
        out.append(OracleEpochs(datamodule))
    return out
