"""model=svm: a closed-form model through the same fold loop, files and checkpoints as the networks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny import compose_train

from models.svm import SVMClassifier, load_estimator
from training.settings import SettingError

# Two subjects (two LOSO folds), Bi-WOOF descriptors: seconds.
SVM = ["experiment=biwoof_svm", "data.reader.num_subjects=2", "data.reader.clips_per_subject=6"]


def _run(tmp_path, name, extra=()):
    import train

    run_dir = tmp_path / name
    train.run(compose_train(tmp_path, run_dir, [*SVM, *extra]))
    return run_dir


def test_model_svm_runs_end_to_end_and_writes_every_report_file(tmp_path):
    from hydra.utils import instantiate

    from evaluation.predictions import read_fold_predictions
    from inference.predictor import Predictor

    run_dir = _run(tmp_path, "run")
    for name in ("run.json", "summary.json", "results.md", "confusion_matrix.png", "megc_log.txt"):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["folds_done"] == 2 and not summary["folds_missing"]
    for k in (0, 1):
        frame = read_fold_predictions(run_dir / "predictions" / f"fold_{k:03d}.csv")
        probs = frame[["p_negative", "p_positive", "p_surprise"]].to_numpy()
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        assert (probs.argmax(axis=1) == frame.y_pred.to_numpy()).all()  # the scores rank as the SVM votes
    # The checkpoint holds the fitted estimator (skops, no pickle) and rebuilds fold 0's predictions.
    checkpoint = torch.load(run_dir / "fold_0" / "last.ckpt", weights_only=True)
    assert checkpoint["state_dict"] == {} and checkpoint["estimator"].dtype == torch.uint8
    assert checkpoint["merlin"]["train_subjects"] == ["synthetic/s02"]
    cfg = compose_train(tmp_path, run_dir, SVM)
    samples = {s.sample_id: s for s in instantiate(cfg.data.reader).samples}
    frame = read_fold_predictions(run_dir / "predictions" / "fold_000.csv")
    predictor = Predictor.from_checkpoint(run_dir / "fold_0" / "last.ckpt")
    again = predictor.predict([samples[i] for i in frame.sample_id])
    np.testing.assert_allclose(again, frame[[f"p_{c}" for c in predictor.classes]].to_numpy(), atol=1e-5)


def test_the_svm_fits_the_same_under_the_leakage_canary(tmp_path):
    from evaluation.predictions import read_fold_predictions

    plain = _run(tmp_path, "plain")
    guarded = _run(tmp_path, "guarded", ["guard.poison_test=true"])
    for k in (0, 1):
        a = read_fold_predictions(plain / "predictions" / f"fold_{k:03d}.csv")
        b = read_fold_predictions(guarded / "predictions" / f"fold_{k:03d}.csv")
        np.testing.assert_array_equal(a.filter(like="p_").to_numpy(), b.filter(like="p_").to_numpy())


def test_a_grid_is_searched_on_inner_validation_subjects_only(tmp_path):
    extra = ["data.reader.num_subjects=4", "selection=inner", "model.svm.grid={C:[0.01,1.0,100.0]}", "fold=0"]
    run_dir = _run(tmp_path, "inner", extra)
    record = json.loads((run_dir / "fold_0" / "selection.json").read_text())
    assert [t["setting"]["C"] for t in record["tried"]] == [0.01, 1.0, 100.0]
    assert record["chosen"] in [t["setting"] for t in record["tried"]]
    best = max(t["uf1"] for t in record["tried"])
    assert record["chosen"] == next(t["setting"] for t in record["tried"] if t["uf1"] == best)  # earliest
    assert record["validation_rows"] == 6  # one inner subject of six clips, never the held-out s01
    with pytest.raises(SettingError, match="selection=inner"):
        _run(tmp_path, "fixed", ["model.svm.grid={C:[1.0,10.0]}"])


def test_descriptors_refuse_map_normalisation_and_bad_svm_settings(tmp_path):
    with pytest.raises(ValueError, match="datamodule.normalize=none"):
        _run(tmp_path, "minmax", ["datamodule.normalize=minmax"])
    with pytest.raises(SettingError, match="model.svm"):
        _run(tmp_path, "kernel", ["model.svm.kernel=poly"])


def test_two_class_scores_and_absent_classes():
    """A fold whose training rows lack a class never predicts it, and its scores still sum to one."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (10, 4)), rng.normal(3, 1, (10, 4))])
    y = np.array([0] * 10 + [2] * 10)
    svm = SVMClassifier(("a", "b", "c")).fit(x, y)
    predicted, probs = svm.predict(x)
    assert set(predicted) <= {0, 2} and (probs[:, 1] == 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    assert (probs.argmax(axis=1) == predicted).all() and (predicted == y).mean() > 0.9
    restored = load_estimator(svm.dumps())
    np.testing.assert_array_equal(restored.decision_function(x), svm.estimator.decision_function(x))
