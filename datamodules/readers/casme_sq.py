"""CAS(ME)^2 ("CASME_sq") reader (specs/datasets.md section 4): long videos with macro- and micro-expressions.

Expected on disk:
- frames: `root/s15/15_0101disgustingteeth/img1.jpg`: root is `rawpic` (or a cropped copy with the same
  layout), subject folders `s15`, ..., video folders `<subject digits>_<4-digit video code><name>`, frames
  `img<N>.jpg` counted from 1 (the annotation's numbering).
- labels: `CAS(ME)^2code_final.xlsx` or `CAS(ME)^2code_final(Updated).xlsx` (any `*code_final*.xlsx`, or a
  .csv export of its first sheet). The first sheet has **no header row**, one expression per row:
  subject number (1..22) | expression name (`anger1_1`) | onset | apex | offset (0 = missing) | AUs (may be
  `NULL`) | objective emotion (negative, positive, surprise, others) | type (macro-expression,
  micro-expression) | self-reported emotion | offset - onset | and, in some copies, the video folder
  (`s15/15_0401girlcrashing`). The second sheet maps subject numbers to subject codes (its columns 2 and 3:
  code `s15`, number), the third video codes to video names (`0101` | `disgust1`); the expression
  `disgust1_2` belongs to video `disgust1`. Without those sheets (a .csv export) the folder column is used.

Videos: `casme_sq/s15/15_0101` (subject `casme_sq/s15`), one per video folder, 30 fps. Each row becomes an
Interval with the type as kind, the objective emotion as emotion, AUs parsed and source `<file> row <n>` (no
header, so row 1 is the first expression); the self-reported emotion and expression name are kept in the
video's `extra` by source. A video folder without annotation rows is kept with no intervals (noted).

Quirks (lenient default: repaired or dropped with file and row; `strict=True` raises at the first one):
- offset 0 (missing): set to apex + (apex - onset), i.e. the decay taken as long as the annotated rise and
  clamped to the video's last frame. An expression rises and falls over comparable times, so this is the
  estimate the row itself supports; dropping it would score every detection of it as a false positive. With
  the apex missing too there is nothing to estimate from and the row is dropped.
- apex 0 or blank: kept as None. `happyiness` (self-report typo): repaired to happiness.
- AU cell `NULL`: no AUs coded, read as none (noted with its rows); an unparseable AU cell is left empty.
- a subject number or video name the naming sheets lack, a missing video folder, unparseable frame numbers:
  the row is dropped; intervals past the video's frames are clamped (`samm_long.fit_interval`).
An objective emotion or type outside the vocabulary, a first sheet that is not laid out as above, a missing
root or label file always raise.
"""

from __future__ import annotations

import re
from pathlib import Path

from datamodules.long_videos import (
    MACRO,
    MICRO,
    Interval,
    LongVideo,
    LongVideoRead,
    check_unique_video_ids,
    validate_long_video,
)
from datamodules.protocols import natural_key
from datamodules.readers.base import (
    ReaderError,
    ReadReport,
    bound_cell,
    find_label_file,
    frame_cell,
    frame_folder,
    is_blank,
    spreadsheet_rows,
    whole_number,
)
from datamodules.readers.long_base import fit_interval, note_gaps, parse_units

DATASET = "casme_sq"
FPS = 30.0
OBJECTIVE = ("negative", "positive", "surprise", "others")
TYPES = {"macro-expression": MACRO, "micro-expression": MICRO}
SELF_REPORTED = (
    "happiness",
    "disgust",
    "anger",
    "surprise",
    "fear",
    "sadness",
    "helpless",
    "pain",
    "confused",
    "sympathy",
)
TYPOS = {"happyiness": "happiness"}  # one row of the real file (specs/datasets.md section 4)
COLUMNS = (
    "subject number",
    "expression name",
    "onset",
    "apex",
    "offset",
    "AUs",
    "objective emotion",
    "type",
    "self-reported emotion",
    "offset - onset",
    "video folder (optional)",
)
ANNOTATION_PATTERNS = ("*code_final*.xlsx", "*code_final*.xlsm", "*code_final*.csv")
SUBJECT_DIR = re.compile(r"s(\d+)")
VIDEO_DIR = re.compile(r"(\d+)_(\d{4})(.*)")  # 15_0101disgustingteeth


def _text(value: object) -> str:
    return "" if is_blank(value) else str(value).strip()


def _cell(cells: tuple, index: int) -> object:
    return cells[index] if index < len(cells) else None


def _subject_code(value: object) -> str | None:
    match = re.fullmatch(r"s?0*(\d+)(\.0*)?", _text(value), re.IGNORECASE)
    return f"s{int(match[1])}" if match else None


