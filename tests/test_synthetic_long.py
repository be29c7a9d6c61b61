"""The synthetic long video: events where planted, of the planted kinds and lengths, each changing only what
it should; LongVideo records that validate; files that read back."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from datamodules.long_videos import MACRO, MICRO, MICRO_MAX_SECONDS, LongVideoRead, validate_long_video
from datamodules.readers import synthetic_long as sl
from datamodules.readers.export.long_common import write_long_frames, write_video_file
from datamodules.readers.synthetic import AU_TABLES
from datamodules.readers.synthetic_long import (
    BLINK,
    HEAD,
    SyntheticLongConfig,
    face_box,
    head_pose,
    planted_events,
    planted_field,
    render_long_frame,
    synthetic_long_videos,
)
from preprocessing.face import detect_face

ROOT = Path(__file__).resolve().parents[1]
# No head moves: frames of one video are then comparable pixel by pixel, in face-image coordinates.
STILL = SyntheticLongConfig(
    num_subjects=1, videos_per_subject=2, seconds=8.0, macro_per_video=1, blinks_per_video=2,
    head_moves_per_video=0, seed=3,
)  # fmt: skip
# Sensor noise of one frame difference: two frames' noise (std 1) and their rounding (1/12 each).
NOISE_DIFF_STD = np.sqrt(2 * (1 + 1 / 12))


def _diff(cfg, subject, video, a, b) -> np.ndarray:
    return render_long_frame(cfg, subject, video, a).astype(np.float64) - render_long_frame(
        cfg, subject, video, b
    )


def _quiet_frames(cfg, subject, video) -> list[int]:
    """Frames t with t and t + 1 outside every event (at least one frame away from each)."""
    busy = np.zeros(cfg.num_frames + 1, bool)
    for e in planted_events(cfg, subject, video):
        busy[max(e.onset - 1, 0) : e.offset + 2] = True
    return [t for t in range(cfg.num_frames - 1) if not busy[t] and not busy[t + 1]]


def test_deterministic_from_the_config():
    cfg = SyntheticLongConfig(num_subjects=1, videos_per_subject=1, seconds=10.0, seed=5)
    micro = next(e for e in planted_events(cfg, 0, 0) if e.kind == MICRO)
    first = render_long_frame(cfg, 0, 0, micro.apex)
    sl._plan.cache_clear()
    sl._long_face.cache_clear()
    again = SyntheticLongConfig(num_subjects=1, videos_per_subject=1, seconds=10.0, seed=5)
    assert planted_events(again, 0, 0) == planted_events(cfg, 0, 0)
    np.testing.assert_array_equal(render_long_frame(again, 0, 0, micro.apex), first)
    assert first.shape == (170, 140) and first.dtype == np.uint8
    other = SyntheticLongConfig(num_subjects=1, videos_per_subject=1, seconds=10.0, seed=6)
    assert planted_events(other, 0, 0) != planted_events(cfg, 0, 0)
    assert cfg.digest() == again.digest() != other.digest()
    assert len(cfg.digest()) == 16


@pytest.mark.parametrize("fps", [30.0, 200.0])
def test_events_have_their_kinds_lengths_and_gaps(fps):
    table = AU_TABLES["default"]
    for seed in range(6):
        cfg = SyntheticLongConfig(num_subjects=1, videos_per_subject=1, fps=fps, seed=seed)
        events = planted_events(cfg, 0, 0)
        kinds = [e.kind for e in events]
        assert (kinds.count(MICRO), kinds.count(MACRO), kinds.count(BLINK), kinds.count(HEAD)) == (3, 2, 3, 1)
        assert [e.onset for e in events] == sorted(e.onset for e in events)
        gap = int(np.ceil(cfg.min_gap_seconds * fps))
        assert events[0].onset >= gap and events[-1].offset <= cfg.num_frames - 1 - gap
        for a, b in zip(events, events[1:], strict=False):
            assert b.onset - a.offset - 1 >= gap, (seed, a, b)  # no overlap, and stillness between
        ranges = {MICRO: cfg.micro_seconds, MACRO: cfg.macro_seconds, BLINK: cfg.blink_seconds}
        ranges[HEAD] = cfg.head_seconds
        for e in events:
            lo, hi = ranges[e.kind]
            assert round(lo * fps) <= e.length <= round(hi * fps), (seed, e)
            assert e.onset < e.apex <= e.offset
            if e.kind in (MICRO, MACRO):
                assert e.apex < e.offset and e.emotion in cfg.classes
                assert e.action_units in table[e.emotion]
            else:
                assert e.emotion is None and e.action_units == ()
        for e in events:
            if e.kind == MICRO:
                assert e.length / fps < MICRO_MAX_SECONDS
                assert (
                    0.3
                    <= float(np.sqrt((planted_field(cfg, 0, 0, events.index(e)) ** 2).sum(0)).max())
                    <= 1.2
                )
            if e.kind == MACRO:
                assert e.length / fps >= 0.8
                assert (
                    2.0
                    <= float(np.sqrt((planted_field(cfg, 0, 0, events.index(e)) ** 2).sum(0)).max())
                    <= 4.0
                )


def test_long_video_records_validate():
    cfg = SyntheticLongConfig(num_subjects=2, videos_per_subject=2, seconds=10.0, micro_per_video=2)
    videos = synthetic_long_videos(cfg)
    assert [v.video_id for v in videos] == [
        "synthetic_long/s01/s01_v01",
        "synthetic_long/s01/s01_v02",
        "synthetic_long/s02/s02_v01",
        "synthetic_long/s02/s02_v02",
    ]
    for s, v, video in [(0, 0, videos[0]), (1, 1, videos[3])]:
        validate_long_video(video)
        assert video.subject == f"synthetic_long/s{s + 1:02d}" and video.fps == 30.0
        assert video.frames.frame_numbers == tuple(range(300)) == tuple(range(cfg.num_frames))
        events = planted_events(cfg, s, v)
        assert video.extra["events"] == events
        # The intervals are the expressions; blinks and head moves are left out, as annotators leave them.
        expressions = [e for e in events if e.kind in (MICRO, MACRO)]
        assert [(i.onset, i.apex, i.offset, i.kind, i.emotion, i.action_units) for i in video.intervals] == [
            (e.onset, e.apex, e.offset, e.kind, e.emotion, e.action_units) for e in expressions
        ]
        assert len(video.intervals_of(MICRO)) == 2 and len(video.intervals_of(MACRO)) == 2
        assert video.frames.fingerprint() != videos[1].frames.fingerprint()
    with pytest.raises(IndexError, match="not in video"):
        videos[0].frames.read(300)


def test_micro_apex_differs_from_onset_by_the_planted_field():
    """Apex minus onset is the first-order change of the planted warp, -grad(I) . D, plus noise; a quiet
    stretch changes by noise alone."""
    face = sl._face_of(STILL, 0).open_eyes.astype(np.float64)
    gy, gx = np.gradient(face)
    checked = 0
    for v in range(STILL.videos_per_subject):
        for k, e in enumerate(planted_events(STILL, 0, v)):
            if e.kind != MICRO:
                continue
            d = planted_field(STILL, 0, v, k)
            predicted = -(gx * d[0] + gy * d[1])
            diff = _diff(STILL, 0, v, e.apex, e.onset)
            moving = np.abs(predicted) > 2
            assert moving.sum() > 200
            assert np.corrcoef(diff[moving], predicted[moving])[0, 1] > 0.8
            assert 0.8 < np.polyfit(predicted[moving], diff[moving], 1)[0] < 1.4
            # Where the field moves nothing, the apex differs from the onset by noise only.
            assert diff[np.abs(predicted) < 0.3].std() < 1.15 * NOISE_DIFF_STD
            checked += 1
        quiet = _quiet_frames(STILL, 0, v)
        assert len(quiet) > 30
        for t in quiet[:: len(quiet) // 4]:
            diff = _diff(STILL, 0, v, t + 1, t)
            assert 0.85 * NOISE_DIFF_STD < diff.std() < 1.15 * NOISE_DIFF_STD
            assert abs(diff.mean()) < 0.2 and np.abs(diff).max() <= 8
    assert checked == 2 * STILL.micro_per_video


def test_a_blink_changes_the_eyes_and_leaves_the_mouth_alone():
    lm = sl._face_of(STILL, 0).landmarks
    eyes = (slice(int(lm.eye_y - 2 * lm.eye_ry), int(lm.eye_y + 2 * lm.eye_ry)),)
    eyes += (slice(int(lm.cx - lm.eye_dx - lm.eye_rx), int(lm.cx + lm.eye_dx + lm.eye_rx)),)
    mouth = (
        slice(int(lm.mouth_y - 6), int(lm.mouth_y + 6)),
        slice(int(lm.cx - lm.mouth_w), int(lm.cx + lm.mouth_w)),
    )
    blinks = [e for e in planted_events(STILL, 0, 0) if e.kind == BLINK]
    assert len(blinks) == 2
    for e in blinks:
        closed = _diff(STILL, 0, 0, e.apex, e.onset)
        assert np.abs(closed[eyes]).mean() > 5 * NOISE_DIFF_STD
        assert closed[mouth].std() < 1.15 * NOISE_DIFF_STD and abs(closed[mouth].mean()) < 0.5
        # The lids are open again at the offset.
        assert np.abs(_diff(STILL, 0, 0, e.offset, e.onset)[eyes]).mean() < 1.5


def _pose_matrix(pose, centre) -> np.ndarray:
    """3x3 forward map of a head pose (dx, dy, theta): p = c + R(theta)(q - c) + t."""
    dx, dy, theta = pose
    cos, sin = np.cos(theta), np.sin(theta)
    rotate = np.array([[cos, -sin], [sin, cos]])
    return np.vstack([np.hstack([rotate, (centre - rotate @ centre + [dx, dy])[:, None]]), [0, 0, 1]])


def _pose_residual(onset, apex, before, after, centre, inner) -> float:
    """Mean |apex - onset carried from pose `before` to pose `after`| over the face's `inner` part."""
    move = _pose_matrix(after, centre) @ np.linalg.inv(_pose_matrix(before, centre))
    moved = cv2.warpAffine(onset, move[:2], onset.shape[::-1], flags=cv2.INTER_CUBIC)
    return float(np.abs(moved - apex)[inner].mean())


