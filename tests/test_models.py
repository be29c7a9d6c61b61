"""Every network: parameter count against specs/models.md, output shapes, gradients, determinism.

MODEL_CASES is the registry of checks; `test_every_model_config_is_in_the_table` fails when a
`configs/model/*.yaml` names a network that has no row here, so a new model cannot skip its count check.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ModelCase:
    id: str
    target: str  # the `_target_` a model config uses
    kwargs: dict = field(default_factory=dict)
    input_shape: tuple[int, ...] = ()
    params: int = 0  # learnable weights + biases (+ BN gamma/beta), specs/models.md section 0 convention
    output_shape: tuple[int, ...] = ()
    features_shape: tuple[int, ...] = ()  # forward_features output
    source: str = ""


STSTNET = "models.ststnet.STSTNet"
OFF_APEXNET = "models.off_apexnet.OffApexNet"

# STSTNet arithmetic: convs (3+5+8) * (9 * in_chans + 1), BN 2 * 16, FC 401 * num_classes.
# OFF-ApexNet arithmetic: 2,572 per stream, FC1 (784 * in_chans + 1) * 1024, FC2 1,049,600, head 1025 * K.
MODEL_CASES = [
    ModelCase(
        "ststnet",
        STSTNET,
        {},
        (2, 3, 28, 28),
        1_683,
        (2, 3),
        (2, 16, 5, 5),
        "specs/models.md s1 (.pth: 1,683)",
    ),
    ModelCase(
        "ststnet-no-bn",
        STSTNET,
        {"use_bn": False},
        (2, 3, 28, 28),
        1_651,
        (2, 3),
        (2, 16, 5, 5),
        "specs/models.md s1 (1,683 - 32 BN)",
    ),
    ModelCase(
        "ststnet-5-classes",
        STSTNET,
        {"num_classes": 5},
        (2, 3, 28, 28),
        1_683 + 2 * 401,
        (2, 5),
        (2, 16, 5, 5),
        "s1 arithmetic: 2 more rows of the 400 -> K linear",
    ),
    ModelCase(
        "ststnet-2-chans",
        STSTNET,
        {"in_chans": 2},
        (4, 2, 28, 28),
        1_683 - 16 * 9,
        (4, 3),
        (4, 16, 5, 5),
        "s1 arithmetic: 16 filters lose one 3x3 input slice",
    ),
    ModelCase(
        "off_apexnet",
        OFF_APEXNET,
        {},
        (2, 2, 28, 28),
        2_664_475,
        (2, 3),
        (2, 1024),
        "specs/models.md s2 (paper reports 2.77 M, s12.4)",
    ),
    ModelCase(
        "off_apexnet-5-classes",
        OFF_APEXNET,
        {"num_classes": 5},
        (2, 2, 28, 28),
        2_664_475 + 2 * 1025,
        (2, 5),
        (2, 1024),
        "s2 arithmetic: 2 more rows of the 1024 -> K linear",
    ),
    ModelCase(
        "off_apexnet-3-chans",
        OFF_APEXNET,
        {"in_chans": 3},
        (2, 3, 28, 28),
        2_664_475 + 2_572 + 784 * 1024,
        (2, 3),
        (2, 1024),
        "s2 arithmetic: one more LeNet stream and 784 more FC1 inputs",
    ),
]


def build(case: ModelCase) -> torch.nn.Module:
    module_name, class_name = case.target.rsplit(".", 1)
    return getattr(importlib.import_module(module_name), class_name)(**case.kwargs)


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: c.id)
def test_parameter_count(case: ModelCase) -> None:
    assert count_params(build(case)) == case.params, case.source


@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: c.id)
def test_shapes(case: ModelCase) -> None:
    torch.manual_seed(0)
    model = build(case).eval()
    x = torch.randn(case.input_shape)
    features = model.forward_features(x)
    assert features.shape == case.features_shape
    assert model.forward_head(features, pre_logits=True).shape == (case.input_shape[0], model.num_features)
    logits = model(x)
    assert logits.shape == case.output_shape
    assert logits.dtype == torch.float32
    torch.testing.assert_close(model.forward_head(features), logits)


@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: c.id)
def test_gradients_reach_every_parameter(case: ModelCase) -> None:
    torch.manual_seed(0)
    model = build(case).train()
    # Batch of 8 so that ReLU, max-pool and dropout leave every filter some path to the loss.
    x = torch.randn((8, *case.input_shape[1:]))
    model(x).square().sum().backward()
    dead = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead, f"no gradient reached {dead}"


@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: c.id)
def test_eval_mode_is_deterministic(case: ModelCase) -> None:
    torch.manual_seed(0)
    model = build(case)
    x = torch.randn(case.input_shape)
    model.eval()
    with torch.no_grad():
        first, second = model(x), model(x)
    assert torch.equal(first, second)
    # Dropout must be live in train mode, or the eval check above proves nothing.
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))


def test_ststnet_streams_see_all_input_channels() -> None:
    from models.ststnet import STSTNet

    model = STSTNet(in_chans=3)
    assert [model.conv1.in_channels, model.conv2.in_channels, model.conv3.in_channels] == [3, 3, 3]
    assert [model.conv1.out_channels, model.conv2.out_channels, model.conv3.out_channels] == [3, 5, 8]


def test_ststnet_layer_order_and_padding() -> None:
    """ReLU before BN (authors' order), "same" 3x3 padding, average (not max) pooling for P2."""
    from models.ststnet import STSTNet

    model = STSTNet().eval()
    assert all(conv.padding == (1, 1) for conv in (model.conv1, model.conv2, model.conv3))
    assert isinstance(model.avgpool, torch.nn.AvgPool2d) and isinstance(model.maxpool, torch.nn.MaxPool2d)
    with torch.no_grad():
        for bn in (model.bn1, model.bn2, model.bn3):
            bn.bias.fill_(-100.0)
        features = model.forward_features(torch.randn(2, 3, 28, 28))
    # BN after ReLU shifts the non-negative activations to about -100; ReLU after BN would clip them to 0.
    assert features.max() < -90


def test_ststnet_state_dict_matches_the_authors_port() -> None:
    """Names and shapes of christy1206/STSTNet `main.py`, so its released per-subject .pth files load."""
    from models.ststnet import STSTNet

    expected = {"conv1.weight": (3, 3, 3, 3), "conv2.weight": (5, 3, 3, 3), "conv3.weight": (8, 3, 3, 3)}
    expected |= {f"conv{i}.bias": (c,) for i, c in ((1, 3), (2, 5), (3, 8))}
    for i, c in ((1, 3), (2, 5), (3, 8)):
        expected |= {f"bn{i}.{n}": (c,) for n in ("weight", "bias", "running_mean", "running_var")}
        expected[f"bn{i}.num_batches_tracked"] = ()
    expected |= {"fc.weight": (3, 400), "fc.bias": (3,)}
    assert {k: tuple(v.shape) for k, v in STSTNet().state_dict().items()} == expected


def test_off_apexnet_one_unshared_stream_per_channel() -> None:
    from models.off_apexnet import OffApexNet

    model = OffApexNet(in_chans=2)
    assert len(model.streams) == 2
    assert model.streams[0].conv1.weight.data_ptr() != model.streams[1].conv1.weight.data_ptr()
    seen = {}
    for c, stream in enumerate(model.streams):
        stream.register_forward_hook(lambda module, args, out, c=c: seen.__setitem__(c, args[0]))
    x = torch.randn(2, 2, 28, 28)
    model(x)
    # Stream c must see exactly channel c (u, then v), with its channel axis kept.
    for c in range(2):
        torch.testing.assert_close(seen[c], x[:, c : c + 1], rtol=0, atol=0)


def model_config_targets() -> dict[str, str]:
    """{config file name: net._target_} for every configs/model/*.yaml, interpolations left unresolved."""
    targets = {}
    for path in sorted((ROOT / "configs" / "model").glob("*.yaml")):
        cfg = OmegaConf.load(path)
        target = OmegaConf.select(cfg, "net._target_", throw_on_resolution_failure=False)
        assert isinstance(target, str), f"{path.name}: no net._target_"
        targets[path.name] = target
    return targets


def test_every_model_config_is_in_the_table() -> None:
    covered = {case.target for case in MODEL_CASES}
    missing = {name: target for name, target in model_config_targets().items() if target not in covered}
    assert not missing, f"model configs without a row in tests/test_models.py MODEL_CASES: {missing}"


def test_config_check_catches_an_unlisted_model(tmp_path, monkeypatch) -> None:
    """The coverage test must be able to fail: a config naming an unknown network is reported."""
    (tmp_path / "configs" / "model").mkdir(parents=True)
    (tmp_path / "configs" / "model" / "new.yaml").write_text(
        "net:\n  _target_: models.new.NewNet\n  num_classes: ${data.num_classes}\n  in_chans: 3\n"
    )
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert model_config_targets() == {"new.yaml": "models.new.NewNet"}
    with pytest.raises(AssertionError, match="models.new.NewNet"):
        test_every_model_config_is_in_the_table()
