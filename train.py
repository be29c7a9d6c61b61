"""Train an experiment under its protocol, fold by fold, then pool the predictions and report.

    python train.py                                  # default: STSTNet, synthetic database, LOSO
    python train.py experiment=off_apexnet           # another recipe
    python train.py fold=3 trainer.max_epochs=5      # one fold, short schedule
    python train.py run_dir=runs/my_run              # rerun: finished folds are skipped

The held-out subject never selects anything: each fold trains a fixed schedule and is then tested once.
Everything that can fail on the user's input (settings, data, features, the first fold's model, optimizer
and trainer) is checked before the run directory is claimed, so a refused or failed start leaves it as it
was. The last line printed is `run dir: PATH`. Exit status: 0 done, 2 a user error (one `error:` line),
143 / 130 killed by SIGTERM / SIGINT (the finished folds are kept; rerunning into run_dir resumes).
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

# Before any heavy import: no update checks or hub look-ups at run time.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from training.settings import SettingError, check_fold, check_settings  # noqa: E402
from training.settings import result_settings as _result_settings  # noqa: E402

log = logging.getLogger("merlin.train")
# The console lines that are not log records (results table, errors): also written to the run's train.log.
console = logging.getLogger("merlin.console")
console.propagate = False
console.addHandler(logging.NullHandler())

LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


def register_resolvers() -> None:
    """`${run_suffix:}` in the default run_dir: 4 random hex digits, so two runs started in the same second
    get two directories (the timestamp before it keeps them sorted by start time)."""
    if not OmegaConf.has_resolver("run_suffix"):
        OmegaConf.register_new_resolver("run_suffix", lambda: secrets.token_hex(2), use_cache=True)


register_resolvers()


RUN_DIR_ENV = "MERLIN_RUN_DIR"


def is_primary_process() -> bool:
    """False in the worker processes Lightning's DDP launcher starts (LOCAL_RANK > 0, or another node):
    only the primary process claims the run directory, logs to it and writes reports."""
    return (
        int(os.environ.get("LOCAL_RANK", "0") or 0) == 0 and int(os.environ.get("NODE_RANK", "0") or 0) == 0
    )


def result_settings(cfg: DictConfig) -> dict:
    """The resolved config without the settings that cannot change a prediction (the fingerprint's input)."""
    return _result_settings(OmegaConf.to_container(cfg, resolve=True))


class _Buffer(logging.Handler):
    """Holds the records logged before the run directory is claimed, to be written once it is."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class RunLog:
    """`train.log` of the claimed run directory: what the console shows, less the progress bars (every log
    record from the start of the run, the results table, any error line and the `run dir:` line).

    Records are held in memory until `open` (the claim): a refused run appends nothing to another run's log.
    """

    def __init__(self) -> None:
        self.handlers: list[logging.Handler] = []
        self.buffer = _Buffer()
        logging.getLogger().addHandler(self.buffer)
        console.addHandler(self.buffer)

    def open(self, run_dir: Path) -> None:
        if self.handlers:
            return
        from utils.atomic import WriteError

        path = run_dir / "train.log"
        try:
            records = logging.FileHandler(path, encoding="utf-8")
            lines = logging.FileHandler(path, encoding="utf-8")
        except OSError as err:
            raise WriteError(err.errno, err.strerror or str(err), str(path), "run log") from err
        records.setFormatter(logging.Formatter(LOG_FORMAT))
        lines.setFormatter(logging.Formatter("%(message)s"))
        self._detach(self.buffer)
        for record in self.buffer.records:
            # Only records that passed the level of their logger reached the buffer; write them as the
            # console showed them.
            (lines if record.name == console.name else records).handle(record)
        self.buffer.records.clear()
        logging.getLogger().addHandler(records)
        console.addHandler(lines)
        self.handlers = [records, lines]

    def _detach(self, handler: logging.Handler) -> None:
        logging.getLogger().removeHandler(handler)
        console.removeHandler(handler)

    def close(self) -> None:
        self._detach(self.buffer)
        for handler in self.handlers:
            self._detach(handler)
            handler.close()
        self.handlers = []

    def say(self, text: str, error: bool = False) -> None:
        print(text, file=sys.stderr if error else sys.stdout, flush=True)
        (console.error if error else console.info)(text)


def run(
    cfg: DictConfig,
    run_log: RunLog | None = None,
    on_claim: Callable[[Path], None] | None = None,
    wandb_group: str | None = None,
) -> Path:
    """Train every unfinished fold of the experiment `cfg` describes, write the reports, print the table.
    wandb_group: the W&B group of its runs (default: the run's own name)."""
    owns_log = run_log is None
    run_log = run_log or RunLog()
    try:
        return _run(cfg, run_log, on_claim, wandb_group)
    finally:
        if owns_log:
            run_log.close()


def run_seeds(cfg: DictConfig, run_log: RunLog, on_claim: Callable[[Path], None] | None = None) -> Path:
    """`seeds=[...]`: the experiment once per seed, each a complete run directory `run_dir/seed_N/`
    (resumable on its own), then mean +/- std over the seeds at the top (evaluation.seeds)."""
    from evaluation.predictions import EvaluationError
    from evaluation.seeds import (
        check_seeds_dir,
        claim_seeds_dir,
        format_seeds_table,
        seed_dir,
        write_seed_reports,
    )

    check_settings(OmegaConf.to_container(cfg, resolve=True))
    parent = Path(cfg.run_dir)
    try:  # before any seed's run directory is made inside it
        check_seeds_dir(parent, str(cfg.experiment_name))
    except EvaluationError as err:
        raise SettingError("seeds", list(cfg.seeds), str(err)) from err
    seeds = [int(s) for s in cfg.seeds]
    group = f"{cfg.experiment_name}-{parent.name}"
    run_log.close()  # the seeds' own logs take the records from here on (this one would only hold them)
    for i, seed in enumerate(seeds):
        sub = cfg.copy()
        sub.seed, sub.seeds, sub.run_dir = seed, None, str(seed_dir(parent, seed))

        def claim(run_dir: Path, sub: DictConfig = sub) -> None:
            claim_seeds_dir(parent, str(cfg.experiment_name), seeds)
            write_hydra_files(sub, run_dir)
            if on_claim is not None:
                on_claim(parent)

        sub_log = RunLog()  # each seed's train.log holds that seed's run
        log.info("seed %d (%d of %d): %s", seed, i + 1, len(seeds), sub.run_dir)
        try:
            run(sub, sub_log, claim, wandb_group=group)
        finally:
            sub_log.close()
    try:
        summary = write_seed_reports(parent, seeds)
    except EvaluationError as err:  # e.g. fold=k: every seed run is partial, so there is no mean yet
        run_log.say(f"no mean over seeds: {err}")
        return parent
    run_log.say(format_seeds_table(summary))
    return parent


def _run(
    cfg: DictConfig, run_log: RunLog, on_claim: Callable[[Path], None] | None, wandb_group: str | None
) -> Path:
    # Settings first: a bad value is refused in a second, before data, features or imports of Lightning.
    resolved = OmegaConf.to_container(cfg, resolve=True)
    check_settings(resolved)
    settings = _result_settings(resolved)
    from training.rundir import check_run_dir

    check_run_dir(cfg.run_dir, settings)  # another experiment's directory is refused before any work

    from hydra.utils import instantiate

    from datamodules.protocols import HOLDOUT, label_map, make_folds

    labels = label_map(cfg.data.label_map)
    read = instantiate(cfg.data.reader)  # a datamodules.readers.base.ReadResult
    # Heavy imports (Lightning, torch, OpenCV) only once the data could be read: a wrong path is quick.
    import torch

    from datamodules.augment import FlowAugment
    from datamodules.datamodule import MERDataModule
    from evaluation.predictions import finished_folds
    from evaluation.reports import format_table, write_reports
    from models.classifier import MERClassifier
    from models.finetune import frozen_norm_layers, parameter_groups
    from preprocessing.cache import sample_key
    from training.checkpoints import checkpoint_path, single_model
    from training.loggers import log_summary, make_loggers
    from training.loop import FoldFactories, quiet_lightning, train_folds
    from training.pipeline import pipeline_config
    from training.rundir import data_records, experiment_identity, prepare_run_dir
    from training.selection import watchers

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
    specs = feature_specs(cfg, instantiate)
    consumed = model_inputs(cfg, specs)
    action_units = cfg.datamodule.get("action_units")
    features = feature_set(
        cfg,
        samples,
        labels,
        specs,
        strict=bool(cfg.data.get("strict", False)),
        action_units=None if action_units is None else list(action_units),
    )
    for exclusion in features.exclusions:
        log.debug("excluded %s: %s", exclusion.sample_id, exclusion.reason)
    for _, reason in features.unreadable:
        log.warning("dropped %s (data.strict=true makes this an error)", reason)
    holdout = cfg.data.get("holdout") if cfg.data.protocol == HOLDOUT else None
    folds = make_folds(
        cfg.data.protocol,
        features.subjects,
        features.datasets,
        holdout=None if holdout is None else OmegaConf.to_container(holdout),
    )
    check_fold(cfg.fold, len(folds))
    macro, macro_records = macro_source(cfg, specs, features, instantiate)
    log.info(
        "%s: %d samples (%d excluded by the %s label map), %d subjects, %d folds, features %s",
        cfg.data.name,
        len(features),
        len(features.exclusions),
        labels.name,
        len(set(features.subjects)),
        len(folds),
        features.shapes(),
    )
    flat_config = OmegaConf.to_container(cfg, resolve=True)
    dm_cfg = cfg.datamodule
    augments = {name: FlowAugment(spec.channels, **dm_cfg.augment) for name, spec in specs.items()}
    augment = {name: a if a.active else None for name, a in augments.items()}
    normalize = (
        OmegaConf.to_container(dm_cfg.normalize)
        if OmegaConf.is_config(dm_cfg.normalize)
        else dm_cfg.normalize
    )
    standardize = (
        OmegaConf.to_container(dm_cfg.standardize)
        if OmegaConf.is_config(dm_cfg.standardize)
        else dm_cfg.standardize
    )
    in_chans = [len(specs[name].channels) for name in consumed]
    fold_transforms = _fold_transforms(dm_cfg)
    poison_test = bool((cfg.get("guard") or {}).get("poison_test", False))
    validation_subjects = _validation_subjects(cfg, features, folds)

    def datamodule(k: int) -> MERDataModule:
        micro = MERDataModule(
            features,
            folds,
            k,
            batch_size=dm_cfg.batch_size,
            normalize=normalize,
            standardize=standardize,
            augment=augment,
            num_workers=dm_cfg.num_workers,
            seed=cfg.seed + k,
            fold_transforms=fold_transforms,
            generative_augment=_generative_augment(dm_cfg, cfg.seed + k),
            poison_test=poison_test,
            validation_subjects=validation_subjects(k),
        )
        if macro is None:
            return micro
        from datamodules.paired import PairedDataModule
        from datamodules.protocols import all_subjects_fold

        # Every macro sample trains every fold; its own statistics, the micro fold's augmentation.
        source = MERDataModule(
            macro,
            all_subjects_fold(macro.subjects),
            0,
            batch_size=int(cfg.macro.get("batch_size") or dm_cfg.batch_size),
            normalize=normalize,
            standardize=standardize,
            augment=augment,
            num_workers=dm_cfg.num_workers,
            seed=cfg.seed + k + MACRO_SEED_OFFSET,
        )
        return PairedDataModule(micro, source)

    def model(dm: MERDataModule) -> MERClassifier:
        if str(cfg.model.get("recipe") or CLASSIFIER) == SVM_RECIPE:  # closed form: no network, no Trainer
            return _svm(cfg, features.classes, consumed, dm, specs, labels.name, normalize, standardize)
        # A network of one input gets its channel count; one of several inputs gets one count per input.
        chans = in_chans[0] if len(in_chans) == 1 else tuple(in_chans)
        # An AU graph network (AU-GACN) gets the AU list's length and its graph from this fold's training
        # subjects only.
        extra = {"num_aus": len(features.au_names)} if "num_aus" in cfg.model.net else {}
        net = instantiate(cfg.model.net, num_classes=len(features.classes), in_chans=chans, **extra)
        # Starting weights first, then what this fold learns from its data: a checkpoint's AU graph (fitted
        # on its own training subjects) is replaced by this fold's.
        init_report = _initialise(cfg, net, dm.fold, len(features.classes))
        if hasattr(net, "fit_adjacency"):
            if features.au is None:
                raise SettingError(
                    "datamodule.action_units", None, f"{type(net).__name__} needs an AU list for its AU graph"
                )
            rows = torch.as_tensor(dm.train_idx, dtype=torch.long)
            # dm.features: what fitting may see (under guard.poison_test, the held-out rows are NaN).
            net.fit_adjacency(dm.features.au[rows], dm.features.au_mask[rows])
        loss = instantiate(cfg.model.loss)(class_counts=dm.train_class_counts)
        scheduler = instantiate(cfg.model.scheduler) if cfg.model.get("scheduler") else None
        optimizer = instantiate(cfg.model.optimizer)
        head_lr = cfg.model.get("head_lr")
        recipe = str(cfg.model.get("recipe") or CLASSIFIER)
        if recipe == EMR_RECIPE:
            from models.domain_adversarial import EMRClassifier

            if macro is None:
                raise SettingError("macro", None, "the EMR recipe trains on a macro source: set macro.data")
            module = EMRClassifier(
                net, loss, optimizer, features.classes, consumed, **OmegaConf.to_container(cfg.model.emr)
            )
        elif recipe == DISTILL_RECIPE:
            from models.teacher_student import DistillationClassifier

            distill = OmegaConf.to_container(cfg.model.distill, resolve=True)
            teacher_cfg = distill.pop("teacher")
            teacher = _teacher(teacher_cfg, dm.fold, chans, features.classes, distill, instantiate)
            module = DistillationClassifier(
                net, loss, optimizer, teacher, scheduler, features.classes, consumed, **distill
            )
        elif recipe == CLASSIFIER:
            module = MERClassifier(
                net,
                loss,
                optimizer,
                scheduler,
                features.classes,
                inputs=consumed,
                au_loss_weight=float(cfg.model.get("au_loss_weight", 0.0)),
                param_groups=parameter_groups(net, None, head_lr, len(features.classes)),
                frozen_norms=frozen_norm_layers(net),
            )
        else:
            raise SettingError("model.recipe", recipe, f"expected one of {', '.join(RECIPES)}")
        if recipe != CLASSIFIER and (head_lr is not None or cfg.model.get("freeze")):
            key = "model.head_lr" if head_lr is not None else "model.freeze"
            raise SettingError(
                key, cfg.model.get(key.split(".")[1]), f"is the classifier recipe's, not {recipe}'s"
            )
        module.init_report = init_report
        # Kept in the fold checkpoint's provenance: the network can be rebuilt from the file alone.
        module.net_config = {
            **OmegaConf.to_container(cfg.model.net, resolve=True),
            "num_classes": len(features.classes),
            "in_chans": list(chans) if isinstance(chans, tuple) else chans,
            **extra,
        }
        # Kept too: the feature specs, normalisation and label map, so predict.py needs only the file.
        module.pipeline_config = pipeline_config(
            specs, consumed, labels.name, features.classes, normalize, standardize
        )
        return module

    run_dir = Path(cfg.run_dir)
    # A seed of a seeds run is named by its seeds run and its seed: runs/X/seed_3 -> ststnet-X/seed_3.
    run_name = f"{wandb_group}/{run_dir.name}" if wandb_group else f"{cfg.experiment_name}-{run_dir.name}"

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
            group=wandb_group,
        )

    def trainer(fold_loggers: list, callbacks: list):
        return instantiate(cfg.trainer, logger=fold_loggers or False, callbacks=callbacks)

    only = None if cfg.fold is None else [int(cfg.fold)]
    # Every fold's starting weights are found and checked for subject overlap before anything is claimed.
    check_init_from(cfg, folds, only)
    # Build the first fold's parts now, so a bad optimizer, loss, network or trainer setting fails before
    # the run directory is claimed (nothing is trained; each fold builds its own parts again, seeded).
    quiet_lightning()
    first = datamodule(only[0] if only else 0)
    first.setup("fit")
    first_model = model(first)
    if not getattr(first_model, "closed_form", False):
        first_model.configure_optimizers()
    trainer([], [])
    strategy = fold_strategy(cfg, first_model, first, 1 if only else len(folds))

    by_id = {s.sample_id: s for s in samples}
    kept = [by_id[i] for i in features.sample_ids]
    spec_keys = {name: spec.key() for name, spec in specs.items()}

    def feature_key(sample) -> str:
        keys = {name: sample_key(key, sample) for name, key in spec_keys.items()}
        return keys["x"] if list(keys) == ["x"] else ";".join(f"{n}={k}" for n, k in keys.items())

    records = (
        data_records(kept, [features.classes[int(y)] for y in features.y], [feature_key(s) for s in kept])
        + macro_records
    )
    everyone = set(features.subjects)
    extra = set() if macro is None else set(macro.subjects)
    train_subjects = [sorted((everyone - fold.test_subjects) | extra) for fold in folds]
    prepare_run_dir(run_dir, cfg.experiment_name, settings, features.classes, folds, records, train_subjects)
    primary = is_primary_process()
    if primary:  # a DDP worker process (rank > 0) trains its share of each fold and writes nothing
        run_log.open(run_dir)
        if on_claim is not None:
            on_claim(run_dir)
    train_folds(
        features,
        folds,
        run_dir,
        FoldFactories(datamodule, model, loggers, trainer, lambda dm: watchers(dm, resolved)),
        seed=cfg.seed,
        only=only,
        progress=cfg.progress,
        identity=experiment_identity(settings, features.classes, records),
        experiment=cfg.experiment_name,
        strategy=strategy,
        trainer_config=OmegaConf.to_container(cfg.trainer, resolve=True),
    )
    if not primary:
        return run_dir
    if single_model(folds) and not folds[0].test_subjects:
        run_log.say(
            f"trained one model on all {len(everyone)} subjects ({len(features)} samples): not an "
            f"evaluation, nothing was held out. Weights: {checkpoint_path(run_dir, 0, folds)}"
        )
        return run_dir
    summary = write_reports(run_dir)
    # Other processes of a sweep may have written a fold while these reports were: pool again until the
    # reports hold every fold file there is, so whichever process writes last leaves the complete pool.
    for _ in range(10):
        if summary["folds_done"] >= len(finished_folds(run_dir)):
            break
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
            group=wandb_group,
        )
    run_log.say(format_table(summary))
    oracle = read_oracle(run_dir)
    if oracle is not None:
        from evaluation.oracle import oracle_line

        run_log.say(oracle_line(oracle))
    return run_dir


