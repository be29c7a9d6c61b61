"""Synthetic long videos written as a CAS(ME)^2 copy, with its documented quirks planted.

Written on disk:
- `root/rawpic/s<code>/<code>_<4-digit video code><name>/img<N>.jpg`, frames counted from 1 (synthetic frame
  i is `img<i + 1>.jpg`), as `rawpic/s15/15_0101disgustingteeth/img1.jpg`;
- `root/CAS(ME)^2code_final.xlsx`: sheet 1 without a header row, one expression per row in the 11 columns of
  specs/datasets.md section 4 (subject number, expression name `disgust1_1`, onset, apex, offset, AUs,
  objective emotion, macro-expression/micro-expression, self-report, offset - onset, `s15/15_0101...`);
  sheet `naming rule1` maps subject numbers to codes (code digits | `s15` | number), sheet `naming rule2`
  video codes to video names (`0101` | `disgust1`). With `annotation_format="csv"` only sheet 1 is written
  (as a .csv export of it), so the folder column is what places each row.
Synthetic subject s01 becomes number 1 = `s15`, s02 number 2 = `s16`, ...; its video v the v-th entry of
VIDEOS. The synthetic classes are CAS(ME)^2's objective words (negative, positive, surprise); the
self-report is a basic emotion consistent with them (negative -> disgust / anger in turn).

With `quirks=True` (QUIRKS; the first interval each fits, in video and onset order): an offset of 0 (missing)
on a micro-expression, whose expected offset is apex + (apex - onset) as the reader estimates it; the
self-report `happyiness`; an AU cell `NULL`; the objective class `others`. The manifest's `videos` holds what
the reader must return for each video, every interval with its row.
"""

from __future__ import annotations

from pathlib import Path

from datamodules.long_videos import MACRO, MICRO
from datamodules.readers.export.long_common import write_long_frames
from datamodules.readers.synthetic_long import SyntheticLongConfig, synthetic_long_videos

# 2 subjects x 2 videos x 8 s at 30 fps: 960 frames in all.
SMALL = SyntheticLongConfig(
    dataset="casme_sq",
    num_subjects=2,
    videos_per_subject=2,
    seconds=8.0,
    fps=30.0,
    height=64,
    width=56,
    micro_per_video=2,
    macro_per_video=1,
    blinks_per_video=1,
    head_moves_per_video=0,
)
SUBJECT_BASE = 15  # the first subject code, s15
# (video code, video name, folder name suffix); the first two are the spec's examples
VIDEOS = (
    ("0101", "disgust1", "disgustingteeth"),
    ("0401", "anger1", "girlcrashing"),
    ("0502", "happy1", "cheerfulsong"),
    ("0503", "happy2", "funnyballet"),
    ("0505", "happy3", "laughingbaby"),
)
QUIRKS = {"offset_missing": MICRO, "happyiness": None, "au_null": None, "others": None}
TYPE = {MICRO: "micro-expression", MACRO: "macro-expression"}
SELF_REPORT = {"negative": ("disgust", "anger"), "positive": ("happiness",), "surprise": ("surprise",)}


