"""SAMM Long Videos reader (specs/datasets.md section 2): the trimmed long videos, never the micro clips.

Expected on disk:
- frames: `root/<subject>_<inducement>/<subject>_<inducement>_<4-digit frame>.jpg`, e.g.
  `SAMM_longvideos/009_4/009_4_0007.jpg` (a cropped copy, `SAMM_longvideos_crop/`, has the same layout).
  The number in a frame's file name is the annotation's frame numbering, counted from 1 within each trimmed
  video. It is NOT the numbering of the SAMM micro clips (`006/006_1_2/006_05562.jpg`, counted in the
  untrimmed recording): for the same Filename the two differ by 100..9000 frames in most videos, so this
  reader refuses the micro-clip tree and label file, as `samm.py` refuses these.
- labels: `SAMM_LongVideos_V2_Release.xlsx` (any `SAMM_LongVideos*.xlsx`, or a .csv export of it): a text
  preamble (9 rows in V2, among them "Subjects with Apex Frame not annotated were labelled as -1"), the header
  row, found by its first cell `Subject`, then one row per expression. Columns by their header:
  `Subject | Filename | Inducement Code | Onset | Apex | Offset | Duration | Type | Action Units | Notes`;
  Subject is zero-padded (`006`), Type is `Macro` or `Micro - 1/2`, and there is no emotion column.

Videos: one per frame folder, `samm_long/006_1` (subject `samm_long/006`), frames as on disk, 200 fps. Each
annotation row becomes an Interval of the video its Filename names (`006_1_2` -> video `006_1`), with kind
micro/macro from Type, apex None where it is -1, emotion None, AUs parsed (`base.parse_action_units`) and
source `SAMM_LongVideos_V2_Release.xlsx row 11`. A folder without any annotation row is kept with no
intervals (a recording in which nothing was coded is a fair test of false alarms), with a note.

Quirks (lenient default: repaired or dropped with file and row; `strict=True` raises at the first one): an
apex of -1 or blank is kept as None; an apex outside onset..offset becomes None; an interval reaching past the
video's frames is clamped to them, one wholly outside them is dropped; a row whose Filename does not name a
`<subject>_<inducement>_<n>` of its Subject, repeats an earlier row, or has unparseable frame numbers is
dropped, as are all rows of a video whose folder is missing or empty; an unparseable AU cell is left empty. A
missing root, label file or column, an unknown Type, and the SAMM micro-clip file or tree always raise.
"""

from __future__ import annotations

import re
from pathlib import Path

from datamodules.long_videos import (
    MACRO,
    MICRO,
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
)
from datamodules.readers.long_base import fit_interval, note_gaps, parse_units

DATASET = "samm_long"
FPS = 200.0
HEADER = (
    "Subject",
    "Filename",
    "Inducement Code",
    "Onset",
    "Apex",
    "Offset",
    "Duration",
    "Type",
    "Action Units",
    "Notes",
)
REQUIRED = ("Subject", "Filename", "Onset", "Apex", "Offset", "Type", "Action Units")
ANNOTATION_PATTERNS = ("SAMM_LongVideos*.xlsx", "SAMM_LongVideos*.xlsm", "SAMM_LongVideos*.csv")
VIDEO = re.compile(r"(\d{3})_(\d+)")  # a video folder: <subject>_<inducement>
FILENAME = re.compile(r"(\d{3})_(\d+)_(\d+)")  # an expression: <subject>_<inducement>_<index>


def _key(header: object) -> str:
    # Re-saved copies differ in case and spacing ("Action  units"); the column's content is what matters.
    return " ".join(str(header).split()).casefold() if header is not None else ""


def _text(value: object) -> str:
    return "" if is_blank(value) else str(value).strip()


