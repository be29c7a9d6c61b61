"""STRCN-A's active-pixel mask: learned from the training subjects only, read as a pixels-by-time image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules.active_pixels import ActivePixels
from datamodules.datamodule import FeatureSet, MERDataModule
from datamodules.protocols import loso_folds

H, W, T = 16, 12, 6


def _clips(region: tuple[slice, slice], n: int, seed: int) -> torch.Tensor:
    """n clips (n, T, 1, H, W) whose pixels in `region` brighten over time; the rest stays still."""
    g = torch.Generator().manual_seed(seed)
    clips = 0.2 + 0.01 * torch.rand(n, 1, 1, H, W, generator=g).expand(n, T, 1, H, W).clone()
    ramp = torch.linspace(0, 0.5, T).view(1, T, 1, 1)
    clips[:, :, 0, region[0], region[1]] += ramp
    return clips


def _feature_set(x: torch.Tensor, subjects: list[str]) -> FeatureSet:
    n = len(subjects)
    return FeatureSet(
        x=x,
        channels=("frame",),
        y=torch.arange(n) % 3,
        sample_ids=[f"{s}/c{i}" for i, s in enumerate(subjects)],
        subjects=subjects,
        datasets=["synthetic"] * n,
        clips=[f"c{i}" for i in range(n)],
        classes=("negative", "positive", "surprise"),
    )


TRAIN_REGION = (slice(2, 8), slice(2, 8))  # 36 of the 192 pixels
TEST_REGION = (slice(10, 15), slice(6, 11))  # only the held-out subject moves here


def test_the_mask_never_sees_the_held_out_subject():
    test = _clips(TEST_REGION, 4, seed=0)
    train = _clips(TRAIN_REGION, 8, seed=1)
    subjects = ["synthetic/s01"] * 4 + ["synthetic/s02"] * 4 + ["synthetic/s03"] * 4
    features = _feature_set(torch.cat([test, train]), subjects)
    transform = ActivePixels(percentile=80, radius=1)
    folds = loso_folds(features.subjects)
    dm = MERDataModule(features, folds, fold=0, normalize="none", fold_transforms={"x": transform})
    dm.setup("fit")
    mask = dm.fold_transforms["x"].mask
    assert transform.mask is None  # the data module fitted its own copy
    # The 6x6 moving square, less the 4 corners the radius-1 (cross-shaped) opening rounds off.
    assert int(mask[TRAIN_REGION].sum()) == 32 and int(mask.sum()) == 32
    assert not mask[TEST_REGION].any()  # the held-out subject's motion chose no pixel
    # Fold 1 holds s02 out: the test region (s01 trains now) is active there.
    other = MERDataModule(features, folds, fold=1, normalize="none", fold_transforms={"x": transform})
    other.setup("fit")
    assert other.fold_transforms["x"].mask[TEST_REGION].any()

    batch = dm.transform_batch(next(iter(dm.test_dataloader())), train=False)
    p = int(mask.sum())
    assert batch["x"].shape == (4, 1, p, T)
    # Row r, column t of the image is active pixel r (row-major) of frame t.
    rows, cols = np.nonzero(mask.numpy())
    expected = test[:, :, 0, rows, cols].transpose(1, 2)
    torch.testing.assert_close(batch["x"][:, 0], expected)


def test_energy_is_normalised_per_clip_and_the_threshold_is_the_percentile():
    # One clip moves a lot in one corner, another a little in another: after per-clip normalisation both
    # corners count the same, so both are active.
    big = _clips((slice(0, 4), slice(0, 4)), 1, seed=0)
    big[:, :, 0, :4, :4] *= 10
    small = _clips((slice(12, 16), slice(8, 12)), 1, seed=1)
    mask = ActivePixels(percentile=80, radius=0).fit(torch.cat([big, small]), [0, 1]).mask
    assert mask[:4, :4].all() and mask[12:, 8:].all()
    assert int(mask.sum()) == 32


def test_opening_removes_isolated_pixels():
    clips = _clips((slice(2, 8), slice(2, 8)), 3, seed=0)
    clips[:, :, 0, 12, 10] += torch.linspace(0, 0.5, T).view(1, T)  # one lone moving pixel
    opened = ActivePixels(percentile=75, radius=1).fit(clips, [0, 1, 2]).mask
    raw = ActivePixels(percentile=75, radius=0).fit(clips, [0, 1, 2]).mask
    assert raw[12, 10] and not opened[12, 10]


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="percentile"):
        ActivePixels(percentile=100)
    with pytest.raises(ValueError, match=r"\(N, T, 1, H, W\)"):
        ActivePixels().fit(torch.zeros(3, 1, 8, 8), [0])
    with pytest.raises(ValueError, match="at least one training clip"):
        ActivePixels().fit(torch.zeros(3, 2, 1, 8, 8), [])
    with pytest.raises(RuntimeError, match="fit must run"):
        ActivePixels()(torch.zeros(1, 2, 1, 8, 8))
