"""EMR (models/emr.py) and its adversarial pieces (losses/adversarial.py): counts, shapes, the row split, the
reversed domain gradient, the DANN schedule, local backbone weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from losses.adversarial import (
    MACRO_DOMAIN,
    MICRO_DOMAIN,
    GradientReversalLayer,
    dann_coefficient,
    domain_loss,
    grad_reverse,
)
from models.emr import EMR

HEAD_KEYS = {"logits", "logits_top", "logits_bottom", "domain", "features"}


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def head_count(channels: int, classes: int = 3, f: int = 64) -> int:
    """models/emr.py arithmetic: projections, main, auxiliary and domain heads of a C-channel map."""
    return 2 * (channels * f + f) + (2 * f * classes + classes) + 2 * (f * classes + classes) + 10_369


@pytest.fixture
def no_hub(monkeypatch):
    """Make any attempt of timm to reach the hub or a URL fail the test."""
    import timm.models._builder as builder

    def refuse(*args, **kwargs):
        raise AssertionError("timm tried to download weights")

    for name in ("load_state_dict_from_hf", "load_state_dict_from_url", "download_cached_file"):
        monkeypatch.setattr(builder, name, refuse)


# -- parameter counts ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "params"),
    [
        # specs/models.md s7a: 11,176,512 + 2 x 32,832 + 387 + 2 x 195 + 10,369.
        ({}, 11_253_322),
        ({"in_chans": 5}, 11_253_322 + 64 * 49 * 2),  # two more 7x7 stem slices for 64 filters
        ({"num_classes": 5}, 11_176_512 + head_count(512, classes=5)),
    ],
)
def test_resnet18_counts(kwargs: dict, params: int) -> None:
    with torch.device("meta"):  # counted, never allocated
        model = EMR(**{"num_classes": 3, "in_chans": 3, "backbone": "resnet18", **kwargs})
    assert head_count(512) == 76_810
    assert count_params(model) == params


def test_shallow_counts() -> None:
    # Trunk: 9 * 16 * C + 9 * 16 * 32 + 9 * 32 * 64 conv weights, 2 * (16 + 32 + 64) BN.
    trunk = 9 * 16 * 3 + 4_608 + 18_432 + 224
    assert count_params(EMR(backbone="shallow").backbone) == trunk == 23_696
    assert count_params(EMR(backbone="shallow")) == trunk + head_count(64) == 43_162
    assert count_params(EMR(backbone="shallow", in_chans=2)) == 43_162 - 9 * 16


# -- shapes --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("size", "rows", "split"), [(28, 7, 3), (64, 16, 7)])
def test_shallow_shapes(size: int, rows: int, split: int) -> None:
    torch.manual_seed(0)
    model = EMR(num_classes=4, in_chans=2, backbone="shallow").eval()
    x = torch.randn(3, 2, size, size)
    with torch.no_grad():
        fmap = model.forward_map(x)
        out = model.forward_heads(x)
        assert fmap.shape == (3, 64, rows, rows)
        assert model.split_row(rows) == split
        assert set(out) == HEAD_KEYS
        assert out["logits"].shape == out["logits_top"].shape == out["logits_bottom"].shape == (3, 4)
        assert out["domain"].shape == (3,)
        assert out["features"].shape == (3, 128) == (3, model.num_features)
        # The plain-classifier interface gives the same main logits and fused features.
        torch.testing.assert_close(model(x), out["logits"], rtol=0, atol=0)
        torch.testing.assert_close(model.forward_features(x), out["features"], rtol=0, atol=0)
        torch.testing.assert_close(model.forward_head(out["features"]), out["logits"], rtol=0, atol=0)
    assert model.forward_heads(x[:1])["domain"].shape == (1,)  # one sample keeps its batch axis


def test_resnet18_map_is_7_rows_split_3_4() -> None:
    with torch.device("meta"):  # shapes only
        model = EMR(backbone="resnet18").eval()
        x = torch.empty(2, 3, 224, 224)
        fmap = model.forward_map(x)
        out = model.forward_heads(x)
    assert fmap.shape == (2, 512, 7, 7) and model.split_row(7) == 3
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "logits": (2, 3),
        "logits_top": (2, 3),
        "logits_bottom": (2, 3),
        "domain": (2,),
        "features": (2, 128),
    }


def test_split_row_keeps_3_of_7_and_both_parts() -> None:
    model = EMR(backbone="shallow").eval()
    assert [model.split_row(h) for h in (2, 3, 4, 7, 14, 16)] == [1, 1, 2, 3, 6, 7]
    assert EMR(backbone="shallow", top_rows=5).split_row(7) == 5
    with pytest.raises(ValueError, match="1-row map"):
        model(torch.randn(1, 3, 4, 4))  # 4 px -> a 1x1 map
    with pytest.raises(ValueError, match="no lower-face row"):
        EMR(backbone="shallow", top_rows=7).eval()(torch.randn(1, 3, 28, 28))
    with pytest.raises(ValueError, match="top_rows"):
        EMR(backbone="shallow", top_rows=0)


def test_token_backbones_are_refused() -> None:
    model = EMR(backbone="shallow")
    model.backbone.forward_features = lambda x: torch.zeros(x.shape[0], 197, 64)
    with pytest.raises(ValueError, match=r"\(N, C, h, w\) map"):
        model(torch.randn(1, 3, 28, 28))


# -- the row split -------------------------------------------------------------------------------------------


def test_top_and_bottom_heads_see_only_their_rows() -> None:
    torch.manual_seed(0)
    model = EMR(backbone="shallow").eval()
    # The input is the feature map itself: rows are then exactly what the heads read.
    model.backbone.forward_features = lambda x: x
    fmap = torch.randn(2, 64, 7, 7)
    top, bottom = model.pool_parts(fmap)
    torch.testing.assert_close(top, fmap[:, :, 0:3].mean(dim=(2, 3)), rtol=0, atol=0)
    torch.testing.assert_close(bottom, fmap[:, :, 3:7].mean(dim=(2, 3)), rtol=0, atol=0)

    with torch.no_grad():
        before = model.forward_heads(fmap)
        lower = fmap.clone()
        lower[:, :, 3:] += torch.randn(2, 64, 4, 7)  # perturb the lower face only
        after_lower = model.forward_heads(lower)
        upper = fmap.clone()
        upper[:, :, :3] += torch.randn(2, 64, 3, 7)
        after_upper = model.forward_heads(upper)
    torch.testing.assert_close(after_lower["logits_top"], before["logits_top"], rtol=0, atol=0)
    torch.testing.assert_close(after_lower["features"][:, :64], before["features"][:, :64], rtol=0, atol=0)
    assert not torch.allclose(after_lower["logits_bottom"], before["logits_bottom"])
    torch.testing.assert_close(after_upper["logits_bottom"], before["logits_bottom"], rtol=0, atol=0)
    torch.testing.assert_close(after_upper["features"][:, 64:], before["features"][:, 64:], rtol=0, atol=0)
    assert not torch.allclose(after_upper["logits_top"], before["logits_top"])
    # Both halves reach the main and domain heads.
    for after in (after_lower, after_upper):
        assert not torch.allclose(after["logits"], before["logits"])
        assert not torch.allclose(after["domain"], before["domain"])


def test_top_and_bottom_projections_have_separate_weights() -> None:
    model = EMR(backbone="shallow")
    assert model.fc_top[0].weight.data_ptr() != model.fc_bottom[0].weight.data_ptr()
    assert not torch.equal(model.fc_top[0].weight, model.fc_bottom[0].weight)


# -- gradient reversal ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("coefficient", [0.0, 0.37, 1.0, 2.5])
def test_grad_reverse_is_identity_forward_and_minus_c_backward(coefficient: float) -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 6, requires_grad=True)
    weight = torch.randn(4, 6)
    y = grad_reverse(x, coefficient)
    torch.testing.assert_close(y, x, rtol=0, atol=0)
    (y * weight).sum().backward()
    torch.testing.assert_close(x.grad, -coefficient * weight, rtol=0, atol=0)


def test_gradient_reversal_layer_coefficient_is_settable_and_not_state() -> None:
    layer = GradientReversalLayer()
    assert layer.coefficient == 1.0
    layer.coefficient = dann_coefficient(500, 1000)
    x = torch.ones(3, requires_grad=True)
    layer(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), -layer.coefficient))
    assert not list(layer.parameters()) and not layer.state_dict()
    with pytest.raises(ValueError, match="finite"):
        grad_reverse(x, math.nan)


def test_domain_gradient_is_reversed_into_the_features_and_the_trunk() -> None:
    """The domain loss's gradient on the fused features (and on the backbone) is -c times the gradient of the
    same loss without reversal; the discriminator's own gradient is not reversed."""
    torch.manual_seed(0)
    model = EMR(backbone="shallow").eval()  # eval: no dropout, so the two passes are the same function
    x = torch.randn(6, 3, 28, 28)
    labels = torch.tensor([MACRO_DOMAIN, MICRO_DOMAIN] * 3)

    def grads(coefficient: float):
        model.zero_grad(set_to_none=True)
        model.grl.coefficient = coefficient
        out = model.forward_heads(x)
        out["features"].retain_grad()
        domain_loss(out["domain"], labels).backward()
        trunk = torch.cat([p.grad.flatten() for p in model.backbone_parameters()])
        head = torch.cat([p.grad.flatten() for p in model.discriminator.parameters()])
        assert all(p.grad is None for p in model.classifier.parameters())  # not on the domain loss's path
        return out["features"].grad.clone(), trunk, head

    # grad_reverse(., -1) is the identity on the way back: the gradient of the loss without reversal.
    plain_features, plain_trunk, plain_head = grads(-1.0)
    # The plain gradient is that of the discriminator's loss on the (detached) features, computed apart.
    features = model.forward_features(x).detach().requires_grad_()
    domain_loss(model.discriminator(features).squeeze(-1), labels).backward()
    torch.testing.assert_close(plain_features, features.grad)

    c = dann_coefficient(2_000, 10_000)
    reversed_features, reversed_trunk, reversed_head = grads(c)
    assert plain_features.abs().sum() > 0 and plain_trunk.abs().sum() > 0
    torch.testing.assert_close(reversed_features, -c * plain_features)
    torch.testing.assert_close(reversed_trunk, -c * plain_trunk)
    assert torch.all(torch.sign(reversed_features) == -torch.sign(plain_features))
    torch.testing.assert_close(reversed_head, plain_head, rtol=0, atol=0)