def read_oracle(run_dir: Path) -> dict | None:
    """RUN_DIR/oracle.json, written with the reports when diagnostics.oracle_epoch recorded folds."""
    import json

    from evaluation.oracle import ORACLE_NAME

    path = run_dir / ORACLE_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def _validation_subjects(cfg: DictConfig, features, folds) -> Callable[[int], list[str]]:
    """selection=inner: fold k's validation subjects, drawn from its training subjects with
    inner_validation.seed + k; no subject for the fixed schedule."""
    if str(cfg.get("selection") or "fixed") != "inner":
        return lambda k: []
    from training.selection import inner_validation_subjects

    inner = cfg.inner_validation
    everyone = set(features.subjects)

    def draw(k: int) -> list[str]:
        train_subjects = sorted(everyone - folds[k].test_subjects)
        try:
            return inner_validation_subjects(train_subjects, inner.subjects, int(inner.seed) + k)
        except ValueError as err:
            raise SettingError("inner_validation.subjects", inner.subjects, str(err)) from err

    return draw


def fold_strategy(cfg: DictConfig, module, datamodule, folds_to_train: int) -> str:
    """loso.strategy resolved: parallel or sequential. auto is parallel when the first fold's parts can be
    trained as a fold stack (training.fold_parallel.unsupported) and there is more than one fold to train;
    an explicit parallel that cannot be honoured is an error naming why, never a silent fallback."""
    from training.fold_parallel import unsupported

    requested = str(cfg.loso.get("strategy", "auto")) if cfg.get("loso") else "auto"
    if requested == "sequential":
        return requested
    reason = unsupported(module, datamodule, OmegaConf.to_container(cfg.trainer, resolve=True))
    if str(cfg.get("selection") or "fixed") != "fixed":
        reason = "selection=inner chooses each fold's epoch on its own validation subjects"
    elif (cfg.get("diagnostics") or {}).get("oracle_epoch"):
        reason = "diagnostics.oracle_epoch predicts each fold's test subject after every epoch"
    if requested == "parallel":
        if reason is not None:
            raise SettingError("loso.strategy", requested, f"{reason}; use loso.strategy=sequential")
        return requested
    strategy = "parallel" if reason is None and folds_to_train > 1 else "sequential"
    log.info("loso.strategy=auto: %s%s", strategy, f" ({reason})" if reason and folds_to_train > 1 else "")
    return strategy


