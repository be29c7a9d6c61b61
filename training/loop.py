"""The fold loop: train each fold of a protocol with a fixed schedule and write its predictions.

Each fold is seeded with `seed + fold index` before anything random is built, so a fold's result does not
depend on which folds ran before it in the same process: a run resumed after a crash pools to exactly the
numbers an uninterrupted run gives. When a fold finishes it keeps its final weights (training.checkpoints:
`fold_{k}/last.ckpt`, or `last.ckpt` for the one model of a hold-out or all-subjects run) with the subjects
they were trained on, then its predictions, atomically, with a record of what made them: the predictions are
the fold's commit mark, written last. A rerun into the same run directory skips the folds whose file and
record agree with this experiment and trains again any other (a file that lost rows, a torn file, one
without its record, a checkpoint left without predictions); a fold that holds no subject out (protocol
`all`) is finished when its checkpoint is. Under DDP every rank
trains and tests; only the primary one writes.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as L
import pandas as pd
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from datamodules.datamodule import FeatureSet, MERDataModule
from datamodules.protocols import Fold
from evaluation.oracle import ORACLE_EPOCHS_NAME
from evaluation.predictions import fold_path, fold_problem, write_fold_predictions
from training.checkpoints import (
    CheckpointError,
    checkpoint_path,
    encode_checkpoint,
    provenance,
    read_provenance,
    write_checkpoint,
)
from training.guard import fit_guarded
from training.interrupt import RunInterrupted
from training.loggers import close_loggers
from training.pipeline import pipeline_record
from training.selection import SELECTION_NAME
from utils.atomic import atomic_write_json

log = logging.getLogger(__name__)

INIT_REPORT_NAME = "init_report.json"  # beside the fold's checkpoint: what model.init_from loaded
WATCH_FILES = (SELECTION_NAME, ORACLE_EPOCHS_NAME)  # training.selection's records beside it


@dataclass
class FoldFactories:
    """How to build each fold's parts; train.py makes these from the config."""

    datamodule: Callable[[int], MERDataModule]
    model: Callable[[MERDataModule], L.LightningModule]
    loggers: Callable[[Fold], list]
    trainer: Callable[[list, list], L.Trainer]  # (loggers, callbacks) -> Trainer
    # Per-fold watchers of its training (training.selection: inner validation, the oracle diagnostic):
    # callbacks of the fold's Trainer, then `finish(model, folder, write)` after fit, before the test.
    watchers: Callable[[MERDataModule], list] | None = None


def quiet_lightning() -> None:
    """Silence Lightning's per-Trainer banners and hints that would repeat once per fold."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    # Lightning 2.6 on torch 2.14 warns from its own pytree helper on every fit; nothing a user can change.
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")
    warnings.filterwarnings("ignore", message=".*`training_step` returns `None`.*")
    warnings.filterwarnings("ignore", message=".*defined a `validation_step` but have no `val_dataloader`.*")
    # DDP: every rank gathers all test predictions and drops the sampler's repeats (MERClassifier), so the
    # test metrics are already the whole held-out subject's on every rank.
    warnings.filterwarnings("ignore", message=".*Using `DistributedSampler` with the dataloaders.*")
    warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed setting.*")
    warnings.filterwarnings("ignore", message=".*torch.distributed.nn.functional.all_gather is deprecated.*")


def fold_predictions(features: FeatureSet, fold: Fold, predictions: dict) -> pd.DataFrame:
    """Per-sample rows of one fold: ids, truth, prediction and one probability column per class."""
    index = predictions["index"]
    frame = pd.DataFrame(
        {
            "sample_id": [features.sample_ids[i] for i in index],
            "subject": [features.subjects[i] for i in index],
            "dataset": [features.datasets[i] for i in index],
            "clip": [features.clips[i] for i in index],
            "fold": fold.index,
            "y_true": predictions["y_true"].astype(int),
            "y_pred": predictions["y_pred"].astype(int),
        }
    )
    for c, name in enumerate(features.classes):
        frame[f"p_{name}"] = predictions["probs"][:, c]
    return frame


class _FoldProgress(L.Callback):
    """Shows the running fold's epoch and loss on the fold progress bar."""

    def __init__(self, bar, fold: Fold) -> None:
        self.bar, self.fold = bar, fold

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.bar is None:
            return
        loss = trainer.callback_metrics.get("train/loss")
        text = f"{self.fold.name} epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
        if loss is not None:
            text += f" loss {float(loss):.3f}"
        self.bar.set_postfix_str(text, refresh=False)


