"""Fold-parallel LOSO (`loso.strategy=parallel`): the fold models of an experiment trained as one model.

A LOSO run trains one small model per subject on almost the same data; trained one after another, each step
of a shallow network is too small to use the machine (../shared/specs/stack.md). Here the K unfinished folds
train together, on shared minibatches of all samples:
- each fold starts from the weights sequential mode would give it: its model is built by the same factory
  after the same `seed + k` seeding;
- a sample trains the folds whose training subjects include it and no other: `weights` (N, K) is 0 for a
  fold's held-out subject, which the stacked network leaves out of that fold's batch statistics and the loss
  leaves out of that fold's loss (tests poison those rows and check the fold's weights);
- one optimizer step updates every fold. The optimizers allowed are elementwise (Adam, SGD, ...), for which
  one optimizer over the stacked parameters is K independent optimizers;
- the batch order and dropout draws are a function of the run's seed only, so a fold's weights do not depend
  on which other folds are trained with it (a resumed run trains the missing folds the same way).
The whole input tensor lives on the device; a batch is an index gather (no DataLoader per fold).

Then each fold is finished as in sequential mode (training.loop.finish_fold): its weights go back into its
own LightningModule, its held-out subject is tested by its own Trainer, its predictions and checkpoint are
written, and its loggers get its training curve (per-fold loss and accuracy by epoch) before its test
metrics.

A network joins by declaring `fold_stack(nets, dropout_seed=...)`, returning a module whose forward takes
(x, weights) and returns (N, K, classes) logits, with `fold_state_dict(k)` giving fold k's weights under the
network's own keys (models.stacked_ststnet). Anything parallel mode cannot reproduce (a recipe other than the
plain classifier, augmentation, per-fold input statistics, several inputs, a non-elementwise optimizer) is
refused with the reason, never silently run another way.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from datamodules.datamodule import EpochShuffle, FeatureSet, MERDataModule
from datamodules.protocols import Fold
from losses import CrossEntropyLoss

log = logging.getLogger(__name__)

# Optimizers whose update of a parameter element depends on that element's gradient history only.
ELEMENTWISE_OPTIMIZERS = ("SGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "RMSprop", "Adagrad")
DROPOUT_SEED_OFFSET = 7919  # the stack's dropout stream, apart from the batch-order stream (the run's seed)
# While a stack trains, its whole training state is kept here (at most every RESUME_EVERY_S, at an epoch's
# end), so a rerun after a crash continues from that epoch; removed once every fold is written.
RESUME_NAME = "fold_stack_resume.ckpt"
RESUME_EVERY_S = 60.0


class FoldParallelError(ValueError):
    """This experiment cannot run with loso.strategy=parallel; the message says why and what to use."""


def unsupported(module: L.LightningModule, datamodule, trainer_cfg: Mapping | None = None) -> str | None:
    """Why fold k's parts cannot join a fold-parallel run, or None when they can."""
    from models.classifier import MERClassifier

    net = getattr(module, "net", None)
    if type(module) is not MERClassifier:
        return f"the {type(module).__name__} recipe trains its folds one at a time"
    if not callable(getattr(net, "fold_stack", None)):
        return f"{type(net).__name__} has no fold-parallel form (a `fold_stack`)"
    if module.au_loss_weight > 0 or hasattr(net, "training_logits"):
        return f"{type(net).__name__}'s AU or staged loss trains its folds one at a time"
    if (
        module.param_groups is not None
        or module.frozen_norms
        or not all(p.requires_grad for p in net.parameters())
    ):
        return "model.head_lr / model.freeze train parts of the network apart"
    if type(datamodule) is not MERDataModule:
        return f"{type(datamodule).__name__} (a second data source) is not supported"
    if len(datamodule.inputs) != 1:
        return "networks of several named inputs are not supported"
    if datamodule.poison_test:
        # One fold's held-out rows are the other folds' training rows in a shared batch: the canary runs each
        # fold alone (the stack's own proof is tests/test_fold_parallel.py's poisoned-rows test).
        return "guard.poison_test poisons each fold's held-out rows, which the other folds train on"
    if not isinstance(datamodule.features.inputs[datamodule.inputs[0]], (torch.Tensor, np.ndarray)):
        return "an input streamed from disk (datamodule.stream_over_mb) is not supported"
    standardize = sorted({m for m in datamodule.standardize.values() if m != "none"})
    if standardize:
        return (
            f"datamodule.standardize={standardize[0]} fits statistics per fold; the folds share batches here"
        )
    if any(a is not None for a in datamodule.augment.values()):
        return "augmentation draws per fold batch; the folds share batches here"
    if datamodule.fold_transforms or datamodule.generative_augment is not None:
        return "a transform learned per fold (datamodule.fold_transforms, au_generative) is not supported"
    optimizer = getattr(module.optimizer_factory, "func", module.optimizer_factory)
    if getattr(optimizer, "__name__", "") not in ELEMENTWISE_OPTIMIZERS:
        return (
            f"optimizer {getattr(optimizer, '__name__', optimizer)} is not known to update each parameter "
            f"element on its own (supported: {', '.join(ELEMENTWISE_OPTIMIZERS)})"
        )
    scheduler = getattr(module.scheduler_factory, "func", module.scheduler_factory)
    if scheduler is not None and "Plateau" in getattr(scheduler, "__name__", ""):
        return "a scheduler that watches a metric would watch all folds at once"
    trainer_cfg = trainer_cfg or {}
    devices = trainer_cfg.get("devices", 1)
    if devices not in (1, "1", [0]) or "ddp" in str(trainer_cfg.get("strategy", "")):
        return "several devices (DDP) are not supported"
    # Clipping by the norm of all stacked parameters would couple the folds.
    if trainer_cfg.get("gradient_clip_val") not in (None, 0):
        return "trainer.gradient_clip_val is not supported"
    if trainer_cfg.get("accumulate_grad_batches") not in (None, 1):
        return "trainer.accumulate_grad_batches is not supported"
    return None


