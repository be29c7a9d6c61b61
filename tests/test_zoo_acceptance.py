"""Every `configs/experiment/*_cpu.yaml` end to end for two folds (slow; `pytest -m slow`).

Each CPU recipe runs exactly as a user would start it, on a small synthetic database (two subjects: two
LOSO folds) with its own epochs, optimizer and inputs; the run must finish and report both folds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CPU_EXPERIMENTS = sorted(p.stem for p in (ROOT / "configs" / "experiment").glob("*_cpu.yaml"))


# The recipes that start from a checkpoint get one from a short macro pre-training (`pretrained` below).
NEEDS_CHECKPOINT = {"finetune_cpu": "model.init_from", "distill_cpu": "model.distill.teacher.ckpt"}
# A small macro source for EMR, so the run stays a two-fold check and not a pre-training.
EXTRA = {
    "emr_cpu": ["macro.data.reader.num_subjects=3", "macro.data.reader.clips_per_subject=7"],
    # Hold-out: one fold, one of the two subjects tested.
    "pretrain_macro_cpu": ["data.holdout.test_subjects=1"],
}


def _train(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "train.py",
            *args,
            "logger=none",
            "progress=false",
            f"cache_dir={os.environ.get('MERLIN_CACHE_DIR', tmp_path / 'cache')}",
        ],
        cwd=ROOT,
        env={**os.environ, "WANDB_MODE": "disabled"},
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """RUN/last.ckpt of a two-epoch macro pre-training on three synthetic macro subjects."""
    tmp_path = tmp_path_factory.mktemp("pretrain")
    args = [
        "experiment=pretrain_macro_cpu",
        "data.reader.num_subjects=3",
        "data.reader.clips_per_subject=7",
        "data.holdout.test_subjects=1",
        "trainer.max_epochs=2",
        f"run_dir={tmp_path / 'pre'}",
    ]
    out = _train(args, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    return tmp_path / "pre" / "last.ckpt"


@pytest.mark.slow
@pytest.mark.parametrize("experiment", CPU_EXPERIMENTS)
def test_cpu_recipe_runs_two_folds(tmp_path, experiment, request):
    run_dir = tmp_path / experiment
    extra = list(EXTRA.get(experiment, []))
    if experiment in NEEDS_CHECKPOINT:
        extra.append(f"{NEEDS_CHECKPOINT[experiment]}={request.getfixturevalue('pretrained')}")
    out = _train(
        [
            f"experiment={experiment}",
            "data.reader.num_subjects=2",
            "data.reader.clips_per_subject=6",
            f"run_dir={run_dir}",
            *extra,
        ],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    folds, n = (1, 6) if experiment == "pretrain_macro_cpu" else (2, 12)
    assert summary["folds_done"] == folds and summary["folds_missing"] == [] and summary["n"] == n
    assert summary["verified"] is True


def _fold0(run_dir: Path):
    import pandas as pd

    from training.checkpoints import read_checkpoint

    predictions = pd.read_csv(run_dir / "predictions" / "fold_000.csv")
    # A hold-out run (pretrain_macro_cpu) keeps its one model as RUN_DIR/last.ckpt.
    path = run_dir / "last.ckpt" if (run_dir / "last.ckpt").is_file() else run_dir / "fold_0" / "last.ckpt"
    return predictions, read_checkpoint(path)["state_dict"]


@pytest.mark.slow
@pytest.mark.parametrize("experiment", CPU_EXPERIMENTS)
def test_cpu_recipe_is_deterministic_and_never_reads_its_test_subject(tmp_path, experiment, request):
    """Fold 0 three times in fresh processes: twice as it is (the same seed gives the same per-sample
    predictions and probabilities, bit for bit on this CPU) and once with the leakage canary
    (guard.poison_test=true: its held-out subject NaN while fitting), which must train the same weights."""
    import pandas as pd
    import torch

    extra = list(EXTRA.get(experiment, []))
    if experiment in NEEDS_CHECKPOINT:
        extra.append(f"{NEEDS_CHECKPOINT[experiment]}={request.getfixturevalue('pretrained')}")
    base = [
        f"experiment={experiment}",
        "data.reader.num_subjects=2",
        "data.reader.clips_per_subject=6",
        "fold=0",
        "trainer.max_epochs=2",
        *extra,
    ]
    runs = {}
    for name, more in (("first", []), ("again", []), ("guarded", ["guard.poison_test=true"])):
        out = _train([*base, *more, f"run_dir={tmp_path / name}"], tmp_path)
        assert out.returncode == 0, f"{name}: {out.stderr[-3000:]}"
        runs[name] = _fold0(tmp_path / name)
    (first, weights), (again, _), (guarded, guarded_weights) = runs["first"], runs["again"], runs["guarded"]
    pd.testing.assert_frame_equal(first, again, check_exact=True)
    pd.testing.assert_frame_equal(first, guarded, check_exact=True)
    assert weights.keys() == guarded_weights.keys()
    differ = [k for k in weights if not torch.equal(weights[k], guarded_weights[k])]
    assert not differ, f"the guard changed {differ[:5]}"