def _naming_sheets(
    sheets: list[tuple[str | None, list[tuple]]], report: ReadReport, path: Path
) -> tuple[dict[int, str], dict[str, str]] | None:
    """({subject number: code `s15`}, {video name `disgust1`: 4-digit code}) from sheets 2 and 3, or None."""
    if len(sheets) < 3:
        return None
    (subject_sheet, subject_rows), (video_sheet, video_rows) = sheets[1], sheets[2]
    subjects: dict[int, str] = {}
    videos: dict[str, str] = {}
    skipped: list[str] = []
    for number, row in enumerate(subject_rows, start=1):
        if all(is_blank(c) for c in row):
            continue
        code = _subject_code(_cell(row, 1))
        try:
            subject_number = whole_number(_cell(row, 2))
        except ValueError:
            subject_number = None
        if code is None or subject_number is None:
            skipped.append(f"{subject_sheet!r} row {number}")
            continue
        subjects[subject_number] = code
    for number, row in enumerate(video_rows, start=1):
        if all(is_blank(c) for c in row):
            continue
        name = _text(_cell(row, 1))
        try:
            code = f"{whole_number(_cell(row, 0)):04d}"
        except ValueError:
            code = None
        if code is None or not name:
            skipped.append(f"{video_sheet!r} row {number}")
            continue
        videos[name] = code
    if not subjects or not videos:
        raise ReaderError(
            f"{path}: sheet {subject_sheet!r} (subject number -> code, columns 2-3) or {video_sheet!r} "
            "(video code -> name, columns 1-2) maps nothing"
        )
    if skipped:  # a title row above the mapping, typically: not an expression, so only noted
        report.note(f"{path.name}: naming rows that map nothing, ignored: {', '.join(skipped)}")
    report.note(
        f"{path.name}: subjects from sheet {subject_sheet!r} ({len(subjects)}), video codes from sheet "
        f"{video_sheet!r} ({len(videos)})"
    )
    return subjects, videos


def _check_layout(path: Path, sheet: str | None, rows: list[tuple]) -> None:
    """Raise unless the first expression row is laid out as the real file's (no header, type in column 8)."""
    first = next(((n, r) for n, r in enumerate(rows, start=1) if not all(is_blank(c) for c in r)), None)
    where = f"sheet {sheet!r}" if sheet else "the file"
    if first is None:
        raise ReaderError(f"{path}: {where} holds no rows")
    number, row = first
    kind = _text(_cell(row, 7)).casefold()
    if len(row) >= 9 and kind in TYPES:
        return
    shown = " | ".join(_text(c) for c in row[:11])
    hint = (
        "; it looks like a header row, which the released file does not have: remove it"
        if not re.fullmatch(r"\d+(\.0*)?", _text(_cell(row, 2)))
        else ""
    )
    raise ReaderError(
        f"{path}: {where} row {number} is not a CAS(ME)^2 expression row (found: {shown}); expected no "
        f"header row and the columns {' | '.join(COLUMNS)}, column 8 being {' or '.join(TYPES)}{hint}"
    )


def _video_folder(subject_dir: Path, prefix: str) -> tuple[Path | None, str]:
    """The one folder of `subject_dir` named `<prefix><name>` (prefix `15_0101`), or (None, why not)."""
    if not subject_dir.is_dir():
        return None, f"subject folder {subject_dir} does not exist"
    found = sorted(p for p in subject_dir.iterdir() if p.is_dir() and p.name.startswith(prefix))
    if len(found) == 1:
        return found[0], ""
    if not found:
        return None, f"no video folder {prefix}* in {subject_dir}"
    return None, f"several video folders {prefix}* in {subject_dir}: {', '.join(p.name for p in found)}"


def _check_root(root: Path) -> None:
    if not root.is_dir():
        raise ReaderError(
            f"CAS(ME)^2 frame folder {root} does not exist (videos.casme_sq_root must be the rawpic folder, "
            "holding s15, s16, ...)"
        )
    if any(p.is_dir() and SUBJECT_DIR.fullmatch(p.name) for p in root.iterdir()):
        return
    hint = next(
        (
            c
            for c in sorted(root.iterdir())
            if c.is_dir() and any(g.is_dir() and SUBJECT_DIR.fullmatch(g.name) for g in c.iterdir())
        ),
        None,
    )
    raise ReaderError(
        f"CAS(ME)^2 frame folder {root} holds no subject folders s15, s16, ..."
        + (f"; did you mean {hint}?" if hint else "")
    )


