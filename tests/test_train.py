"""train.py and evaluate.py end to end on a tiny synthetic database: reports, resume, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "data.reader.num_subjects=3",
    "data.reader.clips_per_subject=3",
    "data.reader.height=64",
    "data.reader.width=56",
    "trainer.max_epochs=2",
    "logger=none",
    "progress=false",
]


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose("train", overrides=overrides)


def _run(tmp_path: Path, run_dir: Path, extra: list[str] = ()) -> dict:
    import train

    cfg = _compose([*TINY, f"run_dir={run_dir}", f"cache_dir={tmp_path / 'cache'}", *extra])
    train.run(cfg)
    return json.loads((run_dir / "summary.json").read_text())


def test_cli_train_then_evaluate_writes_every_report(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    args = [
        "data.reader.num_subjects=2",
        "data.reader.clips_per_subject=3",
        "data.reader.height=64",
        "data.reader.width=56",
        "trainer.max_epochs=2",
        "logger=csv",
        "progress=false",
        f"run_dir={run_dir}",
        f"cache_dir={tmp_path / 'cache'}",
    ]
    out = subprocess.run(
        [sys.executable, "train.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == f"run dir: {run_dir}"
    assert "UF1" in out.stdout and "folds: 2/2" in out.stdout
    for name in ("run.json", "summary.json", "results.md", "confusion_matrix.png", "megc_log.txt"):
        assert (run_dir / name).is_file(), name
    assert sorted(p.name for p in (run_dir / "predictions").iterdir()) == ["fold_000.csv", "fold_001.csv"]
    assert (run_dir / "logs").is_dir()  # the CSV logger wrote its metrics
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["n"] == 6 and summary["folds_done"] == 2 and summary["folds_missing"] == []
    assert set(summary["per_source"]) == {"synthetic"}

    (run_dir / "summary.json").unlink()
    out = subprocess.run(
        [sys.executable, "evaluate.py", f"run_dir={run_dir}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text()) == summary


def test_resume_after_crash_trains_only_the_rest_and_pools_the_same(tmp_path, monkeypatch):
    import training.loop

    reference = _run(tmp_path, tmp_path / "uninterrupted")

    run_dir = tmp_path / "interrupted"
    real_train_fold = training.loop.train_fold
    trained: list[int] = []

    def crash_on_fold_1(features, folds, k, *args, **kwargs):
        if k == 1:
            raise KeyboardInterrupt("simulated crash")
        trained.append(k)
        return real_train_fold(features, folds, k, *args, **kwargs)

    monkeypatch.setattr(training.loop, "train_fold", crash_on_fold_1)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, run_dir)
    assert sorted(p.name for p in (run_dir / "predictions").iterdir()) == ["fold_000.csv"]
    first = (run_dir / "predictions" / "fold_000.csv").stat().st_mtime_ns

    def record(features, folds, k, *args, **kwargs):
        trained.append(k)
        return real_train_fold(features, folds, k, *args, **kwargs)

    monkeypatch.setattr(training.loop, "train_fold", record)
    resumed = _run(tmp_path, run_dir)
    assert trained == [0, 1, 2]  # fold 0 once before the crash, then only 1 and 2
    assert (run_dir / "predictions" / "fold_000.csv").stat().st_mtime_ns == first
    for key in ("uf1", "uar", "accuracy", "n", "confusion_matrix"):
        assert resumed[key] == reference[key], key
    a = pd.read_csv(tmp_path / "uninterrupted" / "predictions" / "fold_002.csv")
    b = pd.read_csv(run_dir / "predictions" / "fold_002.csv")
    pd.testing.assert_frame_equal(a, b)


def test_one_fold_gives_a_partial_report(tmp_path):
    summary = _run(tmp_path, tmp_path / "run", ["fold=1"])
    assert summary["folds_done"] == 1
    assert summary["folds_missing"] == ["synthetic/s01", "synthetic/s03"]


def test_run_dir_of_another_experiment_is_refused(tmp_path):
    from training.rundir import RunDirError

    _run(tmp_path, tmp_path / "run", ["fold=0"])
    with pytest.raises(RunDirError, match=r"different experiment.*model\.optimizer\.lr"):
        _run(tmp_path, tmp_path / "run", ["fold=0", "model.optimizer.lr=0.5"])


def test_unknown_model_or_data_config_is_named():
    with pytest.raises(MissingConfigException, match="model/resnet9000"):
        _compose(["model=resnet9000"])
    with pytest.raises(MissingConfigException, match="data/casme9"):
        _compose(["data=casme9"])


def test_cli_error_is_one_clear_line(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text("{broken")
    out = subprocess.run(
        [sys.executable, "train.py", *TINY, f"run_dir={run_dir}", f"cache_dir={tmp_path / 'cache'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith(f"error: {run_dir / 'run.json'} is unreadable")


def test_mixed_precision_runs_the_same_code_path(tmp_path):
    # bf16-mixed is what trainer=gpu_bf16 uses on CUDA; Lightning also runs it on the CPU, so the mixed
    # precision path (autocast, float32 loss and probabilities) is exercised without a GPU.
    summary = _run(tmp_path, tmp_path / "run", ["fold=0", "trainer.precision=bf16-mixed"])
    assert summary["folds_done"] == 1 and summary["n"] == 3
