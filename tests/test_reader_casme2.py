"""CASME II reader on an exported synthetic copy: read back, every planted quirk, bad input named."""

from __future__ import annotations

import shutil

import pytest
from openpyxl import load_workbook

from datamodules.protocols import label_map
from datamodules.readers.base import ReaderError
from datamodules.readers.casme2 import read_casme2
from datamodules.readers.export.casme2 import export_casme2
from datamodules.samples import SampleError


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    return export_casme2(tmp_path_factory.mktemp("casme2"))


@pytest.fixture(scope="module")
def read(copy):
    return read_casme2(copy["frames_root"], copy["annotation"])


def _by_id(result):
    return {s.sample_id: s for s in result.samples}


def _expected(copy):
    """The manifest's annotation after the reader's documented repairs (see the planted quirks)."""
    out = {}
    for sid, row in copy["samples"].items():
        onset, apex, offset = row["onset"], row["apex"], row["offset"]
        if sid == copy["planted"]["offset_beyond_frames"]:  # three frames short on disk: offset clamped
            offset -= 3
        if sid == copy["planted"]["other_numbering"]:  # the folder numbers 145 higher: taken as the clip
            onset, apex, offset = onset + 145, apex + 145, offset + 145
        out[sid] = (row["emotion"], onset, apex, offset, tuple(row["action_units"]))
    return out


def test_reads_back_every_clip(copy, read):
    samples = _by_id(read)
    assert len(samples) == len(read.samples) == 18
    assert {sid: (s.emotion, s.onset, s.apex, s.offset, s.action_units) for sid, s in samples.items()} == (
        _expected(copy)
    )
    rows = set()
    for sid, s in samples.items():
        assert s.dataset == "casme2" and s.clip == sid.split("/")[2] and s.fps == 200.0
        assert s.subject == "/".join(sid.split("/")[:2])
        assert s.source.startswith("CASME2-coding-20140508.xlsx row ")
        rows.add(int(s.source.rsplit(" ", 1)[1]))
        assert s.frames.frame_numbers[0] <= s.onset and s.offset <= s.frames.frame_numbers[-1]
    assert rows == set(range(2, 20))  # spreadsheet rows: header is row 1
    assert read.report.drops == []
    assert len(read.report.repairs) == 3  # apex '/', offset past the frames, other numbering
    assert read.report.notes == ["CASME II labels: 2014 (from the file name CASME2-coding-20140508.xlsx)"]
    assert read.samples[0].frames.read(read.samples[0].onset).shape[:2] == (64, 56)


def test_planted_quirks_are_repaired_with_reasons(copy, read):
    samples, planted, rows = _by_id(read), copy["planted"], copy["samples"]
    repairs = {i.sample_id: i for i in read.report.repairs}
    slash = planted["apex_slash"]
    assert samples[slash].apex is None and "apex not annotated" in repairs[slash].reason
    assert repairs[slash].source.startswith("CASME2-coding-20140508.xlsx row ")
    at_onset, at_offset = samples[planted["apex_at_onset"]], samples[planted["apex_at_offset"]]
    assert at_onset.apex == at_onset.onset and at_offset.apex == at_offset.offset
    assert planted["apex_at_onset"] not in repairs and planted["apex_at_offset"] not in repairs
    short = samples[planted["offset_beyond_frames"]]
    assert short.offset == rows[planted["offset_beyond_frames"]]["offset"] - 3
    assert "clamped" in repairs[planted["offset_beyond_frames"]].reason
    moved = samples[planted["other_numbering"]]
    row = rows[planted["other_numbering"]]
    assert moved.onset == row["onset"] + 145 and moved.offset == row["offset"] + 145
    assert moved.apex == row["apex"] + 145  # same relative position in the folder's numbering
    assert "relative position" in repairs[planted["other_numbering"]].reason
    assert samples[planted["odd_folder"]].clip == "EP01_2"
    aus = {
        q: samples[planted[q]].action_units
        for q in ("au_laterality", "au_right", "au_bare_int", "au_unknown")
    }
    assert aus == {
        "au_laterality": ("4", "L10"),
        "au_right": ("R12",),
        "au_bare_int": ("12",),
        "au_unknown": (),
    }


def test_strict_mode_raises_at_the_first_quirk_naming_file_and_row(copy):
    # The first quirk in file order is the apex '/' row (planted before the others).
    row = int(
        _by_id(read_casme2(copy["frames_root"], copy["annotation"]))[
            copy["planted"]["apex_slash"]
        ].source.rsplit(" ", 1)[1]
    )
    with pytest.raises(
        ReaderError,
        match=rf"CASME2-coding-20140508\.xlsx row {row}: casme2/.*apex not annotated.*strict mode",
    ):
        read_casme2(copy["frames_root"], copy["annotation"], strict=True)


