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
        fs,
        loso_folds(fs.subjects),
        fold=0,
        normalize="none",
        augment=FlowAugment(fs.channels["x"], hflip=1.0),
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


def _train_epochs(dm: MERDataModule, epochs: int, train_transform: bool = False) -> list:
    """Per epoch, per batch: the `index` tensor (and the transformed x), fetched as Lightning does."""
    loader = dm.train_dataloader()
    out = []
    for _ in range(epochs):
        for batch in loader:
            x = dm.transform(batch["x"], train=True) if train_transform else None
            out.append((batch["index"], x))
    return out


def test_default_shuffle_is_the_plain_random_sampler_order_for_any_num_workers():
    # Un-augmented runs must keep the orders MERLin always gave: those of a single-process
    # DataLoader(shuffle=True, generator=Generator().manual_seed(seed)), one iterator per epoch.
    fs = _features(per_subject=7)
    folds = loso_folds(fs.subjects)
    seed, batch_size, epochs = 7, 4, 3  # 14 training samples: the last batch of each epoch is short
    train_idx = torch.arange(7, 21)
    plain = torch.utils.data.DataLoader(
        list(range(14)), batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    expected = [train_idx[b].tolist() for _ in range(epochs) for b in plain]
    for workers in (0, 2):
        dm = MERDataModule(fs, folds, fold=0, batch_size=batch_size, num_workers=workers, seed=seed)
        got = [index.tolist() for index, _ in _train_epochs(dm, epochs)]
        assert got == expected, f"num_workers={workers}"


def test_num_workers_do_not_change_augmented_batches():
    fs = _features(per_subject=7)
    folds = loso_folds(fs.subjects)
    augment = FlowAugment(fs.channels["x"], hflip=0.5, rotate_degrees=10)
    runs = [
        _train_epochs(
            MERDataModule(fs, folds, fold=1, batch_size=4, augment=augment, num_workers=w, seed=3), 3, True
        )
        for w in (0, 2)
    ]
    assert len(runs[0]) == len(runs[1]) == 12
    for (i0, x0), (i2, x2) in zip(*runs, strict=True):
        assert torch.equal(i0, i2) and torch.equal(x0, x2)
    plain = MERDataModule(fs, folds, fold=1)  # no augmentation: some batches must differ from it
    assert any(not torch.equal(x, plain.transform(fs.x[i], train=False)) for i, x in runs[0])


def test_trainer_predictions_do_not_depend_on_num_workers():
    from functools import partial

    import lightning.pytorch as L

    from losses import CrossEntropyLoss
    from models.classifier import MERClassifier
    from models.ststnet import STSTNet
    from training.loop import quiet_lightning

    quiet_lightning()
    g = torch.Generator().manual_seed(1)
    fs = _features(per_subject=7)
    fs.x = torch.randn(21, 3, 28, 28, generator=g)
    folds = loso_folds(fs.subjects)

    def predictions(workers: int) -> torch.Tensor:
        L.seed_everything(11, workers=True, verbose=False)
        dm = MERDataModule(
            fs,
            folds,
            0,
            batch_size=4,
            augment=FlowAugment(fs.channels["x"], hflip=0.5),
            num_workers=workers,
            seed=11,
        )
        dm.setup("fit")
        model = MERClassifier(
            STSTNet(3, 3),
            CrossEntropyLoss(class_counts=dm.train_class_counts),
            partial(torch.optim.Adam, lr=1e-2),
            None,
            fs.classes,
        )
        trainer = L.Trainer(
            max_epochs=2,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            deterministic=True,
        )
        trainer.fit(model, datamodule=dm)
        trainer.test(model, datamodule=dm, verbose=False)
        return torch.as_tensor(model.test_predictions["probs"])

    assert torch.equal(predictions(0), predictions(2))


# ---- named inputs and AU targets ------------------------------------------------------------------------


def _two_inputs(per_subject: int = 4) -> FeatureSet:
    """Inputs `flow` (u, v, magnitude at 8x8) and `strain` (1 channel at 12x12); row i of each holds i, so
    a batch shows whether both inputs come from the same samples. The held-out subject s01 is +1000."""
    fs = _features(per_subject)
    n = len(fs)
    rows = torch.arange(n, dtype=torch.float32)
    flow = rows.view(n, 1, 1, 1).expand(n, 3, 8, 8).clone() + torch.rand(n, 3, 8, 8)
    strain = rows.view(n, 1, 1, 1).expand(n, 1, 12, 12).clone()
    flow[:per_subject] += 1000.0
    strain[:per_subject] += 1000.0
    return FeatureSet(
        inputs={"flow": flow, "strain": strain},
        channels={"flow": ("u", "v", "magnitude"), "strain": ("strain",)},
        y=fs.y,
        sample_ids=fs.sample_ids,
        subjects=fs.subjects,
        datasets=fs.datasets,
        clips=fs.clips,
        classes=fs.classes,
        au=torch.zeros(n, 2),
        au_mask=torch.ones(n, 2, dtype=torch.bool),
        au_names=("4", "12"),
    )


def test_named_inputs_come_from_the_same_samples_with_training_fold_statistics():
    fs = _two_inputs()
    dm = MERDataModule(
        fs, loso_folds(fs.subjects), fold=0, batch_size=5, normalize="none", standardize="channel"
    )
    dm.setup("fit")
    for batch in dm.train_dataloader():
        assert set(batch) >= {"flow", "strain", "y", "index", "au", "au_mask"} and "x" not in batch
        assert batch["flow"].shape[1:] == (3, 8, 8) and batch["strain"].shape[1:] == (1, 12, 12)
        index = batch["index"].float()
        assert torch.equal(batch["strain"][:, 0, 0, 0], index)  # row i holds i in both inputs
        assert torch.equal(batch["flow"][:, 0, 0, 0].floor(), index)
    train = dm.train_idx
    for name in ("flow", "strain"):
        mean, _ = dm.stats[name]
        expected = fs.inputs[name][train].mean(dim=(0, 2, 3))
        assert torch.allclose(mean.flatten(), expected, atol=1e-4), name
        assert mean.max() < 1000  # the held-out subject's +1000 is not in it


def test_every_input_gets_the_same_flip():
    fs = _two_inputs()
    augment = {
        "flow": FlowAugment(fs.channels["flow"], hflip=0.5),
        "strain": FlowAugment(fs.channels["strain"], hflip=0.5),
    }
    # Columns hold their index, so a flip shows as a reversed first row.
    fs.inputs["flow"] = torch.arange(8.0).expand_as(fs.inputs["flow"]).clone()
    fs.inputs["strain"] = torch.arange(12.0).expand_as(fs.inputs["strain"]).clone()
    dm = MERDataModule(fs, loso_folds(fs.subjects), fold=0, normalize="none", augment=augment)
    out = dm.transform_batch({"flow": fs.inputs["flow"][4:], "strain": fs.inputs["strain"][4:]}, train=True)
    flipped_flow = out["flow"][:, 1, 0, 0] == 7  # v channel: only moved, not negated
    flipped_strain = out["strain"][:, 0, 0, 0] == 11
    assert flipped_flow.any() and (~flipped_flow).any()
    assert torch.equal(flipped_flow, flipped_strain)


def test_flow_image_normalisation_is_the_fields_convention():
    fs = _two_inputs()
    dm = MERDataModule(
        fs, loso_folds(fs.subjects), fold=0, normalize={"flow": "flow_image", "strain": "minmax"}
    )
    x = torch.tensor([-10.0, -1.0, 0.0, 0.5, 10.0]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    assert torch.allclose(
        dm.transform(x, train=False, name="flow")[0, 0, 0], torch.tensor([0, 112, 128, 136, 255]) / 255
    )
    with pytest.raises(ValueError, match="flow_image needs the channels"):
        MERDataModule(
            fs, loso_folds(fs.subjects), fold=0, normalize={"flow": "minmax", "strain": "flow_image"}
        )
    with pytest.raises(ValueError, match=r"normalize per input must name each input.*missing: \['strain'\]"):
        MERDataModule(fs, loso_folds(fs.subjects), fold=0, normalize={"flow": "minmax"})
