"""SAMM reader on synthetic copies: preamble lengths, planted quirks, the long-video trap, bad input."""

from __future__ import annotations

import shutil

import pytest
from openpyxl import Workbook, load_workbook

from datamodules.protocols import label_map
from datamodules.readers.base import ReaderError
from datamodules.readers.export.samm import export_samm
from datamodules.readers.samm import read_samm

NAME = "SAMM_Micro_FACS_Codes_v2.xlsx"
# 1-based columns of the exported sheet
SUBJECT, FILENAME, ONSET, APEX, OFFSET, AUS, EMOTION = 1, 2, 4, 5, 6, 9, 10


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    return export_samm(tmp_path_factory.mktemp("samm"))


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return export_samm(tmp_path_factory.mktemp("samm_clean"), quirks=False)


@pytest.fixture(scope="module")
def read(copy):
    return read_samm(copy["frames_root"], copy["annotation"])


def _edit(copy, tmp_path, name, fn):
    """A copy of the exported workbook, changed by fn(sheet, samples) and saved as tmp_path / name."""
    book = load_workbook(copy["annotation"])
    fn(book.active, copy["samples"])
    path = tmp_path / name
    book.save(path)
    return path


def _row(copy, quirk):
    return copy["samples"][copy["planted"][quirk]]["row"]


@pytest.mark.parametrize(("preamble_rows", "fmt"), [(13, "xlsx"), (1, "xlsx"), (13, "csv")])
def test_reads_back_with_header_found(tmp_path, preamble_rows, fmt):
    copy = export_samm(tmp_path, preamble_rows=preamble_rows, annotation_format=fmt)
    result = read_samm(copy["frames_root"])  # the label file is found next to SAMM_CROP
    samples = {s.sample_id: s for s in result.samples}
    assert list(samples) == list(copy["samples"])  # every clip, in annotation order
    name = copy["annotation"].name
    for sid, row in copy["samples"].items():
        s = samples[sid]
        got = (s.subject, s.clip, s.emotion, s.onset, s.apex, s.offset, s.action_units)
        want = (row["subject"], row["clip"], row["emotion"], row["onset"], row["apex"], row["offset"])
        assert got == (*want, row["action_units"]), sid
        assert s.dataset == "samm" and s.fps == 200.0 and len(s.subject.split("/")[1]) == 3
        assert s.source == f"{name} row {row['row']}"
        subject = sid.split("/")[1]
        assert s.frames.path_of(s.onset).name == f"{subject}_{s.onset:05d}.jpg"
    first = result.samples[0]
    assert first.source == f"{name} row {preamble_rows + 2}"  # header right after the preamble
    assert any(f"header on row {preamble_rows + 1}" in n for n in result.report.notes)


def test_planted_quirks_are_handled_with_a_reason_naming_the_row(copy, read):
    samples, planted, rows = {s.sample_id: s for s in read.samples}, copy["planted"], copy["samples"]
    repairs = {i.sample_id: i for i in read.report.repairs}
    assert not read.report.drops
    for quirk in ("au_or_group", "au_or", "au_intensity_alternative"):
        assert samples[planted[quirk]].action_units == rows[planted[quirk]]["action_units"]
    assert samples[planted["au_or_group"]].action_units == ("R6|R12", "R15")
    assert samples[planted["au_intensity_alternative"]].action_units == ("10A|10B",)

    missing = repairs[planted["apex_missing"]]
    assert samples[planted["apex_missing"]].apex is None and "apex not annotated (-1)" in missing.reason
    assert missing.source == f"{NAME} row {_row(copy, 'apex_missing')}"

    short = planted["offset_beyond_frames"]
    annotated = rows[short]["annotated"]["offset"]
    assert samples[short].offset == annotated - 2 == samples[short].frames.frame_numbers[-1]
    assert "clamped" in repairs[short].reason and repairs[short].source.endswith(f"row {rows[short]['row']}")

    stray = planted["stray_cell"]
    assert samples[stray].emotion == rows[stray]["emotion"] and samples[stray].apex == rows[stray]["apex"]
    notes = [n for n in read.report.notes if "beyond the Notes column" in n]
    where = f"{NAME} row {rows[stray]['row']}"
    assert notes == [f"{where}: cell(s) beyond the Notes column ignored: 'apex{rows[stray]['apex']}'"]

    assert samples[planted["Other"]].emotion == samples[planted["Other_2"]].emotion == "Other"
    assert set(repairs) == {planted["apex_missing"], short}  # nothing else was touched


