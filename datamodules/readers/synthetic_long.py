"""The synthetic long video: a recording with expressions planted at known frames, the ground truth for
spotting and the test video for spot-then-recognise.

Each video is one subject's procedural face (drawn as `synthetic.py` draws its faces, from a stream of its
own: `synthetic_long/s01` is another person than `synthetic/s01`) filmed for `seconds` at `fps`, in which
four kinds of event are planted:
- micro-expressions (0.2-0.45 s onset to offset, always under MICRO_MAX_SECONDS): the AU displacement
  fields, class -> AU table and apex amplitudes (0.3-1.2 px) of the `data=synthetic` clips, so a model
  trained there recognises a planted micro-expression's class; raised-cosine rise to the apex and decay;
- macro-expressions (0.8-3 s, 2-4 px): the same AU machinery and classes, with a plateau at the apex;
- blinks (0.1-0.3 s): the eyelids close fast and open slower, as `synthetic.py`'s blinks; only the eyes
  change;
- head moves (0.4-1.5 s): the whole face translates by a few pixels and turns by a degree or two, easing
  in and out, and either comes back or stays in its new pose (both happen in real recordings).
Micro- and macro-expressions are the video's annotated `Interval`s; blinks and head moves are not (a real
annotator leaves them out, and a spotter must learn to ignore them), and `planted_events` lists all four.
Events never overlap and keep `min_gap_seconds` of stillness between them and from both ends of the video,
so no blink falls inside an expression. Over the whole video the light drifts slowly (a few per cent over
tens of seconds) and every frame carries sensor noise as the clips do.

With `canvas=(H, W)` the face is placed on a larger, static, textured background (a camera frame), so a
face detector has work to do and a head move shifts the face over a background that stays still; without
it the face image fills the frame, as the clips do.

Frames are rendered on demand: the face, the event table, the displacement fields and the per-frame
intensities are computed once per (config, subject, video) and cached, so a frame costs one warp.
Everything is a pure function of `SyntheticLongConfig`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from statistics import NormalDist

import cv2
import numpy as np

from datamodules.long_videos import (
    MACRO,
    MICRO,
    MICRO_MAX_SECONDS,
    Interval,
    LongVideo,
    LongVideoRead,
    validate_long_video,
)
from datamodules.readers.base import ReadReport
from datamodules.readers.synthetic import (
    AU_TABLES,
    Face,
    Landmarks,
    SyntheticConfig,
    _draw_face,
    au_field,
    subject_name,
)

# Bump when the rendering changes, so caches keyed on `fingerprint()` are rebuilt.
GENERATOR_VERSION = 1

BLINK, HEAD = "blink", "head"
EVENT_KINDS = (MICRO, MACRO, BLINK, HEAD)

# Draws of a video's events before giving up on fitting them in (each fits with probability ~1/2 or more).
_LAYOUT_TRIES = 200
# The clip database's defaults: the micro-expressions planted here are its classes, AUs and amplitudes.
_CLIPS = SyntheticConfig()


@dataclass(frozen=True)
class SyntheticLongConfig:
    """Everything a synthetic long video is a function of. Durations in seconds, amplitudes in pixels."""

    dataset: str = "synthetic_long"
    num_subjects: int = 3
    videos_per_subject: int = 2
    seconds: float = 12.0  # video length
    fps: float = 30.0  # 200 for a SAMM-LV-like export, 30 for CAS(ME)^2, 100 for SMIC-E HS
    height: int = 170  # the face image, as the clips' frames
    width: int = 140
    canvas: tuple[int, int] | None = (
        None  # (H, W) camera frame the face is placed in; None: the face fills it
    )
    seed: int = 0
    micro_per_video: int = 3
    macro_per_video: int = 2
    blinks_per_video: int = 3
    head_moves_per_video: int = 1
    # Classes and AUs as data=synthetic's clips: micro-expressions draw their class by `class_balance`.
    classes: tuple[str, ...] = _CLIPS.classes
    class_balance: tuple[float, ...] = _CLIPS.class_balance
    au_table: str = _CLIPS.au_table
    micro_amplitude_px: tuple[float, float] = _CLIPS.amplitude_px  # largest displacement at the apex
    micro_seconds: tuple[float, float] = (0.2, 0.45)  # onset..offset inclusive
    macro_amplitude_px: tuple[float, float] = (2.0, 4.0)
    macro_seconds: tuple[float, float] = (0.8, 3.0)
    blink_seconds: tuple[float, float] = (0.1, 0.3)
    head_seconds: tuple[float, float] = (0.4, 1.5)
    head_shift_px: tuple[float, float] = (1.5, 4.0)  # translation at the move's peak
    head_rotation_deg: tuple[float, float] = (0.5, 2.0)  # in-plane turn about the face centre, either way
    head_return_probability: float = 0.5  # a move comes back to where it started; otherwise the pose stays
    min_gap_seconds: float = 0.3  # stillness between two events, and before the first and after the last
    illumination_drift: float = 0.03  # largest relative change of the light over the video
    noise_std: float = _CLIPS.noise_std  # sensor noise, in 8-bit grey levels

    def __post_init__(self) -> None:
        # Hydra passes lists; the config must stay hashable (it keys the render caches).
        for name in (
            "classes",
            "class_balance",
            "micro_amplitude_px",
            "micro_seconds",
            "macro_amplitude_px",
            "macro_seconds",
            "blink_seconds",
            "head_seconds",
            "head_shift_px",
            "head_rotation_deg",
        ):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.canvas is not None:
            object.__setattr__(self, "canvas", tuple(int(x) for x in self.canvas))
        if not self.dataset or "/" in self.dataset:
            raise ValueError(f"dataset {self.dataset!r} must be a non-empty name without '/'")
        if self.num_subjects < 1 or self.videos_per_subject < 1:
            raise ValueError("num_subjects and videos_per_subject must be at least 1")
        if self.seconds <= 0 or self.fps <= 0:
            raise ValueError(f"seconds and fps must be positive, got {self.seconds} s at {self.fps} fps")
        if self.au_table not in AU_TABLES:
            raise ValueError(f"au_table {self.au_table!r} unknown; choose from {sorted(AU_TABLES)}")
        unknown = set(self.classes) - set(AU_TABLES[self.au_table])
        if unknown:
            raise ValueError(f"classes {sorted(unknown)} unknown to au_table {self.au_table!r}")
        if len(self.class_balance) != len(self.classes):
            raise ValueError(
                f"class_balance has {len(self.class_balance)} entries for {len(self.classes)} classes"
            )
        for name in (
            "micro_amplitude_px",
            "micro_seconds",
            "macro_amplitude_px",
            "macro_seconds",
            "blink_seconds",
            "head_seconds",
            "head_shift_px",
            "head_rotation_deg",
        ):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must satisfy 0 <= min <= max, got {(lo, hi)}")
        counts = (
            self.micro_per_video,
            self.macro_per_video,
            self.blinks_per_video,
            self.head_moves_per_video,
        )
        if min(counts) < 0:
            raise ValueError(f"event counts per video must be >= 0, got {counts}")
        if self.micro_per_video and _frames(self.micro_seconds[1], self.fps) / self.fps >= MICRO_MAX_SECONDS:
            raise ValueError(
                f"micro_seconds {self.micro_seconds} at {self.fps} fps reaches {MICRO_MAX_SECONDS} s, the "
                "field's boundary to a macro-expression"
            )
        if self.macro_per_video and self.macro_seconds[0] < MICRO_MAX_SECONDS:
            raise ValueError(f"macro_seconds {self.macro_seconds} starts under {MICRO_MAX_SECONDS} s")
        if min(self.height, self.width) < 48:
            raise ValueError(
                f"faces smaller than 48 px cannot show the facial parts (got {self.height}x{self.width})"
            )
        # Events at their average lengths must fit: then at least about half of all draws fit, and the
        # layout (`_lay_out`) finds one in a few tries for every seed.
        average = sum(
            k * _frames((seconds[0] + seconds[1]) / 2, self.fps)
            for k, seconds in zip(
                counts,
                (self.micro_seconds, self.macro_seconds, self.blink_seconds, self.head_seconds),
                strict=True,
            )
        )
        needed = average + (sum(counts) + 1) * self.gap_frames
        if needed > self.num_frames:
            raise ValueError(
                f"{sum(counts)} events at their average lengths, {self.min_gap_seconds} s apart, need "
                f"{needed} frames; {self.seconds} s at {self.fps} fps has {self.num_frames}"
            )
        if self.canvas is not None:
            need = (self.height + 2 * self.canvas_margin, self.width + 2 * self.canvas_margin)
            if self.canvas[0] < need[0] or self.canvas[1] < need[1]:
                raise ValueError(
                    f"canvas {self.canvas} too small for a {self.height}x{self.width} face and its head "
                    f"moves: needs at least {need}"
                )

    @property
    def num_frames(self) -> int:
        return int(round(self.seconds * self.fps))

    @property
    def gap_frames(self) -> int:
        return int(math.ceil(self.min_gap_seconds * self.fps))

    @property
    def frame_size(self) -> tuple[int, int]:
        """(H, W) of every frame."""
        return self.canvas if self.canvas is not None else (self.height, self.width)

    @property
    def canvas_margin(self) -> int:
        """Pixels around the face image that its largest possible head pose can reach."""
        turn = math.radians(self.head_rotation_deg[1]) * math.hypot(self.height, self.width) / 2
        return int(math.ceil(self.head_moves_per_video * (self.head_shift_px[1] + turn))) + 3

    def digest(self) -> str:
        text = repr(sorted(asdict(self).items())) + f"|v{GENERATOR_VERSION}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _frames(seconds: float, fps: float) -> int:
    """An event's length in frames, onset..offset inclusive; 3 at least (onset, apex and offset differ)."""
    return max(3, int(round(seconds * fps)))


