"""SMIC reader (specs/datasets.md section 3): HS, VIS or NIR, labels from the folder tree, no apex.

Expected on disk (e.g. `SMIC_all_cropped/`):
    root/<HS|VIS|NIR>/s<N>/micro/<negative|positive|surprise>/s<N>_<ne|po|sur>_<NN>/<frames>
with unpadded subject folders (`s1`), frames `reg_image<N>.bmp` (cropped) or `image<N>.bmp|.jpg` (raw), any
image suffix, sorted by the trailing number of the name (so 99 comes before 100). Copies without the
`micro/` level (`s1/negative/s1_ne_01/`) are read too; `non_micro/` is ignored. There is no annotation file.

Samples: subject `smic/s01` (zero-padded as in the MEGC2019 list, so subjects sort naturally), dataset `smic`
for HS (100 fps), `smic_vis` / `smic_nir` for VIS / NIR (25 fps); clip = folder name (`s1_ne_01`),
sample_id `smic/s01/s1_ne_01`; emotion = label folder name; onset/offset = first/last frame on disk; apex
None (the feature spec's apex fallback or spotter stands in); no AUs; source = the clip folder.

A clip whose name disagrees with its folders (label or subject), or whose folder holds no frames, is dropped
with the reason (`strict=True`: raised). An unknown label folder raises, naming it.
"""

from __future__ import annotations

import re
from pathlib import Path

from datamodules.protocols import natural_key
from datamodules.readers.base import ReaderError, ReadReport, ReadResult, frame_folder
from datamodules.samples import Sample, validate_sample

SUBSETS = {"HS": ("smic", 100.0), "VIS": ("smic_vis", 25.0), "NIR": ("smic_nir", 25.0)}
LABELS = {"negative": "ne", "positive": "po", "surprise": "sur"}
CLIP = re.compile(r"s(\d+)_([a-z]+)_(\d+)")
IGNORED = {"non_micro"}  # SMIC_all_raw keeps the non-micro-expression takes beside `micro/`


def _subject_dirs(base: Path) -> list[Path]:
    dirs = [p for p in base.iterdir() if p.is_dir() and re.fullmatch(r"s\d+", p.name)]
    return sorted(dirs, key=lambda p: int(p.name[1:]))


def _label_dirs(subject_dir: Path) -> list[Path]:
    micro = subject_dir / "micro"
    parent = micro if micro.is_dir() else subject_dir
    return sorted(
        (p for p in parent.iterdir() if p.is_dir() and p.name not in IGNORED and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


def read_smic(root: str | Path | None = None, subset: str = "HS", strict: bool = False) -> ReadResult:
    """Samples of one SMIC subset (`smic/s01/s1_ne_01`), with every drop in the report.

    `root` holds HS/, VIS/, NIR/; `subset` picks one (case-insensitive).
    """
    key = str(subset).upper()
    if key not in SUBSETS:
        raise ValueError(f"unknown SMIC subset {subset!r}; choose from {', '.join(SUBSETS)}")
    if root is None:
        raise ReaderError(
            "SMIC: no frame folder given; set data.smic_root=PATH (the folder holding HS/, VIS/, NIR/) "
            "or MERLIN_SMIC_ROOT"
        )
    root = Path(root)
    if not root.is_dir():
        raise ReaderError(
            f"SMIC frame folder {root} does not exist (data.smic_root must hold HS/, VIS/, NIR/)"
        )
    base = root / key
    if not base.is_dir():
        present = ", ".join(sorted(p.name for p in root.iterdir() if p.is_dir())) or "nothing"
        raise ReaderError(
            f"SMIC: {base} does not exist (data.smic_root must hold HS/, VIS/, NIR/; {root} holds {present})"
        )
    dataset, fps = SUBSETS[key]
    report = ReadReport(dataset, strict=strict)
    subject_dirs = _subject_dirs(base)
    if not subject_dirs:
        raise ReaderError(f"SMIC: no subject folders s1, s2, ... in {base}")

    samples: list[Sample] = []
    for subject_dir in subject_dirs:
        subject = f"s{int(subject_dir.name[1:]):02d}"
        for label_dir in _label_dirs(subject_dir):
            if label_dir.name not in LABELS:
                # SMIC-E puts clips straight under the subject (s01/s1_ne_01): name that mix-up explicitly.
                hint = (
                    "; this looks like SMIC-E (long clips with onset/offset in SMIC-*-E_annotation.xlsx), "
                    "which this reader does not read"
                    if CLIP.fullmatch(label_dir.name)
                    else ""
                )
                raise ReaderError(
                    f"SMIC: unknown label folder {label_dir} (expected {', '.join(LABELS)}, "
                    f"optionally under micro/){hint}"
                )
            clip_dirs = sorted(
                (p for p in label_dir.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)
            )
            for clip_dir in clip_dirs:
                clip = clip_dir.name
                sample_id = f"{dataset}/{subject}/{clip}"  # smic/s01/s1_ne_01, smic_vis/s01/...
                source = str(clip_dir)
                match = CLIP.fullmatch(clip)
                if not match or match[2] != LABELS[label_dir.name] or int(match[1]) != int(subject[1:]):
                    expected = f"s{int(subject[1:])}_{LABELS[label_dir.name]}_NN"
                    folders = f"{subject_dir.name}/{label_dir.name}"
                    reason = f"clip name {clip!r} disagrees with its folders ({folders}: expected {expected})"
                    report.drop(sample_id, reason, source)
                    continue
                try:
                    frames = frame_folder(clip_dir)
                except ReaderError as err:
                    report.drop(sample_id, str(err), source)
                    continue
                numbers = frames.frame_numbers
                sample = Sample(
                    sample_id=sample_id,
                    dataset=dataset,
                    subject=f"{dataset}/{subject}",
                    clip=clip,
                    frames=frames,
                    onset=numbers[0],
                    apex=None,
                    offset=numbers[-1],
                    emotion=label_dir.name,
                    action_units=(),
                    fps=fps,
                    source=source,
                )
                validate_sample(sample)
                samples.append(sample)
    per_label = {w: sum(s.emotion == w for s in samples) for w in LABELS}
    report.note(
        f"SMIC {key}: {len(samples)} clips from {len({s.subject for s in samples})} subjects "
        f"({', '.join(f'{w} {n}' for w, n in per_label.items())}); no apex annotated"
    )
    return ReadResult(samples, report)
