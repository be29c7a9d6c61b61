"""Label maps and folds: LOSO is subject-disjoint and covers every sample once."""

from __future__ import annotations

from dataclasses import replace

import pytest

from datamodules.protocols import LABEL_MAPS, label_map, lodo_folds, loso_folds, make_folds, split_indices
from datamodules.readers.synthetic import SyntheticConfig, synthetic_samples


def test_loso_folds_disjoint_and_cover_every_sample_once():
    samples = synthetic_samples(SyntheticConfig(num_subjects=5, clips_per_subject=4))
    subjects = [s.subject for s in samples]
    folds = loso_folds(subjects)
    assert [f.name for f in folds] == [f"synthetic/s0{i}" for i in range(1, 6)]
    seen = []
    for fold in folds:
        train, test = split_indices(subjects, fold)
        assert not {subjects[i] for i in train} & {subjects[i] for i in test}
        assert {subjects[i] for i in test} == set(fold.test_subjects)
        assert sorted(train + test) == list(range(len(samples)))
        seen += test
    assert sorted(seen) == list(range(len(samples)))


def test_natural_order_and_qualified_subjects():
    folds = loso_folds(["smic/s10", "smic/s2", "smic/s1"])
    assert [f.name for f in folds] == ["smic/s1", "smic/s2", "smic/s10"]
    with pytest.raises(ValueError, match="not dataset-qualified"):
        loso_folds(["sub01"])


def test_same_number_in_two_databases_stays_two_subjects():
    folds = loso_folds(["casme2/06", "samm/006", "samm/006"])
    assert len(folds) == 2


def test_lodo():
    folds = lodo_folds(["casme2/sub01", "samm/006", "samm/007"], ["casme2", "samm", "samm"])
    assert [(f.name, sorted(f.test_subjects)) for f in folds] == [
        ("casme2", ["casme2/sub01"]),
        ("samm", ["samm/006", "samm/007"]),
    ]
    with pytest.raises(ValueError, match="at least two"):
        lodo_folds(["samm/006"], ["samm"])
    with pytest.raises(ValueError, match="unknown protocol"):
        make_folds("kfold", ["samm/006"], ["samm"])


def test_label_map_excludes_with_reason_and_rejects_unknown_words():
    samples = synthetic_samples(SyntheticConfig(num_subjects=1, clips_per_subject=3))
    megc = label_map("megc2019")
    casme = [
        replace(samples[0], dataset="casme2", subject="casme2/sub01", emotion=e)
        for e in ("disgust", "others", "happiness")
    ]
    kept, labels, excluded = megc.apply(casme)
    assert [s.emotion for s in kept] == ["disgust", "happiness"]
    assert labels == [0, 1]
    assert len(excluded) == 1 and "others" in excluded[0].reason
    samm = replace(samples[0], dataset="samm", subject="samm/006", emotion="Contempt")
    assert megc.class_of(samm) == "negative"
    with pytest.raises(ValueError, match="'Others'.*not in the 'megc2019' vocabulary"):
        megc.class_of(replace(samm, emotion="Others"))
    with pytest.raises(ValueError, match="does not cover database"):
        label_map("casme2_5class").class_of(samm)
    with pytest.raises(ValueError, match="unknown label map"):
        label_map("nope")


def test_five_class_maps_have_five_classes():
    assert LABEL_MAPS["casme2_5class"].num_classes == 5
    assert LABEL_MAPS["samm_5class"].num_classes == 5
