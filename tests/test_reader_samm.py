"""SAMM reader on exported synthetic copies: any preamble length, quirks, the long-video trap, bad input."""

from __future__ import annotations

import pytest
from openpyxl import load_workbook

from datamodules.protocols import label_map
from datamodules.readers.base import ReaderError
from datamodules.readers.export.samm import export_samm
from datamodules.readers.samm import read_samm


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    return export_samm(tmp_path_factory.mktemp("samm"))


@pytest.mark.parametrize("preamble_rows", [13, 1])
def test_reads_back_with_header_found(tmp_path, preamble_rows):
    copy = export_samm(tmp_path, preamble_rows=preamble_rows)
    result = read_samm(copy["frames_root"], copy["annotation"])
    samples = {s.sample_id: s for s in result.samples}
    assert set(samples) == set(copy["samples"])
    for sid, row in copy["samples"].items():
        s = samples[sid]
        assert (s.emotion, s.onset, s.apex) == (row["emotion"], row["onset"], row["apex"])
        assert s.subject == "samm/" + sid.split("/")[1] and len(s.subject.split("/")[1]) == 3
    first = copy["samples"][result.samples[0].sample_id]
    assert result.samples[0].source == f"SAMM_Micro_FACS_Codes_v2.xlsx row {preamble_rows + 2}"
    assert result.samples[0].frames.path_of(first["onset"]).name == f"006_{first['onset']:05d}.jpg"


def test_planted_quirks(copy):
    result = read_samm(copy["frames_root"], copy["annotation"])
    samples, planted = {s.sample_id: s for s in result.samples}, copy["planted"]
    repairs = {i.sample_id: i.reason for i in result.report.repairs}
    assert samples[planted["au_or_group"]].action_units == ("R6|R12", "R15")
    assert samples[planted["au_or"]].action_units == ("L12|L14",)
    assert samples[planted["au_intensity_alternative"]].action_units == ("10A|10B",)
    assert samples[planted["stray_cell"]].emotion == copy["samples"][planted["stray_cell"]]["emotion"]
    assert (
        samples[planted["apex_missing"]].apex is None
        and "apex not annotated" in repairs[planted["apex_missing"]]
    )
    short = planted["offset_beyond_frames"]
    assert samples[short].offset == copy["samples"][short]["offset"] - 2 and "clamped" in repairs[short]
    assert samples[planted["Other"]].emotion == "Other"
    with pytest.raises(ReaderError, match=r"SAMM_Micro_FACS_Codes_v2\.xlsx row \d+: samm/.*strict mode"):
        read_samm(copy["frames_root"], copy["annotation"], strict=True)


def test_label_maps(copy):
    result = read_samm(copy["frames_root"], copy["annotation"])
    kept, y, _ = label_map("megc2019").apply(result.samples)
    assert {s.emotion for s in kept} == {
        "Anger",
        "Contempt",
        "Disgust",
        "Fear",
        "Sadness",
        "Happiness",
        "Surprise",
    }
    assert all(
        label_map("megc2019").classes[k] == "negative"
        for s, k in zip(kept, y, strict=True)
        if s.emotion in ("Anger", "Contempt", "Disgust", "Fear", "Sadness")
    )
    five, _, dropped = label_map("samm_5class").apply(result.samples)
    assert {s.emotion for s in five} <= {"Anger", "Contempt", "Happiness", "Surprise", "Other"}
    assert {s.sample_id for s in five} == {
        sid for sid, r in copy["samples"].items() if r["emotion"] not in ("Disgust", "Fear", "Sadness")
    }


def _edit(copy, tmp_path, name, fn):
    book = load_workbook(copy["annotation"])
    fn(book.active)
    path = tmp_path / name
    book.save(path)
    return path


def test_bad_input_is_named(copy, tmp_path):
    header = 14  # 13 preamble rows

    def no_micro_onset(sheet):
        sheet.cell(header, 4).value = "Onset"

    bad = _edit(copy, tmp_path, "a.xlsx", no_micro_onset)
    with pytest.raises(ReaderError, match=r"a\.xlsx: missing column\(s\) Onset Frame"):
        read_samm(copy["frames_root"], bad)

    def long_videos(sheet):
        for col, name in ((4, "Onset"), (5, "Apex"), (6, "Offset"), (8, "Type")):
            sheet.cell(header, col).value = name

    bad = _edit(copy, tmp_path, "b.xlsx", long_videos)
    with pytest.raises(ReaderError, match="Long Videos.*never mix"):
        read_samm(copy["frames_root"], bad)

    def others(sheet):
        sheet.cell(header + 2, 10).value = "Others"

    bad = _edit(copy, tmp_path, "c.xlsx", others)
    with pytest.raises(ReaderError, match=rf"c\.xlsx row {header + 2}: unknown emotion 'Others'"):
        read_samm(copy["frames_root"], bad)

    def no_header(sheet):
        sheet.cell(header, 1).value = "Participant"

    bad = _edit(copy, tmp_path, "d.xlsx", no_header)
    with pytest.raises(ReaderError, match=r"d\.xlsx: no header row starting with 'Subject'"):
        read_samm(copy["frames_root"], bad)
    with pytest.raises(ReaderError, match="data.samm_root"):
        read_samm(None)
    with pytest.raises(ReaderError, match="holds no 3-digit subject folders"):
        read_samm(tmp_path / "nowhere", copy["annotation"])


def test_features_on_a_read_sample(copy):
    from preprocessing.features import FeatureSpec, compute_features

    sample = read_samm(copy["frames_root"], copy["annotation"]).samples[0]
    assert compute_features(sample, FeatureSpec(flow_method="farneback")).shape == (3, 28, 28)
