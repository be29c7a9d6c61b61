"""SMIC-E reader (specs/datasets.md section 3): SMIC's long clips (HS, VIS or NIR), one micro-expression each.

Expected on disk, root being the `SMIC-E_raw image` folder:
    root/HS_long/SMIC-HS-E/s01/s1_ne_01/image308866.jpg        and root/HS_long/SMIC-HS-E_annotation.xlsx
    root/VIS_long/SMIC-VIS-E/VIS/s01/s1_ne_01/<name> 123.jpg   and root/VIS_long/SMIC-VIS-E_annotation.xlsx
    root/NIR_long/SMIC-NIR-E/NIR/...                           and root/NIR_long/SMIC-NIR-E_annotation.xlsx
(`SMIC-<M>-E/<M>/` and `SMIC-<M>-E/` are both looked in, for every subset; a root that itself holds the
subject folders is read as they are). Subject folders are zero-padded (`s01`) while clip names are not
(`s1_ne_01`); frame files are `image<N>` (HS) or contain a space (`... 123.jpg`, VIS/NIR), numbered by their
trailing number, the absolute index in the recording. The label file `SMIC-<M>-E_annotation*.xlsx` (or a
.csv export; `_orig`/`_2019` variants exist: choose one with `annotation`) has a header row with Subject
(int), Filename, OnsetF, OffsetF, Emotion (negative, positive, surprise) and FirstF, the index of the clip's
first frame; free-text rows follow the data.

Videos: `smic_e_hs/s01/s1_ne_01` (subject `smic_e_hs/s01`; datasets smic_e_hs, smic_e_vis, smic_e_nir), one
per annotated clip, frames as on disk (HS 100 fps, VIS/NIR 25 fps), holding one micro Interval: no apex
(SMIC-E annotates none), no AUs, the Emotion word, source `<file> row <n>`.

Onset and offset: OnsetF - FirstF frames after the clip's first frame, as the spec reads them. When the first
frame file is FirstF itself (the usual case) that is OnsetF..OffsetF in the files' own numbers, unchanged.
When the files start elsewhere the numbering of files and sheet differ: OnsetF..OffsetF are kept where they
lie inside the files' numbers (frames missing at the start), else counted from the first file; either way
it is a repair naming the row.

Quirks (lenient default: repaired or dropped with file and row; `strict=True` raises at the first one): the
FirstF disagreement above; a row whose Filename is not `s<N>_<ne|po|sur>_<NN>` of its Subject and Emotion,
that repeats a clip (each long clip holds one micro-expression), whose frame cells do not parse or whose clip
folder is missing or empty, is dropped; a clip folder without any annotation row is dropped (its
micro-expression would count as false alarms). The free-text rows after the data are noted, not read. An
unknown Emotion word, a missing root, label file or column always raise.
"""

from __future__ import annotations

import re
from pathlib import Path

from datamodules.long_videos import (
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
    frame_folder,
    is_blank,
    spreadsheet_rows,
    whole_number,
)
from datamodules.readers.long_base import fit_interval, note_gaps

SUBSETS = {"HS": ("smic_e_hs", 100.0), "VIS": ("smic_e_vis", 25.0), "NIR": ("smic_e_nir", 25.0)}
LABELS = {"negative": "ne", "positive": "po", "surprise": "sur"}
COLUMNS = ("Subject", "Filename", "OnsetF", "OffsetF", "Emotion", "FirstF")
CLIP = re.compile(r"s(\d+)_(ne|po|sur)_(\d+)")
HEADER_SEARCH_ROWS = 10  # a title row above the header is tolerated; the data never starts later


def _key(header: object) -> str:
    return "".join(str(header).split()).casefold() if header is not None else ""


def _text(value: object) -> str:
    return "" if is_blank(value) else str(value).strip()


def _subject_dirs(base: Path) -> dict[int, Path]:
    return {int(p.name[1:]): p for p in base.iterdir() if p.is_dir() and re.fullmatch(r"s\d+", p.name)}


def find_base(root: Path, subset: str) -> Path:
    """The folder holding subset's subject folders s01, s02, ...; raises naming the places looked in."""
    if not root.is_dir():
        raise ReaderError(
            f"SMIC-E frame folder {root} does not exist (videos.smic_e_root must be the `SMIC-E_raw image` "
            "folder, holding HS_long/, VIS_long/, NIR_long/)"
        )
    long = root / f"{subset}_long" / f"SMIC-{subset}-E"
    places = [long / subset, long, root]
    for place in places:
        if place.is_dir() and _subject_dirs(place):
            return place
    raise ReaderError(
        f"SMIC-E {subset}: no subject folders s01, s02, ... in any of {', '.join(map(str, places))} "
        "(videos.smic_e_root must be the `SMIC-E_raw image` folder)"
    )


