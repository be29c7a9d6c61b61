"""SMIC reader (specs/datasets.md section 3): HS, VIS or NIR, labels from the folder tree, no apex.

On disk: `root/<HS|VIS|NIR>/s<N>/micro/<negative|positive|surprise>/s<N>_<ne|po|sur>_<NN>/<frames>`, with
unpadded subject folders (`s1`), frames `reg_image<N>.bmp` or `image<N>.jpg` sorted by their trailing number.
Copies without the `micro/` level are read too; `non_micro/` is ignored. Subjects are zero-padded in the ids
(`smic/s01`) as in the MEGC2019 list, so they sort naturally. SMIC has no apex: onset and offset are the
first and last frames, the apex is None (the feature spec's fallback or spotter stands in).
"""

from __future__ import annotations

import re
from pathlib import Path

from datamodules.readers.base import ReaderError, ReadReport, ReadResult, frame_folder
from datamodules.samples import Sample, validate_sample

SUBSETS = {"HS": ("smic", 100.0), "VIS": ("smic_vis", 25.0), "NIR": ("smic_nir", 25.0)}
LABELS = {"negative": "ne", "positive": "po", "surprise": "sur"}


def read_smic(root: str | Path | None = None, subset: str = "HS", strict: bool = False) -> ReadResult:
    """Samples of one SMIC subset (`smic/s01/s1_ne_01`), with every drop in the report."""
    if subset not in SUBSETS:
        raise ValueError(f"unknown SMIC subset {subset!r}; choose from {', '.join(SUBSETS)}")
    if root is None:
        raise ReaderError(
            "SMIC: no frame folder given; set data.smic_root=PATH (the folder holding HS/, VIS/, NIR/) "
            "or MERLIN_SMIC_ROOT"
        )
    base = Path(root) / subset
    if not base.is_dir():
        raise ReaderError(f"SMIC: {base} does not exist (data.smic_root must hold HS/, VIS/, NIR/)")
    dataset, fps = SUBSETS[subset]
    report = ReadReport(dataset, strict=strict)
    samples = []
    subject_dirs = sorted(
        (p for p in base.iterdir() if p.is_dir() and re.fullmatch(r"s\d+", p.name)),
        key=lambda p: int(p.name[1:]),
    )
    if not subject_dirs:
        raise ReaderError(f"SMIC: no subject folders s1, s2, ... in {base}")
    for subject_dir in subject_dirs:
        subject = f"s{int(subject_dir.name[1:]):02d}"
        micro = subject_dir / "micro" if (subject_dir / "micro").is_dir() else subject_dir
        for label_dir in sorted(p for p in micro.iterdir() if p.is_dir()):
            if label_dir.name == "non_micro":
                continue
            if label_dir.name not in LABELS:
                raise ReaderError(f"SMIC: unknown label folder {label_dir} (expected {', '.join(LABELS)})")
            for clip_dir in sorted(p for p in label_dir.iterdir() if p.is_dir()):
                clip = clip_dir.name
                sample_id = f"{dataset}/{subject}/{clip}"
                match = re.fullmatch(r"s(\d+)_([a-z]+)_\d+", clip)
                if not match or match[2] != LABELS[label_dir.name] or int(match[1]) != int(subject[1:]):
                    report.drop(
                        sample_id,
                        f"clip name {clip!r} disagrees with its folders "
                        f"({subject_dir.name}/{label_dir.name})",
                        str(clip_dir),
                    )
                    continue
                frames = frame_folder(clip_dir)
                numbers = frames.frame_numbers
                sample = Sample(
                    sample_id,
                    dataset,
                    f"{dataset}/{subject}",
                    clip,
                    frames,
                    numbers[0],
                    None,
                    numbers[-1],
                    label_dir.name,
                    (),
                    fps,
                    str(clip_dir),
                )
                validate_sample(sample)
                samples.append(sample)
    return ReadResult(samples, report)
