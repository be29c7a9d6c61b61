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
    # Shapes of further forward arguments, for networks of several inputs (DSSN's second stream).
    extra_input_shapes: tuple[tuple[int, ...], ...] = ()
    has_dropout: bool = True  # STRCN has none: its train and eval outputs differ only through BN
    # AU-GACN: fit its AU graph on random AU targets first (before that it has no edges between AUs, and its
    # attention weights get no gradient).
    fit_adjacency: bool = False
    # Parameters the emotion logits legitimately do not reach: AU-GACN's AU head (trained by the joint AU
    # loss: test_au_gacn.py) and SAGPool's 1-d score weight, which PyG divides by its own norm (score =
    # act(z * w / |w|)), so its gradient is zero by construction.
    no_gradient: tuple[str, ...] = ()

    @property
    def input_shapes(self) -> tuple[tuple[int, ...], ...]:
        return (self.input_shape, *self.extra_input_shapes)

    def inputs(self, batch: int | None = None) -> list[torch.Tensor]:
        """Random inputs, one per forward argument, of the case's shapes (or `batch` rows each)."""
        return [torch.randn((batch or shape[0], *shape[1:])) for shape in self.input_shapes]


STSTNET = "models.ststnet.STSTNet"
OFF_APEXNET = "models.off_apexnet.OffApexNet"
SSSN = "models.dssn.SSSN"
DSSN = "models.dssn.DSSN"
RCN_A = "models.rcn.RCN_A"
RCN_S = "models.rcn.RCN_S"
RCN_W = "models.rcn.RCN_W"
TIMM = "models.timm_backbone.TimmBackbone"
STRCN = "models.strcn.STRCN"
AU_GACN = "models.au_gacn.AUGACN"
ELRCN_SE = "models.elrcn.ELRCN_SE"
ELRCN_TE = "models.elrcn.ELRCN_TE"
EMR = "models.emr.EMR"
ALEXNET_227 = (2, 3, 227, 227)


