"""SAMM reader (specs/datasets.md section 2): the micro-expression clips, never the long videos.

On disk: `root/<subject 3-digit>/<Filename>/<subject>_<5-digit frame>.jpg` (e.g. `006/006_1_2/006_05562.jpg`);
the frame number in the file name is the annotation's numbering. Label file `SAMM_Micro_FACS_Codes_v2.xlsx`:
a preamble of varying length (13 rows in v2, one row in another release), then the header row, found by
its first cell `Subject`. The 8th column is `Micro`; the vocabulary says `Other` (singular).

Quirks handled (lenient default; `strict=True` raises at the first one, naming file and row): a missing apex
(blank or -1) is kept as None; AU cells with `or`, `/` and intensity letters are parsed (alternatives kept as
`R6|R12`); annotations that disagree with the frames on disk are fitted (`base.fit_to_frames`); a clip
folder that is missing, or a Filename that names another subject, is dropped with the reason.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from datamodules.readers.action_units import parse_action_units
from datamodules.readers.base import ReaderError, ReadReport, ReadResult, fit_to_frames, frame_folder
from datamodules.samples import Sample, validate_sample

EMOTIONS = ("Anger", "Contempt", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other")
COLUMNS = (
    "Subject",
    "Filename",
    "Onset Frame",
    "Apex Frame",
    "Offset Frame",
    "Action Units",
    "Estimated Emotion",
)


def find_annotation(root: Path) -> Path:
    places = [root, root.parent, root.parent.parent]
    found = sorted(
        {
            p
            for place in places
            for pat in ("SAMM*Micro*FACS*.xls*", "SAMM*Micro*FACS*.csv")
            for p in place.glob(pat)
        }
    )
    if len(found) == 1:
        return found[0]
    where = ", ".join(str(p) for p in places)
    if not found:
        raise ReaderError(
            f"SAMM: no label file SAMM_Micro_FACS_Codes*.xlsx in {where}; set data.samm_annotation=PATH"
        )
    raise ReaderError(
        f"SAMM: several label files ({', '.join(p.name for p in found)}); set data.samm_annotation"
    )


def read_table(path: Path) -> tuple[pd.DataFrame, int]:
    """(the data rows under the header, the Excel row number of the header)."""
    if not path.is_file():
        raise ReaderError(f"SAMM label file does not exist: {path}")
    try:
        if path.suffix.lower() == ".csv":
            raw = pd.read_csv(path, header=None, dtype=object)
        else:
            sheets = pd.ExcelFile(path).sheet_names
            raw = pd.read_excel(path, sheet_name=sheets[0], header=None, dtype=object)
    except Exception as err:
        raise ReaderError(f"{path}: cannot read as a SAMM label file ({err})") from err
    first = raw.iloc[:, 0].astype(str).str.strip()
    header_rows = first.index[first == "Subject"].tolist()
    if not header_rows:
        sheet_note = "" if path.suffix.lower() == ".csv" else f" (first sheet {sheets[0]!r} of {sheets})"
        raise ReaderError(f"{path}: no header row starting with 'Subject'{sheet_note}")
    h = header_rows[0]
    header = [str(c).strip() if not (isinstance(c, float) and math.isnan(c)) else "" for c in raw.iloc[h]]
    if "Type" in header and "Onset" in header and "Micro" not in header:
        raise ReaderError(
            f"{path} is the SAMM Long Videos annotation: its frame numbers count from the start of each long "
            "video and differ from the micro clips'; never mix the two. Give SAMM_Micro_FACS_Codes_v2.xlsx."
        )
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        found = [c for c in header if c]
        raise ReaderError(
            f"{path}: missing column(s) {', '.join(missing)} (headers found: {', '.join(found)})"
        )
    table = raw.iloc[h + 1 :].copy()
    table.columns = [c or f"_blank{i}" for i, c in enumerate(header)]
    return table[list(COLUMNS)], h + 1


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def _frame(value: object) -> int | None:
    if _blank(value):
        return None
    number = float(str(value).strip())
    if number != int(number):
        raise ValueError(f"not a frame number: {value!r}")
    return None if number < 0 else int(number)  # -1 marks "not annotated" in SAMM files


def read_samm(
    root: str | Path | None = None,
    annotation: str | Path | None = None,
    strict: bool = False,
    fps: float = 200.0,
) -> ReadResult:
    """Samples of SAMM (`samm/006/006_1_2`), with every repair and drop in the report."""
    if root is None:
        raise ReaderError(
            "SAMM: no frame folder given; set data.samm_root=PATH (the folder holding 006, 007, ...) "
            "or MERLIN_SAMM_ROOT"
        )
    root = Path(root)
    if not root.is_dir() or not any(p.is_dir() and re.fullmatch(r"\d{3}", p.name) for p in root.iterdir()):
        raise ReaderError(
            f"SAMM frame folder {root} does not exist or holds no 3-digit subject folders (006, ...)"
        )
    path = Path(annotation) if annotation is not None else find_annotation(root)
    table, header_row = read_table(path)
    report = ReadReport("samm", strict=strict)
    samples = []
    for i, row in enumerate(table.itertuples(index=False)):
        source = f"{path.name} row {header_row + 1 + i}"
        subject_cell, clip_cell, onset_cell, apex_cell, offset_cell, au_cell, emotion_cell = row
        if _blank(subject_cell) and _blank(clip_cell):
            continue  # trailing empty rows
        emotion = str(emotion_cell).strip()
        if emotion not in EMOTIONS:
            raise ReaderError(f"{source}: unknown emotion {emotion!r} (SAMM uses {', '.join(EMOTIONS)})")
        clip = str(clip_cell).strip()
        try:
            subject = f"{int(float(str(subject_cell).strip())):03d}"
        except ValueError:
            report.drop(f"samm/?/{clip}", f"unparseable subject {subject_cell!r}", source)
            continue
        sample_id = f"samm/{subject}/{clip}"
        if not clip.startswith(f"{subject}_"):
            report.drop(sample_id, f"Filename {clip!r} does not belong to subject {subject}", source)
            continue
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
        folder = root / subject / clip
        if not folder.is_dir():
            report.drop(sample_id, f"clip folder {folder} does not exist", source)
            continue
        frames = frame_folder(folder)
        fitted = fit_to_frames(report, sample_id, source, onset, apex, offset, frames.frame_numbers)
        if fitted is None:
            continue
        onset, apex, offset = fitted
        sample = Sample(
            sample_id,
            "samm",
            f"samm/{subject}",
            clip,
            frames,
            onset,
            apex,
            offset,
            emotion,
            action_units,
            fps,
            source,
        )
        validate_sample(sample)
        samples.append(sample)
    return ReadResult(samples, report)
