"""A user's input as shots with one fixed face crop each (inference.video)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from datamodules.readers.synthetic import SyntheticConfig, render_frame
from inference.video import VideoError, face_shots, iter_gray_frames, open_input

CFG = SyntheticConfig(num_subjects=2, clips_per_subject=1)


def _camera(face: np.ndarray, x: int, y: int) -> np.ndarray:
    """A 240x320 camera frame with the face pasted at (x, y) on a plain background."""
    frame = np.full((240, 320), 70, np.uint8)
    h, w = face.shape
    frame[y : y + h, x : x + w] = face
    return frame


def test_a_cut_and_a_lost_face_start_new_shots_and_the_crop_stays_fixed_within_one():
    a = render_frame(CFG, 0, 0, 0)
    b = render_frame(CFG, 1, 0, 0)
    frames = (
        [_camera(a, 40, 30)] * 20  # shot 0
        + [_camera(b, 150, 50)] * 20  # a cut to another face elsewhere: shot 1
        + [np.full((240, 320), 70, np.uint8)] * 10  # nobody in the picture: no shot
        + [_camera(a, 100, 40)] * 15  # the face is back: shot 2
    )
    shots, read = face_shots(iter(frames), fps=20.0)
    assert read == len(frames)
    assert [(s.start, s.stop) for s in shots] == [(0, 20), (20, 40), (50, 65)]
    for shot, (x, y) in zip(shots, [(40, 30), (150, 50), (100, 40)], strict=True):
        bx, by, bw, bh = shot.box
        assert bx <= x + 20 and by <= y + 30 and bx + bw >= x + 120 and by + bh >= y + 130  # holds the face
        assert len({f.shape for f in shot.frames}) == 1  # one box for the whole shot


def test_inputs_that_are_not_videos_are_refused_naming_them(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(VideoError, match="not a video OpenCV can decode") as err:
        open_input(text)
    assert str(text) in str(err.value)
    with pytest.raises(VideoError, match="input not found"):
        open_input(tmp_path / "missing.mp4")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoError, match="holds no frame images"):
        open_input(empty)
    cv2.imwrite(str(empty / "img2.png"), render_frame(CFG, 0, 0, 1))
    cv2.imwrite(str(empty / "img10.png"), render_frame(CFG, 0, 0, 2))
    cv2.imwrite(str(empty / "img1.png"), render_frame(CFG, 0, 0, 0))
    with pytest.raises(VideoError, match="give fps="):
        open_input(empty)
    folder = open_input(empty, fps=200)
    assert [p.name for p in folder.files] == ["img1.png", "img2.png", "img10.png"]  # by number, not name
    frames = list(iter_gray_frames(folder))
    np.testing.assert_array_equal(frames[1], render_frame(CFG, 0, 0, 1))


def test_a_video_file_is_read_back_frame_by_frame(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (320, 240))
    face = render_frame(CFG, 0, 0, 0)
    for _ in range(12):
        writer.write(cv2.cvtColor(_camera(face, 60, 40), cv2.COLOR_GRAY2BGR))
    writer.release()
    video = open_input(path)
    assert video.fps == pytest.approx(25.0) and video.frame_count == 12
    frames = list(iter_gray_frames(video))
    assert len(frames) == 12 and frames[0].shape == (240, 320)
    shots, _ = face_shots(iter(frames), video.fps)
    assert len(shots) == 1 and len(shots[0].frames) == 12


def test_one_missed_detection_does_not_split_a_shot(monkeypatch):
    """The Haar cascade misses a face now and then: a shot ends only when two checks in a row agree."""
    import inference.video as video

    frames = [_camera(render_frame(CFG, 0, 0, 0), 40, 30)] * 60
    real, calls = video.face_box, []

    def flaky(frame, margin):
        calls.append(1)
        return None if len(calls) == 3 else real(frame, margin)  # the second check (frame 20) misses

    monkeypatch.setattr(video, "face_box", flaky)
    shots, _ = face_shots(iter(frames), fps=20.0)
    assert [(s.start, s.stop) for s in shots] == [(0, 60)]
