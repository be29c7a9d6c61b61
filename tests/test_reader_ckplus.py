"""CK+ reader on an exported synthetic copy: neutral -> peak, labels from Emotion/, AUs from FACS/."""

from __future__ import annotations

import pytest

from datamodules.protocols import label_map
from datamodules.readers.base import ReaderError
from datamodules.readers.ckplus import read_ckplus
from datamodules.readers.export.ckplus import export_ckplus


@pytest.mark.parametrize("nested", [False, True])
def test_reads_back(tmp_path, nested):
    copy = export_ckplus(tmp_path, extended_nesting=nested)
    result = read_ckplus(copy["frames_root"])
    samples = {s.sample_id: s for s in result.samples}
    assert set(samples) == set(copy["samples"])
    for sid, row in copy["samples"].items():
        s = samples[sid]
        assert (s.emotion, s.onset, s.apex, s.offset) == (row["emotion"], 1, row["apex"], row["apex"])
        assert s.subject == "ckplus/" + sid.split("/")[1]
        assert all(au[-1] in "ABCDE" for au in s.action_units)
    assert [d.sample_id for d in result.report.drops] == [copy["planted"]["no_label"]]
    assert "no emotion label" in result.report.drops[0].reason
    assert len(read_ckplus(copy["frames_root"], require_label=False).samples) == len(samples) + 1


def test_label_maps(tmp_path):
    result = read_ckplus(export_ckplus(tmp_path)["frames_root"])
    kept, y, _ = label_map("ckplus_megc").apply(result.samples)
    names = label_map("ckplus_megc").classes
    for s, k in zip(kept, y, strict=True):
        expected = {"happy": "positive", "surprise": "surprise"}.get(s.emotion, "negative")
        assert names[k] == expected
    assert len(label_map("ckplus_7class").apply(result.samples)[0]) == len(result.samples)


def test_malformed_emotion_file(tmp_path):
    copy = export_ckplus(tmp_path)
    victim = next((tmp_path / "Emotion").rglob("*_emotion.txt"))
    victim.write_text("happy\n")
    result = read_ckplus(copy["frames_root"])
    assert any(victim.name in d.reason for d in result.report.drops)
    with pytest.raises(ReaderError, match=f"{victim.name}: not a CK\\+ emotion code"):
        read_ckplus(copy["frames_root"], strict=True)
    victim.write_text("   9.0000000e+00\n")
    with pytest.raises(ReaderError, match="emotion code 9 is not one of 1-7"):
        read_ckplus(copy["frames_root"], strict=True)
    with pytest.raises(ReaderError, match="no cohn-kanade-images"):
        read_ckplus(tmp_path / "nowhere")
    with pytest.raises(ReaderError, match="data.ckplus_root"):
        read_ckplus(None)


def test_features(tmp_path):
    from preprocessing.features import FeatureSpec, compute_features

    sample = read_ckplus(export_ckplus(tmp_path)["frames_root"]).samples[0]
    assert compute_features(sample, FeatureSpec(flow_method="farneback")).shape == (3, 28, 28)
