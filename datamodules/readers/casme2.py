"""CASME II reader (specs/datasets.md section 1).

On disk: `root/subNN/<Filename>/<frames>` where root is the `Cropped` folder (`reg_img46.jpg`),
`CASME2_RAW_selected` or `CASME2_RAW` (`img46.jpg`); frame numbers are the annotation's numbering. The label
file is `CASME2-coding-20140508.xlsx` (2014-era labels, the ones the MEGC2019 composite uses) or
`CASME2-coding-20190701.xlsx` (sheet `Sheet1`), or a CSV export of that sheet. Columns are found by their
header names; the two blank-header columns are ignored.

Quirks handled (lenient default; `strict=True` raises at the first one, naming file and row):
- ApexFrame `/`: kept with apex None (recorded as a repair); the feature spec's apex fallback stands in.
- Annotations that disagree with the frames on disk: `base.fit_to_frames` clamps or re-maps (recorded).
- AU cells `4+L10`, `R12`, `?`, a bare int: parsed with laterality kept; unparseable cells repaired to ().
- A clip folder that is missing, empty, or with two files for one frame number: dropped with the reason.
  Odd folder names (`EP01_2`, `EP06_02_01`, `EP09f`) are used as written, else matched ignoring case.
- A frame-number cell that is not a number, a Subject cell that is not one, a second row for the same clip:
  dropped. An emotion outside the CASME II vocabulary raises in either mode (it would be mis-mapped).
The version of the labels (2014 or 2019) is noted as "CASME II labels: 2014 (...)" (the composite reads it).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from datamodules.readers.base import (
    AnnotatedRow,
    ReaderError,
    ReadReport,
    ReadResult,
    find_label_file,
    frame_folder,
    is_blank,
    sample_from_row,
)

EMOTIONS = ("happiness", "surprise", "disgust", "repression", "others", "sadness", "fear")
COLUMNS = (
    "Subject",
    "Filename",
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    "Action Units",
    "Estimated Emotion",
)
# Rows of the 2014-era file that the 2019 file removed: how the version is told from the content.
ROWS_ONLY_IN_2014 = {("sub09", "EP02_02f"), ("sub24", "EP02_07")}


def read_table(path: Path) -> pd.DataFrame:
    """The annotation sheet as strings/objects, with only the named columns (blank headers dropped)."""
    if not path.is_file():
        raise ReaderError(f"CASME II label file does not exist: {path}")
    try:
        if path.suffix.lower() == ".csv":
            # utf-8-sig: spreadsheet CSV exports often start with a BOM that would glue onto "Subject";
            # blank lines kept so that row numbers in messages stay the spreadsheet's.
            table = pd.read_csv(path, dtype=object, encoding="utf-8-sig", skip_blank_lines=False)
        else:
            sheets = pd.ExcelFile(path).sheet_names
            if "Sheet1" not in sheets:
                raise ReaderError(f"{path}: no sheet 'Sheet1' (sheets present: {', '.join(sheets)})")
            table = pd.read_excel(path, sheet_name="Sheet1", dtype=object)
    except ReaderError:
        raise
    except Exception as err:  # a corrupt or foreign file: say which
        raise ReaderError(f"{path}: cannot read as a CASME II label file ({err})") from err
    headers = [str(c).strip() for c in table.columns]
    # Matched ignoring case and spacing ("Action  Units", "estimated emotion"): hand-edited copies differ so.
    by_key: dict[str, int] = {}
    for position, header in enumerate(headers):
        if header and not header.startswith("Unnamed"):
            by_key.setdefault(_key(header), position)
    missing = [c for c in COLUMNS if _key(c) not in by_key]
    if missing:
        found = [h for h in headers if h and not h.startswith("Unnamed")]
        raise ReaderError(
            f"{path}: missing column(s) {', '.join(missing)} (headers found: {', '.join(found) or 'none'})"
        )
    out = table.iloc[:, [by_key[_key(c)] for c in COLUMNS]]
    out.columns = list(COLUMNS)
    return out


def _key(header: str) -> str:
    return re.sub(r"\s+", "", header).lower()


def _subject(value: object) -> str:
    text = str(value).strip()
    match = re.fullmatch(r"(?:sub)?0*(\d+)(?:\.0)?", text, flags=re.IGNORECASE)
    if not match:
        raise ValueError(f"not a CASME II subject: {value!r}")
    return f"sub{int(match[1]):02d}"


def detect_version(path: Path, table: pd.DataFrame, version: str) -> tuple[str, str]:
    """('2014' | '2019', how it was decided)."""
    if version in ("2014", "2019"):
        return version, "forced by data.casme2_version"
    if version != "auto":
        raise ReaderError(f"unknown CASME II label version {version!r}; choose auto, 2014 or 2019")
    if "20140508" in path.name:
        return "2014", f"from the file name {path.name}"
    if "20190701" in path.name:
        return "2019", f"from the file name {path.name}"
    rows = set()
    for subject, clip in zip(table["Subject"], table["Filename"], strict=True):
        try:
            rows.add((_subject(subject), str(clip).strip()))
        except ValueError:
            continue
    if rows & ROWS_ONLY_IN_2014:
        return "2014", "from the content (rows sub09/EP02_02f, sub24/EP02_07 present)"
    return "2019", "from the content (rows sub09/EP02_02f, sub24/EP02_07 absent)"


def _child(folder: Path, name: str) -> Path | None:
    """`folder / name` as written, else the one sub-folder whose name matches ignoring case (copies made on
    case-insensitive file systems, `ep01_2`, `Sub01`), else None."""
    exact = folder / name
    if exact.is_dir():
        return exact
    if folder.is_dir():
        for child in sorted(folder.iterdir()):
            if child.is_dir() and child.name.lower() == name.lower():
                return child
    return None


def read_casme2(
    root: str | Path | None = None,
    annotation: str | Path | None = None,
    version: str = "auto",
    strict: bool = False,
    fps: float = 200.0,
) -> ReadResult:
    """Samples of CASME II (`casme2/subNN/<Filename>`), with every repair and drop in the report."""
    if root is None:
        raise ReaderError(
            "CASME II: no frame folder given; set data.casme2_root=PATH (the folder holding sub01..sub26, "
            "e.g. Cropped) or the environment variable MERLIN_CASME2_ROOT"
        )
    root = Path(root)
    if not root.is_dir() or not any(
        p.is_dir() and re.fullmatch(r"sub\d+", p.name, re.I) for p in root.iterdir()
    ):
        raise ReaderError(
            f"CASME II frame folder {root} does not exist or holds no sub01..sub26 folders "
            "(give the Cropped, CASME2_RAW_selected or CASME2_RAW folder)"
        )
    path = (
        Path(annotation)
        if annotation is not None
        else find_label_file(
            root, ("CASME2-coding-*.xls*", "CASME2-coding-*.csv"), "CASME II", "data.casme2_annotation"
        )
    )
    table = read_table(path)
    report = ReadReport("casme2", strict=strict)
    label_version, how = detect_version(path, table, str(version))
    report.note(f"CASME II labels: {label_version} ({how})")

    samples = []
    first_row: dict[str, str] = {}
    for i, cells in enumerate(table.itertuples(index=False)):
        source = f"{path.name} row {i + 2}"  # the header is row 1
        subject_cell, clip_cell, onset_cell, apex_cell, offset_cell, au_cell, emotion_cell = cells
        if all(is_blank(v) for v in cells):  # trailing empty rows of a spreadsheet
            continue
        emotion = "" if is_blank(emotion_cell) else str(emotion_cell).strip()
        if emotion not in EMOTIONS:  # a label we would silently mis-map: an error in either mode
            raise ReaderError(f"{source}: unknown emotion {emotion!r} (CASME II uses {', '.join(EMOTIONS)})")
        clip = "" if is_blank(clip_cell) else str(clip_cell).strip()
        try:
            subject = _subject(subject_cell)
        except ValueError as err:
            report.drop(f"casme2/?/{clip}", str(err), source)
            continue
        sample_id = f"casme2/{subject}/{clip}"
        if not clip:
            report.drop(sample_id, "Filename cell is blank", source)
            continue
        if sample_id in first_row:  # two rows for one clip would give two samples with one id
            report.drop(sample_id, f"the same clip again (first at {first_row[sample_id]})", source)
            continue
        first_row[sample_id] = source
        subject_dir = _child(root, subject)
        folder = (_child(subject_dir, clip) if subject_dir is not None else None) or root / subject / clip
        if folder.is_dir():
            try:
                frame_folder(folder)
            except ReaderError as err:  # an empty folder, two files with one frame number: this clip only
                report.drop(sample_id, str(err), source)
                continue
        row = AnnotatedRow(
            sample_id=sample_id,
            dataset="casme2",
            subject=f"casme2/{subject}",
            clip=clip,
            onset_cell=onset_cell,
            apex_cell=apex_cell,
            offset_cell=offset_cell,
            au_cell=au_cell,
            emotion=emotion,
            fps=fps,
            source=source,
        )
        # base.sample_from_row: apex `/` -> None (repaired), AUs parsed, fit_to_frames, validate_sample.
        sample = sample_from_row(report, row, folder, missing_apex=("/",))
        if sample is not None:
            samples.append(sample)
    return ReadResult(samples, report)
