"""The synthetic database written as a CASME II copy, with CASME II's documented quirks planted.

Layout: `root/Cropped/subNN/<clip>/reg_img<N>.jpg` (or `root/CASME2_RAW_selected/.../img<N>.jpg`) and
`root/CASME2-coding-20140508.xlsx` (or `-20190701`) with the real column layout, blank-header columns
included. Synthetic subject k becomes `sub0k`; classes become CASME II words (positive -> happiness,
surprise -> surprise, negative -> disgust / repression alternately).
"""

from __future__ import annotations

from pathlib import Path

from datamodules.readers.export.common import write_frames
from datamodules.readers.synthetic import SyntheticConfig, _plan, synthetic_samples

HEADER = (
    "Subject",
    "Filename",
    None,
    "OnsetFrame",
    "ApexFrame",
    "OffsetFrame",
    None,
    "Action Units",
    "Estimated Emotion",
)
SMALL = SyntheticConfig(num_subjects=3, clips_per_subject=6, height=64, width=56)

# Which synthetic sample (by position) carries which quirk; specs/datasets.md section 1 lists the real ones.
QUIRKS = {
    "others": 0,
    "sadness": 1,
    "fear": 2,
    "apex_slash": 3,
    "apex_at_onset": 4,
    "apex_at_offset": 5,
    "offset_beyond_frames": 6,
    "other_numbering": 7,
    "odd_folder": 8,
    "au_laterality": 9,
    "au_right": 10,
    "au_bare_int": 11,
    "au_unknown": 12,
    "only_in_2014": 13,
    "sadness_to_surprise_2019": 14,
}


def export_casme2(
    root: str | Path,
    config: SyntheticConfig | None = None,
    version: str = "2014",
    quirks: bool = True,
    layout: str = "Cropped",
    annotation_format: str = "xlsx",
) -> dict:
    """Write the copy; returns {"frames_root", "annotation", "planted": {quirk: sample_id},
    "samples": {sample_id: {"emotion", "onset", "apex", "offset", "action_units", "au_cell"}}}.

    onset/apex/offset are as annotated (before the reader's repairs; apex None where the cell is `/`),
    action_units is the tuple the AU cell `au_cell` stands for. `version="2019"` leaves out the 2014-only
    row (its frames stay on disk, as in the real release) and relabels the sadness -> surprise clip.
    `annotation_format="csv"` writes the sheet's CSV export (Subject as `01`, four blank trailing columns).
    """
    cfg = config or SMALL
    if version not in ("2014", "2019"):
        raise ValueError(f"version must be 2014 or 2019, got {version!r}")
    prefixes = {"Cropped": "reg_img", "CASME2_RAW_selected": "img"}
    if layout not in prefixes:
        raise ValueError(f"layout must be one of {', '.join(prefixes)}, got {layout!r}")
    if annotation_format not in ("xlsx", "csv"):
        raise ValueError(f"annotation_format must be xlsx or csv, got {annotation_format!r}")
    prefix = prefixes[layout]
    root = Path(root)
    frames_root = root / layout
    rows, manifest, planted = [], {}, {}
    negative_words = ("disgust", "repression")
    n_negative = 0
    samples = synthetic_samples(cfg)
    if quirks and len(samples) <= max(QUIRKS.values()):
        raise ValueError(f"planting every quirk needs at least {max(QUIRKS.values()) + 1} clips")
    quirk_of = {i: q for q, i in QUIRKS.items()} if quirks else {}
    for i, sample in enumerate(samples):
        s_index, c_index = sample.frames.subject_index, sample.frames.clip_index
        plan = _plan(cfg, s_index, c_index)
        subject, clip = f"sub{s_index + 1:02d}", f"EP{c_index + 1:02d}_01f"
        if sample.emotion == "negative":
            emotion = negative_words[n_negative % 2]
            n_negative += 1
        else:
            emotion = {"positive": "happiness", "surprise": "surprise"}[sample.emotion]
        au_cell: object = "+".join(sample.action_units)
        expected_aus = tuple(sample.action_units)  # what the reader must make of au_cell
        numbers = list(sample.frames.frame_numbers)
        onset, apex, offset = sample.onset, sample.apex, sample.offset
        apex_cell: object = apex
        disk_numbers, disk_indices = numbers, None
        quirk = quirk_of.get(i)
        if quirk in ("others", "sadness", "fear"):
            emotion = quirk
        elif quirk == "apex_slash":
            apex_cell, apex = "/", None
        elif quirk == "apex_at_onset":
            apex_cell = apex = onset
        elif quirk == "apex_at_offset":
            apex_cell = apex = offset
        elif quirk == "offset_beyond_frames":  # like sub16/EP01_08: annotated offset past the last frame
            disk_numbers, disk_indices = numbers[:-3], list(range(plan.length - 3))
        elif quirk == "other_numbering":  # like sub12/EP09_02: 16/59/101 annotated, 161..206 on disk
            disk_numbers = [n + 145 for n in numbers]
        elif quirk == "odd_folder":
            clip = "EP01_2"
        elif quirk == "au_laterality":
            au_cell, expected_aus = "4+L10", ("4", "L10")
        elif quirk == "au_right":
            au_cell, expected_aus = "R12", ("R12",)
        elif quirk == "au_bare_int":  # stored as a number, as Excel does with a lone AU
            au_cell, expected_aus = 12, ("12",)
        elif quirk == "au_unknown":  # the older data's "?": no AU known
            au_cell, expected_aus = "?", ()
        elif quirk == "only_in_2014":  # like sub09/EP02_02f: the 2019 file removed it
            subject, clip = "sub09", "EP02_02f"
        elif quirk == "sadness_to_surprise_2019":  # like sub24/EP07_01
            emotion = "surprise" if version == "2019" else "sadness"
        sample_id = f"casme2/{subject}/{clip}"
        if quirk is not None:
            planted[quirk] = sample_id
        write_frames(
            cfg,
            s_index,
            c_index,
            frames_root / subject / clip,
            disk_numbers,
            lambda n: f"{prefix}{n}.jpg",
            disk_indices,
        )
        if quirk == "only_in_2014" and version == "2019":
            continue
        rows.append((int(subject[3:]), clip, None, onset, apex_cell, offset, None, au_cell, emotion))
        manifest[sample_id] = {
            "emotion": emotion,
            "onset": onset,
            "apex": apex,
            "offset": offset,
            "action_units": expected_aus,
            "au_cell": au_cell,
        }
    stamp = "20140508" if version == "2014" else "20190701"
    annotation = root / f"CASME2-coding-{stamp}.{annotation_format}"
    _write_table(annotation, rows)
    return {"frames_root": frames_root, "annotation": annotation, "planted": planted, "samples": manifest}


def _write_table(path: Path, rows: list[tuple]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        import csv

        # As the real CSV export: Subject zero-padded as text ("01"), four blank trailing columns.
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["" if h is None else h for h in HEADER] + [""] * 4)
            for row in rows:
                cells = ["" if v is None else v for v in row]
                cells[0] = f"{row[0]:02d}"
                writer.writerow(cells + [""] * 4)
        return
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Sheet1"
    sheet.append(list(HEADER))
    for row in rows:
        sheet.append(list(row))
    book.save(path)