def feature_set(cfg: DictConfig, samples, labels, specs: dict, strict: bool, action_units=None):
    """build_feature_set with the run's cache, progress, workers and streaming settings."""
    from datamodules.datamodule import build_feature_set

    return build_feature_set(
        samples,
        labels,
        specs,
        cache_dir=cfg.cache_dir,
        progress=cfg.progress,
        workers=cfg.feature_workers,
        strict=strict,
        action_units=action_units,
        stream_over_mb=cfg.datamodule.get("stream_over_mb"),
    )


CLASSIFIER, EMR_RECIPE, DISTILL_RECIPE, SVM_RECIPE = "classifier", "emr", "distill", "svm"
RECIPES = (CLASSIFIER, EMR_RECIPE, DISTILL_RECIPE, SVM_RECIPE)
MACRO_SEED_OFFSET = 7919  # the macro loader's shuffling stream, apart from the micro fold's


def macro_source(cfg: DictConfig, specs: dict, features, instantiate):
    """The macro-expression samples every fold also trains on (`macro.data`: a data config, its label map
    `auto` for the one that maps the macro classes onto the micro protocol's), with the micro inputs' feature
    specs less what `macro.features` replaces (EMR's reduction: `frames: [onset, middle]`, no
    magnification). None when the experiment has no macro source."""
    node = cfg.get("macro")
    if not node or not node.get("data"):
        return None, []
    recipe = str(cfg.model.get("recipe") or CLASSIFIER)
    if recipe != EMR_RECIPE:  # refused before the macro clips are read
        raise SettingError(
            "macro.data", node.data.get("name"), f"a macro source trains with the EMR recipe, not {recipe}"
        )
    import dataclasses

    from datamodules.protocols import label_map, macro_label_map

    name = str(node.data.get("label_map") or "auto")
    labels = macro_label_map(str(cfg.data.label_map)) if name == "auto" else label_map(name)
    if labels.classes != tuple(features.classes):
        raise SettingError(
            "macro.data.label_map",
            name,
            f"its classes {labels.classes} must be the micro protocol's {features.classes}",
        )
    replaced = node.get("features")
    replace = {} if not replaced else OmegaConf.to_container(replaced, resolve=True)
    macro_specs = {input_name: dataclasses.replace(spec, **replace) for input_name, spec in specs.items()}
    read = instantiate(node.data.reader)
    macro = feature_set(cfg, read.samples, labels, macro_specs, strict=bool(node.data.get("strict", False)))
    shared = set(macro.subjects) & set(features.subjects)
    if shared:
        raise SettingError(
            "macro.data",
            node.data.get("name"),
            f"shares subjects with the micro data ({', '.join(sorted(shared)[:3])}); every macro sample "
            "trains every fold, so a held-out subject would be trained on",
        )
    log.info(
        "macro source %s: %d samples (%d excluded by the %s label map), %d subjects, in every training set",
        node.data.get("name"),
        len(macro),
        len(macro.exclusions),
        labels.name,
        len(set(macro.subjects)),
    )
    # The macro samples' records join the run's data identity: a changed macro copy is another experiment.
    from preprocessing.cache import sample_key
    from training.rundir import data_records

    by_id = {sample.sample_id: sample for sample in read.samples}
    kept = [by_id[i] for i in macro.sample_ids]
    keys = {name: spec.key() for name, spec in macro_specs.items()}
    records = data_records(
        kept,
        [macro.classes[int(y)] for y in macro.y],
        [";".join(f"{n}={sample_key(k, sample)}" for n, k in keys.items()) for sample in kept],
    )
    return macro, records


