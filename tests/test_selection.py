"""Model selection without the held-out subject (selection=inner) and the oracle-epoch diagnostic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tiny import compose_train, tiny_features

from evaluation.metrics import pooled_scores
from evaluation.oracle import ORACLE_LABEL, oracle_report
from training.checkpoints import read_checkpoint


def _cfg(tmp_path: Path, run_dir: Path, extra: list[str]):
    return compose_train(tmp_path, run_dir, ["loso.strategy=sequential", *extra])


def _run(tmp_path: Path, name: str, extra: list[str]) -> Path:
    import train

    run_dir = tmp_path / name
    train.run(_cfg(tmp_path, run_dir, extra))
    return run_dir


def _predictions(run_dir: Path, k: int = 0) -> pd.DataFrame:
    return pd.read_csv(run_dir / "predictions" / f"fold_{k:03d}.csv")


def test_oracle_diagnostic_changes_nothing_and_only_adds_its_labelled_files(tmp_path):
    plain = _run(tmp_path, "plain", ["trainer.max_epochs=4"])
    watched = _run(tmp_path, "watched", ["trainer.max_epochs=4", "diagnostics.oracle_epoch=true"])
    for k in range(3):
        pd.testing.assert_frame_equal(_predictions(plain, k), _predictions(watched, k), check_exact=True)
        a = read_checkpoint(plain / f"fold_{k}" / "last.ckpt")["state_dict"]
        b = read_checkpoint(watched / f"fold_{k}" / "last.ckpt")["state_dict"]
        assert all(torch.equal(a[key], b[key]) for key in a)
        # The last epoch it recorded is the fold's own prediction.
        record = json.loads((watched / f"fold_{k}" / "oracle_epochs.json").read_text())
        assert len(record["y_pred_by_epoch"]) == 4
        assert record["y_pred_by_epoch"][-1] == _predictions(watched, k)["y_pred"].tolist()
    # Not part of the experiment: same fingerprint, and summary.json holds no oracle number.
    assert (
        json.loads((plain / "run.json").read_text())["fingerprint"]
        == json.loads((watched / "run.json").read_text())["fingerprint"]
    )
    summary = json.loads((watched / "summary.json").read_text())
    assert not any("oracle" in key for key in summary)
    oracle = json.loads((watched / "oracle.json").read_text())
    assert oracle["label"] == ORACLE_LABEL and ORACLE_LABEL in (watched / "results.md").read_text()
    # Each fold at its best epoch on its own test subject can only gain correct predictions.
    assert oracle["accuracy"] >= summary["accuracy"]
    assert not (plain / "oracle.json").exists() and ORACLE_LABEL not in (plain / "results.md").read_text()


def test_oracle_report_pools_each_folds_best_test_epoch(tmp_path):
    # fold 0: epoch 2 is best (2/3 right); fold 1: epochs 1 and 3 tie (1/2), the earliest is kept.
    records = {
        0: {"y_true": [0, 1, 2], "y_pred_by_epoch": [[0, 0, 0], [0, 1, 0], [1, 1, 1]]},
        1: {"y_true": [2, 1], "y_pred_by_epoch": [[2, 0], [0, 0], [2, 2]]},
    }
    for k, record in records.items():
        (tmp_path / f"fold_{k}").mkdir()
        payload = {"label": ORACLE_LABEL, "fold": f"f{k}", "index": [], **record}
        (tmp_path / f"fold_{k}" / "oracle_epochs.json").write_text(json.dumps(payload))
    report = oracle_report(tmp_path, ["a", "b", "c"], [{"index": 0}, {"index": 1}, {"index": 2}])
    assert report["chosen_epochs"]["f0"]["epoch"] == 2 and report["chosen_epochs"]["f1"]["epoch"] == 1
    expected = pooled_scores(np.array([0, 1, 2, 2, 1]), np.array([0, 1, 0, 2, 0]), 3)
    assert report["uf1"] == pytest.approx(expected["uf1"]) and report["accuracy"] == pytest.approx(3 / 5)
    assert report["folds"] == 2 and json.loads((tmp_path / "oracle.json").read_text()) == report


def test_inner_validation_is_drawn_from_training_subjects_and_never_fitted_on(tmp_path):
    import train
    from datamodules.datamodule import training_statistics

    cfg = _cfg(tmp_path, tmp_path / "unused", ["selection=inner", "datamodule.standardize=channel"])
    draw = train._validation_subjects(cfg, _Subjects(), _FOLDS)
    for k, fold in enumerate(_FOLDS):
        chosen = draw(k)
        assert len(chosen) == 1 and not set(chosen) & fold.test_subjects
    assert draw(0) == draw(0)  # seeded: the same subjects on a rerun
    features = _features()
    from datamodules.datamodule import MERDataModule

    dm = MERDataModule(
        features, _FOLDS, 0, normalize="none", standardize="channel", validation_subjects=["d/s1"]
    )
    dm.setup("fit")
    val = {features.subjects[i] for i in dm.val_idx}
    train_ = {features.subjects[i] for i in dm.train_idx}
    assert val == {"d/s1"} and train_ == {"d/s2"}
    mean, _ = training_statistics(features.x, dm.train_idx, "none", "channel")
    assert torch.equal(dm.mean, mean)  # from the inner training rows only
    assert set(torch.cat([b["index"] for b in dm.train_dataloader()]).tolist()) == set(dm.train_idx)
    assert int(dm.train_class_counts.sum()) == len(dm.train_idx)
    with pytest.raises(ValueError, match="test subjects"):
        MERDataModule(features, _FOLDS, 0, validation_subjects=["d/s0"])


def test_inner_selection_tests_the_chosen_epochs_weights(tmp_path):
    # UF1 on a tiny validation subject ties across epochs: the earliest best is kept, so the chosen epoch
    # lies before the last one, and the fold must be tested with that epoch's weights, not the last.
    inner = ["selection=inner", "inner_validation.monitor=uf1", "fold=0"]
    long = _run(tmp_path, "long", ["trainer.max_epochs=4", *inner])
    record = json.loads((long / "fold_0" / "selection.json").read_text())
    best = record["best_epoch"]
    assert best < 4 and record["epochs_trained"] == 4 and len(record["curve"]) == 4
    assert record["validation_subjects"] and record["monitor"] == "val/uf1"
    values = [row["uf1"] for row in record["curve"]]
    assert values.index(max(values)) + 1 == best
    short = _run(tmp_path, "short", [f"trainer.max_epochs={best}", *inner])
    pd.testing.assert_frame_equal(_predictions(long), _predictions(short), check_exact=True)
    # The validation subjects chose the weights: the checkpoint counts them among the subjects it has seen.
    provenance = read_checkpoint(long / "fold_0" / "last.ckpt")["merlin"]
    assert set(record["validation_subjects"]) <= set(provenance["train_subjects"])


def test_patience_stops_a_fold_early(tmp_path):
    run = _run(
        tmp_path,
        "patient",
        [
            "trainer.max_epochs=8",
            "selection=inner",
            "inner_validation.monitor=uf1",
            "inner_validation.patience=1",
            "fold=0",
        ],
    )
    record = json.loads((run / "fold_0" / "selection.json").read_text())
    assert record["stopped_early"] and record["epochs_trained"] == record["best_epoch"] + 1 < 8


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("selection=oracle", "selection"),
        ("inner_validation.monitor=acc", "inner_validation.monitor"),
        ("inner_validation.subjects=0", "inner_validation.subjects"),
        ("inner_validation.subjects=1.5", "inner_validation.subjects"),
        ("inner_validation.patience=0", "inner_validation.patience"),
        ("diagnostics.oracle_epoch=maybe", "diagnostics.oracle_epoch"),
    ],
)
def test_bad_selection_settings_are_refused_naming_the_key(tmp_path, override, key):
    from omegaconf import OmegaConf

    from training.settings import SettingError, check_settings

    with pytest.raises(SettingError, match=f"^{key}="):
        check_settings(OmegaConf.to_container(_cfg(tmp_path, tmp_path / "r", [override]), resolve=True))


def test_too_many_validation_subjects_and_parallel_mode_are_refused(tmp_path):
    from training.settings import SettingError

    with pytest.raises(SettingError, match="inner_validation.subjects=2"):
        _run(tmp_path, "many", ["selection=inner", "inner_validation.subjects=2", "trainer.max_epochs=1"])
    with pytest.raises(SettingError, match="selection=inner chooses"):
        _run(tmp_path, "parallel", ["selection=inner", "loso.strategy=parallel", "trainer.max_epochs=1"])


def _features():
    return tiny_features()


class _Subjects:
    subjects = [f"d/s{i // 3}" for i in range(9)]


def _folds():
    from datamodules.protocols import make_folds

    return make_folds("loso", _Subjects.subjects, ["d"] * 9)


_FOLDS = _folds()
