"""Fold-parallel LOSO: the fused first block, the fold stack, no held-out sample reaching its fold, and
parallel runs that write what sequential runs write."""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as L
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir

import models.stacked_ops as stacked_ops
from models.stacked_ops import conv_relu_pool_sums, reference_conv_relu_pool_sums
from models.ststnet import STSTNet

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "data.reader.num_subjects=4",
    "data.reader.clips_per_subject=3",
    "data.reader.height=64",
    "data.reader.width=56",
    "trainer.max_epochs=3",
    "datamodule.batch_size=4",
    "logger=none",
    "progress=false",
]


@pytest.mark.parametrize("chunk_bytes", [1, 10**9])  # one sample per chunk, or the whole batch at once
@pytest.mark.parametrize("negative", [False, True])
def test_fused_block_equals_conv_relu_pool_and_its_sums(monkeypatch, chunk_bytes, negative):
    monkeypatch.setattr(stacked_ops, "CHUNK_BYTES", chunk_bytes)
    torch.manual_seed(0)
    x = torch.randn(5, 3, 28, 28, dtype=torch.float64)
    x[0, :, :9, :9] = 0.3  # a flat patch: tied maxima inside pooling windows
    weight = torch.randn(10, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(10, dtype=torch.float64, requires_grad=True)
    sign = torch.ones(10, dtype=torch.float64)
    if negative:  # channels pooled as a min (a batch-norm scale below zero)
        sign[[1, 4]] = -1
    out = conv_relu_pool_sums(x, weight, bias, sign, groups=2)
    ref = reference_conv_relu_pool_sums(x, weight, bias, sign, groups=2)
    assert out[0].shape == (2, 5, 5, 100) and out[1].shape == out[2].shape == (5, 10)
    for a, b in zip(out, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-10)
    grads = [torch.randn_like(o) for o in out]
    ours = torch.autograd.grad(out, (weight, bias), grads)
    theirs = torch.autograd.grad(ref, (weight, bias), grads)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-9)


def _nets(k: int, **kwargs) -> list[STSTNet]:
    nets = []
    for i in range(k):
        torch.manual_seed(i)
        nets.append(STSTNet(**kwargs).double())
    return nets


def test_each_fold_of_the_stack_is_its_network_on_its_own_rows():
    nets = _nets(4, drop_rate=0.0)
    nets[2].bn2.weight.data[1] = -0.5  # one channel pooled as a min
    stack = STSTNet.fold_stack(nets).double()
    torch.manual_seed(9)
    x = torch.randn(10, 3, 28, 28, dtype=torch.float64)
    weights = torch.ones(10, 4, dtype=torch.float64)
    weights[:3, 1] = 0  # held out of fold 1
    weights[5:, 2] = 0
    stack.train()
    logits = stack(x, weights)
    assert logits.shape == (10, 4, 3)
    for k, net in enumerate(nets):
        net.train()
        rows = weights[:, k] > 0
        expected = net(x[rows])
        torch.testing.assert_close(logits[rows, k], expected, rtol=1e-10, atol=1e-10)
        g = torch.randn_like(expected)
        ours = torch.autograd.grad(
            (logits[rows, k] * g).sum(), [stack.conv_weight, stack.fc_weight], retain_graph=True
        )
        theirs = torch.autograd.grad((expected * g).sum(), [net.conv3.weight, net.fc.weight])
        torch.testing.assert_close(ours[0][k, 8:], theirs[0], rtol=1e-9, atol=1e-10)
        torch.testing.assert_close(ours[1][k], theirs[1], rtol=1e-9, atol=1e-10)
        # The running statistics moved as the network's own batch norms moved.
        state = stack.fold_state_dict(k)
        for key, value in net.state_dict().items():
            torch.testing.assert_close(state[key].to(value.dtype), value, rtol=1e-12, atol=1e-12)
    stack.eval()
    evaluated = stack(x)
    for k, net in enumerate(nets):
        net.eval()
        torch.testing.assert_close(evaluated[:, k], net(x), rtol=1e-10, atol=1e-10)
        fresh = STSTNet().double()
        fresh.load_state_dict(stack.fold_state_dict(k))  # strict: the network's own keys


