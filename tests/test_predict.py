"""predict.py: a deployment checkpoint on a video file written with OpenCV, spot then recognise."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from tiny import ROOT, compose_train

from datamodules.readers.export.long_common import write_video_file
from datamodules.readers.synthetic_long import SyntheticLongConfig, planted_events, synthetic_long_videos
from inference.spot_recognise import KnownClip, predict_video
from inference.video import VideoError

TIMELINE_KEYS = set(
    [
        "onset",
        "apex",
        "offset",
        "start_s",
        "apex_s",
        "end_s",
        "kind",
        "class",
        "probabilities",
        "score",
        "shot",
    ]
)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """A model trained on every subject of the tiny synthetic database (data.protocol=all)."""
    import train

    tmp = tmp_path_factory.mktemp("deploy")
    run_dir = tmp / "run"
    train.run(compose_train(tmp, run_dir, ["data.protocol=all"]))
    assert (run_dir / "last.ckpt").is_file() and not (run_dir / "summary.json").exists()  # not an evaluation
    return run_dir / "last.ckpt"


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    cfg = SyntheticLongConfig(
        num_subjects=1,
        videos_per_subject=1,
        seconds=7.0,
        fps=30.0,
        canvas=(240, 320),
        micro_per_video=2,
        macro_per_video=1,
        blinks_per_video=1,
        head_moves_per_video=1,
    )
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    return cfg, write_video_file(synthetic_long_videos(cfg)[0], path, fourcc="MJPG")


def test_a_video_becomes_a_timeline_a_csv_and_a_plot(deployment, video, tmp_path):
    _, path = video
    timeline = predict_video(path, deployment, tmp_path / "out", progress=False)
    rows = json.loads(timeline.read_text())
    assert rows, "nothing was spotted in a video with planted expressions"
    for row in rows:
        assert set(row) == TIMELINE_KEYS
        assert row["onset"] <= row["apex"] <= row["offset"] and row["kind"] in ("micro", "macro")
        assert row["start_s"] == pytest.approx(row["onset"] / 30.0, abs=1e-4)
        assert row["class"] == max(row["probabilities"], key=row["probabilities"].get)
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
    with open(tmp_path / "out" / "timeline.csv") as f:
        table = list(csv.DictReader(f))
    assert [int(r["onset"]) for r in table] == [r["onset"] for r in rows]
    assert {"p_negative", "p_positive", "p_surprise"} <= set(table[0])
    plot = cv2.imread(str(tmp_path / "out" / "motion.png"))
    assert plot is not None and plot.shape[1] > plot.shape[0]  # a wide time axis


def test_a_known_clip_skips_spotting(deployment, video, tmp_path):
    cfg, path = video
    micro = next(e for e in planted_events(cfg, 0, 0) if e.kind == "micro")
    timeline = predict_video(
        path, deployment, tmp_path, clip=KnownClip(micro.onset, micro.apex, micro.offset), progress=False
    )
    (row,) = json.loads(timeline.read_text())
    assert (row["onset"], row["apex"], row["offset"]) == (micro.onset, micro.apex, micro.offset)
    assert row["kind"] == "micro" and row["score"] is None
    with pytest.raises(VideoError, match="onset <= apex <= offset"):
        predict_video(path, deployment, tmp_path, clip=KnownClip(micro.apex, micro.onset), progress=False)


def test_bad_videos_are_refused_naming_the_file(deployment, tmp_path):
    blank = tmp_path / "blank.avi"
    writer = cv2.VideoWriter(str(blank), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (160, 120))
    for _ in range(40):
        writer.write(np.full((120, 160, 3), 90, np.uint8))
    writer.release()
    with pytest.raises(VideoError, match="no face found") as err:
        predict_video(blank, deployment, tmp_path / "o", progress=False)
    assert str(blank) in str(err.value)
    short_cfg = SyntheticLongConfig(
        num_subjects=1,
        videos_per_subject=1,
        seconds=1.0,
        fps=30.0,
        micro_per_video=0,
        macro_per_video=0,
        blinks_per_video=0,
        head_moves_per_video=0,
    )
    short = synthetic_long_videos(short_cfg)[0]
    frames = tmp_path / "frames"
    frames.mkdir()
    for n in short.frames.frame_numbers[:3]:
        cv2.imwrite(str(frames / f"img{n}.png"), short.frames.read(n))
    with pytest.raises(VideoError, match="spotting needs at least") as err:
        predict_video(frames, deployment, tmp_path / "o", fps=30.0, progress=False)
    assert str(frames) in str(err.value)


@pytest.mark.slow
def test_predict_cli_recognises_the_planted_micro_expressions(tmp_path):
    """The README's path end to end: a deployment model of the default experiment, then predict.py on a
    video file; the correctly spotted micro-expressions are recognised as their planted class."""
    run_dir = tmp_path / "deploy"
    env = {**os.environ, "MERLIN_CACHE_DIR": str(tmp_path / "cache")}
    train = [sys.executable, "train.py", "data.protocol=all", f"run_dir={run_dir}", "logger=none"]
    subprocess.run([*train, "progress=false"], cwd=ROOT, check=True, env=env, capture_output=True)
    cfg = SyntheticLongConfig(num_subjects=1, videos_per_subject=1, seconds=12.0, fps=30.0, canvas=(240, 320))
    video = write_video_file(synthetic_long_videos(cfg)[0], tmp_path / "v.avi", fourcc="MJPG")
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "predict.py",
            f"input={video}",
            f"ckpt={run_dir / 'last.ckpt'}",
            f"out={out}",
            "progress=false",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"timeline: {out / 'timeline.json'}"
    rows = json.loads((out / "timeline.json").read_text())
    planted = [e for e in planted_events(cfg, 0, 0) if e.kind == "micro"]
    hits = []
    for e in planted:
        for r in rows:
            inter = min(e.offset, r["offset"]) - max(e.onset, r["onset"]) + 1
            union = max(e.offset, r["offset"]) - min(e.onset, r["onset"]) + 1
            if r["kind"] == "micro" and inter / union >= 0.5:
                hits.append((e.emotion, r["class"]))
    assert hits, f"no planted micro-expression spotted: {rows}"
    assert sum(a == b for a, b in hits) >= (len(hits) + 1) // 2, hits
    bad = subprocess.run(
        [sys.executable, "predict.py", f"input={tmp_path / 'nothing.mp4'}", f"ckpt={run_dir / 'last.ckpt'}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        f"error: input not found: {tmp_path / 'nothing.mp4'}"
    ]