def read_table(path: Path) -> tuple[str | None, int, dict[str, int], list[tuple[int, tuple]]]:
    """(sheet, header row, {column: index}, [(row number, cells)] below the header) of the label file."""
    if not path.is_file():
        raise ReaderError(f"SAMM Long Videos label file does not exist: {path} (videos.samm_long_annotation)")
    sheets = spreadsheet_rows(path)
    found = (
        (name, rows, i) for name, rows in sheets for i, r in enumerate(rows) if r and _text(r[0]) == "Subject"
    )
    sheet, rows, header = next(found, (None, [], None))
    if header is None:
        names = ", ".join(repr(s) for s, _ in sheets if s is not None)
        raise ReaderError(
            f"{path}: no header row starting with 'Subject'"
            + (f" on any sheet (sheets present: {names})" if names else "")
            + f"; expected a preamble, then {' | '.join(HEADER)}"
        )
    cells = [_text(c) for c in rows[header]]
    wanted = {_key(c): c for c in HEADER}
    columns: dict[str, int] = {}
    for i, cell in enumerate(cells):
        if _key(cell) in wanted:
            columns.setdefault(wanted[_key(cell)], i)
    at = f"header row {header + 1}" + (f" of sheet {sheet!r}" if sheet else "")
    keys = {_key(c) for c in cells}
    if "onset frame" in keys or ("micro" in keys and "type" not in keys):
        raise ReaderError(
            f"{path} is the SAMM micro-clip annotation ({at} has Onset Frame/Micro, not Onset/Type): "
            "its frame numbers count in the untrimmed recordings and differ from the long videos' for most "
            "clips, so the two must never be mixed. Give SAMM_LongVideos_V2_Release.xlsx "
            "(videos.samm_long_annotation)."
        )
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ReaderError(
            f"{path}: missing column(s) {', '.join(missing)} ({at} has: {', '.join(c for c in cells if c)})"
        )
    data = [(header + 2 + k, tuple(r)) for k, r in enumerate(rows[header + 1 :])]
    return sheet, header + 1, columns, data


def _kind(value: object, source: str) -> str:
    text = _text(value).casefold()
    if text.startswith("micro"):  # `Micro - 1/2`
        return MICRO
    if text == "macro":
        return MACRO
    raise ReaderError(f"{source}: unknown Type {_text(value)!r} (SAMM Long Videos uses Macro, Micro - 1/2)")


def _subject(value: object) -> str | None:
    match = re.fullmatch(r"(\d{1,3})(\.0*)?", _text(value))
    return f"{int(match[1]):03d}" if match else None


def _check_root(root: Path) -> dict[str, Path]:
    """{video name: folder} of the video folders in root; raises on a root that cannot be SAMM-LV's."""
    if not root.is_dir():
        raise ReaderError(
            f"SAMM Long Videos frame folder {root} does not exist (videos.samm_long_root must be the folder "
            "holding 006_1, 006_2, ..., e.g. SAMM_longvideos)"
        )
    children = [p for p in root.iterdir() if p.is_dir()]
    videos = {p.name: p for p in children if VIDEO.fullmatch(p.name)}
    if videos:
        return videos
    if any(re.fullmatch(r"\d{3}", p.name) for p in children):
        raise ReaderError(
            f"{root} holds 3-digit subject folders (006, 007, ...): that is the SAMM micro-clip tree, whose "
            "frame numbers count in the untrimmed recordings. Give the long videos' folder (SAMM_longvideos, "
            "holding 006_1, 006_2, ...)."
        )
    hint = next(
        (c for c in sorted(children) if any(VIDEO.fullmatch(g.name) for g in c.iterdir() if g.is_dir())), None
    )
    raise ReaderError(
        f"SAMM Long Videos frame folder {root} holds no video folders <subject>_<inducement> (006_1, ...)"
        + (f"; did you mean {hint}?" if hint else "")
    )


