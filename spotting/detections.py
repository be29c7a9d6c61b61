"""What a spotter reports: one `Detection` per expression it found, in the video's own frame numbers.

Kept apart from the spotter (no OpenCV, no numpy) so that the spotting metric and the reports that read
detections.csv back need nothing heavier than the record itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from datamodules.long_videos import KINDS


@dataclass(frozen=True)
class Detection:
    """One spotted expression: onset <= apex <= offset, inclusive frame numbers, and its kind.

    score: the peak of the motion signal it was spotted on, in pixels of the spotter's working face size
    (`SpotterConfig.face_height`); larger is a stronger movement. Only used to order detections.
    """

    onset: int
    apex: int
    offset: int
    kind: str  # MICRO | MACRO
    score: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"detection kind {self.kind!r}, expected one of {KINDS}")
        if not self.onset <= self.apex <= self.offset:
            raise ValueError(
                f"detection needs onset <= apex <= offset, got {self.onset}, {self.apex}, {self.offset}"
            )

    @property
    def length(self) -> int:
        return self.offset - self.onset + 1

    def shifted(self, by: int) -> Detection:
        """The same detection with every frame number moved by `by` (frame index -> database number)."""
        return Detection(self.onset + by, self.apex + by, self.offset + by, self.kind, self.score)

    def to_dict(self) -> dict:
        return asdict(self)
