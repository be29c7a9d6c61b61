"""The apex-flow input of most MER networks: onset→apex flow, its strain and/or frames, as a (C, H, W) array,
or, with `FeatureSpec.sequence`, the whole clip as T such steps, (T, C, H, W) (preprocessing.sequence).

A `FeatureSpec` says which frames, which channels, which flow and what output size (and, optionally, how the
clip's motion is magnified first); `compute_features` turns one `Sample` into the array, in physical units
(u, v, magnitude in source pixels; strain dimensionless; frames grey in [0, 1]). Normalisation is the data
module's job, from training-fold statistics.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from datamodules.samples import Sample, SampleError
from preprocessing.apex import spot_apex
from preprocessing.face import FaceNotFound, face_crop_for
from preprocessing.flow import FLOW_METHODS, flow_parameters, optical_flow, to_gray
from preprocessing.magnify import MagnifySpec
from preprocessing.sequence import STEP_FRAME, SequenceSpec
from preprocessing.strain import STRAIN_SCHEMES, optical_strain
from preprocessing.temporal import TemporalError, resample

# Bump when compute_features changes what it produces for the same spec: every cached feature is rebuilt.
FEATURES_VERSION = 1

CHANNELS = ("u", "v", "strain", "magnitude", "onset", "apex")
# A sequence's steps hold flow channels and the step's own grey frame, not the clip's onset or apex.
SEQUENCE_CHANNELS = ("u", "v", "strain", "magnitude", STEP_FRAME)
FLOW_CHANNELS = frozenset({"u", "v", "strain", "magnitude"})
FRAMES = ("onset", "apex", "offset", "middle")
APEX_FALLBACKS = ("middle", "frame_difference", "strain", "error")
APEX_SOURCES = ("annotated", "spotted")
CROPS = ("none", "face")


class FeatureError(RuntimeError):
    """Features could not be computed for a sample; the message starts with its sample_id."""


def _allowed(what: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; allowed: {', '.join(allowed)}")


def _canonical_params(params: Any) -> tuple[tuple[str, Any], ...]:
    """A dict or (Hydra) list of pairs -> pairs sorted by name, so their order cannot change the key."""
    items = params.items() if isinstance(params, Mapping) else params
    pairs = []
    for name, value in items:
        if isinstance(value, np.generic):
            value = value.item()
        if not isinstance(value, bool | int | float | str):
            raise ValueError(f"flow parameter {name!r} must be a number or a string, got {value!r}")
        pairs.append((str(name), value))
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError(f"flow_params names a parameter twice: {names}")
    return tuple(sorted(pairs))


@dataclass(frozen=True)
class FeatureSpec:
    """What `compute_features` makes of a sample; its `key()` names the cache folder.

    frames: the flow pair (from, to), each one of FRAMES; "middle" = the frame midway from onset to offset.
    channels: output channels in order, from CHANNELS: u, v (flow, px), strain (optical strain,
        dimensionless), magnitude (√(u² + v²), px), onset, apex (that frame's grey pixels in [0, 1]).
    flow_method / flow_params: see preprocessing.flow (params as (name, value) pairs, or a dict).
    strain_scheme: finite differences for strain, see preprocessing.strain.
    size: output (H, W); channels are computed at the source resolution and resized with INTER_AREA.
    crop: "none" (frames as provided: the databases' own cropped sets, as MEGC2019 used them) or "face"
        (Haar face + eye-line alignment on the onset frame, the same warp applied to every frame).
    crop_size: (W, H) of the face crop before features are computed; None keeps the detected box's size.
    apex_fallback: what stands in for a missing apex: "middle" (the middle frame), a spotter of
        preprocessing.apex ("frame_difference", "strain"), or "error".
    apex: "annotated" (the annotation's apex; `apex_fallback` where it is missing) or "spotted" (always the
        `apex_fallback` spotter, e.g. to compare with the annotation).
    magnify: None (no magnification), or a `preprocessing.magnify.MagnifySpec` (a mapping of its fields,
        e.g. Hydra's DictConfig, becomes one): the clip's motion is magnified before the flow, strain and
        grey channels are taken; see `compute_features_with_info`.
    sequence: None (one map per sample, from the `frames` pair), or a `preprocessing.sequence.SequenceSpec`
        (or a mapping of its fields): T steps per sample, each with `channels` from SEQUENCE_CHANNELS
        ("frame" is the step's grey frame); `frames` is then unused and must stay the default.
    """

    frames: tuple[str, str] = ("onset", "apex")
    channels: tuple[str, ...] = ("u", "v", "strain")
    flow_method: str = "tvl1"
    flow_params: tuple[tuple[str, float], ...] = ()
    strain_scheme: str = "backward"
    size: tuple[int, int] = (28, 28)
    crop: str = "none"
    crop_size: tuple[int, int] | None = None
    apex_fallback: str = "middle"
    apex: str = "annotated"
    magnify: MagnifySpec | None = None
    sequence: SequenceSpec | None = None

    def __post_init__(self) -> None:
        # Hydra hands over ListConfig/lists; a frozen dataclass needs hashable tuples.
        set_ = object.__setattr__
        if isinstance(self.magnify, Mapping):
            set_(self, "magnify", MagnifySpec.from_mapping(self.magnify))
        elif self.magnify is not None and not isinstance(self.magnify, MagnifySpec):
            raise ValueError(
                f"magnify must be None, a MagnifySpec or a mapping of its fields, got {self.magnify!r}"
            )
        if isinstance(self.sequence, Mapping):
            set_(self, "sequence", SequenceSpec.from_mapping(self.sequence))
        elif self.sequence is not None and not isinstance(self.sequence, SequenceSpec):
            raise ValueError(
                f"sequence must be None, a SequenceSpec or a mapping of its fields, got {self.sequence!r}"
            )
        set_(self, "frames", tuple(self.frames))
        set_(self, "channels", tuple(self.channels))
        set_(self, "flow_params", _canonical_params(self.flow_params))
        set_(self, "size", tuple(int(s) for s in self.size))
        if self.crop_size is not None:
            set_(self, "crop_size", tuple(int(s) for s in self.crop_size))
        _allowed("crop", self.crop, CROPS)
        if len(self.frames) != 2:
            raise ValueError(f"frames must be a pair (from, to), got {self.frames!r}")
        for frame in self.frames:
            _allowed("frame", frame, FRAMES)
        if self.frames[0] == self.frames[1]:
            raise ValueError(f"frames must be two different frames, got {self.frames!r}")
        if not self.channels:
            raise ValueError(f"channels must name at least one of: {', '.join(CHANNELS)}")
        allowed = CHANNELS if self.sequence is None else SEQUENCE_CHANNELS
        for channel in self.channels:
            if self.sequence is None and channel == STEP_FRAME:
                raise ValueError(f"channel {STEP_FRAME!r} is a sequence step's frame: it needs sequence=...")
            _allowed("channel of a sequence" if self.sequence else "channel", channel, allowed)
        if self.sequence is not None and self.frames != ("onset", "apex"):
            raise ValueError(
                f"a sequence spans sequence.span {list(self.sequence.span)}; frames={list(self.frames)} "
                "is the apex pair of a one-map spec and is unused here: leave it out"
            )
        if len(set(self.channels)) != len(self.channels):
            raise ValueError(f"channels repeat a name: {self.channels!r}")
        _allowed("flow method", self.flow_method, FLOW_METHODS)
        _allowed("strain scheme", self.strain_scheme, STRAIN_SCHEMES)
        _allowed("apex fallback", self.apex_fallback, APEX_FALLBACKS)
        _allowed("apex source", self.apex, APEX_SOURCES)
        if self.apex == "spotted" and self.apex_fallback == "error":
            raise ValueError(
                "apex='spotted' needs a spotter in apex_fallback (middle, frame_difference, strain)"
            )
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"size must be (H, W) with positive entries, got {self.size!r}")
        # Parameter names and types are checked now, not at the first sample of a long run.
        flow_parameters(self.flow_method, dict(self.flow_params))

    @property
    def num_channels(self) -> int:
        return len(self.channels)

    @property
    def needs_flow(self) -> bool:
        return any(channel in FLOW_CHANNELS for channel in self.channels)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one sample's features: (C, H, W), or (T, C, H, W) for a sequence."""
        steps = () if self.sequence is None else (self.sequence.length,)
        return (*steps, self.num_channels, *self.size)

    def describe(self) -> dict[str, Any]:
        """Every field, the code version and (if a flow channel is asked for) the flow parameters in effect,
        read back from OpenCV: the JSON that `key()` hashes, stored beside the cache as spec.json."""
        record: dict[str, Any] = {
            "features_version": FEATURES_VERSION,
            "frames": list(self.frames),
            "channels": list(self.channels),
            "flow_method": self.flow_method,
            "flow_params": dict(self.flow_params),
            "strain_scheme": self.strain_scheme,
            "size": list(self.size),
            "apex_fallback": self.apex_fallback,
        }
        if self.crop != "none":  # only when set, like apex below
            record["crop"] = {"method": self.crop, "size": list(self.crop_size) if self.crop_size else None}
        if self.apex != "annotated":  # only when set, so the default spec keeps its key (and its cache)
            record["apex"] = self.apex
        if self.magnify is not None:  # likewise: every spec without magnification keeps its key
            record["magnify"] = self.magnify.describe()
        if self.sequence is not None:  # likewise
            record["sequence"] = self.sequence.describe()
        if self.needs_flow:
            record["flow"] = flow_parameters(self.flow_method, dict(self.flow_params))
        return record

    def key(self) -> str:
        """sha256 hex of the canonical JSON of `describe()`: changes with any field, the flow parameters in
        effect or the OpenCV version (when flow is used)."""
        text = json.dumps(self.describe(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


# The key of `spec_fields` naming a spec that is not a FeatureSpec (set only then: old records stay valid).
SPEC_TYPE = "spec_type"


def spec_fields(spec: FeatureSpec) -> dict[str, Any]:
    """Every field of `spec` as plain lists, numbers and strings (no code, no tensors): what a deployment
    checkpoint stores so that `spec_from_fields` rebuilds the very spec (the same `key()`) without a
    config."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if hasattr(value, "__dataclass_fields__"):
            return {f: plain(getattr(value, f)) for f in value.__dataclass_fields__}
        return value

    record = {name: plain(getattr(spec, name)) for name in spec.__dataclass_fields__}
    if not isinstance(spec, FeatureSpec):  # a hand-crafted descriptor: say which kind of spec to rebuild
        record[SPEC_TYPE] = type(spec).__name__
    return record


def spec_from_fields(values: Mapping[str, Any]) -> FeatureSpec:
    """The FeatureSpec of `spec_fields(...)`; an unknown field (a newer MERLin wrote it) is an error."""
    values = dict(values)
    kind = values.pop(SPEC_TYPE, "FeatureSpec")
    if kind == "FeatureSpec":
        cls = FeatureSpec
    elif kind == "DescriptorSpec":
        from preprocessing.handcrafted.spec import DescriptorSpec as cls
    else:
        raise FeatureError(f"unknown feature spec type {kind!r} (FeatureSpec or DescriptorSpec)")
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise FeatureError(f"unknown {kind} field(s) {unknown}; this MERLin knows {sorted(known)}")
    return cls(**values)


def _middle_frame(sample: Sample) -> int:
    # Nearest present frame to the midpoint (lower on a tie), so a gap in the numbering is no error.
    present = [n for n in sample.frames.frame_numbers if sample.onset <= n <= sample.offset]
    if not present:
        raise SampleError(
            f"{sample.sample_id}: no frames between onset {sample.onset} and offset {sample.offset}"
        )
    middle = (sample.onset + sample.offset) / 2
    return min(present, key=lambda n: (abs(n - middle), n))


def frame_number(
    sample: Sample,
    frame: str,
    apex_fallback: str = "middle",
    apex: str = "annotated",
    read: Callable[[int], np.ndarray] | None = None,
) -> int:
    """The frame number that `frame` ("onset", "apex", "offset", "middle") means for `sample`."""
    if frame == "onset":
        return sample.onset
    if frame == "offset":
        return sample.offset
    if frame == "middle":
        return _middle_frame(sample)
    if frame == "apex":
        if sample.apex is not None and apex == "annotated":
            return sample.apex
        if apex_fallback == "middle":
            return _middle_frame(sample)
        if apex_fallback == "error":
            raise SampleError(f"{sample.sample_id}: no apex annotated and apex_fallback is {apex_fallback!r}")
        return spot_apex(
            read or sample.frames.read,
            sample.frames.frame_numbers,
            apex_fallback,
            sample.onset,
            sample.offset,
        )
    raise ValueError(f"unknown frame {frame!r}; allowed: {', '.join(FRAMES)}")


def apex_source(sample: Sample, apex_fallback: str = "middle", apex: str = "annotated") -> str:
    """Where `frame_number(sample, "apex", ...)` takes the apex from: "annotated", "fallback:<spotter>"
    (no apex annotated) or "spotted:<spotter>" (apex="spotted")."""
    if apex == "annotated":
        return "annotated" if sample.apex is not None else f"fallback:{apex_fallback}"
    return f"spotted:{apex_fallback}"


def _magnified(
    sample: Sample, magnify: MagnifySpec, read: Callable[[int], np.ndarray], wanted: list[int]
) -> Callable[[int], np.ndarray]:
    """A reader of the magnified (grey float32 [0, 1], after the face crop) frames numbered `wanted`.

    Eulerian: the whole clip onset..offset is magnified at once, at the sample's fps (the frames present,
    taken as consecutive): the ideal filter needs all of it, and the causal IIR / Butterworth filters give
    the same frames either way. Lagrangian: only the onset and the frames asked for, since each magnified
    frame is the onset warped by that frame's own flow. The apex spotters never see these frames: they
    read the raw ones, so a spotted apex (and the frame pair) does not depend on the magnification.
    """
    if magnify.method == "eulerian":
        clip = [n for n in sample.frames.frame_numbers if sample.onset <= n <= sample.offset]
    else:
        clip = sorted({sample.onset, *wanted})
    try:
        frames = magnify.apply([to_gray(read(number)) for number in clip], sample.fps)
    except ValueError as error:
        raise SampleError(f"{sample.sample_id}: magnifying frames {clip[0]}..{clip[-1]}: {error}") from error
    magnified = dict(zip(clip, frames, strict=True))
    return magnified.__getitem__


def compute_features(sample: Sample, spec: FeatureSpec) -> np.ndarray:
    """The spec's channels for one sample: float32 `spec.shape`, (C, H, W) = (spec.num_channels, *spec.size),
    or (T, C, H, W) for a sequence spec (see `compute_sequence`).

    Flow runs from frame spec.frames[0] to spec.frames[1] at the source (or face-crop) resolution; strain is
    taken from that flow; then every channel is resized with INTER_AREA. With `spec.magnify`, the flow,
    strain and grey channels are taken from the magnified clip (the apex is still found on the raw one).
    Units: u, v, magnitude in source pixels (not rescaled by the resize), strain dimensionless, onset/apex
    grey in [0, 1]. Not normalised.

    A `preprocessing.handcrafted.DescriptorSpec` (LBP-TOP, LBP-SIP, HOOF, Bi-WOOF) gives its descriptor, a
    float32 vector (D,), through the same call, so the cache and the feature set treat it like any input.
    """
    if not isinstance(spec, FeatureSpec):
        from preprocessing.handcrafted.spec import DescriptorSpec, compute_descriptor

        if isinstance(spec, DescriptorSpec):
            return compute_descriptor(sample, spec)
        raise FeatureError(f"unknown feature spec type {type(spec).__name__}")
    return compute_features_with_info(sample, spec)[0]


def clip_reader(
    sample: Sample, crop: str = "none", crop_size=None
) -> tuple[Callable[[int], np.ndarray], Any]:
    """(read, face crop or None): `read(n)` gives frame n, each frame read once; with crop="face", one
    crop per clip from its onset frame, applied to every frame read (see preprocessing.face)."""
    frames: dict[int, np.ndarray] = {}
    face = None
    if crop == "face":
        try:
            face = face_crop_for(sample.frames.read(sample.onset), size=crop_size)
        except FaceNotFound as err:
            raise SampleError(f"{sample.sample_id}: {err} (onset frame {sample.onset})") from err

    def read(number: int) -> np.ndarray:
        if number not in frames:
            frame = sample.frames.read(number)
            frames[number] = face.apply(frame) if face is not None else frame
        return frames[number]

    return read, face


def frame_resolver(
    sample: Sample, apex_fallback: str, apex: str, read: Callable[[int], np.ndarray]
) -> tuple[Callable[[str], int], dict[str, int]]:
    """(number_of, numbers): `number_of(name)` is frame `name`'s number (onset, apex, middle, ...), resolved
    once, so a spotted apex is the same for the flow and an "apex" channel; `numbers` holds those resolved."""
    numbers: dict[str, int] = {}

    def number_of(name: str) -> int:
        if name not in numbers:
            numbers[name] = frame_number(sample, name, apex_fallback, apex, read)
        return numbers[name]

    return number_of, numbers


def compute_features_with_info(sample: Sample, spec: FeatureSpec) -> tuple[np.ndarray, dict[str, Any]]:
    """`compute_features` plus what it decided: (array `spec.shape` float32, info) with info =
    {"apex_frame": the apex frame number used (None if the spec uses no apex),
     "apex_source": "annotated" | "fallback:<spotter>" | "spotted:<spotter>" (None likewise),
     "crop": None, or {"angle": eye-line rotation in degrees, "box": [x, y, w, h] in the rotated onset
             frame, "size": [W, H] of the crop}}.
    """
    read, crop = clip_reader(sample, spec.crop, spec.crop_size)
    number_of, numbers = frame_resolver(sample, spec.apex_fallback, spec.apex, read)

    # Frame numbers first (a spotted apex is found on the raw frames, see _magnified), then the pixels.
    if spec.sequence is not None:
        return compute_sequence(sample, spec, read, number_of), _info(sample, spec, numbers, crop)
    pair = tuple(number_of(name) for name in spec.frames) if spec.needs_flow else ()
    grey = {name: number_of(name) for name in ("onset", "apex") if name in spec.channels}
    source = read if spec.magnify is None else _magnified(sample, spec.magnify, read, [*pair, *grey.values()])

    maps: dict[str, np.ndarray] = {}
    if pair:
        first, second = pair
        u, v = optical_flow(source(first), source(second), spec.flow_method, dict(spec.flow_params))
        maps["u"], maps["v"] = u, v
        if "strain" in spec.channels:
            maps["strain"] = optical_strain(u, v, spec.strain_scheme)
        if "magnitude" in spec.channels:
            maps["magnitude"] = np.hypot(u, v)
    for name, number in grey.items():
        maps[name] = to_gray(source(number))

    height, width = spec.size
    out = np.empty((spec.num_channels, height, width), dtype=np.float32)
    shapes = {maps[name].shape for name in spec.channels}
    if len(shapes) != 1:
        raise SampleError(f"{sample.sample_id}: frames differ in size: {sorted(shapes)}")
    for index, name in enumerate(spec.channels):
        out[index] = cv2.resize(maps[name].astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    return out, _info(sample, spec, numbers, crop)


def _info(sample: Sample, spec: FeatureSpec, numbers: dict[str, int], crop) -> dict[str, Any]:
    uses_apex = "apex" in numbers
    return {
        "apex_frame": numbers["apex"] if uses_apex else None,
        "apex_source": apex_source(sample, spec.apex_fallback, spec.apex) if uses_apex else None,
        "crop": None
        if crop is None
        else {"angle": float(crop.angle), "box": list(crop.box), "size": list(crop.size)},
    }


def _step_maps(
    first: np.ndarray, second: np.ndarray, spec: FeatureSpec, channels: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """The flow channels of one step, from grey frame `first` to `second`."""
    u, v = optical_flow(first, second, spec.flow_method, dict(spec.flow_params))
    maps = {"u": u, "v": v}
    if "strain" in channels:
        maps["strain"] = optical_strain(u, v, spec.strain_scheme)
    if "magnitude" in channels:
        maps["magnitude"] = np.hypot(u, v)
    return maps


def compute_sequence(
    sample: Sample,
    spec: FeatureSpec,
    read: Callable[[int], np.ndarray],
    number_of: Callable[[str], int],
) -> np.ndarray:
    """A sequence spec's (T, C, H, W) float32 for one sample (preprocessing.sequence says what a step holds).

    `read(number)` gives a (cropped) frame, `number_of(name)` the frame number of "onset", "apex" or
    "offset". The frames of the span are read in time order (gaps in the numbering are skipped), magnified
    as one clip if the spec says so, resampled to T + 1 (flow) or T frames, and each step's maps resized
    with INTER_AREA. Interpolated frames (TIM can overshoot) are clipped to [0, 1] before the flow, as the
    Oulu code's rounding to 8 bits does. A clip too short or too degenerate for the resampler raises
    SampleError naming the sample and the frames.
    """
    sequence = spec.sequence
    first, last = (number_of(name) for name in sequence.span)
    numbers = [n for n in sample.frames.frame_numbers if first <= n <= last]
    if not numbers:
        raise SampleError(f"{sample.sample_id}: no frames between {first} and {last}")
    if spec.magnify is not None:
        grey = spec.magnify.apply([to_gray(read(n)) for n in numbers], sample.fps)
    else:
        grey = [to_gray(read(n)) for n in numbers]
    shapes = {frame.shape for frame in grey}
    if len(shapes) != 1:
        raise SampleError(f"{sample.sample_id}: frames differ in size: {sorted(shapes)}")
    try:
        frames = resample(grey, sequence.frames_needed(spec.needs_flow), sequence.resample)
    except TemporalError as error:
        raise SampleError(
            f"{sample.sample_id}: frames {numbers[0]}..{numbers[-1]} ({len(numbers)} frames) cannot be "
            f"resampled to {sequence.frames_needed(spec.needs_flow)} by {sequence.resample}: {error}"
        ) from error
    frames = np.clip(frames, 0.0, 1.0)

    height, width = spec.size
    out = np.empty(spec.shape, dtype=np.float32)
    for step in range(sequence.length):
        maps: dict[str, np.ndarray] = {}
        if spec.needs_flow:
            source = step if sequence.flow == "consecutive" else 0
            maps.update(_step_maps(frames[source], frames[step + 1], spec, spec.channels))
            maps[STEP_FRAME] = frames[step + 1]
        else:
            maps[STEP_FRAME] = frames[step]
        for index, name in enumerate(spec.channels):
            out[step, index] = cv2.resize(
                maps[name].astype(np.float32), (width, height), interpolation=cv2.INTER_AREA
            )
    return out
