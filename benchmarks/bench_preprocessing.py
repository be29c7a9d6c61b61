"""Pre-processing cost per clip, and extrapolated to the MEGC2019 composite (442 clips).

    python benchmarks/bench_preprocessing.py

Measures, in one run: onset->apex TV-L1 flow + optical strain at the databases' cropped size (170x140);
the same with the face crop computed from a raw 640x480 frame first (databases used uncropped); the apex
spotters a clip without an apex needs (SMIC, CASME II '/'); and reading a cached feature. Prints ms per clip,
ratios against flow + strain, and totals for 442 clips, first run and cached.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datamodules.readers.synthetic import SyntheticConfig, synthetic_samples  # noqa: E402
from datamodules.samples import Sample  # noqa: E402
from preprocessing.apex import spot_apex  # noqa: E402
from preprocessing.cache import FeatureCache, cached_features  # noqa: E402
from preprocessing.features import FeatureSpec, compute_features  # noqa: E402

CLIPS = 442


class RawFrames:
    """A raw 640x480 recording: the astronaut's face pasted into a larger frame, moving a little."""

    frame_numbers = (1, 2)

    def __init__(self) -> None:
        from skimage import data

        face = cv2.resize(data.astronaut()[:300, 100:360], (260, 300))
        self.canvas = np.full((480, 640, 3), 90, np.uint8)
        self.canvas[90:390, 190:450] = face

    def read(self, n: int) -> np.ndarray:
        return np.roll(self.canvas, n - 1, axis=1)

    def fingerprint(self) -> str:
        return "raw"


def timed(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    samples = synthetic_samples(SyntheticConfig(num_subjects=1, clips_per_subject=4))
    s = samples[0]
    flow = timed(lambda: compute_features(s, FeatureSpec()))
    raw = Sample("raw/s1/c1", "raw", "raw/s1", "c1", RawFrames(), 1, 2, 2, "e")
    crop = timed(lambda: compute_features(raw, FeatureSpec(crop="face", crop_size=(140, 170))))
    spot_fd = timed(lambda: spot_apex(s.frames.read, s.frames.frame_numbers, "frame_difference"), 3)
    spot_st = timed(lambda: spot_apex(s.frames.read, s.frames.frame_numbers, "strain"), 3)
    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache(tmp)
        cached_features(samples, FeatureSpec(), cache=cache, progress=False)
        read = timed(lambda: cached_features(samples, FeatureSpec(), cache=cache, progress=False)) / len(
            samples
        )
    frames = len(s.frames.frame_numbers)
    rows = [
        ("flow (TV-L1) + strain, 170x140", flow),
        ("face crop (640x480 raw) + flow + strain", crop),
        (f"apex spotting, frame difference ({frames} frames)", spot_fd),
        (f"apex spotting, peak strain ({frames} frames)", spot_st),
        ("cached feature read", read),
    ]
    print(f"{'per clip':48s}{'ms':>9s}{'x flow':>8s}{'442 clips, s':>14s}")
    for name, ms in rows:
        print(f"{name:48s}{ms:9.1f}{ms / flow:8.2f}{ms * CLIPS / 1000:14.1f}")
    print(
        f"\nMEGC2019 composite, first run: ~{flow * CLIPS / 1000:.0f} s cropped frames "
        f"(+ {spot_fd * 164 / 1000:.0f} s to spot SMIC's 164 apexes by frame difference); "
        f"cached run: {read * CLIPS / 1000:.2f} s"
    )


if __name__ == "__main__":
    main()
