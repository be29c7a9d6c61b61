"""train.py and evaluate.py end to end on a tiny synthetic database: reports, resume, clear errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import MissingConfigException
from tiny import TINY, shared_cache

ROOT = Path(__file__).resolve().parents[1]


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose("train", overrides=overrides)


def _cache(tmp_path: Path) -> Path:
    # Nothing here tests the cache itself: the TINY database's features are computed once per session.
    return shared_cache(tmp_path)


def _run(tmp_path: Path, run_dir: Path, extra: list[str] = ()) -> dict:
    import train

    cfg = _compose([*TINY, f"run_dir={run_dir}", f"cache_dir={_cache(tmp_path)}", *extra])
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
        f"cache_dir={_cache(tmp_path)}",
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
    assert sorted(p.name for p in (run_dir / "predictions").iterdir()) == [
        "fold_000.csv",
        "fold_000.json",
        "fold_001.csv",
        "fold_001.json",
    ]
    assert (run_dir / "logs").is_dir()  # the CSV logger wrote its metrics
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["n"] == 6 and summary["folds_done"] == 2 and summary["folds_missing"] == []
    assert set(summary["per_source"]) == {"synthetic"}
    # train.log is the console log: the log records, the results table and the last line.
    log = (run_dir / "train.log").read_text()
    assert "synthetic: 6 samples" in log  # logged before the claim, held back until it
    # The default STSTNet recipe trains its folds together (loso.strategy=auto -> parallel).
    assert "loso.strategy=auto: parallel" in log and "folds: 2/2 done" in log
    assert "folds synthetic/s01 .. synthetic/s02 (2, trained together): training" in log
    assert log.rstrip().endswith(f"run dir: {run_dir}")
    assert "lr: 0.001" in (run_dir / ".hydra" / "config.yaml").read_text()
    assert "logger=csv" in (run_dir / ".hydra" / "overrides.yaml").read_text()

    # A refused run (another experiment) touches nothing in the directory it was refused.
    kept = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    out = subprocess.run(
        [sys.executable, "train.py", *args, "model.optimizer.lr=0.5"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2, out.stderr[-3000:]
    assert "different experiment" in out.stderr and "model.optimizer.lr" in out.stderr
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == kept

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

    sequential = ["loso.strategy=sequential"]  # the fold loop's own crash handling
    reference = _run(tmp_path, tmp_path / "uninterrupted", sequential)

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
        _run(tmp_path, run_dir, sequential)
    assert sorted(p.name for p in (run_dir / "predictions").iterdir()) == ["fold_000.csv", "fold_000.json"]
    first = (run_dir / "predictions" / "fold_000.csv").stat().st_mtime_ns

    def record(features, folds, k, *args, **kwargs):
        trained.append(k)
        return real_train_fold(features, folds, k, *args, **kwargs)

    monkeypatch.setattr(training.loop, "train_fold", record)
    resumed = _run(tmp_path, run_dir, sequential)
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


def test_mixed_precision_runs_the_same_code_path(tmp_path):
    # bf16-mixed is what trainer=gpu_bf16 uses on CUDA; Lightning also runs it on the CPU, so the mixed
    # precision path (autocast, float32 loss and probabilities) is exercised without a GPU.
    summary = _run(tmp_path, tmp_path / "run", ["fold=0", "trainer.precision=bf16-mixed"])
    assert summary["folds_done"] == 1 and summary["n"] == 3


# ---- run-directory integrity (issue 6) -------------------------------------------------------------------


def _relabel(monkeypatch, subject: str, n: int) -> None:
    """Make the synthetic reader hand out `n` clips of `subject` under another emotion word."""
    from dataclasses import replace

    import datamodules.readers.synthetic as synthetic

    real = synthetic.read_synthetic
    other = {"negative": "positive", "positive": "surprise", "surprise": "negative"}

    def read(**config):
        result = real(**config)
        changed = 0
        for i, s in enumerate(result.samples):
            if s.subject == subject and changed < n:
                result.samples[i] = replace(s, emotion=other[s.emotion])
                changed += 1
        return result

    monkeypatch.setattr(synthetic, "read_synthetic", read)


def test_changed_annotation_is_refused_naming_the_subject(tmp_path, monkeypatch):
    from training.rundir import RunDirError

    run_dir = tmp_path / "run"
    _run(tmp_path, run_dir, ["fold=0"])
    _relabel(monkeypatch, "synthetic/s02", 2)
    with pytest.raises(RunDirError, match=r"other data: synthetic/s02: 2 labels differ"):
        _run(tmp_path, run_dir, ["fold=1"])
    assert sorted(p.name for p in (run_dir / "predictions").iterdir()) == ["fold_000.csv", "fold_000.json"]


def test_deleted_run_json_and_other_settings_adopt_nothing(tmp_path):
    from training.rundir import RunDirError

    run_dir = tmp_path / "run"
    _run(tmp_path, run_dir, ["fold=0"])
    (run_dir / "run.json").unlink()
    with pytest.raises(RunDirError, match=r"no run.json.*fold_000.csv was made by a different experiment"):
        _run(tmp_path, run_dir, ["trainer.max_epochs=3", "model.optimizer.lr=0.01"])
    assert not (run_dir / "run.json").exists()


def test_truncated_or_torn_fold_files_are_named_then_retrained(tmp_path, monkeypatch):
    import training.loop
    from evaluation.predictions import EvaluationError
    from evaluation.reports import summarize

    run_dir = tmp_path / "run"
    sequential = ["loso.strategy=sequential"]  # records which folds the fold loop trains
    reference = _run(tmp_path, run_dir, sequential)
    fold1, fold2 = (run_dir / "predictions" / f"fold_00{k}.csv" for k in (1, 2))
    lines = fold1.read_text().splitlines(keepends=True)
    fold1.write_text("".join(lines[:2]))  # `head -n 2`: the header and one of three rows
    with pytest.raises(EvaluationError, match=r"fold_001.csv has 1 rows, its record says 3"):
        summarize(run_dir)
    fold2.write_bytes(fold2.read_bytes()[:40])  # torn: part of the header
    real_train_fold = training.loop.train_fold
    trained: list[int] = []

    def record(features, folds, k, *args, **kwargs):
        trained.append(k)
        return real_train_fold(features, folds, k, *args, **kwargs)

    monkeypatch.setattr(training.loop, "train_fold", record)
    resumed = _run(tmp_path, run_dir, sequential)
    assert trained == [1, 2]
    for key in ("uf1", "uar", "accuracy", "n", "confusion_matrix"):
        assert resumed[key] == reference[key], key


def test_edited_class_order_in_run_json_is_an_error_naming_the_field(tmp_path):
    from evaluation.predictions import EvaluationError
    from evaluation.reports import summarize

    run_dir = tmp_path / "run"
    _run(tmp_path, run_dir, ["fold=0"])
    info = json.loads((run_dir / "run.json").read_text())
    info["classes"] = info["classes"][::-1]
    (run_dir / "run.json").write_text(json.dumps(info))
    with pytest.raises(EvaluationError, match=r"field 'classes' is not what train.py wrote"):
        summarize(run_dir)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.max_epochs=-1", "trainer.max_epochs=-1"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0"),
        ("datamodule.batch_size=0", "datamodule.batch_size=0"),
        ("model.optimizer.lr=-1", "model.optimizer.lr=-1"),
        ("fold=abc", "fold=abc"),
        ("fold=7", "fold=7: this protocol has folds 0..2"),
        ("trainer=gpu", "trainer.accelerator=gpu: no CUDA GPU"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(tmp_path, override, key):
    import torch

    from training.settings import SettingError

    if override == "trainer=gpu" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    run_dir = tmp_path / "run"
    with pytest.raises(SettingError, match=re.escape(key)):
        _run(tmp_path, run_dir, [override])
    assert not run_dir.exists()


def test_default_run_dirs_are_unique_and_sortable():
    import train  # noqa: F401  (registers the run_suffix resolver)

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        a, b = compose("train"), compose("train")
    assert a.run_dir == a.run_dir  # resolved once per config
    assert a.run_dir != b.run_dir
    assert re.fullmatch(r"runs/synthetic_ststnet/\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-[0-9a-f]{4}", a.run_dir)


def _cli(args: list[str], script: str = "train.py", **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run(
        [sys.executable, script, *args], cwd=ROOT, env=env, capture_output=True, text=True, **kwargs
    )


def test_cli_user_errors_are_one_line_with_status_2(tmp_path):
    run_dir = tmp_path / "run"
    out = _cli([*TINY, "datamodule.batch_size=0", f"run_dir={run_dir}"])
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().splitlines() == [
        "error: datamodule.batch_size=0: expected a positive whole number"
    ]
    out = _cli(["data=casme2", f"data.casme2_root={tmp_path / 'nowhere'}", f"run_dir={run_dir}"])
    assert out.returncode == 2, out.stderr[-2000:]
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("error: ") and "nowhere" in line and "Error in call to target" not in line
    assert not run_dir.exists()
    run_dir.mkdir()
    (run_dir / "run.json").write_text("{broken")
    out = _cli([*TINY, f"run_dir={run_dir}", f"cache_dir={_cache(tmp_path)}"])
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"error: {run_dir} is not a MERLin run directory: {run_dir / 'run.json'} is unreadable "
        "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1)); "
        "remove it or use another run_dir"
    ]
    out = _cli([], script="evaluate.py")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: say which run to evaluate: python evaluate.py run_dir=PATH "
        "(the directory train.py printed on its last line, `run dir: PATH`)"
    ]


def _wait_for(path: Path, text: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and text in path.read_text():
            return
        if proc.poll() is not None:
            raise AssertionError(f"train.py ended ({proc.returncode}) before {text!r}: {proc.stderr.read()}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"{text!r} never appeared in {path}")


@pytest.mark.parametrize(
    ("signum", "status", "strategy"),
    [
        # The fast suite kills the default (fold-parallel) run; sequential folds, and Ctrl+C (SIGTERM's path
        # with another status), end to end in the slow suite.
        pytest.param(signal.SIGTERM, 143, "sequential", marks=pytest.mark.slow),
        pytest.param(signal.SIGINT, 130, "sequential", marks=pytest.mark.slow),
        (signal.SIGTERM, 143, "parallel"),
    ],
)
def test_a_killed_run_looks_killed(tmp_path, signum, status, strategy):
    run_dir = tmp_path / "run"
    args = [*TINY, "trainer.max_epochs=100000", f"run_dir={run_dir}", f"cache_dir={_cache(tmp_path)}"]
    args.append(f"loso.strategy={strategy}")
    where, started = "fold synthetic/s01", "fold synthetic/s01 (1 of 3): training"
    if strategy == "parallel":
        where = started = "folds synthetic/s01 .. synthetic/s03 (3, trained together)"
    env = {**os.environ, "WANDB_MODE": "disabled"}
    proc = subprocess.Popen(
        [sys.executable, "train.py", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(run_dir / "train.log", started, proc)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    name = signal.Signals(signum).name
    assert proc.returncode == status, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == (
        f"error: interrupted by {name} during {where}; the folds finished before it are kept; "
        f"rerun with run_dir={run_dir} to resume"
    )
    assert stdout.strip().splitlines()[-1] == f"run dir: {run_dir}"
    assert not (run_dir / "predictions" / "fold_000.csv").exists()  # the fold in flight is not written
    assert f"interrupted by {name}" in (run_dir / "train.log").read_text()


def test_read_only_run_directory_is_named(tmp_path):
    from utils.atomic import WriteError

    mount = tmp_path / "ro"
    mount.mkdir()
    command = ["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(mount)]
    if subprocess.run(command, capture_output=True).returncode != 0:
        pytest.skip("mounting a read-only tmpfs is not permitted here")
    try:
        with pytest.raises(WriteError, match=r"cannot write .*ro/run/run.json \(run record\): Read-only"):
            _run(tmp_path, mount / "run", ["fold=0"])
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
