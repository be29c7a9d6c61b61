"""MERDataModule: dict batches, one fold's subjects, statistics from the training fold only."""

from __future__ import annotations

import pytest
import torch

from datamodules.augment import FlowAugment
from datamodules.datamodule import FeatureSet, MERDataModule, normalize_per_sample
from datamodules.protocols import loso_folds


def _features(n_subjects: int = 3, per_subject: int = 4) -> FeatureSet:
    subjects = [f"synthetic/s{s + 1:02d}" for s in range(n_subjects) for _ in range(per_subject)]
    n = len(subjects)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 8, 8, generator=g)
    # The held-out subject of fold 0 (s01) gets wildly different features: if its values leaked into the
    # statistics, the mean would show it.
    x[:per_subject] += 1000.0
    return FeatureSet(
        x=x,
        y=torch.arange(n) % 3,
        sample_ids=[f"{s}/c{i}" for i, s in enumerate(subjects)],
        subjects=subjects,
        datasets=["synthetic"] * n,
        clips=[f"c{i}" for i in range(n)],
        classes=("negative", "positive", "surprise"),
        channels=("u", "v", "strain"),
    )


def test_batches_are_dicts_of_the_fold():
    fs = _features()
    folds = loso_folds(fs.subjects)
    dm = MERDataModule(fs, folds, fold=1, batch_size=5, normalize="none")
    dm.setup("fit")
    test = list(dm.test_dataloader())
    assert set(test[0]) == {"x", "y", "sample_id", "index"}
    ids = [i for b in test for i in b["sample_id"]]
    assert ids == [i for i in fs.sample_ids if i.startswith("synthetic/s02/")]
    train_ids = {i for b in dm.train_dataloader() for i in b["sample_id"]}
    assert len(train_ids) == 8 and not any(i.startswith("synthetic/s02/") for i in train_ids)
    assert test[0]["x"].shape == (4, 3, 8, 8)


def test_standardisation_statistics_never_see_the_test_subject():
    fs = _features()
    folds = loso_folds(fs.subjects)
    dm = MERDataModule(fs, folds, fold=0, normalize="none", standardize="channel")
    dm.setup("fit")
    train = fs.x[4:]
    assert torch.allclose(dm.mean.flatten(), train.mean(dim=(0, 2, 3)), atol=1e-5)
    assert dm.mean.max() < 2  # the +1000 test subject is not in it
    zc = MERDataModule(fs, folds, fold=0, normalize="none", standardize="zero_center")
    zc.setup()
    assert torch.allclose(zc.mean, train.mean(0), atol=1e-5)
    # Standardised training features have zero mean per channel.
    out = dm.transform(train, train=False)
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)


def test_train_class_counts_from_training_fold():
    fs = _features()
    dm = MERDataModule(fs, loso_folds(fs.subjects), fold=2)
    assert dm.train_class_counts.tolist() == torch.bincount(fs.y[:8], minlength=3).tolist()


def test_minmax_per_sample_and_constant_maps():
    x = torch.tensor([[[[1.0, 3.0], [2.0, 5.0]], [[7.0, 7.0], [7.0, 7.0]]]])
    y = normalize_per_sample(x, "minmax")
    assert torch.allclose(y[0, 0], torch.tensor([[0.0, 0.5], [0.25, 1.0]]))
    assert torch.equal(y[0, 1], torch.zeros(2, 2))
    with pytest.raises(ValueError, match="unknown normalize"):
        normalize_per_sample(x, "zscore")


def test_augmentation_only_when_training():
    fs = _features()
    dm = MERDataModule(
        fs, loso_folds(fs.subjects), fold=0, normalize="none", augment=FlowAugment(fs.channels, hflip=1.0)
    )
    x = fs.x[4:6]
    assert torch.allclose(dm.transform(x, train=True)[:, 0], -x[:, 0].flip(-1))
    assert torch.equal(dm.transform(x, train=False), x)


def test_bad_arguments():
    fs = _features()
    folds = loso_folds(fs.subjects)
    with pytest.raises(ValueError, match="fold 3 does not exist"):
        MERDataModule(fs, folds, fold=3)
    with pytest.raises(ValueError, match="unknown standardize"):
        MERDataModule(fs, folds, fold=0, standardize="whiten")
