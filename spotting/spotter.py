"""Spot the micro- and macro-expressions of a long video: the two-scale motion signal, then intervals.

    result = spot_frames(face_frames, fps)             # gray uint8 face crops, frame indices 0..T-1
    result = spot_video(long_video)                     # a LongVideo: its frames read once, its numbers

Macro-expressions are spotted first, on the macro scale (its window sees movements up to 2 macro_window
long). Micro-expressions are then spotted on the micro scale outside the macro intervals, with a threshold
computed there too: a macro-expression is several times stronger than a micro-expression, and would
otherwise set the micro threshold above every micro-expression of the video. An interval's kind is its
duration: under MICRO_MAX_SECONDS (0.5 s) onset to offset it is micro, else macro; so a peak of the micro
scale as long as a macro-expression (a short one, missed on the macro scale) is reported as macro, and a
peak of the macro scale as short as a micro-expression is left to the micro scale, where it is measured
against its own kind. Scores are peak heights in working pixels.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from datamodules.long_videos import MACRO, MICRO, MICRO_MAX_SECONDS, LongVideo
from spotting.config import SpotterConfig, frames_at
from spotting.detections import Detection
from spotting.peaks import Peak, find_intervals, megc_threshold, quiet_level, smooth
from spotting.signal import MotionSignals, motion_signals


@dataclass
class SpotResult:
    """What the spotter saw in one video, at every frame index 0..T-1 (analysed frames interpolated).

    signal / threshold: the micro scale's signal (the strongest region's, smoothed, px) and the threshold
    micro-expressions were spotted with; macro_signal / macro_threshold: the same for the macro scale.
    region_signals / macro_region_signals: {region name: (T,)} before the maximum over regions.
    detections: frame indices of the input (spot_frames) or the video's own frame numbers (spot_video).
    """

    signal: np.ndarray
    threshold: float
    macro_signal: np.ndarray
    macro_threshold: float
    region_signals: dict[str, np.ndarray]
    macro_region_signals: dict[str, np.ndarray]
    detections: list[Detection]
    eye_signal: np.ndarray  # (T,) the micro scale on the eye band (blinks)
    head_signal: np.ndarray  # (T,) the micro scale on the head's own motion (removed from the regions)
    fps: float
    stride: int  # every stride-th frame was analysed
    windows: tuple[int, int]  # (micro, macro) comparison distances in frames of the video
    eye_line: float | None = None  # where the eyes were found (share of the face frame's height); None: not
    face_box: tuple[int, int, int, int] | None = None  # spot_video: (x, y, w, h) cropped; None: whole frame
    notes: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.signal.shape[0])


def _kind(onset: int, offset: int, fps: float, rate: float) -> str:
    """micro when the interval, less one analysed frame at each end, is under MICRO_MAX_SECONDS.

    Its edges are measured to about an analysed frame (on synthetic micro-expressions at 30 fps: onset
    -0.7 +/- 0.6 frames, offset -0.65 +/- 0.7), and near the boundary a micro-expression is the likelier
    of the two (micro-expressions crowd up to 0.5 s; macro-expressions last 1.5 s on average), so an
    expression measured one frame too long at each end stays micro."""
    return MICRO if (offset - onset + 1) / fps - 2 / rate < MICRO_MAX_SECONDS else MACRO


def _to_frames(peak: Peak, stride: int, last: int) -> tuple[int, int, int]:
    """A peak's analysed-frame indices as frame indices. The signal at analysed frame c pairs the flows
    into c and out of c + 1 (signal.py), so it describes the moment c + 1/2: its edges move by half."""
    apex = min(peak.apex * stride, last)
    onset = min(int(round((peak.onset + 0.5) * stride)), apex)
    offset = max(min(int(round((peak.offset + 0.5) * stride)), last), apex)
    return onset, apex, offset


def _threshold(signal: np.ndarray, p: float, ratio: float) -> float:
    return max(megc_threshold(signal, p), ratio * quiet_level(signal))


def without_leaks(
    regions: np.ndarray, eyes: np.ndarray, head: np.ndarray, config: SpotterConfig
) -> np.ndarray:
    """(N, R) region signals less, in quadrature, what a blink and a head movement leak into them:
    sqrt(max(0, S_r^2 - (blink_leak E)^2 - (head_leak H)^2)), E the eye band's signal, H the head's."""
    leak = (config.blink_leak * eyes) ** 2 + (config.head_leak * head) ** 2
    return np.sqrt(np.maximum(regions**2 - leak[:, None], 0.0))


def detect(
    signals: MotionSignals, fps: float, stride: int, num_frames: int, config: SpotterConfig
) -> tuple[list[Detection], dict]:
    """Detections (frame indices 0..num_frames-1) from the analysed frames' signals; and the smoothed
    signals and thresholds, {"micro": (S, T), "macro": (S, T)} on the analysed frames."""
    rate = fps / stride
    sigma = config.smooth_seconds * rate
    micro = smooth(
        without_leaks(signals.micro, signals.micro_eyes, signals.micro_head, config).max(axis=1), sigma
    )
    macro = smooth(
        without_leaks(signals.macro, signals.macro_eyes, signals.macro_head, config).max(axis=1), sigma
    )
    last = num_frames - 1
    found: list[Detection] = []

    macro_threshold = _threshold(macro, config.macro_threshold_p, config.macro_min_peak_ratio)
    for peak in find_intervals(
        macro, macro_threshold, quiet_level(macro), config.edge_level, config.edge_extend
    ):
        onset, apex, offset = _to_frames(peak, stride, last)
        if _kind(onset, offset, fps, rate) == MACRO:
            found.append(Detection(onset, apex, offset, MACRO, peak.height))

    # Micro scale, outside the macro intervals (statistics included).
    allowed = np.ones(micro.shape[0], dtype=bool)
    index = np.arange(micro.shape[0]) * stride
    for d in found:
        allowed &= ~((index >= d.onset) & (index <= d.offset))
    rest = micro[allowed] if allowed.any() else micro
    micro_threshold = _threshold(rest, config.threshold_p, config.min_peak_ratio)
    for peak in find_intervals(
        micro, micro_threshold, quiet_level(rest), config.edge_level, config.edge_extend, allowed
    ):
        onset, apex, offset = _to_frames(peak, stride, last)
        found.append(Detection(onset, apex, offset, _kind(onset, offset, fps, rate), peak.height))
    found.sort(key=lambda d: (d.onset, d.offset))
    return found, {"micro": (micro, micro_threshold), "macro": (macro, macro_threshold)}


def _on_every_frame(values: np.ndarray, stride: int, num_frames: int) -> np.ndarray:
    """(T,) linear interpolation of values given on frames 0, stride, 2 stride, ..."""
    analysed = np.arange(values.shape[0]) * stride
    return np.interp(np.arange(num_frames), analysed, values)


def _analysed(frames: Iterable[np.ndarray], stride: int, seen: list[int]) -> Iterator[np.ndarray]:
    for i, frame in enumerate(frames):
        seen[0] = i + 1
        if i % stride == 0:
            yield frame


def _spot(
    analysed: Iterable[np.ndarray], count: list[int], fps: float, config: SpotterConfig, stride: int
) -> SpotResult:
    rate = fps / stride
    windows = (frames_at(config.micro_window, rate), frames_at(config.macro_window, rate))
    signals = motion_signals(analysed, windows, config)
    num_frames = count[0]
    detections, smoothed = detect(signals, fps, stride, num_frames, config)
    names = signals.region_names
    micro, micro_threshold = smoothed["micro"]
    macro, macro_threshold = smoothed["macro"]
    return SpotResult(
        signal=_on_every_frame(micro, stride, num_frames),
        threshold=float(micro_threshold),
        macro_signal=_on_every_frame(macro, stride, num_frames),
        macro_threshold=float(macro_threshold),
        region_signals={
            n: _on_every_frame(signals.micro[:, r], stride, num_frames) for r, n in enumerate(names)
        },
        macro_region_signals={
            n: _on_every_frame(signals.macro[:, r], stride, num_frames) for r, n in enumerate(names)
        },
        detections=detections,
        eye_signal=_on_every_frame(signals.micro_eyes, stride, num_frames),
        head_signal=_on_every_frame(signals.micro_head, stride, num_frames),
        fps=float(fps),
        stride=stride,
        windows=(windows[0] * stride, windows[1] * stride),
        eye_line=signals.eye_line,
    )


def spot_frames(
    frames: Sequence[np.ndarray] | np.ndarray | Iterable[np.ndarray],
    fps: float,
    config: SpotterConfig | None = None,
) -> SpotResult:
    """Spot expressions in a face video: frames (T, H, W) gray uint8 (or RGB) of the face already cropped,
    indices 0..T-1; a sequence or array is indexed (only analysed frames are touched), any other iterable
    (a generator) is read once. Detections are in frame indices."""
    config = config or SpotterConfig()
    stride = config.stride(fps)
    if hasattr(frames, "__len__") and hasattr(frames, "__getitem__"):
        count = [len(frames)]
        analysed: Iterable[np.ndarray] = (frames[i] for i in range(0, count[0], stride))
    else:
        count = [0]
        analysed = _analysed(frames, stride, count)
    return _spot(analysed, count, fps, config, stride)


def _face_box(video: LongVideo, config: SpotterConfig) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) of the face, from the first frame where the Haar cascade finds one among five evenly
    spaced frames, with the config's margin, inside the image; None when none of them shows a face."""
    from preprocessing.face import detect_face

    numbers = video.frames.frame_numbers
    picks = sorted({numbers[int(i)] for i in np.linspace(0, len(numbers) - 1, 5)})
    for number in picks:
        image = video.frames.read(number)
        box = detect_face(image)
        if box is None:
            continue
        h, w = image.shape[:2]
        mx, my = int(round(box.w * config.face_margin)), int(round(box.h * config.face_margin))
        x0, y0 = max(0, box.x - mx), max(0, box.y - my)
        x1, y1 = min(w, box.x + box.w + mx), min(h, box.y + box.h + my)
        return x0, y0, x1 - x0, y1 - y0
    return None


def spot_video(video: LongVideo, config: SpotterConfig | None = None) -> SpotResult:
    """Spot expressions in a LongVideo; detections in the video's own frame numbers.

    face="detect" (default) crops every frame to one face box found on the video's first frames (a box
    that moved from frame to frame would read as motion); face="full", or no face found, spots the whole
    frame (`face_box` None, and a note saying which)."""
    config = config or SpotterConfig()
    numbers = video.frames.frame_numbers
    stride = config.stride(video.fps)
    box = _face_box(video, config) if config.face == "detect" else None

    def read(number: int) -> np.ndarray:
        image = video.frames.read(number)
        if box is None:
            return image
        x, y, w, h = box
        return image[y : y + h, x : x + w]

    count = [len(numbers)]
    analysed = (read(numbers[i]) for i in range(0, len(numbers), stride))
    result = _spot(analysed, count, video.fps, config, stride)
    result.detections = [
        Detection(numbers[d.onset], numbers[d.apex], numbers[d.offset], d.kind, d.score)
        for d in result.detections
    ]
    result.face_box = box
    if config.face == "detect" and box is None:
        result.notes["face"] = "no face found on 5 frames by the Haar cascade: the whole frame was spotted"
    return result
