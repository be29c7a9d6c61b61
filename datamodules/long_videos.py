"""Long videos: what spotting reads, one record for every long-video database.

A `LongVideo` is one recording in which nobody has to have marked where the expressions are: SAMM Long
Videos, CAS(ME)^2, SMIC-E, a synthetic long video, or a user's own file. Its `intervals` are the ground truth
the database annotates (empty for a user's video): onset, apex and offset in the video's own frame numbers
(the numbers its `frames` source uses), the kind (micro or macro) and, where the database gives one, the
emotion word and action units. Subjects are dataset-qualified, as for `Sample`: `samm_long/006`.

Frame numbering is the database's own and never mixed with its micro-clip release: SAMM Long Videos counts
frames from 1 within each trimmed video, SAMM's micro clips count them in the untrimmed recording
(specs/datasets.md section 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from datamodules.readers.base import ReadReport
from datamodules.samples import FrameSource, SampleError

MICRO, MACRO = "micro", "macro"
KINDS = (MICRO, MACRO)
# The field's boundary between a micro- and a macro-expression (onset to offset), in seconds.
MICRO_MAX_SECONDS = 0.5


@dataclass(frozen=True)
class Interval:
    """One expression in a long video, in the video's frame numbers (inclusive at both ends)."""

    onset: int
    offset: int
    kind: str  # MICRO | MACRO
    apex: int | None = None
    emotion: str | None = None  # the database's own word, as annotated; None where it gives none
    action_units: tuple[str, ...] = ()
    source: str = ""  # "file:row" of the annotation, for error messages and reports

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise SampleError(f"{self.source or 'interval'}: kind {self.kind!r}, expected one of {KINDS}")
        if self.offset < self.onset:
            raise SampleError(f"{self.source or 'interval'}: offset {self.offset} before onset {self.onset}")
        if self.apex is not None and not self.onset <= self.apex <= self.offset:
            raise SampleError(
                f"{self.source or 'interval'}: apex {self.apex} outside onset..offset "
                f"{self.onset}..{self.offset}"
            )

    @property
    def length(self) -> int:
        return self.offset - self.onset + 1


@dataclass(frozen=True)
class LongVideo:
    """One long recording and its annotated expressions."""

    video_id: str  # dataset-qualified and unique: "samm_long/006_1", "casme_sq/s15/15_0101"
    dataset: str
    subject: str  # dataset-qualified: "samm_long/006"
    frames: FrameSource  # frame_numbers ascending; intervals use these numbers
    fps: float
    intervals: tuple[Interval, ...] = ()
    source: str = ""  # where it was read from (folder, annotation file)
    extra: dict = field(default_factory=dict, compare=False, hash=False)  # reader-specific facts, for reports

    @property
    def num_frames(self) -> int:
        return len(self.frames.frame_numbers)

    @property
    def first_frame(self) -> int:
        return self.frames.frame_numbers[0]

    @property
    def last_frame(self) -> int:
        return self.frames.frame_numbers[-1]

    def intervals_of(self, kind: str) -> tuple[Interval, ...]:
        return tuple(i for i in self.intervals if i.kind == kind)


@dataclass
class LongVideoRead:
    """What a long-video reader returns: the videos, and every repair, drop and note with file and row."""

    videos: list[LongVideo]
    report: ReadReport


def validate_long_video(video: LongVideo) -> None:
    """Raise SampleError naming the video when its record cannot be spotted or scored."""
    where = video.source or video.video_id
    numbers = video.frames.frame_numbers
    if not numbers:
        raise SampleError(f"{where}: video {video.video_id} has no frames")
    if any(b <= a for a, b in zip(numbers, numbers[1:], strict=False)):
        raise SampleError(f"{where}: frame numbers of {video.video_id} are not strictly ascending")
    if not video.fps or video.fps <= 0:
        raise SampleError(f"{where}: video {video.video_id} has fps {video.fps!r}")
    if "/" not in video.subject or "/" not in video.video_id:
        raise SampleError(f"{where}: subject and video id must be dataset-qualified ({video.subject!r})")
    for interval in video.intervals:
        if interval.onset < numbers[0] or interval.offset > numbers[-1]:
            raise SampleError(
                f"{interval.source or where}: interval {interval.onset}..{interval.offset} outside the "
                f"frames of {video.video_id} ({numbers[0]}..{numbers[-1]})"
            )


def check_unique_video_ids(videos: Sequence[LongVideo]) -> None:
    seen: set[str] = set()
    for video in videos:
        if video.video_id in seen:
            raise SampleError(f"duplicate video id {video.video_id!r}")
        seen.add(video.video_id)
