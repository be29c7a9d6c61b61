"""Run directories: one experiment each; a different experiment is refused with the settings that differ."""

from __future__ import annotations

import json

import pytest

from datamodules.protocols import loso_folds
from training.rundir import RunDirError, differing_settings, prepare_run_dir

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