def test_head_moves_the_face_over_a_still_background():
    cfg = SyntheticLongConfig(
        num_subjects=1, videos_per_subject=2, seconds=8.0, micro_per_video=1, macro_per_video=1,
        head_moves_per_video=2, canvas=(260, 300), seed=1,
    )  # fmt: skip
    lm = sl._face_of(cfg, 0).landmarks
    for v in range(2):
        pose = head_pose(cfg, 0, v)
        heads = [e for e in planted_events(cfg, 0, v) if e.kind == HEAD]
        still = np.ones(cfg.num_frames, bool)
        for e in heads:
            still[e.onset : e.offset + 1] = False
        # The head only moves inside a head move.
        assert not np.diff(pose, axis=0)[still[:-1] & still[1:]].any()
        x, y, w, h = face_box(cfg, 0, v)
        centre = np.array([x + lm.cx, y + lm.cy])
        inner = (
            slice(int(centre[1] - 0.6 * lm.face_ry), int(centre[1] + 0.6 * lm.face_ry)),
            slice(int(centre[0] - 0.6 * lm.face_rx), int(centre[0] + 0.6 * lm.face_rx)),
        )
        for e in heads:
            assert 1.0 <= np.hypot(*(pose[e.apex] - pose[e.onset])[:2]) <= 4.0
            onset = render_long_frame(cfg, 0, v, e.onset).astype(np.float32)
            apex = render_long_frame(cfg, 0, v, e.apex).astype(np.float32)

            # The apex face is the onset face carried by the planted pose change, to within noise; half a
            # pixel off that pose fits clearly worse.
            before, after = pose[e.onset], pose[e.apex]
            fit = _pose_residual(onset, apex, before, after, centre, inner)
            assert fit < 2.0 < 5 * fit < float(np.abs(apex - onset)[inner].mean())
            for nudge in ((0.5, 0), (-0.5, 0), (0, 0.5), (0, -0.5)):
                nudged = after + [*nudge, 0]
                assert _pose_residual(onset, apex, before, nudged, centre, inner) > 1.5 * fit, (e, nudge)
            # Pixels the face never reaches stay put: only sensor noise (and the slow light) changes there.
            background = np.ones(onset.shape, bool)
            m = cfg.canvas_margin
            background[max(y - m, 0) :, max(x - m, 0) : x + w + m] = False
            assert (apex - onset)[background].std() < 1.15 * NOISE_DIFF_STD


