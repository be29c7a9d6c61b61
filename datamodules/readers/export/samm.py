"""The synthetic database written as a SAMM copy, with SAMM's documented quirks planted.

Written on disk:
- `root/SAMM_CROP/<subject>/<subject>_<k>_<n>/<subject>_<5-digit frame>.jpg`, frame numbers absolute in the
  recording (5000 and up, as 006_1_2's onset 5562 -> `006_05562.jpg`);
- `root/SAMM_Micro_FACS_Codes_v2.xlsx` (or .csv): `preamble_rows` preamble rows (title, citation, symbol key,
  blank rows; 13 in v2), the 12-column header, one row per clip.
Synthetic subject s01 becomes 006, s02 007, ...; classes become SAMM words (positive -> Happiness,
surprise -> Surprise, negative -> Anger, Contempt, Disgust, Fear, Sadness in turn).

With `quirks=True` (see QUIRKS; the clip index of each): two clips relabelled `Other`, the AU cells
`(R6 or R12)+R15`, `L12 or L14` and `10A/B`, a stray cell beyond Notes (like 028_4_1's `apex1143`), an apex
of -1, and an offset two frames beyond the frames on disk. The manifest's `samples` holds what the reader
should return for each clip (after its repairs) and the cells as annotated.
"""

from __future__ import annotations

from pathlib import Path

from datamodules.readers.export.common import write_frames, write_sheet
from datamodules.readers.samm import HEADER
from datamodules.readers.synthetic import SyntheticConfig, synthetic_samples

SMALL = SyntheticConfig(num_subjects=3, clips_per_subject=6, height=64, width=56)
NEGATIVE = ("Anger", "Contempt", "Disgust", "Fear", "Sadness")
# quirk -> index of the clip (in synthetic order) that carries it; all distinct and < 18 (the small config).
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
# The AU cells planted and what parse_action_units must make of them (alternatives joined by "|").
AU_CELLS = {
    "au_or_group": ("(R6 or R12)+R15", ("R6|R12", "R15")),
    "au_or": ("L12 or L14", ("L12|L14",)),
    "au_intensity_alternative": ("10A/B", ("10A|10B",)),
}
FRAME_BASE = 5000  # SAMM frame numbers count from the start of the recording
PREAMBLE = (
    "SAMM: Spontaneous Actions and Micro-Movements (synthetic copy written by MERLin for tests)",
    "Please cite: Davison et al., SAMM: A Spontaneous Micro-Facial Movement Dataset, IEEE TAC 2018",
    "9/9/17 - New updates with Emotional and Objective Classes",
    None,
    "Key:",
    '"/" = or',
    '"?" = unclear offset',
    "L2/R2 = unilateral (left/right); A2 = asymmetric",
    None,
    "Subjects 008, 027 and 029 have no micro-movements",  # starts with "Subject" but is not the header
)


def export_samm(
    root: str | Path,
    config: SyntheticConfig | None = None,
    preamble_rows: int = 13,
    quirks: bool = True,
    annotation_format: str = "xlsx",
) -> dict:
    """Write the copy; returns {"frames_root", "annotation", "planted": {quirk: sample_id}, "samples"}.

    `samples[sample_id]` = {"subject", "clip", "emotion", "onset", "apex", "offset", "action_units"} as the
    reader should return them, "row" (the label file's row number) and "annotated" (the cells as written).
    """
    if annotation_format not in ("xlsx", "csv"):
        raise ValueError(f"annotation_format must be xlsx or csv, got {annotation_format!r}")
    if preamble_rows < 0:
        raise ValueError(f"preamble_rows must be >= 0, got {preamble_rows}")
    cfg = config or SMALL
    root = Path(root)
    frames_root = root / "SAMM_CROP"
    rows, manifest, planted = [], {}, {}
    quirk_of = {i: q for q, i in QUIRKS.items()} if quirks else {}
    n_negative = 0
    for i, sample in enumerate(synthetic_samples(cfg)):
        s_index, c_index = sample.frames.subject_index, sample.frames.clip_index
        subject = f"{s_index + 6:03d}"
        inducement = c_index % 7 + 1
        clip = f"{subject}_{inducement}_{c_index + 1}"
        if sample.emotion == "negative":
            emotion = NEGATIVE[n_negative % len(NEGATIVE)]
            n_negative += 1
        else:
            emotion = {"positive": "Happiness", "surprise": "Surprise"}[sample.emotion]
        # Absolute numbers, later clips later in the recording, always 4-5 digits (written 5-digit padded).
        shift = FRAME_BASE + 400 * c_index - sample.frames.frame_numbers[0] + 17 * (i % 11)
        numbers = [n + shift for n in sample.frames.frame_numbers]
        onset, apex, offset = numbers[0], sample.apex + shift, numbers[-1]
        au_cell: object = "+".join(sample.action_units)
        action_units = tuple(sample.action_units)
        apex_cell: object = apex
        stray = None
        disk_numbers, disk_indices = numbers, None
        expected_offset = offset
        quirk = quirk_of.get(i)
        if quirk in ("Other", "Other_2"):
            emotion = "Other"
        elif quirk in AU_CELLS:
            au_cell, action_units = AU_CELLS[quirk]
        elif quirk == "stray_cell":
            stray = f"apex{apex}"
        elif quirk == "apex_missing":
            apex_cell, apex = -1, None
        elif quirk == "offset_beyond_frames":  # the last two annotated frames are not on disk
            disk_numbers, disk_indices = numbers[:-2], list(range(len(numbers) - 2))
            expected_offset = numbers[-3]
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
            int(subject),  # an int in the real file (6, 7, ...); the folder is zero-padded
            clip,
            inducement,
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
            "subject": f"samm/{subject}",
            "clip": clip,
            "emotion": emotion,
            "onset": onset,
            "apex": apex,
            "offset": expected_offset,
            "action_units": action_units,
            "row": preamble_rows + 1 + len(rows),
            "annotated": {"onset": onset, "apex": apex_cell, "offset": offset, "action_units": au_cell},
        }
    annotation = root / f"SAMM_Micro_FACS_Codes_v2.{annotation_format}"
    preamble = [[line] for line in PREAMBLE[:preamble_rows]]
    preamble += [[None]] * (preamble_rows - len(preamble))  # the real preamble has blank rows too
    write_sheet(annotation, [*preamble, list(HEADER), *rows], title="FACS codes")
    return {"frames_root": frames_root, "annotation": annotation, "planted": planted, "samples": manifest}
