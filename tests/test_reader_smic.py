"""SMIC reader on exported synthetic trees: labels from folders, numeric frame order, no apex."""

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
    assert set(samples) == set(copy["samples"])
    for sid, row in copy["samples"].items():
        s = samples[sid]
        assert (s.emotion, s.onset, s.apex, s.offset) == (row["emotion"], row["onset"], None, row["offset"])
        assert s.dataset == "smic" and s.fps == 100.0 and s.subject.startswith("smic/s0")
        numbers = s.frames.frame_numbers
        assert list(numbers) == sorted(numbers) and 99 in numbers and 100 in numbers  # not string order
        assert s.frames.path_of(100).name == f"reg_image100.{image_format}"


def test_vis_subset_and_megc_map(tmp_path):
    copy = export_smic(tmp_path, subsets=("HS", "VIS"))
    vis = read_smic(copy["frames_root"], subset="VIS")
    assert {s.dataset for s in vis.samples} == {"smic_vis"} and vis.samples[0].fps == 25.0
    hs = read_smic(copy["frames_root"])
    kept, y, excluded = label_map("megc2019").apply(hs.samples)
    assert len(label_map("smic_3class").apply(vis.samples)[0]) == len(vis.samples)
    assert len(kept) == len(hs.samples) and not excluded
    assert [label_map("megc2019").classes[k] for k in y] == [s.emotion for s in kept]


def test_mislabelled_clip_is_dropped_and_bad_trees_are_named(tmp_path):
    copy = export_smic(tmp_path)
    clip = next(p for p in (tmp_path / "HS" / "s1" / "micro" / "negative").iterdir())
    shutil.move(clip, clip.parent.parent / "positive" / clip.name)
    result = read_smic(copy["frames_root"])
    assert [d.sample_id for d in result.report.drops] == [f"smic/s01/{clip.name}"]
    assert "disagrees" in result.report.drops[0].reason
    with pytest.raises(ReaderError, match="disagrees"):
        read_smic(copy["frames_root"], strict=True)
    (tmp_path / "HS" / "s1" / "micro" / "happy").mkdir()
    with pytest.raises(ReaderError, match="unknown label folder .*happy"):
        read_smic(copy["frames_root"])
    with pytest.raises(ReaderError, match="data.smic_root"):
        read_smic(None)
    with pytest.raises(ReaderError, match="NIR does not exist"):
        read_smic(copy["frames_root"], subset="NIR")
    with pytest.raises(ValueError, match="unknown SMIC subset"):
        read_smic(copy["frames_root"], subset="IR")


def test_features_use_the_apex_fallback(tmp_path):
    from preprocessing.features import FeatureSpec, compute_features

    sample = read_smic(export_smic(tmp_path)["frames_root"]).samples[0]
    assert compute_features(sample, FeatureSpec(flow_method="farneback")).shape == (3, 28, 28)
