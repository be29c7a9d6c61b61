"""The synthetic database written as a CAS(ME)^3 part A copy, for testing `read_casme3` without the data.

Written: `root/spNO.<n>/<task>/color/<frame>.jpg` (bare frame numbers, as the real `166.jpg`), an empty
`depth/` sibling, and `root/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx` with the real header. Each synthetic
clip becomes one annotated stretch of a task video: clips 1 and 2 of a subject share task `a` (the repeated
(Subject, Filename) pairs of the real file), at frame numbers that keep counting along the video.
Classes: positive -> happy, surprise -> surprise, negative cycling disgust, fear, anger, sad.

Planted quirks (`quirks=True`, named in the manifest's "planted"):
- `repeated_task`: the second row of (spNO.1, a), read as clip `a_2`;
- `others`: a clip labelled `others` (kept by the reader; excluded by casme3_3class);
- `apex_outside`: an apex after the offset, as spNO.149/d (dropped by the reader; not in "samples");
- `fullwidth_comma_au`, `comma_au`: AU cells written `4，15` and `6,12`;
- `blank_row`: an empty spreadsheet row between data rows (skipped; row numbers stay the sheet's).
"""

from __future__ import annotations

from pathlib import Path

from datamodules.readers.export.common import write_frames
from datamodules.readers.synthetic import SyntheticConfig, synthetic_samples

LABEL_FILE = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
HEADER = ("Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion")
SMALL = SyntheticConfig(num_subjects=3, clips_per_subject=6, height=64, width=56)
NEGATIVE = ("disgust", "fear", "anger", "sad")
POSITIVE = {"positive": "happy", "surprise": "surprise"}
TASKS = "abcdefghijklm"


def export_casme3(root: str | Path, config: SyntheticConfig | None = None, quirks: bool = True) -> dict:
    """Write the copy under `root`. Returns {"frames_root", "annotation", "planted": {quirk: sample_id or
    row}, "samples": {sample_id: the fields `read_casme3` should give (subject, clip, emotion, onset, apex,
    offset, action_units, source)}}; rows the reader must drop are not in "samples"."""
    cfg = config or SMALL
    root = Path(root)
    rows: list[tuple | None] = []
    manifest: dict[str, dict] = {}
    planted: dict[str, str] = {}
    n_negative, next_frame, seen = 0, {}, {}
    for i, sample in enumerate(synthetic_samples(cfg)):
        s_index, c_index = sample.frames.subject_index, sample.frames.clip_index
        subject = f"spNO.{s_index * 7 + 1}"  # real ids are not contiguous
        task = "a" if c_index < 2 else TASKS[(c_index - 1) % len(TASKS)]
        if sample.emotion == "negative":
            emotion = NEGATIVE[n_negative % len(NEGATIVE)]
            n_negative += 1
        else:
            emotion = POSITIVE[sample.emotion]
        objective = sample.emotion
        # Frame numbers continue along the task video, so a second stretch of task `a` starts after the first.
        start = next_frame.get((subject, task), 100 + 37 * c_index)
        numbers = list(range(start, start + len(sample.frames.frame_numbers)))
        next_frame[(subject, task)] = numbers[-1] + 11
        onset, offset = numbers[0], numbers[-1]
        apex = numbers[sample.frames.frame_numbers.index(sample.apex)]
        apex_cell: object = apex
        au_cell = "+".join(sample.action_units)
        folder = root / subject / task
        write_frames(cfg, s_index, c_index, folder / "color", numbers, lambda n: f"{n}.jpg")
        (folder / "depth").mkdir(exist_ok=True)  # the reader must ignore it
        seen[(subject, task)] = seen.get((subject, task), 0) + 1
        sample_id = f"casme3/{subject}/{task}_{seen[(subject, task)]}"
        keep = True
        if quirks:
            if i == 1:
                planted["repeated_task"] = sample_id
            elif i == 2:
                emotion, objective = "others", "others"
                planted["others"] = sample_id
            elif i == 3:  # like spNO.149/d (112/83/358): apex outside onset..offset
                apex_cell = offset + 40
                planted["apex_outside"] = sample_id
                keep = False
            elif i == 4:
                au_cell = "，".join(sample.action_units)
                planted["fullwidth_comma_au"] = sample_id
            elif i == 6:
                au_cell = ",".join(sample.action_units)
                planted["comma_au"] = sample_id
            elif i == 8:
                rows.append(None)
                planted["blank_row"] = f"{LABEL_FILE} row {len(rows) + 1}"
        rows.append((subject, task, onset, apex_cell, offset, au_cell, objective, emotion))
        if keep:
            manifest[sample_id] = {
                "subject": f"casme3/{subject}",
                "clip": sample_id.rsplit("/", 1)[1],
                "emotion": emotion,
                "onset": onset,
                "apex": apex,
                "offset": offset,
                "action_units": tuple(sample.action_units),
                "source": f"{LABEL_FILE} row {len(rows) + 1}",  # +1: the header is row 1
            }
    from openpyxl import Workbook  # deferred like the readers' import

    book = Workbook()
    sheet = book.active
    sheet.title = "Sheet1"
    sheet.append(list(HEADER))
    for row in rows:
        sheet.append([] if row is None else list(row))
    annotation = root / LABEL_FILE
    book.save(annotation)
    return {"frames_root": root, "annotation": annotation, "planted": planted, "samples": manifest}
