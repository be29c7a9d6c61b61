"""The synthetic database: deterministic, micro (sub-pixel) motion, the documented AUs per class."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from datamodules.readers.synthetic import (
    AU_VARIANTS,
    SyntheticConfig,
    _expression_field,
    _plan,
    render_frame,
    synthetic_samples,
    temporal_profile,
)
from datamodules.samples import validate_sample

SMALL = SyntheticConfig(num_subjects=3, clips_per_subject=6, seed=7)


def test_deterministic_from_seed():
    a = synthetic_samples(SMALL)
    b = synthetic_samples(SyntheticConfig(num_subjects=3, clips_per_subject=6, seed=7))
    assert [s.sample_id for s in a] == [s.sample_id for s in b]
    assert [(s.onset, s.apex, s.offset, s.emotion) for s in a] == [
        (s.onset, s.apex, s.offset, s.emotion) for s in b
    ]
    np.testing.assert_array_equal(a[4].frames.read(a[4].apex), b[4].frames.read(b[4].apex))
    other = synthetic_samples(SyntheticConfig(num_subjects=3, clips_per_subject=6, seed=8))
    assert not np.array_equal(a[4].frames.read(a[4].onset), other[4].frames.read(other[4].onset))


def test_schema_size_and_validity():
    samples = synthetic_samples(SMALL)
    assert len(samples) == 18
    assert {s.subject for s in samples} == {"synthetic/s01", "synthetic/s02", "synthetic/s03"}
    for s in samples:
        validate_sample(s)
        assert s.sample_id == f"{s.subject}/{s.clip}"
        assert s.onset < s.apex < s.offset
        assert 20 <= s.frame_count <= 60
        frame = s.frames.read(s.apex)
        assert frame.shape == (170, 140) and frame.dtype == np.uint8
    rgb = synthetic_samples(SyntheticConfig(num_subjects=1, clips_per_subject=1, rgb=True))[0]
    assert rgb.frames.read(rgb.onset).shape == (170, 140, 3)


def test_classes_balance_and_action_units():
    samples = synthetic_samples(SyntheticConfig(num_subjects=4, clips_per_subject=12))
    counts = Counter(s.emotion for s in samples)
    # 12 clips at (0.45, 0.30, 0.25) -> 5/4/3 per subject (largest remainders).
    assert counts == {"negative": 20, "positive": 16, "surprise": 12}
    for s in samples:
        assert s.action_units in AU_VARIANTS[s.emotion]
    negative_variants = {s.action_units for s in samples if s.emotion == "negative"}
    assert negative_variants == {("4", "9"), ("4", "15")}
    for subject in {s.subject for s in samples}:
        assert {s.emotion for s in samples if s.subject == subject} == {"negative", "positive", "surprise"}


def test_apex_displacement_is_micro():
    cfg = SyntheticConfig(num_subjects=2, clips_per_subject=12)
    for subject in range(2):
        for clip in range(12):
            field = _expression_field(cfg, subject, clip)
            peak = np.sqrt((field**2).sum(0)).max()
            assert cfg.amplitude_px[0] - 1e-4 <= peak <= cfg.amplitude_px[1] + 1e-4
            assert np.isclose(peak, _plan(cfg, subject, clip).amplitude, atol=1e-4)


def test_temporal_profile_neutral_onset_peak_apex():
    a = temporal_profile(40, 15)
    assert a[0] == 0.0 and a[15] == pytest.approx(1.0)
    assert np.all(np.diff(a[:16]) >= 0) and np.all(np.diff(a[15:]) <= 0)
    assert a.max() == pytest.approx(1.0) and a[-1] < 0.5


def test_motion_moves_pixels_only_a_little():
    cfg = SyntheticConfig(
        num_subjects=1,
        clips_per_subject=3,
        noise_std=0.0,
        drift_px=0.0,
        blink_probability=0.0,
        illumination_change=0.0,
    )
    s = synthetic_samples(cfg)[0]
    onset = s.frames.read(s.onset).astype(float)
    apex = s.frames.read(s.apex).astype(float)
    diff = np.abs(apex - onset)
    # Sub-pixel motion: visible only where the face has edges, and small everywhere.
    assert diff.max() > 3
    assert diff.mean() < 1.5


def test_bad_config_errors():
    with pytest.raises(ValueError, match="unknown"):
        SyntheticConfig(classes=("negative", "anger"), class_balance=(0.5, 0.5))
    with pytest.raises(ValueError, match="class_balance"):
        SyntheticConfig(class_balance=(1.0,))
    with pytest.raises(ValueError, match="clip_length"):
        SyntheticConfig(clip_length=(10, 5))
    with pytest.raises(IndexError):
        render_frame(SMALL, 0, 0, 10_000)