# STSTNet arithmetic: convs (3+5+8) * (9 * in_chans + 1), BN 2 * 16, FC 401 * num_classes.
# OFF-ApexNet arithmetic: 2,572 per stream, FC1 (784 * in_chans + 1) * 1024, FC2 1,049,600, head 1025 * K.
# SSSN/DSSN arithmetic: 342,400 per stream (conv1 96 * 121 * in_chans + 96, conv2 307,456), head 57,601 * K
#   (115,201 * K for concat).
# RCN arithmetic (C = 3 inputs, K = 3): conv1 25CF + 3F, block (F^2 + 3F) + (9F^2 + 3F), classifier
#   K(p^2 F + 1); RCN-W replaces conv1 by 9C(F/2) + 3F/2 + 2 (9C(F/4) + 3F/4).
# STRCN arithmetic (K maps, C inputs, N classes): conv1 9CK + 2K, three RCLs of 19K^2 + 6K (10K^2 + 6K with
#   shared weights), pred NK + N; the K=512 counts of the spec are checked without a forward pass below.
# AU-GACN arithmetic (C inputs, D trunk width, d node width, A AUs, K classes, 4 heads): 2-D trunk 9C(D/4) +
#   9(D/4)(D/2) + 9(D/2)D convs + 2(D/4 + D/2 + D) BN (27 per weight for the 3-D trunk); AU queries AD; node
#   projection Dd + d; GATConv 4d*d + 2*4d + d; GCNConv d*d + d; AU head d + 1; SAGPool's GCNConv d + 1 and 1;
#   head (D + 2d)K + K.
# ELRCN arithmetic: VGG-16 at width w (channels 64w..512w, fc 4096w), LSTM 4U(D + U) + 8U (two biases),
#   Dense(128w), head; each VGG keeps its frame head (fc7 -> K) for stage one. Paper sizes on the meta device
#   below; the rows here run at 1/16 width on 32x32 steps.
# timm resnet18: 11,176,512 without its fc, + 513 * K; the 7x7 stem has 64 * 49 weights per input channel.
#   Its rows pass zero_init_last=False (a timm kwarg): timm zeroes each residual block's last BN scale, which
#   leaves the block's other weights without gradient at initialisation; drop_rate > 0 for the dropout check.
def _elrcn_count(in_chans, width: float, classes: int) -> int:
    """ELRCN's parameters by the arithmetic of models/elrcn.py (PyTorch's two LSTM biases)."""
    scale = lambda v: max(1, round(v * width))  # noqa: E731
    streams = [in_chans] if isinstance(in_chans, int) else list(in_chans)
    total, frame_dim = 0, 0
    for chans in streams:
        previous = chans
        for item in (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512):
            total += 9 * previous * scale(item) + scale(item)
            previous = scale(item)
        hidden = scale(4096)
        total += (previous * 49 + 1) * hidden + (hidden + 1) * hidden + (hidden + 1) * classes
        frame_dim += hidden
    units = scale(3000)
    total += 4 * units * (frame_dim + units) + 8 * units
    return total + (units + 1) * scale(128) + (scale(128) + 1) * classes


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
    ModelCase(
        "sssn",
        SSSN,
        {"num_classes": 5},
        ALEXNET_227,
        630_405,
        (2, 5),
        (2, 256, 15, 15),
        "specs/models.md s3 (seed: 0.63 M)",
    ),
    ModelCase(
        "dssn-add",
        DSSN,
        {"num_classes": 5, "merge": "add"},
        ALEXNET_227,
        972_805,
        (2, 5),
        (2, 256, 15, 15),
        "specs/models.md s3 (seed: 0.97 M)",
        extra_input_shapes=(ALEXNET_227,),
    ),
    ModelCase(
        "dssn-multiply",
        DSSN,
        {"num_classes": 5, "merge": "multiply"},
        ALEXNET_227,
        972_805,
        (2, 5),
        (2, 256, 15, 15),
        "specs/models.md s3",
        extra_input_shapes=(ALEXNET_227,),
    ),
    ModelCase(
        "dssn-concat",
        DSSN,
        {"num_classes": 5, "merge": "concat"},
        ALEXNET_227,
        1_260_805,
        (2, 5),
        (2, 512, 15, 15),
        "specs/models.md s3",
        extra_input_shapes=(ALEXNET_227,),
    ),
    ModelCase(
        "dssn-add-flow-and-1-chan-strain",
        DSSN,
        {"num_classes": 5, "in_chans": (3, 1)},
        ALEXNET_227,
        972_805 - 96 * 121 * 2,
        (2, 5),
        (2, 256, 15, 15),
        "s3 arithmetic: stream b's conv1 loses two 11x11 input slices",
        extra_input_shapes=((2, 1, 227, 227),),
    ),
    ModelCase(
        "rcn_a",
        RCN_A,
        {},
        (2, 3, 28, 28),
        15_331,
        (2, 3),
        (2, 32, 5, 5),
        "specs/models.md s5b (F=32, p=5)",
    ),
    ModelCase(
        "rcn_a-f64-p7-64px",
        RCN_A,
        {"feature_maps": 64, "pool_size": 7},
        (2, 3, 64, 64),
        55_747,
        (2, 3),
        (2, 64, 7, 7),
        "specs/models.md s5b (F=64, p=7, the script's defaults)",
    ),
    ModelCase(
        "rcn_s",
        RCN_S,
        {},
        (2, 3, 28, 28),
        15_331,
        (2, 3),
        (2, 32, 5, 5),
        "s5b arithmetic, models/rcn.py table (authors' unused conv3 left out: 24,643 with it)",
    ),
    ModelCase(
        "rcn_s-f64-p7-64px",
        RCN_S,
        {"feature_maps": 64, "pool_size": 7},
        (2, 3, 64, 64),
        55_747,
        (2, 3),
        (2, 64, 7, 7),
        "s5b arithmetic: 4,992 + 4,288 + 37,056 + 9,411",
    ),
    ModelCase(
        "rcn_w",
        RCN_W,
        {},
        (2, 3, 28, 28),
        13_795,
        (2, 3),
        (2, 32, 5, 5),
        "s5b arithmetic: streams 480 + 240 + 240, block 10,432, classifier 2,403",
    ),
    ModelCase(
        "rcn_w-f64-p7-64px",
        RCN_W,
        {"feature_maps": 64, "pool_size": 7},
        (2, 3, 64, 64),
        52_675,
        (2, 3),
        (2, 64, 7, 7),
        "s5b arithmetic: streams 960 + 480 + 480, block 41,344, classifier 9,411",
    ),
    ModelCase(
        "strcn_g-k32",
        STRCN,
        {"feature_maps": 32},
        (2, 2, 64, 72),
        59_683,
        (2, 3),
        (2, 32),
        "s5a arithmetic: 640 + 3 * 19,648 + 99",
        has_dropout=False,
    ),
    ModelCase(
        "strcn_a-k32-shared",
        STRCN,
        {"feature_maps": 32, "in_chans": 1, "share_weights": True},
        (2, 1, 96, 150),
        352 + 3 * 10_432 + 99,
        (2, 3),
        (2, 32),
        "s5a arithmetic, the paper's shared recurrent 3x3: 352 + 3 * 10,432 + 99",
        has_dropout=False,
    ),
    ModelCase(
        "au_gacn-2d",
        AU_GACN,
        {"trunk": "2d", "width": 64, "node_dim": 64, "num_aus": 16},
        (2, 3, 28, 28),
        23_696 + 1_024 + 4_160 + 16_960 + 4_160 + 65 + 66 + 579,  # 50,710
        (2, 3),
        (2, 64 + 128),
        "s6 reconstruction, models/au_gacn.py arithmetic",
        fit_adjacency=True,
        no_gradient=("au_head.weight", "au_head.bias", "pool.select.weight"),
    ),
    ModelCase(
        "au_gacn-3d-sequence",
        AU_GACN,
        {"trunk": "3d", "in_chans": 2, "width": 32, "node_dim": 16, "num_aus": 8, "num_classes": 5},
        (2, 6, 2, 24, 24),
        (2 * 8 * 27 + 8 * 16 * 27 + 16 * 32 * 27 + 2 * 56)
        + 8 * 32
        + (32 * 16 + 16)
        + (16 * 64 + 2 * 64 + 16)
        + (16 * 16 + 16)
        + 17
        + 18
        + (64 * 5 + 5),
        (2, 5),
        (2, 32 + 32),
        "s6 reconstruction, models/au_gacn.py arithmetic (3-D trunk: 27 weights per kernel)",
        fit_adjacency=True,
        no_gradient=("au_head.weight", "au_head.bias", "pool.select.weight"),
    ),
    ModelCase(
        "elrcn_se-w1/16",
        ELRCN_SE,
        {"in_chans": 4, "width": 0.0625, "training": "end_to_end"},
        (2, 3, 4, 32, 32),
        _elrcn_count(4, 1 / 16, 5),
        (2, 5),
        (2, 8),
        "s4 arithmetic at 1/16 width (models/elrcn.py)",
        no_gradient=("cnns.0.frame_head.weight", "cnns.0.frame_head.bias"),  # stage one's head only
    ),
    ModelCase(
        "elrcn_te-w1/16",
        ELRCN_TE,
        {"in_chans": (3, 1), "width": 0.0625, "training": "end_to_end", "num_classes": 3},
        (2, 3, 3, 32, 32),
        _elrcn_count((3, 1), 1 / 16, 3),
        (2, 3),
        (2, 8),
        "s4 arithmetic at 1/16 width, two streams",
        extra_input_shapes=((2, 3, 1, 32, 32),),
        no_gradient=tuple(f"cnns.{i}.frame_head.{k}" for i in (0, 1) for k in ("weight", "bias")),
    ),
    ModelCase(
        "emr-shallow",
        EMR,
        {"backbone": "shallow"},
        (2, 3, 28, 28),
        43_162,
        (2, 3),
        (2, 128),
        "s7a heads on the shallow CPU trunk, models/emr.py arithmetic (resnet18: tests/test_emr.py)",
        # The auxiliary and domain heads are trained by the EMR recipe's losses, not by the main logits.
        no_gradient=tuple(
            f"{m}.{k}"
            for m in ("classifier_top", "classifier_bottom", *(f"discriminator.{i}" for i in (0, 3, 6)))
            for k in ("weight", "bias")
        ),
    ),
    # The generic checks run a tiny timm network (timm's own `test_resnet`, 372,979 parameters at 3 classes)
    # so they stay quick; resnet18's counts are checked without a forward pass below.
    ModelCase(
        "timm-test_resnet",
        TIMM,
        {"name": "test_resnet", "drop_rate": 0.5, "zero_init_last": False},
        (2, 3, 64, 64),
        372_979,
        (2, 3),
        (2, 96),
        "timm test_resnet: counted by timm; test_timm_backbone_is_timm_itself: the wrapper adds nothing",
    ),
    ModelCase(
        "timm-test_resnet-5-chans",
        TIMM,
        {"name": "test_resnet", "in_chans": 5, "drop_rate": 0.5, "zero_init_last": False},
        (2, 5, 64, 64),
        372_979 + 16 * 9 * 2,
        (2, 3),
        (2, 96),
        "timm test_resnet: two more 3x3 input slices of its 16 stem filters",
    ),
]


