"""CK+ reader (specs/datasets.md section 7): posed macro-expressions, the macro source for transfer.

Expected on disk (as distributed), under `root`:
- `cohn-kanade-images/S005/001/S005_001_00000001.png ...`; some archives nest it as
  `extended-cohn-kanade-images/cohn-kanade-images/`. Files are ordered by the trailing frame number;
  `.DS_Store` and other non-image files are ignored.
- `Emotion/S005/001/S005_001_00000011_emotion.txt`: one float in scientific notation (`   3.0000000e+00`),
  read as `int(float(text))`: 1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy, 6 sadness, 7 surprise.
  The file is named after the LAST (peak) frame. Only 327 of the 593 sequences have one ("if there is no
  file it means that there is no emotion label").
- `FACS/S005/001/S005_001_00000011_facs.txt` (optional): lines `AU intensity`, both floats. Action units
  keep a non-zero intensity as a letter, 1..5 -> A..E (`12E`); intensity 0 (not coded) gives a bare `12`.

Sequences run from neutral to the peak and have no offset: onset = first frame, apex = offset = the last
frame (the one the emotion file is named after). Subject `ckplus/S005`, clip `001`, sample id
`ckplus/S005/001`, emotion the code's name. Unlabelled sequences are excluded ("no emotion label") when
`require_label`, else kept with emotion `unlabelled` (no label map covers that word, on purpose).
A malformed emotion file (not a number, 0, out of 1..7) or FACS file drops the sequence / leaves its AUs
empty, and raises a `ReaderError` naming the file in strict mode.
"""

from __future__ import annotations

from pathlib import Path

from datamodules.readers.base import (
    ReaderError,
    ReadReport,
    ReadResult,
    counts,
    frame_folder,
    trailing_number,
)
from datamodules.samples import Sample, validate_sample

DATASET = "ckplus"
EMOTIONS = {1: "anger", 2: "contempt", 3: "disgust", 4: "fear", 5: "happy", 6: "sadness", 7: "surprise"}
UNLABELLED = "unlabelled"
INTENSITY = "ABCDE"  # FACS intensity 1..5
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
NO_ROOT = (
    "CK+: no folder given; set data.ckplus_root=PATH (the folder holding cohn-kanade-images/, Emotion/ and "
    "FACS/) or MERLIN_CKPLUS_ROOT"
)


def images_root(root: Path) -> Path:
    """`root/cohn-kanade-images`, or the `extended-cohn-kanade-images/cohn-kanade-images` nesting."""
    for candidate in (
        root / "cohn-kanade-images",
        root / "extended-cohn-kanade-images" / "cohn-kanade-images",
    ):
        if candidate.is_dir():
            return candidate
    raise ReaderError(
        f"CK+: no cohn-kanade-images/ folder in {root} (nor extended-cohn-kanade-images/"
        "cohn-kanade-images/); data.ckplus_root must hold cohn-kanade-images/, Emotion/ and FACS/"
    )


def emotion_code(path: Path) -> str:
    """The emotion name of an `_emotion.txt` file; ValueError (without the path) if it is not 1..7."""
    text = path.read_text(errors="replace").strip()
    try:
        value = float(text)
    except ValueError:
        raise ValueError(
            f"not a CK+ emotion code: {text[:40]!r} (expected one number such as 3.0e+00)"
        ) from None
    code = int(value)
    if code not in EMOTIONS:
        raise ValueError(f"emotion code {text} ({code}) is not one of 1-7 (0 = neutral is never a label)")
    return EMOTIONS[code]


def facs_units(path: Path) -> tuple[str, ...]:
    """Action units of a `_facs.txt` file: `12E` for AU 12 at intensity 5, `12` when intensity is 0."""
    units = []
    for line_no, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            au, intensity = (float(v) for v in line.split())
        except ValueError:
            raise ValueError(f"line {line_no}: expected 'AU intensity', got {line.strip()!r}") from None
        level = int(intensity)
        if not 0 <= level <= 5 or au != int(au) or au < 1:
            raise ValueError(f"line {line_no}: AU {au:g} intensity {intensity:g} is not a FACS code")
        units.append(f"{int(au)}{INTENSITY[level - 1] if level else ''}")
    return tuple(units)


