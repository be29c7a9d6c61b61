"""An experiment's settings as plain data: which can change a prediction, and checks that name the key.

train.py turns its Hydra config into a nested dict once; everything here works on that dict, so a bad value
is refused with its dotted key (`datamodule.batch_size=0: ...`) before the run directory is touched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real
from typing import Any

# Settings that cannot change a prediction: left out of the experiment's fingerprint, so a run can be resumed
# with another logger, device or progress display. `datamodule.num_workers` belongs here because batches are
# shuffled and augmented in the main process from its own generators (datamodules/datamodule.py), whatever
# number of worker processes load the rows; `datamodule.stream_over_mb` because a streamed input serves the
# same rows as an in-memory one (tests/test_disk_array.py).
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
    "datamodule.stream_over_mb",
    # Diagnostics watch a run without changing a prediction (oracle_epoch: tests/test_selection.py).
    "diagnostics",
)

# Settings added after run directories existed, with the defaults under which a run behaves exactly as it did
# before them: left out of the fingerprint while they hold these values, so an earlier run still resumes.
ADDED_SETTING_DEFAULTS: dict[str, Any] = {
    "data.holdout.test_subjects": 0.2,
    "data.holdout.seed": 0,
    "model.init_from": None,
    "model.allow_overlap": False,
    "model.freeze": [],
    "model.freeze_stages": 0,
    "model.head_lr": None,
    # auto picks the strategy from the experiment itself; an explicit choice is part of the experiment.
    "loso.strategy": "auto",
    # The leakage canary: a guarded run is kept apart from an unguarded one (if the canary trips, its
    # predictions differ), and every run before it had no guard.
    "guard.poison_test": False,
    # A seeds run trains one sub-run per seed, each with seeds=null (evaluation/seeds.py).
    "seeds": None,
    # Model selection (training.selection): the fixed schedule is what every earlier run did.
    "selection": "fixed",
    "inner_validation.subjects": 1,
    "inner_validation.seed": 0,
    "inner_validation.monitor": "loss",
    "inner_validation.patience": None,
}

ACCELERATORS = ("cpu", "gpu", "cuda", "auto")
PROTOCOLS = ("loso", "lodo", "holdout", "all")
LOSO_STRATEGIES = ("auto", "parallel", "sequential")  # training.fold_parallel
SELECTIONS = ("fixed", "inner")  # training.selection
MONITORS = ("loss", "uf1")  # inner_validation.monitor
REQUIRED = ("???", "required")  # what an experiment config puts where the user must give a path


class SettingError(ValueError):
    """A setting has a value the run cannot use; the message starts with `key=value:`."""

    def __init__(self, key: str, value: Any, expected: str) -> None:
        super().__init__(f"{key}={value}: {expected}")
        self.key = key


def lookup(settings: Mapping, dotted: str, default: Any = None) -> Any:
    node: Any = settings
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def result_settings(settings: Mapping) -> dict:
    """A deep copy of `settings` without VOLATILE_SETTINGS: what the experiment's fingerprint hashes."""

    def copy(node: Any) -> Any:
        if isinstance(node, Mapping):
            return {k: copy(v) for k, v in node.items()}
        if isinstance(node, list):
            return [copy(v) for v in node]
        return node

    out = copy(settings)
    for dotted in VOLATILE_SETTINGS:
        _pop(out, dotted, prune=False)
    for dotted, default in ADDED_SETTING_DEFAULTS.items():
        if lookup(out, dotted, _ABSENT) == default:
            _pop(out, dotted)
    return out


_ABSENT = object()


