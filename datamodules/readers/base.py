"""What every database reader shares: the read report, strict vs lenient handling, frame-folder helpers.

A reader turns one database on disk into `Sample`s and a `ReadReport`. Every quirk it meets is either
*repaired* (the spec documents a fix; the sample is kept and the reason logged) or the sample is *dropped*
(with the reason); nothing disappears silently. In strict mode the first quirk raises a `ReaderError`
naming the file and row instead. Problems that make the whole database unreadable (a missing annotation
file, a missing column, a wrong sheet) always raise, in either mode.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from datamodules.protocols import natural_key
from datamodules.readers.action_units import parse_action_units
from datamodules.samples import FrameFolder, Sample, SampleError, validate_sample

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


class ReaderError(SampleError):
    """A database cannot be read as it is; the message names the file (and row) and what was expected."""


@dataclass(frozen=True)
class Issue:
    """One repaired or dropped sample; `source` is the annotation file and row (or folder) it came from."""

    sample_id: str
    reason: str
    source: str = ""

    def as_dict(self) -> dict:
        return {"sample_id": self.sample_id, "reason": self.reason, "source": self.source}


@dataclass
class ReadReport:
    """Repairs and drops of one read; `strict=True` turns each into a `ReaderError` instead."""

    dataset: str
    strict: bool = False
    repairs: list[Issue] = field(default_factory=list)
    drops: list[Issue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # facts about the read: label-file version detected, ...

    def repair(self, sample_id: str, reason: str, source: str = "") -> None:
        """Record a documented fix; raises in strict mode."""
        if self.strict:
            raise ReaderError(f"{source}: {sample_id}: {reason} (strict mode; lenient mode repairs this)")
        self.repairs.append(Issue(sample_id, reason, source))
        log.debug("%s: repaired %s: %s (%s)", self.dataset, sample_id, reason, source)

    def drop(self, sample_id: str, reason: str, source: str = "") -> None:
        """Record a sample left out; raises in strict mode."""
        if self.strict:
            raise ReaderError(f"{source}: {sample_id}: {reason} (strict mode; the lenient default drops it)")
        self.drops.append(Issue(sample_id, reason, source))
        log.debug("%s: dropped %s: %s (%s)", self.dataset, sample_id, reason, source)

    def exclude(self, sample_id: str, reason: str, source: str = "") -> None:
        """Record a sample a protocol leaves out on purpose (not a quirk: never raises, even when strict)."""
        self.drops.append(Issue(sample_id, reason, source))
        log.debug("%s: excluded %s: %s", self.dataset, sample_id, reason)

    def note(self, text: str) -> None:
        self.notes.append(text)
        log.debug("%s: %s", self.dataset, text)

    def extend(self, other: ReadReport) -> None:
        self.repairs += other.repairs
        self.drops += other.drops
        self.notes += other.notes


@dataclass
class ReadResult:
    """A reader's output: the samples kept, and the report of everything repaired or dropped."""

    samples: list[Sample]
    report: ReadReport


def trailing_number(path: Path) -> int | None:
    """The last run of digits in a file name's stem: `reg_img46.jpg` -> 46, `006_05562.jpg` -> 5562."""
    found = re.findall(r"\d+", path.stem)
    return int(found[-1]) if found else None