# -- DANN schedule and domain loss ---------------------------------------------------------------------------


def test_dann_coefficient_by_hand() -> None:
    # EMR: alpha 10, high 1, low 0, max_iter 10,000 -> c = 2 / (1 + exp(-10 p)) - 1.
    for step in (0, 1, 100, 1_000, 5_000, 10_000, 30_000):
        p = step / 10_000
        assert dann_coefficient(step, 10_000) == pytest.approx(2 / (1 + np.exp(-10 * p)) - 1, abs=1e-12)
    assert dann_coefficient(0, 10_000) == 0.0
    assert dann_coefficient(1_000, 10_000) == pytest.approx(0.46211716, abs=1e-8)
    assert dann_coefficient(10_000, 10_000) == pytest.approx(0.99990920, abs=1e-8)
    # Not clipped at step = max_steps: it keeps rising toward `high` and never passes it.
    assert dann_coefficient(10_000, 10_000) < dann_coefficient(20_000, 10_000) < 1.0
    # General limits: low at step 0, toward high, with (h - l) scaling the ramp.
    assert dann_coefficient(0, 100, high=0.5, low=0.1) == pytest.approx(0.1)
    assert dann_coefficient(10**6, 100, high=0.5, low=0.1) == pytest.approx(0.5)
    half = dann_coefficient(50, 100, alpha=2.0, high=0.5, low=0.1)
    assert half == pytest.approx(2 * 0.4 / (1 + math.exp(-1.0)) - 0.4 + 0.1)
    steps = [dann_coefficient(s, 1_000) for s in range(0, 3_000, 50)]
    assert steps == sorted(steps)
    with pytest.raises(ValueError, match="max_steps"):
        dann_coefficient(1, 0)
    with pytest.raises(ValueError, match="step"):
        dann_coefficient(-1, 10)


