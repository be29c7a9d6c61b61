"""What every long-video reader (samm_long, casme_sq, smic_e) does with an annotation row: fit its interval
to the video's frames, parse its AU cell, note gaps in the frames; each change recorded in the ReadReport."""

from __future__ import annotations

from collections.abc import Sequence

from datamodules.long_videos import Interval
from datamodules.readers.action_units import parse_action_units
from datamodules.readers.base import ReadReport, is_blank
from datamodules.samples import FrameFolder


def fit_interval(
    report: ReadReport,
    item_id: str,
    source: str,
    onset: int,
    apex: int | None,
    offset: int,
    kind: str,
    numbers: Sequence[int],
    emotion: str | None = None,
    action_units: tuple[str, ...] = (),
) -> Interval | None:
    """The annotated interval fitted to a long video's frame numbers, every change recorded in `report`.

    Unlike a micro clip's (`base.fit_to_frames`), a long
    video's frame folder is the whole recording, so an interval reaching past it is clamped and one wholly
    outside it is dropped; never re-mapped. A bad apex costs only the apex: onset and offset are what
    spotting is scored on.
    """
    first, last = numbers[0], numbers[-1]
    if onset > offset:
        report.drop(item_id, f"onset {onset} is after offset {offset}", source)
        return None
    if apex is not None and not onset <= apex <= offset:
        report.repair(item_id, f"apex {apex} outside onset..offset {onset}..{offset}: kept as None", source)
        apex = None
    if offset < first or onset > last:
        report.drop(
            item_id,
            f"annotated frames {onset}..{offset} lie outside the video's frames {first}..{last}",
            source,
        )
        return None
    if onset < first or offset > last:
        fitted = max(onset, first), min(offset, last)
        reason = (
            f"annotated frames {onset}..{offset} reach past the video's frames {first}..{last}: "
            f"clamped to {fitted[0]}..{fitted[1]}"
        )
        if apex is not None and not fitted[0] <= apex <= fitted[1]:
            apex, reason = None, f"{reason}, apex {apex} (outside them) kept as None"
        report.repair(item_id, reason, source)
        onset, offset = fitted
    return Interval(onset, offset, kind, apex, emotion, action_units, source)


def parse_units(report: ReadReport, item_id: str, cell: object, source: str) -> tuple[str, ...]:
    """An AU cell -> codes; an unparseable one is left empty (recorded as a repair)."""
    try:
        return parse_action_units(cell)
    except ValueError as err:
        shown = "" if is_blank(cell) else str(cell).strip()
        report.repair(item_id, f"action units {shown!r} unparseable ({err}): left empty", source)
        return ()


def note_gaps(report: ReadReport, video_id: str, frames: FrameFolder) -> None:
    """A note when frames are missing inside a video: spotting windows across the gap are shorter in time."""
    numbers = frames.frame_numbers
    missing = numbers[-1] - numbers[0] + 1 - len(numbers)
    if missing:
        report.note(f"{video_id}: {missing} frame(s) missing between {numbers[0]} and {numbers[-1]}")
