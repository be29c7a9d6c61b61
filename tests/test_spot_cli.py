"""spot.py end to end on a tiny synthetic long-video database, and evaluate.py on its run directory."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from evaluation.spotting import (
    DETECTIONS_CSV,
    RESULTS_MD,
    SPOTTING_JSON,
    evaluate_spotting_run,
    read_spotting_run,
)
from spotting import SpotterConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "videos.reader.num_subjects=1",
    "videos.reader.videos_per_subject=1",
    "videos.reader.seconds=6.0",
    "videos.reader.micro_per_video=2",
    "videos.reader.macro_per_video=1",
    "videos.reader.blinks_per_video=1",
    "videos.reader.head_moves_per_video=1",
    "spotter.face=full",
    "progress=false",
]


def compose_spot(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    import spot  # noqa: F401  (registers the run_suffix resolver)

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose("spot", overrides=overrides)


def test_spotter_yaml_lists_every_setting_with_its_default():
    listed = yaml.safe_load((ROOT / "configs" / "spotter" / "default.yaml").read_text())
    defaults = {
        f.name: getattr(SpotterConfig(), f.name) for f in fields(SpotterConfig) if f.name != "regions"
    }
    assert listed == defaults


def test_spot_writes_detections_and_metrics_and_evaluate_rescores_them(tmp_path):
    import spot

    run_dir = tmp_path / "run"
    out_dir, table = spot.spot_database(compose_spot([*TINY, f"run_dir={run_dir}"]))
    assert out_dir == run_dir and "micro" in table and "overall" in table
    for name in (DETECTIONS_CSV, SPOTTING_JSON, RESULTS_MD):
        assert (run_dir / name).is_file()
    record = json.loads((run_dir / SPOTTING_JSON).read_text())
    (video,) = record["videos"]
    assert (
        video["ground_truth"] and record["settings"]["spotter"]["threshold_p"] == SpotterConfig().threshold_p
    )
    assert video["notes"]["stride"] == 1 and video["notes"]["eye_line"] is not None
    lines = (run_dir / DETECTIONS_CSV).read_text().splitlines()
    assert lines[0] == "video_id,onset,apex,offset,kind,score" and len(lines) == 1 + len(video["detections"])
    # The planted micro-expressions are found (the tiny video has two).
    assert record["metrics"]["micro"]["tp"] >= 1
    assert all(m["truth"]["emotion"] for m in record["matches"])

    # evaluate.py on the run directory: the same metrics, then a changed detections.csv rescored.
    done = subprocess.run(
        [sys.executable, "evaluate.py", f"run_dir={run_dir}"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.strip().splitlines()
    assert out[-1] == f"run dir: {run_dir}" and out[0].split() == ["TP", "FP", "FN", "P", "R", "F1"]
    assert json.loads((run_dir / SPOTTING_JSON).read_text())["metrics"] == record["metrics"]
    # Rescoring reads detections.csv: emptied, every planted micro-expression is missed.
    (run_dir / DETECTIONS_CSV).write_text(lines[0] + "\n")
    evaluate_spotting_run(run_dir)
    rescored = json.loads((run_dir / SPOTTING_JSON).read_text())["metrics"]
    micro_truths = [t for t in video["ground_truth"] if t["kind"] == "micro"]
    assert rescored["micro"]["tp"] == 0 and rescored["micro"]["fn"] == len(micro_truths)
    _, videos = read_spotting_run(run_dir)
    assert videos[0].detections == []
    # A run directory that holds files is refused before any video is read.
    with pytest.raises(ValueError, match="already holds files"):
        spot.spot_database(compose_spot([*TINY, f"run_dir={run_dir}", "videos.reader.seconds=-1"]))


@pytest.mark.slow
def test_user_errors_are_one_line_and_exit_2(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    cases = [
        (
            [f"run_dir={tmp_path / 'full'}"],
            f"error: run_dir {tmp_path / 'full'} already holds files (an earlier run?); give a new or empty "
            f"folder, or rescore that run with: python evaluate.py run_dir={tmp_path / 'full'}",
        ),
        (
            ["spotter.flow=tvl2", f"run_dir={tmp_path / 'r'}"],
            "error: spotter flow 'tvl2': choose from dis, farneback",
        ),
    ]
    for extra, line in cases:
        done = subprocess.run(
            [sys.executable, "spot.py", *TINY, *extra], cwd=ROOT, capture_output=True, text=True
        )
        assert done.returncode == 2 and done.stderr.strip().splitlines() == [line]
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_spot_cli_default_database(tmp_path):
    """`python spot.py` as the README shows it, on the default synthetic_long database at 200 fps."""
    run_dir = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "spot.py", "videos.reader.fps=200", f"run_dir={run_dir}", "progress=false"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"run dir: {run_dir}"
    metrics = json.loads((run_dir / SPOTTING_JSON).read_text())["metrics"]
    assert metrics["micro"]["f1"] >= 0.7 and metrics["macro"]["f1"] >= 0.6, metrics