def test_dropout_and_batch_norm_folded_into_the_head_match_the_layers():
    """In training mode with dropout: the stack's logits equal STSTNet's layers applied with the stack's own
    dropout mask (drawn from its seeded generator, one mask shared by the folds)."""
    from torch.nn import functional as F

    nets = _nets(2, drop_rate=0.5)
    stack = STSTNet.fold_stack(nets, dropout_seed=5).double().train()
    x = torch.randn(6, 3, 28, 28, dtype=torch.float64)
    weights = torch.ones(6, 2, dtype=torch.float64)
    logits = stack(x, weights)
    keep = torch.empty(6, 16, 100, dtype=torch.float64).bernoulli_(
        0.5, generator=torch.Generator().manual_seed(5)
    )
    keep = (keep * 2).view(6, 16, 10, 10)
    for k, net in enumerate(nets):
        net.train()
        streams = [
            F.max_pool2d(bn(F.relu(conv(x))), 3, 3, 1)
            for conv, bn in ((net.conv1, net.bn1), (net.conv2, net.bn2), (net.conv3, net.bn3))
        ]
        expected = net.fc(F.avg_pool2d(torch.cat(streams, 1) * keep, 2, 2).flatten(1))
        torch.testing.assert_close(logits[:, k], expected, rtol=1e-10, atol=1e-10)


def test_stack_without_batch_norm_and_a_fold_without_rows():
    nets = _nets(3, use_bn=False, drop_rate=0.0)
    stack = STSTNet.fold_stack(nets).double().train()
    x = torch.randn(6, 3, 28, 28, dtype=torch.float64)
    weights = torch.ones(6, 3, dtype=torch.float64)
    for k, net in enumerate(nets):
        torch.testing.assert_close(stack(x, weights)[:, k], net.train()(x), rtol=1e-10, atol=1e-10)
    nets = _nets(2)
    stack = STSTNet.fold_stack(nets).double().train()
    weights = torch.ones(6, 2, dtype=torch.float64)
    weights[:, 1] = 0  # fold 1 has no training row in this batch: finite outputs, statistics kept
    before = stack.running_mean[1].clone()
    assert torch.isfinite(stack(x, weights)).all()
    assert torch.equal(stack.running_mean[1], before) and stack.num_batches_tracked.tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"weights of shape \(6, 2\)"):
        stack(x)


def _train_stack(x, y, weights, nets, epochs=3, seed=0):
    """A FoldParallelModule over `nets` trained by a plain Lightning Trainer; returns each fold's weights."""
    from functools import partial

    from torch.utils.data import DataLoader

    from datamodules.datamodule import EpochShuffle
    from losses import CrossEntropyLoss
    from training.fold_parallel import DROPOUT_SEED_OFFSET, FoldParallelModule

    stack = STSTNet.fold_stack(nets, dropout_seed=seed + DROPOUT_SEED_OFFSET)
    module = FoldParallelModule(
        stack,
        [CrossEntropyLoss() for _ in nets],
        partial(torch.optim.Adam, lr=1e-2),
        None,
        x,
        y,
        weights,
    )
    loader = DataLoader(
        torch.arange(len(y)), batch_size=8, sampler=EpochShuffle(len(y), torch.Generator().manual_seed(seed))
    )
    L.seed_everything(seed, verbose=False)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
    )
    trainer.fit(module, train_dataloaders=loader)
    return [stack.fold_state_dict(k) for k in range(len(nets))], module


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_shared_cross_entropy_is_each_folds_own_loss(smoothing):
    from losses import CrossEntropyLoss
    from training.fold_parallel import FoldParallelModule

    torch.manual_seed(3)
    logits = torch.randn(12, 3, 4, requires_grad=True)
    y = torch.randint(0, 4, (12,))
    weights = (torch.rand(12, 3) > 0.3).float()
    weights[:, 2] = 0  # a fold without rows in this batch: loss 0
    module = FoldParallelModule(
        STSTNet.fold_stack(_nets(3)),
        [CrossEntropyLoss(label_smoothing=smoothing) for _ in range(3)],
        None,
        None,
        torch.zeros(12, 3, 28, 28),
        y,
        weights,
    )
    assert module._shared_cross_entropy
    shared = module._fold_losses(logits, y, weights)
    module._shared_cross_entropy = False  # each fold's loss module on its own rows
    looped = module._fold_losses(logits, y, weights)
    torch.testing.assert_close(shared, looped)
    assert shared[2] == 0
    weighted = CrossEntropyLoss(class_counts=[3, 1, 1, 1], class_weighting="inverse_frequency")
    assert not FoldParallelModule(
        STSTNet.fold_stack(_nets(1)),
        [weighted],
        None,
        None,
        torch.zeros(1, 3, 28, 28),
        y[:1],
        weights[:1, :1],
    )._shared_cross_entropy


