"""Fold checkpoints and fine-tuning from them: provenance, {fold} patterns, the overlap guard, heads of
another class count, missing / extra / mis-shaped keys, unsafe pickles, freezing, head learning rates."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from tiny import TINY
from torch import nn

from datamodules.protocols import Fold, all_subjects_fold, holdout_fold, make_folds
from models.classifier import MERClassifier
from models.finetune import (
    CheckpointError,
    OverlapError,
    freeze,
    frozen_norm_layers,
    head_parameter_names,
    initialise_from,
    parameter_groups,
)
from models.ststnet import STSTNet
from training.checkpoints import checkpoint_path, read_provenance, resolve_init_from
from training.settings import SettingError, check_settings, result_settings

ROOT = Path(__file__).resolve().parents[1]
SUBJECTS = [f"synthetic/s0{i}" for i in (1, 2, 3, 4, 5)]


def _merlin_checkpoint(path: Path, net: nn.Module, train_subjects, extra: dict | None = None) -> Path:
    """What training.loop writes: a LightningModule's state (net. prefix, and its loss's buffer too)."""
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    state["loss.class_weight"] = torch.ones(3)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "state_dict": state,
            "pytorch-lightning_version": "2.6.6",
            "merlin": {"format": 1, "train_subjects": sorted(train_subjects), **(extra or {})},
        },
        path,
    )
    return path


def _net(seed: int, num_classes: int = 3) -> STSTNet:
    torch.manual_seed(seed)
    return STSTNet(num_classes=num_classes, in_chans=3)


# ---------------------------------------------------------------------------------------------------------
# Protocols and checkpoint paths


def test_holdout_is_seeded_and_subject_disjoint():
    [a] = holdout_fold(SUBJECTS * 3, test_subjects=2, seed=0)
    [b] = holdout_fold(SUBJECTS * 3, test_subjects=2, seed=0)
    assert a == b and len(a.test_subjects) == 2 and a.test_subjects <= set(SUBJECTS)
    picks = {holdout_fold(SUBJECTS, test_subjects=2, seed=s)[0].test_subjects for s in range(20)}
    assert len(picks) > 1  # the seed chooses
    assert len(holdout_fold(SUBJECTS, test_subjects=0.4)[0].test_subjects) == 2
    for bad in (0, 5, 1.0, 0.0, True):
        with pytest.raises(ValueError):
            holdout_fold(SUBJECTS, test_subjects=bad)


def test_protocol_all_has_one_fold_that_holds_nothing_out():
    [fold] = make_folds("all", SUBJECTS, ["synthetic"] * 5)
    assert fold.test_subjects == frozenset() and fold == all_subjects_fold(SUBJECTS)[0]
    with pytest.raises(ValueError, match="unknown protocol"):
        make_folds("kfold", SUBJECTS, ["synthetic"] * 5)


def test_checkpoint_paths(tmp_path):
    loso = make_folds("loso", SUBJECTS, ["synthetic"] * 5)
    assert checkpoint_path(tmp_path, 3, loso) == tmp_path / "fold_3" / "last.ckpt"
    assert checkpoint_path(tmp_path, 0, holdout_fold(SUBJECTS)) == tmp_path / "last.ckpt"
    assert checkpoint_path(tmp_path, 0, all_subjects_fold(SUBJECTS)) == tmp_path / "last.ckpt"
    assert resolve_init_from("runs/pre/fold_{fold}/last.ckpt", 12) == Path("runs/pre/fold_12/last.ckpt")
    with pytest.raises(CheckpointError, match="only placeholder"):
        resolve_init_from("runs/{subject}/last.ckpt", 0)


def test_new_settings_keep_old_fingerprints_at_their_defaults():
    old = {"seed": 0, "model": {"net": {"a": 1}}, "data": {"name": "x", "protocol": "loso"}}
    new = json.loads(json.dumps(old))
    new["model"].update(init_from=None, allow_overlap=False, freeze=[], freeze_stages=0, head_lr=None)
    new["data"]["holdout"] = {"test_subjects": 0.2, "seed": 0}
    assert result_settings(new) == result_settings(old)
    new["model"]["init_from"] = "pre/last.ckpt"
    assert result_settings(new)["model"]["init_from"] == "pre/last.ckpt"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("data.protocol", "kfold"),
        ("model.freeze", "conv1"),
        ("model.freeze_stages", -1),
        ("model.head_lr", 0),
        ("model.init_from", ""),
    ],
)
def test_bad_transfer_settings_name_their_key(key, value):
    settings = {"trainer": {"max_epochs": 1}, "datamodule": {"batch_size": 2}, "seed": 0}
    settings["model"] = {"optimizer": {"lr": 1e-3}}
    settings["data"] = {"protocol": "loso"}
    node = settings
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    with pytest.raises(SettingError) as err:
        check_settings(settings)
    assert err.value.key == key


# ---------------------------------------------------------------------------------------------------------
# Initialising from a file


def test_merlin_checkpoint_loads_only_the_network(tmp_path):
    source, target = _net(0), _net(1)
    path = _merlin_checkpoint(tmp_path / "fold_0" / "last.ckpt", source, SUBJECTS[1:])
    report = initialise_from(target, path, 0, "synthetic/s01", {"synthetic/s01"})
    assert report.provenance == "checked" and not report.newly_initialised and not report.skipped
    for k, v in source.state_dict().items():
        assert torch.equal(v, target.state_dict()[k]), k


def test_head_of_another_class_count_is_replaced(tmp_path):
    source, target = _net(0, num_classes=7), _net(1, num_classes=3)
    fresh_head = target.fc.weight.clone()
    path = _merlin_checkpoint(tmp_path / "macro.ckpt", source, ["ckplus/S005"])
    report = initialise_from(target, path, 0, "synthetic/s01", {"synthetic/s01"})
    assert {m[0] for m in report.mismatched} == {"fc.weight", "fc.bias"}
    assert set(report.newly_initialised) == {"fc.weight", "fc.bias"}
    assert torch.equal(target.fc.weight, fresh_head)
    assert torch.equal(target.conv1.weight, source.conv1.weight)
    assert "newly initialised" in str(report)


def test_missing_extra_and_misshaped_keys_are_reported(tmp_path):
    source, target = _net(0), _net(1)
    state = source.state_dict()
    state.pop("conv2.weight")  # missing
    state["extra_layer.weight"] = torch.zeros(2)  # extra
    state["conv3.bias"] = torch.zeros(99)  # another shape
    path = tmp_path / "plain.pth"
    torch.save(state, path)
    before = target.conv2.weight.clone()
    report = initialise_from(target, path, 0, "synthetic/s01", {"synthetic/s01"})
    assert report.provenance == "unknown"  # a plain state_dict records no subjects
    assert "conv2.weight" in report.newly_initialised and torch.equal(target.conv2.weight, before)
    assert report.skipped == ["extra_layer.weight"]
    assert report.mismatched == [("conv3.bias", [99], [8])]
    assert torch.equal(target.conv1.weight, source.conv1.weight)
    assert "overlap with the held-out subject unchecked" in str(report)


class _Payload:
    """Unpickling this runs code: os.system would touch a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with path.open("wb") as handle:
        pickle.dump({"state_dict": {"conv1.weight": _Payload(marker)}}, handle, protocol=2)
    with pytest.raises(CheckpointError, match="nothing in it was run"):
        initialise_from(_net(0), path, 0, "synthetic/s01", {"synthetic/s01"})
    assert not marker.exists()


