"""Run directories: one experiment each; a different experiment is refused with the settings that differ."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import pytest

from datamodules.protocols import loso_folds
from evaluation.predictions import (
    fold_identity,
    fold_path,
    read_run_info,
    record_path,
    write_fold_predictions,
)
from training.rundir import (
    RunDirError,
    data_records,
    differing_data,
    differing_settings,
    experiment_identity,
    prepare_run_dir,
)

FOLDS = loso_folds(["synthetic/s01", "synthetic/s02"])
CLASSES = ("negative", "positive", "surprise")


def test_new_then_same_experiment(tmp_path):
    settings = {"model": {"optimizer": {"lr": 0.001}}, "seed": 0}
    prepare_run_dir(tmp_path, "exp", settings, CLASSES, FOLDS)
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["classes"] == list(CLASSES) and [f["name"] for f in info["folds"]] == [
        "synthetic/s01",
        "synthetic/s02",
    ]
    prepare_run_dir(tmp_path, "exp", settings, CLASSES, FOLDS)  # same settings: fine


def test_different_experiment_is_refused_naming_settings(tmp_path):
    prepare_run_dir(tmp_path, "exp", {"model": {"optimizer": {"lr": 0.001}}, "seed": 0}, CLASSES, FOLDS)
    with pytest.raises(RunDirError, match=r"different experiment.*model\.optimizer\.lr"):
        prepare_run_dir(tmp_path, "exp", {"model": {"optimizer": {"lr": 0.01}}, "seed": 0}, CLASSES, FOLDS)


def test_unreadable_run_json(tmp_path):
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(RunDirError, match="unreadable"):
        prepare_run_dir(tmp_path, "exp", {}, CLASSES, FOLDS)


def test_differing_settings():
    assert differing_settings({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}, "d": 4}) == ["a.c", "d"]


# ---- the data belong to the run's identity; fold files carry records of what made them ----------------


@dataclass
class _Sample:
    sample_id: str
    subject: str
    onset: int = 0
    apex: int | None = 5
    offset: int = 10


def _records(labels: dict[str, str] | None = None, onsets: dict[str, int] | None = None) -> list[dict]:
    samples = [_Sample(f"synthetic/s0{s}/c{c}", f"synthetic/s0{s}") for s in (1, 2) for c in range(4)]
    for s in samples:
        s.onset = (onsets or {}).get(s.sample_id, 0)
    names = [(labels or {}).get(s.sample_id, "negative") for s in samples]
    return data_records(samples, names, [f"key-{s.sample_id}" for s in samples])


def _write_fold(run_dir, k, settings, records, rows=3):
    info = read_run_info(run_dir)
    frame = pd.DataFrame(
        {
            "sample_id": [f"synthetic/s0{k + 1}/c{i}" for i in range(rows)],
            "subject": f"synthetic/s0{k + 1}",
            "dataset": "synthetic",
            "clip": [f"c{i}" for i in range(rows)],
            "fold": k,
            "y_true": [0] * rows,
            "y_pred": [0] * rows,
        }
    )
    for c in CLASSES:
        frame[f"p_{c}"] = 1 / 3
    identity = experiment_identity(settings, CLASSES, records)
    assert identity["fingerprint"] == fold_identity(info, k)["fingerprint"]
    fold = fold_identity(info, k)
    write_fold_predictions(
        run_dir, k, frame, {**identity, "name": fold["name"], "test_subjects": fold["test_subjects"]}
    )


SETTINGS = {"model": {"optimizer": {"lr": 0.001}}, "seed": 0}


def test_changed_labels_are_refused_per_subject(tmp_path):
    prepare_run_dir(tmp_path, "exp", SETTINGS, CLASSES, FOLDS, _records())
    _write_fold(tmp_path, 0, SETTINGS, _records())
    relabelled = {f"synthetic/s01/c{c}": "positive" for c in range(3)}
    with pytest.raises(RunDirError, match=r"other data: synthetic/s01: 3 labels differ\."):
        prepare_run_dir(tmp_path, "exp", SETTINGS, CLASSES, FOLDS, _records(relabelled))
    prepare_run_dir(tmp_path, "exp", SETTINGS, CLASSES, FOLDS, _records())  # the same data: fine


def test_data_differences_are_named():
    old = _records()
    new = [r for r in _records(onsets={"synthetic/s02/c1": 3}) if r["sample_id"] != "synthetic/s01/c0"]
    new.append({**new[0], "sample_id": "synthetic/s02/c9", "subject": "synthetic/s02"})
    new[1] = {**new[1], "features": "another key"}
    assert differing_data(old, new) == [
        "synthetic/s01: 1 sample removed, 1 sample's frames or features differ",
        "synthetic/s02: 1 sample added, 1 onset/apex/offset differs",
    ]


def test_deleted_run_json_does_not_restamp_old_predictions(tmp_path):
    prepare_run_dir(tmp_path, "exp", SETTINGS, CLASSES, FOLDS, _records())
    _write_fold(tmp_path, 0, SETTINGS, _records())
    (tmp_path / "run.json").unlink()
    other = {"model": {"optimizer": {"lr": 0.01}}, "seed": 0}
    with pytest.raises(RunDirError, match=r"no run.json.*fold_000.csv was made by a different experiment"):
        prepare_run_dir(tmp_path, "exp", other, CLASSES, FOLDS, _records())
    assert not (tmp_path / "run.json").exists()  # the refused run wrote nothing
    # The experiment the records name may adopt its own folds again.
    prepare_run_dir(tmp_path, "exp", SETTINGS, CLASSES, FOLDS, _records())
    assert read_run_info(tmp_path)["fingerprint"] == experiment_identity(SETTINGS, CLASSES)["fingerprint"]


def test_deleted_run_json_with_a_fold_file_without_record_is_refused(tmp_path):
    prepare_run_dir(tmp_path, "exp", SETTINGS, CLASSES, FOLDS, _records())
    _write_fold(tmp_path, 0, SETTINGS, _records())
    record_path(tmp_path, 0).unlink()
    (tmp_path / "run.json").unlink()
    with pytest.raises(RunDirError, match=r"fold_000.csv has no record"):
        prepare_run_dir(tmp_path, "exp", SETTINGS, CLASSES, FOLDS, _records())


def test_run_dir_that_is_a_file_is_named(tmp_path):
    path = tmp_path / "run"
    path.write_text("not a folder")
    with pytest.raises(RunDirError, match=r"run_dir .*run is a file, not a directory"):
        prepare_run_dir(path, "exp", SETTINGS, CLASSES, FOLDS, _records())


def test_run_dir_of_an_earlier_merlin_is_refused_for_training(tmp_path):
    (tmp_path / "run.json").write_text(
        json.dumps({"fingerprint": "x", "classes": list(CLASSES), "folds": []})
    )
    with pytest.raises(RunDirError, match="earlier MERLin"):
        prepare_run_dir(tmp_path, "exp", SETTINGS, CLASSES, FOLDS, _records())


def test_a_refused_claim_leaves_run_json_untouched(tmp_path):
    prepare_run_dir(tmp_path, "exp", SETTINGS, CLASSES, FOLDS, _records())
    before = (tmp_path / "run.json").read_bytes()
    with pytest.raises(RunDirError):
        prepare_run_dir(tmp_path, "exp", {"seed": 1}, CLASSES, FOLDS, _records())
    assert (tmp_path / "run.json").read_bytes() == before
    assert fold_path(tmp_path, 0).parent.exists() is False


def test_a_claim_left_by_a_killed_process_is_no_fold_file(tmp_path):
    from evaluation.reports import summarize
    from training.claims import claim_path

    prepare_run_dir(tmp_path, "exp", SETTINGS, CLASSES, FOLDS, _records())
    _write_fold(tmp_path, 0, SETTINGS, _records())
    claim_path(tmp_path, 1).parent.mkdir()
    claim_path(tmp_path, 1).write_text('{"fold": 1, "host": "gone", "pid": 1}')
    (tmp_path / "run.json").unlink()  # adopting the folds looks at every fold file there is
    prepare_run_dir(tmp_path, "exp", SETTINGS, CLASSES, FOLDS, _records())
    summary = summarize(tmp_path)
    assert summary["folds_done"] == 1 and summary["folds_missing"] == ["synthetic/s02"]
