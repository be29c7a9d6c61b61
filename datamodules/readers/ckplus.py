"""CK+ reader (specs/datasets.md section 7): posed macro-expressions, the macro source for transfer.

On disk (as distributed): `root/cohn-kanade-images/S005/001/S005_001_00000001.png ...` (some archives nest it
as `extended-cohn-kanade-images/cohn-kanade-images/`), `root/Emotion/S005/001/S005_001_00000011_emotion.txt`
(one float, e.g. `   3.0000000e+00`, named after the LAST frame) and `root/FACS/S005/001/..._facs.txt`
(lines `AU intensity`). Sequences run from neutral to the peak: onset = first frame, apex = offset = last
frame. Only 327 of the 593 sequences carry an emotion file; the others are dropped with that reason.
Action units keep their coded intensity as a letter (`12E`; intensity 0 = not coded -> just `12`).
"""

from __future__ import annotations

from pathlib import Path

from datamodules.readers.base import ReaderError, ReadReport, ReadResult, frame_folder
from datamodules.samples import Sample, validate_sample

EMOTIONS = {1: "anger", 2: "contempt", 3: "disgust", 4: "fear", 5: "happy", 6: "sadness", 7: "surprise"}
INTENSITY = "ABCDE"


def _images_root(root: Path) -> Path:
    for candidate in (
        root / "cohn-kanade-images",
        root / "extended-cohn-kanade-images" / "cohn-kanade-images",
    ):
        if candidate.is_dir():
            return candidate
    raise ReaderError(
        f"CK+: no cohn-kanade-images/ folder in {root} (data.ckplus_root must hold cohn-kanade-images/, "
        "Emotion/ and FACS/)"
    )


def _emotion(path: Path) -> str:
    try:
        code = int(float(path.read_text().strip()))
    except ValueError as err:
        raise ReaderError(f"{path}: not a CK+ emotion code ({err})") from err
    if code not in EMOTIONS:
        raise ReaderError(f"{path}: emotion code {code} is not one of 1-7")
    return EMOTIONS[code]


def _action_units(path: Path) -> tuple[str, ...]:
    units = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            au, intensity = (float(v) for v in line.split()[:2])
        except ValueError as err:
            raise ReaderError(
                f"{path} line {line_no}: expected 'AU intensity', got {line.strip()!r}"
            ) from err
        level = int(intensity)
        units.append(f"{int(au)}{INTENSITY[level - 1] if 1 <= level <= 5 else ''}")
    return tuple(units)


def read_ckplus(
    root: str | Path | None = None, strict: bool = False, fps: float = 30.0, require_label: bool = True
) -> ReadResult:
    """Samples of CK+ (`ckplus/S005/001`); unlabelled sequences dropped (or kept with emotion 'none')."""
    if root is None:
        raise ReaderError(
            "CK+: no folder given; set data.ckplus_root=PATH (the folder holding cohn-kanade-images/, "
            "Emotion/, FACS/) or MERLIN_CKPLUS_ROOT"
        )
    root = Path(root)
    images = _images_root(root)
    report = ReadReport("ckplus", strict=strict)
    samples = []
    for subject_dir in sorted(p for p in images.iterdir() if p.is_dir() and p.name.startswith("S")):
        for seq_dir in sorted(p for p in subject_dir.iterdir() if p.is_dir()):
            subject, clip = subject_dir.name, seq_dir.name
            sample_id = f"ckplus/{subject}/{clip}"
            frames = frame_folder(seq_dir, suffixes=(".png", ".jpg"))
            numbers = frames.frame_numbers
            labels = sorted((root / "Emotion" / subject / clip).glob("*_emotion.txt"))
            source = str(labels[0]) if labels else str(seq_dir)
            if not labels:
                if require_label:
                    report.exclude(sample_id, "no emotion label (CK+ labels 327 of 593 sequences)", source)
                    continue
                emotion = "none"
            else:
                try:
                    emotion = _emotion(labels[0])
                except ReaderError as err:
                    report.drop(sample_id, str(err), source)
                    continue
            facs = sorted((root / "FACS" / subject / clip).glob("*_facs.txt"))
            action_units = _action_units(facs[0]) if facs else ()
            sample = Sample(
                sample_id,
                "ckplus",
                f"ckplus/{subject}",
                clip,
                frames,
                numbers[0],
                numbers[-1],
                numbers[-1],
                emotion,
                action_units,
                fps,
                source,
            )
            validate_sample(sample)
            samples.append(sample)
    if not samples and not report.drops:
        raise ReaderError(f"CK+: no sequences found under {images}")
    return ReadResult(samples, report)