def build(case: ModelCase) -> torch.nn.Module:
    module_name, class_name = case.target.rsplit(".", 1)
    model = getattr(importlib.import_module(module_name), class_name)(**case.kwargs)
    if case.fit_adjacency:
        g = torch.Generator().manual_seed(0)
        au = (torch.rand(64, model.num_aus, generator=g) < 0.4).float()
        model.fit_adjacency(au, torch.ones_like(au, dtype=torch.bool))
    return model


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: c.id)
def test_parameter_count(case: ModelCase) -> None:
    assert count_params(build(case)) == case.params, case.source


@pytest.mark.parametrize(
    ("in_chans", "params"),
    # 11,689,512 at 1000 classes, less 513 * 997; each more input channel adds a 7x7 slice to 64 filters.
    [(3, 11_176_512 + 513 * 3), (5, 11_176_512 + 513 * 3 + 64 * 49 * 2)],
)
def test_timm_resnet18_counts(in_chans: int, params: int) -> None:
    from models.timm_backbone import TimmBackbone

    assert count_params(TimmBackbone(num_classes=3, in_chans=in_chans, name="resnet18")) == params


@pytest.mark.parametrize(
    ("kwargs", "params"),
    [
        ({}, 14_963_203),  # STRCN-G, specs/models.md s5a
        ({"in_chans": 1}, 14_958_595),  # STRCN-A
        ({"feature_maps": 256}, 3_746_051),
        ({"feature_maps": 128}, 939_139),
        ({"share_weights": True}, 10_240 + 3 * (10 * 512**2 + 6 * 512) + 1_539),  # 7,885,315
    ],
)
def test_strcn_paper_counts(kwargs: dict, params: int) -> None:
    from models.strcn import STRCN

    assert count_params(STRCN(num_classes=3, **kwargs)) == params