class FoldParallelModule(L.LightningModule):
    """K folds' networks as one stack, trained on index batches of the shared input."""

    def __init__(
        self,
        stack: nn.Module,
        losses: Sequence[nn.Module],
        optimizer,
        scheduler,
        x: torch.Tensor,
        y: torch.Tensor,
        weights: torch.Tensor,
        order_generator: torch.Generator | None = None,
        fold_ids: Sequence[int] = (),
        resume_path: Path | None = None,
    ) -> None:
        super().__init__()
        self.stack = stack
        # The batch order's stream (the loader's sampler draws from it) and which folds these are: both are
        # kept in the resume state, so a resumed stack draws the batches an uninterrupted one would.
        self.order_generator = order_generator or torch.Generator()
        self.fold_ids = tuple(fold_ids)
        self.resume_path = resume_path
        self._last_resume_save = time.monotonic()
        self.losses = nn.ModuleList(losses)
        self._shared_cross_entropy = all(
            type(loss) is CrossEntropyLoss
            and loss.weight is None
            and loss.label_smoothing == losses[0].label_smoothing
            for loss in losses
        )
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        # Non-persistent buffers: they follow the module to the device and stay out of any checkpoint.
        self.register_buffer("x", x, persistent=False)
        self.register_buffer("y", y, persistent=False)
        self.register_buffer("weights", weights, persistent=False)
        k = weights.shape[1]
        self.register_buffer("_loss_sum", torch.zeros(k, dtype=torch.float64), persistent=False)
        self.register_buffer("_correct", torch.zeros(k, dtype=torch.float64), persistent=False)
        self.register_buffer("_rows", torch.zeros(k, dtype=torch.float64), persistent=False)
        self.history: list[dict[str, list[float]]] = [{"loss": [], "acc": []} for _ in range(k)]

    def training_step(self, rows: torch.Tensor, batch_idx: int) -> torch.Tensor:
        rows = rows.to(self.x.device)
        weights = self.weights[rows]
        logits = self.stack(self.x[rows], weights)
        y = self.y[rows]
        fold_losses = self._fold_losses(logits, y, weights)
        with torch.no_grad():
            counts = weights.sum(0).double()
            self._loss_sum += fold_losses.double() * counts
            self._correct += ((logits.argmax(2) == y[:, None]) * weights).sum(0).double()
            self._rows += counts
        # The sum of the folds' losses: each fold's parameters get exactly their own loss's gradient.
        total = fold_losses.sum()
        self.log("train/loss_sum", total, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(rows))
        return total

    def _fold_losses(self, logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """(K,) each fold's loss over its own rows of the batch (0 for a fold without rows).

        When every fold's loss is MERLin's unweighted CrossEntropyLoss (the paper recipes), one
        cross-entropy over all (sample, fold) pairs is averaged per fold over the fold's rows, which is what
        the loss's mean reduction computes; any other loss is called per fold on the fold's rows."""
        if self._shared_cross_entropy:
            k, classes = logits.shape[1], logits.shape[2]
            per_pair = F.cross_entropy(
                logits.float().reshape(-1, classes),
                y.repeat_interleave(k),
                reduction="none",
                label_smoothing=self.losses[0].label_smoothing,
            ).view(-1, k)
            return (per_pair * weights).sum(0) / weights.sum(0).clamp_min(1.0)
        out = []
        for k, loss in enumerate(self.losses):
            mine = weights[:, k].nonzero().squeeze(1)
            out.append(loss(logits[mine, k], y[mine]) if mine.numel() else logits.new_zeros(()))
        return torch.stack(out)

    def on_train_epoch_end(self) -> None:
        rows = self._rows.clamp_min(1)
        losses, accuracies = (self._loss_sum / rows).tolist(), (self._correct / rows).tolist()
        for k, history in enumerate(self.history):
            history["loss"].append(losses[k])
            history["acc"].append(accuracies[k])
        for buffer in (self._loss_sum, self._correct, self._rows):
            buffer.zero_()
        self._keep_resume_state()

    def _keep_resume_state(self) -> None:
        """Write the training state (Lightning's checkpoint of this module, its optimizer and loops, plus
        the streams and curves of `on_save_checkpoint`) atomically, if due; never after the last epoch."""
        trainer = self.trainer
        if self.resume_path is None or trainer.current_epoch + 1 >= trainer.max_epochs:
            return
        if time.monotonic() - self._last_resume_save < RESUME_EVERY_S:
            return
        partial = self.resume_path.with_name(self.resume_path.name + ".partial")
        trainer.save_checkpoint(partial)
        os.replace(partial, self.resume_path)
        self._last_resume_save = time.monotonic()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        generator = self.stack._dropout_generator(self.x.device)
        checkpoint["merlin_stack"] = {
            "folds": list(self.fold_ids),
            "history": self.history,
            "order_state": self.order_generator.get_state(),
            "dropout_state": None if generator is None else generator.get_state().cpu(),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint["merlin_stack"]
        self.history = state["history"]
        self.order_generator.set_state(state["order_state"])
        generator = self.stack._dropout_generator(self.x.device)
        if generator is not None and state["dropout_state"] is not None:
            generator.set_state(state["dropout_state"])

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.stack.parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer)}}


