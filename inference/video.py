"""A user's video, or folder of frames, as shots of face-cropped grey frames.

Spotting and recognition both need the face to stay put in the crop: a crop that follows a detector
frame by frame adds jitter larger than a micro-expression (which moves the skin by a pixel or less). So, as
for a database clip (preprocessing.face), the crop is fixed once per *shot*: the face is found on the first
frame of a shot, and that box (with a margin) crops every frame until the shot ends. A shot ends at a cut
(the picture changes all at once) or when the face is lost or has moved away from its box (checked by
detecting it again every `check_seconds`); the next frame with a face starts a new shot. Frames without a
face belong to no shot and are neither spotted nor recognised.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from datamodules.readers.base import IMAGE_SUFFIXES, trailing_number

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv")


class VideoError(ValueError):
    """The input cannot be read as a video or a folder of frames; the message names it."""


@dataclass(frozen=True)
class VideoInput:
    """Where the frames come from: a video file OpenCV decodes, or image files sorted by their number."""

    path: Path
    fps: float
    frame_count: int  # as the container or folder says (a file's count may be an estimate)
    files: tuple[Path, ...] = ()  # a folder's frames in order; empty for a video file

    @property
    def is_folder(self) -> bool:
        return bool(self.files)


def open_input(path: str | Path, fps: float | None = None) -> VideoInput:
    """Check that `path` is a readable video file or a folder of frames, and find its frame rate.

    fps: overrides the file's own rate; required for a folder of frames (images carry no rate)."""
    path = Path(path)
    if not path.exists():
        raise VideoError(f"input not found: {path}")
    if fps is not None and not float(fps) > 0:
        raise VideoError(f"fps={fps}: expected a positive frame rate")
    if path.is_dir():
        files = sorted(
            (p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
            key=lambda p: (trailing_number(p) is None, trailing_number(p) or 0, p.name),
        )
        if not files:
            raise VideoError(f"{path} holds no frame images ({', '.join(IMAGE_SUFFIXES)})")
        if fps is None:
            raise VideoError(f"{path} is a folder of frames, which carries no frame rate: give fps=...")
        return VideoInput(path, float(fps), len(files), tuple(files))
    capture = cv2.VideoCapture(str(path))
    try:
        ok, _ = capture.read() if capture.isOpened() else (False, None)
        if not ok:
            raise VideoError(f"{path} is not a video OpenCV can decode (or it has no frames)")
        rate = float(fps) if fps is not None else float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        capture.release()
    if not rate > 0:
        raise VideoError(f"{path} records no frame rate: give fps=...")
    return VideoInput(path, rate, count)


def iter_gray_frames(video: VideoInput) -> Iterator[np.ndarray]:
    """Every frame in order as uint8 (H, W) grey."""
    if video.is_folder:
        for file in video.files:
            image = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise VideoError(f"unreadable frame image: {file}")
            yield image
        return
    capture = cv2.VideoCapture(str(video.path))
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    finally:
        capture.release()


@dataclass
class Shot:
    """Consecutive frames `start`, `start + 1`, ... of the video, each cropped to one fixed face box."""

    start: int
    box: tuple[int, int, int, int]  # x, y, w, h in the full frame
    frames: list[np.ndarray] = field(default_factory=list)

    @property
    def stop(self) -> int:  # one past the last frame
        return self.start + len(self.frames)


@dataclass(frozen=True)
class ShotRules:
    """When a shot ends. A cut: the mean absolute grey difference of two consecutive frames (at 64 px) is
    over `cut_level` grey levels. A lost face: no face found at a check. A moved face: its centre is more
    than `move_fraction` of the box size away from the shot's, or its size changed by more than that."""

    margin: float = 0.1  # around the detected box, as preprocessing.face.face_crop_for
    check_seconds: float = 0.5
    cut_level: float = 30.0
    move_fraction: float = 0.25


def face_box(frame: np.ndarray, margin: float) -> tuple[int, int, int, int] | None:
    """The Haar face box of a frame grown by `margin` on each side and kept inside the frame, or None."""
    from preprocessing.face import detect_face

    box = detect_face(frame)
    if box is None:
        return None
    mx, my = int(round(box.w * margin)), int(round(box.h * margin))
    h, w = frame.shape[:2]
    x0, y0 = max(0, box.x - mx), max(0, box.y - my)
    x1, y1 = min(w, box.x + box.w + mx), min(h, box.y + box.h + my)
    return x0, y0, x1 - x0, y1 - y0


def _thumb(frame: np.ndarray) -> np.ndarray:
    return cv2.resize(frame, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)


def _moved(a: tuple[int, int, int, int], b: tuple[int, int, int, int], fraction: float) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    size = max(aw, ah)
    centre = np.hypot((ax + aw / 2) - (bx + bw / 2), (ay + ah / 2) - (by + bh / 2))
    return centre > fraction * size or abs(bw - aw) > fraction * aw or abs(bh - ah) > fraction * ah


def _crop(frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    return np.ascontiguousarray(frame[y : y + h, x : x + w])


def face_shots(
    frames: Iterator[np.ndarray], fps: float, rules: ShotRules | None = None, progress=None
) -> tuple[list[Shot], int]:
    """Split a stream of grey frames into shots with a fixed face crop each. Returns (shots, frames read).

    A cut ends the shot at once. A lost or moved face must be seen at two checks in a row: a Haar cascade
    misses a face or boxes a smaller pattern now and then, and one such check must not split a shot. The
    raw frames from the first disagreeing check on are held back until the second decides where they go.

    progress: a tqdm-like bar, updated once per frame read."""
    rules = rules or ShotRules()
    check_every = max(1, int(round(rules.check_seconds * fps)))
    shots: list[Shot] = []
    current: Shot | None = None
    held: list[tuple[int, np.ndarray]] = []  # frames since a first disagreeing check: (index, raw frame)
    held_box = None  # the face box found at that check (None: the face was lost)
    move = rules.move_fraction
    previous = None
    index = -1

    def release() -> None:  # a false alarm: the held frames stay in the current shot
        current.frames.extend(_crop(f, current.box) for _, f in held)
        held.clear()

    for index, frame in enumerate(frames):
        if progress is not None:
            progress.update(1)
        thumb = _thumb(frame)
        cut = previous is not None and float(np.abs(thumb - previous).mean()) > rules.cut_level
        previous = thumb
        if current is not None and cut:
            release()
            current = None
        elif current is not None and (index - current.start) % check_every == 0:
            found = face_box(frame, rules.margin)
            if found is not None and not _moved(current.box, found, move):
                release()
            elif not held:
                held.append((index, frame))  # first disagreement: wait for the next check
                held_box = found
                continue
            else:  # confirmed: the shot ended at the first disagreeing check
                first = held[0][0]
                current = None
                if found is not None and held_box is not None and not _moved(held_box, found, move):
                    # The face moved there at the first check and stayed: a new shot from that check.
                    current = Shot(start=first, box=found)
                    current.frames.extend(_crop(f, found) for _, f in held)
                    shots.append(current)
                held.clear()  # otherwise the held frames had no (steady) face: they join no shot
        elif held:
            held.append((index, frame))
            continue
        if current is None:
            box = face_box(frame, rules.margin)
            if box is None:
                continue
            current = Shot(start=index, box=box)
            shots.append(current)
        current.frames.append(_crop(frame, current.box))
    if held:
        release()
    return shots, index + 1
