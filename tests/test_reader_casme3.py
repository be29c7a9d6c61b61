"""CAS(ME)^3 part A reader on an exported synthetic copy."""

from __future__ import annotations

import pytest
from openpyxl import load_workbook

from datamodules.protocols import label_map
from datamodules.readers.base import ReaderError
from datamodules.readers.casme3 import read_casme3
from datamodules.readers.export.casme3 import export_casme3


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    return export_casme3(tmp_path_factory.mktemp("casme3"))


def test_reads_back_and_handles_quirks(copy):
    result = read_casme3(copy["frames_root"])  # label file found next to the frames
    samples = {s.sample_id: s for s in result.samples}
    assert set(samples) == set(copy["samples"])
    for sid, row in copy["samples"].items():
        s = samples[sid]
        assert (s.emotion, s.onset, s.apex, s.offset, s.action_units) == (
            row["emotion"],
            row["onset"],
            row["apex"],
            row["offset"],
            row["action_units"],
        )
    planted = copy["planted"]
    assert (
        planted["repeated_task"].endswith("/a_2")
        and planted["repeated_task"].replace("a_2", "a_1") in samples
    )
    assert samples[planted["others"]].emotion == "others"
    drops = {d.sample_id: d for d in result.report.drops}
    assert "outside onset..offset" in drops[planted["apex_outside"]].reason
    assert drops[planted["apex_outside"]].source.startswith("cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx row ")
    with pytest.raises(ReaderError, match=r"row \d+: casme3/.*apex .* outside onset..offset.*strict"):
        read_casme3(copy["frames_root"], strict=True)


def test_label_maps(copy):
    result = read_casme3(copy["frames_root"])
    kept, y, excluded = label_map("casme3_3class").apply(result.samples)
    assert [e.sample_id for e in excluded] == [copy["planted"]["others"]]
    mapping = {
        "disgust": "negative",
        "fear": "negative",
        "anger": "negative",
        "sad": "negative",
        "happy": "positive",
        "surprise": "surprise",
    }
    assert all(
        label_map("casme3_3class").classes[k] == mapping[s.emotion] for s, k in zip(kept, y, strict=True)
    )
    assert len(label_map("casme3_7class").apply(result.samples)[0]) == len(result.samples)


def test_bad_input(copy, tmp_path):
    def edited(name, fn):
        book = load_workbook(copy["annotation"])
        fn(book.active)
        book.save(tmp_path / name)
        return tmp_path / name

    with pytest.raises(ReaderError, match=r"a\.xlsx: missing column\(s\) AU"):
        read_casme3(copy["frames_root"], edited("a.xlsx", lambda s: setattr(s.cell(1, 6), "value", "AUs")))
    with pytest.raises(ReaderError, match=r"b\.xlsx row 3: unknown emotion 'joy'"):
        read_casme3(copy["frames_root"], edited("b.xlsx", lambda s: setattr(s.cell(3, 8), "value", "joy")))
    with pytest.raises(ReaderError, match="data.casme3_root"):
        read_casme3(None)
    with pytest.raises(ReaderError, match="holds no spNO"):
        read_casme3(tmp_path / "nowhere")


def test_features(copy):
    from preprocessing.features import FeatureSpec, compute_features

    sample = read_casme3(copy["frames_root"]).samples[0]
    assert compute_features(sample, FeatureSpec(flow_method="farneback")).shape == (3, 28, 28)