def test_missing_file_and_foreign_network_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        initialise_from(_net(0), tmp_path / "none.ckpt", 0, "f", {"synthetic/s01"})
    path = tmp_path / "other.pth"
    torch.save(nn.Linear(5, 5).state_dict(), path)
    with pytest.raises(CheckpointError, match="none of its 2 tensors fits STSTNet"):
        initialise_from(_net(0), path, 0, "f", {"synthetic/s01"})


def test_overlap_guard_refuses_then_allows_with_the_override(tmp_path):
    path = _merlin_checkpoint(tmp_path / "all" / "last.ckpt", _net(0), SUBJECTS)
    target = _net(1)
    before = target.conv1.weight.clone()
    with pytest.raises(OverlapError, match="synthetic/s02.*model.allow_overlap=true"):
        initialise_from(target, path, 1, "synthetic/s02", {"synthetic/s02"})
    assert torch.equal(target.conv1.weight, before)  # nothing loaded
    report = initialise_from(target, path, 1, "synthetic/s02", {"synthetic/s02"}, allow_overlap=True)
    assert report.overlap == ["synthetic/s02"] and report.provenance == "overlap allowed"
    assert "WARNING: trained on held-out subject(s) synthetic/s02" in str(report)


def test_fold_pattern_resolves_per_fold_and_each_fold_passes_the_guard(tmp_path):
    for k, held in enumerate(SUBJECTS):
        others = [s for s in SUBJECTS if s != held]
        _merlin_checkpoint(tmp_path / f"fold_{k}" / "last.ckpt", _net(k), others)
    pattern = str(tmp_path / "fold_{fold}" / "last.ckpt")
    for k, held in enumerate(SUBJECTS):
        target = _net(99)
        report = initialise_from(target, pattern, k, held, {held})
        assert report.path.endswith(f"fold_{k}/last.ckpt")
        assert torch.equal(target.conv1.weight, _net(k).conv1.weight)
    # The same pattern with the folds in another order would start fold 0 from weights that saw s01.
    with pytest.raises(OverlapError):
        initialise_from(_net(0), pattern, 1, SUBJECTS[0], {SUBJECTS[0]})