@pytest.mark.parametrize(
    ("cls", "kwargs", "params"),
    [
        # specs/models.md s4: SE-4ch 219,809,893 and TE-2 403,221,861 (Keras, one LSTM bias), + 12,000 with
        # PyTorch's two, + 20,485 per stream for the stage-one frame head the spec counts apart.
        ("ELRCN_SE", {}, 219_809_893 + 12_000 + 20_485),
        ("ELRCN_SE", {"keras_lstm_bias": True}, 219_809_893 + 20_485),
        ("ELRCN_SE", {"in_chans": 5}, 219_809_893 + 12_000 + 20_485 + 64 * 9),
        ("ELRCN_TE", {}, 403_221_861 + 12_000 + 2 * 20_485),
        ("ELRCN_TE", {"keras_lstm_bias": True}, 403_221_861 + 2 * 20_485),
    ],
)
def test_elrcn_paper_counts(cls: str, kwargs: dict, params: int) -> None:
    import models.elrcn

    with torch.device("meta"):  # 220 M / 403 M parameters: counted, never allocated
        model = getattr(models.elrcn, cls)(num_classes=5, **kwargs)
    assert count_params(model) == params
    assert _elrcn_count(model.in_chans, 1.0, 5) == params + (12_000 if kwargs.get("keras_lstm_bias") else 0)


def test_elrcn_two_stage_training_trains_the_cnn_then_the_lstm() -> None:
    from models.elrcn import ELRCN_SE

    torch.manual_seed(0)
    model = ELRCN_SE(num_classes=3, in_chans=2, width=1 / 16, cnn_epochs=2).train()
    x, y = torch.randn(4, 5, 2, 32, 32), torch.tensor([0, 1, 2, 0])
    model.set_epoch(1)
    logits, target = model.training_logits(x, y=y)
    assert logits.shape == (20, 3) and target.tolist() == y.repeat_interleave(5).tolist()  # frame labels
    logits.sum().backward()
    assert model.cnns[0].frame_head.weight.grad is not None and model.lstm.weight_ih_l0.grad is None
    model.zero_grad(set_to_none=True)
    model.set_epoch(2)
    logits, target = model.training_logits(x, y=y)
    assert logits.shape == (4, 3) and torch.equal(target, y)
    logits.sum().backward()
    assert model.lstm.weight_ih_l0.grad is not None
    assert all(p.grad is None for p in model.cnns[0].parameters())  # the VGG is frozen in stage two
    with pytest.raises(ValueError, match=r"sequences \(N, T, 2, H, W\)"):
        model(torch.randn(4, 2, 32, 32))


def test_strcn_shared_weights_are_one_tensor_and_inputs_are_checked() -> None:
    from models.strcn import STRCN

    shared, unshared = STRCN(feature_maps=8, share_weights=True), STRCN(feature_maps=8)
    for rcl in shared.rcls:
        assert rcl.step1[0].weight is rcl.step2[0].weight and rcl.step1[1] is not rcl.step2[1]
    for rcl in unshared.rcls:
        assert rcl.step1[0].weight is not rcl.step2[0].weight
    with pytest.raises(ValueError, match="at least 64"):
        shared(torch.zeros(1, 2, 63, 100))
    with pytest.raises(ValueError, match=r"expects \(N, 2, H, W\)"):
        shared(torch.zeros(1, 3, 64, 64))


@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: c.id)
def test_shapes(case: ModelCase) -> None:
    torch.manual_seed(0)
    model = build(case).eval()
    xs = case.inputs()
    features = model.forward_features(*xs)
    assert features.shape == case.features_shape
    assert model.forward_head(features, pre_logits=True).shape == (case.input_shape[0], model.num_features)
    logits = model(*xs)
    assert logits.shape == case.output_shape
    assert logits.dtype == torch.float32
    torch.testing.assert_close(model.forward_head(features), logits)


