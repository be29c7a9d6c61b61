"""The synthetic database written as a CAS(ME)^3 part A copy: `root/spNO.<n>/<task>/color/<frame>.jpg` and
`root/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`. Each synthetic clip becomes one annotated stretch of a task
video; clips 1 and 2 of a subject share task `a` (the repeated (Subject, Filename) pairs of the real file)."""

from __future__ import annotations

from pathlib import Path

from datamodules.readers.export.common import write_frames
from datamodules.readers.synthetic import SyntheticConfig, synthetic_samples

HEADER = ("Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion")
SMALL = SyntheticConfig(num_subjects=3, clips_per_subject=6, height=64, width=56)
NEGATIVE = ("disgust", "fear", "anger", "sad")


def export_casme3(root: str | Path, config: SyntheticConfig | None = None, quirks: bool = True) -> dict:
    """Write the copy; returns {"frames_root", "annotation", "planted", "samples" (as read back)}."""
    cfg = config or SMALL
    root = Path(root)
    rows, manifest, planted = [], {}, {}
    n_negative, next_frame, counts = 0, {}, {}
    for i, sample in enumerate(synthetic_samples(cfg)):
        s_index, c_index = sample.frames.subject_index, sample.frames.clip_index
        subject = f"spNO.{s_index * 7 + 1}"  # real ids are not contiguous
        task = "a" if c_index < 2 else "bcdefghijklm"[c_index - 2]
        if sample.emotion == "negative":
            emotion = NEGATIVE[n_negative % len(NEGATIVE)]
            n_negative += 1
        else:
            emotion = {"positive": "happy", "surprise": "surprise"}[sample.emotion]
        start = next_frame.get((subject, task), 100)
        length = len(sample.frames.frame_numbers)
        numbers = list(range(start, start + length))
        next_frame[(subject, task)] = start + length + 10  # the next stretch of the same task video
        onset, offset = numbers[0], numbers[-1]
        apex = numbers[sample.frames.frame_numbers.index(sample.apex)]
        apex_cell: object = apex
        au = "+".join(sample.action_units)
        write_frames(cfg, s_index, c_index, root / subject / task / "color", numbers, lambda n: f"{n}.jpg")
        counts[(subject, task)] = counts.get((subject, task), 0) + 1
        sample_id = f"casme3/{subject}/{task}_{counts[(subject, task)]}"
        keep = True
        if quirks and i == 1:
            planted["repeated_task"] = sample_id
        if quirks and i == 2:
            emotion = "others"
            planted["others"] = sample_id
        if quirks and i == 3:  # like spNO.149/d: apex outside onset..offset
            apex_cell = offset + 40
            planted["apex_outside"] = sample_id
            keep = False
        if quirks and i == 4:
            au = au.replace("+", "，")
            planted["fullwidth_comma_au"] = sample_id
        rows.append((subject, task, onset, apex_cell, offset, au, 1, emotion))
        if keep:
            manifest[sample_id] = {
                "emotion": emotion,
                "onset": onset,
                "apex": apex,
                "offset": offset,
                "action_units": tuple(sample.action_units),
            }
    annotation = root / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
    from openpyxl import Workbook

    book = Workbook()
    book.active.title = "Sheet1"
    book.active.append(list(HEADER))
    for row in rows:
        book.active.append(list(row))
    book.save(annotation)
    return {"frames_root": root, "annotation": annotation, "planted": planted, "samples": manifest}