def test_provenance_falls_back_to_the_run_json_beside_the_fold(tmp_path):
    net = _net(0)
    path = tmp_path / "run" / "fold_1" / "last.ckpt"
    path.parent.mkdir(parents=True)
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}}, path)
    (tmp_path / "run" / "run.json").write_text(json.dumps({"train_subjects": [["a/1"], ["a/2", "a/3"]]}))
    assert read_provenance(path)["train_subjects"] == ["a/2", "a/3"]


# ---------------------------------------------------------------------------------------------------------
# Freezing and learning rates


def test_freeze_backbone_keeps_the_head_training_and_bn_statistics_fixed():
    net = _net(0)
    frozen = freeze(net, ["backbone"], num_classes=3)
    assert "fc.weight" not in frozen and "conv1.weight" in frozen
    assert head_parameter_names(net, 3) == ["fc.weight", "fc.bias"]
    norms = frozen_norm_layers(net)
    assert norms == [net.bn1, net.bn2, net.bn3]
    module = MERClassifier(net, nn.CrossEntropyLoss(), torch.optim.SGD, frozen_norms=norms)
    module.train()
    assert not net.bn1.training and net.training
    stats = net.bn1.running_mean.clone()
    net(torch.randn(4, 3, 28, 28) * 5 + 3)
    assert torch.equal(net.bn1.running_mean, stats)
    optimizer = module.configure_optimizers()
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert held == {id(net.fc.weight), id(net.fc.bias)}


def test_freeze_names_prefixes_and_stages_and_refuses_unknown_names():
    net = _net(0)
    assert freeze(net, ["conv1"]) == ["conv1.weight", "conv1.bias"]
    assert not net.conv1.weight.requires_grad and net.conv2.weight.requires_grad
    staged = freeze(_net(0), stages=2)
    assert staged[:2] == ["conv1.weight", "conv1.bias"] and len(staged) == 4
    with pytest.raises(ValueError, match="names no parameter.*conv1"):
        freeze(_net(0), ["encoder"])
    with pytest.raises(ValueError, match="stages with parameters"):
        freeze(_net(0), stages=99)


def test_head_lr_makes_two_groups():
    net = _net(0)
    groups = parameter_groups(net, None, 1e-2, num_classes=3)
    assert [g["name"] for g in groups] == ["backbone", "head"]
    assert groups[1]["lr"] == 1e-2 and "lr" not in groups[0]
    optimizer = torch.optim.Adam(groups, lr=1e-4)
    assert [g["lr"] for g in optimizer.param_groups] == [1e-4, 1e-2]
    assert parameter_groups(net, None, None, 3) is None
    with pytest.raises(ValueError, match="no layer with 11 outputs"):
        parameter_groups(net, None, 1e-2, num_classes=11)


def test_fold_record_is_plain_data(tmp_path):
    # What the loop writes must be readable with weights_only=True (lists and strings only).
    from training.checkpoints import encode_checkpoint, provenance, write_checkpoint

    entry = provenance(Fold(0, "synthetic/s01", frozenset({"synthetic/s01"})), SUBJECTS[1:], None, "x", ["x"])
    write_checkpoint(tmp_path / "c.ckpt", encode_checkpoint({"state_dict": {}, "merlin": entry}))
    assert read_provenance(tmp_path / "c.ckpt")["train_subjects"] == SUBJECTS[1:]


# ---------------------------------------------------------------------------------------------------------
# Through train.py: every fold keeps its checkpoint; a fine-tuning run starts from them


def _train(tmp_path: Path, run_dir: Path, extra=()) -> Path:
    from hydra import compose, initialize_config_dir

    import train

    cache = tmp_path.parent / "shared-feature-cache"
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=[*TINY, f"run_dir={run_dir}", f"cache_dir={cache}", *extra])
    return train.run(cfg)