@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: c.id)
def test_gradients_reach_every_parameter(case: ModelCase) -> None:
    torch.manual_seed(0)
    model = build(case).train()
    # Batch of 8 so that ReLU, max-pool and dropout leave every filter some path to the loss.
    model(*case.inputs(batch=8)).square().sum().backward()
    dead = [
        name
        for name, p in model.named_parameters()
        if (p.grad is None or not p.grad.abs().sum() > 0) and name not in case.no_gradient
    ]
    assert not dead, f"no gradient reached {dead}"


@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: c.id)
def test_eval_mode_is_deterministic(case: ModelCase) -> None:
    torch.manual_seed(0)
    model = build(case)
    xs = case.inputs()
    model.eval()
    with torch.no_grad():
        first, second = model(*xs), model(*xs)
    assert torch.equal(first, second)
    if not case.has_dropout:
        return
    # Dropout must be live in train mode, or the eval check above proves nothing.
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(*xs), model(*xs))


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


def test_sssn_dssn_three_class_counts() -> None:
    """specs/models.md s3 at 3 classes (the 5-class counts are rows of MODEL_CASES)."""
    from models.dssn import DSSN, SSSN

    assert count_params(SSSN(num_classes=3)) == 515_203
    assert count_params(DSSN(num_classes=3, merge="add")) == 857_603
    assert count_params(DSSN(num_classes=3, merge="multiply")) == 857_603
    assert count_params(DSSN(num_classes=3, merge="concat")) == 1_030_403


def test_shallow_alexnet_layout() -> None:
    """Grouped conv2 (2 x 48 input channels), Caffe LRN, and the zero-padded border of the 15x15 map."""
    from models.dssn import SSSN

    model = SSSN().eval()
    stream = model.stream
    assert stream.conv1.weight.shape == (96, 3, 11, 11) and stream.conv1.stride == (4, 4)
    assert stream.conv2.weight.shape == (256, 48, 5, 5) and stream.conv2.groups == 2
    assert (stream.lrn.size, stream.lrn.alpha, stream.lrn.beta, stream.lrn.k) == (5, 1e-4, 0.75, 2.0)
    with torch.no_grad():
        features = model.forward_features(torch.rand(2, 3, 227, 227))
    border = torch.ones(15, 15, dtype=torch.bool)
    border[1:-1, 1:-1] = False
    assert torch.all(features[..., border] == 0)
    assert features[..., ~border].abs().sum() > 0
    # The mean buffer is a constant, not state: no state_dict entry, so the counts and checkpoints agree.
    assert "stream.mean" not in model.state_dict()


def test_sssn_mean_subtract_matches_the_keras_lambda() -> None:
    from models.dssn import IMAGENET_MEAN_255, SSSN

    torch.manual_seed(0)
    plain = SSSN().eval()
    inside = SSSN(mean_subtract=True).eval()
    inside.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 227, 227) * 255
    expected = plain.forward_features((x - torch.tensor(IMAGENET_MEAN_255).view(1, 3, 1, 1)) / 255)
    torch.testing.assert_close(inside.forward_features(x), expected)
    with pytest.raises(ValueError, match="in_chans=1"):
        SSSN(in_chans=1, mean_subtract=True)


def test_dssn_streams_are_independent_and_see_their_own_input() -> None:
    from models.dssn import DSSN

    model = DSSN(in_chans=(3, 1)).eval()
    assert model.stream_a.conv1.weight.data_ptr() != model.stream_b.conv1.weight.data_ptr()
    seen = {}
    model.stream_a.register_forward_hook(lambda m, args, out: seen.__setitem__("a", (args[0], out)))
    model.stream_b.register_forward_hook(lambda m, args, out: seen.__setitem__("b", (args[0], out)))
    x_a, x_b = torch.randn(2, 3, 227, 227), torch.randn(2, 1, 227, 227)
    with torch.no_grad():
        features = model.forward_features(x_a, x_b)
    assert seen["a"][0] is x_a and seen["b"][0] is x_b
    torch.testing.assert_close(features, seen["a"][1] + seen["b"][1], rtol=0, atol=0)


@pytest.mark.parametrize("merge", ["multiply", "concat"])
def test_dssn_merges(merge: str) -> None:
    from models.dssn import DSSN

    torch.manual_seed(0)
    model = DSSN(merge=merge).eval()
    x_a, x_b = torch.randn(2, 3, 227, 227), torch.randn(2, 3, 227, 227)
    with torch.no_grad():
        a, b = model.stream_a(x_a), model.stream_b(x_b)
        features = model.forward_features(x_a, x_b)
        if merge == "multiply":
            torch.testing.assert_close(features, a * b, rtol=0, atol=0)
        else:
            # Channel-stacked maps flatten to the authors' concatenation of the two flattened maps.
            flat = torch.cat([a.flatten(1), b.flatten(1)], dim=1)
            torch.testing.assert_close(model.forward_head(features, pre_logits=True), flat, rtol=0, atol=0)


