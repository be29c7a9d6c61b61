"""CAS(ME)^3 part A reader (specs/datasets.md section 4).

Expected on disk:
- frames `root/spNO.1/a/color/166.jpg`: subject folder `spNO.<n>` (numbers not contiguous), task letter
  `a`..`m`, `color/` frames named by their bare frame number (no padding). The sibling `depth/` is ignored.
- label file `cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx` (or a .csv export of it), searched in the root, its
  parent and grandparent unless given. Columns are found by their header (case and spacing ignored), on the
  first sheet whose first rows hold them: Subject, Filename, Onset, Apex, Offset, AU, emotion (Objective
  class is listed in the real file but not needed). Onset/Apex/Offset are frame numbers of the task video,
  i.e. the names of the `color/` files.

Sample ids: one task video holds several micro-expressions, so the same (Subject, Filename) pair occurs on
several rows; clip ids number them in row order, `a_1`, `a_2`, ..., so `casme3/spNO.1/a_2` is the second
annotated row of task a of spNO.1 (meb appends a counter too). Subjects are `casme3/spNO.1`.
Each sample's `source` is `"<label file name> row <spreadsheet row>"`.

Cells: AU cells separate units with `+`, `,` or the full-width `，` (all read as `+`); the emotion word is
kept as written (happy, disgust, fear, anger, sad, surprise, others) and any other word raises, naming the
file, row and word. Quirks go through the `ReadReport`: an apex outside onset..offset (spNO.149/d in the
real file) or a missing clip folder drops the row (raises in strict mode); annotations reaching past the
frames on disk are fitted by `base.fit_to_frames`.
"""

from __future__ import annotations

from pathlib import Path

from datamodules.readers.base import (
    AnnotatedRow,
    ReaderError,
    ReadReport,
    ReadResult,
    find_label_file,
    is_blank,
    sample_from_row,
    spreadsheet_rows,
)

DATASET = "casme3"
LABEL_FILE = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
EMOTIONS = ("happy", "disgust", "fear", "anger", "sad", "surprise", "others")
COLUMNS = ("Subject", "Filename", "Onset", "Apex", "Offset", "AU", "emotion")
OPTIONAL = ("Objective class",)
HEADER_SEARCH_ROWS = 10  # a title or notes row above the header is tolerated; the data never starts later
NO_ROOT = (
    "CAS(ME)^3: no frame folder given; set data.casme3_root=PATH (the folder holding spNO.* folders) "
    "or MERLIN_CASME3_ROOT"
)


def _key(header: object) -> str:
    # Headers are matched loosely ("Objective  Class", " emotion ") because re-saved copies of the file vary
    # in case and spacing; the content of the column is what matters.
    return " ".join(str(header).split()).casefold() if header is not None else ""


def _table(path: Path) -> tuple[str | None, int, dict[str, int], list[tuple]]:
    """(sheet, header row number, {column: index}, rows): the first sheet whose header has every column."""
    sheets = spreadsheet_rows(path)
    wanted = {_key(c): c for c in COLUMNS + OPTIONAL}
    best: tuple[str | None, int, list[str]] | None = None  # the closest header seen, for the error message
    for name, rows in sheets:
        for i, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
            columns: dict[str, int] = {}
            for j, cell in enumerate(row):
                if _key(cell) in wanted and wanted[_key(cell)] not in columns:
                    columns[wanted[_key(cell)]] = j
            if all(c in columns for c in COLUMNS):
                return name, i + 1, columns, rows
            # Only a row naming Subject and Filename is a damaged CAS(ME)^3 header worth reporting column by
            # column; anything else (part C's `sub, count, au, ...`) is another file or sheet.
            if (
                "Subject" in columns
                and "Filename" in columns
                and (best is None or len(columns) > len(best[2]))
            ):
                best = (name, i + 1, [str(c).strip() for c in row if not is_blank(c)])
    names = ", ".join(repr(s) for s, _ in sheets if s is not None) or "(csv)"
    if best is None:
        raise ReaderError(
            f"{path}: no sheet has a CAS(ME)^3 header ({', '.join(COLUMNS)}) in its first "
            f"{HEADER_SEARCH_ROWS} rows (sheets: {names}); is this the part A label file {LABEL_FILE}?"
        )
    sheet, row_number, found = best
    missing = [c for c in COLUMNS if _key(c) not in {_key(f) for f in found}]
    where = f"sheet {sheet!r} row {row_number}" if sheet is not None else f"row {row_number}"
    raise ReaderError(
        f"{path}: missing column(s) {', '.join(missing)} ({where} has: {', '.join(found)}; sheets: {names})"
    )


