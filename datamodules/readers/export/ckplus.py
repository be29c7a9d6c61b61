"""The synthetic database written as a CK+ copy, for testing `read_ckplus` without the data.

Written under `root` (or `root/extended-cohn-kanade-images/` for the nested archives): sequences run
neutral -> peak, so frames 0..apex_index of each synthetic clip become
`cohn-kanade-images/S005/001/S005_001_00000001.png ...` and the apex is the last frame; `Emotion/` and
`FACS/` files are named after that last frame, in the distribution's number format (`   3.0000000e+00`).
Subjects S005, S010, ...; sequences 001, 002, ...
Classes of the micro database: positive -> happy (5), surprise -> surprise (7), negative cycling anger,
contempt, disgust, fear, sadness (1, 2, 3, 4, 6). A config in CK+'s own words (`au_table="ckplus"`, the
synthetic_macro database) keeps each clip's word as its code, and with `expression_profile="neutral_to_peak"`
its clips already end at the apex, so each is written whole. FACS intensities cycle 1..5 (A..E).

Planted quirks (`quirks=True`, named in the manifest's "planted"):
- `no_label`: a sequence without an emotion file (excluded by the reader, "no emotion label");
- `ds_store`: `.DS_Store` files in the images root and in a sequence folder (ignored);
- `facs`: a FACS file with an intensity-0 line, read as a bare AU number (the others carry A..E).
"""

from __future__ import annotations

from pathlib import Path

from datamodules.readers.export.common import write_frames
from datamodules.readers.synthetic import SyntheticConfig, _plan, synthetic_samples

SMALL = SyntheticConfig(num_subjects=3, clips_per_subject=6, height=64, width=56)
NEGATIVE = (1, 2, 3, 4, 6)  # anger, contempt, disgust, fear, sadness
CODES = {"positive": 5, "surprise": 7}
NAMES = {1: "anger", 2: "contempt", 3: "disgust", 4: "fear", 5: "happy", 6: "sadness", 7: "surprise"}
CKPLUS_CODES = {name: code for code, name in NAMES.items()}


def export_ckplus(
    root: str | Path,
    config: SyntheticConfig | None = None,
    quirks: bool = True,
    extended_nesting: bool = False,
) -> dict:
    """Write the copy under `root`. Returns {"frames_root", "annotation" (the Emotion/ folder), "planted":
    {quirk: sample_id or path}, "samples": {sample_id: the fields `read_ckplus` should give (subject, clip,
    emotion, onset, apex, offset, action_units)}}; the unlabelled sequence is not in "samples"."""
    cfg = config or SMALL
    root = Path(root)
    images = root / "cohn-kanade-images"
    if extended_nesting:
        images = root / "extended-cohn-kanade-images" / "cohn-kanade-images"
    manifest: dict[str, dict] = {}
    planted: dict[str, str] = {}
    n_negative = 0
    own_words = set(cfg.classes) <= set(CKPLUS_CODES)  # CK+'s words already: each clip keeps its own code
    for i, sample in enumerate(synthetic_samples(cfg)):
        s_index, c_index = sample.frames.subject_index, sample.frames.clip_index
        subject, seq = f"S{5 + s_index * 5:03d}", f"{c_index + 1:03d}"
        sample_id = f"ckplus/{subject}/{seq}"
        # Neutral -> peak: the clip up to its apex, numbered from 1 as CK+ does.
        numbers = list(range(1, _plan(cfg, s_index, c_index).apex_index + 2))
        folder = images / subject / seq
        write_frames(
            cfg, s_index, c_index, folder, numbers, lambda n, s=subject, q=seq: f"{s}_{q}_{n:08d}.png"
        )
        last = f"{subject}_{seq}_{numbers[-1]:08d}"
        if own_words:
            code = CKPLUS_CODES[sample.emotion]
        elif sample.emotion == "negative":
            code = NEGATIVE[n_negative % len(NEGATIVE)]
            n_negative += 1
        else:
            code = CODES[sample.emotion]
        facs_lines = [(int(au), k % 5 + 1) for k, au in enumerate(sample.action_units)]
        if quirks and i == 2:
            facs_lines[-1] = (facs_lines[-1][0], 0)  # intensity 0: AU present, intensity not coded
            planted["facs"] = sample_id
        facs = root / "FACS" / subject / seq
        facs.mkdir(parents=True, exist_ok=True)
        (facs / f"{last}_facs.txt").write_text(
            "".join(f"   {float(au):.7e}   {float(level):.7e}\n" for au, level in facs_lines)
        )
        if quirks and i == 0:
            planted["no_label"] = sample_id
            continue
        emotion_dir = root / "Emotion" / subject / seq
        emotion_dir.mkdir(parents=True, exist_ok=True)
        (emotion_dir / f"{last}_emotion.txt").write_text(f"   {float(code):.7e}\n")
        manifest[sample_id] = {
            "subject": f"ckplus/{subject}",
            "clip": seq,
            "emotion": NAMES[code],
            "onset": 1,
            "apex": numbers[-1],
            "offset": numbers[-1],
            "action_units": tuple(f"{au}{'ABCDE'[level - 1] if level else ''}" for au, level in facs_lines),
        }
    if quirks:
        victim = images / "S005" / "001"  # frame_folder runs on it before the label check
        for place in (images, victim):
            (place / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
        planted["ds_store"] = str(victim / ".DS_Store")
    return {"frames_root": root, "annotation": root / "Emotion", "planted": planted, "samples": manifest}
