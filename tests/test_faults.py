"""Faults, as a user meets them: the process killed (SIGKILL) mid-write, and a full disk.

Each kill case runs train.py under tests/fault_points.py, which SIGKILLs the process at a chosen atomic
write (the N-th `os.replace` onto a path matching a pattern, before or after the rename), then reruns it
normally: the rerun must finish with the per-sample predictions of an uninterrupted run, bit for bit, with
nothing torn trusted. Folds run sequentially here, so every comparison is exact. The full-disk cases mount a
small tmpfs as run or cache directory (root only; skipped otherwise), fill it, and check for a one-line
error naming the path, no file a later run would trust, and a rerun that completes once there is space.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from tiny import TINY, compose_train

ROOT = Path(__file__).resolve().parents[1]
ARGS = [*TINY, "loso.strategy=sequential"]
ENV = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}


def _train(
    run_dir: Path, cache: Path, kill: tuple[str, str, int] | None = None, extra: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    args = [*ARGS, f"run_dir={run_dir}", f"cache_dir={cache}", *extra]
    wrapper = (
        [] if kill is None else [str(ROOT / "tests" / "fault_points.py"), kill[0], kill[1], str(kill[2])]
    )
    return subprocess.run(
        [sys.executable, *wrapper, "train.py", *args], cwd=ROOT, env=ENV, capture_output=True, text=True
    )


def _predictions(run_dir: Path) -> pd.DataFrame:
    files = sorted((run_dir / "predictions").glob("fold_*.csv"))
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("faults")
    run_dir, cache = tmp / "uninterrupted", tmp / "cache"
    out = _train(run_dir, cache)
    assert out.returncode == 0, out.stderr[-3000:]
    return run_dir, cache


# (name, destination pattern, before/after the rename, which matching write)
KILLS = [
    ("checkpoint written, predictions not", "*/fold_1/last.ckpt", "after", 1),
    ("record being written", "*/predictions/fold_001.json", "before", 1),
    ("record written, predictions not", "*/predictions/fold_001.csv", "before", 1),
    ("run.json being written", "*/run.json", "before", 1),
    ("reports being written", "*/summary.json", "before", 1),
    ("features being cached", "*/fresh-cache/*", "before", 4),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "pattern", "when", "nth"), KILLS, ids=[k[0].replace(" ", "_") for k in KILLS]
)
def test_a_run_killed_mid_write_reruns_to_the_uninterrupted_predictions(
    tmp_path, uninterrupted, name, pattern, when, nth
):
    reference, cache = uninterrupted
    if "cache" in pattern:
        cache = tmp_path / "fresh-cache"
    run_dir = tmp_path / "run"
    killed = _train(run_dir, cache, kill=(pattern, when, nth))
    assert killed.returncode == -9, f"{name}: the kill point was never reached\n{killed.stderr[-2000:]}"
    rerun = _train(run_dir, cache)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    pd.testing.assert_frame_equal(_predictions(run_dir), _predictions(reference), check_exact=True)
    a, b = (json.loads((d / "summary.json").read_text()) for d in (run_dir, reference))
    assert a["folds_done"] == 3 and {k: a[k] for k in ("uf1", "uar", "n")} == {
        k: b[k] for k in ("uf1", "uar", "n")
    }
    for k in range(3):  # every finished fold also kept its weights
        assert (run_dir / f"fold_{k}" / "last.ckpt").is_file()


# The new kinds of run: several seeds, and two named inputs (DSSN: two 227x227 streams, two cache entries
# per clip). (name, extra train.py arguments, pattern, before/after, which write, prediction folders)
KINDS = [
    (
        "seeds, killed in the second seed's fold",
        ("seeds=[0,1]",),
        "*/seed_1/predictions/fold_001.csv",
        "before",
        1,
        ("seed_0", "seed_1"),
    ),
    (
        "seeds, killed writing the seeds summary",
        ("seeds=[0,1]",),
        "*/seeds/summary.json",
        "before",
        1,
        ("seed_0", "seed_1"),
    ),
    (
        "two inputs, killed caching the second stream",
        ("experiment=dssn_cpu", "trainer.max_epochs=1", "datamodule.batch_size=4"),
        "*/fresh-cache/*",
        "before",
        3,
        (".",),
    ),
    (
        "two inputs, killed after a checkpoint",
        ("experiment=dssn_cpu", "trainer.max_epochs=1", "datamodule.batch_size=4"),
        "*/fold_0/last.ckpt",
        "after",
        1,
        (".",),
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "extra", "pattern", "when", "nth", "folders"), KINDS, ids=[k[0].replace(" ", "_") for k in KINDS]
)
def test_seeds_and_named_inputs_killed_mid_write_rerun_to_the_uninterrupted_predictions(
    tmp_path, name, extra, pattern, when, nth, folders
):
    reference, run_dir = tmp_path / "reference" / "seeds", tmp_path / "run" / "seeds"
    cache = tmp_path / "fresh-cache"
    killed = _train(run_dir, cache, kill=(pattern, when, nth), extra=extra)
    assert killed.returncode == -9, f"{name}: the kill point was never reached\n{killed.stderr[-2000:]}"
    rerun = _train(run_dir, cache, extra=extra)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    out = _train(reference, tmp_path / "reference-cache", extra=extra)  # uninterrupted, its own cache
    assert out.returncode == 0, out.stderr[-3000:]
    for folder in folders:
        pd.testing.assert_frame_equal(
            _predictions(run_dir / folder), _predictions(reference / folder), check_exact=True
        )
    a, b = (json.loads((d / "summary.json").read_text()) for d in (run_dir, reference))
    assert a == b


def test_a_fold_whose_predictions_were_never_written_is_trained_again(tmp_path, monkeypatch):
    """The fast, in-process form of the kill after a checkpoint: predictions are the fold's commit mark,
    so a fold left with its checkpoint alone is not finished (and never a finished fold without weights)."""
    import train
    import training.loop as loop

    def run(run_dir: Path) -> None:
        train.run(compose_train(tmp_path, run_dir, ["loso.strategy=sequential"]))

    run(tmp_path / "reference")
    real = loop.write_fold_predictions

    def crash_on_fold_1(run_dir, k, *args, **kwargs):
        if k == 1:
            raise _Crash
        return real(run_dir, k, *args, **kwargs)

    monkeypatch.setattr(loop, "write_fold_predictions", crash_on_fold_1)
    with pytest.raises(_Crash):
        run(tmp_path / "run")
    assert (tmp_path / "run" / "fold_1" / "last.ckpt").is_file()
    assert not (tmp_path / "run" / "predictions" / "fold_001.csv").exists()
    monkeypatch.setattr(loop, "write_fold_predictions", real)
    run(tmp_path / "run")
    pd.testing.assert_frame_equal(
        _predictions(tmp_path / "run"), _predictions(tmp_path / "reference"), check_exact=True
    )


class _Crash(Exception):
    pass


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return out.returncode == 0


def _remount(path: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    if os.geteuid() != 0 or not _mount_tmpfs(mount, "48k"):
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _trusted_files(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file())


@pytest.mark.slow
def test_a_full_run_directory_is_named_and_the_rerun_with_space_completes(small_disk, uninterrupted):
    reference, cache = uninterrupted
    run_dir = small_disk / "run"
    full = _train(run_dir, cache)
    assert full.returncode == 2, full.stderr[-2000:]
    error = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "No space left on device" in error[0] and str(small_disk) in error[0]
    leftovers = [f for f in _trusted_files(run_dir) if f.endswith(".tmp") or "/." in f or f.startswith(".")]
    assert not [f for f in leftovers if not f.startswith(".hydra")], leftovers  # no temporary outlives it
    _remount(small_disk, "20m")
    rerun = _train(run_dir, cache)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    pd.testing.assert_frame_equal(_predictions(run_dir), _predictions(reference), check_exact=True)


@pytest.mark.slow
def test_a_full_cache_directory_is_named_and_the_rerun_with_space_completes(
    small_disk, uninterrupted, tmp_path
):
    reference, _ = uninterrupted
    cache = small_disk / "cache"
    full = _train(tmp_path / "run", cache)
    assert full.returncode == 2, full.stderr[-2000:]
    error = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "No space left on device" in error[0] and str(cache) in error[0]
    assert not (tmp_path / "run" / "run.json").exists()  # features come before the run directory is claimed
    _remount(small_disk, "20m")
    rerun = _train(tmp_path / "run", cache)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    pd.testing.assert_frame_equal(_predictions(tmp_path / "run"), _predictions(reference), check_exact=True)