def frame_folder(folder: Path, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> FrameFolder:
    """The image files of a clip folder, ordered by the trailing number of their names (not by string).

    Raises `ReaderError` if the folder does not exist, holds no images, or two files share a frame number.
    """
    if not folder.is_dir():
        raise ReaderError(f"frame folder does not exist: {folder}")
    numbered: dict[int, Path] = {}
    for path in folder.iterdir():
        if path.suffix.lower() not in suffixes or path.name.startswith("."):
            continue
        number = trailing_number(path)
        if number is None:
            continue
        if number in numbered:
            raise ReaderError(f"{folder}: {numbered[number].name} and {path.name} both hold frame {number}")
        numbered[number] = path
    if not numbered:
        raise ReaderError(f"no image frames ({'/'.join(suffixes)}) in {folder}")
    numbers = sorted(numbered)
    return FrameFolder(tuple(numbered[n] for n in numbers), tuple(numbers))


def fit_to_frames(
    report: ReadReport,
    sample_id: str,
    source: str,
    onset: int,
    apex: int | None,
    offset: int,
    numbers: Sequence[int],
) -> tuple[int, int | None, int] | None:
    """Reconcile annotated onset/apex/offset with the frame numbers on disk, repairing what can be repaired.

    - all inside the frames present: unchanged;
    - onset/offset beyond the frames present but the apex inside: onset/offset clamped to the frames present;
    - the apex outside the frames present (the annotation uses another numbering than the folder, e.g.
      CASME II sub12/EP09_02 annotated 16/59/101 with frames 161..206 on disk): the folder is taken as the
      clip, onset/offset become its first/last frame and the apex keeps its relative position in the clip.
    Returns None (after recording a drop) only when the annotation itself is inconsistent (onset > offset).
    """
    first, last = numbers[0], numbers[-1]
    if onset > offset:
        report.drop(sample_id, f"onset {onset} is after offset {offset}", source)
        return None
    if apex is not None and not onset <= apex <= offset:
        report.drop(sample_id, f"apex {apex} outside onset..offset {onset}..{offset}", source)
        return None
    if first <= onset and offset <= last:
        return onset, apex, offset
    if apex is None or first <= apex <= last:
        new_onset, new_offset = max(onset, first), min(offset, last)
        if new_onset > new_offset:  # no overlap at all and no apex to anchor on: take the folder as the clip
            new_onset, new_offset = first, last
        report.repair(
            sample_id,
            f"annotated frames {onset}..{offset} but frames {first}..{last} on disk: "
            f"clamped to {new_onset}..{new_offset}",
            source,
        )
        return new_onset, apex, new_offset
    relative = (apex - onset) / max(offset - onset, 1)
    new_apex = first + round(relative * (last - first))
    new_apex = min(numbers, key=lambda n: (abs(n - new_apex), n))
    report.repair(
        sample_id,
        f"annotated onset/apex/offset {onset}/{apex}/{offset} but frames {first}..{last} on disk: "
        f"took the folder as the clip, apex at the same relative position ({new_apex})",
        source,
    )
    return first, new_apex, last


def counts(values: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: natural_key(kv[0])))