def _files(folder: Path, pattern: str) -> list[Path]:
    return sorted(folder.glob(pattern)) if folder.is_dir() else []


def read_ckplus(
    root: str | Path | None = None, strict: bool = False, fps: float = 30.0, require_label: bool = True
) -> ReadResult:
    """Samples of CK+ (`ckplus/S005/001`, onset = first frame, apex = offset = last frame), with every
    repair and drop in the report. Unlabelled sequences are excluded (never an error, even when strict)
    unless `require_label=False`."""
    if root is None:
        raise ReaderError(NO_ROOT)
    root = Path(root)
    if not root.is_dir():
        raise ReaderError(f"CK+ folder does not exist: {root} (data.ckplus_root)")
    images = images_root(root)
    report = ReadReport(DATASET, strict=strict)
    report.note(f"CK+ images under {images}")
    samples: list[Sample] = []
    unlabelled = 0
    for subject_dir in sorted(p for p in images.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for seq_dir in sorted(p for p in subject_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            subject, clip = subject_dir.name, seq_dir.name
            sample_id = f"{DATASET}/{subject}/{clip}"
            try:
                frames = frame_folder(seq_dir, FRAME_SUFFIXES)
            except ReaderError as err:  # an empty sequence folder: that sequence only, not the database
                report.drop(sample_id, str(err), str(seq_dir))
                continue
            numbers = frames.frame_numbers
            labels = _files(root / "Emotion" / subject / clip, "*_emotion.txt")
            source = str(labels[0]) if labels else str(seq_dir)
            if len(labels) > 1:
                report.drop(
                    sample_id, f"{len(labels)} emotion files: {', '.join(p.name for p in labels)}", source
                )
                continue
            if not labels:
                unlabelled += 1
                if require_label:
                    report.exclude(sample_id, "no emotion label (CK+ labels 327 of 593 sequences)", source)
                    continue
                emotion = UNLABELLED
            else:
                try:
                    emotion = emotion_code(labels[0])
                except ValueError as err:
                    report.drop(sample_id, f"malformed emotion file {labels[0].name}: {err}", source)
                    continue
            peak = numbers[-1]
            named = trailing_number(labels[0]) if labels else None  # S005_001_00000011_emotion -> 11
            if named is not None and named != peak:
                # The label belongs to the frame it is named after; frames past it are not the expression.
                if named not in numbers:
                    report.drop(
                        sample_id,
                        f"label file names frame {named}, not among frames {numbers[0]}..{peak}",
                        source,
                    )
                    continue
                report.repair(
                    sample_id,
                    f"label file names frame {named}, not the last frame {peak}: apex = offset = {named}",
                    source,
                )
                peak = named
            action_units: tuple[str, ...] = ()
            facs = _files(root / "FACS" / subject / clip, "*_facs.txt")
            if facs:
                try:
                    action_units = facs_units(facs[0])
                except ValueError as err:
                    report.repair(sample_id, f"{facs[0].name} {err}; action units left empty", str(facs[0]))
            sample = Sample(
                sample_id,
                DATASET,
                f"{DATASET}/{subject}",
                clip,
                frames,
                numbers[0],
                peak,
                peak,
                emotion,
                action_units,
                fps,
                source,
            )
            validate_sample(sample)
            samples.append(sample)
    if not samples and not report.drops:
        raise ReaderError(f"CK+: no sequences (S*/NNN/ folders of images) under {images}")
    report.note(
        f"CK+: {len(samples)} sequences kept, {unlabelled} without an emotion file; "
        f"emotions {counts(s.emotion for s in samples)}"
    )
    return ReadResult(samples, report)