def test_dssn_rejects_bad_settings() -> None:
    from models.dssn import DSSN

    with pytest.raises(ValueError, match="merge"):
        DSSN(merge="max")
    with pytest.raises(ValueError, match="two"):
        DSSN(in_chans=(3, 3, 1))


def fake_alexnet(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors in the paper's (Caffe) AlexNet layout, with the layers the stream does not use."""
    g = torch.Generator().manual_seed(seed)
    shapes = {
        "conv1.weight": (96, 3, 11, 11),
        "conv1.bias": (96,),
        "conv2.weight": (256, 48, 5, 5),
        "conv2.bias": (256,),
        "conv3.weight": (384, 256, 3, 3),
        "fc8.bias": (1000,),
    }
    return {k: torch.randn(shape, generator=g) for k, shape in shapes.items()}


def test_alexnet_weights_load_into_every_stream(tmp_path) -> None:
    from models.dssn import DSSN, SSSN

    state = fake_alexnet()
    path = tmp_path / "bvlc_alexnet.pth"
    torch.save(state, path)
    torch.manual_seed(0)
    head_before = SSSN().head.weight.clone()
    torch.manual_seed(0)
    model = SSSN(weights=path)
    for name in ("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"):
        torch.testing.assert_close(model.stream.state_dict()[name], state[name], rtol=0, atol=0)
    # Only the stream comes from the file; the head is the seeded initialisation.
    torch.testing.assert_close(model.head.weight, head_before, rtol=0, atol=0)

    dssn = DSSN(in_chans=(3, 1), weights=path)
    torch.testing.assert_close(dssn.stream_a.conv2.weight, state["conv2.weight"], rtol=0, atol=0)
    torch.testing.assert_close(dssn.stream_b.conv2.weight, state["conv2.weight"], rtol=0, atol=0)
    # A one-channel stream gets the RGB filters summed, so a grey image gives the same response.
    torch.testing.assert_close(dssn.stream_b.conv1.weight, state["conv1.weight"].sum(1, keepdim=True))
    assert dssn.stream_a.conv1.weight.data_ptr() != dssn.stream_b.conv1.weight.data_ptr()


def test_alexnet_weights_in_keras_layout(tmp_path) -> None:
    """The authors' Keras names: conv_1, and conv2 as two 128-filter halves (conv_2_1, conv_2_2)."""
    from models.dssn import SSSN

    state = fake_alexnet()
    keras = {
        "model.conv_1.weight": state["conv1.weight"],
        "model.conv_1.bias": state["conv1.bias"],
        "model.conv_2_1.weight": state["conv2.weight"][:128],
        "model.conv_2_1.bias": state["conv2.bias"][:128],
        "model.conv_2_2.weight": state["conv2.weight"][128:],
        "model.conv_2_2.bias": state["conv2.bias"][128:],
        "model.conv_3.weight": state["conv3.weight"],
    }
    path = tmp_path / "alexnet_keras.pt"
    torch.save(keras, path)
    model = SSSN(weights=path)
    torch.testing.assert_close(model.stream.conv2.weight, state["conv2.weight"], rtol=0, atol=0)
    torch.testing.assert_close(model.stream.conv2.bias, state["conv2.bias"], rtol=0, atol=0)
    torch.testing.assert_close(model.stream.conv1.weight, state["conv1.weight"], rtol=0, atol=0)


def test_torchvision_alexnet_is_refused_with_the_reason(tmp_path) -> None:
    """torchvision's AlexNet has 64 / 192 filters and an ungrouped conv2: it cannot fit the paper's stream."""
    from models.dssn import DSSN

    torchvision_layout = {
        "features.0.weight": torch.zeros(64, 3, 11, 11),
        "features.0.bias": torch.zeros(64),
        "features.3.weight": torch.zeros(192, 64, 5, 5),
        "features.3.bias": torch.zeros(192),
        "classifier.6.weight": torch.zeros(1000, 4096),
    }
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(torchvision_layout, path)
    with pytest.raises(ValueError, match="torchvision") as info:
        DSSN(weights=path)
    message = str(info.value)
    assert str(path) in message and "[64, 3, 11, 11]" in message and "[256, 48, 5, 5]" in message


def test_alexnet_weights_of_other_shapes_or_names_are_refused(tmp_path) -> None:
    from models.dssn import SSSN

    state = fake_alexnet()
    state["conv2.weight"] = torch.zeros(256, 96, 5, 5)  # an ungrouped conv2
    path = tmp_path / "ungrouped.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"conv2.weight \[256, 96, 5, 5\] \(expected \[256, 48, 5, 5\]\)"):
        SSSN(weights=path)

    path = tmp_path / "resnet.pth"
    torch.save({"layer1.0.conv1.weight": torch.zeros(64, 64, 3, 3)}, path)
    with pytest.raises(ValueError, match="resnet.pth holds no AlexNet"):
        SSSN(weights=path)

    with pytest.raises(FileNotFoundError, match="no_such_alexnet.pth"):
        SSSN(weights=tmp_path / "no_such_alexnet.pth")


def test_rcn_attention_is_the_class_activation_map() -> None:
    """Per class: channel mean of weight * features, min-max normalised over positions; then class mean."""
    from models.rcn import class_activation_attention

    torch.manual_seed(0)
    features, weight = torch.randn(4, 8, 5, 5), torch.randn(3, 8 * 5 * 5)
    maps = []
    for k in range(3):
        cam = (weight[k].view(8, 5, 5) * features).mean(dim=1)  # (4, 5, 5)
        low = cam.flatten(1).min(1).values.view(4, 1, 1)
        high = (cam - low).flatten(1).max(1).values.view(4, 1, 1)
        maps.append((cam - low) / high)
    expected = torch.stack(maps, dim=1).mean(dim=1, keepdim=True)
    attention = class_activation_attention(features, weight)
    assert attention.shape == (4, 1, 5, 5)
    torch.testing.assert_close(attention, expected)
    assert attention.min() >= 0 and attention.max() <= 1
    # A constant map (dead features) gives zero attention, not the reference's 0 / 0.
    assert torch.equal(class_activation_attention(torch.zeros(2, 8, 5, 5), weight), torch.zeros(2, 1, 5, 5))


def test_rcn_a_multiplies_its_features_by_the_attention() -> None:
    from models.rcn import RCN_A, class_activation_attention

    torch.manual_seed(0)
    model = RCN_A().eval()
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        early = model.conv1(x)
        expected = model.avgpool(model.rcls(early)) * class_activation_attention(
            model.avgpool(early), model.classifier.weight
        )
        torch.testing.assert_close(model.forward_features(x), expected, rtol=0, atol=0)
    # Zero input in training mode (BN of a constant is 0, so every feature is dead): still finite.
    assert torch.isfinite(model.train()(torch.zeros(4, 3, 28, 28))).all()


def test_rcn_recurrence_shares_one_3x3_conv() -> None:
    from models.rcn import RCN_A, RCN_S, RCN_W

    calls = []
    for model, block in ((RCN_A(), "rcls"), (RCN_W(), "rcls"), (RCN_S(), "dbl")):
        first = getattr(model, block)[0]
        convs = [m for m in first.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
        assert len(convs) == 1, type(model).__name__
        calls.clear()
        handle = convs[0].register_forward_hook(lambda *args: calls.append(1))
        model(torch.randn(2, 3, 28, 28))
        handle.remove()
        # RCN-A/W: two recurrent steps; RCN-S: z, e and the output.
        assert len(calls) == (3 if block == "dbl" else 2), type(model).__name__


def test_rcn_state_dict_names_follow_the_authors_code() -> None:
    """xiazhaoqiang/ParameterFreeRCNs-MicroExpressionRec MeNets.py names, so their state_dicts load."""
    from models.rcn import RCN_A, RCN_W

    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    expected = {"conv1.0.weight", "conv1.0.bias", *(f"conv1.1.{n}" for n in bn)}
    for part in ("ffconv", "rrconv"):
        expected |= {
            f"rcls.0.{part}.0.weight",
            f"rcls.0.{part}.0.bias",
            *(f"rcls.0.{part}.1.{n}" for n in bn),
        }
    expected |= {"classifier.weight", "classifier.bias"}
    assert set(RCN_A().state_dict()) == expected
    wide = {k for k in RCN_W().state_dict() if k.startswith("stream")}
    assert {k for k in wide if k.endswith("weight")} == {
        f"stream{i}.{j}.weight" for i in (1, 2, 3) for j in (0, 2)
    }  # conv, ReLU, BN: BN after the ReLU as in the code


@pytest.mark.parametrize("size", [28, 29, 30, 64])
def test_rcn_w_streams_agree_in_size(size: int) -> None:
    from models.rcn import RCN_W

    model = RCN_W().eval()
    x = torch.randn(1, 3, size, size)
    side = (size - 1) // 3 + 1
    shapes = [tuple(model.stream1(x).shape), tuple(model.stream2(x).shape), tuple(model.stream3(x).shape)]
    assert shapes == [(1, 16, side, side), (1, 8, side, side), (1, 8, side, side)]
    assert model(x).shape == (1, 3)


def test_rcn_w_needs_a_width_divisible_by_4() -> None:
    from models.rcn import RCN_W

    with pytest.raises(ValueError, match="multiple of 4"):
        RCN_W(feature_maps=30)


def test_rcn_smallest_inputs_run() -> None:
    from models.rcn import RCN_A, RCN_S, RCN_W

    for model, size in ((RCN_A(), 8), (RCN_S(), 8), (RCN_W(), 4)):
        assert model.eval()(torch.randn(1, 3, size, size)).shape == (1, 3)


def test_timm_backbone_is_timm_itself() -> None:
    """Same parameters and logits as the timm model it wraps; features are timm's pre-logits."""
    import timm

    from models.timm_backbone import TimmBackbone

    torch.manual_seed(0)
    model = TimmBackbone(num_classes=3, in_chans=5).eval()
    assert count_params(model) == count_params(timm.create_model("resnet18", num_classes=3, in_chans=5))
    assert model.num_features == 512
    x = torch.randn(2, 5, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.model(x), rtol=0, atol=0)
        pooled = model.model.forward_features(x).mean(dim=(2, 3))
        torch.testing.assert_close(model.forward_features(x), pooled)


@pytest.fixture
def no_hub(monkeypatch):
    """Make any attempt of timm to reach the hub or a URL fail the test."""
    import timm.models._builder as builder

    def refuse(*args, **kwargs):
        raise AssertionError("timm tried to download weights")

    for name in ("load_state_dict_from_hf", "load_state_dict_from_url", "download_cached_file"):
        monkeypatch.setattr(builder, name, refuse)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_timm_local_weights_load_with_another_head_and_in_chans(tmp_path, no_hub, suffix) -> None:
    import timm

    from models.timm_backbone import TimmBackbone

    torch.manual_seed(1)
    source = timm.create_model("resnet18", num_classes=10).state_dict()
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".safetensors":
        safetensors_torch = pytest.importorskip("safetensors.torch")
        safetensors_torch.save_file(source, str(path))
    else:
        torch.save(source, path)
    torch.manual_seed(0)
    model = TimmBackbone(num_classes=4, in_chans=5, name="resnet18", weights=path)
    net = model.model
    torch.testing.assert_close(net.layer3[1].conv2.weight, source["layer3.1.conv2.weight"], rtol=0, atol=0)
    torch.testing.assert_close(net.bn1.running_var, source["bn1.running_var"], rtol=0, atol=0)
    # timm's stem adaptation: the RGB filters tiled over 5 channels and scaled by 3 / 5.
    assert net.conv1.weight.shape == (64, 5, 7, 7)
    torch.testing.assert_close(net.conv1.weight[:, :3], source["conv1.weight"] * 3 / 5)
    # A 10-class head cannot serve 4 classes: a fresh one.
    assert net.fc.weight.shape == (4, 512)
    assert model(torch.randn(2, 5, 64, 64)).shape == (2, 4)


def test_timm_missing_weights_fail_before_timm_is_asked(tmp_path, monkeypatch) -> None:
    import timm

    from models.timm_backbone import TimmBackbone

    def refuse(*args, **kwargs):
        raise AssertionError("timm.create_model was called for a missing weights file")

    monkeypatch.setattr(timm, "create_model", refuse)
    with pytest.raises(FileNotFoundError, match="imagenet_resnet18.pth"):
        TimmBackbone(weights=tmp_path / "imagenet_resnet18.pth")
    with pytest.raises(ValueError, match="hub"):
        TimmBackbone(name="hf-hub:timm/resnet18.a1_in1k")


def test_model_configs_name_one_input_per_forward_argument() -> None:
    """`inputs:` (default [x]) lists exactly the tensors the network's forward takes, in order."""
    import inspect

    for name, target in model_config_targets().items():
        cfg = OmegaConf.load(ROOT / "configs" / "model" / name)
        inputs = list(cfg.get("inputs") or ["x"])
        module_name, class_name = target.rsplit(".", 1)
        forward = getattr(importlib.import_module(module_name), class_name).forward
        arguments = [p for p in inspect.signature(forward).parameters.values() if p.name != "self"]
        if any(a.kind is inspect.Parameter.VAR_POSITIONAL for a in arguments):  # forward(*streams): ELRCN
            named = [a for a in arguments if a.kind is not inspect.Parameter.VAR_POSITIONAL]
            assert len(inputs) >= len(named), f"{name}: inputs {inputs} vs forward{[a.name for a in named]}"
        else:
            assert len(inputs) == len(arguments), (
                f"{name}: inputs {inputs} vs forward{[a.name for a in arguments]}"
            )
        assert len(set(inputs)) == len(inputs), name


def model_config_targets() -> dict[str, str]:
    """{config file name: net._target_} for every configs/model/*.yaml, interpolations left unresolved."""
    targets = {}
    for path in sorted((ROOT / "configs" / "model").glob("*.yaml")):
        cfg = OmegaConf.load(path)
        if cfg.get("recipe") == "svm":  # a closed-form model (models/svm.py): no network to count
            continue
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