def train_subjects_of(features: FeatureSet, datamodule: MERDataModule) -> list[str]:
    """Every subject whose samples a fold's model is fitted on (its checkpoint's provenance)."""
    extra = getattr(datamodule, "extra_train_subjects", ())  # e.g. a macro source in every training set
    # selection=inner: the validation subjects chose the weights, so a later run must count them as seen.
    chose = getattr(datamodule, "validation_subjects", ())
    return sorted({features.subjects[i] for i in datamodule.train_idx} | set(extra) | set(chose))


def train_fold(
    features: FeatureSet,
    folds: Sequence[Fold],
    k: int,
    run_dir: Path,
    build: FoldFactories,
    seed: int,
    bar=None,
    identity: Mapping | None = None,
    experiment: str = "",
) -> pd.DataFrame | None:
    """Train fold k, test it on its held-out subjects, write its checkpoint (training.checkpoints), then
    its predictions. A fold without test subjects (protocol `all`) writes only the checkpoint and
    returns None."""
    fold = folds[k]
    log.info("fold %s (%d of %d): training", fold.name, k + 1, len(folds))
    try:
        return _train_fold(features, folds, k, run_dir, build, seed, bar, identity, experiment)
    except RunInterrupted as stop:
        # From the line above on, an interruption is this fold's, even while its parts are being built.
        stop.fold = stop.fold or fold.name
        raise


def _train_fold(features, folds, k, run_dir, build, seed, bar, identity, experiment) -> pd.DataFrame | None:
    fold = folds[k]
    start = time.perf_counter()
    L.seed_everything(seed + k, workers=True, verbose=False)
    datamodule = build.datamodule(k)
    datamodule.setup("fit")
    model = build.model(datamodule)
    write_init_report(model, run_dir, folds, k)
    loggers = build.loggers(fold)
    failed = True
    try:
        if getattr(model, "closed_form", False):  # an SVM: fitted once, no Trainer (training.closed_form)
            from training.closed_form import fit_fold

            frame = fit_fold(model, datamodule, features, folds, k, run_dir, identity, experiment, loggers)
            log.info("fold %s: fitted and tested in %.1f s", fold.name, time.perf_counter() - start)
            failed = False
            return frame
        watchers = build.watchers(datamodule) if build.watchers is not None else []
        folder = checkpoint_path(run_dir, k, folds).parent
        for name in WATCH_FILES:  # a retrained fold's old selection or oracle record is not this one's
            (folder / name).unlink(missing_ok=True)
        trainer = build.trainer(loggers, [_FoldProgress(bar, fold), *watchers])
        if getattr(datamodule, "poison_test", False):
            fit_guarded(trainer, model, datamodule, fold.name)
        else:
            trainer.fit(model, datamodule=datamodule)
        for watcher in watchers:
            watcher.finish(model, folder, write=trainer.is_global_zero)
        frame = finish_fold(trainer, model, datamodule, features, folds, k, run_dir, identity, experiment)
        log.info("fold %s: trained and tested in %.1f s", fold.name, time.perf_counter() - start)
        failed = False
        return frame
    finally:
        close_loggers(loggers, failed=failed)