def test_the_face_is_detected_where_it_was_placed_on_the_canvas():
    cfg = SyntheticLongConfig(num_subjects=2, videos_per_subject=1, seconds=10.0, canvas=(300, 400))
    boxes = set()
    for s in range(2):
        x, y, w, h = face_box(cfg, s, 0)
        boxes.add((x, y))
        lm = sl._face_of(cfg, s).landmarks
        found = detect_face(render_long_frame(cfg, s, 0, 0))
        assert found is not None, s
        centre = (found.x + found.w / 2, found.y + found.h / 2)
        assert abs(centre[0] - (x + lm.cx)) < 0.15 * w and abs(centre[1] - (y + lm.cy)) < 0.15 * h
        assert 0.6 * w < found.w < 1.3 * w
    assert len(boxes) == 2  # placed anew per video


def test_video_file_and_frame_folder_read_back(tmp_path):
    cfg = SyntheticLongConfig(
        num_subjects=1, videos_per_subject=1, seconds=1.5, micro_per_video=1, macro_per_video=0,
        blinks_per_video=1, head_moves_per_video=0,
    )  # fmt: skip
    video = synthetic_long_videos(cfg)[0]
    path = write_video_file(video, tmp_path / "clip" / "s01.avi", fourcc="MJPG")
    assert path == tmp_path / "clip" / "s01.avi" and sorted(p.name for p in path.parent.iterdir()) == [
        "s01.avi"
    ]
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    assert len(frames) == video.num_frames == 45
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(30.0)
    assert np.abs(frames[10].astype(float) - video.frames.read(10)).mean() < 3
    mp4 = write_video_file(video, tmp_path / "s01.mp4")
    assert mp4.stat().st_size > 0
    # No writer for the suffix: an OSError naming the file, and nothing left behind.
    with pytest.raises(OSError, match="s01.xyz"):
        write_video_file(video, tmp_path / "bad" / "s01.xyz")
    assert list((tmp_path / "bad").iterdir()) == []

    paths = write_long_frames(video, tmp_path / "frames", lambda n: f"img{n + 1:04d}.png", numbers=[0, 7, 44])
    assert [p.name for p in paths] == ["img0001.png", "img0008.png", "img0045.png"]
    np.testing.assert_array_equal(cv2.imread(str(paths[1]), cv2.IMREAD_UNCHANGED), video.frames.read(7))
    jpg = write_long_frames(video, tmp_path / "jpg", lambda n: f"{n}.jpg", numbers=[3])[0]
    assert np.abs(cv2.imread(str(jpg), cv2.IMREAD_GRAYSCALE).astype(float) - video.frames.read(3)).mean() < 2


def test_config_file_reads_and_bad_configs_are_refused():
    node = OmegaConf.load(ROOT / "configs" / "videos" / "synthetic_long.yaml")
    assert node.name == "synthetic_long"
    read = instantiate(node.reader, num_subjects=1, videos_per_subject=1, canvas=[200, 180])
    assert isinstance(read, LongVideoRead) and read.report.dataset == "synthetic_long"
    assert read.videos[0].frames.config.canvas == (200, 180)
    assert read.videos[0].frames.read(0).shape == (200, 180)
    with pytest.raises(ValueError, match="need .* frames"):
        SyntheticLongConfig(seconds=3.0)
    with pytest.raises(ValueError, match="boundary to a macro"):
        SyntheticLongConfig(micro_seconds=(0.3, 0.6))
    with pytest.raises(ValueError, match="canvas .* too small"):
        SyntheticLongConfig(canvas=(180, 150))
    with pytest.raises(ValueError, match="unknown to au_table"):
        SyntheticLongConfig(classes=("happiness",))
