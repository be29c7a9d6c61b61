"""The synthetic database: deterministic, micro (sub-pixel) motion, the documented AUs per class."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from datamodules.protocols import label_map
from datamodules.readers.action_units import parse_action_units
from datamodules.readers.synthetic import (
    AU_VARIANTS,
    CASME2_CLASSES,
    CASME2LIKE_AU_VARIANTS,
    SyntheticConfig,
    _expression_field,
    _face,
    _plan,
    au_field,
    planted_action_units,
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


# ---------------------------------------------------------------------------------------------------------
# The default database is pinned: the README's default result and every feature cache keyed on the frames'
# fingerprint depend on it. Checksums computed with the generator before the casme2like preset was added.


def _clip_sha256(cfg: SyntheticConfig, subject: int, clip: int) -> str:
    digest = hashlib.sha256()
    for index in range(_plan(cfg, subject, clip).length):
        digest.update(render_frame(cfg, subject, clip, index).tobytes())
    return digest.hexdigest()


def test_default_database_is_pinned():
    cfg = SyntheticConfig()
    assert cfg.digest() == "0f41f9fd3b335646"
    # Every frame of three clips: a negative one, a long positive one with a blink, a short one with a blink.
    assert _clip_sha256(cfg, 0, 0) == "a4f36b9e8067a33baf1603a1468d9aad0b5f83ad251b6a4983952f93caad694c"
    assert _clip_sha256(cfg, 15, 11) == "554a17ffb2870e77f578f864a77bf56c33ea2091040c4c265f9c4c909ab8b52a"
    assert _clip_sha256(cfg, 0, 2) == "8aaf4e21375153a8945df92d42c4a4a4fdae60daa755ce15e3a12799cf229283"
    rows = [
        (s.sample_id, s.onset, s.apex, s.offset, s.emotion, s.action_units, s.frames.fingerprint())
        for s in synthetic_samples(cfg)
    ]
    assert hashlib.sha256(repr(rows).encode()).hexdigest() == (
        "7e8be29ecaee3740c10857e5364886f842918f85b81a07ef143b1c8660073d37"
    )


def test_added_fields_enter_the_digest_only_when_set():
    base = SyntheticConfig()
    assert SyntheticConfig(rotation_deg=0.0, illumination_gradient=0.0, au_table="default").digest() == (
        base.digest()
    )
    assert SyntheticConfig(rotation_deg=0.5).digest() != base.digest()
    assert SyntheticConfig(illumination_gradient=0.1).digest() != base.digest()


# ---------------------------------------------------------------------------------------------------------
# The CASME II-like preset (configs/data/synthetic_casme2like.yaml)

PRESET_YAML = Path(__file__).resolve().parents[1] / "configs" / "data" / "synthetic_casme2like.yaml"


def _preset(**overrides) -> SyntheticConfig:
    reader = OmegaConf.to_container(OmegaConf.load(PRESET_YAML).reader)
    reader.pop("_target_")
    return SyntheticConfig(**{**reader, **overrides})


def test_preset_classes_are_casme2_words_and_balanced():
    cfg = _preset()
    samples = synthetic_samples(cfg)
    counts = Counter(s.emotion for s in samples)
    assert set(counts) == set(CASME2_CLASSES)
    assert max(counts.values()) - min(counts.values()) <= cfg.num_subjects  # at most one apart per subject
    kept, labels, excluded = label_map(OmegaConf.load(PRESET_YAML).label_map).apply(samples)
    assert len(kept) == len(samples) and not excluded
    assert sorted(set(labels)) == [0, 1, 2, 3, 4]
    for subject in {s.subject for s in samples}:
        assert {s.emotion for s in samples if s.subject == subject} == set(CASME2_CLASSES)


def test_preset_size_overrides_from_the_command_line():
    with initialize_config_dir(config_dir=str(PRESET_YAML.parents[1]), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "data=synthetic_casme2like",
                "data.reader.num_subjects=9",
                "data.reader.clips_per_subject=16",
            ],
        )
    small = instantiate(cfg.data.reader).samples
    counts = Counter(s.emotion for s in small)
    assert len(small) == 144 and len({s.subject for s in small}) == 9
    assert max(counts.values()) - min(counts.values()) <= 9
    assert cfg.data.label_map == "synthetic_casme2like"


def test_preset_every_clip_has_its_au_string():
    cfg = _preset()
    for s in synthetic_samples(cfg):
        assert s.action_units, s.sample_id
        assert parse_action_units("+".join(s.action_units)) == s.action_units
        assert s.action_units in CASME2LIKE_AU_VARIANTS[s.emotion]


def test_preset_au_strings_are_the_planted_motion():
    cfg = _preset(num_subjects=4)
    for s in synthetic_samples(cfg):
        subject, clip = s.frames.subject_index, s.frames.clip_index
        planted = planted_action_units(cfg, subject, clip)
        assert tuple(planted) == s.action_units
        # The shares are the whole of the motion the frames are warped with, and each is visible motion.
        np.testing.assert_allclose(sum(planted.values()), _expression_field(cfg, subject, clip), atol=1e-5)
        amplitude = _plan(cfg, subject, clip).amplitude
        cx = int(round(_face(cfg, subject).landmarks.cx))
        for code, share in planted.items():
            magnitude = np.sqrt((share**2).sum(0))
            assert magnitude.max() >= 0.25 * amplitude, (s.sample_id, code)
            left_image, right_image = magnitude[:, :cx].sum(), magnitude[:, cx:].sum()
            # L = the subject's left = the image's right (the face looks at the camera).
            if code.startswith("L"):
                assert right_image > 5 * left_image, (s.sample_id, code)
            elif code.startswith("R"):
                assert left_image > 5 * right_image, (s.sample_id, code)
            else:
                assert 0.5 < left_image / right_image < 2, (s.sample_id, code)


def test_preset_classes_share_action_units():
    numbers: dict[str, set[str]] = {}
    for s in synthetic_samples(_preset()):
        numbers.setdefault(s.emotion, set()).update(code.lstrip("LR") for code in s.action_units)
    assert "12" in numbers["happiness"] & numbers["repression"]
    assert "4" in numbers["disgust"] & numbers["others"]
    assert {"1", "2"} <= numbers["surprise"] & numbers["others"]
    # Laterality appears, as in the CASME II coding (L10, R12, ...).
    codes = {code for s in synthetic_samples(_preset()) for code in s.action_units}
    assert {"L12", "R12", "L14", "L10", "L7"} <= codes


def test_preset_is_deterministic_and_harder():
    cfg = _preset(num_subjects=2, clips_per_subject=5)
    a, b = synthetic_samples(cfg), synthetic_samples(_preset(num_subjects=2, clips_per_subject=5))
    assert [(s.sample_id, s.apex, s.emotion, s.action_units) for s in a] == [
        (s.sample_id, s.apex, s.emotion, s.action_units) for s in b
    ]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.frames.read(x.apex), y.frames.read(y.apex))
    other = synthetic_samples(_preset(num_subjects=2, clips_per_subject=5, seed=1))
    assert not np.array_equal(a[3].frames.read(a[3].apex), other[3].frames.read(other[3].apex))
    default = synthetic_samples(SyntheticConfig(num_subjects=2))
    assert a[0].frames.fingerprint() != default[0].frames.fingerprint()
    plans = [_plan(cfg, s, c) for s in range(2) for c in range(5)]
    assert all(p.rotation_end != 0 and p.light_ramp_end > 0 for p in plans)
    for s in range(2):
        for c in range(5):
            peak = np.sqrt((_expression_field(cfg, s, c) ** 2).sum(0)).max()
            assert 0.15 - 1e-4 <= peak <= 0.6 + 1e-4


def test_preset_rotation_and_moving_light_change_the_frames():
    # Expression, drift, blinks and noise off: what is left between onset and offset is rotation + light.
    still = dict(
        num_subjects=1, clips_per_subject=1, amplitude_px=(1e-6, 1e-6), drift_px=0.0,
        blink_probability=0.0, illumination_change=0.0, noise_std=0.0,
    )  # fmt: skip
    s = synthetic_samples(_preset(**still, rotation_deg=0.0, illumination_gradient=0.0))[0]
    assert np.abs(s.frames.read(s.offset).astype(int) - s.frames.read(s.onset)).max() <= 1
    for extra in ({"rotation_deg": 1.0, "illumination_gradient": 0.0}, {"illumination_gradient": 0.05}):
        s = synthetic_samples(_preset(**{"rotation_deg": 0.0, **still, **extra}))[0]
        assert np.abs(s.frames.read(s.offset).astype(int) - s.frames.read(s.onset)).max() > 2, extra


def test_preset_bad_config_errors():
    with pytest.raises(ValueError, match="au_table"):
        SyntheticConfig(au_table="samm")
    with pytest.raises(ValueError, match="unknown to au_table"):
        SyntheticConfig(au_table="casme2like")  # the default classes are not CASME II words
    with pytest.raises(ValueError, match="midline"):
        au_field("L26", _face(SMALL, 0).landmarks, 170, 140)
