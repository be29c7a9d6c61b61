"""The run directory: what an experiment is (run.json), which folds are finished, and resuming safely.

A run directory belongs to one experiment for its whole life: one set of settings (the fingerprint of every
setting that can change a prediction) and one set of data (every sample's id, subject, label, annotated
frames and feature cache key, which covers the frames' fingerprint and the feature code). Rerunning into it
skips finished folds; running a *different* experiment into it, or the same settings on changed data, is
refused, because pooling predictions of two experiments reports a number neither of them produced.

Each fold file carries a record of what made it (evaluation.predictions); so a deleted run.json cannot turn
old predictions into new ones: they are adopted only by the experiment their records name.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

from datamodules.protocols import Fold, natural_key
from evaluation.predictions import (
    RUN_FORMAT,
    EvaluationError,
    digest,
    fold_identity,
    fold_path,
    fold_problem,
    predictions_dir,
    read_run_info,
    record_path,
    run_checksums,
)
from training.claims import create_exclusive

log = logging.getLogger(__name__)


class RunDirError(RuntimeError):
    """The run directory cannot be used for this experiment."""


def fingerprint(settings: Mapping) -> str:
    """sha256 of the settings as canonical JSON (keys sorted)."""
    return digest(settings)


def _flatten(d: Mapping, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def differing_settings(a: Mapping, b: Mapping) -> list[str]:
    """Dotted names of the settings whose values differ between two nested dicts."""
    fa, fb = _flatten(a), _flatten(b)
    return sorted(k for k in set(fa) | set(fb) if fa.get(k, "<absent>") != fb.get(k, "<absent>"))


def data_records(samples: Sequence, labels: Sequence[str], feature_keys: Sequence[str]) -> list[dict]:
    """One record per sample the experiment uses: what its fold predictions depend on besides the settings.

    samples: the `Sample`s, in feature-set order; labels: each one's class name; feature_keys: each one's
    feature cache key (preprocessing.cache.sample_key: spec, annotation and frames' fingerprint).
    """
    return [
        {
            "sample_id": s.sample_id,
            "subject": s.subject,
            "label": label,
            "frames": [s.onset, s.apex, s.offset],
            "features": key,
        }
        for s, label, key in zip(samples, labels, feature_keys, strict=True)
    ]


def differing_data(old: Sequence[Mapping], new: Sequence[Mapping], limit: int = 8) -> list[str]:
    """What changed between two runs' data records, per subject: ["casme2/sub01: 3 labels differ", ...]."""
    before = {r["sample_id"]: r for r in old}
    after = {r["sample_id"]: r for r in new}
    changes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for sample_id in before.keys() | after.keys():
        a, b = before.get(sample_id), after.get(sample_id)
        subject = (a or b)["subject"]
        if a is None:
            changes[subject]["added"] += 1
        elif b is None:
            changes[subject]["removed"] += 1
        elif a.get("label") != b.get("label"):
            changes[subject]["label"] += 1
        elif a.get("frames") != b.get("frames"):
            changes[subject]["frames"] += 1
        elif a.get("features") != b.get("features") or a.get("subject") != b.get("subject"):
            changes[subject]["features"] += 1
    words = {
        "added": ("sample added", "samples added"),
        "removed": ("sample removed", "samples removed"),
        "label": ("label differs", "labels differ"),
        "frames": ("onset/apex/offset differs", "onsets/apexes/offsets differ"),
        "features": (
            "sample's frames or features differ",
            "samples' frames or features differ",
        ),
    }
    lines = []
    for subject in sorted(changes, key=natural_key):
        parts = [f"{n} {words[kind][n != 1]}" for kind in words if (n := changes[subject].get(kind, 0))]
        lines.append(f"{subject}: {', '.join(parts)}")
    if len(lines) > limit:
        lines = [*lines[:limit], f"... ({len(lines) - limit} more subjects)"]
    return lines


def _fold_files(run_dir: Path) -> list[int]:
    """Indices of folds with a predictions file or a record in the run directory (finished or not)."""
    folder = predictions_dir(run_dir)
    if not folder.is_dir():
        return []
    indices = set()
    for path in folder.iterdir():
        stem, dot, suffix = path.name.partition(".")
        if dot and suffix in ("csv", "json") and stem.startswith("fold_") and stem[5:].isdigit():
            indices.add(int(stem[5:]))
    return sorted(indices)


def _new_info(
    experiment: str,
    settings: Mapping,
    classes: Sequence[str],
    folds: Sequence[Fold],
    data,
    train_subjects: Sequence[Sequence[str]] | None = None,
) -> dict:
    records = list(data or [])
    info = {
        "format": RUN_FORMAT,
        "fingerprint": fingerprint(settings),
        "experiment": experiment,
        "classes": list(classes),
        "folds": [f.as_dict() for f in folds],
        "settings": settings,
        "data": {"fingerprint": digest(records), "samples": records},
    }
    if train_subjects is not None:
        if len(train_subjects) != len(folds):
            raise ValueError(f"train_subjects has {len(train_subjects)} entries for {len(folds)} folds")
        info["train_subjects"] = [sorted(set(s)) for s in train_subjects]
    info["checksums"] = run_checksums(info)
    return info


def experiment_identity(
    settings: Mapping, classes: Sequence[str], data: Sequence[Mapping] | None = None
) -> dict:
    """What each fold record of this experiment carries (with its fold's name and test subjects): the
    settings and data fingerprints and the class list, as run.json holds them."""
    return {
        "fingerprint": fingerprint(settings),
        "data_fingerprint": digest(list(data or [])),
        "classes": list(classes),
    }


def _refuse_other_experiment(run_dir: Path, old: Mapping, new: Mapping) -> None:
    held = len(_fold_files(run_dir))
    holds = f"holds {held} fold file(s) of" if held else "was claimed by (no fold finished yet)"
    if old.get("fingerprint") != new["fingerprint"]:
        changed = differing_settings(old.get("settings", {}), new["settings"])
        shown = ", ".join(changed[:8]) + (" ..." if len(changed) > 8 else "")
        raise RunDirError(
            f"run directory {run_dir} {holds} a different experiment "
            f"({old.get('experiment')!r}; settings that differ: {shown or 'unknown'}). "
            "Use a new run_dir, or rerun with the settings it was made with."
        )
    if old.get("classes") != new["classes"] or old.get("folds") != new["folds"]:
        raise RunDirError(f"run directory {run_dir} was made with other classes or folds than this data")
    old_data, new_data = old.get("data") or {}, new["data"]
    if old_data.get("fingerprint") != new_data["fingerprint"]:
        changes = differing_data(old_data.get("samples", []), new_data["samples"])
        raise RunDirError(
            f"run directory {run_dir} {holds} the same settings on other data: "
            f"{'; '.join(changes) or 'the data records differ'}. "
            "Use a new run_dir for the changed data, or restore the data it was made with."
        )


def check_run_dir(run_dir: str | Path, settings: Mapping) -> dict | None:
    """What can be checked before any data is read: `run_dir` is a directory (or absent), its run.json
    (if any) is readable, of this format and of these settings. Returns that run.json, or None.

    train.py calls this first, so a run into another experiment's directory is refused in a second, not
    after computing features; `prepare_run_dir` calls it again and checks the rest (classes, folds, data).
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"run_dir {run_dir} is a file, not a directory")
    info_path = run_dir / "run.json"
    if not info_path.exists():
        return None
    try:
        old = read_run_info(run_dir)
    except (OSError, EvaluationError) as err:
        raise RunDirError(f"{err}; remove it or use another run_dir") from err
    if "format" not in old:
        raise RunDirError(
            f"run directory {run_dir} was made by an earlier MERLin whose fold files carry no records, "
            "so they cannot be checked against this experiment; use a new run_dir "
            f"(python evaluate.py run_dir={run_dir} still reports it)"
        )
    if old.get("fingerprint") != fingerprint(settings):
        _refuse_other_experiment(run_dir, old, {"fingerprint": fingerprint(settings), "settings": settings})
    return old


def prepare_run_dir(
    run_dir: str | Path,
    experiment: str,
    settings: Mapping,
    classes: Sequence[str],
    folds: Sequence[Fold],
    data: Sequence[Mapping] | None = None,
    train_subjects: Sequence[Sequence[str]] | None = None,
) -> Path:
    """Claim `run_dir` for this experiment: create run.json, or check that the existing one (or, when it
    was deleted, the fold records left behind) describes this same experiment on the same data. Safe with
    several processes at once: run.json is created exclusively (training.claims.create_exclusive), so
    exactly one of them writes it and the others join it or are refused by it.

    data: `data_records` of the samples (None: no data identity, for tests of the settings alone).
    train_subjects: per fold, every subject its model is trained on (its checkpoint's provenance; later
        runs initialised from it check it against their held-out subjects). Recorded in a new run.json;
        an existing one (perhaps written before this field existed) is kept as it is.
    Raises RunDirError, naming what differs, for a directory of another experiment, and leaves it as it is.
    """
    run_dir = Path(run_dir)
    info = _new_info(experiment, settings, classes, folds, data, train_subjects)
    old = check_run_dir(run_dir, settings)
    if old is None:
        _adopt_orphaned_folds(run_dir, info)
        # Exclusive: of several processes starting into one directory (cluster jobs of one sweep), one
        # creates run.json and the others read that complete file back and join it, or are refused by it.
        text = json.dumps(info, indent=2, default=str) + "\n"
        if create_exclusive(run_dir / "run.json", text.encode("utf-8"), what="run record"):
            return run_dir
        old = check_run_dir(run_dir, settings)
        if old is None:
            raise RunDirError(f"{run_dir / 'run.json'} was created and removed by another process meanwhile")
        _refuse_other_experiment(run_dir, old, info)
        log.info("%s: joined the run another process of this experiment started just now", run_dir)
        return run_dir
    _refuse_other_experiment(run_dir, old, info)
    return run_dir


def _adopt_orphaned_folds(run_dir: Path, info: Mapping) -> None:
    """run.json is missing: fold files may stay only if their records name exactly this experiment."""
    adopted = []
    for k in _fold_files(run_dir):
        csv, record = fold_path(run_dir, k), record_path(run_dir, k)
        if not csv.exists():
            continue  # a record whose predictions were never written: the fold is simply not finished
        problem = fold_problem(run_dir, k, fold_identity(info, k))
        if problem is not None:
            raise RunDirError(
                f"run directory {run_dir} has no run.json, and {problem}; "
                f"its predictions cannot be adopted by this experiment. Use a new run_dir "
                f"(or remove {csv} and {record.name} if they are yours to discard)"
            )
        adopted.append(k)
    if adopted:
        log.warning(
            "%s had no run.json; recreated it: the records of its %d fold file(s) name this same experiment",
            run_dir,
            len(adopted),
        )
