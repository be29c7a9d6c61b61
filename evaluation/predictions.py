"""Per-fold prediction files of a run directory: written atomically, read back with their errors named.

Layout (the training loop writes it, `evaluation.reports` reads it):

    run_dir/run.json                      experiment, fingerprint, classes, folds, settings, data, checksums
    run_dir/predictions/fold_000.csv      one per finished fold (3-digit fold index)
    run_dir/predictions/fold_000.json     its record: what made it (settings and data fingerprints, classes,
                                          fold) and what it holds (row count, sha256 of the file's bytes)

A fold file exists only once its fold has finished: it is written to a temporary file in the same folder,
fsynced and renamed over the final name, so a crash never leaves a half-written `fold_NNN.csv`. Its record
is written just before it (a process pooling the run meanwhile never finds a new fold file without its
record); a fold counts as finished only when the two agree with each other and with run.json.
So a file that lost rows, a file left by another experiment (run.json deleted, then other settings) or a
file whose record never got written is never pooled. `run.json` carries a checksum of each field, so a
hand-edited class order or fold list is an error naming the field, not silently swapped results.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from utils.atomic import atomic_write_bytes, atomic_write_json

# Version of the run-directory layout. 1 (no `format` key): run.json without data or checksums, fold files
# without records; such directories are still pooled by evaluate.py, flagged as unverified. 2: this module.
RUN_FORMAT = 2
# The run.json fields train.py writes, each with its checksum in `checksums`.
RUN_FIELDS = ("format", "experiment", "fingerprint", "classes", "folds", "settings", "data")
# Fields added later, checksummed when present; a run.json written before them stays valid without them.
# train_subjects: per fold (in fold order), the subjects its checkpoint was trained on.
OPTIONAL_RUN_FIELDS = ("train_subjects",)
# What a fold record must agree on with run.json (and its fold entry) for the fold to be trusted.
IDENTITY_KEYS = ("fingerprint", "data_fingerprint", "classes", "name", "test_subjects")

# Columns every fold file has, besides one probability column `p_<class>` per class.
PREDICTION_COLUMNS = ("sample_id", "subject", "dataset", "clip", "fold", "y_true", "y_pred")
_ID_COLUMNS = ("sample_id", "subject", "dataset", "clip")
_INT_COLUMNS = ("fold", "y_true", "y_pred")
_FOLD_FILE = re.compile(r"^fold_(\d{3,})\.csv$")


class EvaluationError(ValueError):
    """A run directory or one of its files is not what evaluation expects; the message names the file."""


def digest(obj: object) -> str:
    """sha256 hex of `obj` as canonical JSON (keys sorted, no spaces): fingerprints and run.json checksums."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def run_checksums(info: Mapping) -> dict[str, str]:
    """Checksum of each RUN_FIELDS (and OPTIONAL_RUN_FIELDS) entry of a run.json dict (absent fields are
    left out)."""
    return {name: digest(info[name]) for name in (*RUN_FIELDS, *OPTIONAL_RUN_FIELDS) if name in info}


def predictions_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "predictions"


def fold_path(run_dir: str | Path, fold_index: int) -> Path:
    """`run_dir/predictions/fold_NNN.csv` (at least 3 digits, so names sort in fold order)."""
    return predictions_dir(run_dir) / f"fold_{int(fold_index):03d}.csv"


def record_path(run_dir: str | Path, fold_index: int) -> Path:
    """`run_dir/predictions/fold_NNN.json`: the record written after fold NNN's predictions."""
    return predictions_dir(run_dir) / f"fold_{int(fold_index):03d}.json"


def fold_identity(info: Mapping, fold_index: int) -> dict:
    """What fold `fold_index`'s record must match: run.json's fingerprints, classes and that fold's entry."""
    folds = {int(f.get("index", i)): f for i, f in enumerate(info["folds"])}
    fold = folds.get(int(fold_index), {})
    data = info.get("data") or {}
    return {
        "fingerprint": info.get("fingerprint"),
        "data_fingerprint": data.get("fingerprint"),
        "classes": list(info["classes"]),
        "name": fold.get("name"),
        "test_subjects": list(fold.get("test_subjects", [])),
    }


def _probability_columns(columns: Sequence[str]) -> list[str]:
    return [c for c in columns if str(c).startswith("p_")]