def read_casme_sq(
    root: str | Path | None = None,
    annotation: str | Path | None = None,
    strict: bool = False,
    fps: float = FPS,
) -> LongVideoRead:
    """The long videos of CAS(ME)^2 (`casme_sq/s15/15_0101`), with every repair and drop in the report.

    `root` holds the subject folders s15, s16, ... (rawpic); `annotation` is the label file (None: searched
    in root, its parent and grandparent).
    """
    if root is None:
        raise ReaderError(
            "CAS(ME)^2: no frame folder given; set videos.casme_sq_root=PATH (the rawpic folder, holding "
            "s15, s16, ...) or MERLIN_CASME_SQ_ROOT"
        )
    root = Path(root)
    _check_root(root)
    report = ReadReport(DATASET, strict=strict)
    if annotation is None:
        path = find_label_file(root, ANNOTATION_PATTERNS, "CAS(ME)^2", "videos.casme_sq_annotation")
        report.note(f"CAS(ME)^2 label file found: {path}")
    else:
        path = Path(annotation)
    if not path.is_file():
        raise ReaderError(f"CAS(ME)^2 label file does not exist: {path} (videos.casme_sq_annotation)")
    sheets = spreadsheet_rows(path)
    sheet, rows = sheets[0]
    _check_layout(path, sheet, rows)
    naming = _naming_sheets(sheets, report, path)
    if naming is None:
        report.note(f"{path.name}: no naming sheets (a .csv export?): video folders from column 11")

    # Pass 1: each row to its video folder; every row that cannot be placed is dropped here.
    placed: dict[str, list[tuple[int, tuple]]] = {}
    folders: dict[str, Path] = {}
    null_units: list[int] = []
    for number, cells in enumerate(rows, start=1):
        if all(is_blank(c) for c in cells):
            continue
        source = f"{path.name} row {number}"
        kind = _text(_cell(cells, 7)).casefold()
        if kind not in TYPES:
            raise ReaderError(
                f"{source}: unknown type {_text(_cell(cells, 7))!r} (expected {', '.join(TYPES)})"
            )
        emotion = _text(_cell(cells, 6))
        if emotion not in OBJECTIVE:
            raise ReaderError(
                f"{source}: unknown objective emotion {emotion!r} (CAS(ME)^2 uses {', '.join(OBJECTIVE)})"
            )
        expression = _text(_cell(cells, 1))
        folder_cell = _text(_cell(cells, 10))
        item_id = f"{DATASET}/?/{expression or '?'}"
        try:
            subject_number = whole_number(_cell(cells, 0))
        except ValueError:
            report.drop(item_id, f"subject number {_text(_cell(cells, 0))!r} is not a number", source)
            continue
        if not expression:
            report.drop(item_id, "expression name (column 2) is blank", source)
            continue
        if naming is not None:
            subjects, video_codes = naming
            subject = subjects.get(subject_number)
            video_name = expression.split("_")[0]  # anger1_1 -> anger1
            code = video_codes.get(video_name)
            if subject is None or code is None:
                missing = (
                    f"subject number {subject_number}" if subject is None else f"video name {video_name!r}"
                )
                report.drop(item_id, f"{missing} is not in the naming sheets of {path.name}", source)
                continue
        else:
            match = re.fullmatch(r"(s\d+)[/\\](\d+)_(\d{4})\S*", folder_cell)
            if match is None:
                raise ReaderError(
                    f"{source}: {path.name} has no naming sheets (subject numbers, video codes) and column "
                    f"11 names no video folder ({folder_cell!r}, expected s15/15_0401girlcrashing); give the "
                    ".xlsx with its three sheets"
                )
            subject, code = match[1], match[3]
        digits = subject[1:]
        folder, why = _video_folder(root / subject, f"{digits}_{code}")
        video_id = f"{DATASET}/{subject}/{digits}_{code}"
        item_id = f"{video_id}/{expression}"
        if folder is None:
            report.drop(item_id, why, source)
            continue
        if folder_cell and folder_cell.replace("\\", "/") != f"{subject}/{folder.name}":
            report.note(
                f"{source}: column 11 says {folder_cell!r}, the naming sheets {subject}/{folder.name}"
            )
        if _text(_cell(cells, 5)).casefold() == "null":
            null_units.append(number)
        folders[video_id] = folder
        placed.setdefault(video_id, []).append((number, cells))
    if null_units:
        report.note(f"{path.name}: AU cell NULL (no AU coded) on row(s) {', '.join(map(str, null_units))}")

    for subject_dir in sorted(root.iterdir(), key=lambda p: natural_key(p.name)):
        if not (subject_dir.is_dir() and SUBJECT_DIR.fullmatch(subject_dir.name)):
            continue
        for folder in subject_dir.iterdir():
            match = VIDEO_DIR.fullmatch(folder.name)
            if folder.is_dir() and match:
                folders.setdefault(f"{DATASET}/{subject_dir.name}/{match[1]}_{match[2]}", folder)

    # Pass 2: the videos, and each placed row as an interval of its video.
    videos: list[LongVideo] = []
    for video_id in sorted(folders, key=natural_key):
        folder, annotated = folders[video_id], placed.get(video_id, [])
        try:
            frames = frame_folder(folder)
        except ReaderError as err:  # an empty folder, two files for one frame: this video only
            for number, _ in annotated:
                expression = _text(_cell(rows[number - 1], 1))
                report.drop(f"{video_id}/{expression}", str(err), f"{path.name} row {number}")
            if not annotated:
                report.drop(video_id, str(err), str(folder))
            continue
        note_gaps(report, video_id, frames)
        intervals, self_reported, expressions = [], {}, {}
        for number, cells in annotated:
            source = f"{path.name} row {number}"
            item_id = f"{video_id}/{_text(_cell(cells, 1))}"
            interval = _interval(report, item_id, source, cells, frames.frame_numbers)
            if interval is None:
                continue
            intervals.append(interval)
            expressions[source] = _text(_cell(cells, 1))
            self_reported[source] = _self_report(report, item_id, source, _cell(cells, 8))
        if not annotated:
            report.note(f"{video_id}: no annotation row in {path.name}: read with no intervals")
        subject = "/".join(video_id.split("/")[:2])
        extra = {
            "annotation": str(path),
            "video_name": folder.name,
            "expression": expressions,
            "self_reported": self_reported,
        }
        ordered = tuple(sorted(intervals, key=lambda i: (i.onset, i.offset)))
        video = LongVideo(video_id, DATASET, subject, frames, fps, ordered, str(folder), extra)
        validate_long_video(video)
        videos.append(video)
    check_unique_video_ids(videos)
    n_micro = sum(len(v.intervals_of(MICRO)) for v in videos)
    n_macro = sum(len(v.intervals_of(MACRO)) for v in videos)
    report.note(
        f"CAS(ME)^2: {len(videos)} videos from {len({v.subject for v in videos})} subjects, "
        f"{n_micro} micro + {n_macro} macro intervals; {path.name}"
    )
    return LongVideoRead(videos, report)