def _svm(cfg: DictConfig, classes, inputs, dm, specs: dict, label_map: str, normalize, standardize):
    """The closed-form recipe (models.svm): an SVM fitted on the fold's training rows by training.loop."""
    from models.svm import SVMClassifier
    from training.pipeline import pipeline_config

    if (cfg.get("diagnostics") or {}).get("oracle_epoch"):
        raise SettingError("diagnostics.oracle_epoch", True, "an SVM has no epochs to choose among")
    settings = OmegaConf.to_container(cfg.model.svm, resolve=True)
    if settings.get("grid") and str(cfg.get("selection") or "fixed") != "inner":
        raise SettingError(
            "model.svm.grid", settings["grid"], "is searched on inner validation subjects: selection=inner"
        )
    try:
        svm = SVMClassifier(classes, inputs, **settings)
    except (TypeError, ValueError) as err:
        raise SettingError("model.svm", settings, str(err)) from err
    svm.pipeline_config = pipeline_config(specs, inputs, label_map, classes, normalize, standardize)
    svm.init_report = None
    return svm


def _teacher(teacher_cfg: dict, fold, chans, classes, settings: dict, instantiate):
    """The frozen teacher of the distillation recipe for this fold: `net` (a network config) loaded exactly
    from `ckpt` (a file or a {fold} pattern), refused when it was trained on the fold's held-out subject."""
    from models.finetune import initialise_from
    from training.checkpoints import read_provenance, resolve_init_from

    path = resolve_init_from(teacher_cfg["ckpt"], fold.index)
    record = read_provenance(path) or {}
    teacher_classes = record.get("classes") or teacher_cfg.get("classes")
    if not teacher_classes:
        raise SettingError(
            "model.distill.teacher.classes", None, f"{path} records no classes; give the teacher's class list"
        )
    if settings.get("kd_weight") and list(teacher_classes) != list(classes):
        raise SettingError(
            "model.distill.kd_weight",
            settings["kd_weight"],
            f"soft targets need the teacher to predict the student's classes {list(classes)}; "
            f"{path} predicts {list(teacher_classes)} (use the hint alone: kd_weight=0)",
        )
    net_cfg = teacher_cfg.get("net") or record.get("net")
    if not net_cfg:
        raise SettingError(
            "model.distill.teacher.net", None, f"{path} records no network config; give the teacher's net"
        )
    target = str(net_cfg.get("_target_", ""))
    if not target.startswith("models."):
        # A network named by a file is only ever one of this repository's (the file chooses no code to run).
        raise SettingError("model.distill.teacher.net", target, "expected a network of models/ (models.X.Y)")
    net_cfg = {k: v for k, v in net_cfg.items() if k not in ("num_classes", "in_chans")}
    teacher = instantiate(net_cfg, num_classes=len(teacher_classes), in_chans=chans)
    report = initialise_from(
        teacher,
        path,
        fold.index,
        fold.name,
        fold.test_subjects,
        allow_overlap=bool(teacher_cfg.get("allow_overlap", False)),
    )
    if report.newly_initialised or report.skipped:
        raise SettingError(
            "model.distill.teacher.ckpt",
            str(path),
            f"does not hold this teacher network: {report}",
        )
    log.info("fold %s: teacher %s loaded from %s (frozen)", fold.name, type(teacher).__name__, path)
    return teacher


