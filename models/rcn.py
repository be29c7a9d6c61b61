"""RCN-A, RCN-S, RCN-W: recurrent convolutional networks with parameter-free modules (Xia, Peng, Khor,
Feng, Zhao; "Revealing the Invisible With Model and Data Shrinking for Composite-Database Micro-Expression
Recognition", IEEE TIP 29:8590-8605, 2020).

specs/models.md section 5b. Read from the authors' PyTorch code, xiazhaoqiang/ParameterFreeRCNs-
MicroExpressionRec (`MeNets.py` classes RCN_A with model_version 3, RCN_S, RCN_W; `ModelTrain_Final.py`),
also vendored as tvaranka/meb `meb/models/RCNs.py`. Written anew here; module and attribute names follow the
authors' (`conv1`, `rcls`, `dbl`, `stream1..3`, `ffconv`, `rrconv`, `classifier`) so state_dicts trained
with their code load with `models.weights.load_weights`.

Input: one (N, 3, H, W) float32 optical-flow image per video (the authors render onset->apex flow to a PNG
and feed `ToTensor()` values in [0, 1]). The code fixes no resolution (the paper's "data shrinking" compares
several); the adaptive average pool makes every size >= 8 px (RCN-A, RCN-S) or >= 4 px (RCN-W) run. MERLin's
features are 28x28: the last map is then 6x6 (RCN-A/S) or 5x5 (RCN-W) before the pool to p x p; with p=7
the pool repeats rows of a smaller map unless H >= 32 (RCN-A/S) or 40 (RCN-W).

Shared pieces (F feature maps, p pool size, K classes, in_chans C):

    conv1 (RCN-A, RCN-S): conv 5x5/1 pad 0 -> BN -> ReLU -> max-pool 2/2 -> Dropout   (N, F, (H-4)//2, .)
        25 * C * F + F + 2F
    recurrent block `RclBlock` (RCN-A, RCN-W): y = ReLU(BN(conv1x1(x))); then twice y = f(x + y), where
        f = ReLU(BN(conv3x3 pad 1)) is one module (the recurrence shares its weights and its BN);
        max-pool 2/2 -> Dropout                                                        (N, F, ./2, ./2)
        (F*F + F + 2F) + (9*F*F + F + 2F)
    dense shortcut block `DenseBlock` (RCN-S): y = g(x) (1x1 as above); z = f(x + y); e = f(x + y + z);
        out = f(x + y + z + e), f again one shared 3x3 conv + BN + ReLU; max-pool 2/2 -> Dropout
        same count as the recurrent block
    wide expansion (RCN-W, replaces conv1): three parallel 3x3 stride-3 convs on the input, dilation 1 / 2 / 3
        (pad 1 / 2 / 3), F/2 + F/4 + F/4 filters, each conv -> ReLU -> BN -> Dropout (BN after ReLU, as in
        the code), concatenated                                                        (N, F, (H-1)//3+1, .)
        (9C * F/2 + F/2 + F) + 2 * (9C * F/4 + F/4 + F/2)
    AdaptiveAvgPool2d(p)                                                               (N, F, p, p)
    classifier Linear(p*p*F, K)                                                        K * (p*p*F + 1)

Parameter-free attention (RCN-A only, the authors' model_version 3): conv1's map, average-pooled to p x p,
is weighted by each class's classifier row reshaped to (F, p, p), averaged over channels: one class
activation map per class, each min-max normalised over its p x p positions, then averaged over classes: an
(N, 1, p, p) map in [0, 1] that multiplies the pooled block features before the classifier. It reads the
classifier's weights (gradients flow through that use too, as in the code) and adds no parameter.

`forward_features` returns the (N, F, p, p) map the classifier sees (after the attention for RCN-A);
`num_features` is its flattened size p*p*F.

Parameters at C=3, K=3 (conv1 2,496 + block 1,120 + 9,312 + classifier 2,403 at F=32, p=5):

    RCN-A  F=32, p=5: 15,331    F=64, p=7: 55,747   (specs/models.md section 5b; the attention adds 0)
    RCN-S  F=32, p=5: 15,331    F=64, p=7: 55,747   (its block has the same 1x1 and one shared 3x3)
    RCN-W  F=32, p=5: 13,795    F=64, p=7: 52,675   (streams 480 + 240 + 240 replace conv1's 2,496)

RCN-S and RCN-W counts are derived from the table above and asserted in tests/test_models.py; the spec
gives none. One deliberate difference: the authors' `DenseBlock` also builds a third 3x3 conv + BN
(`conv3`) that its forward never calls. It is left out here (it would get no gradient and only carry
unused weights); counting it, as `sum(p.numel() for p in model.parameters())` on their class does, gives
9F^2 + 3F more: 24,643 at F=32, 92,803 at F=64. Their RCN-S checkpoints load with `conv3` reported as
unexpected.

Other choices: the attention's min-max division is guarded by the dtype's smallest normal number, so a
constant map (e.g. an all-zero input in training mode) gives zero attention instead of the reference's
0/0 = NaN; otherwise the values are the reference's. Initialisation as in the code: kaiming normal (fan
out) convs, BN weight 1 / bias 0, classifier N(0, 0.01) with zero bias. `num_blocks` stacks blocks as the
code's `num_layers` does (its training script always passes 1). Training recipe
(configs/model/rcn_*.yaml): SGD momentum 0.9, lr 5e-4, batch 64, cross-entropy; see the configs for the
learning-rate schedule.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn_relu(in_chans: int, out_chans: int, kernel_size: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_chans, out_chans, kernel_size=kernel_size, padding=kernel_size // 2),
        nn.BatchNorm2d(out_chans),
        nn.ReLU(),
    )


def _downsample(drop_rate: float) -> nn.Sequential:
    return nn.Sequential(nn.MaxPool2d(kernel_size=2, stride=2), nn.Dropout(drop_rate))


class RclBlock(nn.Module):
    """Recurrent convolutional layer unrolled twice with shared weights: (N, F, h, w) -> (N, F, h/2, w/2)."""

    def __init__(self, channels: int, drop_rate: float = 0.5):
        super().__init__()
        self.ffconv = _conv_bn_relu(channels, channels, 1)
        self.rrconv = _conv_bn_relu(channels, channels, 3)
        self.downsample = _downsample(drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ffconv(x)
        # The same module twice: the recurrence is weight sharing across its two time steps.
        y = self.rrconv(x + y)
        y = self.rrconv(x + y)
        return self.downsample(y)


class DenseBlock(nn.Module):
    """Dense shortcuts (every earlier output added to the next input), one shared 3x3: (N, F, h, w) -> /2."""

    def __init__(self, channels: int, drop_rate: float = 0.5):
        super().__init__()
        self.conv1 = _conv_bn_relu(channels, channels, 1)
        self.conv2 = _conv_bn_relu(channels, channels, 3)
        self.downsample = _downsample(drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        z = self.conv2(x + y)
        e = self.conv2(x + y + z)
        return self.downsample(self.conv2(x + y + z + e))


def class_activation_attention(features: torch.Tensor, classifier_weight: torch.Tensor) -> torch.Tensor:
    """Parameter-free spatial attention from the classifier's own weights.

    Args:
        features: (N, F, p, p) pooled early features.
        classifier_weight: (K, F * p * p) the linear classifier's weight, read as K maps of (F, p, p).

    Returns:
        (N, 1, p, p): per class, the channel mean of weight * features, min-max normalised over the p x p
        positions; then the mean over the K classes. Values in [0, 1].
    """
    n, f, h, w = features.shape
    weight = classifier_weight.view(-1, f, h, w)
    cam = (weight.unsqueeze(0) * features.unsqueeze(1)).mean(dim=2)  # (N, K, p, p)
    cam = cam - cam.amin(dim=(2, 3), keepdim=True)
    # Guarded only against 0/0 on a constant map; any real range divides exactly as the reference does.
    cam = cam / cam.amax(dim=(2, 3), keepdim=True).clamp_min(torch.finfo(cam.dtype).tiny)
    return cam.mean(dim=1, keepdim=True)


class _RCN(nn.Module):
    """Common head, initialisation and checks of the RCN variants."""

    def __init__(self, num_classes: int, in_chans: int, feature_maps: int, pool_size: int, num_blocks: int):
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be at least 1, not {num_blocks}")
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.feature_maps = feature_maps
        self.pool_size = pool_size
        self.num_features = pool_size * pool_size * feature_maps
        self.avgpool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        self.classifier = nn.Linear(self.num_features, num_classes)

    def _init_weights(self) -> None:
        # The authors' initialisation; with SGD at lr 5e-4 the starting scale matters.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, F, p, p) -> (N, p*p*F) flattened if `pre_logits`, else (N, num_classes) logits."""
        x = features.flatten(1)
        return x if pre_logits else self.classifier(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) float32 flow image -> (N, num_classes) logits (no softmax)."""
        return self.forward_head(self.forward_features(x))


def _first_conv(in_chans: int, feature_maps: int, drop_rate: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_chans, feature_maps, kernel_size=5),
        nn.BatchNorm2d(feature_maps),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=2, stride=2),
        nn.Dropout(drop_rate),
    )


class RCN_A(_RCN):
    """RCN with the parameter-free attention unit: conv1 -> recurrent block(s) -> pool -> x attention -> fc.

    Args:
        num_classes: K (3 for the MEGC2019 composite protocol).
        in_chans: channels of the flow image.
        feature_maps: F, the width of every layer (32 in the README example, 64 the script default).
        pool_size: p, the side of the adaptive average pool (5 README, 7 script default).
        num_blocks: recurrent blocks stacked after conv1.
        drop_rate: dropout after conv1 and after each block.
    """

    def __init__(
        self,
        num_classes: int = 3,
        in_chans: int = 3,
        feature_maps: int = 32,
        pool_size: int = 5,
        num_blocks: int = 1,
        drop_rate: float = 0.5,
    ):
        super().__init__(num_classes, in_chans, feature_maps, pool_size, num_blocks)
        self.conv1 = _first_conv(in_chans, feature_maps, drop_rate)
        self.rcls = nn.Sequential(*(RclBlock(feature_maps, drop_rate) for _ in range(num_blocks)))
        self._init_weights()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) -> (N, F, p, p) pooled block features times the class-activation attention."""
        x = self.conv1(x)
        attention = class_activation_attention(self.avgpool(x), self.classifier.weight)
        return self.avgpool(self.rcls(x)) * attention


