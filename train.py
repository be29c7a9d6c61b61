"""Train an experiment under its protocol, fold by fold, then pool the predictions and report.

    python train.py                                  # default: STSTNet, synthetic database, LOSO
    python train.py experiment=off_apexnet           # another recipe
    python train.py fold=3 trainer.max_epochs=5      # one fold, short schedule
    python train.py run_dir=runs/my_run              # rerun: finished folds are skipped

The held-out subject never selects anything: each fold trains a fixed schedule and is then tested once.
The last line printed is `run dir: PATH`.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

# Before any heavy import: no update checks or hub look-ups at run time.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

log = logging.getLogger("merlin.train")

# Settings that cannot change a prediction: left out of the experiment's fingerprint, so a run can be resumed
# with another logger, device or progress display.
VOLATILE_SETTINGS = (
    "run_dir",
    "fold",
    "logger",
    "progress",
    "cache_dir",
    "feature_workers",
    "experiment_name",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.enable_progress_bar",
    "datamodule.num_workers",
)


def result_settings(cfg: DictConfig) -> dict:
    settings = OmegaConf.to_container(cfg, resolve=True)
    for dotted in VOLATILE_SETTINGS:
        node = settings
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(leaf, None)
    return settings


def run(cfg: DictConfig) -> Path:
    from hydra.utils import instantiate

    from datamodules.augment import FlowAugment
    from datamodules.datamodule import MERDataModule, build_feature_set
    from datamodules.protocols import label_map, make_folds
    from evaluation.reports import format_table, write_reports
    from models.classifier import MERClassifier
    from training.loggers import log_summary, make_loggers
    from training.loop import FoldFactories, train_folds
    from training.rundir import prepare_run_dir

    settings = result_settings(cfg)
    labels = label_map(cfg.data.label_map)
    read = instantiate(cfg.data.reader)  # a datamodules.readers.base.ReadResult
    samples = read.samples
    if read.report.repairs or read.report.drops:
        log.info(
            "%s: %d samples read, %d repaired, %d dropped (see python -m datamodules.check data=%s)",
            cfg.data.name,
            len(samples),
            len(read.report.repairs),
            len(read.report.drops),
            cfg.data.name,
        )
    spec = instantiate(cfg.features)
    features = build_feature_set(
        samples, labels, spec, cache_dir=cfg.cache_dir, progress=cfg.progress, workers=cfg.feature_workers
    )
    for exclusion in features.exclusions:
        log.debug("excluded %s: %s", exclusion.sample_id, exclusion.reason)
    folds = make_folds(cfg.data.protocol, features.subjects, features.datasets)
    log.info(
        "%s: %d samples (%d excluded by the %s label map), %d subjects, %d folds, features %s",
        cfg.data.name,
        len(features),
        len(features.exclusions),
        labels.name,
        len(set(features.subjects)),
        len(folds),
        "x".join(str(s) for s in features.x.shape[1:]),
    )
    run_dir = prepare_run_dir(cfg.run_dir, cfg.experiment_name, settings, features.classes, folds)
    run_name = f"{cfg.experiment_name}-{run_dir.name}"
    flat_config = OmegaConf.to_container(cfg, resolve=True)
    dm_cfg = cfg.datamodule
    augment = FlowAugment(spec.channels, **dm_cfg.augment)

    def datamodule(k: int) -> MERDataModule:
        return MERDataModule(
            features,
            folds,
            k,
            batch_size=dm_cfg.batch_size,
            normalize=dm_cfg.normalize,
            standardize=dm_cfg.standardize,
            augment=augment if augment.active else None,
            num_workers=dm_cfg.num_workers,
            seed=cfg.seed + k,
        )

    def model(dm: MERDataModule) -> MERClassifier:
        net = instantiate(cfg.model.net, num_classes=len(features.classes), in_chans=len(spec.channels))
        loss = instantiate(cfg.model.loss)(class_counts=dm.train_class_counts)
        scheduler = instantiate(cfg.model.scheduler) if cfg.model.get("scheduler") else None
        return MERClassifier(net, loss, instantiate(cfg.model.optimizer), scheduler, features.classes)

    def loggers(fold):
        return make_loggers(
            cfg.logger.kind,
            run_dir,
            run_name,
            fold.name,
            config=flat_config,
            project=cfg.logger.get("project", "merlin"),
            entity=cfg.logger.get("entity"),
            mode=cfg.logger.get("mode", "auto"),
        )

    def trainer(fold_loggers: list, callbacks: list):
        return instantiate(cfg.trainer, logger=fold_loggers or False, callbacks=callbacks)

    only = None if cfg.fold is None else [int(cfg.fold)]
    train_folds(
        features,
        folds,
        run_dir,
        FoldFactories(datamodule, model, loggers, trainer),
        seed=cfg.seed,
        only=only,
        progress=cfg.progress,
    )
    summary = write_reports(run_dir)
    if not summary["folds_missing"]:
        log_summary(
            cfg.logger.kind,
            run_dir,
            run_name,
            summary,
            run_dir / "confusion_matrix.png",
            config=flat_config,
            project=cfg.logger.get("project", "merlin"),
            entity=cfg.logger.get("entity"),
            mode=cfg.logger.get("mode", "auto"),
        )
    print(format_table(summary))
    return run_dir


@hydra.main(config_path="configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from datamodules.samples import SampleError
    from training.rundir import RunDirError

    try:
        run_dir = run(cfg)
    except (RunDirError, SampleError, FileNotFoundError, ValueError) as err:
        if os.environ.get("MERLIN_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"run dir: {run_dir}")


if __name__ == "__main__":
    main()