@dataclass(frozen=True)
class PlantedEvent:
    """One planted event, in the video's frame numbers (0 = first frame; inclusive at both ends)."""

    kind: str  # micro | macro | blink | head
    onset: int
    # The peak: full expression (a macro-expression's first frame at its plateau), eyes closed, or the head's
    # largest displacement (a move that stays: its offset).
    apex: int
    offset: int
    emotion: str | None = None  # the class, for micro- and macro-expressions
    action_units: tuple[str, ...] = ()

    @property
    def length(self) -> int:
        return self.offset - self.onset + 1


@dataclass(frozen=True)
class _Event:
    """A planted event and what renders it."""

    planted: PlantedEvent
    au_weights: tuple[float, ...] = ()
    amplitude: float = 0.0  # expressions: largest displacement at the apex, px
    hold: int = 0  # expressions: frames at full intensity after the apex (the macro plateau)
    shift: tuple[float, float] = (0.0, 0.0)  # head moves: (dx, dy) at the peak, px
    rotation: float = 0.0  # head moves: radians at the peak
    returns: bool = False  # head moves: back to the starting pose by the offset


@dataclass(frozen=True, eq=False)
class _VideoPlan:
    """One video's events and everything per frame that rendering needs, computed once."""

    events: tuple[_Event, ...]
    origin: tuple[int, int]  # (x, y) of the face image's top-left corner in the frame
    window: tuple[int, int, int, int]  # (x0, y0, x1, y1): the part of the frame the face can reach
    grid: tuple[np.ndarray, np.ndarray] = field(repr=False)  # the window's pixels in face-image coordinates
    intensity: np.ndarray = field(repr=False)  # (N,) expression intensity, 0..1
    expression: np.ndarray = field(repr=False)  # (N,) index into `fields` of the active expression, -1: none
    fields: tuple[np.ndarray, ...] = field(repr=False)  # per expression, (2, H, W) displacement at the apex
    closure: np.ndarray = field(repr=False)  # (N,) eyelid closure, 0 open .. 1 closed
    pose: np.ndarray = field(repr=False)  # (N, 3) head pose: dx, dy (px), rotation (rad)
    gain: np.ndarray = field(repr=False)  # (N,) illumination gain


