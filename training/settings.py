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
)

ACCELERATORS = ("cpu", "gpu", "cuda", "auto")


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
        *parents, leaf = dotted.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return out


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
    _positive_int(settings, "datamodule.batch_size")
    _positive_int(settings, "datamodule.num_workers", minimum=0)
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
    fold = lookup(settings, "fold")
    if fold is not None and (not _is_int(fold) or fold < 0):
        raise SettingError("fold", fold, "expected a fold index (0, 1, ...) or null for every fold")
    hflip = lookup(settings, "datamodule.augment.hflip")
    if hflip is not None and (isinstance(hflip, bool) or not isinstance(hflip, Real) or not 0 <= hflip <= 1):
        raise SettingError("datamodule.augment.hflip", hflip, "expected a probability in [0, 1]")
    rotate = lookup(settings, "datamodule.augment.rotate_degrees")
    if rotate is not None and (isinstance(rotate, bool) or not isinstance(rotate, Real) or rotate < 0):
        raise SettingError("datamodule.augment.rotate_degrees", rotate, "expected a number of degrees >= 0")
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