def _problem(n=24, k=3):
    torch.manual_seed(1)
    x = torch.rand(n, 3, 28, 28)
    y = torch.randint(0, 3, (n,))
    subject = torch.arange(n) % k  # sample i belongs to subject i % k; fold j holds subject j out
    weights = (subject[:, None] != torch.arange(k)[None, :]).float()
    return x, y, weights, subject


def _fresh_nets(k: int) -> list[STSTNet]:
    nets = []
    for i in range(k):
        torch.manual_seed(100 + i)
        nets.append(STSTNet())
    return nets


def test_poisoned_held_out_rows_leave_their_fold_untouched():
    """The held-out subject's inputs replaced by huge values: its own fold trains to the very same weights
    (its loss, gradients and batch statistics never saw those rows); the other folds, which train on them,
    change."""
    x, y, weights, subject = _problem()
    clean, _ = _train_stack(x, y, weights, _fresh_nets(3))
    poisoned_x = x.clone()
    poisoned_x[subject == 1] = 1e3 * torch.randn_like(poisoned_x[subject == 1])
    poisoned_y = y.clone()
    poisoned_y[subject == 1] = (poisoned_y[subject == 1] + 1) % 3
    poisoned, _ = _train_stack(poisoned_x, poisoned_y, weights, _fresh_nets(3))
    for key, value in clean[1].items():
        assert torch.equal(value, poisoned[1][key]), key
    for k in (0, 2):
        assert not torch.equal(clean[k]["conv1.weight"], poisoned[k]["conv1.weight"])


def test_a_fold_trains_the_same_with_or_without_other_folds():
    x, y, weights, _ = _problem()
    together, module = _train_stack(x, y, weights, _fresh_nets(3))
    nets = _fresh_nets(3)
    alone, _ = _train_stack(x, y, weights[:, [1]], [nets[1]])
    for key, value in together[1].items():
        torch.testing.assert_close(value, alone[0][key], rtol=1e-5, atol=1e-6)
    assert len(module.history[1]["loss"]) == 3 and all(0 <= a <= 1 for a in module.history[1]["acc"])


def _compose(overrides):
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose("train", overrides=overrides)


def _run(tmp_path: Path, run_dir: Path, extra=()):
    import train

    cache = tmp_path.parent / "fold-parallel-cache"
    train.run(_compose([*TINY, f"run_dir={run_dir}", f"cache_dir={cache}", *extra]))
    return json.loads((run_dir / "summary.json").read_text())


def test_parallel_run_writes_what_a_sequential_run_writes_and_resumes(tmp_path):
    from training.checkpoints import read_checkpoint

    run_dir = tmp_path / "parallel"
    summary = _run(tmp_path, run_dir, ["loso.strategy=parallel", "logger=csv"])
    sequential = _run(tmp_path, tmp_path / "sequential", ["loso.strategy=sequential"])
    assert summary["folds_done"] == sequential["folds_done"] == 4 and summary["n"] == sequential["n"] == 12
    names = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())
    other = sorted(
        p.relative_to(tmp_path / "sequential").as_posix() for p in (tmp_path / "sequential").rglob("*")
    )
    assert [n for n in names if not n.startswith("logs/")] == [
        n for n in other if "." in n.rsplit("/", 1)[-1]
    ]
    for k in range(4):
        checkpoint = read_checkpoint(run_dir / f"fold_{k}" / "last.ckpt")
        net = STSTNet()
        net.load_state_dict(
            {key[4:]: v for key, v in checkpoint["state_dict"].items() if key.startswith("net.")}
        )
        assert checkpoint["merlin"]["fold"]["index"] == k and checkpoint["global_step"] == 9  # 3 epochs x 3
        held = set(checkpoint["merlin"]["fold"]["test_subjects"])
        assert held.isdisjoint(checkpoint["merlin"]["train_subjects"])
    # Each fold's CSV log has its own training curve, then its test scores.
    metrics = pd.read_csv(run_dir / "logs" / "synthetic_s02" / "metrics.csv")
    assert metrics["train/loss"].notna().sum() == 3 and metrics["test/uf1"].notna().sum() == 1
    # A fold lost after the run (deleted files) is trained again, alone, to the same predictions.
    before = pd.read_csv(run_dir / "predictions" / "fold_002.csv")
    for path in (run_dir / "predictions" / "fold_002.csv", run_dir / "predictions" / "fold_002.json"):
        path.unlink()
    resumed = _run(tmp_path, run_dir, ["loso.strategy=parallel", "logger=csv"])
    after = pd.read_csv(run_dir / "predictions" / "fold_002.csv")
    pd.testing.assert_frame_equal(before, after, rtol=1e-4, atol=1e-5)
    assert resumed["folds_done"] == 4