def _pop(settings: dict, dotted: str, prune: bool = True) -> None:
    """Remove a dotted key; with `prune`, also the parents it leaves empty (`data.holdout` once both its
    keys went). The volatile keys are removed without pruning, as they always were (same fingerprints)."""
    *parents, leaf = dotted.split(".")
    chain = [settings]
    for part in parents:
        node = chain[-1].get(part) if isinstance(chain[-1], dict) else None
        if not isinstance(node, dict):
            return
        chain.append(node)
    if leaf not in chain[-1]:
        return
    chain[-1].pop(leaf)
    if not prune:
        return
    for parent, part in zip(reversed(chain[:-1]), reversed(parents), strict=True):
        if parent[part]:
            break
        parent.pop(part)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(settings: Mapping, key: str, minimum: int = 1) -> None:
    value = lookup(settings, key)
    if value is None:
        return
    if not _is_int(value) or value < minimum:
        what = "a positive whole number" if minimum == 1 else f"a whole number >= {minimum}"
        raise SettingError(key, value, f"expected {what}")


def _positive_number(settings: Mapping, key: str) -> None:
    value = lookup(settings, key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value <= 0:
        raise SettingError(key, value, "expected a positive number")


def check_settings(settings: Mapping, cuda_available: bool | None = None) -> None:
    """Raise SettingError for the first value that would make a run meaningless, naming its key.

    settings: the resolved config as nested dicts. cuda_available: whether a CUDA device is visible (asked
    of torch when None and a GPU accelerator is requested).
    """
    max_epochs = lookup(settings, "trainer.max_epochs")
    if not _is_int(max_epochs) or max_epochs < 1:
        # Lightning reads -1 as "train forever" and 0 as "do not train"; neither is a result to report.
        raise SettingError("trainer.max_epochs", max_epochs, "expected a positive whole number of epochs")
    strategy = lookup(settings, "loso.strategy", "auto")
    if strategy not in LOSO_STRATEGIES:
        raise SettingError("loso.strategy", strategy, f"expected one of {', '.join(LOSO_STRATEGIES)}")
    poison = lookup(settings, "guard.poison_test", False)
    if not isinstance(poison, bool):
        raise SettingError("guard.poison_test", poison, "expected true or false")
    selection = lookup(settings, "selection", "fixed")
    if selection not in SELECTIONS:
        raise SettingError("selection", selection, f"expected one of {', '.join(SELECTIONS)}")
    monitor = lookup(settings, "inner_validation.monitor", "loss")
    if monitor not in MONITORS:
        raise SettingError("inner_validation.monitor", monitor, f"expected one of {', '.join(MONITORS)}")
    _positive_int(settings, "inner_validation.patience")
    held = lookup(settings, "inner_validation.subjects", 1)
    if (
        isinstance(held, bool)
        or not isinstance(held, Real)
        or held <= 0
        or (isinstance(held, float) and held >= 1)
    ):
        raise SettingError(
            "inner_validation.subjects", held, "expected a number of subjects or a fraction in (0, 1)"
        )
    oracle = lookup(settings, "diagnostics.oracle_epoch", False)
    if not isinstance(oracle, bool):
        raise SettingError("diagnostics.oracle_epoch", oracle, "expected true or false")
    _positive_int(settings, "datamodule.batch_size")
    _positive_int(settings, "datamodule.num_workers", minimum=0)
    if lookup(settings, "feature_workers") != "auto":
        _positive_int(settings, "feature_workers", minimum=0)
    stream = lookup(settings, "datamodule.stream_over_mb")
    if stream is not None and (isinstance(stream, bool) or not isinstance(stream, Real) or stream < 0):
        raise SettingError(
            "datamodule.stream_over_mb", stream, "expected a size in MiB >= 0, or null to hold every input"
        )
    jitter = lookup(settings, "datamodule.augment.temporal_jitter")
    bad_jitter = isinstance(jitter, bool) or not isinstance(jitter, Real) or not 0 <= jitter < 1
    if jitter is not None and bad_jitter:
        raise SettingError(
            "datamodule.augment.temporal_jitter", jitter, "expected the fraction of steps removed, in [0, 1)"
        )
    _positive_number(settings, "model.optimizer.lr")
    seed = lookup(settings, "seed")
    if not _is_int(seed):
        raise SettingError("seed", seed, "expected a whole number")
    seeds = lookup(settings, "seeds")
    if seeds is not None:
        if not isinstance(seeds, list) or not seeds or not all(_is_int(s) for s in seeds):
            expected = "expected a non-empty list of whole numbers, e.g. seeds=[0,1,2]"
            raise SettingError("seeds", seeds, expected)
        if len(set(seeds)) != len(seeds):
            raise SettingError("seeds", seeds, "a seed is given twice")
    fold = lookup(settings, "fold")
    if fold is not None and (not _is_int(fold) or fold < 0):
        raise SettingError("fold", fold, "expected a fold index (0, 1, ...) or null for every fold")
    hflip = lookup(settings, "datamodule.augment.hflip")
    if hflip is not None and (isinstance(hflip, bool) or not isinstance(hflip, Real) or not 0 <= hflip <= 1):
        raise SettingError("datamodule.augment.hflip", hflip, "expected a probability in [0, 1]")
    rotate = lookup(settings, "datamodule.augment.rotate_degrees")
    if rotate is not None and (isinstance(rotate, bool) or not isinstance(rotate, Real) or rotate < 0):
        raise SettingError("datamodule.augment.rotate_degrees", rotate, "expected a number of degrees >= 0")
    _check_transfer_settings(settings)
    accelerator = lookup(settings, "trainer.accelerator", "cpu")
    if accelerator not in ACCELERATORS:
        raise SettingError("trainer.accelerator", accelerator, f"expected one of {', '.join(ACCELERATORS)}")
    if accelerator in ("gpu", "cuda"):
        if cuda_available is None:
            import torch

            cuda_available = torch.cuda.is_available()
        if not cuda_available:
            raise SettingError(
                "trainer.accelerator",
                accelerator,
                "no CUDA GPU is visible to PyTorch on this machine; use trainer=cpu "
                "(or check CUDA_VISIBLE_DEVICES and the driver)",
            )


def check_fold(fold: Any, num_folds: int) -> None:
    """`fold` (an index from the command line) must be one of the protocol's folds."""
    if fold is not None and not 0 <= fold < num_folds:
        raise SettingError("fold", fold, f"this protocol has folds 0..{num_folds - 1}")


def _check_transfer_settings(settings: Mapping) -> None:
    """The protocol and the fine-tuning keys (model.init_from, freeze, freeze_stages, head_lr)."""
    protocol = lookup(settings, "data.protocol")
    if protocol is not None and protocol not in PROTOCOLS:
        raise SettingError("data.protocol", protocol, f"expected one of {', '.join(PROTOCOLS)}")
    held = lookup(settings, "data.holdout.test_subjects")
    if protocol == "holdout" and (isinstance(held, bool) or not isinstance(held, Real) or held <= 0):
        raise SettingError(
            "data.holdout.test_subjects", held, "expected a number of subjects or a fraction in (0, 1)"
        )
    for key, what in (
        ("model.init_from", "the pre-trained weights, e.g. model.init_from=RUN_DIR/last.ckpt"),
        ("model.distill.teacher.ckpt", "the teacher, e.g. model.distill.teacher.ckpt=RUN_DIR/last.ckpt"),
    ):
        # "required" in an experiment config: a MISSING value (???) would not survive the merge onto
        # train.yaml's null, so the experiment would silently train from scratch.
        if lookup(settings, key) in REQUIRED:
            raise SettingError(
                key, lookup(settings, key), f"this experiment starts from a checkpoint: give {what}"
            )
    init_from = lookup(settings, "model.init_from")
    if init_from is not None and not (isinstance(init_from, str) and init_from.strip()):
        raise SettingError("model.init_from", init_from, "expected a weights file path (or a {fold} pattern)")
    names = lookup(settings, "model.freeze")
    if names is not None and (
        not isinstance(names, list) or not all(isinstance(n, str) and n for n in names)
    ):
        raise SettingError("model.freeze", names, "expected a list of parameter names or prefixes")
    stages = lookup(settings, "model.freeze_stages")
    if stages is not None and (not _is_int(stages) or stages < 0):
        raise SettingError("model.freeze_stages", stages, "expected a number of stages >= 0")
    if lookup(settings, "model.head_lr") is not None:
        _positive_number(settings, "model.head_lr")