def test_domain_loss_by_hand() -> None:
    logits = torch.tensor([2.0, -1.0, 0.5])
    labels = torch.tensor([MICRO_DOMAIN, MACRO_DOMAIN, MACRO_DOMAIN])
    sigmoid = 1 / (1 + np.exp(-logits.numpy().astype(np.float64)))
    expected = -(np.log(sigmoid[0]) + np.log(1 - sigmoid[1]) + np.log(1 - sigmoid[2])) / 3
    assert domain_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    assert domain_loss(logits[:, None], labels.bool()).item() == pytest.approx(expected, rel=1e-6)
    assert domain_loss(logits.bfloat16(), labels).dtype == torch.float32
    with pytest.raises(ValueError, match="one logit per sample"):
        domain_loss(torch.zeros(3, 2), labels)


# -- initialisation, parameter groups, weights ---------------------------------------------------------------


def test_heads_are_xavier_normal_with_zero_bias() -> None:
    torch.manual_seed(0)
    model = EMR(backbone="shallow", feature_dim=256)
    weight = model.fc_top[0].weight  # (256, 64): xavier std sqrt(2 / (64 + 256))
    assert weight.std().item() == pytest.approx(math.sqrt(2 / 320), rel=0.05)
    assert abs(weight.mean().item()) < 0.01
    for name in ("fc_top", "fc_bottom", "classifier", "classifier_top", "classifier_bottom", "discriminator"):
        for m in getattr(model, name).modules():
            if isinstance(m, torch.nn.Linear):
                assert torch.all(m.bias == 0), name


