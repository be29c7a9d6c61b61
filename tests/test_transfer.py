"""The transfer recipes: paired macro/micro batches, EMR's training step and schedules, distillation with a
frozen teacher, and the settings that refuse what would leak or silently do nothing."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
from torch import nn

from datamodules.datamodule import FeatureSet, MERDataModule
from datamodules.paired import MACRO, MICRO, PairedDataModule
from datamodules.protocols import all_subjects_fold, loso_folds
from losses import CrossEntropyLoss, dann_coefficient
from models.domain_adversarial import CLIPPED_MODULES, EMRClassifier
from models.emr import EMR
from models.ststnet import STSTNet
from models.teacher_student import DistillationClassifier

CLASSES = ("negative", "positive", "surprise")


def _features(dataset: str, n_subjects: int, per_subject: int, seed: int, offset: float = 0.0) -> FeatureSet:
    subjects = [f"{dataset}/s{s + 1:02d}" for s in range(n_subjects) for _ in range(per_subject)]
    n = len(subjects)
    g = torch.Generator().manual_seed(seed)
    return FeatureSet(
        x=torch.rand(n, 3, 28, 28, generator=g) + offset,
        y=torch.arange(n) % 3,
        sample_ids=[f"{s}/c{i}" for i, s in enumerate(subjects)],
        subjects=subjects,
        datasets=[dataset] * n,
        clips=[f"c{i}" for i in range(n)],
        classes=CLASSES,
        channels=("u", "v", "strain"),
    )


def _paired(fold: int = 0, batch: int = 4) -> PairedDataModule:
    micro_fs = _features("synthetic", 3, 4, seed=0)
    macro_fs = _features("synthetic_macro", 4, 5, seed=1, offset=100.0)
    micro = MERDataModule(micro_fs, loso_folds(micro_fs.subjects), fold, batch_size=batch, normalize="none")
    macro = MERDataModule(
        macro_fs, all_subjects_fold(macro_fs.subjects), 0, batch_size=batch, normalize="none"
    )
    return PairedDataModule(micro, macro)


def test_paired_batches_train_on_macro_and_test_on_the_micro_held_out_subject_only():
    dm = _paired(fold=1)
    dm.setup("fit")
    assert dm.fold.name == "synthetic/s02"
    loader = dm.train_dataloader()
    steps = list(iter(loader))
    # max_size_cycle: as many steps as the longer loader (20 macro clips / 4), the micro one cycles.
    assert len(steps) == 5
    micro_ids, macro_ids = set(), set()
    for batch, _, _ in steps:
        micro_ids |= set(batch[MICRO]["sample_id"])
        macro_ids |= set(batch[MACRO]["sample_id"])
    assert all(not i.startswith("synthetic/s02/") for i in micro_ids)
    assert len(macro_ids) == 20  # every macro clip trains this fold
    test_ids = {i for b in dm.test_dataloader() for i in b["sample_id"]}
    assert test_ids and all(i.startswith("synthetic/s02/") for i in test_ids)
    assert dm.extra_train_subjects == [f"synthetic_macro/s0{i}" for i in range(1, 5)]
    assert dm.train_class_counts.sum() == 8 + 20


def test_paired_refuses_shared_subjects_and_other_classes():
    micro_fs = _features("synthetic", 3, 4, seed=0)
    micro = MERDataModule(micro_fs, loso_folds(micro_fs.subjects), 0, batch_size=4, normalize="none")
    same = MERDataModule(micro_fs, all_subjects_fold(micro_fs.subjects), 0, batch_size=4, normalize="none")
    with pytest.raises(ValueError, match="share subjects.*held-out subject would be trained on"):
        PairedDataModule(micro, same)
    with pytest.raises(ValueError, match="must be all training data"):
        PairedDataModule(micro, micro)


def _emr_module(**kwargs) -> EMRClassifier:
    torch.manual_seed(0)
    net = EMR(num_classes=3, in_chans=3, backbone="shallow")
    return EMRClassifier(
        net, CrossEntropyLoss(), partial(torch.optim.Adam, weight_decay=1e-6), CLASSES, ("x",), **kwargs
    )


def _batch(n: int, offset: float = 0.0, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"x": torch.rand(n, 3, 28, 28, generator=g) + offset, "y": torch.arange(n) % 3}


def test_emr_step_sets_the_dann_coefficient_and_trains_on_both_domains():
    module = _emr_module(grl_max_steps=100, grl_alpha=10.0)
    module.log_dict = lambda *a, **k: None  # no Trainer attached
    seen = {}
    original = module.net.forward_heads

    def spy(x):
        seen["n"] = x.shape[0]
        return original(x)

    module.net.forward_heads = spy
    loss = module.training_step({MICRO: _batch(4), MACRO: _batch(6, seed=1)}, 0)
    assert seen["n"] == 10 and torch.isfinite(loss)
    assert module.net.grl.coefficient == pytest.approx(dann_coefficient(1, 100, 10.0))
    assert module.net.grl.coefficient == pytest.approx(2 / (1 + math.exp(-10 * 1 / 100)) - 1)
    with pytest.raises(ValueError, match="paired batches"):
        module.training_step(_batch(4), 0)


def test_emr_domain_labels_are_micro_first_then_macro(monkeypatch):
    module = _emr_module()
    module.log_dict = lambda *a, **k: None
    captured = {}

    def fake_domain_loss(logits, labels):
        captured["labels"] = labels.clone()
        return logits.sum() * 0

    monkeypatch.setattr("models.domain_adversarial.domain_loss", fake_domain_loss)
    module.training_step({MICRO: _batch(3), MACRO: _batch(2, seed=1)}, 0)
    assert captured["labels"].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]


def test_emr_learning_rates_and_halving_schedule():
    module = _emr_module(backbone_lr=1e-5, head_lr=1e-3, head_lr_halving_epochs=10, head_lr_min=1e-5)
    config = module.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    names = [g["name"] for g in optimizer.param_groups]
    assert names == ["backbone", "heads"]
    lrs = []
    for _epoch in range(80):
        lrs.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    assert all(b == pytest.approx(1e-5) for b, _ in lrs)  # the backbone keeps its rate
    heads = [h for _, h in lrs]
    assert heads[0] == heads[9] == pytest.approx(1e-3)
    assert heads[10] == pytest.approx(5e-4) and heads[20] == pytest.approx(2.5e-4)
    assert min(heads) == pytest.approx(1e-5)  # never below the floor
    assert optimizer.param_groups[0]["weight_decay"] == 1e-6


def test_emr_clips_each_module_but_not_the_discriminator():
    module = _emr_module(grad_clip_norm=1.0)
    for p in module.net.parameters():
        p.grad = torch.full_like(p, 10.0)
    module.configure_gradient_clipping(None)
    for name in CLIPPED_MODULES:
        grads = [p.grad for p in getattr(module.net, name).parameters()]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        assert norm == pytest.approx(1.0, rel=1e-4), name
    assert all(torch.all(p.grad == 10.0) for p in module.net.discriminator.parameters())


def test_emr_recipe_refuses_a_plain_network():
    with pytest.raises(ValueError, match="EMR-style network"):
        EMRClassifier(STSTNet(), CrossEntropyLoss(), torch.optim.Adam, CLASSES)


def _teacher() -> STSTNet:
    torch.manual_seed(1)
    teacher = STSTNet(num_classes=7, in_chans=3)
    teacher.bn1.running_mean.uniform_()
    return teacher


def test_distillation_keeps_the_teacher_frozen_and_out_of_the_checkpoint():
    teacher = _teacher()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    torch.manual_seed(0)
    student = STSTNet(num_classes=3, in_chans=3)
    module = DistillationClassifier(
        student,
        CrossEntropyLoss(),
        partial(torch.optim.Adam, lr=1e-2),
        teacher,
        class_names=CLASSES,
        beta=1.0,
    )
    module.log = module.log_dict = lambda *a, **k: None
    module.train()
    assert not teacher.training and student.training
    optimizer = module.configure_optimizers()
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert not held & {id(p) for p in teacher.parameters()}
    assert {id(p) for p in module.distillation.parameters()} <= held  # the hint's regressor trains
    for step in range(3):
        optimizer.zero_grad()
        loss = module.training_step({"x": torch.randn(8, 3, 28, 28) * 3 + 1, "y": torch.arange(8) % 3}, step)
        loss.backward()
        optimizer.step()
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k  # weights and BN statistics
    assert not any(k.startswith("teacher") or "_teacher" in k for k in module.state_dict())


def test_distillation_hint_is_the_loss_beyond_cross_entropy():
    teacher = _teacher()
    torch.manual_seed(0)
    student = STSTNet(num_classes=3, in_chans=3)
    module = DistillationClassifier(
        student, nn.CrossEntropyLoss(), torch.optim.SGD, teacher, class_names=CLASSES, beta=2.0
    )
    logged = {}
    module.log = lambda name, value, **k: logged.__setitem__(name, value)
    module.log_dict = lambda values, **k: logged.update(values)
    module.eval()  # no dropout: the hand computation sees the same features
    batch = {"x": torch.randn(4, 3, 28, 28), "y": torch.tensor([0, 1, 2, 0])}
    loss = module.training_step(batch, 0)
    features = student.forward_features(batch["x"])
    ce = nn.functional.cross_entropy(student.forward_head(features), batch["y"])
    target = teacher.forward_features(batch["x"]).flatten(1)
    projected = module.distillation.hint.regressor(features.flatten(1))
    hint = ((projected - target) ** 2).sum(1).mean() / target.shape[1]
    assert loss.item() == pytest.approx((ce + 2.0 * hint).item(), rel=1e-5)
    assert logged["train/kd"] == 0


# ---------------------------------------------------------------------------------------------------------
# Settings of the transfer experiments


def _compose(overrides):
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    root = Path(__file__).resolve().parents[1]
    with initialize_config_dir(config_dir=str(root / "configs"), version_base="1.3"):
        return compose("train", overrides=overrides)


@pytest.mark.parametrize(
    ("experiment", "key"),
    [("finetune_cpu", "model.init_from"), ("distill_cpu", "model.distill.teacher.ckpt")],
)
def test_experiments_that_need_weights_refuse_to_start_without_them(experiment, key, tmp_path):
    import train
    from training.settings import SettingError

    cfg = _compose([f"experiment={experiment}", f"run_dir={tmp_path / 'run'}", "logger=none"])
    with pytest.raises(SettingError) as err:
        train.run(cfg)
    assert err.value.key == key
    assert not (tmp_path / "run").exists()


def test_emr_macro_source_is_the_synthetic_macro_database_with_reduction():
    cfg = _compose(["experiment=emr_cpu"])
    assert cfg.macro.data.name == "synthetic_macro" and cfg.macro.data.label_map == "auto"
    assert list(cfg.macro.features.frames) == ["onset", "middle"] and cfg.macro.features.magnify is None
    assert cfg.model.recipe == "emr" and cfg.model.net.backbone == "shallow"
    # The paper experiment reads CK+ (its root from the environment or the command line).
    assert _compose(["experiment=emr"]).macro.data.name == "ckplus"


# ---------------------------------------------------------------------------------------------------------
# Each route end to end: pre-train on the synthetic macro database, then fine-tune, distil and EMR on two
# folds of the micro database


SMALL_MACRO = [
    "data.reader.num_subjects=4",
    "data.reader.clips_per_subject=7",
    "data.reader.height=64",
    "data.reader.width=56",
]
SMALL_MICRO = [
    "data.reader.num_subjects=2",
    "data.reader.clips_per_subject=6",
    "data.reader.height=64",
    "data.reader.width=56",
]
QUICK = ["trainer.max_epochs=2", "logger=none", "progress=false"]


@pytest.mark.slow
def test_every_transfer_route_runs_end_to_end(tmp_path):
    import json

    import train
    from training.checkpoints import read_provenance

    cache = f"cache_dir={tmp_path / 'cache'}"

    def run(overrides):
        return train.run(_compose([*QUICK, cache, *overrides]))

    pre = run(
        [
            "experiment=pretrain_macro_cpu",
            *SMALL_MACRO,
            "data.holdout.test_subjects=1",
            f"run_dir={tmp_path / 'pre'}",
        ]
    )
    record = read_provenance(pre / "last.ckpt")
    assert len(record["classes"]) == 7 and len(record["train_subjects"]) == 3
    assert all(s.startswith("synthetic_macro/") for s in record["train_subjects"])

    tuned = run(
        [
            "experiment=finetune_cpu",
            *SMALL_MICRO,
            f"model.init_from={pre / 'last.ckpt'}",
            f"run_dir={tmp_path / 'ft'}",
        ]
    )
    report = json.loads((tuned / "fold_1" / "init_report.json").read_text())
    assert report["provenance"] == "checked" and set(report["newly_initialised"]) == {"fc.weight", "fc.bias"}

    distilled = run(
        [
            "experiment=distill_cpu",
            *SMALL_MICRO,
            f"model.distill.teacher.ckpt={pre / 'last.ckpt'}",
            f"run_dir={tmp_path / 'ds'}",
        ]
    )
    emr = run(
        [
            "experiment=emr_cpu",
            *SMALL_MICRO,
            *(f"macro.{o}" for o in SMALL_MACRO),
            f"run_dir={tmp_path / 'emr'}",
        ]
    )
    for run_dir in (tuned, distilled, emr):
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["folds_missing"] == [] and summary["n"] == 12
        for k in (0, 1):
            assert (run_dir / f"fold_{k}" / "last.ckpt").is_file()
    trained = read_provenance(emr / "fold_0" / "last.ckpt")["train_subjects"]
    assert "synthetic/s01" not in trained and "synthetic/s02" in trained
    assert sum(s.startswith("synthetic_macro/") for s in trained) == 4


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_writes_each_fold_once(tmp_path):
    """trainer=ddp_cpu: Lightning's DDP (gloo) with two processes; the fold loop stays correct: every
    held-out sample predicted exactly once, one checkpoint per fold, one process writing the run's files."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import pandas as pd

    root = Path(__file__).resolve().parents[1]
    run_dir = tmp_path / "ddp"
    args = [
        "trainer=ddp_cpu",
        *SMALL_MICRO,
        "data.reader.num_subjects=3",
        *QUICK,
        f"run_dir={run_dir}",
        f"cache_dir={tmp_path / 'cache'}",
    ]
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    out = subprocess.run(
        [sys.executable, "train.py", *args], cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("run dir:") == 1  # the worker process prints nothing of its own
    frames = [pd.read_csv(run_dir / "predictions" / f"fold_{k:03d}.csv") for k in range(3)]
    ids = pd.concat(frames)["sample_id"]
    assert len(ids) == 18 and ids.is_unique
    for k, frame in enumerate(frames):
        assert frame["subject"].nunique() == 1 and (run_dir / f"fold_{k}" / "last.ckpt").is_file()
    assert json.loads((run_dir / "summary.json").read_text())["folds_missing"] == []
    log = (run_dir / "train.log").read_text()
    assert log.count("fold synthetic/s02 (2 of 3): training") == 1


def test_a_macro_source_without_the_emr_recipe_is_refused(tmp_path):
    import train
    from training.settings import SettingError

    cfg = _compose(
        [
            "experiment=ststnet_cpu",
            "+data@macro.data=synthetic_macro",
            "macro.data.label_map=auto",
            *(f"macro.{o}" for o in SMALL_MACRO),
            *SMALL_MICRO,
            *QUICK,
            f"cache_dir={tmp_path / 'cache'}",
            f"run_dir={tmp_path / 'run'}",
        ]
    )
    with pytest.raises(SettingError, match="macro source trains with the EMR recipe"):
        train.run(cfg)
    assert not (tmp_path / "run").exists()
