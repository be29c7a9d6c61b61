"""Streamed inputs (DiskArray) give the batches an in-memory input gives; sequences augment clip by clip."""

from __future__ import annotations

import gc
import math
import os
import pickle

import numpy as np
import pytest
import torch

from datamodules.augment import FlowAugment, temporal_jitter
from datamodules.datamodule import FeatureSet, MERDataModule, training_statistics
from datamodules.disk_array import DiskArray
from datamodules.protocols import loso_folds


def _rows(n: int = 12, shape=(4, 3, 5, 6), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)


def _disk(tmp_path, rows: np.ndarray) -> DiskArray:
    array = DiskArray.create(tmp_path / "streams" / "input.npy", rows.shape)
    for index, row in enumerate(rows):
        array[index] = row
    return array


def test_rows_read_back_as_written_and_views_copy_nothing(tmp_path):
    rows = _rows()
    array = _disk(tmp_path, rows)
    assert array.shape == rows.shape and array.ndim == 5 and len(array) == 12
    np.testing.assert_array_equal(array[np.array([3, 0, 11])], rows[[3, 0, 11]])
    np.testing.assert_array_equal(array[5], rows[5])
    view = array.subset([1, 4, 7])
    np.testing.assert_array_equal(view[np.array([2, 0])], rows[[7, 1]])
    np.testing.assert_array_equal(view.subset([2])[0], rows[7])
    # The file is an ordinary .npy: NumPy reads it whole.
    np.testing.assert_array_equal(np.load(array.path), rows)
    with pytest.raises(ValueError, match="row of shape"):
        array[0] = rows[0, 0]


def test_worker_copies_read_but_never_delete_and_the_owner_deletes(tmp_path):
    rows = _rows()
    array = _disk(tmp_path, rows)
    path = array.path
    copy = pickle.loads(pickle.dumps(array.subset([2, 3])))
    np.testing.assert_array_equal(copy[np.array([1])], rows[[3]])
    with pytest.raises(PermissionError, match="read only"):
        copy[0] = rows[0]
    del copy
    gc.collect()
    assert path.exists()
    view = array.subset([0])
    del array
    gc.collect()
    assert path.exists()  # the view keeps its owner, and so the file
    del view
    gc.collect()
    assert not path.exists()


def _feature_set(inputs) -> FeatureSet:
    subjects = [f"synthetic/s{s + 1:02d}" for s in range(3) for _ in range(4)]
    return FeatureSet(
        inputs=inputs,
        channels={"seq": ("u", "v", "frame")},
        y=torch.arange(12) % 3,
        sample_ids=[f"{s}/c{i}" for i, s in enumerate(subjects)],
        subjects=subjects,
        datasets=["synthetic"] * 12,
        clips=[f"c{i}" for i in range(12)],
        classes=("negative", "positive", "surprise"),
    )