def _initialise(cfg: DictConfig, net, fold, num_classes: int):
    """Start `net` from `model.init_from` (if set) for this fold, then freeze what `model.freeze` /
    `model.freeze_stages` name. Returns the InitReport, or None when the network starts from scratch."""
    from models.finetune import freeze, initialise_from

    report = None
    init_from = cfg.model.get("init_from")
    if init_from:
        report = initialise_from(
            net,
            init_from,
            fold.index,
            fold.name,
            fold.test_subjects,
            allow_overlap=bool(cfg.model.get("allow_overlap", False)),
        )
    names = [str(n) for n in (cfg.model.get("freeze") or [])]
    try:
        frozen = freeze(net, names, int(cfg.model.get("freeze_stages") or 0), num_classes)
    except ValueError as err:
        raise SettingError("model.freeze", names, str(err)) from err
    if report is not None:
        report.frozen = frozen
    return report


def check_init_from(cfg: DictConfig, folds, only) -> None:
    """Each wanted fold's `model.init_from` file (and distillation teacher) exists, is safe to read and,
    unless allowed, was not trained on the fold's held-out subjects (CheckpointError / OverlapError)."""
    from models.finetune import overlap_error
    from training.checkpoints import CheckpointError, overlap, read_provenance, resolve_init_from

    teacher = (cfg.model.get("distill") or {}).get("teacher") or {}
    starts = [
        (cfg.model.get("init_from"), bool(cfg.model.get("allow_overlap", False))),
        (teacher.get("ckpt"), bool(teacher.get("allow_overlap", False))),
    ]
    run_dir = Path(cfg.run_dir).resolve()
    for pattern, allow in starts:
        if not pattern:
            continue
        for k in only if only is not None else range(len(folds)):
            path = resolve_init_from(pattern, k)
            if path.resolve().is_relative_to(run_dir):
                # Resuming is run_dir=...; starting weights come from another run. A run initialised from its
                # own folds' checkpoints would depend on the order in which they finished.
                raise CheckpointError(
                    f"model.init_from={path} lies inside this run's own directory {cfg.run_dir}; to resume "
                    "an interrupted run give run_dir alone, to fine-tune use a new run_dir"
                )
            seen = overlap(read_provenance(path), folds[k].test_subjects)
            if seen and not allow:
                raise overlap_error(path, seen, folds[k].name)