def write_fold_predictions(
    run_dir: str | Path, fold_index: int, frame: pd.DataFrame, identity: Mapping | None = None
) -> Path:
    """Atomically write one finished fold's record `run_dir/predictions/fold_NNN.json` (row count, sha256
    of the predictions' bytes, and `identity`), then its per-sample predictions `fold_NNN.csv`.

    frame: one row per test sample with PREDICTION_COLUMNS (`y_true`, `y_pred` integer class indices,
    `fold` == fold_index) and at least one `p_<class>` probability column. identity: what made the fold
    (IDENTITY_KEYS, as `fold_identity` gives them for the run). Raises ValueError naming the missing
    columns, or what else is wrong, before anything is written. Returns the predictions file's path.
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
    data = frame[ordered].to_csv(index=False).encode("utf-8")
    record = {
        "format": RUN_FORMAT,
        "fold": int(fold_index),
        "file": path.name,
        "rows": len(frame),
        "sha256": hashlib.sha256(data).hexdigest(),
        **{k: v for k, v in dict(identity or {}).items() if k in IDENTITY_KEYS},
    }
    # The record first: a process pooling the run meanwhile (another cluster job's reports) finds a new fold
    # file only once its record is there to check it against; a crash in between leaves a record without
    # predictions, which is an unfinished fold.
    atomic_write_json(record_path(run_dir, fold_index), record, what="fold record")
    atomic_write_bytes(path, data, what="fold predictions")
    return path


def _rows_in(data: bytes) -> int:
    # Rows written by pandas end in "\n"; ids never hold line breaks. A torn last line still counts as a row.
    lines = data.split(b"\n")
    return max(len([line for line in lines if line.strip()]) - 1, 0)


def fold_problem(run_dir: str | Path, fold_index: int, identity: Mapping | None = None) -> str | None:
    """Why fold `fold_index`'s predictions file cannot be trusted, or None when it can.

    Trusted: the file and its record exist, the file has the rows and sha256 its record gives, and (when
    `identity` is given) the record agrees with it on every IDENTITY_KEYS entry that identity holds.
    """
    path, rec_path = fold_path(run_dir, fold_index), record_path(run_dir, fold_index)
    if not path.is_file():
        return f"{path} does not exist"
    if not rec_path.is_file():
        return f"{path} has no record ({rec_path.name}): its fold did not finish writing"
    try:
        record = json.loads(rec_path.read_text(encoding="utf-8"))
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return f"{rec_path} is unreadable ({err})"
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != record.get("sha256"):
        rows = _rows_in(data)
        if rows != record.get("rows"):
            return (
                f"{path} has {rows} rows, its record says {record.get('rows')}: "
                "the file was changed after its fold wrote it"
            )
        return f"{path} differs from its record (sha256): the file was changed after its fold wrote it"
    for key in IDENTITY_KEYS:
        if identity is None or key not in identity or identity[key] is None:
            continue
        if record.get(key) != identity[key]:
            old, new = record.get(key), identity[key]
            if key in ("fingerprint", "data_fingerprint"):
                what = "settings" if key == "fingerprint" else "data"
                old, new = str(old)[:12], str(new)[:12]
                return (
                    f"{path} was made by a different experiment: its record's {what} fingerprint is {old}, "
                    f"this run's is {new}"
                )
            return f"{path}: its record says {key} {old!r}, run.json says {new!r}"
    return None


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
    if classes is not None and _probability_columns(frame.columns) != [f"p_{c}" for c in classes]:
        # Labels are indices into the class list: another order would swap per-class results silently.
        raise EvaluationError(
            f"{path}: probability columns {_probability_columns(frame.columns)} do not follow run.json's "
            f"'classes' {list(classes)}; run.json's class list was changed"
        )
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


def read_predictions(
    run_dir: str | Path, classes: Sequence[str] | None = None, info: Mapping | None = None
) -> pd.DataFrame:
    """All finished folds' predictions, concatenated in fold order (rows of a fold in file order).

    classes: the run's class names (from run.json) to check labels and probability columns against.
    info: the run's run.json (format 2); every fold file must then agree with its record and the record
    with run.json (`fold_problem`). Returns an empty frame with PREDICTION_COLUMNS when no fold has
    finished. A malformed or untrusted file raises EvaluationError naming it and what to do.
    """
    frames = []
    for k in sorted(finished_folds(run_dir)):
        if info is not None:
            problem = fold_problem(run_dir, k, fold_identity(info, k))
            if problem is not None:
                raise EvaluationError(
                    f"{problem}. It is not pooled: rerun train.py with run_dir={run_dir} "
                    "to train that fold again"
                )
        frames.append(read_fold_predictions(fold_path(run_dir, k), classes))
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
    if "format" in info:
        _check_integrity(path, info)
    return info


def _check_integrity(path: Path, info: Mapping) -> None:
    """A format-2 run.json must be exactly what train.py wrote: every field present, every checksum right."""
    if info["format"] != RUN_FORMAT:
        raise EvaluationError(
            f"{path}: run-directory format {info['format']!r}; this MERLin reads format {RUN_FORMAT}"
        )
    checksums = info.get("checksums")
    if not isinstance(checksums, dict):
        raise EvaluationError(
            f"{path}: field 'checksums' is missing; this is not the run.json train.py wrote"
        )
    for name in RUN_FIELDS:
        if name not in info:
            raise EvaluationError(
                f"{path}: field {name!r} is missing; this is not the run.json train.py wrote"
            )
        if checksums.get(name) != digest(info[name]):
            raise EvaluationError(
                f"{path}: field {name!r} is not what train.py wrote (it was edited: its checksum differs). "
                "Restore it, or train into a new run_dir"
            )
    for name in OPTIONAL_RUN_FIELDS:
        if (name in info or name in checksums) and checksums.get(name) != digest(info.get(name)):
            raise EvaluationError(
                f"{path}: field {name!r} is not what train.py wrote (it was edited: its checksum differs). "
                "Restore it, or train into a new run_dir"
            )