def read_table(path: Path) -> tuple[str | None, int, dict[str, int], list[tuple]]:
    """(sheet, header row, {column: index}, all rows) of the first sheet whose header has every column."""
    if not path.is_file():
        raise ReaderError(f"SMIC-E label file does not exist: {path} (videos.smic_e_annotation)")
    sheets = spreadsheet_rows(path)
    wanted = {_key(c): c for c in COLUMNS}
    best: tuple[str | None, int, list[str]] | None = None
    for sheet, rows in sheets:
        for i, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
            columns: dict[str, int] = {}
            for j, cell in enumerate(row):
                if _key(cell) in wanted:
                    columns.setdefault(wanted[_key(cell)], j)
            if len(columns) == len(COLUMNS):
                return sheet, i + 1, columns, rows
            if "Subject" in columns and (best is None or len(columns) > len(best[2])):
                best = (sheet, i + 1, [_text(c) for c in row if not is_blank(c)])
    names = ", ".join(repr(s) for s, _ in sheets if s is not None) or "(csv)"
    if best is None:
        raise ReaderError(
            f"{path}: no header row with {', '.join(COLUMNS)} in the first {HEADER_SEARCH_ROWS} rows of any "
            f"sheet (sheets: {names}); is this an SMIC-<HS|VIS|NIR>-E_annotation file?"
        )
    sheet, number, found = best
    missing = [c for c in COLUMNS if _key(c) not in {_key(f) for f in found}]
    where = f"sheet {sheet!r} row {number}" if sheet is not None else f"row {number}"
    raise ReaderError(f"{path}: missing column(s) {', '.join(missing)} ({where} has: {', '.join(found)})")