def read_samm_long(
    root: str | Path | None = None,
    annotation: str | Path | None = None,
    strict: bool = False,
    fps: float = FPS,
) -> LongVideoRead:
    """The long videos of SAMM Long Videos (`samm_long/006_1`), with every repair and drop in the report.

    `root` holds the video folders 006_1, 006_2, ...; `annotation` is the label file (None: searched in
    root, its parent and grandparent).
    """
    if root is None:
        raise ReaderError(
            "SAMM Long Videos: no frame folder given; set videos.samm_long_root=PATH (the folder holding "
            "006_1, 006_2, ...) or MERLIN_SAMM_LONG_ROOT"
        )
    root = Path(root)
    folders = _check_root(root)
    report = ReadReport(DATASET, strict=strict)
    if annotation is None:
        path = find_label_file(root, ANNOTATION_PATTERNS, "SAMM Long Videos", "videos.samm_long_annotation")
        report.note(f"SAMM Long Videos label file found: {path}")
    else:
        path = Path(annotation)
    sheet, header_row, columns, rows = read_table(path)

    def cell(cells: tuple, name: str) -> object:
        i = columns.get(name)
        return cells[i] if i is not None and i < len(cells) else None

    rows_of: dict[str, list[tuple[int, tuple, str]]] = {}  # video -> its rows (row number, cells, Filename)
    first_row: dict[str, int] = {}
    for number, cells in rows:
        if all(is_blank(c) for c in cells):
            continue
        source = f"{path.name} row {number}"
        _kind(cell(cells, "Type"), source)  # checked first: an unknown Type is never guessed, in either mode
        filename = _text(cell(cells, "Filename"))
        subject = _subject(cell(cells, "Subject"))
        match = FILENAME.fullmatch(filename)
        video = f"{match[1]}_{match[2]}" if match else "?"
        item_id = f"{DATASET}/{video}/{filename or '?'}"
        if subject is None or match is None:
            report.drop(
                item_id,
                f"no usable Subject/Filename ({_text(cell(cells, 'Subject'))!r}, {filename!r}; "
                "expected 006 and 006_1_2)",
                source,
            )
            continue
        if match[1] != subject:
            report.drop(item_id, f"Filename {filename!r} does not belong to Subject {subject}", source)
            continue
        if filename in first_row:
            report.drop(item_id, f"repeats {path.name} row {first_row[filename]}", source)
            continue
        first_row[filename] = number
        inducement = _text(cell(cells, "Inducement Code"))
        if re.fullmatch(r"\d+(\.0*)?", inducement) and int(float(inducement)) != int(match[2]):
            report.note(
                f"{source}: Inducement Code {inducement} disagrees with Filename {filename} "
                "(the Filename's is used)"
            )
        rows_of.setdefault(video, []).append((number, cells, filename))

    videos: list[LongVideo] = []
    for name in sorted(set(folders) | set(rows_of), key=natural_key):
        video_id, subject = f"{DATASET}/{name}", f"{DATASET}/{name.split('_')[0]}"
        annotated = rows_of.get(name, [])
        folder = folders.get(name, root / name)
        try:
            frames = frame_folder(folder)
        except ReaderError as err:  # no folder, an empty one, two files for one frame: this video only
            for number, _, filename in annotated:
                report.drop(f"{video_id}/{filename}", str(err), f"{path.name} row {number}")
            if not annotated:
                report.drop(video_id, str(err), str(folder))
            continue
        note_gaps(report, video_id, frames)
        intervals = []
        for number, cells, filename in annotated:
            source, item_id = f"{path.name} row {number}", f"{video_id}/{filename}"
            try:
                onset = bound_cell(cell(cells, "Onset"), "onset")
                offset = bound_cell(cell(cells, "Offset"), "offset")
                apex = frame_cell(cell(cells, "Apex"))  # -1: "not annotated", says the preamble
                if onset is None or offset is None:
                    raise ValueError("onset or offset blank")
            except ValueError as err:
                report.drop(item_id, f"unparseable frame numbers ({err})", source)
                continue
            if apex is None:
                shown = _text(cell(cells, "Apex")) or "blank"
                report.repair(item_id, f"apex not annotated ({shown}): kept as None", source)
            duration = _text(cell(cells, "Duration"))
            if re.fullmatch(r"\d+(\.0*)?", duration) and int(float(duration)) != offset - onset + 1:
                report.note(
                    f"{source}: Duration {duration} disagrees with {onset}..{offset} (kept the frames)"
                )
            units = parse_units(report, item_id, cell(cells, "Action Units"), source)
            kind = _kind(cell(cells, "Type"), source)
            interval = fit_interval(
                report, item_id, source, onset, apex, offset, kind, frames.frame_numbers, None, units
            )
            if interval is not None:
                intervals.append(interval)
        if not annotated:
            report.note(f"{video_id}: no annotation row in {path.name}: read with no intervals")
        video = LongVideo(
            video_id,
            DATASET,
            subject,
            frames,
            fps,
            tuple(sorted(intervals, key=lambda i: (i.onset, i.offset))),
            str(folder),
            {"annotation": str(path)},
        )
        validate_long_video(video)
        videos.append(video)
    check_unique_video_ids(videos)
    where = f", sheet {sheet!r}" if sheet else ""
    n_micro = sum(len(v.intervals_of(MICRO)) for v in videos)
    n_macro = sum(len(v.intervals_of(MACRO)) for v in videos)
    report.note(
        f"SAMM Long Videos: {len(videos)} videos from {len({v.subject for v in videos})} subjects, "
        f"{n_micro} micro + {n_macro} macro intervals; {path.name}{where}, header on row {header_row}"
    )
    return LongVideoRead(videos, report)