@lru_cache(maxsize=64)
def _long_face(seed: int, subject: int, height: int, width: int) -> Face:
    # A stream of its own (the clips draw theirs from [seed, subject, 1]): other people than data=synthetic.
    return _draw_face(np.random.default_rng([seed, subject, 13]), SyntheticConfig(height=height, width=width))


def _face_of(cfg: SyntheticLongConfig, subject: int) -> Face:
    return _long_face(cfg.seed, subject, cfg.height, cfg.width)


def _expression_profile(n: int, apex: int, hold: int) -> np.ndarray:
    """(n,) intensity: raised-cosine rise from 0 at the onset to 1 at the apex, `hold` frames at 1, then a
    raised-cosine decay to 0 at the offset. Unlike a clip's profile it ends at neutral: in a long video
    the face must be still again before the next event."""
    t = np.arange(n, dtype=np.float64)
    a = np.ones(n)
    rise = t <= apex
    a[rise] = 0.5 - 0.5 * np.cos(np.pi * t[rise] / max(apex, 1))
    start = apex + hold
    fall = t > start
    a[fall] = 0.5 + 0.5 * np.cos(np.pi * (t[fall] - start) / max(n - 1 - start, 1))
    return a


def _blink_profile(n: int, apex: int) -> np.ndarray:
    """(n,) lid closure: linear close from the onset to the apex, slower linear open to the offset."""
    t = np.arange(n, dtype=np.float64)
    return np.where(t <= apex, t / max(apex, 1), (n - 1 - t) / max(n - 1 - apex, 1))


