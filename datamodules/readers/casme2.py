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
- A clip folder that is missing: dropped with the reason. Odd folder names are used as written.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from datamodules.readers.action_units import parse_action_units
from datamodules.readers.base import ReaderError, ReadReport, ReadResult, fit_to_frames, frame_folder
from datamodules.samples import Sample, validate_sample

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


def find_annotation(root: Path) -> Path:
    places = [root, root.parent, root.parent.parent]
    found = sorted({p for place in places for p in place.glob("CASME2-coding-*.xls*")})
    found += sorted({p for place in places for p in place.glob("CASME2-coding-*.csv")})
    if len(found) == 1:
        return found[0]
    where = ", ".join(str(p) for p in places)
    if not found:
        raise ReaderError(
            f"CASME II: no label file CASME2-coding-*.xlsx in {where}; set data.casme2_annotation=PATH"
        )
    raise ReaderError(
        f"CASME II: several label files ({', '.join(p.name for p in found)}); choose one with "
        "data.casme2_annotation=PATH"
    )


def read_table(path: Path) -> pd.DataFrame:
    """The annotation sheet as strings/objects, with only the named columns (blank headers dropped)."""
    if not path.is_file():
        raise ReaderError(f"CASME II label file does not exist: {path}")
    try:
        if path.suffix.lower() == ".csv":
            table = pd.read_csv(path, dtype=object)
        else:
            sheets = pd.ExcelFile(path).sheet_names
            if "Sheet1" not in sheets:
                raise ReaderError(f"{path}: no sheet 'Sheet1' (sheets present: {', '.join(sheets)})")
            table = pd.read_excel(path, sheet_name="Sheet1", dtype=object)
    except ReaderError:
        raise
    except Exception as err:  # a corrupt or foreign file: say which
        raise ReaderError(f"{path}: cannot read as a CASME II label file ({err})") from err
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        found = [c for c in table.columns if not c.startswith("Unnamed")]
        raise ReaderError(
            f"{path}: missing column(s) {', '.join(missing)} (headers found: {', '.join(found)})"
        )
    return table[list(COLUMNS)]


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def _frame(value: object) -> int | None:
    """A frame-number cell -> int; `/` (apex not annotated) -> None; anything else raises ValueError."""
    if _blank(value) or str(value).strip() == "/":
        return None
    number = float(str(value).strip())
    if number != int(number):
        raise ValueError(f"not a frame number: {value!r}")
    return int(number)


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
        raise ValueError(f"unknown CASME II label version {version!r}; choose auto, 2014 or 2019")
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


def _clip_folder(subject_dir: Path, clip: str) -> Path | None:
    exact = subject_dir / clip
    if exact.is_dir():
        return exact
    if subject_dir.is_dir():
        for child in subject_dir.iterdir():
            if child.is_dir() and child.name.lower() == clip.lower():
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
    if not root.is_dir() or not any(p.is_dir() and p.name.lower().startswith("sub") for p in root.iterdir()):
        raise ReaderError(
            f"CASME II frame folder {root} does not exist or holds no sub01..sub26 folders "
            "(give the Cropped, CASME2_RAW_selected or CASME2_RAW folder)"
        )
    path = Path(annotation) if annotation is not None else find_annotation(root)
    table = read_table(path)
    report = ReadReport("casme2", strict=strict)
    label_version, how = detect_version(path, table, str(version))
    report.note(f"CASME II labels: {label_version} ({how})")

    samples = []
    for i, row in enumerate(table.itertuples(index=False)):
        source = f"{path.name} row {i + 2}"  # the header is row 1
        subject_cell, clip_cell, onset_cell, apex_cell, offset_cell, au_cell, emotion_cell = row
        if all(_blank(v) for v in row):
            continue
        emotion = str(emotion_cell).strip()
        if emotion not in EMOTIONS:
            raise ReaderError(f"{source}: unknown emotion {emotion!r} (CASME II uses {', '.join(EMOTIONS)})")
        try:
            subject = _subject(subject_cell)
        except ValueError as err:
            report.drop(f"casme2/?/{clip_cell}", str(err), source)
            continue
        clip = str(clip_cell).strip()
        sample_id = f"casme2/{subject}/{clip}"
        try:
            onset, apex, offset = _frame(onset_cell), _frame(apex_cell), _frame(offset_cell)
            if onset is None or offset is None:
                raise ValueError("onset or offset frame missing")
        except ValueError as err:
            report.drop(sample_id, f"unparseable frame numbers ({err})", source)
            continue
        if apex is None:
            report.repair(sample_id, f"apex not annotated ({str(apex_cell).strip() or 'blank'!r})", source)
        try:
            action_units = parse_action_units(au_cell)
        except ValueError as err:
            report.repair(sample_id, f"{err}; action units left empty", source)
            action_units = ()
        folder = _clip_folder(root / subject, clip)
        if folder is None:
            report.drop(sample_id, f"clip folder {root / subject / clip} does not exist", source)
            continue
        frames = frame_folder(folder)
        fitted = fit_to_frames(report, sample_id, source, onset, apex, offset, frames.frame_numbers)
        if fitted is None:
            continue
        onset, apex, offset = fitted
        sample = Sample(
            sample_id=sample_id,
            dataset="casme2",
            subject=f"casme2/{subject}",
            clip=clip,
            frames=frames,
            onset=onset,
            apex=apex,
            offset=offset,
            emotion=emotion,
            action_units=action_units,
            fps=fps,
            source=source,
        )
        validate_sample(sample)
        samples.append(sample)
    return ReadResult(samples, report)