def read_smic_e(
    root: str | Path | None = None,
    subset: str = "HS",
    annotation: str | Path | None = None,
    strict: bool = False,
) -> LongVideoRead:
    """The long clips of one SMIC-E subset (`smic_e_hs/s01/s1_ne_01`), with every repair and drop reported.

    `root` is the `SMIC-E_raw image` folder; `subset` HS, VIS or NIR (case-insensitive, as `read_smic`);
    `annotation` the label file (None: `SMIC-<subset>-E_annotation*` next to the frames, or one or two
    folders up).
    """
    key = str(subset).upper()
    if key not in SUBSETS:
        raise ValueError(f"unknown SMIC-E subset {subset!r}; choose from {', '.join(SUBSETS)}")
    if root is None:
        raise ReaderError(
            "SMIC-E: no frame folder given; set videos.smic_e_root=PATH (the `SMIC-E_raw image` folder, "
            "holding HS_long/, VIS_long/, NIR_long/) or MERLIN_SMIC_E_ROOT"
        )
    base = find_base(Path(root), key)
    dataset, fps = SUBSETS[key]
    report = ReadReport(dataset, strict=strict)
    if annotation is None:
        patterns = (f"SMIC-{key}-E_annotation*.xlsx", f"SMIC-{key}-E_annotation*.csv")
        path = find_label_file(base, patterns, f"SMIC-E {key}", "videos.smic_e_annotation")
        report.note(f"SMIC-E label file found: {path}")
    else:
        path = Path(annotation)
    sheet, header_row, columns, rows = read_table(path)

    def cell(cells: tuple, name: str) -> object:
        i = columns[name]
        return cells[i] if i < len(cells) else None

    body = list(enumerate(rows[header_row:], start=header_row + 1))
    is_data = [bool(CLIP.fullmatch(_text(cell(cells, "Filename")))) for _, cells in body]
    end = max((i for i, flag in enumerate(is_data) if flag), default=-1) + 1
    trailing = [(n, c) for n, c in body[end:] if not all(is_blank(v) for v in c)]
    if trailing:  # notes the owners typed below the table (MEAN cuts the HS sheet at row 157 for them)
        first = next(_text(v) for v in trailing[0][1] if not is_blank(v))
        report.note(
            f"{path.name}: {len(trailing)} free-text row(s) after the data, rows {trailing[0][0]}.."
            f"{trailing[-1][0]}, not read (first: {first[:60]!r})"
        )

    subjects = _subject_dirs(base)
    videos: list[LongVideo] = []
    first_row: dict[str, int] = {}
    mentioned: set[str] = set()  # clip names of every data row, kept or dropped
    for number, cells in body[:end]:
        if all(is_blank(c) for c in cells):
            continue
        source = f"{path.name} row {number}"
        emotion = _text(cell(cells, "Emotion"))
        if emotion not in LABELS:
            raise ReaderError(f"{source}: unknown Emotion {emotion!r} (SMIC-E uses {', '.join(LABELS)})")
        clip = _text(cell(cells, "Filename"))
        try:
            subject_number = whole_number(cell(cells, "Subject"))
        except ValueError:
            subject_number = None
        subject = f"s{subject_number:02d}" if subject_number is not None else "?"
        video_id = f"{dataset}/{subject}/{clip or '?'}"
        match = CLIP.fullmatch(clip)
        mentioned.add(clip)
        if subject_number is None or match is None:
            shown = (_text(cell(cells, "Subject")), clip)
            report.drop(video_id, f"no usable Subject/Filename {shown} (expected 1 and s1_ne_01)", source)
            continue
        if int(match[1]) != subject_number or match[2] != LABELS[emotion]:
            expected = f"s{subject_number}_{LABELS[emotion]}_NN"
            reason = (
                f"Filename {clip!r} disagrees with Subject {subject_number} / Emotion {emotion} ({expected})"
            )
            report.drop(video_id, reason, source)
            continue
        if clip in first_row:
            reason = f"repeats {path.name} row {first_row[clip]} (each long clip holds one micro-expression)"
            report.drop(video_id, reason, source)
            continue
        first_row[clip] = number
        try:
            onset_cell, offset_cell, first_cell = (
                bound_cell(cell(cells, name), name) for name in ("OnsetF", "OffsetF", "FirstF")
            )
            if onset_cell is None or offset_cell is None or first_cell is None:
                raise ValueError("OnsetF, OffsetF or FirstF blank")
        except ValueError as err:
            report.drop(video_id, f"unparseable frame numbers ({err})", source)
            continue
        subject_dir = subjects.get(subject_number)
        folder = (subject_dir if subject_dir is not None else base / subject) / clip
        try:
            frames = frame_folder(folder)
        except ReaderError as err:  # no folder, an empty one, two files for one frame: this clip only
            report.drop(video_id, str(err), source)
            continue
        numbers = frames.frame_numbers
        onset, offset = onset_cell, offset_cell
        if first_cell != numbers[0]:
            seen = f"FirstF {first_cell} but the frame files start at {numbers[0]}"
            if numbers[0] <= onset_cell and offset_cell <= numbers[-1]:
                reason = (
                    f"{seen}: OnsetF..OffsetF {onset_cell}..{offset_cell} lie in the files' numbers, kept"
                )
            else:
                onset, offset = (numbers[0] + c - first_cell for c in (onset_cell, offset_cell))
                reason = (
                    f"{seen}: onset/offset counted from the first file, OnsetF - FirstF = "
                    f"{onset_cell - first_cell} frames in ({onset}..{offset})"
                )
            report.repair(video_id, reason, source)
        interval = fit_interval(report, video_id, source, onset, None, offset, MICRO, numbers, emotion)
        if interval is None:
            continue
        note_gaps(report, video_id, frames)
        extra = {"annotation": str(path), "first_frame_annotated": first_cell}
        video = LongVideo(
            video_id, dataset, f"{dataset}/{subject}", frames, fps, (interval,), str(folder), extra
        )
        validate_long_video(video)
        videos.append(video)

    for number, subject_dir in sorted(subjects.items()):
        for folder in sorted(subject_dir.iterdir(), key=lambda p: natural_key(p.name)):
            video_id = f"{dataset}/s{number:02d}/{folder.name}"
            if folder.is_dir() and CLIP.fullmatch(folder.name) and folder.name not in mentioned:
                reason = f"no row in {path.name}: its micro-expression would be scored as false alarms"
                report.drop(video_id, reason, str(folder))
    videos.sort(key=lambda v: natural_key(v.video_id))
    check_unique_video_ids(videos)
    where = f", sheet {sheet!r}" if sheet else ""
    per_label = {w: sum(v.intervals[0].emotion == w for v in videos) for w in LABELS}
    report.note(
        f"SMIC-E {key}: {len(videos)} long clips from {len({v.subject for v in videos})} subjects "
        f"({', '.join(f'{w} {n}' for w, n in per_label.items())}); no apex annotated; {path.name}{where}, "
        f"header on row {header_row}"
    )
    return LongVideoRead(videos, report)