def _generative_augment(dm_cfg, seed: int):
    """`datamodule.au_generative` ({ratio, epochs, ...} of AUGenerativeAugment), fitted per fold on its
    training subjects; absent or null for none."""
    settings = dm_cfg.get("au_generative")
    if not settings:
        return None
    from datamodules.au_generative import AUGenerativeAugment

    return AUGenerativeAugment(**dict(settings), seed=seed)


def _fold_transforms(dm_cfg) -> dict:
    """Transforms the data module learns per fold from its training subjects: `datamodule.active_pixels`
    ({input: name, percentile, radius}; STRCN-A's pixels-by-time image), absent or null for none."""
    settings = dm_cfg.get("active_pixels")
    if not settings:
        return {}
    from datamodules.active_pixels import ActivePixels

    settings = dict(settings)
    name = settings.pop("input", "x")
    return {name: ActivePixels(**settings)}


def feature_specs(cfg: DictConfig, instantiate) -> dict:
    """{input name: FeatureSpec}: the features config is one spec (the single input "x") or `inputs:` with
    one spec per named input."""
    if "inputs" in cfg.features:
        if "_target_" in cfg.features:
            raise SettingError("features", "...", "give either one spec (_target_) or named inputs (inputs:)")
        return {str(name): instantiate(node) for name, node in cfg.features.inputs.items()}
    return {"x": instantiate(cfg.features)}