def _head_profile(n: int, returns: bool) -> np.ndarray:
    """(n,) share of the move's displacement: eased out and back (sin^2), or eased to 1 (smoothstep)."""
    s = np.arange(n, dtype=np.float64) / (n - 1)
    share = np.sin(np.pi * s) ** 2 if returns else 3 * s**2 - 2 * s**3
    share[-1] = 0.0 if returns else 1.0  # exactly: the pose after the move is this value (sin(pi) is not 0)
    return share


def _scaled_field(
    action_units: tuple[str, ...], weights: tuple[float, ...], amplitude: float, lm: Landmarks, h: int, w: int
) -> np.ndarray:
    """(2, H, W) float32: the weighted AU fields, scaled so the largest vector is `amplitude` px (as the clips
    scale theirs)."""
    d = sum(wt * au_field(au, lm, h, w) for au, wt in zip(action_units, weights, strict=True))
    return (d * (amplitude / float(np.sqrt((d**2).sum(0)).max()))).astype(np.float32)


def _draw_events(cfg: SyntheticLongConfig, rng: np.random.Generator) -> list[_Event]:
    """Every event of one video with its own parameters, onsets not yet placed (onset 0)."""
    table = AU_TABLES[cfg.au_table]
    balance = np.asarray(cfg.class_balance, float)
    balance = balance / balance.sum()
    events = []

    def expression(kind: str, emotion: str, seconds: tuple[float, float], amplitude_px) -> _Event:
        variants = table[emotion]
        if kind == MACRO:
            # AU25 (lips part) folds the warp at macro amplitudes (see synthetic.py's CK+ table).
            variants = tuple(v for v in variants if "25" not in v) or variants
        aus = variants[int(rng.integers(len(variants)))]
        n = _frames(rng.uniform(*seconds), cfg.fps)
        if kind == MICRO:
            apex = min(max(int(round(rng.uniform(0.3, 0.6) * (n - 1))), 1), n - 2)
            hold = 0
        else:
            apex = max(1, int(round(rng.uniform(0.2, 0.35) * (n - 1))))
            hold = max(0, min(int(round(rng.uniform(0.3, 0.5) * (n - 1))), n - 2 - apex))
        return _Event(
            PlantedEvent(kind, 0, apex, n - 1, emotion, aus),
            au_weights=tuple(float(x) for x in rng.uniform(0.6, 1.0, len(aus))),
            amplitude=float(rng.uniform(*amplitude_px)),
            hold=hold,
        )

    for _ in range(cfg.micro_per_video):
        emotion = cfg.classes[int(rng.choice(len(cfg.classes), p=balance))]
        events.append(expression(MICRO, emotion, cfg.micro_seconds, cfg.micro_amplitude_px))
    for _ in range(cfg.macro_per_video):
        emotion = cfg.classes[int(rng.integers(len(cfg.classes)))]
        events.append(expression(MACRO, emotion, cfg.macro_seconds, cfg.macro_amplitude_px))
    for _ in range(cfg.blinks_per_video):
        n = _frames(rng.uniform(*cfg.blink_seconds), cfg.fps)
        apex = min(max(1, int(round(0.3 * (n - 1)))), n - 2)  # fast close, slower open
        events.append(_Event(PlantedEvent(BLINK, 0, apex, n - 1)))
    for _ in range(cfg.head_moves_per_video):
        n = _frames(rng.uniform(*cfg.head_seconds), cfg.fps)
        returns = bool(rng.random() < cfg.head_return_probability)
        shift, angle = rng.uniform(*cfg.head_shift_px), rng.uniform(0, 2 * np.pi)
        turn = np.deg2rad(rng.uniform(*cfg.head_rotation_deg)) * rng.choice((-1.0, 1.0))
        events.append(
            _Event(
                PlantedEvent(HEAD, 0, (n - 1) // 2 if returns else n - 1, n - 1),
                shift=(float(shift * np.cos(angle)), float(shift * np.sin(angle))),
                rotation=float(turn),
                returns=returns,
            )
        )
    return events


def _lay_out(cfg: SyntheticLongConfig, rng: np.random.Generator) -> tuple[_Event, ...]:
    """Draw the events until they fit, shuffle them and share the spare frames out among the gaps at
    random: never an overlap, and at least `gap_frames` of stillness between events and at both ends."""
    gap = cfg.gap_frames
    for _ in range(_LAYOUT_TRIES):
        events = _draw_events(cfg, rng)
        spare = cfg.num_frames - sum(e.planted.length for e in events) - (len(events) + 1) * gap
        if spare >= 0:
            break
    else:  # not reached when the config's average check passed (each try fits with probability ~1/2)
        raise ValueError(f"no layout of the events fits {cfg.seconds} s in {_LAYOUT_TRIES} draws")
    order = rng.permutation(len(events))
    cuts = np.sort(rng.integers(0, spare + 1, size=len(events)))
    extra = np.diff(np.concatenate([[0], cuts, [spare]]))
    placed, t = [], gap + int(extra[0])
    for k, i in enumerate(order):
        e = events[i]
        p = e.planted
        moved = PlantedEvent(p.kind, t, t + p.apex, t + p.offset, p.emotion, p.action_units)
        placed.append(_Event(moved, e.au_weights, e.amplitude, e.hold, e.shift, e.rotation, e.returns))
        t += p.length + gap + int(extra[k + 1])
    return tuple(placed)


@lru_cache(maxsize=32)
def _plan(cfg: SyntheticLongConfig, subject: int, video: int) -> _VideoPlan:
    rng = np.random.default_rng([cfg.seed, subject, video, 11])
    events = _lay_out(cfg, rng)
    lm = _face_of(cfg, subject).landmarks
    n = cfg.num_frames
    intensity, expression = np.zeros(n), np.full(n, -1)
    closure, pose = np.zeros(n), np.zeros((n, 3))
    fields = []
    for e in events:
        p = e.planted
        span = slice(p.onset, p.offset + 1)
        if p.kind in (MICRO, MACRO):
            intensity[span] = _expression_profile(p.length, p.apex - p.onset, e.hold)
            expression[span] = len(fields)
            fields.append(_scaled_field(p.action_units, e.au_weights, e.amplitude, lm, cfg.height, cfg.width))
        elif p.kind == BLINK:
            closure[span] = _blink_profile(p.length, p.apex - p.onset)
        else:
            share = np.zeros(n)
            share[span] = _head_profile(p.length, e.returns)
            share[p.offset + 1 :] = 0.0 if e.returns else 1.0
            # Poses add up: a head that stays where a move left it starts the next move from there.
            pose += share[:, None] * np.array([e.shift[0], e.shift[1], e.rotation])
    # The light drifts slowly: two sinusoids of 8-40 s periods, at most `illumination_drift` together.
    t = np.arange(n) / cfg.fps
    periods, phases = rng.uniform(8, 40, 2), rng.uniform(0, 2 * np.pi, 2)
    wave = 0.6 * np.sin(2 * np.pi * t / periods[0] + phases[0]) + 0.4 * np.sin(
        2 * np.pi * t / periods[1] + phases[1]
    )
    gain = 1 + cfg.illumination_drift * wave
    if cfg.canvas is None:
        origin, window = (0, 0), (0, 0, cfg.width, cfg.height)
    else:
        m = cfg.canvas_margin
        (ch, cw) = cfg.canvas
        ox = int(rng.integers(m, cw - cfg.width - m + 1))
        oy = int(rng.integers(m, ch - cfg.height - m + 1))
        # Down to the frame's lower edge: the neck continues below the face image.
        origin, window = (ox, oy), (ox - m, oy - m, ox + cfg.width + m, ch)
    x0, y0, x1, y1 = window
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    grid = (xx - origin[0], yy - origin[1])
    return _VideoPlan(
        events,
        origin,
        window,
        grid,
        intensity,
        expression,
        tuple(fields),
        closure,
        pose,
        gain.astype(np.float32),
    )


def planted_events(
    cfg: SyntheticLongConfig, subject_index: int, video_index: int
) -> tuple[PlantedEvent, ...]:
    """Every planted event of a video (expressions, blinks, head moves), sorted by onset."""
    return tuple(e.planted for e in _plan(cfg, subject_index, video_index).events)


def planted_field(
    cfg: SyntheticLongConfig, subject_index: int, video_index: int, event_index: int
) -> np.ndarray:
    """(2, H, W) float32 displacement (dx, dy) in px at the apex of expression `planted_events(...)[k]`, in
    face-image coordinates (the frame's own, without a canvas and before any head move)."""
    plan = _plan(cfg, subject_index, video_index)
    event = plan.events[event_index].planted
    if event.kind not in (MICRO, MACRO):
        raise ValueError(f"event {event_index} is a {event.kind}, not an expression: it has no AU field")
    return plan.fields[int(plan.expression[event.onset])]


def head_pose(cfg: SyntheticLongConfig, subject_index: int, video_index: int) -> np.ndarray:
    """(N, 3) float64 head pose per frame: dx, dy in px and the in-plane rotation in radians (about the face
    centre; a positive angle turns the face clockwise on screen), relative to the first frame."""
    return _plan(cfg, subject_index, video_index).pose.copy()


def face_box(cfg: SyntheticLongConfig, subject_index: int, video_index: int) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the face image in the frame, at the starting pose; (0, 0, width, height) without a
    canvas."""
    ox, oy = _plan(cfg, subject_index, video_index).origin
    return ox, oy, cfg.width, cfg.height


@lru_cache(maxsize=16)
def _background(cfg: SyntheticLongConfig, subject: int, video: int) -> np.ndarray:
    """(H, W) float32: a static scene behind the subject (a wall with broad shading and fine texture)."""
    rng = np.random.default_rng([cfg.seed, subject, video, 12])
    h, w = cfg.canvas
    broad = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 25)
    fine = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.5)
    ramp = np.linspace(-1, 1, h, dtype=np.float32)[:, None] * rng.uniform(-15, 15)
    scene = rng.uniform(40, 110) + ramp + 12 * broad / (broad.std() + 1e-6) + 4 * fine / (fine.std() + 1e-6)
    return np.clip(scene, 0, 255).astype(np.float32)


def _matte(lm: Landmarks, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Opacity of the subject at neutral-face points (x, y): the face oval and the neck below it, with
    edges softened over a pixel and a half just inside the drawn outline (whose antialiased rim blends into
    the face image's own backdrop)."""
    r = np.sqrt(((x - lm.cx) / lm.face_rx) ** 2 + ((y - lm.cy) / lm.face_ry) ** 2)
    inside = (1 - r) * 0.5 * (lm.face_rx + lm.face_ry)
    neck = np.where(y > lm.cy, lm.face_rx * 0.45 - np.abs(x - lm.cx), -1.0)
    return np.clip((np.maximum(inside, neck) - 0.5) / 1.5, 0, 1)


# The 256 quantiles of a unit normal at (i + 0.5) / 256: random bytes looked up here are Gaussian noise to
# within its 1/256 quantisation (std 0.997, tails at 2.9 sigma), at a tenth of the cost of drawing normals
# (which took 3.5 of a 640x480 frame's 6 ms).
_NORMAL_QUANTILES = np.array([NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)], np.float32)