def write_init_report(model: L.LightningModule, run_dir: Path, folds: Sequence[Fold], k: int) -> None:
    """What model.init_from loaded into fold k (models.finetune.InitReport), beside its checkpoint."""
    init_report = getattr(model, "init_report", None)
    if init_report is not None and rank_zero_only.rank == 0:
        log.log(logging.WARNING if init_report.overlap else logging.INFO, "%s", init_report)
        atomic_write_json(
            checkpoint_path(run_dir, k, folds).parent / INIT_REPORT_NAME,
            init_report.as_dict(),
            what="initialisation report",
        )


def finish_fold(
    trainer: L.Trainer,
    model: L.LightningModule,
    datamodule,
    features: FeatureSet,
    folds: Sequence[Fold],
    k: int,
    run_dir: Path,
    identity: Mapping | None,
    experiment: str,
    progress: tuple[int, int] | None = None,
) -> pd.DataFrame | None:
    """Test trained fold k on its held-out subjects with `trainer`, write its checkpoint, then its
    predictions. progress: (epochs, optimizer steps) of a model trained by another Trainer (fold-parallel).

    The predictions file is the fold's commit mark (a rerun skips a fold whose predictions and record
    agree), so it is written last: a process killed between the two writes leaves a checkpoint without
    predictions, and the fold is trained again, never a finished fold without its weights."""
    fold = folds[k]
    frame = None
    if fold.test_subjects:
        trainer.test(model, datamodule=datamodule, verbose=False)
    if not trainer.is_global_zero:
        return None
    _keep_checkpoint(trainer, features, folds, k, run_dir, datamodule, identity, experiment, progress)
    if fold.test_subjects:
        frame = fold_predictions(features, fold, model.test_predictions)
        fold_identity = None if identity is None else {**identity, **_fold_entry(fold)}
        write_fold_predictions(run_dir, k, frame, fold_identity)
    return frame


def _keep_checkpoint(
    trainer: L.Trainer,
    features: FeatureSet,
    folds: Sequence[Fold],
    k: int,
    run_dir: Path,
    datamodule: MERDataModule,
    identity: Mapping | None,
    experiment: str,
    progress: tuple[int, int] | None = None,
) -> Path:
    """Write fold k's final weights (no optimizer state) with their provenance, after its predictions."""
    # The weights-only dump is what `trainer.save_checkpoint(weights_only=True)` writes, taken as a dict so
    # that it goes through the atomic writer (a reader never sees a torn checkpoint) and carries the record.
    checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=True)
    if progress is not None:  # trained by the fold-parallel stack's Trainer, tested by this one
        checkpoint["epoch"], checkpoint["global_step"] = progress
    model = trainer.lightning_module
    checkpoint["merlin"] = provenance(
        folds[k],
        train_subjects_of(features, datamodule),
        identity,
        experiment=experiment,
        inputs=getattr(model, "inputs", ()),
        net=getattr(model, "net_config", None),
    )
    pipeline = pipeline_record(getattr(model, "pipeline_config", None), datamodule)
    if pipeline is not None:
        checkpoint["merlin"]["pipeline"] = pipeline
    path = checkpoint_path(run_dir, k, folds)
    write_checkpoint(path, encode_checkpoint(checkpoint))
    return path


def _fold_entry(fold: Fold) -> dict:
    return {"name": fold.name, "test_subjects": sorted(fold.test_subjects)}


def _checkpoint_done(run_dir: Path, folds: Sequence[Fold], k: int, identity: Mapping | None) -> str | None:
    """For a fold without test subjects (protocol `all`, whose only output is its checkpoint): None when
    its checkpoint exists and was written by this experiment on this data, else why not."""
    path = checkpoint_path(run_dir, k, folds)
    if not path.is_file():
        return "no checkpoint"
    try:
        entry = read_provenance(path) or {}
    except CheckpointError as err:
        return str(err)
    if identity is not None:
        for key in ("fingerprint", "data_fingerprint"):
            if entry.get(key) != identity.get(key):
                return f"{path} was written by another experiment or on other data ({key} differs)"
    return None


