"""Writing a long video to disk: as numbered image files (the long-video exporters' layouts: SAMM Long
Videos, CAS(ME)^2, SMIC-E) or as one video file (what a user hands predict.py).

Both take any `LongVideo` and read its frames through its frame source, so a synthetic video and a video
read back from disk are written the same way.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from datamodules.long_videos import LongVideo


def _save_image(path: Path, image: np.ndarray) -> None:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix.lower() in (".jpg", ".jpeg") else []
    if not cv2.imwrite(str(path), np.ascontiguousarray(image), params):
        raise OSError(f"could not write {path}")


def write_long_frames(
    video: LongVideo,
    folder: Path,
    name_of: Callable[[int], str],
    numbers: Sequence[int] | None = None,
) -> list[Path]:
    """Save frames of `video` as `folder / name_of(number)`, for its frame numbers `numbers` (default: all).

    The image format follows the suffix of the name (.jpg at quality 95, .png, .bmp), as the clip
    exporters write theirs. An exporter renames frames (SAMM-LV counts from 1, `006_1_0001.jpg`) by
    `name_of`, and leaves frames out by `numbers`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    numbers = video.frames.frame_numbers if numbers is None else numbers
    paths = []
    for number in numbers:
        path = folder / name_of(number)
        _save_image(path, video.frames.read(number))
        paths.append(path)
    return paths


def _frames_in(path: Path) -> tuple[int, float]:
    """(frames OpenCV decodes, the frame rate it reports) of a video file; (-1, 0) if it cannot open it."""
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return -1, 0.0
        count = 0
        while capture.grab():  # counted by decoding: CAP_PROP_FRAME_COUNT is an estimate for some containers
            count += 1
        return count, float(capture.get(cv2.CAP_PROP_FPS))
    finally:
        capture.release()


def write_video_file(video: LongVideo, path: Path, fourcc: str = "mp4v") -> Path:
    """Write every frame of `video` into one video file at `video.fps` with OpenCV, and return its path.

    The file is written under a temporary name beside `path` and renamed only once OpenCV reads it back
    with every frame and the frame rate (within 1 %): a half-written or silently truncated file never
    carries the final name. Raises OSError naming the file when no writer opens or the check fails.
    Grey frames are written as three equal channels (the codecs' native input).
    """
    path = Path(path)
    if len(fourcc) != 4:
        raise ValueError(f"fourcc {fourcc!r} must be four characters (mp4v, MJPG, XVID, ...)")
    path.parent.mkdir(parents=True, exist_ok=True)
    numbers = video.frames.frame_numbers
    first = video.frames.read(numbers[0])
    height, width = first.shape[:2]
    partial = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.partial{path.suffix}")
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*fourcc), float(video.fps), (width, height))
    try:
        if not writer.isOpened():
            raise OSError(f"cannot write {path}: OpenCV opens no {fourcc!r} writer for {path.suffix!r} files")
        for number in numbers:
            image = first if number == numbers[0] else video.frames.read(number)
            if image.shape[:2] != (height, width):
                raise ValueError(
                    f"{video.video_id}: frame {number} is {image.shape[1]}x{image.shape[0]}, the first frame "
                    f"{width}x{height}; a video file holds one size"
                )
            bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR if image.ndim == 3 else cv2.COLOR_GRAY2BGR)
            writer.write(bgr)
        writer.release()
        count, fps = _frames_in(partial)
        if count != len(numbers):
            raise OSError(
                f"{path}: OpenCV reads back {count} frames of the {len(numbers)} written ({fourcc!r}); "
                "try another fourcc or suffix"
            )
        if abs(fps - video.fps) > 0.01 * video.fps:
            raise OSError(f"{path}: OpenCV reads back {fps} fps, written at {video.fps} ({fourcc!r})")
        os.replace(partial, path)
    finally:
        writer.release()
        partial.unlink(missing_ok=True)
    return path
