"""CAS(ME)^3 part A reader on an exported synthetic copy: read-back, quirks, strict mode, bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from openpyxl import Workbook, load_workbook

from datamodules.protocols import label_map
from datamodules.readers.base import ReaderError
from datamodules.readers.casme3 import read_casme3
from datamodules.readers.export.casme3 import LABEL_FILE, export_casme3

FIELDS = ("subject", "clip", "emotion", "onset", "apex", "offset", "action_units", "source")


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    return export_casme3(tmp_path_factory.mktemp("casme3"))


@pytest.fixture(scope="module")
def result(copy):
    return read_casme3(copy["frames_root"])  # label file found next to the frames


def edited(copy, path, fn):
    """A copy of the exported label file with `fn(sheet)` applied, saved at `path`."""
    book = load_workbook(copy["annotation"])
    fn(book.active)
    book.save(path)
    return path


def test_reads_back_every_field(copy, result):
    samples = {s.sample_id: s for s in result.samples}
    assert set(samples) == set(copy["samples"]) and len(samples) == 17  # 18 rows, one dropped
    for sid, expected in copy["samples"].items():
        s = samples[sid]
        assert {f: getattr(s, f) for f in FIELDS} == expected, sid
        assert (s.dataset, s.fps) == ("casme3", 30.0)
        # The folder is the whole task video (several stretches of task a share it).
        assert s.onset in s.frames.frame_numbers and s.offset in s.frames.frame_numbers
        assert all(p.parent.name == "color" for p in s.frames.paths)  # depth/ ignored
    assert result.report.repairs == []
    assert any("header on row 1 of sheet 'Sheet1'" in n for n in result.report.notes)


def test_planted_quirks(copy, result):
    samples = {s.sample_id: s for s in result.samples}
    planted = copy["planted"]
    # Repeated (Subject, Filename): row order numbers the clips, and both stretches of task a are read.
    assert planted["repeated_task"] == "casme3/spNO.1/a_2" and "casme3/spNO.1/a_1" in samples
    assert samples["casme3/spNO.1/a_2"].onset > samples["casme3/spNO.1/a_1"].offset
    assert samples[planted["others"]].emotion == "others"
    assert samples[planted["fullwidth_comma_au"]].action_units == ("1", "2", "5", "26")
    assert samples[planted["comma_au"]].action_units == ("6", "12")
    # The apex outside onset..offset is the one drop, with its reason and row.
    [drop] = result.report.drops
    assert drop.sample_id == planted["apex_outside"]
    assert "outside onset..offset" in drop.reason and drop.source == f"{LABEL_FILE} row 5"


def test_strict_raises_naming_file_and_row(copy):
    with pytest.raises(
        ReaderError, match=r"JpgIndex_v2\.xlsx row 5: casme3/spNO\.1/c_1: apex \d+ outside.*strict"
    ):
        read_casme3(copy["frames_root"], strict=True)


def test_missing_clip_folder(copy, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(copy["frames_root"], root)
    shutil.rmtree(root / "spNO.8" / "a")  # both clips of task a of spNO.8
    result = read_casme3(root)
    gone = {d.sample_id: d for d in result.report.drops if "does not exist" in d.reason}
    assert set(gone) == {"casme3/spNO.8/a_1", "casme3/spNO.8/a_2"}
    assert len(result.samples) == len(copy["samples"]) - 2
    with pytest.raises(ReaderError, match=r"row \d+: casme3/spNO\.(1/c_1|8/a_1): .*strict"):
        read_casme3(root, strict=True)


def test_bad_input_errors_name_the_file(copy, tmp_path):
    def set_cell(row, col, value):
        return lambda s: setattr(s.cell(row, col), "value", value)

    with pytest.raises(ReaderError, match=r"a\.xlsx: missing column\(s\) AU \(sheet 'Sheet1' row 1 has:"):
        read_casme3(copy["frames_root"], edited(copy, tmp_path / "a.xlsx", set_cell(1, 6, "AUs")))
    with pytest.raises(ReaderError, match=r"b\.xlsx row 3: unknown emotion 'joy'"):
        read_casme3(copy["frames_root"], edited(copy, tmp_path / "b.xlsx", set_cell(3, 8, "joy")))
    with pytest.raises(ReaderError, match=r"c\.xlsx row 4: unknown emotion 'Happy'"):  # words as written
        read_casme3(copy["frames_root"], edited(copy, tmp_path / "c.xlsx", set_cell(4, 8, "Happy")))
    # Wrong sheet: a workbook without the label sheet names its sheets.
    book = Workbook()
    book.active.title = "Part C"
    book.active.append(["sub", "count", "au", "onset", "offset"])
    book.save(tmp_path / "d.xlsx")
    with pytest.raises(ReaderError, match=r"d\.xlsx: no sheet has a CAS\(ME\)\^3 header.*sheets: 'Part C'"):
        read_casme3(copy["frames_root"], tmp_path / "d.xlsx")
    with pytest.raises(ReaderError, match=r"label file does not exist: .*nothere\.xlsx"):
        read_casme3(copy["frames_root"], tmp_path / "nothere.xlsx")
    with pytest.raises(ReaderError, match="data.casme3_root=PATH .* or MERLIN_CASME3_ROOT"):
        read_casme3(None)
    with pytest.raises(ReaderError, match=r"frame folder does not exist: .*nowhere"):
        read_casme3(tmp_path / "nowhere")
    with pytest.raises(ReaderError, match="holds no spNO"):
        read_casme3(tmp_path)


def test_label_sheet_found_behind_another_sheet(copy, tmp_path):
    book = load_workbook(copy["annotation"])
    book.create_sheet("readme", 0).append(["CAS(ME)^3 part A labels"])
    book.save(tmp_path / "e.xlsx")
    result = read_casme3(copy["frames_root"], tmp_path / "e.xlsx")
    assert [s.sample_id for s in result.samples] == [
        s.sample_id for s in read_casme3(copy["frames_root"]).samples
    ]


def test_label_maps(copy, result):
    mapping = {
        **dict.fromkeys(("disgust", "fear", "anger", "sad"), "negative"),
        "happy": "positive",
        "surprise": "surprise",
    }
    three = label_map("casme3_3class")
    kept, y, excluded = three.apply(result.samples)
    assert [e.sample_id for e in excluded] == [copy["planted"]["others"]]
    assert len(kept) == len(result.samples) - 1
    assert [three.classes[k] for k in y] == [mapping[s.emotion] for s in kept]
    assert {s.emotion for s in kept} == set(mapping)  # every word of the vocabulary occurs in the copy
    seven = label_map("casme3_7class")
    kept, y, excluded = seven.apply(result.samples)
    assert excluded == [] and [seven.classes[k] for k in y] == [s.emotion for s in result.samples]


def test_features(result):
    from preprocessing.features import FeatureSpec, compute_features

    features = compute_features(result.samples[0], FeatureSpec(flow_method="farneback"))
    assert features.shape == (3, 28, 28) and np.isfinite(features).all() and np.abs(features).max() > 0