def _sensor_noise(seed: int, subject: int, video: int, index: int, shape: tuple[int, ...]) -> np.ndarray:
    """(H, W) float32 unit-variance noise of one frame, its own stream (the same frame, the same noise)."""
    rng = np.random.default_rng([seed, subject, video, 14, index])
    levels = np.frombuffer(rng.bytes(int(np.prod(shape))), np.uint8).reshape(shape)
    return cv2.LUT(levels, _NORMAL_QUANTILES)


def render_long_frame(
    cfg: SyntheticLongConfig, subject_index: int, video_index: int, index: int
) -> np.ndarray:
    """Frame `index` (0 = first) of a video: uint8 (H, W) grey, (height, width) or `canvas` sized."""
    plan = _plan(cfg, subject_index, video_index)
    if not 0 <= index < cfg.num_frames:
        raise IndexError(f"frame index {index} outside a video of {cfg.num_frames} frames")
    face = _face_of(cfg, subject_index)
    lm = face.landmarks
    image = face.open_eyes
    closure = plan.closure[index]
    if closure > 0:
        image = (1 - closure) * face.open_eyes + closure * face.closed_eyes
    xx, yy = plan.grid
    # Output pixel p shows face point q = c + R(-theta)(p - c - t): the head pose undone.
    qx, qy = xx, yy
    dx, dy, theta = plan.pose[index]
    moved = bool(dx or dy or theta)
    if moved:
        cos, sin = np.cos(theta), np.sin(theta)
        px, py = xx - lm.cx - dx, yy - lm.cy - dy
        qx = (lm.cx + cos * px + sin * py).astype(np.float32)
        qy = (lm.cy - sin * px + cos * py).astype(np.float32)
    map_x, map_y = qx, qy
    k, a = int(plan.expression[index]), float(plan.intensity[index])
    if k >= 0 and a > 0:
        # Backward warping in the face's own coordinates, so an expression moves with the head: q shows
        # the neutral face at q - a * D(q).
        d = plan.fields[k]
        if moved or cfg.canvas is not None:
            u = cv2.remap(d[0], qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            v = cv2.remap(d[1], qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        else:
            u, v = d[0], d[1]
        map_x, map_y = qx - a * u, qy - a * v
    if cfg.canvas is None:
        frame = cv2.remap(image, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    else:
        # The face image's own backdrop gives way to the scene; below it the neck runs on to the frame's edge.
        subject = cv2.remap(image, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        alpha = _matte(lm, map_x, map_y)
        frame = _background(cfg, subject_index, video_index).copy()
        x0, y0, x1, y1 = plan.window
        frame[y0:y1, x0:x1] = alpha * subject + (1 - alpha) * frame[y0:y1, x0:x1]
    noisy = np.multiply(frame, plan.gain[index], dtype=np.float32)
    noisy += cfg.noise_std * _sensor_noise(cfg.seed, subject_index, video_index, index, frame.shape)
    np.rint(noisy, out=noisy)
    return np.clip(noisy, 0, 255, out=noisy).astype(np.uint8)


@dataclass(frozen=True)
class SyntheticLongFrames:
    """Frame source of one synthetic long video: frame numbers 0..N-1, rendered on demand, deterministic."""

    config: SyntheticLongConfig
    subject_index: int
    video_index: int
    frame_numbers: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "frame_numbers", tuple(range(self.config.num_frames)))

    def read(self, number: int) -> np.ndarray:
        # The numbers are 0..N-1, so the number is the index (no search through tens of thousands).
        if not 0 <= number < len(self.frame_numbers):
            raise IndexError(f"frame {number} not in video (frames 0..{len(self.frame_numbers) - 1})")
        return render_long_frame(self.config, self.subject_index, self.video_index, int(number))

    def fingerprint(self) -> str:
        return f"synthetic_long:{self.config.digest()}:{self.subject_index}:{self.video_index}"


def video_name(subject_index: int, video_index: int) -> str:
    return f"{subject_name(subject_index)}_v{video_index + 1:02d}"


def synthetic_long_videos(config: SyntheticLongConfig | None = None) -> list[LongVideo]:
    """All videos, subject by subject: `synthetic_long/s01/s01_v01`, ... The intervals are the micro- and
    macro-expressions; `extra["events"]` holds every planted event (blinks and head moves too) and
    `extra["face_box"]` where the face image sits in the frame."""
    cfg = config or SyntheticLongConfig()
    videos = []
    for s in range(cfg.num_subjects):
        subject = f"{cfg.dataset}/{subject_name(s)}"
        for v in range(cfg.videos_per_subject):
            video_id = f"{subject}/{video_name(s, v)}"
            events = planted_events(cfg, s, v)
            intervals = tuple(
                Interval(
                    e.onset,
                    e.offset,
                    e.kind,
                    apex=e.apex,
                    emotion=e.emotion,
                    action_units=e.action_units,
                    source=f"{cfg.dataset} seed {cfg.seed}: {video_id} event {k + 1}",
                )
                for k, e in enumerate(events)
                if e.kind in (MICRO, MACRO)
            )
            video = LongVideo(
                video_id=video_id,
                dataset=cfg.dataset,
                subject=subject,
                frames=SyntheticLongFrames(cfg, s, v),
                fps=cfg.fps,
                intervals=intervals,
                source=f"{cfg.dataset} seed {cfg.seed}",
                extra={"events": events, "face_box": face_box(cfg, s, v)},
            )
            validate_long_video(video)
            videos.append(video)
    return videos


def read_synthetic_long(**config) -> LongVideoRead:
    """Reader entry point for configs: keyword arguments are `SyntheticLongConfig` fields; nothing to
    repair."""
    cfg = SyntheticLongConfig(**config)
    return LongVideoRead(synthetic_long_videos(cfg), ReadReport(cfg.dataset))