def shared_input(features: FeatureSet, parts: Sequence[tuple[int, MERDataModule, object]]) -> torch.Tensor:
    """The network input of every sample, the same for every fold: per-sample normalisation only
    (`unsupported` refuses standardisation fitted per fold)."""
    name = parts[0][1].inputs[0]
    return parts[0][1].transform(torch.as_tensor(features.inputs[name]).float(), train=False, name=name)


def train_stack(
    features: FeatureSet,
    parts: Sequence[tuple[int, MERDataModule, L.LightningModule]],
    build,
    seed: int,
    callbacks: Sequence = (),
    run_dir: Path | None = None,
) -> tuple[FoldParallelModule, L.Trainer]:
    """Train the folds of `parts` ((k, datamodule, module) each, built and seeded as in sequential mode)
    together. Returns the trained stack module and its Trainer. With `run_dir`, the training state is kept
    in RUN_DIR/RESUME_NAME while it runs, and a state left there by a crashed run of the same folds is
    resumed."""
    first = parts[0][2]
    x = shared_input(features, parts)
    n = len(features)
    weights = torch.zeros(n, len(parts))
    for j, (_, dm, _) in enumerate(parts):
        weights[torch.as_tensor(dm.train_idx, dtype=torch.long), j] = 1.0
    stack = first.net.fold_stack([m.net for _, _, m in parts], dropout_seed=seed + DROPOUT_SEED_OFFSET)
    # One permutation of all samples per epoch, from the run's seed: the same whichever folds train here.
    order_generator = torch.Generator().manual_seed(seed)
    resume_path = None if run_dir is None else Path(run_dir) / RESUME_NAME
    fold_ids = [k for k, _, _ in parts]
    module = FoldParallelModule(
        stack,
        [m.loss for _, _, m in parts],
        first.optimizer_factory,
        first.scheduler_factory,
        x,
        features.y.long(),
        weights,
        order_generator,
        fold_ids,
        resume_path,
    )
    loader = DataLoader(
        torch.arange(n), batch_size=parts[0][1].batch_size, sampler=EpochShuffle(n, order_generator)
    )
    L.seed_everything(seed, workers=True, verbose=False)
    trainer = build.trainer([], list(callbacks))
    start = time.perf_counter()
    ckpt_path = resumable(resume_path, fold_ids)
    trainer.fit(module, train_dataloaders=loader, ckpt_path=ckpt_path, weights_only=True)
    log.info(
        "%d folds trained together in %.1f s (%d epochs, %d steps)",
        len(parts),
        time.perf_counter() - start,
        trainer.current_epoch,
        trainer.global_step,
    )
    return module, trainer


