"""SMIC reader on exported synthetic trees: labels from folders, numeric frame order, no apex, bad trees."""

from __future__ import annotations

import shutil

import pytest

from datamodules.protocols import label_map
from datamodules.readers.base import ReaderError
from datamodules.readers.export.smic import export_smic
from datamodules.readers.smic import read_smic


@pytest.mark.parametrize(("image_format", "micro"), [("bmp", True), ("jpg", False)])
def test_reads_back(tmp_path, image_format, micro):
    copy = export_smic(tmp_path, image_format=image_format, with_micro_level=micro)
    result = read_smic(copy["frames_root"])
    samples = {s.sample_id: s for s in result.samples}
    assert set(samples) == set(copy["samples"]) and not result.report.drops
    assert copy["planted"]["non_micro"] not in samples  # non_micro/ is not a micro-expression
    for sid, row in copy["samples"].items():
        s = samples[sid]
        got = (s.subject, s.clip, s.emotion, s.onset, s.apex, s.offset, s.fps, s.source)
        assert got == (row["subject"], row["clip"], row["emotion"], row["onset"], None, row["offset"], 100.0,
                       row["folder"])  # fmt: skip
        assert s.dataset == "smic" and s.action_units == () and s.subject.startswith("smic/s0")
        numbers = s.frames.frame_numbers
        assert list(numbers) == list(range(row["onset"], row["offset"] + 1))  # Thumbs.db is no frame
        assert numbers.index(10000) == numbers.index(9999) + 1  # numeric, not string order
        assert s.frames.path_of(10000).name == f"reg_image10000.{image_format}"
        assert s.frames.read(s.onset).shape == (64, 56)


def test_numeric_order_across_two_and_three_digits(tmp_path):
    copy = export_smic(tmp_path, first_frame=95)
    sample = read_smic(copy["frames_root"]).samples[0]
    numbers = sample.frames.frame_numbers
    assert 89 <= sample.onset <= 95 and numbers[:12] == tuple(range(sample.onset, sample.onset + 12))
    i = numbers.index(99)
    assert [p.name for p in sample.frames.paths[i : i + 2]] == ["reg_image99.bmp", "reg_image100.bmp"]


def test_subsets_and_label_maps(tmp_path):
    copy = export_smic(tmp_path, subsets=("HS", "VIS", "NIR"))
    for subset, dataset in (("VIS", "smic_vis"), ("nir", "smic_nir")):
        result = read_smic(copy["frames_root"], subset=subset)
        assert {s.dataset for s in result.samples} == {dataset}
        assert {s.fps for s in result.samples} == {25.0}
        assert all(s.sample_id.startswith(f"{dataset}/s0") for s in result.samples)
        assert {s.sample_id for s in result.samples} == {k for k in copy["samples"] if k.startswith(dataset)}
        assert len(label_map("smic_3class").apply(result.samples)[0]) == len(result.samples)
    hs = read_smic(copy["frames_root"])
    megc = label_map("megc2019")
    kept, y, excluded = megc.apply(hs.samples)
    assert len(kept) == len(hs.samples) and not excluded
    assert [megc.classes[k] for k in y] == [s.emotion for s in kept]
    assert any("SMIC HS: 18 clips from 3 subjects" in n for n in hs.report.notes)


def test_mislabelled_and_empty_clips_are_dropped(tmp_path):
    copy = export_smic(tmp_path)
    micro = tmp_path / "HS" / "s1" / "micro"
    clip = sorted((micro / "negative").iterdir())[0]
    shutil.move(clip, micro / "positive" / clip.name)
    elsewhere = sorted((tmp_path / "HS" / "s2" / "micro" / "surprise").iterdir())[0]
    shutil.move(elsewhere, micro / "surprise" / elsewhere.name)  # s2's clip in s1's folder
    empty = micro / "negative" / "s1_ne_09"
    empty.mkdir()
    result = read_smic(copy["frames_root"])
    drops = {d.sample_id: d for d in result.report.drops}
    assert set(drops) == {f"smic/s01/{clip.name}", f"smic/s01/{elsewhere.name}", "smic/s01/s1_ne_09"}
    assert (
        "disagrees with its folders (s1/positive: expected s1_po_NN)" in drops[f"smic/s01/{clip.name}"].reason
    )
    assert drops[f"smic/s01/{clip.name}"].source == str(micro / "positive" / clip.name)
    assert "disagrees" in drops[f"smic/s01/{elsewhere.name}"].reason
    assert "no image frames" in drops["smic/s01/s1_ne_09"].reason
    assert len(result.samples) == len(copy["samples"]) - 2
    with pytest.raises(
        ReaderError, match=r"smic/s01/s1_ne_09: no image frames.*strict mode"
    ):  # first in order
        read_smic(copy["frames_root"], strict=True)


def test_bad_trees_are_named(tmp_path):
    copy = export_smic(tmp_path)
    with pytest.raises(ReaderError, match="data.smic_root"):
        read_smic(None)
    with pytest.raises(ReaderError, match=r"SMIC frame folder .*nowhere does not exist"):
        read_smic(tmp_path / "nowhere")
    with pytest.raises(ReaderError, match=r"NIR does not exist .*holds HS"):
        read_smic(copy["frames_root"], subset="NIR")
    with pytest.raises(ValueError, match="unknown SMIC subset 'IR'"):
        read_smic(copy["frames_root"], subset="IR")
    (tmp_path / "HS" / "s1" / "micro" / "happy").mkdir()
    with pytest.raises(ReaderError, match=r"unknown label folder .*micro/happy"):
        read_smic(copy["frames_root"])

    smic_e = tmp_path / "E"
    shutil.copytree(copy["frames_root"] / "HS" / "s2" / "micro" / "negative", smic_e / "HS" / "s02")
    with pytest.raises(ReaderError, match=r"unknown label folder .*s2_ne_01.*SMIC-E"):
        read_smic(smic_e)
    (tmp_path / "F" / "HS").mkdir(parents=True)
    with pytest.raises(ReaderError, match="no subject folders"):
        read_smic(tmp_path / "F")


def test_features_use_the_apex_fallback(tmp_path):
    from preprocessing.features import FeatureSpec, compute_features

    sample = read_smic(export_smic(tmp_path)["frames_root"]).samples[0]
    assert sample.apex is None
    assert compute_features(sample, FeatureSpec(flow_method="farneback")).shape == (3, 28, 28)