class RCN_S(_RCN):
    """RCN with dense shortcut block(s): conv1 -> dense block(s) -> pool -> fc. Args as `RCN_A`."""

    def __init__(
        self,
        num_classes: int = 3,
        in_chans: int = 3,
        feature_maps: int = 32,
        pool_size: int = 5,
        num_blocks: int = 1,
        drop_rate: float = 0.5,
    ):
        super().__init__(num_classes, in_chans, feature_maps, pool_size, num_blocks)
        self.conv1 = _first_conv(in_chans, feature_maps, drop_rate)
        self.dbl = nn.Sequential(*(DenseBlock(feature_maps, drop_rate) for _ in range(num_blocks)))
        self._init_weights()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) -> (N, F, p, p)."""
        return self.avgpool(self.dbl(self.conv1(x)))


def _wide_stream(in_chans: int, out_chans: int, dilation: int, drop_rate: float) -> nn.Sequential:
    # padding = dilation keeps the three dilated 3x3/3 outputs the same size, (H - 1) // 3 + 1.
    return nn.Sequential(
        nn.Conv2d(in_chans, out_chans, kernel_size=3, stride=3, padding=dilation, dilation=dilation),
        nn.ReLU(),
        nn.BatchNorm2d(out_chans),
        nn.Dropout(drop_rate),
    )


class RCN_W(_RCN):
    """RCN with wide expansion: three dilated 3x3/3 streams (F/2, F/4, F/4) -> recurrent block(s) -> fc.

    Args as `RCN_A`; feature_maps must be a multiple of 4 so that the streams add up to F.
    """

    def __init__(
        self,
        num_classes: int = 3,
        in_chans: int = 3,
        feature_maps: int = 32,
        pool_size: int = 5,
        num_blocks: int = 1,
        drop_rate: float = 0.5,
    ):
        if feature_maps % 4:
            raise ValueError(
                f"RCN_W splits F into F/2 + F/4 + F/4, so feature_maps must be a multiple of 4, "
                f"not {feature_maps}"
            )
        super().__init__(num_classes, in_chans, feature_maps, pool_size, num_blocks)
        half, quarter = feature_maps // 2, feature_maps // 4
        self.stream1 = _wide_stream(in_chans, half, 1, drop_rate)
        self.stream2 = _wide_stream(in_chans, quarter, 2, drop_rate)
        self.stream3 = _wide_stream(in_chans, quarter, 3, drop_rate)
        self.rcls = nn.Sequential(*(RclBlock(feature_maps, drop_rate) for _ in range(num_blocks)))
        self._init_weights()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) -> (N, F, p, p)."""
        x = torch.cat([self.stream1(x), self.stream2(x), self.stream3(x)], dim=1)
        return self.avgpool(self.rcls(x))
