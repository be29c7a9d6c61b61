"""Acceptance on the default synthetic database (slow: a few minutes; run with `pytest -m slow`).

The synthetic database must be a fair stand-in for micro-expressions: learnable through subtle motion
(onset->apex flow + strain) and near chance from the apex frame's appearance alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _train(tmp_path: Path, experiment: str) -> dict:
    run_dir = tmp_path / experiment
    out = subprocess.run(
        [
            sys.executable,
            "train.py",
            f"experiment={experiment}",
            "logger=none",
            "progress=false",
            f"run_dir={run_dir}",
            f"cache_dir={os.environ.get('MERLIN_CACHE_DIR', tmp_path / 'cache')}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads((run_dir / "summary.json").read_text())


@pytest.mark.slow
def test_flow_learns_and_appearance_does_not(tmp_path):
    flow = _train(tmp_path, "synthetic_ststnet")
    pixels = _train(tmp_path, "synthetic_apex_pixels")
    assert flow["n"] == 192 and flow["folds_missing"] == []
    assert flow["uf1"] >= 0.8, flow["uf1"]
    assert pixels["uf1"] <= 0.5, pixels["uf1"]