def test_strict_raises_at_the_first_quirk_naming_file_and_row(copy, clean):
    row = _row(copy, "apex_missing")  # the first quirk in row order that is repaired, not just noted
    with pytest.raises(
        ReaderError, match=rf"{NAME} row {row}: samm/006/\S+: apex not annotated.*strict mode"
    ):
        read_samm(copy["frames_root"], copy["annotation"], strict=True)
    result = read_samm(clean["frames_root"], clean["annotation"], strict=True)
    assert len(result.samples) == 18 and not result.report.repairs and not result.report.drops


def test_row_quirks_lenient_and_strict(clean, tmp_path):
    copy = clean
    ids = list(copy["samples"])
    rows = {sid: copy["samples"][sid]["row"] for sid in ids}

    def quirks(sheet, samples):
        sheet.cell(rows[ids[8]], FILENAME).value = "006_9_9"  # Subject 7 with a 006 clip
        sheet.cell(rows[ids[9]], FILENAME).value = "007_9_99"  # no such folder
        sheet.cell(rows[ids[10]], APEX).value = None  # blank apex
        sheet.cell(rows[ids[11]], AUS).value = "R6 and maybe 12"  # no parse
        sheet.cell(rows[ids[12]], SUBJECT).value = "six"

    path = _edit(copy, tmp_path, "q.xlsx", quirks)
    result = read_samm(copy["frames_root"], path)
    drops = {i.source: i.reason for i in result.report.drops}
    repairs = {i.source: i.reason for i in result.report.repairs}
    assert "Filename '006_9_9' does not belong to Subject 007" in drops[f"q.xlsx row {rows[ids[8]]}"]
    assert "007/007_9_99 does not exist" in drops[f"q.xlsx row {rows[ids[9]]}"]
    assert "no usable Subject" in drops[f"q.xlsx row {rows[ids[12]]}"]
    assert "apex not annotated (blank)" in repairs[f"q.xlsx row {rows[ids[10]]}"]
    assert "'R6 and maybe 12' unparseable" in repairs[f"q.xlsx row {rows[ids[11]]}"]
    kept = {s.sample_id: s for s in result.samples}
    assert kept[ids[10]].apex is None and kept[ids[11]].action_units == ()
    assert len(kept) == len(ids) - 3
    with pytest.raises(ReaderError, match=rf"q\.xlsx row {rows[ids[8]]}: .*does not belong.*strict"):
        read_samm(copy["frames_root"], path, strict=True)

    def duplicate(sheet, samples):
        sheet.cell(rows[ids[1]], FILENAME).value = ids[0].split("/")[2]

    result = read_samm(copy["frames_root"], _edit(copy, tmp_path, "dup.xlsx", duplicate))
    assert [(i.sample_id, i.reason) for i in result.report.drops] == [
        (ids[0], f"repeats dup.xlsx row {rows[ids[0]]}")
    ]


def test_label_maps(copy, read):
    megc = label_map("megc2019")
    kept, y, excluded = megc.apply(read.samples)
    negatives = ("Anger", "Contempt", "Disgust", "Fear", "Sadness")
    assert {s.emotion for s in kept} == {*negatives, "Happiness", "Surprise"}
    assert {e.sample_id for e in excluded} == {copy["planted"]["Other"], copy["planted"]["Other_2"]}
    want = {"Happiness": "positive", "Surprise": "surprise"} | dict.fromkeys(negatives, "negative")
    assert [megc.classes[k] for k in y] == [want[s.emotion] for s in kept]

    five, _, _ = label_map("samm_5class").apply(read.samples)
    assert {s.emotion for s in five} == {"Anger", "Contempt", "Happiness", "Surprise", "Other"}
    assert [s.sample_id for s in five] == [
        sid for sid, r in copy["samples"].items() if r["emotion"] not in ("Disgust", "Fear", "Sadness")
    ]