def trusted_folds(
    run_dir: Path, folds: Sequence[Fold], identity: Mapping | None, wanted: Sequence[int]
) -> tuple[set[int], dict[int, str]]:
    """(finished folds to skip, {fold: why its file cannot be trusted}) among `wanted`.

    identity: run_identity of the run (rundir.run_identity); None trusts any predictions file (the
    behaviour before fold records, for callers without a run.json).
    """
    done: set[int] = set()
    untrusted: dict[int, str] = {}
    for k in wanted:
        if not folds[k].test_subjects:
            problem = _checkpoint_done(run_dir, folds, k, identity)
            if problem is None:
                done.add(k)
            elif problem != "no checkpoint":
                untrusted[k] = problem
            continue
        if not fold_path(run_dir, k).is_file():
            continue
        problem = (
            None if identity is None else fold_problem(run_dir, k, {**identity, **_fold_entry(folds[k])})
        )
        if problem is None:
            done.add(k)
        else:
            untrusted[k] = problem
    return done, untrusted


def train_folds(
    features: FeatureSet,
    folds: Sequence[Fold],
    run_dir: str | Path,
    build: FoldFactories,
    seed: int = 0,
    only: Sequence[int] | None = None,
    progress: bool = True,
    identity: Mapping | None = None,
    experiment: str = "",
    strategy: str = "sequential",
    trainer_config: Mapping | None = None,
) -> list[int]:
    """Train the folds not yet finished in `run_dir` (all, or those in `only`). Returns the folds trained.

    identity: the run's identity (training.rundir.run_identity), written into each fold's record and
    checked against the records of the folds already there; a fold whose file does not match is retrained.
    strategy: "sequential" (one fold after another) or "parallel" (the unfinished folds trained together,
    training.fold_parallel; trainer_config is checked for settings it cannot honour).

    Several processes may train into one run directory at once (cluster jobs, training.claims): each fold
    is claimed before it trains (RUN_DIR/claims/fold_NNN.json), a fold another live process holds is
    skipped with a log line naming it, and the claim is removed when the fold is written or the process
    ends by an exception or a signal. Sequential mode claims a fold just before training it, so processes
    over the same folds share them out; the fold stack, and a DDP trainer (whose ranks must all train the
    same folds: a held fold is then an error), claim all their folds first. Only the primary rank claims.
    """
    if strategy not in ("sequential", "parallel"):
        raise ValueError(f"unknown fold strategy {strategy!r}; choose sequential or parallel")
    from contextlib import ExitStack

    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from training.claims import claim_folds, fold_claim, spans_processes

    run_dir = Path(run_dir)
    wanted = list(range(len(folds))) if only is None else list(only)
    for k in wanted:
        if not 0 <= k < len(folds):
            raise ValueError(f"fold {k} does not exist: this protocol has folds 0..{len(folds) - 1}")
    done, untrusted = trusted_folds(run_dir, folds, identity, wanted)
    for k, problem in untrusted.items():
        log.warning("fold %s is trained again: %s", folds[k].name, problem)
    todo = [k for k in wanted if k not in done]
    if len(todo) < len(wanted):
        log.info(
            "%d of %d folds already finished in %s; training the other %d",
            len(wanted) - len(todo),
            len(wanted),
            run_dir,
            len(todo),
        )
    quiet_lightning()

    def finished(k: int) -> bool:  # by another process, since `done` was read
        return k in trusted_folds(run_dir, folds, identity, [k])[0]

    primary = rank_zero_only.rank == 0
    ddp = spans_processes(trainer_config)
    upfront = primary and (strategy == "parallel" or ddp)
    trained: list[int] = []
    with ExitStack() as claims:
        if upfront and todo:
            names = {k: folds[k].name for k in todo}
            todo = claim_folds(claims, run_dir, names, finished, refuse_held=ddp)
        bar = tqdm(
            total=len(wanted),
            initial=len(wanted) - len(todo),
            desc="folds",
            unit="fold",
            disable=not progress,
            dynamic_ncols=True,
        )
        # Console log lines (a fold starting, a warning) are printed above the bar instead of through it.
        redirect = logging_redirect_tqdm() if progress else nullcontext()
        try:
            with redirect:
                if strategy == "parallel" and todo:
                    train_folds_together(
                        features, folds, todo, run_dir, build, seed, bar, identity, experiment, trainer_config
                    )
                    trained = list(todo)
                for k in todo if strategy == "sequential" else ():
                    claim_here = primary and not upfront
                    with fold_claim(run_dir, k, folds[k].name, finished, enabled=claim_here) as mine:
                        if mine:
                            train_fold(features, folds, k, run_dir, build, seed, bar, identity, experiment)
                            trained.append(k)
                    bar.update(1)
        finally:
            bar.close()
    return trained


