"""models.weights.load_weights: checkpoint round trips, head mismatches, strict mode, missing files."""

from __future__ import annotations

import logging

import pytest
import torch

from models.ststnet import STSTNet
from models.weights import LoadReport, load_weights


def make_model(seed: int, **kwargs) -> STSTNet:
    torch.manual_seed(seed)
    model = STSTNet(**kwargs)
    # Non-default BN statistics, so the test sees buffers travel too, not only parameters.
    if isinstance(model.bn1, torch.nn.BatchNorm2d):
        model.bn1.running_mean.uniform_()
        model.bn1.num_batches_tracked.fill_(7)
    return model


def lightning_style_checkpoint(model: torch.nn.Module, path) -> None:
    """What Trainer.save_checkpoint writes for a LightningModule holding the network as `self.net`."""
    state = {f"net.{k}": v for k, v in model.state_dict().items()}
    torch.save({"epoch": 499, "global_step": 500, "state_dict": state, "optimizer_states": []}, path)


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module, keys=None) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    for k in keys if keys is not None else sa:
        assert torch.equal(sa[k], sb[k]), k


def test_round_trip_through_lightning_checkpoint(tmp_path, caplog) -> None:
    source, target = make_model(0), make_model(1)
    assert not torch.equal(source.conv1.weight, target.conv1.weight)
    path = tmp_path / "fold.ckpt"
    lightning_style_checkpoint(source, path)
    with caplog.at_level(logging.INFO, logger="models.weights"):
        report = load_weights(target, path)
    assert isinstance(report, LoadReport)
    assert report.exact
    assert (report.missing_keys, report.unexpected_keys, report.mismatched_keys) == ([], [], [])
    assert len(report.loaded_keys) == len(source.state_dict())
    assert_same_state(source, target)
    assert "loaded 23/23" in caplog.text


def test_plain_state_dict_with_ddp_prefix(tmp_path) -> None:
    source, target = make_model(0), make_model(1)
    path = tmp_path / "weights.pth"
    torch.save({f"module.net.{k}": v for k, v in source.state_dict().items()}, path)
    assert load_weights(target, path).exact
    assert_same_state(source, target)


def test_other_head_is_reported_and_left_at_init(tmp_path, caplog) -> None:
    source, target = make_model(0, num_classes=5), make_model(1, num_classes=3)
    head_before = {k: v.clone() for k, v in target.fc.state_dict().items()}
    path = tmp_path / "five_classes.ckpt"
    lightning_style_checkpoint(source, path)
    with caplog.at_level(logging.WARNING, logger="models.weights"):
        report = load_weights(target, path)
    assert report.mismatched_keys == [("fc.weight", (5, 400), (3, 400)), ("fc.bias", (5,), (3,))]
    assert report.missing_keys == [] and report.unexpected_keys == []
    assert not report.exact
    torch.testing.assert_close(target.fc.weight, head_before["weight"], rtol=0, atol=0)
    torch.testing.assert_close(target.fc.bias, head_before["bias"], rtol=0, atol=0)
    assert_same_state(source, target, [k for k in source.state_dict() if not k.startswith("fc.")])
    assert "fc.weight [5, 400] vs model [3, 400]" in caplog.text
    assert "fc.weight" in str(report)


def test_missing_and_unexpected_keys_are_reported(tmp_path) -> None:
    # A model without BN loaded from one with BN: the BN tensors are unexpected. And the reverse: missing.
    with_bn, without_bn = make_model(0), make_model(1, use_bn=False)
    path = tmp_path / "bn.pt"
    torch.save(with_bn.state_dict(), path)
    report = load_weights(without_bn, path)
    assert sorted(report.unexpected_keys) == sorted(k for k in with_bn.state_dict() if k.startswith("bn"))
    assert report.missing_keys == [] and report.mismatched_keys == []
    assert_same_state(with_bn, without_bn, list(without_bn.state_dict()))

    path = tmp_path / "no_bn.pt"
    torch.save(without_bn.state_dict(), path)
    target = make_model(2)
    bn_before = target.bn2.weight.detach().clone()
    report = load_weights(target, path)
    assert sorted(report.missing_keys) == sorted(k for k in target.state_dict() if k.startswith("bn"))
    assert report.unexpected_keys == []
    assert torch.equal(target.bn2.weight, bn_before)


def test_strict_raises_and_leaves_the_model_untouched(tmp_path) -> None:
    source, target = make_model(0, num_classes=5), make_model(1)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    path = tmp_path / "five_classes.ckpt"
    lightning_style_checkpoint(source, path)
    with pytest.raises(RuntimeError, match="strict") as info:
        load_weights(target, path, strict=True)
    message = str(info.value)
    assert str(path) in message and "fc.weight" in message and "fc.bias" in message
    for k, v in target.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_strict_accepts_an_exact_checkpoint(tmp_path) -> None:
    source, target = make_model(0), make_model(1)
    path = tmp_path / "fold.ckpt"
    lightning_style_checkpoint(source, path)
    assert load_weights(target, path, strict=True).exact
    assert_same_state(source, target)


def test_missing_file_names_the_path(tmp_path) -> None:
    path = tmp_path / "nope" / "fold03.ckpt"
    with pytest.raises(FileNotFoundError, match="fold03.ckpt"):
        load_weights(STSTNet(), path)


def test_not_a_state_dict(tmp_path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ValueError, match="state_dict"):
        load_weights(STSTNet(), path)


# Lightning 2.6 on torch 2.14 warns about its own use of a torch pytree API; not ours to fix.
@pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")
def test_real_lightning_checkpoint_loads_with_weights_only(tmp_path) -> None:
    """A file written by Trainer.save_checkpoint (loops, callbacks, hparams) passes weights_only=True."""
    import lightning.pytorch as L
    from torch.utils.data import DataLoader, TensorDataset

    class Module(L.LightningModule):
        def __init__(self, lr: float = 1e-3, class_names: tuple[str, ...] = ("negative", "positive")):
            super().__init__()
            self.net = STSTNet(num_classes=2)
            self.save_hyperparameters()

        def training_step(self, batch, batch_idx):
            return torch.nn.functional.cross_entropy(self.net(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    torch.manual_seed(0)
    data = DataLoader(TensorDataset(torch.randn(8, 3, 28, 28), torch.randint(0, 2, (8,))), batch_size=4)
    module = Module()
    trainer = L.Trainer(
        max_steps=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, data)
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)

    target = make_model(1, num_classes=3)
    report = load_weights(target, path)
    assert [k for k, _, _ in report.mismatched_keys] == ["fc.weight", "fc.bias"]
    assert_same_state(module.net, target, [k for k in target.state_dict() if not k.startswith("fc.")])
