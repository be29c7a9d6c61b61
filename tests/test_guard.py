"""The leakage canary (guard.poison_test): the held-out subject is poisoned while a fold is fitted.

A recipe that never reads its test subject trains bit for bit the weights of an unguarded run; one that does
(a statistic over every row, a batch of every row) stops with a LeakageError naming the fold. The same check
over every experiment config runs in tests/test_zoo_acceptance.py (slow).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from tiny import compose_train, tiny_features

from datamodules.datamodule import MERDataModule, poisoned_features
from datamodules.protocols import make_folds
from training.checkpoints import read_checkpoint
from training.guard import LeakageError, non_finite_tensors


def _features():
    return tiny_features(per_subject=4, au=True)


def test_poisoned_features_poison_exactly_the_given_rows():
    features = _features()
    rows = [4, 5, 6, 7]
    poisoned = poisoned_features(features, rows)
    others = [i for i in range(len(features)) if i not in rows]
    assert torch.isnan(poisoned.x[rows]).all() and torch.isnan(poisoned.au[rows]).all()
    assert (poisoned.y[rows] == 3).all()  # one past the last class: no loss or count accepts it
    assert torch.equal(poisoned.x[others], features.x[others]) and torch.equal(
        poisoned.y[others], features.y[others]
    )
    assert torch.isfinite(features.x).all() and (features.y < 3).all()  # the real rows are untouched


def test_guarded_data_module_fits_on_poison_and_tests_on_the_real_rows():
    features = _features()
    folds = make_folds("loso", features.subjects, features.datasets)
    dm = MERDataModule(
        features, folds, 1, batch_size=4, normalize="none", standardize="channel", poison_test=True
    )
    dm.setup("fit")
    clean = MERDataModule(features, folds, 1, batch_size=4, normalize="none", standardize="channel")
    clean.setup("fit")
    assert torch.equal(dm.mean, clean.mean) and torch.equal(dm.std, clean.std)  # training rows only
    train_rows = torch.cat([b["index"] for b in dm.train_dataloader()])
    assert set(train_rows.tolist()).isdisjoint(dm.test_idx)
    test = next(iter(dm.test_dataloader()))
    assert torch.isfinite(test["x"]).all() and torch.equal(test["y"], features.y[dm.test_idx])


def test_streamed_inputs_are_refused_by_the_guard(tmp_path):
    from datamodules.disk_array import DiskArray

    features = _features()
    path = tmp_path / "x.npy"
    import numpy as np

    np.save(path, features.x.numpy())
    features.x = DiskArray(path)
    with pytest.raises(ValueError, match="stream_over_mb=null"):
        poisoned_features(features, [0])


def _run(tmp_path: Path, name: str, extra: list[str] = ()) -> Path:
    import train

    run_dir = tmp_path / name
    train.run(compose_train(tmp_path, run_dir, extra))
    return run_dir


def _weights(run_dir: Path, k: int) -> dict:
    return read_checkpoint(run_dir / f"fold_{k}" / "last.ckpt")["state_dict"]


def test_a_leak_free_recipe_trains_the_same_weights_under_the_guard(tmp_path):
    # Standardised inputs and class-weighted loss: a statistic and a class count, each from training rows.
    extra = ["fold=1", "datamodule.standardize=channel", "model.loss.class_weighting=inverse_frequency"]
    plain = _run(tmp_path, "plain", extra)
    guarded = _run(tmp_path, "guarded", [*extra, "guard.poison_test=true"])
    a, b = _weights(plain, 1), _weights(guarded, 1)
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
    pa = pd.read_csv(plain / "predictions" / "fold_001.csv")
    pb = pd.read_csv(guarded / "predictions" / "fold_001.csv")
    pd.testing.assert_frame_equal(pa, pb)
    run = json.loads((guarded / "run.json").read_text())
    assert run["settings"]["guard"] == {"poison_test": True}  # a guarded run is its own experiment
    assert "guard" not in json.loads((plain / "run.json").read_text())["settings"]


def test_a_statistic_over_every_row_trips_the_guard(tmp_path, monkeypatch):
    import datamodules.datamodule as dmod

    real = dmod.training_statistics

    def leaky(array, rows, normalize, standardize):  # the classic leak: normalise with the whole database
        return real(array, list(range(len(array))), normalize, standardize)

    monkeypatch.setattr(dmod, "training_statistics", leaky)
    extra = ["fold=0", "datamodule.standardize=channel", "guard.poison_test=true", "loso.strategy=sequential"]
    with pytest.raises(LeakageError, match="fold synthetic/s01.s weights are not finite"):
        _run(tmp_path, "leaky_stats", extra)


def test_a_batch_of_every_row_trips_the_guard(tmp_path, monkeypatch):
    def every_row(self):
        return self._loader(range(len(self.features)), shuffle=True)

    monkeypatch.setattr(MERDataModule, "train_dataloader", every_row)
    with pytest.raises(LeakageError, match="fold synthetic/s01"):
        _run(tmp_path, "leaky_batches", ["fold=0", "guard.poison_test=true"])


def test_the_guard_runs_folds_one_at_a_time(tmp_path):
    from training.settings import SettingError

    with pytest.raises(SettingError, match="guard.poison_test poisons"):
        _run(tmp_path, "parallel", ["guard.poison_test=true", "loso.strategy=parallel"])


def test_non_finite_tensors_names_them():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    assert non_finite_tensors(net) == []
    with torch.no_grad():
        net[0].bias[0] = math.nan
        net[1].running_var[1] = math.inf
    assert non_finite_tensors(net) == ["0.bias", "1.running_var"]
