"""Per-fold prediction files of a run directory: written atomically, read back with their errors named.

Layout (the training loop writes it, `evaluation.reports` reads it):

    run_dir/run.json                      experiment, fingerprint, classes, folds
    run_dir/predictions/fold_000.csv      one per finished fold (3-digit fold index)

A fold file exists only once its fold has finished: it is written to a temporary file in the same folder,
fsynced and renamed over the final name, so a crash never leaves a half-written `fold_NNN.csv` that a rerun
would skip or a report would pool.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from utils.atomic import atomic_write_text

# Columns every fold file has, besides one probability column `p_<class>` per class.
PREDICTION_COLUMNS = ("sample_id", "subject", "dataset", "clip", "fold", "y_true", "y_pred")
_ID_COLUMNS = ("sample_id", "subject", "dataset", "clip")
_INT_COLUMNS = ("fold", "y_true", "y_pred")
_FOLD_FILE = re.compile(r"^fold_(\d{3,})\.csv$")


class EvaluationError(ValueError):
    """A run directory or one of its files is not what evaluation expects; the message names the file."""


def predictions_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "predictions"


def fold_path(run_dir: str | Path, fold_index: int) -> Path:
    """`run_dir/predictions/fold_NNN.csv` (at least 3 digits, so names sort in fold order)."""
    return predictions_dir(run_dir) / f"fold_{int(fold_index):03d}.csv"


def _probability_columns(columns: Sequence[str]) -> list[str]:
    return [c for c in columns if str(c).startswith("p_")]


def write_fold_predictions(run_dir: str | Path, fold_index: int, frame: pd.DataFrame) -> Path:
    """Atomically write one finished fold's per-sample predictions to `run_dir/predictions/fold_NNN.csv`.

    frame: one row per test sample with PREDICTION_COLUMNS (`y_true`, `y_pred` integer class indices,
    `fold` == fold_index) and at least one `p_<class>` probability column. Raises ValueError naming the
    missing columns, or what else is wrong, before anything is written. Returns the file's path.
    """
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"fold {fold_index} predictions lack the columns {missing} (have {list(frame.columns)})"
        )
    if not _probability_columns(frame.columns):
        raise ValueError(f"fold {fold_index} predictions have no probability columns (p_<class>)")
    if frame.empty:
        raise ValueError(f"fold {fold_index} predictions are empty: a fold must test at least one sample")
    for col in _INT_COLUMNS:
        if not pd.api.types.is_integer_dtype(frame[col]) or frame[col].isna().any():
            raise ValueError(
                f"fold {fold_index} predictions: column {col!r} must be integer without gaps, "
                f"is {frame[col].dtype}"
            )
    k = len(_probability_columns(frame.columns))
    for col in ("y_true", "y_pred"):
        bad = (frame[col] < 0) | (frame[col] >= k)
        if bad.any():
            values = sorted(set(frame.loc[bad, col].tolist()))
            raise ValueError(
                f"fold {fold_index} predictions: {col} values {values} are "
                f"not class indices in [0, {k}) ({k} probability columns)"
            )
    folds = set(frame["fold"].tolist())
    if folds != {int(fold_index)}:
        raise ValueError(f"fold {fold_index} predictions carry fold values {sorted(folds)}")
    ordered = [*PREDICTION_COLUMNS, *[c for c in frame.columns if c not in PREDICTION_COLUMNS]]
    path = fold_path(run_dir, fold_index)
    atomic_write_text(path, frame[ordered].to_csv(index=False))
    return path


def _fold_index(name: str) -> int | None:
    """Fold index of a file name written by `fold_path`, else None (`fold_0001.csv` is not one of ours)."""
    m = _FOLD_FILE.match(name)
    if m is None or name != f"fold_{int(m.group(1)):03d}.csv":
        return None
    return int(m.group(1))


def finished_folds(run_dir: str | Path) -> set[int]:
    """Indices of the folds whose prediction file exists (temporary files of an interrupted write ignored)."""
    folder = predictions_dir(run_dir)
    if not folder.is_dir():
        return set()
    return {k for p in folder.iterdir() if (k := _fold_index(p.name)) is not None and p.is_file()}


def read_fold_predictions(path: str | Path, classes: Sequence[str] | None = None) -> pd.DataFrame:
    """One fold file, validated: columns, integer labels in range, fold column matching the file name.

    classes: the run's class names; when given, labels must lie in [0, len(classes)) and every
    `p_<class>` column must be present. Any problem raises EvaluationError naming the file (and line).
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype={c: str for c in _ID_COLUMNS}, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
        raise EvaluationError(f"{path} is not a readable predictions CSV: {err}") from err
    expected = list(PREDICTION_COLUMNS)
    if classes is not None:
        expected += [f"p_{c}" for c in classes]
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise EvaluationError(f"{path} lacks the columns {missing} (has {list(frame.columns)})")
    if frame.empty:
        raise EvaluationError(f"{path} has no rows")
    for col in _INT_COLUMNS:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() | (values != values.round())
        if bad.any():
            row = int(bad.to_numpy().argmax())
            raise EvaluationError(
                f"{path} line {row + 2}: column {col!r} must be an integer, got {frame[col].iloc[row]!r}"
            )
        frame[col] = values.astype("int64")
    if classes is not None:
        k = len(classes)
        for col in ("y_true", "y_pred"):
            bad = (frame[col] < 0) | (frame[col] >= k)
            if bad.any():
                row = int(bad.to_numpy().argmax())
                raise EvaluationError(
                    f"{path} line {row + 2}: {col} = {frame[col].iloc[row]} is not a class index in [0, {k}) "
                    f"(classes {list(classes)})"
                )
    index = _fold_index(path.name)
    if index is not None:
        other = sorted(set(frame["fold"].tolist()) - {index})
        if other:
            raise EvaluationError(f"{path} holds rows of fold(s) {other}, not only of fold {index}")
    return frame


def read_predictions(run_dir: str | Path, classes: Sequence[str] | None = None) -> pd.DataFrame:
    """All finished folds' predictions, concatenated in fold order (rows of a fold in file order).

    classes: the run's class names (from run.json) to check labels and probability columns against.
    Returns an empty frame with PREDICTION_COLUMNS when no fold has finished. A malformed file raises
    EvaluationError naming it.
    """
    frames = [read_fold_predictions(fold_path(run_dir, k), classes) for k in sorted(finished_folds(run_dir))]
    if not frames:
        return pd.DataFrame(
            {c: pd.Series(dtype="int64" if c in _INT_COLUMNS else str) for c in PREDICTION_COLUMNS}
        )
    return pd.concat(frames, ignore_index=True)


def read_run_info(run_dir: str | Path) -> dict:
    """run.json of a run directory: {fingerprint, experiment, classes, folds: [{index, name, test_subjects}]}.

    Raises FileNotFoundError if run.json is absent and EvaluationError if it is unreadable or lacks
    `classes`/`folds`; both messages name the path and say it is not a MERLin run directory.
    """
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a MERLin run directory: {path} does not exist")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise EvaluationError(
            f"{run_dir} is not a MERLin run directory: {path} is unreadable ({err})"
        ) from err
    if not isinstance(info, dict):
        raise EvaluationError(f"{run_dir} is not a MERLin run directory: {path} does not hold a JSON object")
    classes, folds = info.get("classes"), info.get("folds")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise EvaluationError(f"{path}: 'classes' must be a non-empty list of class names, got {classes!r}")
    if not isinstance(folds, list) or not all(isinstance(f, dict) and "name" in f for f in folds):
        raise EvaluationError(f"{path}: 'folds' must be a list of {{index, name, test_subjects}} objects")
    return info
