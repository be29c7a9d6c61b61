"""The synthetic database written as a CK+ copy: neutral -> peak sequences (frames 0..apex of each synthetic
clip) under `cohn-kanade-images/`, `Emotion/` and `FACS/` files named after the last frame."""

from __future__ import annotations

from pathlib import Path

from datamodules.readers.export.common import write_frames
from datamodules.readers.synthetic import SyntheticConfig, _plan, synthetic_samples

SMALL = SyntheticConfig(num_subjects=3, clips_per_subject=6, height=64, width=56)
NEGATIVE = (1, 2, 3, 4, 6)  # anger, contempt, disgust, fear, sadness
CODES = {"positive": 5, "surprise": 7}
NAMES = {1: "anger", 2: "contempt", 3: "disgust", 4: "fear", 5: "happy", 6: "sadness", 7: "surprise"}


def export_ckplus(
    root: str | Path,
    config: SyntheticConfig | None = None,
    quirks: bool = True,
    extended_nesting: bool = False,
) -> dict:
    """Write the copy; returns {"frames_root", "planted", "samples" (expected after reading)}."""
    cfg = config or SMALL
    root = Path(root)
    images = (
        root / "extended-cohn-kanade-images" / "cohn-kanade-images"
        if extended_nesting
        else root / "cohn-kanade-images"
    )
    manifest, planted, n_negative = {}, {}, 0
    for i, sample in enumerate(synthetic_samples(cfg)):
        s_index, c_index = sample.frames.subject_index, sample.frames.clip_index
        subject, seq = f"S{5 + s_index * 5:03d}", f"{c_index + 1:03d}"
        apex_index = _plan(cfg, s_index, c_index).apex_index
        numbers = list(range(1, apex_index + 2))
        write_frames(
            cfg,
            s_index,
            c_index,
            images / subject / seq,
            numbers,
            lambda n, s=subject, q=seq: f"{s}_{q}_{n:08d}.png",
        )
        last = f"{subject}_{seq}_{numbers[-1]:08d}"
        if sample.emotion == "negative":
            code = NEGATIVE[n_negative % len(NEGATIVE)]
            n_negative += 1
        else:
            code = CODES[sample.emotion]
        sample_id = f"ckplus/{subject}/{seq}"
        if quirks and i == 0:
            planted["no_label"] = sample_id
        else:
            (root / "Emotion" / subject / seq).mkdir(parents=True, exist_ok=True)
            (root / "Emotion" / subject / seq / f"{last}_emotion.txt").write_text(f"   {code:.7e}\n")
            manifest[sample_id] = {
                "emotion": NAMES[code],
                "onset": 1,
                "apex": numbers[-1],
                "offset": numbers[-1],
            }
        facs = root / "FACS" / subject / seq
        facs.mkdir(parents=True, exist_ok=True)
        lines = [f"   {float(au):.7e}   {float(k % 5 + 1):.7e}" for k, au in enumerate(sample.action_units)]
        (facs / f"{last}_facs.txt").write_text("\n".join(lines) + "\n")
    if quirks:
        (images / ".DS_Store").write_bytes(b"\0")
        planted["ds_store"] = str(images / ".DS_Store")
    return {"frames_root": root, "planted": planted, "samples": manifest}