def resumable(path: Path | None, fold_ids: Sequence[int]) -> Path | None:
    """`path` when it holds the resume state of a stack of exactly these folds, else None (a state of other
    folds, or one that cannot be read, is left alone and training starts from epoch 0)."""
    if path is None or not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["merlin_stack"]
    except Exception as err:  # torn or foreign: start over rather than trust it
        log.warning("ignoring %s: %s", path, err)
        return None
    if state["folds"] != list(fold_ids):
        log.info("ignoring %s: it holds folds %s, this run trains %s", path, state["folds"], list(fold_ids))
        return None
    log.info("resuming the fold stack from %s (epoch %d done)", path, len(state["history"][0]["loss"]))
    return path


class StackProgress(L.Callback):
    """Shows the stack's epoch on the fold progress bar."""

    def __init__(self, bar, count: int) -> None:
        self.bar, self.count = bar, count

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.bar is not None:
            text = f"{self.count} folds together, epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
            self.bar.set_postfix_str(text, refresh=True)


def build_parts(features, folds: Sequence[Fold], todo: Sequence[int], build, seed: int, trainer_cfg=None):
    """Each fold's datamodule and LightningModule, seeded as sequential mode seeds them; refuses a fold
    parallel mode cannot train."""
    parts = []
    for k in todo:
        L.seed_everything(seed + k, workers=True, verbose=False)
        datamodule = build.datamodule(k)
        datamodule.setup("fit")
        module = build.model(datamodule)
        reason = unsupported(module, datamodule, trainer_cfg)
        if reason is not None:
            raise FoldParallelError(f"loso.strategy=parallel: {reason}; use loso.strategy=sequential")
        parts.append((k, datamodule, module))
    return parts
