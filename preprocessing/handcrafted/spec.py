"""The hand-crafted baselines' input: which descriptor of a clip (LBP-TOP, LBP-SIP, HOOF, Bi-WOOF) with which
parameters, and `compute_descriptor`, one sample's descriptor as a float32 vector (D,).

A `DescriptorSpec` plays the part a `FeatureSpec` plays for the networks: its `key()` names the cache entry,
`describe()` is the JSON that key hashes, `shape` is known before anything is computed. Frames are read as
preprocessing.features reads them (frame numbers by `frame_number`, one face crop per clip from its onset
frame, grey in [0, 1]), optionally resized to `size`, then:

* lbptop / lbpsip: the frames of `span` (onset..offset by default), in time order, brought to a common
  length by `temporal` (none, tim, uniform, or sparse: DMDSP sparse sampling), then the LBP histograms;
* hoof / biwoof: the optical flow from `frames[0]` to `frames[1]` (onset -> apex, or onset -> "random": a
  frame drawn from onset+1..offset with a seed derived from the sample_id, so a rerun draws the same one),
  then the flow histograms.

The LBP-TOP presets are the field's baselines (specs/models.md section 10.6): `casme2` (Yan et al. 2014:
5x5 blocks, R = (1, 1, 4), P = 4), `smic` (Li et al. 2013: TIM10, 8x8 blocks, R = (1, 1, 2), P = 8; the
paper also reports R_T = 3, `radii=(1, 1, 3)`), `meb` (the micro-expression benchmark: 8x8 blocks with
overlap 0.7, R = 3, P = 8, clips under 10 frames TIM-ed to 10).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np

from datamodules.samples import Sample, SampleError
from preprocessing.features import (
    APEX_FALLBACKS,
    APEX_SOURCES,
    CROPS,
    FRAMES,
    _canonical_params,
    apex_source,
    clip_reader,
    frame_resolver,
)
from preprocessing.flow import FLOW_METHODS, flow_parameters, optical_flow, to_gray
from preprocessing.handcrafted.biwoof import WEIGHTS, biwoof, biwoof_length
from preprocessing.handcrafted.hoof import MAX_BINS, hoof, hoof_length
from preprocessing.handcrafted.lbp import (
    INTERPOLATIONS,
    MAPPINGS,
    MAX_POINTS,
    lbp_sip,
    lbp_sip_length,
    lbp_top,
    lbp_top_length,
)
from preprocessing.handcrafted.sparse_sampling import dmdsp
from preprocessing.strain import STRAIN_SCHEMES
from preprocessing.temporal import positions, tim, uniform_sample

# Bump when compute_descriptor changes what it produces for the same spec: every cached descriptor is rebuilt.
DESCRIPTORS_VERSION = 1

DESCRIPTORS = ("lbptop", "lbpsip", "hoof", "biwoof")
LBP_DESCRIPTORS = ("lbptop", "lbpsip")
FLOW_DESCRIPTORS = ("hoof", "biwoof")
TEMPORALS = ("none", "tim", "uniform", "sparse")
# The flow's second frame may also be a random one (the seed's "random & onset" rows).
RANDOM = "random"
SPAN_ENDS = ("onset", "apex", "offset")

# Which descriptor reads which of the spec's own parameters; the rest must stay at their defaults.
_PARAMETERS = {
    "lbptop": {
        "blocks",
        "radii",
        "points",
        "mapping",
        "slices",
        "overlap",
        "interpolation",
        "temporal",
        "span",
    },
    "lbpsip": {"blocks", "radii", "slices", "overlap", "interpolation", "temporal", "span"},
    "hoof": {"blocks", "bins", "frames", "flow_method", "flow_params"},
    "biwoof": {
        "blocks",
        "bins",
        "local_weight",
        "global_weight",
        "frames",
        "flow_method",
        "flow_params",
        "strain_scheme",
    },
}
_TEMPORAL_PARAMETERS = {"length", "shorter_only", "sparse_gamma"}

LBPTOP_PRESETS: dict[str, dict[str, Any]] = {
    "casme2": {"blocks": (5, 5), "radii": (1.0, 1.0, 4.0), "points": (4, 4, 4)},
    "smic": {
        "blocks": (8, 8),
        "radii": (1.0, 1.0, 2.0),
        "points": (8, 8, 8),
        "temporal": "tim",
        "length": 10,
    },
    "meb": {
        "blocks": (8, 8),
        "radii": (3.0, 3.0, 3.0),
        "points": (8, 8, 8),
        "overlap": 0.7,
        "temporal": "tim",
        "length": 10,
        "shorter_only": True,
    },
}


def _allowed(what: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"descriptor spec: unknown {what} {value!r}; allowed: {', '.join(allowed)}")


def _numbers(name: str, values: Any, kind: type = float) -> tuple:
    """A list/tuple (Hydra: ListConfig) of numbers as a tuple; a bare number is one value per axis."""
    if isinstance(values, int | float | np.number) and not isinstance(values, bool):
        values = (values,) * (2 if name in ("blocks", "size", "crop_size") else 3)
    try:
        items = tuple(values)
    except TypeError:
        raise ValueError(f"descriptor spec: {name} must be a list of numbers, got {values!r}") from None
    if kind is int:
        return tuple(_positive_int(name, v) for v in items)
    if not all(isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in items):
        raise ValueError(f"descriptor spec: {name} must be numbers, got {values!r}")
    return tuple(float(v) for v in items)


def _positive_int(name: str, value: Any) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | np.integer | float)
        or int(value) != value
        or value < 1
    ):
        raise ValueError(f"descriptor spec: {name} must be a positive integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class DescriptorSpec:
    """What `compute_descriptor` makes of a sample; its `key()` names the cache entry.

    descriptor: "lbptop", "lbpsip", "hoof" or "biwoof".
    blocks: (rows, cols) spatial blocks (Bi-WOOF: the `biwoof.m` layout, others: `lbp.block_edges`).
    LBP (lbptop, lbpsip):
        radii: (R_X, R_Y, R_T) in pixels and frames. points: (P_XY, P_XT, P_YT), lbptop only.
        mapping: "u2" (uniform-2) or "none", lbptop only. slices: temporal slices. overlap: block overlap
        ratio in [0, 1). interpolation: "bilinear" or "nearest" (off-grid neighbours).
        temporal: "none" (the frames as they are), "tim" (TIM to `length`), "uniform" (the nearest frames
        at `length` even positions), "sparse" (DMDSP sparse sampling at `sparse_gamma`, read at `length`
        times; length None: as many frames as modes kept). shorter_only (tim, uniform): resample only
        clips with fewer than `length` frames (meb's "TIM10 for short clips").
        span: (first, last) frame of the clip, each "onset", "apex" or "offset".
    Flow (hoof, biwoof):
        bins: orientation bins over [-180°, 180°). frames: the flow pair (from, to), from FRAMES, and "to"
        may be "random". flow_method / flow_params: see preprocessing.flow. Bi-WOOF only: local_weight,
        global_weight ("none", "flow", "strain") and strain_scheme (preprocessing.strain).
    Reading: size (H, W) to resize every grey frame to (INTER_AREA) before the descriptor, None keeps the
    source (or crop) size; crop / crop_size / apex_fallback / apex as in `FeatureSpec`.
    """

    descriptor: str = "lbptop"
    blocks: tuple[int, int] = (5, 5)
    radii: tuple[float, float, float] = (1.0, 1.0, 1.0)
    points: tuple[int, int, int] = (8, 8, 8)
    mapping: str = "u2"
    slices: int = 1
    overlap: float = 0.0
    interpolation: str = "bilinear"
    temporal: str = "none"
    length: int | None = None
    shorter_only: bool = False
    sparse_gamma: float = 1e-4
    span: tuple[str, str] = ("onset", "offset")
    bins: int = 8
    local_weight: str = "flow"
    global_weight: str = "strain"
    frames: tuple[str, str] = ("onset", "apex")
    flow_method: str = "tvl1"
    flow_params: tuple[tuple[str, float], ...] = ()
    strain_scheme: str = "backward"
    size: tuple[int, int] | None = None
    crop: str = "none"
    crop_size: tuple[int, int] | None = None
    apex_fallback: str = "middle"
    apex: str = "annotated"

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> DescriptorSpec:
        """An LBP-TOP baseline of LBPTOP_PRESETS by name, with any field overridden."""
        if name not in LBPTOP_PRESETS:
            raise ValueError(f"unknown LBP-TOP preset {name!r}; allowed: {', '.join(LBPTOP_PRESETS)}")
        return cls(**({"descriptor": "lbptop"} | LBPTOP_PRESETS[name] | overrides))

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        # Hydra hands over ListConfig/lists; a frozen dataclass needs hashable tuples.
        set_(self, "blocks", _numbers("blocks", self.blocks, int))
        set_(self, "radii", _numbers("radii", self.radii))
        set_(self, "points", _numbers("points", self.points, int))
        set_(self, "span", tuple(self.span))
        set_(self, "frames", tuple(self.frames))
        set_(self, "flow_params", _canonical_params(self.flow_params))
        set_(self, "slices", _positive_int("slices", self.slices))
        set_(self, "bins", _positive_int("bins", self.bins))
        set_(self, "overlap", float(self.overlap))
        set_(self, "sparse_gamma", float(self.sparse_gamma))
        if self.length is not None:
            set_(self, "length", _positive_int("length", self.length))
        if self.size is not None:
            set_(self, "size", _numbers("size", self.size, int))
        if self.crop_size is not None:
            set_(self, "crop_size", _numbers("crop_size", self.crop_size, int))
        self._validate()

    def _validate(self) -> None:
        _allowed("descriptor", self.descriptor, DESCRIPTORS)
        defaults = {f.name: f.default for f in fields(self)}
        own = _PARAMETERS[self.descriptor]
        for name in set().union(*_PARAMETERS.values()) - own:
            if getattr(self, name) != defaults[name]:
                raise ValueError(
                    f"descriptor spec: {name}={getattr(self, name)!r} is not a parameter of "
                    f"{self.descriptor}: leave it out"
                )
        if len(self.blocks) != 2:
            raise ValueError(f"descriptor spec: blocks must be (rows, cols), got {self.blocks!r}")
        if self.descriptor in LBP_DESCRIPTORS:
            self._validate_lbp(defaults)
        else:
            for name in sorted(_TEMPORAL_PARAMETERS):
                if getattr(self, name) != defaults[name]:
                    raise ValueError(
                        f"descriptor spec: {name} is an LBP temporal setting, {self.descriptor} has none"
                    )
            self._validate_flow()
        _allowed("crop", self.crop, CROPS)
        _allowed("apex fallback", self.apex_fallback, APEX_FALLBACKS)
        _allowed("apex source", self.apex, APEX_SOURCES)
        if self.apex == "spotted" and self.apex_fallback == "error":
            raise ValueError("descriptor spec: apex='spotted' needs a spotter in apex_fallback")
        if self.size is not None and len(self.size) != 2:
            raise ValueError(f"descriptor spec: size must be (H, W), got {self.size!r}")

    def _validate_lbp(self, defaults: dict[str, Any]) -> None:
        if len(self.radii) != 3 or not all(np.isfinite(r) and r > 0 for r in self.radii):
            raise ValueError(
                f"descriptor spec: radii must be three positive numbers (R_X, R_Y, R_T), got {self.radii}"
            )
        if len(self.points) != 3 or not all(2 <= p <= MAX_POINTS for p in self.points):
            raise ValueError(
                f"descriptor spec: points must be (P_XY, P_XT, P_YT), each in 2..{MAX_POINTS}, "
                f"got {self.points}"
            )
        _allowed("LBP mapping", self.mapping, MAPPINGS)
        _allowed("LBP interpolation", self.interpolation, INTERPOLATIONS)
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"descriptor spec: overlap must be a ratio in [0, 1), got {self.overlap}")
        if len(self.span) != 2 or any(end not in SPAN_ENDS for end in self.span):
            raise ValueError(f"descriptor spec: span must be two of {SPAN_ENDS}, got {self.span!r}")
        if SPAN_ENDS.index(self.span[0]) >= SPAN_ENDS.index(self.span[1]):
            raise ValueError(f"descriptor spec: span must run forward in time, got {self.span!r}")
        _allowed("temporal normalisation", self.temporal, TEMPORALS)
        if self.temporal == "none" and self.length is not None:
            raise ValueError(
                "descriptor spec: length is the temporal normalisation's; temporal='none' has none"
            )
        if self.temporal in ("tim", "uniform") and self.length is None:
            raise ValueError(f"descriptor spec: temporal={self.temporal!r} needs a length (frames)")
        if self.shorter_only and self.temporal not in ("tim", "uniform"):
            raise ValueError("descriptor spec: shorter_only applies to temporal='tim' or 'uniform'")
        if self.temporal != "sparse" and self.sparse_gamma != defaults["sparse_gamma"]:
            raise ValueError("descriptor spec: sparse_gamma applies to temporal='sparse' only")
        if not np.isfinite(self.sparse_gamma) or self.sparse_gamma < 0:
            raise ValueError(f"descriptor spec: sparse_gamma must be >= 0, got {self.sparse_gamma}")

    def _validate_flow(self) -> None:
        if self.bins > MAX_BINS:
            raise ValueError(f"descriptor spec: bins must be in 1..{MAX_BINS}, got {self.bins}")
        if len(self.frames) != 2:
            raise ValueError(f"descriptor spec: frames must be a pair (from, to), got {self.frames!r}")
        _allowed("flow start frame", self.frames[0], FRAMES)
        _allowed("flow end frame", self.frames[1], (*FRAMES, RANDOM))
        if self.frames[0] == self.frames[1]:
            raise ValueError(f"descriptor spec: frames must be two different frames, got {self.frames!r}")
        if self.frames[1] == RANDOM and self.frames[0] != "onset":
            raise ValueError(
                "descriptor spec: a random frame is drawn after the onset: frames=('onset', 'random')"
            )
        _allowed("flow method", self.flow_method, FLOW_METHODS)
        _allowed("strain scheme", self.strain_scheme, STRAIN_SCHEMES)
        _allowed("Bi-WOOF local weight", self.local_weight, WEIGHTS)
        _allowed("Bi-WOOF global weight", self.global_weight, WEIGHTS)
        flow_parameters(self.flow_method, dict(self.flow_params))  # names and types checked now

    @property
    def channels(self) -> tuple[str]:
        return (self.descriptor,)

    @property
    def uses_apex(self) -> bool:
        used = self.span if self.descriptor in LBP_DESCRIPTORS else self.frames
        return "apex" in used

    @property
    def shape(self) -> tuple[int]:
        """(D,): the descriptor's length, from the parameters alone."""
        if self.descriptor == "lbptop":
            return (lbp_top_length(self.points, self.blocks, self.slices, self.mapping),)
        if self.descriptor == "lbpsip":
            return (lbp_sip_length(self.blocks, self.slices),)
        if self.descriptor == "hoof":
            return (hoof_length(self.blocks, self.bins),)
        return (biwoof_length(self.blocks, self.bins),)

    def describe(self) -> dict[str, Any]:
        """The version, the descriptor and every parameter it reads (plus, for a flow descriptor, the flow
        parameters in effect read back from OpenCV): the JSON `key()` hashes."""
        names = sorted(_PARAMETERS[self.descriptor] - {"flow_params"})
        if self.descriptor in LBP_DESCRIPTORS and self.temporal != "none":
            names += ["length"] + (["sparse_gamma"] if self.temporal == "sparse" else ["shorter_only"])
        record: dict[str, Any] = {"descriptors_version": DESCRIPTORS_VERSION, "descriptor": self.descriptor}
        for name in names:
            value = getattr(self, name)
            record[name] = list(value) if isinstance(value, tuple) else value
        record["size"] = list(self.size) if self.size is not None else None
        record["crop"] = {"method": self.crop, "size": list(self.crop_size) if self.crop_size else None}
        if self.uses_apex:
            record["apex"] = {"source": self.apex, "fallback": self.apex_fallback}
        if self.descriptor in FLOW_DESCRIPTORS:
            record["flow"] = flow_parameters(self.flow_method, dict(self.flow_params))
        return record

    def key(self) -> str:
        """sha256 hex of the canonical JSON of `describe()`."""
        text = json.dumps(self.describe(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def random_frame_number(sample: Sample) -> int:
    """The seed's "random frame": one of the frames present in onset+1..offset, drawn with a generator seeded
    by the sample_id's sha256, so every run and every machine draws the same frame for the same clip."""
    candidates = [n for n in sample.frames.frame_numbers if sample.onset < n <= sample.offset]
    if not candidates:
        raise SampleError(
            f"{sample.sample_id}: frames=('onset', 'random') needs a frame after the onset {sample.onset}; "
            f"the clip ends at {sample.offset}"
        )
    seed = int.from_bytes(hashlib.sha256(sample.sample_id.encode()).digest()[:8], "little")
    return candidates[int(np.random.default_rng(seed).integers(len(candidates)))]


def _normalise_time(sample: Sample, spec: DescriptorSpec, clip: np.ndarray, numbers: list[int]) -> np.ndarray:
    """The clip (n, H, W) after spec.temporal; errors name the sample, the frames and the parameter."""
    n = len(clip)
    where = f"{sample.sample_id}: frames {numbers[0]}..{numbers[-1]} ({n} frames)"
    try:
        if spec.temporal == "none" or (spec.shorter_only and n >= spec.length):
            return clip
        if spec.temporal == "tim":
            return tim(clip, spec.length)
        if spec.temporal == "uniform":
            return uniform_sample(clip, spec.length)
        modes = dmdsp(clip, spec.sparse_gamma)
    except ValueError as error:
        raise SampleError(f"{where}: temporal={spec.temporal!r} length={spec.length}: {error}") from error
    count = spec.length if spec.length is not None else modes.num_kept
    if count < 1:
        raise SampleError(
            f"{where}: temporal='sparse' with sparse_gamma={spec.sparse_gamma} keeps no mode: "
            "lower sparse_gamma"
        )
    return modes.reconstruct(positions(n, count))


def compute_descriptor(sample: Sample, spec: DescriptorSpec) -> np.ndarray:
    """The spec's descriptor of one sample: float32 `spec.shape` (D,). See the module docstring."""
    return compute_descriptor_with_info(sample, spec)[0]


def compute_descriptor_with_info(sample: Sample, spec: DescriptorSpec) -> tuple[np.ndarray, dict[str, Any]]:
    """`compute_descriptor` plus what it decided: (array, info) with info =
    {"frames": the frame numbers read (the span's frames, or the flow pair), "steps": how many frames the
     LBP histograms saw after the temporal normalisation (None for flow descriptors), "apex_frame" and
     "apex_source" (None if the spec uses no apex), "crop": as in compute_features_with_info}.
    """
    read, crop = clip_reader(sample, spec.crop, spec.crop_size)

    def grey(number: int) -> np.ndarray:
        frame = to_gray(read(number))
        if spec.size is not None:
            height, width = spec.size
            frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        return frame

    number_of, numbers = frame_resolver(sample, spec.apex_fallback, spec.apex, read)

    if spec.descriptor in LBP_DESCRIPTORS:
        descriptor, used, steps = _lbp_descriptor(sample, spec, grey, number_of)
    else:
        descriptor, used = _flow_descriptor(sample, spec, grey, number_of)
        steps = None
    if descriptor.shape != spec.shape:  # a bug, not bad data: the length is fixed by the parameters
        raise AssertionError(
            f"{sample.sample_id}: {spec.descriptor} has shape {descriptor.shape}, not {spec.shape}"
        )
    info = {
        "frames": used,
        "steps": steps,
        "apex_frame": numbers.get("apex"),
        "apex_source": apex_source(sample, spec.apex_fallback, spec.apex) if "apex" in numbers else None,
        "crop": None
        if crop is None
        else {"angle": float(crop.angle), "box": list(crop.box), "size": list(crop.size)},
    }
    return descriptor.astype(np.float32), info


def _lbp_descriptor(
    sample: Sample, spec: DescriptorSpec, grey: Callable[[int], np.ndarray], number_of: Callable[[str], int]
) -> tuple[np.ndarray, list[int], int]:
    first, last = (number_of(name) for name in spec.span)
    numbers = [n for n in sample.frames.frame_numbers if first <= n <= last]
    if not numbers:
        raise SampleError(
            f"{sample.sample_id}: no frames between {first} and {last} (span {list(spec.span)})"
        )
    frames = [grey(n) for n in numbers]
    shapes = {frame.shape for frame in frames}
    if len(shapes) != 1:
        raise SampleError(f"{sample.sample_id}: frames differ in size: {sorted(shapes)}")
    clip = _normalise_time(sample, spec, np.stack(frames), numbers)
    try:
        if spec.descriptor == "lbptop":
            vector = lbp_top(
                clip,
                spec.radii,
                spec.points,
                spec.blocks,
                spec.slices,
                spec.overlap,
                spec.mapping,
                spec.interpolation,
            )
        else:
            vector = lbp_sip(clip, spec.radii, spec.blocks, spec.slices, spec.overlap, spec.interpolation)
    except ValueError as error:
        raise SampleError(
            f"{sample.sample_id}: {spec.descriptor} of frames {numbers[0]}..{numbers[-1]} "
            f"({len(numbers)} frames, {len(clip)} after temporal={spec.temporal!r}) with "
            f"radii={list(spec.radii)}, blocks={list(spec.blocks)}, slices={spec.slices}: {error}"
        ) from error
    return vector, numbers, len(clip)


def _flow_descriptor(
    sample: Sample, spec: DescriptorSpec, grey: Callable[[int], np.ndarray], number_of: Callable[[str], int]
) -> tuple[np.ndarray, list[int]]:
    start = number_of(spec.frames[0])
    end = random_frame_number(sample) if spec.frames[1] == RANDOM else number_of(spec.frames[1])
    if start == end:
        raise SampleError(
            f"{sample.sample_id}: frames={list(spec.frames)} are both frame {start}: the flow has no motion "
            "to describe (an apex annotated on the onset?)"
        )
    u, v = optical_flow(grey(start), grey(end), spec.flow_method, dict(spec.flow_params))
    try:
        if spec.descriptor == "hoof":
            vector = hoof(u, v, spec.blocks, spec.bins)
        else:
            vector = biwoof(
                u, v, None, spec.bins, spec.blocks, spec.local_weight, spec.global_weight, spec.strain_scheme
            )
    except ValueError as error:
        raise SampleError(
            f"{sample.sample_id}: {spec.descriptor} of the {u.shape[0]}x{u.shape[1]} flow {start}->{end} "
            f"with blocks={list(spec.blocks)}, bins={spec.bins}: {error}"
        ) from error
    return vector, [start, end]


def spec_from_mapping(values: Mapping[str, Any]) -> DescriptorSpec:
    """A DescriptorSpec from a config mapping (e.g. Hydra's DictConfig); "preset" names an LBP-TOP preset
    whose fields the others override. An unknown field is an error naming it."""
    values = dict(values)
    known = {f.name for f in fields(DescriptorSpec)}
    unknown = sorted(set(values) - known - {"preset"})
    if unknown:
        raise ValueError(
            f"unknown descriptor spec field(s) {unknown}; allowed: preset, {', '.join(sorted(known))}"
        )
    preset = values.pop("preset", None)
    return DescriptorSpec.preset(preset, **values) if preset else DescriptorSpec(**values)
