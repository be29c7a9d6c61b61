"""The MEGC2019 composite on exported CASME II, SAMM and SMIC trees: the rule, the check command, training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from datamodules.check import check_report
from datamodules.protocols import label_map, loso_folds

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from datamodules.readers.export.casme2 import export_casme2
    from datamodules.readers.export.samm import export_samm
    from datamodules.readers.export.smic import export_smic

    base = tmp_path_factory.mktemp("dbs")
    return {
        "casme2": export_casme2(base / "CASME2"),
        "samm": export_samm(base / "SAMM"),
        "smic": export_smic(base / "SMIC"),
    }


def _read(exported, **kwargs):
    from datamodules.readers.composite import read_megc2019

    return read_megc2019(
        casme2_root=exported["casme2"]["frames_root"],
        casme2_annotation=exported["casme2"]["annotation"],
        samm_root=exported["samm"]["frames_root"],
        samm_annotation=exported["samm"]["annotation"],
        smic_root=exported["smic"]["frames_root"],
        **kwargs,
    )


def test_rule_excludes_each_excluded_kind_and_keeps_and_maps_each_kept_kind(exported):
    read = _read(exported)
    labels = label_map("megc2019")
    kept, y, excluded = labels.apply(read.samples)
    classes = {s.sample_id: labels.classes[k] for s, k in zip(kept, y, strict=True)}
    dropped = {i.sample_id: i.reason for i in read.report.drops} | {e.sample_id: e.reason for e in excluded}

    casme2 = exported["casme2"]["samples"]
    planted = exported["casme2"]["planted"]
    # Excluded by the CDE rule: apex '/', apex == onset; by the label map: others, sadness, fear.
    for quirk in ("apex_slash", "apex_at_onset"):
        sid = planted[quirk]
        assert sid in dropped and "MEGC2019" in dropped[sid], (quirk, dropped.get(sid))
    for word in ("others", "sadness", "fear"):
        ids = [sid for sid, row in casme2.items() if row["emotion"] == word]
        assert ids, f"the export should plant a {word} clip"
        assert all(sid in dropped and sid not in classes for sid in ids)
    # Kept and mapped: happiness -> positive, disgust and repression -> negative, surprise -> surprise.
    expect = {
        "happiness": "positive",
        "disgust": "negative",
        "repression": "negative",
        "surprise": "surprise",
    }
    for sid, row in casme2.items():
        if row["emotion"] in expect and sid not in (planted["apex_slash"], planted["apex_at_onset"]):
            assert classes.get(sid) == expect[row["emotion"]], sid
    # Frames not all on disk: repaired, never dropped.
    assert planted["offset_beyond_frames"] in classes or casme2[planted["offset_beyond_frames"]][
        "emotion"
    ] in ("others", "sadness", "fear")

    samm = exported["samm"]["samples"]
    samm_map = {
        "Anger": "negative",
        "Contempt": "negative",
        "Disgust": "negative",
        "Fear": "negative",
        "Sadness": "negative",
        "Happiness": "positive",
        "Surprise": "surprise",
    }
    for sid, row in samm.items():
        if row["emotion"] == "Other":
            assert sid not in classes
        else:
            assert classes[sid] == samm_map[row["emotion"]], sid
    assert any(row["emotion"] == "Other" for row in samm.values())
    smic = exported["smic"]["samples"]
    assert all(classes[sid] == row["emotion"] for sid, row in smic.items())  # every SMIC-HS clip kept

    folds = loso_folds([s.subject for s in kept])
    assert {f.name.split("/")[0] for f in folds} == {"casme2", "samm", "smic"}


def test_2019_labels_are_noted(exported, tmp_path):
    from datamodules.readers.export.casme2 import export_casme2

    export = export_casme2(tmp_path / "CASME2", version="2019")
    from datamodules.readers.composite import read_megc2019

    read = read_megc2019(
        casme2_root=export["frames_root"],
        casme2_annotation=export["annotation"],
        samm_root=exported["samm"]["frames_root"],
        samm_annotation=exported["samm"]["annotation"],
        smic_root=exported["smic"]["frames_root"],
    )
    assert any("445 clips" in n and "442" in n for n in read.report.notes)


def test_check_report_counts(exported):
    read = _read(exported)
    report = check_report("megc2019", read, label_map("megc2019"))
    assert set(report) >= {
        "samples",
        "subjects",
        "per_class",
        "per_subject",
        "per_source",
        "repairs",
        "drops",
    }
    assert report["samples"] == sum(report["per_class"].values()) == sum(report["per_source"].values())
    assert set(report["per_source"]) == {"casme2", "samm", "smic"}
    assert all("/" in s for s in report["per_subject"])
    assert all(set(d) >= {"sample_id", "reason"} for d in report["repairs"] + report["drops"])


# Two subprocesses end to end (15 s): slow; the composite's readers and rules stay in the fast suite.
@pytest.mark.slow
def test_check_command_and_training_on_the_composite(exported, tmp_path):
    paths = [
        f"data.casme2_root={exported['casme2']['frames_root']}",
        f"data.casme2_annotation={exported['casme2']['annotation']}",
        f"data.samm_root={exported['samm']['frames_root']}",
        f"data.samm_annotation={exported['samm']['annotation']}",
        f"data.smic_root={exported['smic']['frames_root']}",
    ]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "datamodules.check",
            "data=megc2019",
            *paths,
            f"json={tmp_path / 'check.json'}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp_path / "check.json").read_text())
    assert "per source:" in out.stdout and report["samples"] > 0

    run_dir = tmp_path / "run"
    out = subprocess.run(
        [
            sys.executable,
            "train.py",
            "data=megc2019",
            *paths,
            "data.protocol=lodo",
            "trainer.max_epochs=1",
            "logger=none",
            "progress=false",
            f"run_dir={run_dir}",
            f"cache_dir={tmp_path / 'cache'}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["per_source"]) == {"casme2", "samm", "smic"}
    assert summary["n"] == report["samples"]
    for db in ("casme2", "samm", "smic"):
        assert db in out.stdout