def model_inputs(cfg: DictConfig, specs: dict) -> tuple[str, ...]:
    """The named inputs the network consumes (`model.inputs`, default the single input x), checked."""
    names = tuple(str(n) for n in (cfg.model.get("inputs") or ["x"]))
    missing = [n for n in names if n not in specs]
    if missing:
        raise SettingError(
            "model.inputs",
            list(names),
            f"the features config has no input {missing[0]!r} (it has {sorted(specs)})",
        )
    return names


def write_hydra_files(cfg: DictConfig, run_dir: Path) -> None:
    """`.hydra/config.yaml`, `overrides.yaml`, `hydra.yaml` of a claimed run (Hydra itself writes nothing
    into run_dir, so that a refused run cannot overwrite another experiment's)."""
    from hydra.core.hydra_config import HydraConfig

    from utils.atomic import atomic_write_text

    if not HydraConfig.initialized():
        return
    hydra_cfg = HydraConfig.get()
    folder = run_dir / ".hydra"
    atomic_write_text(folder / "config.yaml", OmegaConf.to_yaml(cfg), what="run config")
    atomic_write_text(
        folder / "overrides.yaml", OmegaConf.to_yaml(hydra_cfg.overrides.task), what="overrides"
    )
    atomic_write_text(
        folder / "hydra.yaml", OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg})), what="Hydra config"
    )