def test_every_fold_keeps_its_checkpoint_and_a_rerun_does_not_rewrite_them(tmp_path):
    run_dir = _train(tmp_path, tmp_path / "pre")
    info = json.loads((run_dir / "run.json").read_text())
    subjects = ["synthetic/s01", "synthetic/s02", "synthetic/s03"]
    assert info["train_subjects"] == [[s for s in subjects if s != held] for held in subjects]
    stamps = {}
    for k, held in enumerate(subjects):
        path = run_dir / f"fold_{k}" / "last.ckpt"
        record = read_provenance(path)
        assert record["train_subjects"] == info["train_subjects"][k]
        assert record["fold"]["test_subjects"] == [held]
        assert record["fingerprint"] == info["fingerprint"]
        assert path.stat().st_size < 64 * 1024  # STSTNet: weights only, no optimizer state
        stamps[k] = (path.stat().st_mtime_ns, path.read_bytes())
    _train(tmp_path, run_dir)  # every fold finished: nothing is trained, nothing rewritten
    for k in stamps:
        path = run_dir / f"fold_{k}" / "last.ckpt"
        assert (path.stat().st_mtime_ns, path.read_bytes()) == stamps[k]

    # Fine-tuning fold by fold from it passes the guard and loads every tensor.
    tuned = _train(tmp_path, tmp_path / "tuned", [f'model.init_from="{run_dir}/fold_{{fold}}/last.ckpt"'])
    for k in range(3):
        report = json.loads((tuned / f"fold_{k}" / "init_report.json").read_text())
        assert report["provenance"] == "checked" and report["newly_initialised"] == []
        assert report["path"] == str(run_dir / f"fold_{k}" / "last.ckpt")
    assert json.loads((tuned / "summary.json").read_text())["folds_missing"] == []


def test_overlapping_checkpoint_is_refused_before_anything_is_written(tmp_path):
    import subprocess
    import sys

    one = _train(tmp_path, tmp_path / "all", ["data.protocol=all"])
    assert (one / "last.ckpt").is_file() and not (one / "predictions").exists()
    run_dir = tmp_path / "tune"
    out = subprocess.run(
        [
            sys.executable,
            "train.py",
            *TINY,
            f"run_dir={run_dir}",
            f"cache_dir={tmp_path.parent / 'shared-feature-cache'}",
            f"model.init_from={one / 'last.ckpt'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    [line] = out.stderr.strip().splitlines()
    assert line.startswith(f"error: model.init_from={one / 'last.ckpt'}: these weights were trained on")
    assert "synthetic/s01" in line and "model.allow_overlap=true" in line
    assert not run_dir.exists()
    allowed = _train(tmp_path, run_dir, [f"model.init_from={one / 'last.ckpt'}", "model.allow_overlap=true"])
    report = json.loads((allowed / "fold_0" / "init_report.json").read_text())
    assert report["overlap_allowed"] == ["synthetic/s01"]


def test_holdout_run_keeps_one_checkpoint_and_reports_its_split(tmp_path):
    run_dir = _train(
        tmp_path, tmp_path / "holdout", ["data.protocol=holdout", "data.holdout.test_subjects=1"]
    )
    info = json.loads((run_dir / "run.json").read_text())
    [fold] = info["folds"]
    assert fold["name"] == "holdout" and len(fold["test_subjects"]) == 1
    assert (run_dir / "last.ckpt").is_file() and not (run_dir / "fold_0").exists()
    assert read_provenance(run_dir / "last.ckpt")["train_subjects"] == info["train_subjects"][0]
    assert not set(fold["test_subjects"]) & set(info["train_subjects"][0])


def test_resuming_and_initialising_cannot_be_confused(tmp_path):
    """Resuming is run_dir=R; model.init_from=R/... into R itself is another experiment, refused."""
    from training.rundir import RunDirError

    run_dir = _train(tmp_path, tmp_path / "run")
    before = (run_dir / "run.json").read_bytes()
    with pytest.raises(RunDirError, match="different experiment.*model.init_from"):
        _train(tmp_path, run_dir, [f'model.init_from="{run_dir}/fold_{{fold}}/last.ckpt"'])
    assert (run_dir / "run.json").read_bytes() == before
    assert not (run_dir / "fold_0" / "init_report.json").exists()


def test_a_checkpoints_au_graph_is_replaced_by_the_folds_own(tmp_path):
    """Weights load first, then the fold fits what it learns from its data: AU-GACN's graph."""
    au = ["experiment=au_gacn_cpu", "datamodule.action_units=[1,2,4,5,6,9,12,15,26]"]
    first = _train(tmp_path, tmp_path / "first", au)
    state = torch.load(first / "fold_0" / "last.ckpt", weights_only=True)["state_dict"]
    fitted = state["net.adjacency"].clone()
    assert not fitted.all()  # the fold's graph has absent edges
    tampered = {k[len("net.") :]: v for k, v in state.items() if k.startswith("net.")}
    tampered["adjacency"] = torch.ones_like(fitted)
    tampered["edge_weights"] = torch.ones_like(tampered["edge_weights"])
    torch.save(tampered, tmp_path / "tampered.pt")
    tuned = _train(tmp_path, tmp_path / "tuned", [*au, f"model.init_from={tmp_path / 'tampered.pt'}"])
    again = torch.load(tuned / "fold_0" / "last.ckpt", weights_only=True)["state_dict"]
    assert torch.equal(again["net.adjacency"], fitted)
