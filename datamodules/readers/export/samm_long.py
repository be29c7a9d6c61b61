"""Synthetic long videos written as a SAMM Long Videos copy, with its documented quirks planted.

Written on disk:
- `root/SAMM_longvideos/<subject>_<inducement>/<subject>_<inducement>_<4-digit frame>.jpg`, frames counted
  from 1 within each video (synthetic frame i is `..._<i + 1>`), as `009_4/009_4_0007.jpg`;
- `root/SAMM_LongVideos_V2_Release.xlsx` (or .csv): 9 preamble rows (title, citation, "Subjects with Apex
  Frame not annotated were labelled as -1", symbol key, blank rows), the header on row 10, then one row per
  expression: Subject zero-padded as text (`006`), Filename `<subject>_<inducement>_<n>`, Type `Macro` or
  `Micro - 1/2`, Duration = offset - onset + 1, no emotion column.
Synthetic subject s01 becomes 006, s02 007, ...; its video v becomes inducement v + 1 (`006_1`, `006_2`).

With `quirks=True` (QUIRKS; the first interval of the kind each needs, in video and onset order): an apex of
-1 on a micro- and on a macro-expression (as 028_4_1 and 010_1_3), and the AU cells `(R6 or R12)+R15` and
`10A/B`. The manifest's `videos` holds what the reader must return for each video, every interval with the
label file's row it comes from.
"""

from __future__ import annotations

from pathlib import Path

from datamodules.long_videos import MACRO, MICRO
from datamodules.readers.export.common import write_sheet
from datamodules.readers.export.long_common import write_long_frames
from datamodules.readers.samm_long import HEADER
from datamodules.readers.synthetic_long import SyntheticLongConfig, synthetic_long_videos

# 2 subjects x 1 video x 3 s at 200 fps: 1200 frames in all, and four micro- and two macro-expressions.
SMALL = SyntheticLongConfig(
    dataset="samm_long",
    num_subjects=2,
    videos_per_subject=1,
    seconds=3.0,
    fps=200.0,
    height=64,
    width=56,
    micro_per_video=2,
    macro_per_video=1,
    blinks_per_video=1,
    head_moves_per_video=0,
    macro_seconds=(0.6, 0.8),
    min_gap_seconds=0.15,
)
# quirk -> the kind of interval it is planted on (None: any)
QUIRKS = {
    "apex_missing_micro": MICRO,
    "apex_missing_macro": MACRO,
    "au_or_group": None,
    "au_intensity_alternative": None,
}
AU_CELLS = {
    "au_or_group": ("(R6 or R12)+R15", ("R6|R12", "R15")),
    "au_intensity_alternative": ("10A/B", ("10A|10B",)),
}
PREAMBLE = (
    "SAMM Long Videos (synthetic copy written by MERLin for tests)",
    "Please cite: Yap et al., SAMM Long Videos: A Spontaneous Facial Micro- and Macro-Expressions Dataset, "
    "FG 2020",
    "Subjects with Apex Frame not annotated were labelled as -1",
    None,
    "Key:",
    '"/" = or',
    "L2/R2 = unilateral (left/right); A2 = asymmetric",
    None,
    None,
)
TYPE = {MICRO: "Micro - 1/2", MACRO: "Macro"}


def export_samm_long(
    root: str | Path,
    config: SyntheticLongConfig | None = None,
    quirks: bool = True,
    annotation_format: str = "xlsx",
) -> dict:
    """Write the copy; returns {"frames_root", "annotation", "planted": {quirk: {"video_id", "row"}},
    "videos": {video_id: {"subject", "folder", "fps", "first_frame", "last_frame", "intervals"}}}.

    Each interval is {"onset", "apex", "offset", "kind", "emotion", "action_units", "row", "filename"} as the
    reader must return it (apex None where -1 is written); "row" is the label file's row number.
    """
    if annotation_format not in ("xlsx", "csv"):
        raise ValueError(f"annotation_format must be xlsx or csv, got {annotation_format!r}")
    cfg = config or SMALL
    root = Path(root)
    frames_root = root / "SAMM_longvideos"
    header_row = len(PREAMBLE) + 1
    rows: list[list] = []
    manifest: dict[str, dict] = {}
    planted: dict[str, dict] = {}
    todo = dict(QUIRKS) if quirks else {}
    for video in synthetic_long_videos(cfg):
        s_index, v_index = video.frames.subject_index, video.frames.video_index
        subject = f"{s_index + 6:03d}"  # s01 -> 006, as SAMM's ids start at 006
        name = f"{subject}_{v_index + 1}"
        video_id = f"samm_long/{name}"
        folder = frames_root / name
        write_long_frames(video, folder, lambda n, v=name: f"{v}_{n + 1:04d}.jpg")
        intervals = []
        for k, interval in enumerate(sorted(video.intervals, key=lambda i: i.onset)):
            onset, apex, offset = interval.onset + 1, interval.apex + 1, interval.offset + 1
            au_cell: object = "+".join(interval.action_units)
            units, apex_cell = tuple(interval.action_units), apex
            quirk = next((q for q, kind in todo.items() if kind in (None, interval.kind)), None)
            if quirk is not None:
                del todo[quirk]
                planted[quirk] = {"video_id": video_id, "row": header_row + len(rows) + 1}
            if quirk in ("apex_missing_micro", "apex_missing_macro"):
                apex_cell, apex = -1, None
            elif quirk in AU_CELLS:
                au_cell, units = AU_CELLS[quirk]
            filename = f"{name}_{k + 1}"
            rows.append(
                [
                    subject,  # zero-padded text in the real file
                    filename,
                    v_index + 1,
                    onset,
                    apex_cell,
                    offset,
                    offset - onset + 1,
                    TYPE[interval.kind],
                    au_cell,
                    None,
                ]
            )
            intervals.append(
                {
                    "onset": onset,
                    "apex": apex,
                    "offset": offset,
                    "kind": interval.kind,
                    "emotion": None,
                    "action_units": units,
                    "row": header_row + len(rows),
                    "filename": filename,
                }
            )
        manifest[video_id] = {
            "subject": f"samm_long/{subject}",
            "folder": folder,
            "fps": cfg.fps,
            "first_frame": 1,
            "last_frame": video.num_frames,
            "intervals": intervals,
        }
    if todo:
        raise ValueError(f"planting {sorted(todo)} needs more intervals of their kind than {cfg} has")
    annotation = root / f"SAMM_LongVideos_V2_Release.{annotation_format}"
    write_sheet(annotation, [*([line] for line in PREAMBLE), list(HEADER), *rows])
    return {"frames_root": frames_root, "annotation": annotation, "planted": planted, "videos": manifest}