def test_unparseable_frame_cell_dropped_naming_cell_and_row(copy, tmp_path):
    def garble(book):
        book["Sheet1"]["F4"] = "12o"  # OffsetFrame of row 4

    bad = _edit(copy["annotation"], tmp_path / "frames.xlsx", garble)
    result = read_casme2(copy["frames_root"], bad)
    (drop,) = result.report.drops
    assert drop.source == "frames.xlsx row 4" and "'12o'" in drop.reason
    assert drop.sample_id not in _by_id(result) and len(result.samples) == 17
    with pytest.raises(ReaderError, match=r"frames\.xlsx row 4: casme2/.*'12o'"):
        read_casme2(copy["frames_root"], bad, strict=True)


def test_negative_onset_is_reported_as_negative_not_missing(copy, tmp_path):
    def edit(book):
        sheet = book["Sheet1"]
        sheet["D4"] = -5  # OnsetFrame of row 4
        sheet["F6"] = None  # OffsetFrame of row 6: blank
        sheet["E7"] = -1  # ApexFrame of row 7: a negative apex still means "not annotated"

    bad = _edit(copy["annotation"], tmp_path / "negative.xlsx", edit)
    result = read_casme2(copy["frames_root"], bad)
    drops = {i.source: i.reason for i in result.report.drops}
    assert drops == {
        "negative.xlsx row 4": "unparseable frame numbers (onset -5 is negative)",
        "negative.xlsx row 6": "unparseable frame numbers (onset or offset frame missing)",
    }
    repairs = {i.source: i.reason for i in result.report.repairs}
    assert repairs["negative.xlsx row 7"] == "apex not annotated ('-1')"
    with pytest.raises(ReaderError, match=r"negative\.xlsx row 4: casme2/.*onset -5 is negative"):
        read_casme2(copy["frames_root"], bad, strict=True)


def test_duplicate_row_dropped_and_folder_case_fallback(copy, tmp_path):
    def duplicate(book):
        sheet = book["Sheet1"]
        sheet.append([c.value for c in sheet[2]])

    bad = _edit(copy["annotation"], tmp_path / "dup.xlsx", duplicate)
    result = read_casme2(copy["frames_root"], bad)
    (drop,) = result.report.drops
    assert drop.source == "dup.xlsx row 20" and "row 2" in drop.reason and len(result.samples) == 18
    frames = tmp_path / "frames"
    shutil.copytree(copy["frames_root"], frames)
    odd = copy["planted"]["odd_folder"].split("/", 1)[1]  # sub02/EP01_2
    (frames / odd).rename(frames / odd.lower())
    result = read_casme2(frames, copy["annotation"])
    assert _by_id(result)[copy["planted"]["odd_folder"]].frames.paths[0].parent.name == "ep01_2"


def test_version_by_name_content_and_forced(copy, tmp_path):
    renamed = tmp_path / "labels.xlsx"
    shutil.copy(copy["annotation"], renamed)
    notes = read_casme2(copy["frames_root"], renamed).report.notes
    assert notes[0].startswith("CASME II labels: 2014 (from the content")
    forced = read_casme2(copy["frames_root"], renamed, version="2019").report.notes
    assert forced[0].startswith("CASME II labels: 2019 (forced")
    new = export_casme2(tmp_path / "v2019", version="2019")
    result = read_casme2(new["frames_root"], new["annotation"])
    assert result.report.notes[0].startswith("CASME II labels: 2019 (from the file name")
    assert new["planted"]["only_in_2014"] not in _by_id(result)
    assert _by_id(result)[new["planted"]["sadness_to_surprise_2019"]].emotion == "surprise"
    renamed_2019 = tmp_path / "labels2019.xlsx"
    shutil.copy(new["annotation"], renamed_2019)
    assert (
        read_casme2(new["frames_root"], renamed_2019)
        .report.notes[0]
        .startswith("CASME II labels: 2019 (from the content")
    )


def test_annotation_found_next_to_the_frames(copy, tmp_path):
    assert len(read_casme2(copy["frames_root"]).samples) == len(copy["samples"])
    frames = tmp_path / "db" / "Cropped"
    shutil.copytree(copy["frames_root"], frames)
    with pytest.raises(ReaderError, match=r"no label file CASME2-coding-\*\.xls\*.*data\.casme2_annotation"):
        read_casme2(frames)
    shutil.copy(copy["annotation"], tmp_path / "db" / "CASME2-coding-20140508.xlsx")
    shutil.copy(copy["annotation"], tmp_path / "CASME2-coding-20190701.xlsx")
    with pytest.raises(ReaderError, match=r"several label files"):
        read_casme2(frames)
    with pytest.raises(ReaderError, match=r"label file does not exist: .*nothing\.xlsx"):
        read_casme2(frames, tmp_path / "nothing.xlsx")