def export_casme_sq(
    root: str | Path,
    config: SyntheticLongConfig | None = None,
    quirks: bool = True,
    annotation_format: str = "xlsx",
) -> dict:
    """Write the copy; returns {"frames_root", "annotation", "planted": {quirk: {"video_id", "row"}},
    "videos": {video_id: {"subject", "folder", "fps", "first_frame", "last_frame", "intervals"}}}.

    Each interval is {"onset", "apex", "offset", "kind", "emotion", "action_units", "row", "expression",
    "self_reported"} as the reader must return it; "row" is sheet 1's row number (no header: 1 is the
    first expression).
    """
    if annotation_format not in ("xlsx", "csv"):
        raise ValueError(f"annotation_format must be xlsx or csv, got {annotation_format!r}")
    cfg = config or SMALL
    if cfg.videos_per_subject > len(VIDEOS):
        raise ValueError(f"at most {len(VIDEOS)} videos per subject, got {cfg.videos_per_subject}")
    root = Path(root)
    frames_root = root / "rawpic"
    rows: list[list] = []
    manifest: dict[str, dict] = {}
    planted: dict[str, dict] = {}
    todo = dict(QUIRKS) if quirks else {}
    n_negative = 0
    for video in synthetic_long_videos(cfg):
        s_index, v_index = video.frames.subject_index, video.frames.video_index
        digits = str(SUBJECT_BASE + s_index)
        code, video_name, suffix = VIDEOS[v_index]
        folder_name = f"{digits}_{code}{suffix}"
        video_id = f"casme_sq/s{digits}/{digits}_{code}"
        folder = frames_root / f"s{digits}" / folder_name
        write_long_frames(video, folder, lambda n: f"img{n + 1}.jpg")
        last = video.num_frames
        intervals = []
        for k, interval in enumerate(sorted(video.intervals, key=lambda i: i.onset)):
            onset, apex, offset = interval.onset + 1, interval.apex + 1, interval.offset + 1
            emotion = interval.emotion
            if emotion == "negative":
                self_reported = SELF_REPORT["negative"][n_negative % 2]
                n_negative += 1
            else:
                self_reported = SELF_REPORT[emotion][0]
            au_cell, units = "+".join(interval.action_units), tuple(interval.action_units)
            self_cell, offset_cell = self_reported, offset
            quirk = next((q for q, kind in todo.items() if kind in (None, interval.kind)), None)
            if quirk is not None:
                del todo[quirk]
                planted[quirk] = {"video_id": video_id, "row": len(rows) + 1}
            if quirk == "offset_missing":
                offset_cell, offset = 0, min(apex + (apex - onset), last)
            elif quirk == "happyiness":
                self_cell, self_reported = "happyiness", "happiness"
            elif quirk == "au_null":
                au_cell, units = "NULL", ()
            elif quirk == "others":
                emotion = "others"
            expression = f"{video_name}_{k + 1}"
            rows.append(
                [
                    s_index + 1,
                    expression,
                    onset,
                    apex,
                    offset_cell,
                    au_cell,
                    emotion,
                    TYPE[interval.kind],
                    self_cell,
                    offset_cell - onset,  # the real file's column 10, negative where the offset is 0
                    f"s{digits}/{folder_name}",
                ]
            )
            intervals.append(
                {
                    "onset": onset,
                    "apex": apex,
                    "offset": offset,
                    "kind": interval.kind,
                    "emotion": emotion,
                    "action_units": units,
                    "row": len(rows),
                    "expression": expression,
                    "self_reported": self_reported,
                }
            )
        manifest[video_id] = {
            "subject": f"casme_sq/s{digits}",
            "folder": folder,
            "fps": cfg.fps,
            "first_frame": 1,
            "last_frame": last,
            "intervals": intervals,
        }
    if todo:
        raise ValueError(f"planting {sorted(todo)} needs more intervals of their kind than {cfg} has")
    subjects = [[SUBJECT_BASE + s, f"s{SUBJECT_BASE + s}", s + 1] for s in range(cfg.num_subjects)]
    videos = [[code, name] for code, name, _ in VIDEOS]
    name = "CAS(ME)^2code_final"
    annotation = root / f"{name}.{annotation_format}"
    _write(annotation, [("Sheet1", rows), ("naming rule1", subjects), ("naming rule2", videos)])
    return {"frames_root": frames_root, "annotation": annotation, "planted": planted, "videos": manifest}


def _write(path: Path, sheets: list[tuple[str, list[list]]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":  # a CSV export holds the first sheet only
        import csv

        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            for line in sheets[0][1]:
                writer.writerow(["" if v is None else v for v in line])
        return
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for title, lines in sheets:
        sheet = book.create_sheet(title)
        for r, line in enumerate(lines, start=1):
            for c, value in enumerate(line, start=1):
                if value is not None:
                    sheet.cell(r, c).value = value
    book.save(path)
