"""Long-video readers (SAMM Long Videos, CAS(ME)^2, SMIC-E) on synthetic exports in each real layout: every
video and interval, the databases' own frame numbers, planted and edited quirks, strict mode, bad input."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf
from openpyxl import load_workbook

from datamodules.long_videos import MACRO, MICRO
from datamodules.protocols import natural_key
from datamodules.readers.base import ReaderError
from datamodules.readers.casme_sq import read_casme_sq
from datamodules.readers.export.casme_sq import export_casme_sq
from datamodules.readers.export.samm_long import SMALL, export_samm_long
from datamodules.readers.export.smic_e import export_smic_e
from datamodules.readers.samm_long import read_samm_long
from datamodules.readers.smic_e import LABELS, read_smic_e

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "videos"
# 1-based columns of the exported sheets
SAMM_FILENAME, SAMM_ONSET, SAMM_APEX, SAMM_OFFSET, SAMM_TYPE = 2, 4, 5, 6, 8
CASME_SUBJECT, CASME_NAME, CASME_ONSET, CASME_APEX, CASME_OFFSET, CASME_EMOTION, CASME_TYPE = (
    1,
    2,
    3,
    4,
    5,
    7,
    8,
)
SMIC_SUBJECT, SMIC_FILENAME, SMIC_EMOTION, SMIC_FIRST, SMIC_ONSET, SMIC_OFFSET = 1, 2, 3, 4, 5, 6


@pytest.fixture(scope="module")
def samm(tmp_path_factory):
    return export_samm_long(tmp_path_factory.mktemp("samm_long"))


@pytest.fixture(scope="module")
def casme(tmp_path_factory):
    return export_casme_sq(tmp_path_factory.mktemp("casme_sq"))


@pytest.fixture(scope="module")
def smic(tmp_path_factory):
    return export_smic_e(tmp_path_factory.mktemp("smic_e"), subsets=("HS", "VIS", "NIR"))


def _edit(source: Path, target: Path, fn) -> Path:
    """A copy of an exported workbook, changed by fn(workbook) and saved as `target`."""
    book = load_workbook(source)
    fn(book)
    target.parent.mkdir(parents=True, exist_ok=True)
    book.save(target)
    return target


def _expected(videos: dict, name: str, ids=None) -> dict:
    """{video_id: (subject, fps, first, last, intervals as the reader must return them)} from a manifest."""
    out = {}
    for video_id, v in videos.items():
        if ids is not None and video_id not in ids:
            continue
        fields = ("onset", "apex", "offset", "kind", "emotion", "action_units")
        intervals = tuple(
            (*(i[f] for f in fields), f"{name} row {i['row']}")
            for i in sorted(v["intervals"], key=lambda i: (i["onset"], i["offset"]))
        )
        out[video_id] = (v["subject"], v["fps"], v["first_frame"], v["last_frame"], intervals)
    return out


def _got(read) -> dict:
    return {
        v.video_id: (
            v.subject,
            v.fps,
            v.first_frame,
            v.last_frame,
            tuple(
                (i.onset, i.apex, i.offset, i.kind, i.emotion, i.action_units, i.source) for i in v.intervals
            ),
        )
        for v in read.videos
    }


def _check_videos(read, manifest_videos: dict, name: str, dataset: str, ids=None) -> None:
    assert _got(read) == _expected(manifest_videos, name, ids)
    assert [v.video_id for v in read.videos] == sorted(_got(read), key=natural_key)
    for v in read.videos:
        assert (
            v.dataset == dataset and v.subject.startswith(f"{dataset}/") and v.video_id.startswith(v.subject)
        )
        numbers = v.frames.frame_numbers
        assert numbers == tuple(range(v.first_frame, v.last_frame + 1))
        assert v.source == str(manifest_videos[v.video_id]["folder"])
        assert v.frames.read(numbers[len(numbers) // 2]).shape == (64, 56)


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_samm_long_reads_every_video_in_its_own_numbering(samm, tmp_path, fmt):
    # The .csv export on one shorter video: the same reader path for a text file, at a third of the frames.
    small = replace(SMALL, num_subjects=1, seconds=2.0, micro_per_video=1, blinks_per_video=0)
    copy = samm if fmt == "xlsx" else export_samm_long(tmp_path, small, quirks=False, annotation_format=fmt)
    read = read_samm_long(copy["frames_root"])  # the label file is found beside SAMM_longvideos
    _check_videos(read, copy["videos"], copy["annotation"].name, "samm_long")
    for v in read.videos:
        name = v.video_id.split("/")[1]  # 006_1: frames counted from 1 within the trimmed video
        assert v.first_frame == 1 and v.frames.path_of(1).name == f"{name}_0001.jpg"
        assert v.frames.path_of(v.last_frame).name == f"{name}_{v.last_frame:04d}.jpg"
        assert all(i.emotion is None for i in v.intervals)  # SAMM-LV has no emotion column
    assert {i.kind for v in read.videos for i in v.intervals} == {MICRO, MACRO}
    assert any("header on row 10" in n for n in read.report.notes)


def test_samm_long_planted_quirks_are_repaired_with_their_row(samm):
    read = read_samm_long(samm["frames_root"], samm["annotation"])
    name, planted = samm["annotation"].name, samm["planted"]
    repairs = {i.source: i.reason for i in read.report.repairs}
    missing = {f"{name} row {planted[q]['row']}" for q in ("apex_missing_micro", "apex_missing_macro")}
    assert set(repairs) == missing and not read.report.drops  # nothing else was touched
    assert all(reason == "apex not annotated (-1): kept as None" for reason in repairs.values())
    intervals = {i.source: i for v in read.videos for i in v.intervals}
    assert {intervals[s].kind for s in missing} == {MICRO, MACRO}
    assert intervals[f"{name} row {planted['au_or_group']['row']}"].action_units == ("R6|R12", "R15")
    assert intervals[f"{name} row {planted['au_intensity_alternative']['row']}"].action_units == ("10A|10B",)


def test_samm_long_row_quirks_lenient_and_strict(samm, tmp_path):
    frames = tmp_path / "SAMM_longvideos"
    frames.mkdir()
    for video in samm["frames_root"].iterdir():  # the exported videos, linked rather than copied
        (frames / video.name).symlink_to(video, target_is_directory=True)
    (frames / "006_9").mkdir()  # a recording nobody annotated
    for path in sorted((frames / "006_1").iterdir())[:20]:
        shutil.copy(path, frames / "006_9" / path.name.replace("006_1_", "006_9_"))
    a, b = (v["intervals"] for v in samm["videos"].values())  # 006_1, 007_1
    last = samm["videos"]["samm_long/007_1"]["last_frame"]

    def quirks(book):
        sheet = book.active
        sheet.cell(a[2]["row"], SAMM_FILENAME).value = "007_1_9"  # Subject 006 with a 007 expression
        sheet.cell(b[0]["row"], SAMM_ONSET).value = "about 200"
        sheet.cell(b[1]["row"], SAMM_OFFSET).value = last + 50  # past the video's last frame
        sheet.cell(b[2]["row"], SAMM_ONSET).value = last + 100  # wholly after it
        sheet.cell(b[2]["row"], SAMM_OFFSET).value = last + 120
        end = sheet.max_row
        for col in range(1, 11):  # a second row for 006_1_1, and a row of a video with no folder
            sheet.cell(end + 1, col).value = sheet.cell(a[0]["row"], col).value
            sheet.cell(end + 2, col).value = sheet.cell(a[0]["row"], col).value
        sheet.cell(end + 2, SAMM_FILENAME).value = "006_3_1"

    path = _edit(samm["annotation"], tmp_path / "q.xlsx", quirks)
    read = read_samm_long(frames, path)
    end = max(i["row"] for i in b)
    drops = {i.source: (i.sample_id, i.reason) for i in read.report.drops}
    repairs = {i.source: i.reason for i in read.report.repairs}
    assert drops[f"q.xlsx row {a[2]['row']}"][1] == "Filename '007_1_9' does not belong to Subject 006"
    assert "unparseable frame numbers" in drops[f"q.xlsx row {b[0]['row']}"][1]
    assert f"lie outside the video's frames 1..{last}" in drops[f"q.xlsx row {b[2]['row']}"][1]
    assert drops[f"q.xlsx row {end + 1}"] == ("samm_long/006_1/006_1_1", f"repeats q.xlsx row {a[0]['row']}")
    assert drops[f"q.xlsx row {end + 2}"][0] == "samm_long/006_3/006_3_1"
    assert "frame folder does not exist" in drops[f"q.xlsx row {end + 2}"][1]
    assert len(drops) == 5
    assert f"clamped to {b[1]['onset']}..{last}" in repairs[f"q.xlsx row {b[1]['row']}"]
    videos = {v.video_id: v for v in read.videos}
    assert [i.offset for i in videos["samm_long/007_1"].intervals] == [last]
    assert videos["samm_long/006_9"].intervals == () and videos["samm_long/006_9"].num_frames > 0
    assert any("samm_long/006_9: no annotation row" in n for n in read.report.notes)
    with pytest.raises(ReaderError, match=rf"q\.xlsx row {a[2]['row']}: .*does not belong.*strict mode"):
        read_samm_long(frames, path, strict=True)

    def unknown_type(book):
        book.active.cell(a[1]["row"], SAMM_TYPE).value = "Blink"

    with pytest.raises(ReaderError, match=rf"t\.xlsx row {a[1]['row']}: unknown Type 'Blink'"):
        read_samm_long(frames, _edit(samm["annotation"], tmp_path / "t.xlsx", unknown_type))


def test_samm_long_and_samm_micro_refuse_each_other(samm, tmp_path):
    from datamodules.readers.export.samm import export_samm
    from datamodules.readers.samm import read_samm
    from datamodules.readers.synthetic import SyntheticConfig

    micro = export_samm(tmp_path, SyntheticConfig(num_subjects=1, clips_per_subject=2, height=64, width=56))
    with pytest.raises(ReaderError, match=r"SAMM_Micro_FACS_Codes_v2\.xlsx is the SAMM micro-clip .*never"):
        read_samm_long(samm["frames_root"], micro["annotation"])
    with pytest.raises(ReaderError, match=r"3-digit subject folders .*SAMM micro-clip tree"):
        read_samm_long(micro["frames_root"], samm["annotation"])
    # ... and the micro-clip reader still refuses this export's long-video label file (test_reader_samm).
    with pytest.raises(ReaderError, match=r"SAMM_LongVideos_V2_Release\.xlsx is the SAMM Long Videos.*never"):
        read_samm(micro["frames_root"], samm["annotation"])


@pytest.mark.parametrize("fmt", ["xlsx", "csv"])
def test_casme_sq_reads_every_video_with_its_quirks_repaired(casme, tmp_path, fmt):
    copy = casme if fmt == "xlsx" else export_casme_sq(tmp_path, annotation_format=fmt)
    read = read_casme_sq(copy["frames_root"])
    name, planted = copy["annotation"].name, copy["planted"]
    _check_videos(read, copy["videos"], name, "casme_sq")
    for v in read.videos:
        assert v.frames.path_of(1).name == "img1.jpg" and v.frames.path_of(v.last_frame).name.endswith(".jpg")
        expected = {f"{name} row {i['row']}": i for i in copy["videos"][v.video_id]["intervals"]}
        assert v.extra["self_reported"] == {s: i["self_reported"] for s, i in expected.items()}
        assert v.extra["expression"] == {s: i["expression"] for s, i in expected.items()}
    row = {q: f"{name} row {p['row']}" for q, p in planted.items()}
    repairs = {i.source: i.reason for i in read.report.repairs}
    assert set(repairs) == {row["offset_missing"], row["happyiness"]} and not read.report.drops
    assert repairs[row["offset_missing"]].startswith("offset 0 (missing): set to apex + (apex - onset)")
    assert repairs[row["happyiness"]] == "self-reported emotion 'happyiness' repaired to 'happiness' (a typo)"
    intervals = {i.source: i for v in read.videos for i in v.intervals}
    missing = intervals[row["offset_missing"]]
    assert missing.kind == MICRO and missing.offset == min(2 * missing.apex - missing.onset, 240)
    assert intervals[row["au_null"]].action_units == ()
    assert f"AU cell NULL (no AU coded) on row(s) {planted['au_null']['row']}" in " ".join(read.report.notes)
    assert intervals[row["others"]].emotion == "others"
    naming = "no naming sheets" if fmt == "csv" else "video codes from sheet 'naming rule2'"
    assert any(naming in n for n in read.report.notes)


def test_casme_sq_row_quirks_lenient_and_strict(casme, tmp_path):
    rows = [i for v in casme["videos"].values() for i in v["intervals"]]
    rows.sort(key=lambda i: i["row"])

    def quirks(book):
        sheet = book.worksheets[0]
        sheet.cell(rows[3]["row"], CASME_SUBJECT).value = 9  # no subject 9 in `naming rule1`
        sheet.cell(rows[4]["row"], CASME_NAME).value = "sadness7_1"  # no video sadness7 in `naming rule2`
        sheet.cell(rows[5]["row"], CASME_APEX).value = 0  # apex and offset both missing
        sheet.cell(rows[5]["row"], CASME_OFFSET).value = 0
        sheet.cell(rows[6]["row"], CASME_APEX).value = rows[6]["offset"] + 5  # after the offset
        sheet.cell(rows[7]["row"], CASME_OFFSET).value = 999  # past the last frame, 240
        sheet.cell(rows[8]["row"], CASME_NAME).value = "happy1_1"  # video 0502: s16 has no 16_0502* folder

    path = _edit(casme["annotation"], tmp_path / "q.xlsx", quirks)
    read = read_casme_sq(casme["frames_root"], path)
    drops = {i.source: i.reason for i in read.report.drops}
    repairs = {i.source: i.reason for i in read.report.repairs}
    at = {k: f"q.xlsx row {rows[k]['row']}" for k in range(len(rows))}
    assert drops[at[3]] == "subject number 9 is not in the naming sheets of q.xlsx"
    assert drops[at[4]] == "video name 'sadness7' is not in the naming sheets of q.xlsx"
    assert drops[at[5]] == "offset 0 (missing) and no apex to estimate it from"
    assert "no video folder 16_0502* in" in drops[at[8]]
    assert len(drops) == 4
    assert "apex not annotated (0)" in repairs[at[5]]
    assert f"apex {rows[6]['offset'] + 5} outside onset..offset" in repairs[at[6]]
    assert f"clamped to {rows[7]['onset']}..240" in repairs[at[7]]
    intervals = {i.source: i for v in read.videos for i in v.intervals}
    assert intervals[at[6]].apex is None and intervals[at[7]].offset == 240
    assert len(intervals) == len(rows) - 4
    # Strict: the first quirk in reading order (pass 1 places rows, so the first drop comes first).
    with pytest.raises(
        ReaderError, match=rf"q\.xlsx row {rows[3]['row']}: casme_sq/\?/\S+: subject number 9.*strict"
    ):
        read_casme_sq(casme["frames_root"], path, strict=True)

    def unknown(book):
        book.worksheets[0].cell(rows[1]["row"], CASME_EMOTION).value = "happy"

    with pytest.raises(
        ReaderError, match=rf"u\.xlsx row {rows[1]['row']}: unknown objective emotion 'happy'"
    ):
        read_casme_sq(casme["frames_root"], _edit(casme["annotation"], tmp_path / "u.xlsx", unknown))


def test_strict_raises_at_the_first_planted_quirk(samm, casme, smic):
    for reader, copy in ((read_samm_long, samm), (read_casme_sq, casme)):
        lenient = reader(copy["frames_root"], annotation=copy["annotation"])
        first = lenient.report.repairs[0]
        planted_rows = {p["row"] for p in copy["planted"].values()}
        assert first.source == f"{copy['annotation'].name} row {min(planted_rows)}"
        with pytest.raises(ReaderError) as err:
            reader(copy["frames_root"], annotation=copy["annotation"], strict=True)
        assert str(err.value).startswith(f"{first.source}: {first.sample_id}: {first.reason} (strict mode")
    # SMIC-E's layout quirks (free text, padded folders, spaces in names) are no row quirks: strict reads it.
    strict = read_smic_e(smic["frames_root"], "VIS", strict=True)
    assert len(strict.videos) == sum(k.startswith("smic_e_vis/") for k in smic["videos"])


@pytest.mark.parametrize("subset", ["HS", "vis", "NIR"])
def test_smic_e_reads_every_clip_in_absolute_numbers(smic, subset):
    read = read_smic_e(smic["frames_root"], subset)
    key = subset.upper()
    dataset = f"smic_e_{key.lower()}"
    ids = {k for k in smic["videos"] if k.startswith(f"{dataset}/")}
    _check_videos(read, smic["videos"], f"SMIC-{key}-E_annotation.xlsx", dataset, ids)
    assert not read.report.repairs and not read.report.drops
    assert {v.fps for v in read.videos} == {100.0 if key == "HS" else 25.0}
    for v in read.videos:
        subject, clip = v.video_id.split("/")[1:]
        assert v.frames.paths[0].parent.parent.name == subject and subject.startswith("s0")  # s01 padded ...
        assert clip.startswith(f"s{int(subject[1:])}_")  # ... the clip name not: s1_ne_01
        name = f"image{v.first_frame}.jpg" if key == "HS" else f"{clip} {v.first_frame}.jpg"
        assert v.frames.path_of(v.first_frame).name == name and v.first_frame > 300000
        (interval,) = v.intervals
        assert (
            interval.kind == MICRO
            and interval.apex is None
            and interval.emotion in ("negative", "positive", "surprise")
        )
    rows = smic["planted"]["free_text"][key]
    note = f"SMIC-{key}-E_annotation.xlsx: {len(rows)} free-text row(s) after the data, rows {rows[0]}.."
    assert any(n.startswith(f"{note}{rows[-1]}, not read") for n in read.report.notes)


def test_smic_e_nir_sheet_has_its_own_onsets(smic):
    vis = {
        v.video_id.split("/", 1)[1]: v.intervals[0] for v in read_smic_e(smic["frames_root"], "VIS").videos
    }
    nir = {
        v.video_id.split("/", 1)[1]: v.intervals[0] for v in read_smic_e(smic["frames_root"], "NIR").videos
    }
    assert set(vis) == set(nir)
    shift = smic["planted"]["nir_onsets_differ"]["shift"]
    assert all((nir[k].onset - vis[k].onset, nir[k].offset - vis[k].offset) == shift for k in vis)


def test_smic_e_row_quirks_lenient_and_strict(smic, tmp_path):
    hs = sorted(
        (v for k, v in smic["videos"].items() if k.startswith("smic_e_hs/")),
        key=lambda v: v["intervals"][0]["row"],
    )
    ids = {v["intervals"][0]["row"]: k for k, v in smic["videos"].items() if k.startswith("smic_e_hs/")}
    rows = [v["intervals"][0]["row"] for v in hs]
    clip = {r: ids[r].split("/")[2] for r in rows}
    annotation = smic["annotations"]["HS"]
    wrong_label = next(w for w, short in LABELS.items() if short != clip[rows[2]].split("_")[1])

    def quirks(book):
        sheet = book.active
        sheet.cell(rows[0], SMIC_FIRST).value = hs[0]["first_frame"] - 5  # frames missing at the start
        relative = hs[1]["intervals"][0]["onset"] - hs[1]["first_frame"]
        length = hs[1]["intervals"][0]["offset"] - hs[1]["intervals"][0]["onset"]
        sheet.cell(rows[1], SMIC_FIRST).value = 1000  # the sheet counting in another numbering
        sheet.cell(rows[1], SMIC_ONSET).value = 1000 + relative
        sheet.cell(rows[1], SMIC_OFFSET).value = 1000 + relative + length
        sheet.cell(rows[2], SMIC_EMOTION).value = wrong_label  # disagrees with the Filename's label
        for col in range(1, 7):  # the last clip's row replaced by a second row for the first clip
            sheet.cell(rows[3], col).value = sheet.cell(rows[0], col).value

    path = _edit(annotation, tmp_path / "HS_long" / "q.xlsx", quirks)
    read = read_smic_e(smic["frames_root"], "HS", annotation=path)
    repairs = {i.source: i.reason for i in read.report.repairs}
    drops = {(i.sample_id, i.source): i.reason for i in read.report.drops}
    first = hs[0]["first_frame"]
    assert repairs[f"q.xlsx row {rows[0]}"].startswith(
        f"FirstF {first - 5} but the frame files start at {first}"
    )
    assert "counted from the first file" in repairs[f"q.xlsx row {rows[1]}"]
    videos = {v.video_id: v for v in read.videos}
    for k in (0, 1):  # both end up on the frames the expression is on
        interval = videos[ids[rows[k]]].intervals[0]
        assert (interval.onset, interval.offset) == (
            hs[k]["intervals"][0]["onset"],
            hs[k]["intervals"][0]["offset"],
        )
    assert "disagrees with Subject" in drops[(ids[rows[2]], f"q.xlsx row {rows[2]}")]
    assert "repeats q.xlsx row" in drops[(ids[rows[0]], f"q.xlsx row {rows[3]}")]
    unannotated = {sid: reason for (sid, src), reason in drops.items() if "false alarms" in reason}
    assert set(unannotated) == {ids[rows[3]]}  # its row was overwritten; rows[2]'s drop already names it
    assert set(videos) == {ids[rows[0]], ids[rows[1]]}
    with pytest.raises(ReaderError, match=rf"q\.xlsx row {rows[0]}: {ids[rows[0]]}: FirstF .*strict mode"):
        read_smic_e(smic["frames_root"], "HS", annotation=path, strict=True)


def test_bad_input_is_named(samm, casme, smic, tmp_path):
    for reader, option in ((read_samm_long, "samm_long_root"), (read_casme_sq, "casme_sq_root")):
        with pytest.raises(ReaderError, match=rf"videos\.{option}"):
            reader(None)
    with pytest.raises(ReaderError, match=r"videos\.smic_e_root"):
        read_smic_e(None)
    with pytest.raises(ValueError, match="unknown SMIC-E subset 'IR'"):
        read_smic_e(smic["frames_root"], "IR")
    # missing frame folders
    with pytest.raises(ReaderError, match=r"SAMM Long Videos frame folder .*nowhere does not exist"):
        read_samm_long(tmp_path / "nowhere", samm["annotation"])
    with pytest.raises(ReaderError, match=r"CAS\(ME\)\^2 frame folder .*nowhere does not exist"):
        read_casme_sq(tmp_path / "nowhere", casme["annotation"])
    with pytest.raises(ReaderError, match=r"SMIC-E frame folder .*nowhere does not exist"):
        read_smic_e(tmp_path / "nowhere")
    with pytest.raises(ReaderError, match=r"holds no subject folders s15.*did you mean .*rawpic"):
        read_casme_sq(casme["frames_root"].parent, casme["annotation"])
    with pytest.raises(ReaderError, match=r"SMIC-E NIR: no subject folders s01"):
        read_smic_e(tmp_path, "NIR")
    # missing annotation files: named, or searched for and the option to set named
    for reader, copy in ((read_samm_long, samm), (read_casme_sq, casme)):
        with pytest.raises(ReaderError, match=r"label file does not exist: .*none\.xlsx"):
            reader(copy["frames_root"], annotation=tmp_path / "none.xlsx")
    with pytest.raises(ReaderError, match=r"label file does not exist: .*none\.xlsx"):
        read_smic_e(smic["frames_root"], annotation=tmp_path / "none.xlsx")
    lone = tmp_path / "a" / "b" / "c"
    (lone / "006_1").mkdir(parents=True)
    (lone / "s15" / "15_0101x").mkdir(parents=True)
    with pytest.raises(
        ReaderError, match=r"no label file SAMM_LongVideos\*\.xlsx.*set videos\.samm_long_annotation"
    ):
        read_samm_long(lone)
    with pytest.raises(
        ReaderError, match=r"no label file \*code_final\*\.xlsx.*set videos\.casme_sq_annotation"
    ):
        read_casme_sq(lone)

    # spreadsheets with the wrong columns
    def no_type(book):
        book.active.cell(10, SAMM_TYPE).value = "Kind"

    with pytest.raises(
        ReaderError, match=r"a\.xlsx: missing column\(s\) Type \(header row 10 of sheet 'Sheet1'"
    ):
        read_samm_long(samm["frames_root"], _edit(samm["annotation"], tmp_path / "a.xlsx", no_type))

    def header_row(book):
        book.worksheets[0].insert_rows(1)
        for col, text in enumerate(("subject", "video", "onset", "apex", "offset"), start=1):
            book.worksheets[0].cell(1, col).value = text

    with pytest.raises(
        ReaderError, match=r"b\.xlsx: sheet 'Sheet1' row 1 is not a CAS\(ME\)\^2 expression row.*header row"
    ):
        read_casme_sq(casme["frames_root"], _edit(casme["annotation"], tmp_path / "b.xlsx", header_row))

    def no_onset(book):
        book.active.cell(1, SMIC_ONSET).value = "Onset"

    with pytest.raises(
        ReaderError, match=r"c\.xlsx: missing column\(s\) OnsetF \(sheet 'Sheet1' row 1 has: Subject"
    ):
        read_smic_e(
            smic["frames_root"], annotation=_edit(smic["annotations"]["HS"], tmp_path / "c.xlsx", no_onset)
        )


@pytest.mark.parametrize("name", ["samm_long", "casme_sq", "smic_e"])
def test_videos_configs_build_their_reader(name, samm, casme, smic):
    copy = {"samm_long": samm, "casme_sq": casme, "smic_e": smic}[name]
    cfg = OmegaConf.create({"videos": OmegaConf.load(CONFIGS / f"{name}.yaml")})
    assert cfg.videos.name == name and cfg.videos.strict is False
    cfg.videos[f"{name}_root"] = str(copy["frames_root"])
    read = instantiate(cfg.videos.reader)
    assert {v.video_id for v in read.videos} == {
        k for k in copy["videos"] if not k.startswith(("smic_e_vis", "smic_e_nir"))
    }
