"""The synthetic CK+-like macro database (data=synthetic_macro) and the macro -> micro label maps."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from datamodules.protocols import LABEL_MAPS, MACRO_LABEL_MAPS, label_map, macro_label_map
from datamodules.readers.ckplus import EMOTIONS, read_ckplus
from datamodules.readers.export.ckplus import export_ckplus
from datamodules.readers.synthetic import (
    CKPLUS_AU_VARIANTS,
    CKPLUS_CLASSES,
    SyntheticConfig,
    _au_shares,
    _expression_field,
    _plan,
    planted_action_units,
    read_synthetic,
    render_frame,
    synthetic_samples,
    temporal_profile,
)
from datamodules.samples import validate_sample

ROOT = Path(__file__).resolve().parents[1]
PRESET_YAML = ROOT / "configs" / "data" / "synthetic_macro.yaml"
# Each database's own vocabulary: what its reader can put in `Sample.emotion` (read_ckplus never yields
# "neutral": code 0 is not a label, and unlabelled sequences are excluded or `unlabelled`).
VOCABULARY = {"ckplus": set(EMOTIONS.values()), "synthetic_macro": set(CKPLUS_CLASSES)}


def _preset(**overrides) -> SyntheticConfig:
    reader = OmegaConf.to_container(OmegaConf.load(PRESET_YAML).reader)
    reader.pop("_target_")
    return SyntheticConfig(**{**reader, **overrides})


# Small and fast: 64x56 faces, few subjects, short clips.
SMALL = dict(num_subjects=3, clips_per_subject=7, height=64, width=56, clip_length=(10, 14))


# ---------------------------------------------------------------------------------------------------------
# The default (micro) database is untouched by the new fields. Values computed before they existed.


def test_default_database_digest_and_frames_unchanged():
    cfg = SyntheticConfig()
    assert cfg.digest() == "0f41f9fd3b335646"
    frame = render_frame(cfg, 0, 0, 5)
    assert hashlib.sha256(frame.tobytes()).hexdigest() == (
        "90091cb5e0de0bfae7358ca2499fd475501bcb424dbd532aabc5298e65669398"
    )
    explicit = SyntheticConfig(dataset="synthetic", expression_profile="micro")
    assert explicit.digest() == cfg.digest()
    assert SyntheticConfig(dataset="synthetic_macro").digest() != cfg.digest()
    assert SyntheticConfig(expression_profile="neutral_to_peak").digest() != cfg.digest()


# ---------------------------------------------------------------------------------------------------------
# The macro database


def test_preset_composes_and_reads_as_ckplus_words():
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=["data=synthetic_macro"])
    read = instantiate(cfg.data.reader)
    assert read.report.dataset == "synthetic_macro"
    samples = read.samples
    # 22 subjects x 15 clips at CK+'s proportions: every subject shows every class, contempt included.
    assert len(samples) == 330 and len({s.subject for s in samples}) == 22
    assert Counter(s.emotion for s in samples) == {
        "anger": 44, "contempt": 22, "disgust": 66, "fear": 22, "happy": 66, "sadness": 22, "surprise": 88,
    }  # fmt: skip
    seven = label_map(cfg.data.label_map)
    kept, labels, excluded = seven.apply(samples)
    assert len(kept) == len(samples) and not excluded
    assert [seven.classes[k] for k in labels] == [s.emotion for s in samples]
    assert all(s.fps == 30 for s in samples)


def test_subjects_are_other_people_than_the_micro_database():
    macro = synthetic_samples(_preset(**SMALL))
    assert {s.subject for s in macro} == {f"synthetic_macro/s0{i}" for i in (1, 2, 3)}
    for s in macro:
        validate_sample(s)
        assert s.dataset == "synthetic_macro" and s.sample_id == f"{s.subject}/{s.clip}"
    micro = synthetic_samples(SyntheticConfig(num_subjects=3, clips_per_subject=2, height=64, width=56))
    assert not {s.subject for s in macro} & {s.subject for s in micro}
    # Seed 1: other faces, not the micro database's under a new name.
    onset = render_frame(_preset(**SMALL), 0, 0, 0).astype(int)
    assert np.abs(onset - render_frame(SyntheticConfig(height=64, width=56), 0, 0, 0)).mean() > 5


def test_clips_run_neutral_to_peak_at_the_last_frame():
    cfg = _preset(**SMALL)
    for s in synthetic_samples(cfg):
        plan = _plan(cfg, s.frames.subject_index, s.frames.clip_index)
        numbers = s.frames.frame_numbers
        assert (s.onset, s.apex, s.offset) == (numbers[0], numbers[-1], numbers[-1])
        assert plan.apex_index == plan.length - 1 and 10 <= plan.length <= 14
        a = temporal_profile(plan.length, plan.apex_index)
        assert a[0] == 0.0 and a[-1] == pytest.approx(1.0)
        assert np.all(np.diff(a) > 0)  # a monotone rise, no decay
        assert plan.blink_len <= 6  # 100-200 ms at 30 fps, not a blink as long as the clip
        assert s.action_units in CKPLUS_AU_VARIANTS[s.emotion]


def test_rendered_motion_grows_to_the_last_frame():
    still = dict(noise_std=0.0, drift_px=0.0, blink_probability=0.0, illumination_change=0.0)
    cfg = _preset(**{**SMALL, **still, "num_subjects": 1, "clips_per_subject": 2})
    n = _plan(cfg, 0, 0).length
    onset = render_frame(cfg, 0, 0, 0).astype(float)
    change = [np.abs(render_frame(cfg, 0, 0, i) - onset).sum() for i in (n // 3, 2 * n // 3, n - 1)]
    assert 0 < change[0] < change[1] < change[2]


def test_planted_apex_displacement_is_macro_sized():
    cfg = _preset(num_subjects=2, clips_per_subject=7, height=64, width=56)
    lo, hi = cfg.amplitude_px
    assert 2.0 <= lo < hi <= 6.0
    for subject in range(2):
        for clip in range(7):
            planted = planted_action_units(cfg, subject, clip)
            apex = sum(planted.values())
            np.testing.assert_allclose(apex, _expression_field(cfg, subject, clip), atol=1e-5)
            peak = np.sqrt((apex**2).sum(0)).max()
            assert lo - 1e-4 <= peak <= hi + 1e-4
            assert np.isclose(peak, _plan(cfg, subject, clip).amplitude, atol=1e-4)


def test_preset_warp_stays_one_to_one_at_its_largest_amplitude():
    # Frames are backward-warped, image(p - D(p)): where det(I - dD/dp) <= 0 the warp folds and a part of the
    # face is drawn twice, mirrored. At 170x140 the narrowest AU bumps (AU5's upper lid) fold from about
    # 4.3 px on some faces, which is why the preset stops at 4 px and the ckplus table has no AU25.
    cfg = _preset(num_subjects=3)

    def smallest_det(subject: int, clip: int, amplitude: float) -> float:
        d = sum(_au_shares(cfg, subject, clip).values())
        d = d * amplitude / np.sqrt((d**2).sum(0)).max()
        (uxx, uxy), (uyx, uyy) = (np.gradient(d[k], axis=(1, 0)) for k in (0, 1))
        return float(((1 - uxx) * (1 - uyy) - uxy * uyx).min())

    clips = [(s, c) for s in range(3) for c in range(cfg.clips_per_subject)]
    for subject, clip in clips:
        assert smallest_det(subject, clip, cfg.amplitude_px[1]) > 0, _plan(cfg, subject, clip).action_units
    assert min(smallest_det(s, c, 6.0) for s, c in clips) < 0  # the check sees a fold where there is one


def test_bad_macro_config_errors():
    with pytest.raises(ValueError, match="expression_profile"):
        SyntheticConfig(expression_profile="macro")
    with pytest.raises(ValueError, match="without '/'"):
        SyntheticConfig(dataset="synthetic/macro")
    with pytest.raises(ValueError, match="unknown to au_table"):
        SyntheticConfig(au_table="ckplus")  # the default classes are not CK+ words
    assert read_synthetic(**{**SMALL, "dataset": "other"}).report.dataset == "other"


# ---------------------------------------------------------------------------------------------------------
# Label maps


@pytest.mark.parametrize("name", ["synthetic_macro_7class", "ckplus_megc", "ckplus_casme2_5class"])
def test_macro_maps_name_every_source_word(name):
    lm = label_map(name)
    expected = {"synthetic_macro"} if name == "synthetic_macro_7class" else {"ckplus", "synthetic_macro"}
    assert set(lm.words) == expected
    for dataset, table in lm.words.items():
        # Every word the reader can produce has an entry (a class or an explicit None), and nothing else.
        assert set(table) == VOCABULARY[dataset], (name, dataset)
        if "neutral" in table:
            assert table["neutral"] is None
    # Every class is reachable from every covered database, but CASME II's repression and others: no posed
    # macro-expression is either.
    unreachable = {"repression", "others"} if name == "ckplus_casme2_5class" else set()
    for table in lm.words.values():
        assert {c for c in table.values() if c is not None} == set(lm.classes) - unreachable


def test_macro_map_destinations():
    assert label_map("synthetic_macro_7class").classes == label_map("ckplus_7class").classes
    megc = label_map("ckplus_megc").words
    assert megc["ckplus"] == megc["synthetic_macro"]
    assert megc["ckplus"] == {
        "anger": "negative", "contempt": "negative", "disgust": "negative", "fear": "negative",
        "sadness": "negative", "happy": "positive", "surprise": "surprise",
    }  # fmt: skip
    five = label_map("ckplus_casme2_5class")
    assert five.classes == label_map("casme2_5class").classes == label_map("synthetic_casme2like").classes
    for table in five.words.values():
        assert table == {
            "happy": "happiness", "surprise": "surprise", "disgust": "disgust",
            "anger": None, "contempt": None, "fear": None, "sadness": None,
        }  # fmt: skip


def test_macro_label_map_matches_the_micro_class_order():
    pairs = [(source, micro) for source, maps in MACRO_LABEL_MAPS.items() for micro in maps]
    assert ("ckplus", "megc2019") in pairs and ("ckplus", "synthetic_casme2like") in pairs
    for source, micro in pairs:
        assert micro in LABEL_MAPS
        macro = macro_label_map(micro, source)
        assert macro.classes == label_map(micro).classes, (source, micro)
    assert macro_label_map("synthetic").name == "ckplus_megc"
    assert macro_label_map("casme2_5class").name == "ckplus_casme2_5class"
    with pytest.raises(ValueError, match="'samm_5class'.*'ckplus'.*known"):
        macro_label_map("samm_5class")
    with pytest.raises(ValueError, match="macro source 'affectnet'"):
        macro_label_map("megc2019", source="affectnet")


def test_macro_label_map_refuses_a_pair_whose_classes_differ(monkeypatch):
    wrong = {**MACRO_LABEL_MAPS["ckplus"], "megc2019": "ckplus_7class"}  # 7 classes for a 3-class protocol
    monkeypatch.setitem(MACRO_LABEL_MAPS, "ckplus", wrong)
    with pytest.raises(ValueError, match="classes differ"):
        macro_label_map("megc2019")


# ---------------------------------------------------------------------------------------------------------
# Written as a CK+ copy and read back


def test_ckplus_export_of_the_macro_database(tmp_path):
    cfg = _preset(num_subjects=2, clips_per_subject=7, height=64, width=56, clip_length=(10, 12))
    copy = export_ckplus(tmp_path, cfg, quirks=False)
    result = read_ckplus(copy["frames_root"])
    assert not result.report.drops and not result.report.repairs
    source = {(s.frames.subject_index, s.frames.clip_index): s for s in synthetic_samples(cfg)}
    read = {s.sample_id: s for s in result.samples}
    assert set(read) == set(copy["samples"]) and len(read) == 14
    megc = label_map("ckplus_megc")
    kept, labels, excluded = megc.apply(result.samples)
    assert not excluded
    for s, k in zip(kept, labels, strict=True):
        subject, clip = int(s.subject.removeprefix("ckplus/S")) // 5 - 1, int(s.clip) - 1
        synthetic = source[(subject, clip)]
        assert s.emotion == synthetic.emotion  # its own CK+ code, no cycling of negatives
        assert megc.classes[k] == megc.words["synthetic_macro"][synthetic.emotion]
        # The whole clip, neutral -> peak: onset = first frame, apex = offset = last frame.
        assert s.frames.frame_numbers == tuple(range(1, synthetic.frame_count + 1))
        assert (s.onset, s.apex, s.offset) == (1, synthetic.frame_count, synthetic.frame_count)
    assert "sadness" in {s.emotion for s in kept}  # read back as negative, not EMR's positive
