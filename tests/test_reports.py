"""Run-directory reports on a hand-built run: pooled and per-source scores, files, MEGC log, clear errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from evaluation.predictions import (
    EvaluationError,
    finished_folds,
    fold_identity,
    read_predictions,
    read_run_info,
    run_checksums,
    write_fold_predictions,
)
from evaluation.reports import REPORT_FILES, format_table, summarize, write_reports

CLASSES = ["negative", "positive", "surprise"]
FOLDS = [
    {"index": 0, "name": "casme2/sub01", "test_subjects": ["casme2/sub01"]},
    {"index": 1, "name": "samm/006", "test_subjects": ["samm/006"]},
    {"index": 2, "name": "casme2/sub02", "test_subjects": ["casme2/sub02"]},  # never finished
]
# (clip, y_true, y_pred) of the two finished folds.
FOLD_ROWS = {
    0: (
        "casme2",
        "casme2/sub01",
        [("EP02_01f", 0, 0), ("EP03_02", 0, 1), ("EP04_01", 1, 1), ("EP05_03", 2, 2)],
    ),
    1: ("samm", "samm/006", [("006_1_2", 0, 0), ("006_1_3", 0, 0), ("006_2_1", 1, 0)]),
}
EXACT = {"rel": 1e-12, "abs": 1e-12}


def fold_frame(k: int) -> pd.DataFrame:
    dataset, subject, rows = FOLD_ROWS[k]
    frame = pd.DataFrame(
        {
            "sample_id": [f"{subject}/{clip}" for clip, _, _ in rows],
            "subject": subject,
            "dataset": dataset,
            "clip": [clip for clip, _, _ in rows],
            "fold": k,
            "y_true": [t for _, t, _ in rows],
            "y_pred": [p for _, _, p in rows],
        }
    )
    for c, name in enumerate(CLASSES):
        frame[f"p_{name}"] = [0.8 if p == c else 0.1 for _, _, p in rows]
    return frame


def verified_info() -> dict:
    """A run.json as train.py writes it (format 2: settings, data and a checksum of every field)."""
    info = {
        "format": 2,
        "fingerprint": "abc123",
        "experiment": "test_exp",
        "classes": CLASSES,
        "folds": FOLDS,
        "settings": {},
        "data": {"fingerprint": "d4", "samples": []},
    }
    return {**info, "checksums": run_checksums(info)}


@pytest.fixture
def verified_run_dir(tmp_path: Path) -> Path:
    """The run of `run_dir`, written as train.py writes it: each fold file with its record."""
    run = tmp_path / "verified"
    run.mkdir()
    info = verified_info()
    (run / "run.json").write_text(json.dumps(info))
    for k in FOLD_ROWS:
        write_fold_predictions(run, k, fold_frame(k), fold_identity(info, k))
    return run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """run.json with three folds over two databases; fold 2 unfinished. Written by hand, as plain CSV: a run
    directory of an earlier MERLin (format 1, no records), which evaluation still pools, unverified."""
    run = tmp_path / "run"
    (run / "predictions").mkdir(parents=True)
    info = {"fingerprint": "abc123", "experiment": "test_exp", "classes": CLASSES, "folds": FOLDS}
    (run / "run.json").write_text(json.dumps(info))
    for k in FOLD_ROWS:
        fold_frame(k).to_csv(run / "predictions" / f"fold_{k:03d}.csv", index=False)
    return run


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]


def test_summarize_pools_finished_folds_and_names_the_missing_one(run_dir):
    s = summarize(run_dir)
    assert s["folds_done"] == 2 and s["folds_total"] == 3
    assert s["folds_missing"] == ["casme2/sub02"]
    assert s["experiment"] == "test_exp" and s["fingerprint"] == "abc123" and s["classes"] == CLASSES
    # Full, cm [[3,1,0],[1,1,0],[0,0,1]], n = 7, correct 5:
    #   negative: TP 3, FP 1, FN 1 -> F1 6/8 = 3/4, recall 3/4
    #   positive: TP 1, FP 1, FN 1 -> F1 2/4 = 1/2, recall 1/2
    #   surprise: TP 1, FP 0, FN 0 -> F1 1, recall 1
    #   UF1 = UAR = (3/4 + 1/2 + 1)/3 = 3/4
    assert s["confusion_matrix"] == [[3, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert s["uf1"] == pytest.approx(0.75, **EXACT) and s["uar"] == pytest.approx(0.75, **EXACT)
    assert s["accuracy"] == pytest.approx(5 / 7, **EXACT) and s["n"] == 7
    assert s["per_class"]["positive"] == pytest.approx(
        {"f1": 0.5, "recall": 0.5, "precision": 0.5, "support": 2}
    )
    assert list(s["per_source"]) == ["casme2", "samm"]
    # casme2, cm [[1,1,0],[0,1,0],[0,0,1]]:
    #   negative F1 2/(2+0+1) = 2/3, recall 1/2; positive F1 2/(2+1+0) = 2/3, recall 1
    #   surprise F1 1, recall 1
    #   UF1 = (2/3 + 2/3 + 1)/3 = 7/9, UAR = (1/2 + 1 + 1)/3 = 5/6, accuracy 3/4
    assert s["per_source"]["casme2"] == pytest.approx({"uf1": 7 / 9, "uar": 5 / 6, "accuracy": 0.75, "n": 4})
    # samm, cm [[2,0,0],[1,0,0],[0,0,0]]: surprise has no samples and is left out
    #   negative F1 4/(4+1+0) = 4/5, recall 1; positive F1 0, recall 0
    #   UF1 = (4/5 + 0)/2 = 2/5, UAR = (1 + 0)/2 = 1/2, accuracy 2/3
    assert s["per_source"]["samm"] == pytest.approx({"uf1": 0.4, "uar": 0.5, "accuracy": 2 / 3, "n": 3})
    assert s["per_source_classes_absent"] == {"casme2": [], "samm": ["surprise"]}


def test_write_reports_writes_every_file(run_dir):
    summary = write_reports(run_dir)
    for name in REPORT_FILES:
        assert (run_dir / name).is_file(), name
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk == summary
    for key in ("uf1", "uar", "accuracy", "n", "folds_done", "folds_missing", "per_source"):
        assert key in on_disk, key
    assert (run_dir / "megc_log.txt").read_text().splitlines() == [
        "casme2 sub01",
        "EP02_01f 0 0",
        "EP03_02 0 1",
        "EP04_01 1 1",
        "EP05_03 2 2",
        "samm 006",
        "006_1_2 0 0",
        "006_1_3 0 0",
        "006_2_1 1 0",
    ]
    md = (run_dir / "results.md").read_text()
    assert "| Full | 0.7500 | 0.7500 | 0.7143 | 7 |" in md
    assert "| samm | 0.4000 | 0.5000 | 0.6667 | 3 |" in md
    assert "| negative | 3 | 1 | 0 |" in md
    assert "Missing folds: casme2/sub02" in md
    assert (run_dir / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert leftovers(run_dir) == []
    # A summary passed in is written as given (train.py reuses the one it computed).
    assert write_reports(run_dir, summary) == summary


def test_format_table(verified_run_dir):
    summary = summarize(verified_run_dir)
    assert summary["verified"] is True
    lines = format_table(summary).splitlines()
    assert lines[0].split() == ["UF1", "UAR", "Acc", "n"]
    assert lines[1].split() == ["Full", "0.7500", "0.7500", "0.7143", "7"]
    assert lines[2].split() == ["casme2", "0.7778", "0.8333", "0.7500", "4"]
    assert lines[3].split() == ["samm", "0.4000", "0.5000", "0.6667", "3"]
    assert lines[4:] == ["folds: 2/3 done; missing: casme2/sub02"]


def test_run_dir_of_an_earlier_merlin_is_pooled_and_flagged_unverified(run_dir):
    summary = summarize(run_dir)
    assert summary["verified"] is False and summary["n"] == 7
    assert format_table(summary).splitlines()[-2:] == [
        "note: made by an earlier MERLin; its fold files carry no records and were not verified",
        "folds: 2/3 done; missing: casme2/sub02",
    ]


def test_complete_run_says_all_folds_done(verified_run_dir):
    frame = fold_frame(0).assign(
        sample_id=lambda f: f["sample_id"].str.replace("sub01", "sub02"),
        subject="casme2/sub02",
        fold=2,
    )
    write_fold_predictions(verified_run_dir, 2, frame, fold_identity(verified_info(), 2))
    s = summarize(verified_run_dir)
    assert s["folds_missing"] == [] and s["folds_done"] == 3 and s["n"] == 11
    assert format_table(s).splitlines()[-1] == "folds: 3/3 done"


def test_fold_files_that_disagree_with_their_records_are_named(verified_run_dir):
    predictions = verified_run_dir / "predictions"
    original = (predictions / "fold_000.csv").read_bytes()
    (predictions / "fold_000.csv").write_bytes(original.replace(b"EP03_02,0,0,1", b"EP03_02,0,0,0"))
    with pytest.raises(
        EvaluationError, match=r"fold_000\.csv differs from its record \(sha256\).*rerun train"
    ):
        summarize(verified_run_dir)
    (predictions / "fold_000.csv").write_bytes(original)
    (predictions / "fold_001.json").unlink()
    with pytest.raises(EvaluationError, match=r"fold_001\.csv has no record \(fold_001\.json\)"):
        summarize(verified_run_dir)
    info = verified_info()
    write_fold_predictions(
        verified_run_dir, 1, fold_frame(1), {**fold_identity(info, 1), "fingerprint": "zz9"}
    )
    with pytest.raises(EvaluationError, match=r"fold_001\.csv was made by a different experiment"):
        summarize(verified_run_dir)


@pytest.mark.parametrize("field", ["classes", "folds", "fingerprint", "settings", "data"])
def test_edited_run_json_is_an_error_naming_the_field(verified_run_dir, field):
    info = json.loads((verified_run_dir / "run.json").read_text())
    info[field] = {"classes": CLASSES[::-1], "folds": FOLDS[:2], "fingerprint": "abc124"}.get(field, {"x": 1})
    (verified_run_dir / "run.json").write_text(json.dumps(info))
    with pytest.raises(EvaluationError, match=rf"field '{field}' is not what train.py wrote"):
        summarize(verified_run_dir)


def test_class_order_must_follow_the_probability_columns(run_dir):
    info = json.loads((run_dir / "run.json").read_text())
    info["classes"] = CLASSES[::-1]
    (run_dir / "run.json").write_text(json.dumps(info))
    with pytest.raises(EvaluationError, match=r"do not follow run.json's 'classes'"):
        summarize(run_dir)


def test_write_fold_predictions_round_trip_and_atomic(tmp_path):
    for k in FOLD_ROWS:
        write_fold_predictions(tmp_path, k, fold_frame(k))
    assert finished_folds(tmp_path) == {0, 1}
    assert leftovers(tmp_path) == []
    back = read_predictions(tmp_path, CLASSES)
    expected = pd.concat([fold_frame(0), fold_frame(1)], ignore_index=True)
    pd.testing.assert_frame_equal(back, expected, check_dtype=False)


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_fold_predictions(tmp_path, 0, fold_frame(0))
    assert finished_folds(tmp_path) == set()
    assert list((tmp_path / "predictions").iterdir()) == []


def test_write_fold_predictions_names_missing_columns(tmp_path):
    with pytest.raises(ValueError, match=r"lack the columns \['clip', 'y_pred'\]"):
        write_fold_predictions(tmp_path, 0, fold_frame(0).drop(columns=["clip", "y_pred"]))
    with pytest.raises(ValueError, match=r"fold values \[0\]"):
        write_fold_predictions(tmp_path, 3, fold_frame(0))
    with pytest.raises(ValueError, match=r"y_pred values \[3\] are not class indices in \[0, 3\)"):
        write_fold_predictions(tmp_path, 0, fold_frame(0).assign(y_pred=[0, 3, 1, 2]))
    assert finished_folds(tmp_path) == set()


def test_missing_or_unreadable_run_json_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"not a MERLin run directory.*run\.json does not exist"):
        summarize(tmp_path)
    (tmp_path / "run.json").write_text("{broken")
    with pytest.raises(EvaluationError, match=r"not a MERLin run directory.*run\.json is unreadable"):
        read_run_info(tmp_path)


def test_malformed_csv_is_named(run_dir):
    bad = run_dir / "predictions" / "fold_001.csv"
    bad.write_text("this is not\na predictions file\n")
    with pytest.raises(EvaluationError, match=r"fold_001\.csv lacks the columns"):
        summarize(run_dir)
    fold_frame(1).assign(y_pred=["0", "zero", "0"]).to_csv(bad, index=False)
    with pytest.raises(EvaluationError, match=r"fold_001\.csv line 3: column 'y_pred' must be an integer"):
        summarize(run_dir)
    fold_frame(1).assign(y_true=[0, 7, 0]).to_csv(bad, index=False)
    with pytest.raises(EvaluationError, match=r"fold_001\.csv line 3: y_true = 7 is not a class index"):
        write_reports(run_dir)
    bad.write_bytes(b"")
    with pytest.raises(EvaluationError, match=r"fold_001\.csv is not a readable predictions CSV"):
        summarize(run_dir)


def test_predictions_of_the_wrong_subject_are_refused(run_dir):
    fold_frame(0).assign(fold=1).to_csv(run_dir / "predictions" / "fold_001.csv", index=False)
    with pytest.raises(
        EvaluationError, match=r"fold_001\.csv line 2: subject 'casme2/sub01' is not a test subject"
    ):
        summarize(run_dir)


def test_no_finished_fold_is_a_clear_error(run_dir):
    for p in (run_dir / "predictions").iterdir():
        p.unlink()
    with pytest.raises(EvaluationError, match="no finished folds"):
        summarize(run_dir)
