"""Clips whose frames take long to read, for tests/test_cache.py's orphaned-worker test.

A module of its own (not a test file, not defined in the test) so that the feature workers a child process
spawns can import `SlowFrames` by name: the child puts this folder on sys.path and its workers inherit it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np


class SlowFrames:
    """Each read leaves `<marker_dir>/<pid>.reading` (so a test knows a worker is busy), then sleeps."""

    def __init__(self, marker_dir: str, delay_s: float) -> None:
        self.frame_numbers = tuple(range(6))
        self.marker_dir, self.delay_s = marker_dir, delay_s

    def read(self, number: int) -> np.ndarray:
        (Path(self.marker_dir) / f"{os.getpid()}.reading").touch()
        time.sleep(self.delay_s)
        return np.full((24, 24), 128, np.uint8)

    def fingerprint(self) -> str:
        return f"slow/{self.delay_s}"


def compute_slowly(marker_dir: str, delay_s: float = 60.0, workers: int = 2) -> None:
    """cached_features over four slow clips with `workers` processes and no cache."""
    from datamodules.samples import Sample
    from preprocessing.cache import cached_features
    from preprocessing.features import FeatureSpec

    samples = [
        Sample(
            sample_id=f"synthetic/s{index:02d}/slow",
            dataset="synthetic",
            subject=f"synthetic/s{index:02d}",
            clip="slow",
            frames=SlowFrames(marker_dir, delay_s),
            onset=0,
            apex=3,
            offset=5,
            emotion="surprise",
        )
        for index in range(4)
    ]
    spec = FeatureSpec(channels=("u", "v"), flow_method="farneback", size=(8, 8))
    cached_features(samples, spec, None, progress=False, workers=workers)
