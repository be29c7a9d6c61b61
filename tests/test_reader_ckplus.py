"""CK+ reader on an exported synthetic copy: neutral -> peak, labels from Emotion/, AUs from FACS/."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from datamodules.protocols import label_map
from datamodules.readers.base import ReaderError
from datamodules.readers.ckplus import read_ckplus
from datamodules.readers.export.ckplus import export_ckplus

FIELDS = ("subject", "clip", "emotion", "onset", "apex", "offset", "action_units")


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    return export_ckplus(tmp_path_factory.mktemp("ckplus"))


@pytest.fixture(scope="module")
def result(copy):
    return read_ckplus(copy["frames_root"])


@pytest.fixture
def scratch(copy, tmp_path):
    """A copy of the export that a test may damage."""
    shutil.copytree(copy["frames_root"], tmp_path / "ckplus")
    return tmp_path / "ckplus"


def test_reads_back_every_field(copy, result):
    samples = {s.sample_id: s for s in result.samples}
    assert set(samples) == set(copy["samples"]) and len(samples) == 17
    for sid, expected in copy["samples"].items():
        s = samples[sid]
        assert {f: getattr(s, f) for f in FIELDS} == expected, sid
        assert s.frames.frame_numbers == tuple(range(1, s.apex + 1))  # neutral -> peak, apex = last frame
        assert (s.dataset, s.fps) == ("ckplus", 30.0)
        assert s.source.endswith(f"{sid.split('/')[1]}_{s.clip}_{s.apex:08d}_emotion.txt")
    assert result.report.repairs == []


def test_planted_quirks(copy, result):
    planted = copy["planted"]
    [drop] = result.report.drops
    assert drop.sample_id == planted["no_label"] and drop.reason.startswith("no emotion label")
    samples = {s.sample_id: s for s in result.samples}
    units = samples[planted["facs"]].action_units
    assert units[-1].isdigit() and all(u[-1] in "ABCDE" for u in units[:-1])  # intensity 0 -> bare number
    with_unlabelled = read_ckplus(copy["frames_root"], require_label=False)
    assert len(with_unlabelled.samples) == len(samples) + 1 and with_unlabelled.report.drops == []
    assert {s.sample_id: s.emotion for s in with_unlabelled.samples}[planted["no_label"]] == "unlabelled"
    # An unlabelled sequence is not a quirk: strict mode still excludes it without raising.
    assert len(read_ckplus(copy["frames_root"], strict=True).samples) == len(samples)


def test_extended_nesting(tmp_path):
    copy = export_ckplus(tmp_path, extended_nesting=True, quirks=False)
    assert (tmp_path / "extended-cohn-kanade-images" / "cohn-kanade-images").is_dir()
    result = read_ckplus(tmp_path)
    assert {s.sample_id for s in result.samples} == set(copy["samples"]) and len(copy["samples"]) == 18
    assert result.report.drops == []


def test_malformed_emotion_file(copy, scratch):
    victim = scratch / "Emotion" / "S005" / "002" / "S005_002_00000016_emotion.txt"
    assert victim.is_file()
    for text, message in (
        ("happy\n", "not a CK\\+ emotion code: 'happy'"),
        ("   0.0000000e+00\n", "emotion code 0.0000000e\\+00 \\(0\\) is not one of 1-7"),
        ("   9.0000000e+00\n", "emotion code 9.0000000e\\+00 \\(9\\) is not one of 1-7"),
    ):
        victim.write_text(text)
        result = read_ckplus(scratch)
        [drop] = [d for d in result.report.drops if d.sample_id == "ckplus/S005/002"]
        assert victim.name in drop.reason and drop.source == str(victim)
        assert len(result.samples) == len(copy["samples"]) - 1
        with pytest.raises(
            ReaderError, match=f"{victim}: ckplus/S005/002: malformed emotion file .*{message}"
        ):
            read_ckplus(scratch, strict=True)


def test_malformed_facs_file_and_label_frame(copy, scratch):
    facs = next((scratch / "FACS" / "S010" / "001").glob("*_facs.txt"))
    facs.write_text("   1.0000000e+00   3.0000000e+00\n garbage\n")
    result = read_ckplus(scratch)
    [repair] = result.report.repairs
    assert repair.sample_id == "ckplus/S010/001" and "line 2: expected 'AU intensity'" in repair.reason
    assert {s.sample_id: s.action_units for s in result.samples}["ckplus/S010/001"] == ()
    with pytest.raises(ReaderError, match=f"{facs}: ckplus/S010/001: .*line 2"):
        read_ckplus(scratch, strict=True)
    # A label named after a frame before the last: that frame is the peak.
    label = next((scratch / "Emotion" / "S010" / "002").glob("*_emotion.txt"))
    label.rename(label.with_name("S010_002_00000005_emotion.txt"))
    sample = {s.sample_id: s for s in read_ckplus(scratch).samples}["ckplus/S010/002"]
    assert (sample.onset, sample.apex, sample.offset) == (1, 5, 5)


def test_bad_root(tmp_path):
    with pytest.raises(ReaderError, match="data.ckplus_root=PATH .* or MERLIN_CKPLUS_ROOT"):
        read_ckplus(None)
    with pytest.raises(ReaderError, match="CK\\+ folder does not exist: .*nowhere"):
        read_ckplus(tmp_path / "nowhere")
    with pytest.raises(ReaderError, match="no cohn-kanade-images/ folder in"):
        read_ckplus(tmp_path)
    (tmp_path / "cohn-kanade-images").mkdir()
    with pytest.raises(ReaderError, match="no sequences"):
        read_ckplus(tmp_path)


def test_label_maps(result):
    seven = label_map("ckplus_7class")
    kept, y, excluded = seven.apply(result.samples)
    assert excluded == [] and [seven.classes[k] for k in y] == [s.emotion for s in result.samples]
    megc = label_map("ckplus_megc")
    kept, y, excluded = megc.apply(result.samples)
    assert excluded == [] and len(kept) == len(result.samples)
    expected = {"happy": "positive", "surprise": "surprise"}
    assert [megc.classes[k] for k in y] == [expected.get(s.emotion, "negative") for s in kept]
    assert "sadness" in {s.emotion for s in kept}  # mapped to negative, not EMR's positive


def test_features(result):
    from preprocessing.features import FeatureSpec, compute_features

    features = compute_features(result.samples[0], FeatureSpec(flow_method="farneback"))
    assert features.shape == (3, 28, 28) and np.isfinite(features).all() and np.abs(features).max() > 0
