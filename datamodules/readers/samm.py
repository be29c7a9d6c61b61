"""SAMM reader (specs/datasets.md section 2): the micro-expression clips, never the long videos.

Expected on disk:
- frames: `root/<subject 3-digit>/<Filename>/<subject>_<5-digit frame>.jpg`, e.g. `006/006_1_2/006_05562.jpg`
  (the cropped copy `SAMM_CROP/` has the same layout). The number in a frame's file name is the
  annotation's own frame numbering (006_1_2 has onset 5562 -> `006_05562.jpg`).
- labels: `SAMM_Micro_FACS_Codes_v2.xlsx` (any `SAMM*Micro*FACS*.xlsx`, or a .csv export of it): a text
  preamble of varying length (13 rows in v2, one row in another release), then the header row, found by its
  first cell `Subject`, then one row per clip. Columns are taken by their exact header:
  `Subject | Filename | Inducement Code | Onset Frame | Apex Frame | Offset Frame | Duration | Micro |
  Action Units | Estimated Emotion | Objective Classes | Notes`; cells beyond `Notes` are ignored (noted).
  Emotion words: Anger, Contempt, Disgust, Fear, Happiness, Sadness, Surprise, Other (singular).

Samples: subject `samm/006`, clip = Filename, sample_id `samm/006/006_1_2`, source
`SAMM_Micro_FACS_Codes_v2.xlsx row 15` (the spreadsheet's own row number), emotion word unchanged, AUs
parsed with laterality and alternatives kept (`(R6 or R12)+R15` -> ("R6|R12", "R15")), fps 200.

Quirks (lenient default: repaired or dropped with the reason in the report; `strict=True` raises at the
first one, naming file and row): a missing apex (blank or -1) is kept as None; an unparseable AU cell is
left empty; annotations that disagree with the frames on disk are fitted (`base.fit_to_frames`); a clip
whose folder is missing or empty, whose Filename names another subject, or that repeats an earlier row is
dropped. An unknown emotion word, a missing column, a file without a `Subject` header row and the SAMM Long
Videos annotation (another frame numbering) always raise.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from datamodules.readers.base import (
    AnnotatedRow,
    ReaderError,
    ReadReport,
    ReadResult,
    sample_from_frames,
    spreadsheet_rows,
)
from datamodules.samples import Sample

EMOTIONS = ("Anger", "Contempt", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other")
HEADER = (
    "Subject",
    "Filename",
    "Inducement Code",
    "Onset Frame",
    "Apex Frame",
    "Offset Frame",
    "Duration",
    "Micro",
    "Action Units",
    "Estimated Emotion",
    "Objective Classes",
    "Notes",
)
# The columns the reader uses; a file without one of them cannot be read. The others are informative only,
# so a release that lacks them is read with a note rather than refused.
REQUIRED = (
    "Subject",
    "Filename",
    "Onset Frame",
    "Apex Frame",
    "Offset Frame",
    "Action Units",
    "Estimated Emotion",
)
ANNOTATION_PATTERNS = ("SAMM*Micro*FACS*.xlsx", "SAMM*Micro*FACS*.xlsm", "SAMM*Micro*FACS*.csv")
FPS = 200.0


@dataclass
class Table:
    """The label file as read: where the header is, which column holds what, and the data rows."""

    path: Path
    sheet: str | None  # None for a .csv
    header_row: int  # 1-based row (line) number of the header, as a spreadsheet shows it
    columns: dict[str, int]  # header -> 0-based column index
    width: int  # number of header cells up to the last non-blank one (`Notes`)
    rows: list[tuple[int, tuple]]  # (1-based row number, cells) for every row below the header


def find_annotation(root: Path) -> Path:
    """The one `SAMM*Micro*FACS*.xlsx` (or .csv) in the frame folder, its parent or its grandparent."""
    places = [root, root.parent, root.parent.parent]
    for place in places:  # nearest first: a copy next to the frames wins over one further up
        found = sorted({p for pattern in ANNOTATION_PATTERNS for p in place.glob(pattern)})
        found = [p for p in found if not p.name.startswith("~$")]  # Excel lock files
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise ReaderError(
                f"SAMM: several label files in {place} ({', '.join(p.name for p in found)}); "
                "choose one with data.samm_annotation=PATH or MERLIN_SAMM_ANNOTATION"
            )
    raise ReaderError(
        f"SAMM: no label file {' / '.join(ANNOTATION_PATTERNS)} in any of {', '.join(map(str, places))}; "
        "set data.samm_annotation=PATH (SAMM_Micro_FACS_Codes_v2.xlsx) or MERLIN_SAMM_ANNOTATION"
    )


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _blank(value: object) -> bool:
    return _text(value) == ""


def read_table(path: str | Path) -> Table:
    """Find the header row (first cell `Subject`) on the first sheet that has one; check the columns."""
    path = Path(path)
    if not path.is_file():
        raise ReaderError(f"SAMM label file does not exist: {path}")
    sheets = spreadsheet_rows(path)
    for name, rows in sheets:
        header_index = next((i for i, r in enumerate(rows) if r and _text(r[0]) == "Subject"), None)
        if header_index is not None:
            sheet = name
            break
    else:
        names = ", ".join(repr(s) for s, _ in sheets if s is not None)
        where = f" on any sheet (sheets present: {names})" if names else ""
        raise ReaderError(
            f"{path}: no header row starting with 'Subject'{where}; expected a preamble, then "
            f"{' | '.join(HEADER)}"
        )
    cells = [_text(c) for c in rows[header_index]]
    columns: dict[str, int] = {}
    for i, name in enumerate(cells):
        if name and name not in columns:
            columns[name] = i
    at = f"header row {header_index + 1}" + (f" of sheet {sheet!r}" if sheet else "")
    if "Type" in columns and any(c in columns for c in ("Onset", "Apex", "Offset")):
        raise ReaderError(
            f"{path} is the SAMM Long Videos annotation ({at} has Type/Onset/Apex/Offset, not Micro/Onset "
            "Frame/...): its frame numbers count within the long videos and differ from the micro clips' "
            "for most clips, so the two must never be mixed. Give SAMM_Micro_FACS_Codes_v2.xlsx "
            "(data.samm_annotation) with the SAMM (micro clip) frames."
        )
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ReaderError(
            f"{path}: missing column(s) {', '.join(missing)} ({at} has: {', '.join(c for c in cells if c)})"
        )
    width = max(i for i, c in enumerate(cells) if c) + 1
    data = [(header_index + 2 + k, tuple(r)) for k, r in enumerate(rows[header_index + 1 :])]
    return Table(path, sheet, header_index + 1, columns, width, data)


def _cell(table: Table, cells: tuple, name: str) -> object:
    i = table.columns.get(name)
    return cells[i] if i is not None and i < len(cells) else None


def _frame(value: object) -> tuple[int | None, bool]:
    """(frame number or None for "not annotated" (blank, -1), whether a `?` uncertainty mark was stripped)."""
    text = _text(value)
    uncertain = "?" in text
    text = text.replace("?", "").strip()  # the preamble's symbol key: "?" = unclear (offset)
    if text == "":
        if uncertain:
            raise ValueError(f"not a frame number: {value!r}")
        return None, False
    number = float(text)
    if math.isnan(number) or number != int(number):
        raise ValueError(f"not a frame number: {value!r}")
    return (None if number < 0 else int(number)), uncertain  # SAMM writes -1 for "not annotated"


def _subject(value: object) -> str | None:
    match = re.fullmatch(r"(\d{1,3})(\.0*)?", _text(value))
    return f"{int(match[1]):03d}" if match else None


def read_samm(
    root: str | Path | None = None,
    annotation: str | Path | None = None,
    strict: bool = False,
    fps: float = FPS,
) -> ReadResult:
    """Samples of SAMM (`samm/006/006_1_2`), with every repair and drop in the report.

    `root` holds the subject folders 006, 007, ...; `annotation` is the label file (None: searched in root,
    its parent and grandparent).
    """
    if root is None:
        raise ReaderError(
            "SAMM: no frame folder given; set data.samm_root=PATH (the folder holding 006, 007, ...) "
            "or MERLIN_SAMM_ROOT"
        )
    root = Path(root)
    if not root.is_dir():
        raise ReaderError(
            f"SAMM frame folder {root} does not exist (data.samm_root must be the folder holding the "
            "3-digit subject folders 006, 007, ...)"
        )
    subjects_on_disk = {p.name for p in root.iterdir() if p.is_dir() and re.fullmatch(r"\d{3}", p.name)}
    if not subjects_on_disk:
        # Name a child that does hold subject folders (SAMM/SAMM_CROP) so the fix is obvious.
        hint = next(
            (
                c
                for c in sorted(root.iterdir())
                if c.is_dir() and any(g.is_dir() and re.fullmatch(r"\d{3}", g.name) for g in c.iterdir())
            ),
            None,
        )
        raise ReaderError(
            f"SAMM frame folder {root} holds no 3-digit subject folders (006, 007, ...)"
            + (f"; did you mean {hint}?" if hint else "")
        )
    report = ReadReport("samm", strict=strict)
    if annotation is None:
        path = find_annotation(root)
        report.note(f"SAMM label file found: {path}")
    else:
        path = Path(annotation)
    table = read_table(path)
    absent = [c for c in HEADER if c not in table.columns]
    if absent:
        report.note(f"{path.name}: column(s) {', '.join(absent)} absent (not needed to read the clips)")

    samples: list[Sample] = []
    rows_of: dict[str, int] = {}
    for row_number, cells in table.rows:
        source = f"{path.name} row {row_number}"
        if all(_blank(c) for c in cells):
            continue  # blank rows between or after the data
        extra = [_text(c) for c in cells[table.width :] if not _blank(c)]
        if extra:  # like 028_4_1's `apex1143` beyond Notes: not part of any column, so it is not used
            report.note(f"{source}: cell(s) beyond the Notes column ignored: {', '.join(map(repr, extra))}")
        clip = _text(_cell(table, cells, "Filename"))
        subject_cell = _cell(table, cells, "Subject")
        subject = _subject(subject_cell)
        sample_id = f"samm/{subject or _text(subject_cell) or '?'}/{clip or '?'}"
        if subject is None or not clip:
            report.drop(sample_id, f"no usable Subject/Filename ({_text(subject_cell)!r}, {clip!r})", source)
            continue
        emotion = _text(_cell(table, cells, "Estimated Emotion"))
        if emotion not in EMOTIONS:
            raise ReaderError(
                f"{source}: unknown emotion {emotion!r} for {sample_id} (SAMM uses {', '.join(EMOTIONS)}; "
                "note `Other`, singular)"
            )
        if clip.split("_")[0] != subject:
            report.drop(sample_id, f"Filename {clip!r} does not belong to Subject {subject}", source)
            continue
        if sample_id in rows_of:
            report.drop(sample_id, f"repeats {path.name} row {rows_of[sample_id]}", source)
            continue
        rows_of[sample_id] = row_number

        cells_of = {k: _cell(table, cells, f"{k.capitalize()} Frame") for k in ("onset", "apex", "offset")}
        try:
            parsed = {k: _frame(v) for k, v in cells_of.items()}
        except ValueError as err:
            report.drop(sample_id, f"unparseable frame number ({err})", source)
            continue
        (onset, onset_q), (apex, apex_q), (offset, offset_q) = (parsed[k] for k in cells_of)
        if onset is None or offset is None:
            report.drop(
                sample_id,
                f"onset/offset not annotated ({_text(cells_of['onset'])!r}, {_text(cells_of['offset'])!r})",
                source,
            )
            continue
        for name, flagged in (("onset", onset_q), ("apex", apex_q), ("offset", offset_q)):
            if flagged:
                report.repair(
                    sample_id, f"{name} {_text(cells_of[name])!r} marked uncertain: used the number", source
                )
        if apex is None:
            report.repair(
                sample_id, f"apex not annotated ({_text(cells_of['apex']) or 'blank'}): kept as None", source
            )
        duration = _text(_cell(table, cells, "Duration"))
        if re.fullmatch(r"\d+(\.0*)?", duration) and int(float(duration)) != offset - onset + 1:
            report.note(
                f"{source}: Duration {duration} disagrees with onset..offset {onset}..{offset} "
                "(kept the frame numbers)"
            )

        row = AnnotatedRow(
            sample_id,
            "samm",
            f"samm/{subject}",
            clip,
            *cells_of.values(),
            _cell(table, cells, "Action Units"),
            emotion,
            fps,
            source,
        )
        sample = sample_from_frames(report, row, root / subject / clip, onset, apex, offset)
        if sample is not None:
            samples.append(sample)

    sheet = f", sheet {table.sheet!r}" if table.sheet else ""
    report.note(
        f"SAMM: {len(samples)} clips from {len({s.subject for s in samples})} subjects; {path.name}"
        f"{sheet}, header on row {table.header_row}"
    )
    return ReadResult(samples, report)
