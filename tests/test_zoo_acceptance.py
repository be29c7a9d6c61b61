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


@pytest.mark.slow
@pytest.mark.parametrize("experiment", CPU_EXPERIMENTS)
def test_cpu_recipe_runs_two_folds(tmp_path, experiment):
    run_dir = tmp_path / experiment
    out = subprocess.run(
        [
            sys.executable,
            "train.py",
            f"experiment={experiment}",
            "data.reader.num_subjects=2",
            "data.reader.clips_per_subject=6",
            "logger=none",
            "progress=false",
            f"run_dir={run_dir}",
            f"cache_dir={os.environ.get('MERLIN_CACHE_DIR', tmp_path / 'cache')}",
        ],
        cwd=ROOT,
        env={**os.environ, "WANDB_MODE": "disabled"},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["folds_done"] == 2 and summary["folds_missing"] == [] and summary["n"] == 12
    assert summary["verified"] is True
