"""Sequence inputs: a clip as T steps of flow, strain and/or grey frames, (T, C, H, W).

`FeatureSpec(sequence=SequenceSpec(...))` turns a spec's output from one (C, H, W) map into T of them
(preprocessing.features.compute_features). What a step holds:

* The frames of `span` (onset..offset by default; onset..apex for the works that stop at the apex), after
  the face crop and the magnification if the spec asks for them, are brought to a fixed number of frames by
  `resample` (preprocessing.temporal: TIM, linear, uniform).
* With a flow channel (u, v, strain, magnitude), T + 1 frames are made and step k holds the flow
  - `consecutive`: frame k -> k+1 (ELRCN: TIM10, then the 9 flows between consecutive frames), or
  - `accumulated`: frame 0 -> k+1 (the onset to each later frame, as apex-flow networks see the apex);
  and its strain and magnitude. The grey channel `frame` of a step is then the flow's destination frame.
* Without one, T frames are made and step k's `frame` is frame k.

So ELRCN's "TIM10, 9 flows" is `SequenceSpec(length=9, resample="tim", flow="consecutive")`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from preprocessing.temporal import RESAMPLERS

SEQUENCE_FLOWS = ("consecutive", "accumulated")
SPAN_ENDS = ("onset", "apex", "offset")
# The grey frame of each step; only sequences have it (an apex spec names its frames: onset, apex).
STEP_FRAME = "frame"


@dataclass(frozen=True)
class SequenceSpec:
    """How a clip becomes T steps; see the module docstring.

    length: T, the number of steps (>= 1). resample: "tim", "linear" or "uniform". flow: "consecutive"
    or "accumulated" (used only when the spec has a flow channel). span: (first, last) frame of the clip,
    each "onset", "apex" or "offset", first before last.
    """

    length: int = 9
    resample: str = "tim"
    flow: str = "consecutive"
    span: tuple[str, str] = ("onset", "offset")

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "span", tuple(self.span))
        if isinstance(self.length, bool) or int(self.length) != self.length or self.length < 1:
            raise ValueError(f"sequence length must be a positive integer, got {self.length!r}")
        set_(self, "length", int(self.length))
        if self.resample not in RESAMPLERS:
            raise ValueError(f"unknown sequence resample {self.resample!r}; allowed: {', '.join(RESAMPLERS)}")
        if self.flow not in SEQUENCE_FLOWS:
            raise ValueError(f"unknown sequence flow {self.flow!r}; allowed: {', '.join(SEQUENCE_FLOWS)}")
        if len(self.span) != 2 or any(end not in SPAN_ENDS for end in self.span):
            raise ValueError(f"sequence span must be two of {SPAN_ENDS}, got {self.span!r}")
        if SPAN_ENDS.index(self.span[0]) >= SPAN_ENDS.index(self.span[1]):
            raise ValueError(f"sequence span must run forward in time, got {self.span!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SequenceSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown sequence field(s) {unknown}; allowed: {sorted(known)}")
        return cls(**dict(values))

    def frames_needed(self, needs_flow: bool) -> int:
        """How many frames the resampler makes: T + 1 when steps hold flows between frames, else T."""
        return self.length + 1 if needs_flow else self.length

    def describe(self) -> dict[str, Any]:
        return {
            "length": self.length,
            "resample": self.resample,
            "flow": self.flow,
            "span": list(self.span),
        }