def test_parameter_groups_split_backbone_and_heads() -> None:
    model = EMR(backbone="shallow")
    backbone = {id(p) for p in model.backbone_parameters()}
    heads = {id(p) for p in model.head_parameters()}
    assert backbone and heads and not backbone & heads
    assert backbone | heads == {id(p) for p in model.parameters()}
    assert {id(p) for p in model.discriminator.parameters()} <= heads
    groups = model.param_groups(backbone_lr=1e-5, head_lr=1e-3)
    optimizer = torch.optim.Adam(groups, lr=1e-3, weight_decay=1e-6)
    assert [(g["name"], g["lr"], g["weight_decay"]) for g in optimizer.param_groups] == [
        ("backbone", 1e-5, 1e-6),
        ("heads", 1e-3, 1e-6),
    ]


def test_local_weights_load_into_the_backbone_only(tmp_path, no_hub) -> None:
    import timm

    torch.manual_seed(1)
    # An ImageNet-layout resnet18 file: timm's (and torchvision's) names, with its 1000-class fc.
    source = timm.create_model("resnet18", pretrained=False).state_dict()
    path = tmp_path / "resnet18_imagenet.pth"
    torch.save(source, path)
    torch.manual_seed(0)
    fresh = EMR(backbone="resnet18")
    torch.manual_seed(0)
    model = EMR(backbone="resnet18", weights=path)

    for name, tensor in model.backbone.state_dict().items():
        torch.testing.assert_close(tensor, source[name], rtol=0, atol=0, msg=name)
    report = model.weights_report
    assert report is not None and not report.missing_keys and not report.mismatched_keys
    assert sorted(report.unexpected_keys) == ["fc.bias", "fc.weight"]
    # The heads are the seeded initialisation, untouched by the file.
    for name, tensor in fresh.state_dict().items():
        if not name.startswith("backbone."):
            torch.testing.assert_close(model.state_dict()[name], tensor, rtol=0, atol=0, msg=name)

    # A whole EMR checkpoint's backbone loads too (Lightning's `net.` and the `backbone.` prefix stripped).
    ckpt = tmp_path / "emr.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in model.state_dict().items()}}, ckpt)
    again = EMR(backbone="resnet18", weights=ckpt)
    torch.testing.assert_close(again.backbone.conv1.weight, source["conv1.weight"], rtol=0, atol=0)
    assert not again.weights_report.missing_keys

    # A 3-channel stem cannot serve 5 channels: kept at init and reported, the rest loads.
    five = EMR(backbone="resnet18", in_chans=5, weights=path)
    assert [k for k, _, _ in five.weights_report.mismatched_keys] == ["conv1.weight"]
    torch.testing.assert_close(five.backbone.layer4[1].conv2.weight, source["layer4.1.conv2.weight"])


def test_missing_weights_and_hub_names_fail_before_timm_is_asked(tmp_path, monkeypatch) -> None:
    import timm

    def refuse(*args, **kwargs):
        raise AssertionError("timm.create_model was called")

    monkeypatch.setattr(timm, "create_model", refuse)
    with pytest.raises(FileNotFoundError, match="imagenet_resnet18.pth"):
        EMR(weights=tmp_path / "imagenet_resnet18.pth")
    with pytest.raises(ValueError, match="hub"):
        EMR(backbone="hf-hub:timm/resnet18.a1_in1k")
    with pytest.raises(ValueError, match="shallow"):
        EMR(backbone="shallow", zero_init_last=False)


def test_timm_kwargs_reach_timm() -> None:
    # timm zeroes each residual block's last BN scale unless told not to (EMR's ResNet does not).
    assert torch.all(EMR(backbone="test_resnet").backbone.layer1[0].bn2.weight == 0)
    assert torch.all(EMR(backbone="test_resnet", zero_init_last=False).backbone.layer1[0].bn2.weight == 1)