def test_bad_input_is_named(copy, tmp_path):
    header = 14  # 13 preamble rows

    def no_onset(sheet, samples):
        sheet.cell(header, ONSET).value = "Onset"

    bad = _edit(copy, tmp_path, "a.xlsx", no_onset)
    with pytest.raises(ReaderError, match=r"a\.xlsx: missing column\(s\) Onset Frame \(header row 14"):
        read_samm(copy["frames_root"], bad)

    def long_videos(sheet, samples):
        for col, name in ((ONSET, "Onset"), (APEX, "Apex"), (OFFSET, "Offset"), (8, "Type")):
            sheet.cell(header, col).value = name

    bad = _edit(copy, tmp_path, "SAMM_LongVideos_V2_Release.xlsx", long_videos)
    with pytest.raises(ReaderError, match=r"SAMM_LongVideos_V2_Release\.xlsx is the SAMM Long Videos.*never"):
        read_samm(copy["frames_root"], bad)

    row = next(iter(copy["samples"].values()))["row"] + 1

    def others(sheet, samples):
        sheet.cell(row, EMOTION).value = "Others"

    bad = _edit(copy, tmp_path, "c.xlsx", others)
    with pytest.raises(ReaderError, match=rf"c\.xlsx row {row}: unknown emotion 'Others'"):
        read_samm(copy["frames_root"], bad)

    def no_header(sheet, samples):
        sheet.cell(header, SUBJECT).value = "Participant"

    bad = _edit(copy, tmp_path, "d.xlsx", no_header)
    with pytest.raises(ReaderError, match=r"d\.xlsx: no header row starting with 'Subject'.*'FACS codes'"):
        read_samm(copy["frames_root"], bad)

    with pytest.raises(ReaderError, match="label file does not exist: .*nothing.xlsx"):
        read_samm(copy["frames_root"], tmp_path / "nothing.xlsx")
    with pytest.raises(ReaderError, match="data.samm_root"):
        read_samm(None)
    with pytest.raises(ReaderError, match=r"SAMM frame folder .*nowhere does not exist"):
        read_samm(tmp_path / "nowhere", copy["annotation"])
    with pytest.raises(ReaderError, match=r"holds no 3-digit subject folders.*did you mean .*SAMM_CROP"):
        read_samm(copy["frames_root"].parent, copy["annotation"])
    lone = tmp_path / "lone" / "frames"
    shutil.copytree(copy["frames_root"] / "006", lone / "006")
    with pytest.raises(ReaderError, match=r"no label file SAMM\*Micro\*FACS\*\.xlsx.* in any of .*lone"):
        read_samm(lone)


def test_the_right_sheet_is_found_and_a_wrong_one_named(copy, tmp_path):
    book = load_workbook(copy["annotation"])
    book.active.title = "Micro"
    readme = book.create_sheet("Readme", 0)
    readme["A1"] = "This workbook lists the micro-movements"
    path = tmp_path / "two_sheets.xlsx"
    book.save(path)
    result = read_samm(copy["frames_root"], path)
    assert len(result.samples) == len(copy["samples"])
    assert any("sheet 'Micro'" in n for n in result.report.notes)

    wrong = Workbook()
    wrong.active.title = "Summary"
    wrong.active["A1"] = "Subjects: 32"
    wrong.create_sheet("Chart")
    wrong.save(tmp_path / "wrong.xlsx")
    with pytest.raises(ReaderError, match=r"wrong\.xlsx: no header row .*sheets present: 'Summary', 'Chart'"):
        read_samm(copy["frames_root"], tmp_path / "wrong.xlsx")


def test_features_on_a_read_sample(read):
    from preprocessing.features import FeatureSpec, compute_features

    sample = read.samples[1]
    assert compute_features(sample, FeatureSpec(flow_method="farneback")).shape == (3, 28, 28)