@hydra.main(config_path="configs", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from training.interrupt import RunInterrupted, signals_raise
    from utils.cli import exit_on_user_error

    # Again here: a submitit job (hydra/launcher=local|slurm) unpickles this function without running the
    # module's top level, and would print every console line twice.
    console.propagate = False
    run_log = RunLog()
    claimed: list[Path] = []

    def on_error(message: str) -> None:
        console.error(f"error: {message}")

    def on_claim(run_dir: Path) -> None:
        if run_dir in claimed:  # a seeds run claims its directory once per seed
            return
        claimed.append(run_dir)
        write_hydra_files(cfg, run_dir)

    try:
        with signals_raise(), exit_on_user_error(on_error):
            cfg.run_dir = str(cfg.run_dir)  # resolved once: the default holds a timestamp and a random suffix
            # DDP (trainer=ddp): Lightning starts the other ranks by running this script again with the same
            # arguments; they inherit the environment, so they find the directory rank 0 resolved.
            if is_primary_process():
                os.environ[RUN_DIR_ENV] = cfg.run_dir
            else:
                cfg.run_dir = os.environ.get(RUN_DIR_ENV, cfg.run_dir)
                logging.getLogger().setLevel(logging.WARNING)  # the primary process reports the run
            try:
                if cfg.get("seeds"):
                    run_dir = run_seeds(cfg, run_log, on_claim)
                else:
                    run_dir = run(cfg, run_log, on_claim)
            except RunInterrupted as stop:
                where = f"during fold {stop.fold}" if stop.fold else "before any fold started"
                if stop.fold and stop.fold.startswith("folds "):  # fold-parallel: every fold in flight
                    where = f"during {stop.fold}"
                resume = (
                    f"the folds finished before it are kept; rerun with run_dir={claimed[0]} to resume"
                    if claimed
                    else "nothing was written to the run directory (computed features stay cached)"
                )
                run_log.say(f"error: interrupted by {stop.signal_name} {where}; {resume}", error=True)
                if claimed:
                    run_log.say(f"run dir: {claimed[0]}")
                sys.exit(stop.exit_status)
        if is_primary_process():
            run_log.say(f"run dir: {run_dir}")
    finally:
        run_log.close()


if __name__ == "__main__":
    main()
