"""`python -m datamodules.check` and `verify_frames`: an unreadable frame is a drop (or an error), named."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datamodules.check import check_report
from datamodules.frames_check import frames_in_use, verify_frames
from datamodules.protocols import label_map
from datamodules.readers.base import ReaderError, ReadReport, ReadResult
from datamodules.readers.casme2 import read_casme2
from datamodules.readers.export.casme2 import export_casme2
from datamodules.samples import Sample

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return export_casme2(tmp_path_factory.mktemp("casme2"), quirks=False)


@pytest.fixture
def frames(export, tmp_path):
    """A private copy of the export's frames (tests break some of them)."""
    copy = tmp_path / "Cropped"
    shutil.copytree(export["frames_root"], copy)
    return copy


def _break_three_frames(samples: list[Sample]) -> dict[str, Path]:
    """Truncate the apex of one clip to 0 bytes, garble a middle frame of another, delete the offset frame
    of a third (after the reader listed it). Returns {sample_id: broken path}."""
    empty, garbled, deleted = samples[1], samples[5], samples[9]
    broken = {
        empty.sample_id: empty.frames.path_of(empty.apex),
        garbled.sample_id: garbled.frames.path_of(frames_in_use(garbled)[3]),
        deleted.sample_id: deleted.frames.path_of(deleted.offset),
    }
    broken[empty.sample_id].write_bytes(b"")
    broken[garbled.sample_id].write_bytes(b"\xff\xd8 not really a jpeg " * 20)
    broken[deleted.sample_id].unlink()
    return broken


def test_unreadable_frames_are_dropped_naming_the_file(export, frames, capsys):
    read = read_casme2(frames, export["annotation"])
    labels = label_map("casme2_5class")
    before = check_report("casme2", verify_frames(read, strict=False), labels)
    broken = _break_three_frames(read.samples)

    checked = verify_frames(read, strict=False)
    assert capsys.readouterr().err == ""  # no progress bar unless asked
    assert len(checked.samples) == len(read.samples) - 3 and not set(broken) & {
        s.sample_id for s in checked.samples
    }
    assert read.report.drops == [] and len(read.samples) == 18  # the input is left as it was
    report = check_report("casme2", checked, labels)
    drops = {d["sample_id"]: d for d in report["drops"]}
    assert set(drops) == set(broken)
    sources = {s.sample_id: s.source for s in read.samples}
    for sample_id, path in broken.items():
        assert str(path) in drops[sample_id]["reason"]
        assert drops[sample_id]["source"] == sources[sample_id]
        assert drops[sample_id]["source"].startswith("CASME2-coding-20140508.xlsx row ")
    reasons = [drops[s]["reason"] for s in broken]
    assert "empty file" in reasons[0] and "not a decodable picture" in reasons[1] and "missing" in reasons[2]
    assert before["drops"] == [] and report["samples"] == before["samples"] - 3
    assert report["read"] == before["read"] == 18
    lost = [s for s in read.samples if s.sample_id in broken]
    assert sum(report["per_subject"].values()) == report["samples"]
    for s in lost:
        assert report["per_subject"].get(s.subject, 0) == before["per_subject"][s.subject] - sum(
            t.subject == s.subject for t in lost
        )
    assert report["per_source"] == {"casme2": before["samples"] - 3}
    assert sum(report["per_class"].values()) == report["samples"]

    first = next(s for s in read.samples if s.sample_id in broken)  # in reading order
    with pytest.raises(ReaderError, match=rf"{first.source}: {first.sample_id}: .*{broken[first.sample_id]}"):
        verify_frames(read, strict=True)


class _FailingFrames:
    frame_numbers = (10, 11, 12)

    def read(self, number: int) -> np.ndarray:
        if number == 11:
            raise RuntimeError("decoder crashed")
        return np.zeros((4, 4), np.uint8)

    def fingerprint(self) -> str:
        return "failing"


def test_any_read_error_drops_the_clip_and_is_named():
    sample = Sample("x/x/a", "x", "x/x", "a", _FailingFrames(), 10, 11, 12, "happiness", source="a.csv row 2")
    fine = Sample("x/x/b", "x", "x/x", "b", _FailingFrames(), 12, None, 12, "happiness", source="a.csv row 3")
    read = ReadResult([sample, fine], ReadReport("x"))
    checked = verify_frames(read, strict=False, workers=1)
    assert [s.sample_id for s in checked.samples] == ["x/x/b"]  # frame 11 is outside its onset..offset
    (drop,) = checked.report.drops
    assert drop.source == "a.csv row 2"
    assert "frame 11" in drop.reason and "RuntimeError: decoder crashed" in drop.reason


def _check(*overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "datamodules.check", *overrides, "progress=false"],
        cwd=ROOT,
        env={**os.environ, "WANDB_MODE": "disabled"},
        capture_output=True,
        text=True,
    )


def test_check_command_drops_or_refuses_unreadable_frames(export, frames, tmp_path):
    read = read_casme2(frames, export["annotation"])
    victim = read.samples[4]
    path = victim.frames.path_of(victim.apex)
    path.write_bytes(b"")
    paths = ["data=casme2", f"data.casme2_root={frames}", f"data.casme2_annotation={export['annotation']}"]
    out = _check(*paths, f"json={tmp_path / 'check.json'}")
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp_path / "check.json").read_text())
    assert [d["sample_id"] for d in report["drops"]] == [victim.sample_id]
    assert str(path) in report["drops"][0]["reason"] and report["samples"] == 17
    assert "drops (1):" in out.stdout and str(path) in out.stdout

    out = _check(*paths, "data.strict=true")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [out.stderr.strip()]
    assert out.stderr.startswith(f"error: {victim.source}: {victim.sample_id}: ") and str(path) in out.stderr


def test_check_command_reader_error_is_one_line(tmp_path):
    out = _check("data=casme2", f"data.casme2_root={tmp_path / 'nowhere'}")
    assert out.returncode == 2, out.stderr[-3000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: CASME II frame folder ")
    assert str(tmp_path / "nowhere") in lines[0] and "Error executing job" not in out.stderr