def _interval(
    report: ReadReport, item_id: str, source: str, cells: tuple, numbers: tuple[int, ...]
) -> Interval | None:
    """One row's interval: frame cells (offset 0 = missing, estimated; apex 0 = not annotated), AUs, kind."""
    try:
        onset = bound_cell(_cell(cells, 2), "onset")
        apex = frame_cell(_cell(cells, 3))
        offset = bound_cell(_cell(cells, 4), "offset")
    except ValueError as err:
        report.drop(item_id, f"unparseable frame numbers ({err})", source)
        return None
    if not onset:  # frames count from 1: 0 or blank is no onset
        report.drop(item_id, f"onset not annotated ({_text(_cell(cells, 2)) or 'blank'})", source)
        return None
    if not apex:
        apex = None
        report.repair(
            item_id, f"apex not annotated ({_text(_cell(cells, 3)) or 'blank'}): kept as None", source
        )
    if not offset:
        if apex is None:
            report.drop(item_id, "offset 0 (missing) and no apex to estimate it from", source)
            return None
        estimate = min(apex + (apex - onset), numbers[-1])
        clamped = ", clamped to the last frame" if estimate == numbers[-1] else ""
        reason = (
            f"offset 0 (missing): set to apex + (apex - onset) = {estimate} (decay as long as rise{clamped})"
        )
        report.repair(item_id, reason, source)
        offset = estimate
    else:
        duration = _text(_cell(cells, 9))
        if re.fullmatch(r"-?\d+(\.0*)?", duration) and int(float(duration)) != offset - onset:
            report.note(f"{source}: offset - onset cell {duration} disagrees with {onset}..{offset}")
    units = parse_units(report, item_id, _cell(cells, 5), source)
    kind = TYPES[_text(_cell(cells, 7)).casefold()]
    emotion = _text(_cell(cells, 6))
    return fit_interval(report, item_id, source, onset, apex, offset, kind, numbers, emotion, units)


def _self_report(report: ReadReport, item_id: str, source: str, value: object) -> str | None:
    word = _text(value) or None
    if word in TYPOS:
        report.repair(item_id, f"self-reported emotion {word!r} repaired to {TYPOS[word]!r} (a typo)", source)
        return TYPOS[word]
    if word is not None and word not in SELF_REPORTED:
        report.note(f"{source}: self-reported emotion {word!r} kept as written (not in the known words)")
    return word
