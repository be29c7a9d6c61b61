"""Fold checkpoints: every fold keeps its final weights, with a record of the subjects they were trained on.

    run_dir/fold_{k}/last.ckpt    one per finished fold of a LOSO / LODO run (k unpadded: fold_0, fold_12)
    run_dir/last.ckpt             the one model of a hold-out run or of a run over all subjects

A checkpoint is a Lightning checkpoint (`state_dict`, `pytorch-lightning_version`, `hyper_parameters`, ...,
written without optimizer states: it is for initialising and using a network, not for resuming an epoch)
plus a `merlin` entry, its provenance: experiment, settings and data fingerprints, classes, named inputs,
the fold and its test subjects, and `train_subjects`, every subject whose samples the weights were fitted
on. That entry is what lets a later run refuse weights that saw its held-out subject (`overlap`), whatever
folder the file was copied to.

It is written through utils.atomic after the fold's predictions, so a file under the final name is always
whole; a resumed run skips finished folds and so never rewrites their checkpoints.
"""

from __future__ import annotations

import io
import logging
import pickle
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch

from datamodules.protocols import ALL_SUBJECTS, HOLDOUT, Fold
from utils.atomic import atomic_write_bytes

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.ckpt"
# Version of the `merlin` entry. 1: this module.
PROVENANCE_FORMAT = 1
FOLD_PLACEHOLDER = "{fold}"


class CheckpointError(ValueError):
    """A checkpoint cannot be used as asked; the message names the file."""


def single_model(folds: Sequence[Fold]) -> bool:
    """True for the protocols that train one model (hold-out, all subjects), kept as RUN_DIR/last.ckpt."""
    return len(folds) == 1 and folds[0].name in (HOLDOUT, ALL_SUBJECTS)


def checkpoint_path(run_dir: str | Path, k: int, folds: Sequence[Fold]) -> Path:
    """Where fold `k`'s final weights go: `run_dir/fold_{k}/last.ckpt`, or `run_dir/last.ckpt` for the one
    model of a hold-out or all-subjects run."""
    run_dir = Path(run_dir)
    if single_model(folds):
        return run_dir / CHECKPOINT_NAME
    return run_dir / f"fold_{int(k)}" / CHECKPOINT_NAME


def provenance(
    fold: Fold,
    train_subjects: Iterable[str],
    identity: Mapping | None,
    experiment: str = "",
    inputs: Sequence[str] = (),
    net: Mapping | None = None,
) -> dict:
    """The `merlin` entry of a fold's checkpoint (plain lists and strings: readable with weights_only).

    net: the network's config as built (`_target_` and arguments, class and channel counts filled in), so a
    later run can rebuild the network from the checkpoint alone (a distillation teacher)."""
    identity = identity or {}
    return {
        "net": None if net is None else dict(net),
        "format": PROVENANCE_FORMAT,
        "experiment": experiment,
        "fingerprint": identity.get("fingerprint"),
        "data_fingerprint": identity.get("data_fingerprint"),
        "classes": list(identity.get("classes") or []),
        "inputs": list(inputs),
        "fold": fold.as_dict(),
        "train_subjects": sorted(set(train_subjects)),
    }


def encode_checkpoint(checkpoint: Mapping) -> bytes:
    buffer = io.BytesIO()
    torch.save(dict(checkpoint), buffer)
    return buffer.getvalue()


def write_checkpoint(path: str | Path, data: bytes) -> None:
    """Write encoded checkpoint bytes atomically (a reader sees no file or the whole file)."""
    atomic_write_bytes(path, data, what="fold checkpoint")


def read_checkpoint(path: str | Path) -> dict:
    """A checkpoint file as a dict, read with weights_only=True: a pickle that would run code is refused
    (CheckpointError naming the file) and nothing in it is executed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path} holds objects other than tensors and plain containers and was not loaded (nothing in "
            f"it was run); re-save its state_dict alone with torch.save(model.state_dict(), ...). ({first})"
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"{path} is not a readable PyTorch file: {err}") from err
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a checkpoint or a state_dict")
    return dict(obj)


def read_provenance(path: str | Path, checkpoint: Mapping | None = None) -> dict | None:
    """The `merlin` entry of a checkpoint, or None for a file MERLin did not write (a plain state_dict,
    another tool's checkpoint). When the file has none but sits at `RUN/fold_{k}/last.ckpt` or
    `RUN/last.ckpt` of a MERLin run, the subjects are taken from that run's run.json."""
    checkpoint = read_checkpoint(path) if checkpoint is None else checkpoint
    entry = checkpoint.get("merlin")
    if isinstance(entry, Mapping) and "train_subjects" in entry:
        return dict(entry)
    return _provenance_from_run(Path(path))


def _provenance_from_run(path: Path) -> dict | None:
    import json

    candidates = [path.parent / "run.json", path.parent.parent / "run.json"]
    for run_json in candidates:
        if not run_json.is_file():
            continue
        try:
            info = json.loads(run_json.read_text())
        except (OSError, ValueError):
            return None
        trained = info.get("train_subjects")
        if not isinstance(trained, list):
            return None
        index = 0 if run_json.parent == path.parent else _fold_index(path.parent.name)
        if index is None or not 0 <= index < len(trained):
            return None
        return {"train_subjects": list(trained[index]), "source": str(run_json)}
    return None


def _fold_index(name: str) -> int | None:
    prefix = "fold_"
    if name.startswith(prefix) and name[len(prefix) :].isdigit():
        return int(name[len(prefix) :])
    return None


def resolve_init_from(pattern: str | Path, k: int) -> Path:
    """The weights file fold `k` starts from: `pattern` itself, or with `{fold}` replaced by k (so each
    LOSO fold starts from a pre-training that held out the same subject)."""
    text = str(pattern)
    if FOLD_PLACEHOLDER in text:
        text = text.replace(FOLD_PLACEHOLDER, str(int(k)))
    elif "{" in text and "}" in text:
        raise CheckpointError(f"model.init_from={pattern}: the only placeholder it may hold is {{fold}}")
    return Path(text).expanduser()


def overlap(provenance_entry: Mapping | None, test_subjects: Iterable[str]) -> list[str]:
    """The held-out subjects a checkpoint was trained on (empty: none, or provenance unknown)."""
    if not provenance_entry:
        return []
    trained = set(provenance_entry.get("train_subjects") or [])
    return sorted(trained & set(test_subjects))