@pytest.mark.parametrize("standardize", ["channel", "zero_center", "none"])
@pytest.mark.parametrize("normalize", ["minmax", "none"])
def test_a_streamed_sequence_gives_the_same_batches(tmp_path, standardize, normalize):
    rows = _rows()
    rows[:4] += 100.0  # the held-out subject of fold 0: its values must not reach the statistics
    memory, disk = _feature_set({"seq": torch.from_numpy(rows)}), _feature_set({"seq": _disk(tmp_path, rows)})
    folds = loso_folds(memory.subjects)
    batches = []
    for features in (memory, disk):
        dm = MERDataModule(
            features, folds, fold=0, batch_size=5, normalize=normalize, standardize=standardize, seed=3
        )
        dm.setup("fit")
        raw = list(dm.train_dataloader()) + list(dm.test_dataloader())
        batches.append((raw, [dm.transform_batch(b, train=False)["seq"] for b in raw], dm.stats["seq"]))
    (raw_m, out_m, stats_m), (raw_d, out_d, stats_d) = batches
    for a, b in zip(raw_m, raw_d, strict=True):
        assert a["sample_id"] == b["sample_id"]
        torch.testing.assert_close(a["seq"], b["seq"], rtol=0, atol=0)
    for a, b in zip(out_m, out_d, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    for a, b in zip(stats_m, stats_d, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    if standardize != "none" and normalize == "none":
        assert float(stats_d[0].abs().max()) < 5.0  # no trace of the +100 of the held-out subject


def test_chunked_statistics_match_the_whole_tensor(tmp_path):
    rows = _rows(n=50)
    disk = _disk(tmp_path, rows)
    train = list(range(3, 47))
    for method in ("channel", "zero_center"):
        whole = training_statistics(torch.from_numpy(rows), train, "minmax", method)
        chunked = training_statistics(disk, train, "minmax", method, chunk=7)
        for a, b in zip(whole, chunked, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert whole[0].shape == (4, 3, 5, 6)


def test_a_sequence_gets_one_flip_per_clip():
    x = torch.randn(3, 4, 2, 5, 6)
    flipped = FlowAugment(("u", "v"), hflip=1.0)(x)
    torch.testing.assert_close(flipped[:, :, 0], -x[:, :, 0].flip(-1))
    torch.testing.assert_close(flipped[:, :, 1], x[:, :, 1].flip(-1))
    g = torch.Generator().manual_seed(0)
    half = FlowAugment(("u", "v"), hflip=0.5)(x.clone(), generator=g)
    for clip in range(3):  # all steps of a clip flipped, or none
        per_step = [torch.equal(half[clip, t], x[clip, t]) for t in range(4)]
        assert len(set(per_step)) == 1


def test_temporal_jitter_removes_ceil_fraction_of_steps_and_keeps_the_ends():
    steps = 10
    x = torch.arange(steps, dtype=torch.float32).view(1, steps, 1, 1, 1).repeat(6, 1, 1, 2, 2)
    g = torch.Generator().manual_seed(0)
    out = temporal_jitter(x, 0.3, ("nearest",), generator=g)
    assert out.shape == x.shape
    for clip in out:
        values = clip[:, 0, 0, 0]
        assert values[0] == 0 and values[-1] == steps - 1
        assert len(torch.unique(values)) == steps - math.ceil(0.3 * steps)  # 3 steps removed
        assert torch.all(values[1:] >= values[:-1])  # time still runs forward
    # Linear and cubic kernels blend kept steps: still monotone for a ramp, still ending where it ended.
    for kernel in ("linear", "cubic"):
        blended = temporal_jitter(x, 0.3, (kernel,), generator=g)[:, :, 0, 0, 0]
        assert torch.all(blended[:, 0] == 0) and torch.allclose(blended[:, -1], torch.tensor(9.0))
    assert torch.equal(temporal_jitter(x, 0.0), x)


def test_temporal_jitter_is_training_only_and_sequence_only():
    augment = FlowAugment(("u", "v"), temporal_jitter=0.2)
    with pytest.raises(ValueError, match="needs a sequence input"):
        augment(torch.zeros(2, 2, 4, 4))
    with pytest.raises(ValueError, match="0 <= f < 1"):
        FlowAugment(("u",), temporal_jitter=1.0)
    with pytest.raises(ValueError, match="jitter_kernels"):
        FlowAugment(("u",), temporal_jitter=0.2, jitter_kernels=("spline",))
    rows = _rows()
    features = _feature_set({"seq": torch.from_numpy(rows)})
    dm = MERDataModule(
        features, loso_folds(features.subjects), fold=0, normalize="none", augment={"seq": augment}
    )
    batch = next(iter(dm.test_dataloader()))
    torch.testing.assert_close(dm.transform_batch(batch, train=False)["seq"], batch["seq"])
    assert not torch.equal(dm.transform_batch(batch, train=True)["seq"], batch["seq"])


def test_stream_files_of_dead_runs_are_removed(tmp_path):
    import subprocess
    import sys

    from datamodules.datamodule import _host, stream_path

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    folder = tmp_path / "streams"
    folder.mkdir()
    stale = folder / f"{'a' * 16}-{int(dead.stdout)}-0000.npy"
    alive = folder / f"{'b' * 16}-{os.getpid()}-0000.npy"
    # A dead pid on another host (a cache folder shared by cluster nodes) says nothing: left alone.
    elsewhere = folder / f"{'d' * 16}-{int(dead.stdout)}-0000@another-node.npy"
    stale_here = folder / f"{'e' * 16}-{int(dead.stdout)}-0000@{_host()}.npy"
    for file in (stale, alive, elsewhere, stale_here):
        file.write_bytes(b"x")
    path = stream_path(tmp_path, "c" * 64)
    assert path.parent == folder and path.name.startswith("c" * 16 + f"-{os.getpid()}-")
    assert path.name.endswith(f"@{_host()}.npy")
    assert not stale.exists() and not stale_here.exists() and alive.exists() and elsewhere.exists()
