"""CAS(ME)^3 part A reader (specs/datasets.md section 4).

On disk: `root/spNO.1/a/color/166.jpg` (subject folder `spNO.<n>`, task letter, `color/` frames named by
their number; the sibling `depth/` is ignored). Label file `cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx` with
columns Subject, Filename, Onset, Apex, Offset, AU, Objective class, emotion.

The same (Subject, Filename) pair occurs several times (several micro-expressions in one task video): clip
ids number them in row order, `a_1`, `a_2`, ..., so `casme3/spNO.1/a_2` is the second annotated clip of
task a. AU cells separate units with `+`, `,` or the full-width `，`.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from datamodules.readers.action_units import parse_action_units
from datamodules.readers.base import ReaderError, ReadReport, ReadResult, fit_to_frames, frame_folder
from datamodules.samples import Sample, validate_sample

EMOTIONS = ("happy", "disgust", "fear", "anger", "sad", "surprise", "others")
COLUMNS = ("Subject", "Filename", "Onset", "Apex", "Offset", "AU", "emotion")


def find_annotation(root: Path) -> Path:
    places = [root, root.parent, root.parent.parent]
    found = sorted({p for place in places for p in place.glob("cas(me)3_part_A*.xls*")})
    if len(found) == 1:
        return found[0]
    if not found:
        raise ReaderError(
            f"CAS(ME)^3: no label file cas(me)3_part_A_*.xlsx in {', '.join(map(str, places))}; "
            "set data.casme3_annotation=PATH"
        )
    raise ReaderError(f"CAS(ME)^3: several label files ({', '.join(p.name for p in found)}); choose one")


def _cell_int(value: object) -> int:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise ValueError("empty frame cell")
    number = float(str(value).strip())
    if number != int(number):
        raise ValueError(f"not a frame number: {value!r}")
    return int(number)


def read_casme3(
    root: str | Path | None = None,
    annotation: str | Path | None = None,
    strict: bool = False,
    fps: float = 30.0,
) -> ReadResult:
    """Samples of CAS(ME)^3 part A (`casme3/spNO.1/a_1`), with every repair and drop in the report."""
    if root is None:
        raise ReaderError(
            "CAS(ME)^3: no frame folder given; set data.casme3_root=PATH (the folder holding spNO.* folders) "
            "or MERLIN_CASME3_ROOT"
        )
    root = Path(root)
    if not root.is_dir() or not any(p.name.startswith("spNO.") for p in root.iterdir()):
        raise ReaderError(f"CAS(ME)^3 frame folder {root} does not exist or holds no spNO.* folders")
    path = Path(annotation) if annotation is not None else find_annotation(root)
    if not path.is_file():
        raise ReaderError(f"CAS(ME)^3 label file does not exist: {path}")
    try:
        sheets = pd.ExcelFile(path).sheet_names
        table = pd.read_excel(path, sheet_name=sheets[0], dtype=object)
    except Exception as err:
        raise ReaderError(f"{path}: cannot read as a CAS(ME)^3 label file ({err})") from err
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ReaderError(
            f"{path}: missing column(s) {', '.join(missing)} in sheet {sheets[0]!r} "
            f"(headers found: {', '.join(table.columns)}; sheets: {', '.join(sheets)})"
        )
    report = ReadReport("casme3", strict=strict)
    samples, seen = [], {}
    for i, row in enumerate(table[list(COLUMNS)].itertuples(index=False)):
        source = f"{path.name} row {i + 2}"
        subject_cell, task_cell, onset_cell, apex_cell, offset_cell, au_cell, emotion_cell = row
        emotion = str(emotion_cell).strip()
        if emotion not in EMOTIONS:
            raise ReaderError(f"{source}: unknown emotion {emotion!r} (CAS(ME)^3 uses {', '.join(EMOTIONS)})")
        subject, task = str(subject_cell).strip(), str(task_cell).strip()
        seen[(subject, task)] = seen.get((subject, task), 0) + 1
        clip = f"{task}_{seen[(subject, task)]}"
        sample_id = f"casme3/{subject}/{clip}"
        try:
            onset, apex, offset = _cell_int(onset_cell), _cell_int(apex_cell), _cell_int(offset_cell)
        except ValueError as err:
            report.drop(sample_id, f"unparseable frame numbers ({err})", source)
            continue
        au_text = (
            "" if au_cell is None or (isinstance(au_cell, float) and math.isnan(au_cell)) else str(au_cell)
        )
        try:
            action_units = parse_action_units(au_text.replace("，", "+").replace(",", "+") or None)
        except ValueError as err:
            report.repair(sample_id, f"{err}; action units left empty", source)
            action_units = ()
        folder = root / subject / task / "color"
        if not folder.is_dir():
            report.drop(sample_id, f"frame folder {folder} does not exist", source)
            continue
        frames = frame_folder(folder)
        fitted = fit_to_frames(report, sample_id, source, onset, apex, offset, frames.frame_numbers)
        if fitted is None:
            continue
        onset, apex, offset = fitted
        sample = Sample(
            sample_id,
            "casme3",
            f"casme3/{subject}",
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
