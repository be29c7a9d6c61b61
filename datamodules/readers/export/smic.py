"""The synthetic database written as a SMIC copy: `root/<subset>/s<N>/micro/<label>/s<N>_<ne|po|sur>_<NN>/`.

Subject folders are unpadded (`s1`), frames `reg_image<N>.bmp` (or `.jpg`) numbered from a realistic
absolute start, as in SMIC_all_cropped. Labels are the synthetic classes (negative, positive, surprise).
"""

from __future__ import annotations

from pathlib import Path

from datamodules.readers.export.common import write_frames
from datamodules.readers.synthetic import SyntheticConfig, synthetic_samples

SMALL = SyntheticConfig(num_subjects=3, clips_per_subject=6, height=64, width=56)
SHORT = {"negative": "ne", "positive": "po", "surprise": "sur"}


def export_smic(
    root: str | Path,
    config: SyntheticConfig | None = None,
    subsets: tuple[str, ...] = ("HS",),
    image_format: str = "bmp",
    with_micro_level: bool = True,
    first_frame: int = 90,
) -> dict:
    """Write the copy; returns {"frames_root", "planted": {}, "samples": {sample_id: expected fields}}.

    `first_frame` 90 makes clips cross from 2- to 3-digit frame numbers, so numeric and string orders differ.
    """
    cfg = config or SMALL
    root = Path(root)
    manifest = {}
    dataset_of = {"HS": "smic", "VIS": "smic_vis", "NIR": "smic_nir"}
    for subset in subsets:
        counter: dict[tuple[int, str], int] = {}
        for sample in synthetic_samples(cfg):
            s_index, c_index = sample.frames.subject_index, sample.frames.clip_index
            n = s_index + 1
            key = (n, sample.emotion)
            counter[key] = counter.get(key, 0) + 1
            clip = f"s{n}_{SHORT[sample.emotion]}_{counter[key]:02d}"
            folder = root / subset / f"s{n}"
            folder = (folder / "micro" if with_micro_level else folder) / sample.emotion / clip
            length = sample.frames.frame_numbers[-1] - sample.frames.frame_numbers[0] + 1
            numbers = list(range(first_frame, first_frame + length))
            write_frames(cfg, s_index, c_index, folder, numbers, lambda k: f"reg_image{k}.{image_format}")
            manifest[f"{dataset_of[subset]}/s{n:02d}/{clip}"] = {
                "emotion": sample.emotion,
                "onset": numbers[0],
                "apex": None,
                "offset": numbers[-1],
            }
    return {"frames_root": root, "planted": {}, "samples": manifest}
