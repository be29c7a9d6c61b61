"""A checkpoint alone rebuilds the model and its input pipeline (inference.predictor), exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny import compose_train

from inference.predictor import Predictor
from training.checkpoints import CheckpointError


@pytest.fixture(scope="module")
def fold_run(tmp_path_factory):
    """Fold 0 of the tiny LOSO experiment, standardised per channel (so statistics must travel too)."""
    import train

    tmp = tmp_path_factory.mktemp("predictor")
    cfg = compose_train(tmp, tmp / "run", ["fold=0", "datamodule.standardize=channel"])
    train.run(cfg)
    return cfg, tmp / "run"


def test_the_checkpoint_predicts_what_the_fold_predicted(fold_run):
    from hydra.utils import instantiate

    from evaluation.predictions import read_fold_predictions

    cfg, run_dir = fold_run
    predictor = Predictor.from_checkpoint(run_dir / "fold_0" / "last.ckpt")
    assert predictor.classes == ("negative", "positive", "surprise")
    assert predictor.label_map == "synthetic" and predictor.inputs == ("x",)
    mean, std = predictor.statistics["x"]
    assert mean.shape == (3, 1, 1) and not torch.equal(std, torch.ones_like(std))  # fitted, not defaults
    frame = read_fold_predictions(run_dir / "predictions" / "fold_000.csv")
    samples = {s.sample_id: s for s in instantiate(cfg.data.reader).samples}
    probabilities = predictor.predict([samples[i] for i in frame.sample_id])
    expected = frame[[f"p_{c}" for c in predictor.classes]].to_numpy()
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    assert "synthetic/s01" not in predictor.train_subjects  # fold 0 held s01 out


def _edited(run_dir, tmp_path, edit):
    checkpoint = torch.load(run_dir / "fold_0" / "last.ckpt", weights_only=True)
    edit(checkpoint)
    path = tmp_path / "edited.ckpt"
    torch.save(checkpoint, path)
    return path


def test_checkpoints_that_cannot_feed_the_model_are_refused_naming_the_file(fold_run, tmp_path):
    _, run_dir = fold_run

    def drop_pipeline(c):
        del c["merlin"]["pipeline"]

    def other_spec(c):
        c["merlin"]["pipeline"]["feature_keys"]["x"] = "0" * 64

    def newer(c):
        c["merlin"]["pipeline"]["format"] = 99

    def foreign_net(c):
        c["merlin"]["net"]["_target_"] = "os.system"

    def wrong_weights(c):
        c["state_dict"] = {k: v for k, v in c["state_dict"].items() if "fc" not in k}

    cases = {
        drop_pipeline: "did not keep its input pipeline",
        other_spec: "another feature spec",
        newer: "newer than this MERLin",
        foreign_net: "not one of MERLin's",
        wrong_weights: "do not fit the network",
    }
    for edit, message in cases.items():
        path = _edited(run_dir, tmp_path, edit)
        with pytest.raises(CheckpointError, match=message) as err:
            Predictor.from_checkpoint(path)
        assert str(path) in str(err.value)
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match="not a checkpoint written by MERLin"):
        Predictor.from_checkpoint(plain)
    with pytest.raises(CheckpointError, match="not found"):
        Predictor.from_checkpoint(tmp_path / "missing.ckpt")
