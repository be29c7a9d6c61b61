"""Spot-then-recognise on a user's video: shots with a fixed face crop, spotting per shot, each spotted
interval through the checkpoint's own feature pipeline and network, then the timeline and the motion plot.

What predict.py runs; a library function with plain arguments, so tests and notebooks call it directly.
The checkpoint is checked first (a wrong file fails before a long video is decoded), then the input.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from inference.predictor import Predictor
from inference.timeline import (
    MOTION_PNG,
    ShotFrames,
    kind_of,
    plot_motion,
    recognise,
    write_timeline,
)
from inference.video import VideoError, face_shots, iter_gray_frames, open_input

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KnownClip:
    """onset/apex/offset given by the user (frame indices from 0): spotting is skipped for this one clip."""

    onset: int
    apex: int | None = None
    offset: int | None = None


def predict_video(
    input: str | Path,
    ckpt: str | Path,
    out: str | Path,
    fps: float | None = None,
    clip: KnownClip | None = None,
    spotter=None,
    progress: bool = True,
) -> Path:
    """Write OUT/timeline.json, OUT/timeline.csv and OUT/motion.png for `input`; returns timeline.json.

    spotter: a spotting.SpotterConfig (None: its defaults)."""
    from tqdm import tqdm

    from spotting import SpotterConfig, minimum_frames, spot_frames

    predictor = Predictor.from_checkpoint(ckpt)
    video = open_input(input, fps)
    spotter = spotter or SpotterConfig()
    name = Path(input).stem or "video"
    with tqdm(
        total=video.frame_count or None,
        unit="frame",
        desc=f"reading {name}",
        disable=not progress,
        leave=False,
    ) as bar:
        shots, read = face_shots(iter_gray_frames(video), video.fps, progress=bar)
    if not shots:
        raise VideoError(f"{video.path}: no face found by the Haar cascade in any of its {read} frames")
    log.info("%s: %d frames at %.4g fps, %d shot(s) with a face", video.path, read, video.fps, len(shots))
    traces, intervals = [], []
    if clip is not None:
        intervals.append(_known_interval(video, shots, clip))  # no spotting: the plot shows the clip alone
    else:
        need = minimum_frames(video.fps, spotter)
        long_enough = [k for k, shot in enumerate(shots) if len(shot.frames) >= need]
        if not long_enough:
            longest = max(len(s.frames) for s in shots)
            raise VideoError(
                f"{video.path}: the longest stretch with a face is {longest} frames "
                f"({longest / video.fps:.2f} s); spotting needs at least {need} frames "
                f"({need / video.fps:.2f} s) at {video.fps:.4g} fps"
            )
        for k in long_enough:
            shot = shots[k]
            frames = ShotFrames(tuple(shot.frames), shot.start, str(video.path))
            result = spot_frames(shot.frames, video.fps, spotter)
            traces.append((shot.start, result.signal, result.threshold))
            for d in result.detections:
                intervals.append(
                    (
                        frames,
                        shot.start + d.onset,
                        shot.start + d.apex,
                        shot.start + d.offset,
                        d.kind,
                        d.score,
                        k,
                    )
                )
    entries = recognise(predictor, intervals, video.fps, name)
    out = Path(out)
    timeline = write_timeline(entries, predictor.classes, out)
    plot_motion(
        traces, entries, video.fps, predictor.classes, out / MOTION_PNG, title=f"{name}: motion and intervals"
    )
    return timeline


def _known_interval(video, shots, clip: KnownClip):
    """The user's clip as an interval of the shot holding it; errors name the input and the frames."""
    onset = int(clip.onset)
    k = next((k for k, shot in enumerate(shots) if shot.start <= onset < shot.stop), None)
    if k is None:
        raise VideoError(f"{video.path}: onset {onset} falls in no shot with a face (shots: {_spans(shots)})")
    shot = shots[k]
    last = shot.stop - 1
    apex = int(clip.apex) if clip.apex is not None else None
    offset = int(clip.offset) if clip.offset is not None else None
    if offset is None:
        offset = min(last, 2 * apex - onset) if apex is not None else min(last, onset + int(0.5 * video.fps))
    if apex is None:
        apex = (onset + offset) // 2
    if not onset <= apex <= offset <= last:
        raise VideoError(
            f"{video.path}: onset {onset}, apex {apex}, offset {offset} must satisfy onset <= apex <= offset "
            f"within the shot holding the onset (frames {shot.start}..{last})"
        )
    frames = ShotFrames(tuple(shot.frames), shot.start, str(video.path))
    return (frames, onset, apex, offset, kind_of(onset, offset, video.fps), None, k)


def _spans(shots) -> str:
    return ", ".join(f"{s.start}..{s.stop - 1}" for s in shots[:8]) + (" ..." if len(shots) > 8 else "")
