"""Pre-processing cost per clip, and extrapolated to the MEGC2019 composite (442 clips).

    python benchmarks/bench_preprocessing.py

Measures, in one run (~5 s): face crop, TV-L1 flow and optical strain separately and as compute_features,
at the databases' cropped size (170x140) and with the crop computed from a raw 640x480 frame (databases used
uncropped); the apex spotters a clip without an apex needs (SMIC, CASME II '/'); reading a cached feature.
Prints median ms per clip, ratios against the TV-L1 flow time of the same run, and totals for 442 clips.
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
from preprocessing.face import face_crop_for  # noqa: E402
from preprocessing.features import FeatureSpec, compute_features  # noqa: E402
from preprocessing.flow import optical_flow  # noqa: E402
from preprocessing.strain import optical_strain  # noqa: E402

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
    """Median wall time of fn() in ms."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    started = time.perf_counter()
    samples = synthetic_samples(SyntheticConfig(num_subjects=1, clips_per_subject=4))
    s = samples[0]
    onset, apex = s.frames.read(s.onset), s.frames.read(s.apex)  # 170x140, the databases' cropped size
    raw = RawFrames()
    raw_onset, raw_apex = raw.read(1), raw.read(2)
    # Components at the cropped size: a face crop on a frame that is already a face, flow, strain.
    crop_native = timed(lambda: face_crop_for(onset))
    flow = timed(lambda: optical_flow(onset, apex, "tvl1"))
    u, v = optical_flow(onset, apex, "tvl1")
    strain = timed(lambda: optical_strain(u, v), 20)
    full = timed(lambda: compute_features(s, FeatureSpec()))
    # From a raw 640x480 recording: detect + align on the onset, warp both frames to 140x170, flow, strain.
    crop_raw = timed(lambda: face_crop_for(raw_onset, size=(140, 170)))
    crop = face_crop_for(raw_onset, size=(140, 170))
    warp = timed(lambda: (crop.apply(raw_onset), crop.apply(raw_apex)), 20)
    raw_sample = Sample("raw/s1/c1", "raw", "raw/s1", "c1", raw, 1, 2, 2, "e")
    full_raw = timed(lambda: compute_features(raw_sample, FeatureSpec(crop="face", crop_size=(140, 170))))
    spot = {
        m: timed(lambda m=m: spot_apex(s.frames.read, s.frames.frame_numbers, m, s.onset, s.offset), 3)
        for m in ("frame_difference", "strain")
    }
    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache(tmp)
        cached_features(samples, FeatureSpec(), cache=cache, progress=False)
        read = timed(lambda: cached_features(samples, FeatureSpec(), cache=cache, progress=False)) / len(
            samples
        )
    frames = s.offset - s.onset + 1
    rows = [
        ("face crop (Haar + eyes) on a 170x140 face", crop_native),
        ("TV-L1 flow, 170x140", flow),
        ("optical strain, 170x140", strain),
        ("compute_features default (flow + strain)", full),
        ("face crop on a raw 640x480 frame", crop_raw),
        ("warp 2 raw frames to the crop", warp),
        ("compute_features crop=face from 640x480", full_raw),
        (f"spot apex: frame_difference ({frames} frames)", spot["frame_difference"]),
        (f"spot apex: strain ({frames} frames, DIS)", spot["strain"]),
        ("cached feature read", read),
    ]
    print(f"{'per clip':48s}{'ms':>9s}{'x flow':>8s}{'442 clips, s':>14s}")
    for name, ms in rows:
        print(f"{name:48s}{ms:9.1f}{ms / flow:8.2f}{ms * CLIPS / 1000:14.1f}")
    print(
        f"\nMEGC2019 composite ({CLIPS} clips), first run: ~{full * CLIPS / 1000:.0f} s from provided crops, "
        f"~{full_raw * CLIPS / 1000:.0f} s from raw 640x480 with crop=face "
        f"(+ {spot['frame_difference'] * 164 / 1000:.1f} s to spot SMIC's 164 apexes by frame difference, "
        f"{spot['strain'] * 164 / 1000:.1f} s by strain); cached run: {read * CLIPS / 1000:.2f} s"
    )
    print(f"(benchmark took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