def is_blank(value: object) -> bool:
    """An empty spreadsheet cell (None, NaN or whitespace)."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def whole_number(value: object) -> int:
    """A cell holding a whole number (`12`, `12.0`, `-1`) -> int; anything else raises ValueError."""
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ValueError(f"not a frame number: {value!r}") from None
    if not math.isfinite(number) or number != int(number):
        raise ValueError(f"not a frame number: {value!r}")
    return int(number)


def frame_cell(value: object, missing: Sequence[str] = ()) -> int | None:
    """A frame-number cell -> int. Blank, a marker in `missing` (CASME II `/`) or a negative number (SAMM's
    -1) -> None, meaning "not annotated"; anything else that is not a whole number raises ValueError."""
    if is_blank(value) or str(value).strip() in missing:
        return None
    number = whole_number(value)
    return None if number < 0 else number


def bound_cell(value: object, name: str, missing: Sequence[str] = ()) -> int | None:
    """An onset or offset cell -> int, or None when blank (or a marker in `missing`). Unlike an apex's, a
    negative onset/offset is no "not annotated" marker but a wrong number: ValueError `onset -5 is negative`.
    """
    if is_blank(value) or str(value).strip() in missing:
        return None
    number = whole_number(value)
    if number < 0:
        raise ValueError(f"{name} {number} is negative")
    return number


def find_label_file(root: Path, patterns: Sequence[str], what: str, option: str) -> Path:
    """The one label file matching `patterns` in `root`, its parent or grandparent; else a ReaderError
    saying where it looked and which `option` (e.g. data.samm_annotation) names the file instead."""
    places = [root, root.parent, root.parent.parent]
    found = sorted({p for place in places for pattern in patterns for p in place.glob(pattern)})
    if len(found) == 1:
        return found[0]
    if not found:
        where = ", ".join(str(p) for p in places)
        raise ReaderError(f"{what}: no label file {' or '.join(patterns)} in {where}; set {option}=PATH")
    raise ReaderError(
        f"{what}: several label files ({', '.join(p.name for p in found)}); choose one with {option}"
    )


@dataclass(frozen=True)
class AnnotatedRow:
    """One annotation row, parsed, before it is matched to its frames."""

    sample_id: str
    dataset: str
    subject: str  # dataset-qualified
    clip: str
    onset_cell: object
    apex_cell: object
    offset_cell: object
    au_cell: object
    emotion: str
    fps: float
    source: str  # "<file> row <n>"


def sample_from_row(
    report: ReadReport, row: AnnotatedRow, folder: Path, missing_apex: Sequence[str] = ()
) -> Sample | None:
    """The steps every spreadsheet reader shares: frame cells, AU cell, the clip folder, fitting the
    annotation to the frames on disk, validation. Each quirk is repaired or dropped through `report`."""
    try:
        onset = bound_cell(row.onset_cell, "onset", missing_apex)
        apex = frame_cell(row.apex_cell, missing_apex)
        offset = bound_cell(row.offset_cell, "offset", missing_apex)
        if onset is None or offset is None:
            raise ValueError("onset or offset frame missing")
    except ValueError as err:
        report.drop(row.sample_id, f"unparseable frame numbers ({err})", row.source)
        return None
    if apex is None:
        shown = "blank" if is_blank(row.apex_cell) else str(row.apex_cell).strip()
        report.repair(row.sample_id, f"apex not annotated ({shown!r})", row.source)
    return sample_from_frames(report, row, folder, onset, apex, offset)


def sample_from_frames(
    report: ReadReport, row: AnnotatedRow, folder: Path, onset: int, apex: int | None, offset: int
) -> Sample | None:
    """The tail every spreadsheet reader shares, once its frame cells are parsed: the AU cell, the clip
    folder, fitting the annotation to the frames on disk, validation; quirks go through `report`."""
    try:
        action_units = parse_action_units(row.au_cell)
    except ValueError as err:
        shown = "" if is_blank(row.au_cell) else str(row.au_cell).strip()
        report.repair(row.sample_id, f"action units {shown!r} unparseable ({err}): left empty", row.source)
        action_units = ()
    if not folder.is_dir():
        report.drop(row.sample_id, f"clip folder {folder} does not exist", row.source)
        return None
    try:
        frames = frame_folder(folder)
    except ReaderError as err:  # an empty folder, or two files for one frame: this clip only
        report.drop(row.sample_id, str(err), row.source)
        return None
    fitted = fit_to_frames(report, row.sample_id, row.source, onset, apex, offset, frames.frame_numbers)
    if fitted is None:
        return None
    onset, apex, offset = fitted
    sample = Sample(
        row.sample_id,
        row.dataset,
        row.subject,
        row.clip,
        frames,
        onset,
        apex,
        offset,
        row.emotion,
        action_units,
        row.fps,
        row.source,
    )
    validate_sample(sample)
    return sample


def spreadsheet_rows(path: Path) -> list[tuple[str | None, list[tuple]]]:
    """[(sheet name, or None for a .csv; all rows)] of an .xlsx or .csv; blank rows are kept so list index + 1
    is the spreadsheet row number a user sees."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        for encoding in ("utf-8-sig", "cp1252"):  # Excel writes CSV as UTF-8 with BOM or as Windows-1252
            try:
                with path.open(newline="", encoding=encoding) as f:
                    return [(None, [tuple(r) for r in csv.reader(f)])]
            except UnicodeDecodeError:
                continue
        raise ReaderError(f"{path}: not a UTF-8 or Windows-1252 text file")
    if suffix == ".xls":
        raise ReaderError(f"{path}: old .xls format cannot be read; save it as .xlsx (or export a .csv)")
    from openpyxl import load_workbook  # deferred: a config error should not pay for importing openpyxl

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # openpyxl raises several types for a non-xlsx file
        raise ReaderError(f"{path}: cannot be opened as an .xlsx workbook ({err})") from err
    try:
        return [(ws.title, list(ws.iter_rows(min_row=1, values_only=True))) for ws in book.worksheets]
    finally:
        book.close()