def read_casme3(
    root: str | Path | None = None,
    annotation: str | Path | None = None,
    strict: bool = False,
    fps: float = 30.0,
) -> ReadResult:
    """Samples of CAS(ME)^3 part A (`casme3/spNO.1/a_1`, clips numbered per (Subject, Filename) in row
    order), with every repair and drop in the report. `annotation=None` searches the root and its parents
    for the label file. A missing root/label file/column or an unknown emotion word always raises."""
    if root is None:
        raise ReaderError(NO_ROOT)
    root = Path(root)
    if not root.is_dir():
        raise ReaderError(f"CAS(ME)^3 frame folder does not exist: {root} (data.casme3_root)")
    if not any(p.is_dir() and p.name.startswith("spNO.") for p in root.iterdir()):
        raise ReaderError(
            f"CAS(ME)^3 frame folder {root} holds no spNO.* folders; data.casme3_root must be the folder "
            "holding spNO.1, spNO.2, ... (e.g. part_A/ME_A)"
        )
    report = ReadReport(DATASET, strict=strict)
    if annotation is None:
        path = find_label_file(root, ("cas(me)3_part_A*.xls*",), "CAS(ME)^3", "data.casme3_annotation")
        report.note(f"CAS(ME)^3 label file found: {path}")
    else:
        path = Path(annotation)
    if not path.is_file():
        raise ReaderError(f"CAS(ME)^3 label file does not exist: {path} (data.casme3_annotation)")
    sheet, header_row, columns, rows = _table(path)
    report.note(
        f"{path.name}: header on row {header_row}" + (f" of sheet {sheet!r}" if sheet is not None else "")
    )

    def cell(row: tuple, name: str) -> object:
        index = columns[name]
        return row[index] if index < len(row) else None

    samples, seen = [], {}
    for number, row in enumerate(rows[header_row:], start=header_row + 1):
        if all(is_blank(c) for c in row):  # trailing (or separating) empty rows of a spreadsheet
            continue
        source = f"{path.name} row {number}"
        emotion = "" if is_blank(cell(row, "emotion")) else str(cell(row, "emotion")).strip()
        if emotion not in EMOTIONS:
            # An unknown word is a typo or a new release of the file: never guess a class for it.
            raise ReaderError(
                f"{path} row {number}: unknown emotion {emotion!r} (CAS(ME)^3 uses {', '.join(EMOTIONS)})"
            )
        subject_cell, task_cell = cell(row, "Subject"), cell(row, "Filename")
        if is_blank(subject_cell) or is_blank(task_cell):
            report.drop(f"{DATASET}/?", "Subject or Filename cell empty", source)
            continue
        subject, task = str(subject_cell).strip(), str(task_cell).strip()
        seen[(subject, task)] = seen.get((subject, task), 0) + 1
        clip = f"{task}_{seen[(subject, task)]}"
        au_cell = cell(row, "AU")
        au_text = None if is_blank(au_cell) else str(au_cell).replace("，", "+").replace(",", "+")
        annotated = AnnotatedRow(
            f"{DATASET}/{subject}/{clip}",
            DATASET,
            f"{DATASET}/{subject}",
            clip,
            cell(row, "Onset"),
            cell(row, "Apex"),
            cell(row, "Offset"),
            au_text,
            emotion,
            fps,
            source,
        )
        sample = sample_from_row(report, annotated, root / subject / task / "color")
        if sample is not None:
            samples.append(sample)
    if not samples and not report.drops:
        raise ReaderError(f"{path}: no annotation rows below the header (row {header_row})")
    return ReadResult(samples, report)