def test_raw_selected_layout(tmp_path):
    raw = export_casme2(tmp_path, layout="CASME2_RAW_selected")
    result = read_casme2(raw["frames_root"])
    assert raw["frames_root"].name == "CASME2_RAW_selected"
    assert {s.sample_id for s in result.samples} == set(raw["samples"])
    assert result.samples[0].frames.paths[0].name.startswith("img")


def test_csv_export_reads_the_same(tmp_path):
    a = export_casme2(tmp_path / "x", annotation_format="xlsx")
    b = export_casme2(tmp_path / "c", annotation_format="csv")
    ra, rb = read_casme2(a["frames_root"], a["annotation"]), read_casme2(b["frames_root"], b["annotation"])
    key = lambda s: (s.sample_id, s.subject, s.onset, s.apex, s.offset, s.emotion, s.action_units)  # noqa: E731
    assert [key(s) for s in ra.samples] == [key(s) for s in rb.samples]
    assert len(ra.samples) == 18
    assert (
        b["annotation"].read_text().splitlines()[1].startswith("01,")
    )  # Subject as the CSV export writes it
    assert [(i.sample_id, i.reason) for i in ra.report.repairs] == [
        (i.sample_id, i.reason) for i in rb.report.repairs
    ]


def _edit(src, dst, fn):
    book = load_workbook(src)
    fn(book)
    book.save(dst)
    return dst


def test_missing_column_wrong_sheet_unknown_emotion(copy, tmp_path):
    def drop_emotion_header(book):
        book["Sheet1"]["I1"] = "Emotion?"

    bad = _edit(copy["annotation"], tmp_path / "a.xlsx", drop_emotion_header)
    with pytest.raises(ReaderError, match=r"a\.xlsx: missing column\(s\) Estimated Emotion"):
        read_casme2(copy["frames_root"], bad)

    def rename_sheet(book):
        book["Sheet1"].title = "Data"

    bad = _edit(copy["annotation"], tmp_path / "b.xlsx", rename_sheet)
    with pytest.raises(ReaderError, match=r"b\.xlsx: no sheet 'Sheet1' \(sheets present: Data\)"):
        read_casme2(copy["frames_root"], bad)

    def typo(book):
        book["Sheet1"]["I5"] = "hapiness"

    bad = _edit(copy["annotation"], tmp_path / "c.xlsx", typo)
    for strict in (False, True):
        with pytest.raises(ReaderError, match=r"c\.xlsx row 5: unknown emotion 'hapiness'"):
            read_casme2(copy["frames_root"], bad, strict=strict)


def test_missing_root_and_missing_clip_folder(copy, tmp_path):
    with pytest.raises(ReaderError, match="data.casme2_root"):
        read_casme2(None)
    with pytest.raises(ReaderError, match=r"nowhere does not exist or holds no sub01"):
        read_casme2(tmp_path / "nowhere", copy["annotation"])
    (tmp_path / "empty" / "other").mkdir(parents=True)
    with pytest.raises(ReaderError, match=r"empty does not exist or holds no sub01.*Cropped"):
        read_casme2(tmp_path / "empty", copy["annotation"])
    frames = tmp_path / "frames"
    shutil.copytree(copy["frames_root"], frames)
    victim = sorted(copy["samples"])[0]
    shutil.rmtree(frames / victim.split("/", 1)[1])
    result = read_casme2(frames, copy["annotation"])
    dropped = {i.sample_id: i for i in result.report.drops}
    assert "does not exist" in dropped[victim].reason and str(frames / victim.split("/", 1)[1]) in (
        dropped[victim].reason
    )
    assert dropped[victim].source.startswith("CASME2-coding-20140508.xlsx row ")
    assert victim not in _by_id(result) and len(result.samples) == 17
    with pytest.raises(ReaderError, match=r"CASME2-coding-20140508\.xlsx row \d+: .*does not exist"):
        read_casme2(frames, copy["annotation"], version="2014", strict=True)


def test_unreadable_image_is_named(copy, tmp_path):
    frames = tmp_path / "frames"
    shutil.copytree(copy["frames_root"], frames)
    sample = read_casme2(frames, copy["annotation"]).samples[0]
    path = sample.frames.path_of(sample.onset)
    path.write_bytes(b"broken")
    with pytest.raises(SampleError, match=f"unreadable image.*{path.name}"):
        sample.frames.read(sample.onset)


def test_five_class_map_and_features(read, copy):
    kept, _, excluded = label_map("casme2_5class").apply(read.samples)
    expect = {sid for sid, row in copy["samples"].items() if row["emotion"] not in ("sadness", "fear")}
    assert {s.sample_id for s in kept} == expect
    assert {e.sample_id for e in excluded} == {
        copy["planted"]["sadness"],
        copy["planted"]["fear"],
        copy["planted"]["sadness_to_surprise_2019"],
    }
    from preprocessing.features import FeatureSpec, compute_features

    x = compute_features(read.samples[0], FeatureSpec(flow_method="farneback"))
    assert x.shape == (3, 28, 28)
