"""Synthetic long clips written as an SMIC-E copy (HS, VIS and/or NIR), with its documented quirks planted.

Written on disk, root standing for `SMIC-E_raw image`:
    root/HS_long/SMIC-HS-E/s01/s1_ne_01/image308000.jpg          root/HS_long/SMIC-HS-E_annotation.xlsx
    root/VIS_long/SMIC-VIS-E/VIS/s01/s1_ne_01/s1_ne_01 308000.jpg root/VIS_long/SMIC-VIS-E_annotation.xlsx
    root/NIR_long/SMIC-NIR-E/NIR/...                              root/NIR_long/SMIC-NIR-E_annotation.xlsx
Subject folders zero-padded (`s01`), clip names not (`s1_ne_01`), numbered per subject and label; frame
numbers absolute in the recording (6 digits, each clip elsewhere in it), in VIS/NIR after a space. The label
file has the header Subject | Filename | Emotion | FirstF | OnsetF | OffsetF (Subject an int, FirstF the
first frame's number, OnsetF/OffsetF absolute too), one row per clip, then a blank row and free-text rows.
HS is rendered at 100 fps, VIS and NIR at 25 fps (one rendering shared by both, as the two cameras filmed the
same takes); each clip holds exactly one micro-expression and no macro-expression, as in SMIC-E.

Planted (always, they are the layout): the free-text rows after the data (manifest `planted["free_text"]`:
subset -> their rows) and, when NIR is written, NIR onsets/offsets that differ from VIS's (one frame later,
one frame earlier: `planted["nir_onsets_differ"]`). The manifest's `videos` holds what the reader must
return for each clip.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from datamodules.long_videos import MICRO
from datamodules.readers.export.common import write_sheet
from datamodules.readers.export.long_common import write_long_frames
from datamodules.readers.smic_e import LABELS, SUBSETS
from datamodules.readers.synthetic_long import SyntheticLongConfig, synthetic_long_videos

# 2 subjects x 2 clips x 2 s: 800 HS frames, 200 VIS (and NIR) frames.
SMALL = SyntheticLongConfig(
    dataset="smic_e",
    num_subjects=2,
    videos_per_subject=2,
    seconds=2.0,
    fps=100.0,
    height=64,
    width=56,
    micro_per_video=1,
    macro_per_video=0,
    blinks_per_video=1,
    head_moves_per_video=0,
)
HEADER = ("Subject", "Filename", "Emotion", "FirstF", "OnsetF", "OffsetF")
FRAME_BASE = 308000  # HS numbers are the index in the whole recording (`image308866.jpg`)
FREE_TEXT = (
    "FirstF: the first frame of the long clip; OnsetF/OffsetF: onset and offset of the micro-expression",
    "Clips missing from this release were lost (data loss).",
)


def _folder(root: Path, subset: str, subject: int, clip: str) -> Path:
    base = root / f"{subset}_long" / f"SMIC-{subset}-E"
    return (base if subset == "HS" else base / subset) / f"s{subject:02d}" / clip


def _namer(subset: str, clip: str, first: int):
    """Synthetic frame i -> its file name: `image<first + i>.jpg` (HS), `<clip> <first + i>.jpg` (VIS/NIR)."""
    if subset == "HS":
        return lambda i: f"image{first + i}.jpg"
    return lambda i: f"{clip} {first + i}.jpg"


def export_smic_e(
    root: str | Path,
    config: SyntheticLongConfig | None = None,
    subsets: tuple[str, ...] = ("HS",),
    annotation_format: str = "xlsx",
) -> dict:
    """Write the copy; returns {"frames_root", "annotations": {subset: path}, "planted", "videos":
    {video_id: {"subject", "folder", "fps", "first_frame", "last_frame", "intervals"}}} for every subset.

    Each clip's one interval is {"onset", "apex" (None), "offset", "kind" (micro), "emotion",
    "action_units" (()), "row"} as the reader must return it. `config.fps` is HS's; VIS and NIR use 25.
    """
    unknown = set(subsets) - set(SUBSETS)
    if unknown:
        raise ValueError(f"unknown SMIC-E subset(s) {sorted(unknown)}; choose from {', '.join(SUBSETS)}")
    if annotation_format not in ("xlsx", "csv"):
        raise ValueError(f"annotation_format must be xlsx or csv, got {annotation_format!r}")
    cfg = config or SMALL
    if cfg.micro_per_video != 1 or cfg.macro_per_video != 0:
        raise ValueError(
            "an SMIC-E long clip holds exactly one micro-expression: micro_per_video=1, macro_per_video=0 "
            f"(got {cfg.micro_per_video}, {cfg.macro_per_video})"
        )
    root = Path(root)
    manifest: dict[str, dict] = {}
    planted: dict[str, dict] = {"free_text": {}}
    annotations: dict[str, Path] = {}
    for subset in subsets:
        dataset, fps = SUBSETS[subset]
        rendering = cfg if subset == "HS" else replace(cfg, fps=fps)
        counter: dict[tuple[int, str], int] = {}
        rows: list[list] = []
        for k, video in enumerate(synthetic_long_videos(rendering)):
            (interval,) = video.intervals
            n = video.frames.subject_index + 1
            short = LABELS[interval.emotion]
            counter[(n, short)] = counter.get((n, short), 0) + 1
            clip = f"s{n}_{short}_{counter[(n, short)]:02d}"
            first = FRAME_BASE + 1000 * k + 37 * (k % 5)  # clips lie apart in the recording
            folder = _folder(root, subset, n, clip)
            write_long_frames(video, folder, _namer(subset, clip, first))
            onset, offset = first + interval.onset, first + interval.offset
            if subset == "NIR":  # the NIR sheet's onset/offset differ (specs/datasets.md section 3)
                onset, offset = onset + 1, offset - 1
            rows.append([n, clip, interval.emotion, first, onset, offset])
            video_id = f"{dataset}/s{n:02d}/{clip}"
            manifest[video_id] = {
                "subject": f"{dataset}/s{n:02d}",
                "folder": folder,
                "fps": fps,
                "first_frame": first,
                "last_frame": first + video.num_frames - 1,
                "intervals": [
                    {
                        "onset": onset,
                        "apex": None,
                        "offset": offset,
                        "kind": MICRO,
                        "emotion": interval.emotion,
                        "action_units": (),
                        "row": len(rows) + 1,  # the header is row 1
                    }
                ],
            }
        if subset == "NIR":
            planted["nir_onsets_differ"] = {"subset": "NIR", "shift": (1, -1)}
        text_rows = [[None], *[[line] for line in FREE_TEXT]]
        planted["free_text"][subset] = list(range(len(rows) + 3, len(rows) + 2 + len(text_rows)))
        base = root / f"{subset}_long"
        annotations[subset] = base / f"SMIC-{subset}-E_annotation.{annotation_format}"
        write_sheet(annotations[subset], [list(HEADER), *rows, *text_rows])
    return {"frames_root": root, "annotations": annotations, "planted": planted, "videos": manifest}