def test_a_crashed_stack_resumes_from_its_last_epoch_to_the_same_predictions(tmp_path, monkeypatch, caplog):
    import training.fold_parallel as fold_parallel

    reference = tmp_path / "reference"
    _run(tmp_path, reference, ["loso.strategy=parallel", "trainer.max_epochs=4"])
    monkeypatch.setattr(fold_parallel, "RESUME_EVERY_S", 0.0)  # keep the state at every epoch's end
    real_end = fold_parallel.FoldParallelModule.on_train_epoch_end

    class Crash(Exception):
        pass

    def crash_after_epoch_2(self):
        real_end(self)
        if self.current_epoch == 1:
            raise Crash("simulated crash")  # (Lightning turns a KeyboardInterrupt inside fit into SystemExit)

    monkeypatch.setattr(fold_parallel.FoldParallelModule, "on_train_epoch_end", crash_after_epoch_2)
    run_dir = tmp_path / "crashed"
    with pytest.raises(Crash):
        _run(tmp_path, run_dir, ["loso.strategy=parallel", "trainer.max_epochs=4"])
    state = torch.load(run_dir / fold_parallel.RESUME_NAME, weights_only=True)
    assert state["epoch"] == 1 and state["merlin_stack"]["folds"] == [0, 1, 2, 3]
    monkeypatch.setattr(fold_parallel.FoldParallelModule, "on_train_epoch_end", real_end)
    with caplog.at_level("INFO"):
        resumed = _run(tmp_path, run_dir, ["loso.strategy=parallel", "trainer.max_epochs=4"])
    assert not (run_dir / fold_parallel.RESUME_NAME).exists()  # every fold written: the state is gone
    assert "(epoch 2 done)" in caplog.text
    for k in range(4):
        a = pd.read_csv(reference / "predictions" / f"fold_00{k}.csv")
        b = pd.read_csv(run_dir / "predictions" / f"fold_00{k}.csv")
        pd.testing.assert_frame_equal(a, b, rtol=1e-5, atol=1e-6)
    assert resumed["folds_done"] == 4
    # The whole curve survives the crash: 4 epochs in each fold's history.
    metrics = (
        pd.read_csv(run_dir / "logs" / "synthetic_s01" / "metrics.csv")
        if (run_dir / "logs").is_dir()
        else None
    )
    assert metrics is None or metrics["train/loss"].notna().sum() == 4


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ("model=off_apexnet", "OffApexNet has no fold-parallel form"),
        ("datamodule.augment.hflip=0.5", "augmentation draws per fold batch"),
        ("datamodule.standardize=channel", "datamodule.standardize=channel fits statistics per fold"),
        ("model.head_lr=0.1", "model.head_lr / model.freeze"),
        ("+trainer.gradient_clip_val=1.0", "trainer.gradient_clip_val is not supported"),
    ],
)
def test_parallel_mode_refuses_what_it_cannot_reproduce(tmp_path, override, reason):
    from training.fold_parallel import FoldParallelError
    from training.settings import SettingError

    run_dir = tmp_path / "run"
    with pytest.raises((SettingError, FoldParallelError), match=reason):
        _run(tmp_path, run_dir, ["loso.strategy=parallel", override])


def test_auto_falls_back_to_sequential_and_a_bad_strategy_is_refused(tmp_path, caplog):
    from training.settings import SettingError

    with caplog.at_level("INFO"):
        _run(tmp_path, tmp_path / "auto", ["datamodule.augment.hflip=0.5", "trainer.max_epochs=1"])
    assert "loso.strategy=auto: sequential (augmentation draws per fold batch" in caplog.text
    with pytest.raises(SettingError, match="loso.strategy=fast: expected one of auto, parallel, sequential"):
        _run(tmp_path, tmp_path / "bad", ["loso.strategy=fast"])
