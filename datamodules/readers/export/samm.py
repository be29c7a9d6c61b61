"""The synthetic database written as a SAMM copy, with SAMM's documented quirks planted.

Layout: `root/SAMM_CROP/<subject>/<subject>_<k>_<n>/<subject>_<5-digit frame>.jpg` and
`root/SAMM_Micro_FACS_Codes_v2.xlsx` with a text preamble of `preamble_rows` rows before the header.
Synthetic subject s01 becomes 006, s02 007, ...; classes become SAMM words (positive -> Happiness,
surprise -> Surprise, negative -> Anger, Contempt, Disgust, Fear, Sadness in turn).
"""

from __future__ import annotations

from pathlib import Path

from datamodules.readers.export.common import write_frames
from datamodules.readers.synthetic import SyntheticConfig, synthetic_samples

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
SMALL = SyntheticConfig(num_subjects=3, clips_per_subject=6, height=64, width=56)
NEGATIVE = ("Anger", "Contempt", "Disgust", "Fear", "Sadness")
QUIRKS = {
    "Other": 0,
    "Other_2": 7,
    "au_or_group": 1,
    "au_or": 2,
    "au_intensity_alternative": 3,
    "stray_cell": 4,
    "apex_missing": 5,
    "offset_beyond_frames": 6,
}


def export_samm(
    root: str | Path,
    config: SyntheticConfig | None = None,
    preamble_rows: int = 13,
    quirks: bool = True,
    annotation_format: str = "xlsx",
) -> dict:
    """Write the copy; returns {"frames_root", "annotation", "planted", "samples" (as annotated)}."""
    cfg = config or SMALL
    root = Path(root)
    frames_root = root / "SAMM_CROP"
    rows, manifest, planted = [], {}, {}
    quirk_of = {i: q for q, i in QUIRKS.items()} if quirks else {}
    n_negative = 0
    for i, sample in enumerate(synthetic_samples(cfg)):
        s_index, c_index = sample.frames.subject_index, sample.frames.clip_index
        subject = f"{s_index + 6:03d}"
        clip = f"{subject}_{c_index % 7 + 1}_{c_index + 1}"
        if sample.emotion == "negative":
            emotion = NEGATIVE[n_negative % len(NEGATIVE)]
            n_negative += 1
        else:
            emotion = {"positive": "Happiness", "surprise": "Surprise"}[sample.emotion]
        offset_shift = 5000  # SAMM frame numbers are absolute in the recording: 006_05562.jpg
        numbers = [n + offset_shift for n in sample.frames.frame_numbers]
        onset, apex, offset = numbers[0], sample.apex + offset_shift, numbers[-1]
        au_cell: object = "+".join(sample.action_units)
        apex_cell: object = apex
        stray = None
        disk_numbers, disk_indices = numbers, None
        quirk = quirk_of.get(i)
        if quirk in ("Other", "Other_2"):
            emotion = "Other"
        elif quirk == "au_or_group":
            au_cell = "(R6 or R12)+R15"
        elif quirk == "au_or":
            au_cell = "L12 or L14"
        elif quirk == "au_intensity_alternative":
            au_cell = "10A/B"
        elif quirk == "stray_cell":  # like 028_4_1's `apex1143` beyond the Notes column
            stray = f"apex{apex}"
        elif quirk == "apex_missing":
            apex_cell, apex = -1, None
        elif quirk == "offset_beyond_frames":
            disk_numbers, disk_indices = numbers[:-2], list(range(len(numbers) - 2))
        sample_id = f"samm/{subject}/{clip}"
        if quirk is not None:
            planted[quirk] = sample_id
        write_frames(
            cfg,
            s_index,
            c_index,
            frames_root / subject / clip,
            disk_numbers,
            lambda n, s=subject: f"{s}_{n:05d}.jpg",
            disk_indices,
        )
        row = [
            int(subject),
            clip,
            c_index % 7 + 1,
            onset,
            apex_cell,
            offset,
            offset - onset + 1,
            "Micro - 1/2",
            au_cell,
            emotion,
            7 if emotion == "Other" else 1,
            None,
        ]
        rows.append(row + ([stray] if stray else []))
        manifest[sample_id] = {
            "emotion": emotion,
            "onset": onset,
            "apex": apex,
            "offset": offset,
            "action_units": au_cell,
        }
    annotation = root / f"SAMM_Micro_FACS_Codes_v2.{annotation_format}"
    preamble = [["SAMM micro-movements (synthetic copy written by MERLin for tests)"]]
    preamble += [[f"preamble line {k}"] for k in range(2, preamble_rows + 1)]
    _write(annotation, preamble[:preamble_rows], rows)
    return {"frames_root": frames_root, "annotation": annotation, "planted": planted, "samples": manifest}


def _write(path: Path, preamble: list[list], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        import csv

        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            for line in [*preamble, list(HEADER), *rows]:
                writer.writerow(["" if v is None else v for v in line])
        return
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "FACS codes"
    for line in [*preamble, list(HEADER), *rows]:
        sheet.append(line)
    book.save(path)