def train_folds_together(
    features: FeatureSet,
    folds: Sequence[Fold],
    todo: Sequence[int],
    run_dir: Path,
    build: FoldFactories,
    seed: int,
    bar=None,
    identity: Mapping | None = None,
    experiment: str = "",
    trainer_config: Mapping | None = None,
) -> None:
    """Train the folds `todo` as one stacked model (training.fold_parallel), then finish each fold as
    sequential mode does: its own weights, test, predictions, checkpoint and loggers (with its curve)."""
    from training.fold_parallel import RESUME_NAME, StackProgress, build_parts, train_stack

    start = time.perf_counter()
    names = f"folds {folds[todo[0]].name} .. {folds[todo[-1]].name} ({len(todo)}, trained together)"
    log.info("%s: training (loso.strategy=parallel)", names)
    try:
        parts = build_parts(features, folds, todo, build, seed, trainer_config)
        for k, _, module in parts:
            write_init_report(module, run_dir, folds, k)
        progress = [StackProgress(bar, len(parts))]
        stack, stack_trainer = train_stack(features, parts, build, seed, progress, run_dir=run_dir)
    except RunInterrupted as stop:
        stop.fold = stop.fold or names
        raise
    epochs, steps = stack_trainer.current_epoch, stack_trainer.global_step
    steps_per_epoch = max(1, steps // max(1, epochs))
    trained = time.perf_counter() - start
    for j, (k, datamodule, module) in enumerate(parts):
        fold = folds[k]
        try:
            module.net.load_state_dict(stack.stack.fold_state_dict(j))
            loggers = build.loggers(fold)
            failed = True
            try:
                replay_curve(loggers, stack.history[j], steps_per_epoch)
                trainer = build.trainer(loggers, [])
                # The test metrics are logged after the replayed curve, not at step 0.
                trainer.fit_loop.epoch_loop._batches_that_stepped = steps
                progress = (epochs, steps)
                finish_fold(
                    trainer, module, datamodule, features, folds, k, run_dir, identity, experiment, progress
                )
                failed = False
            finally:
                close_loggers(loggers, failed=failed)
        except RunInterrupted as stop:
            stop.fold = stop.fold or fold.name
            raise
        if bar is not None:
            bar.update(1)
    (run_dir / RESUME_NAME).unlink(missing_ok=True)  # every fold is written: nothing left to resume
    log.info(
        "%s: trained in %.1f s, tested and written in %.1f s",
        names,
        trained,
        time.perf_counter() - start - trained,
    )


def replay_curve(loggers: list, history: Mapping[str, list[float]], steps_per_epoch: int) -> None:
    """A fold's per-epoch training loss and accuracy from the stack, logged as sequential mode logs them
    (train/loss and train/acc at each epoch's last step)."""
    for logger in loggers:
        for epoch, (loss, acc) in enumerate(zip(history["loss"], history["acc"], strict=True)):
            step = (epoch + 1) * steps_per_epoch - 1
            logger.log_metrics({"train/loss": loss, "train/acc": acc, "epoch": epoch}, step=step)
