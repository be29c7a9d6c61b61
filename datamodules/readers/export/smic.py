"""The synthetic database written as a SMIC copy, as in SMIC_all_cropped.

Written on disk: `root/<subset>/s<N>/micro/<label>/s<N>_<ne|po|sur>_<NN>/reg_image<frame>.<bmp|jpg>` for each
subset asked for (the same clips in each), subject folders unpadded (`s1`), labels the synthetic classes
(negative, positive, surprise). Frame numbers are absolute in the recording and unpadded, starting just
below `first_frame`'s next power of ten by default (9990 -> 10000+), so every clip crosses a digit boundary
and numeric order differs from string order. `with_micro_level=False` leaves out the `micro/` level.

Planted (manifest `planted`, none of them is a sample): a `non_micro/` take beside the micro clips, which
the reader must ignore, and a `Thumbs.db` among the frames of one clip, which is not an image.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from datamodules.readers.export.common import write_frames
from datamodules.readers.synthetic import SyntheticConfig, synthetic_samples

SMALL = SyntheticConfig(num_subjects=3, clips_per_subject=6, height=64, width=56)
SHORT = {"negative": "ne", "positive": "po", "surprise": "sur"}
DATASET = {"HS": "smic", "VIS": "smic_vis", "NIR": "smic_nir"}
FPS = {"HS": 100.0, "VIS": 25.0, "NIR": 25.0}


def export_smic(
    root: str | Path,
    config: SyntheticConfig | None = None,
    subsets: tuple[str, ...] = ("HS",),
    image_format: str = "bmp",
    with_micro_level: bool = True,
    first_frame: int = 9990,
) -> dict:
    """Write the copy; returns {"frames_root", "planted", "samples": {sample_id: expected fields}}.

    Clip k (in synthetic order) starts at frame `first_frame - k % 7`; with the default every clip holds
    frames 9999 and 10000.
    """
    unknown = set(subsets) - set(DATASET)
    if unknown:
        raise ValueError(f"unknown SMIC subset(s) {sorted(unknown)}; choose from {', '.join(DATASET)}")
    if image_format not in ("bmp", "jpg"):
        raise ValueError(f"image_format must be bmp or jpg, got {image_format!r}")
    cfg = config or SMALL
    root = Path(root)
    manifest: dict[str, dict] = {}
    planted: dict[str, str] = {}
    written: dict[int, Path] = {}  # clip index -> its folder in the first subset
    for subset in subsets:
        counter: dict[tuple[int, str], int] = {}
        for k, sample in enumerate(synthetic_samples(cfg)):
            s_index, c_index = sample.frames.subject_index, sample.frames.clip_index
            n = s_index + 1
            key = (n, sample.emotion)
            counter[key] = counter.get(key, 0) + 1
            clip = f"s{n}_{SHORT[sample.emotion]}_{counter[key]:02d}"
            subject_dir = root / subset / f"s{n}"
            folder = (subject_dir / "micro" if with_micro_level else subject_dir) / sample.emotion / clip
            length = len(sample.frames.frame_numbers)
            start = first_frame - k % 7
            numbers = list(range(start, start + length))
            if k in written:  # the same clip in another subset: copy the files rather than render again
                shutil.copytree(written[k], folder)
            else:
                write_frames(cfg, s_index, c_index, folder, numbers, lambda f: f"reg_image{f}.{image_format}")
                written[k] = folder
            sample_id = f"{DATASET[subset]}/s{n:02d}/{clip}"
            manifest[sample_id] = {
                "subject": f"{DATASET[subset]}/s{n:02d}",
                "clip": clip,
                "emotion": sample.emotion,
                "onset": numbers[0],
                "apex": None,
                "offset": numbers[-1],
                "fps": FPS[subset],
                "folder": str(folder),
            }
            if k == 0:
                # A non-micro take as in SMIC_all_raw (`s1/non_micro/s1_n1/`), beside micro/ or the labels.
                other = subject_dir / "non_micro" / f"s{n}_n1"
                write_frames(cfg, s_index, c_index, other, numbers[:3], lambda f: f"image{f}.{image_format}")
                planted.setdefault("non_micro", f"{DATASET[subset]}/s{n:02d}/s{n}_n1")
                # Windows thumbnail cache among the frames: not an image, must not become a frame.
                (folder / "Thumbs.db").write_bytes(b"\0" * 16)
                planted.setdefault("thumbs_db", sample_id)
    return {"frames_root": root, "planted": planted, "samples": manifest}
