"""STRCN: spatiotemporal recurrent convolutional networks, the seed's "CNN with recurrent connections"
(Xia, Hong, Gao, Feng, Zhao; "Spatiotemporal Recurrent Convolutional Networks for Recognizing Spontaneous
Micro-Expressions", IEEE TMM 22(3), 2020; arXiv 1901.04656).

specs/models.md section 5a, read from the authors' MatConvNet code (xiazhaoqiang/STRCN-MicroExpressionRec,
`strcnInit.m`); written anew. One network, two ways of giving it the clip's time axis:

* STRCN-G (geometric connectivity, in_chans=2): the onset->apex flow (u, v) of EVM-magnified frames,
  (N, 2, H, W); the authors' input is 300x245.
* STRCN-A (appearance connectivity, in_chans=1): the clip's "active" pixels (a mask learned from the
  training videos) as rows and its frames as columns, one (N, 1, P, 150) image
  (datamodules.active_pixels builds it per fold).

Layers (K feature maps, C input channels, N classes; layerDepth 3 of the code):

    conv1  conv 3x3/1 pad 1, no bias -> BN -> ReLU              (K, H, W)          9CK + 2K
    pool1  max 4x4/4                                            (K, H/4, W/4)
    RCL2   recurrent convolutional layer (below)                (K, ., .)          19K^2 + 6K (unshared)
    pool2  max 4x4/4
    RCL3   as RCL2, pool3 max 2x2/2
    RCL4   as RCL2, pool4 max 2x2/2                             (K, H/64, W/64)
    gap    global average pool                                  (K,)               <- forward_features
    pred   1x1 conv = linear K -> N, with bias                  (N,)               NK + N

A recurrent convolutional layer unrolls three steps, every step adding the block's input x back:

    a = ReLU(BN1(conv1x1(x)));  s1 = a + x
    b = ReLU(BN2(conv3x3(s1)));  s2 = b + x
    out = ReLU(BN3(conv3x3'(s2)))

`share_weights=False` (default) is the released code: conv3x3 and conv3x3' are separate weights
(K^2 + 9K^2 + 9K^2 convs, no biases, 3 BNs: 19K^2 + 6K). `share_weights=True` is the paper's RCL, one
recurrent 3x3 filter bank used at both steps (10K^2 + 6K); each step keeps its own BN, since the statistics
of s1 and s2 differ (as in Liang and Hu's RCNN, which normalises every unrolled step separately).

Parameters at 3 classes: K=512: 14,963,203 (G, C=2) / 14,958,595 (A, C=1); K=256: 3,746,051 (G);
K=128: 939,139 (G): the counts of the spec. Shared weights at K=512, C=2: 7,885,315.

Choices where the spec or the code leaves room:

* Pooling floors as MatConvNet's does, so H and W must be at least 64 (4 * 4 * 2 * 2); smaller inputs are
  refused with that reason rather than pooled to an empty map.
* The code scales conv1's initial weights by 1/100 and gives them a learning-rate multiplier of 1/100^2,
  and trains BN moments at lr 0.3; neither is reproduced: conv1 feeds a BN, which undoes the scale, and
  MERLin uses one optimizer setting per network. Initialisation: kaiming normal (fan out) convs, BN 1/0,
  pred N(0, 0.01) with zero bias.
* The 1x1 `pred` conv after the global pool is an nn.Linear (the same map and count).
"""

from __future__ import annotations

import torch
from torch import nn

# pool1..pool4 of strcnInit.m at layerDepth 3: kernel = stride.
POOLS = (4, 4, 2, 2)
MIN_SIZE = 4 * 4 * 2 * 2


def _conv_bn_relu(in_chans: int, out_chans: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_chans, out_chans, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_chans),
        nn.ReLU(inplace=False),
    )


class RecurrentConvLayer(nn.Module):
    """Three unrolled steps of a recurrent convolutional layer; see the module docstring."""

    def __init__(self, maps: int, share_weights: bool = False) -> None:
        super().__init__()
        self.share_weights = share_weights
        self.feedforward = _conv_bn_relu(maps, maps, 1)
        self.step1 = _conv_bn_relu(maps, maps, 3)
        self.step2 = _conv_bn_relu(maps, maps, 3)
        if share_weights:
            # One recurrent filter bank: step2 uses step1's conv, keeps its own BN.
            del self.step2[0].weight
            self.step2[0].weight = self.step1[0].weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s1 = self.feedforward(x) + x
        s2 = self.step1(s1) + x
        return self.step2(s2)


class STRCN(nn.Module):
    """STRCN-G (in_chans=2, flow) or STRCN-A (in_chans=1, pixels x time); see the module docstring.

    num_classes: N. in_chans: C. feature_maps: K (512 in the paper). share_weights: the paper's shared
    recurrent weights instead of the released code's unshared ones.
    """

    def __init__(
        self, num_classes: int = 3, in_chans: int = 2, feature_maps: int = 512, share_weights: bool = False
    ) -> None:
        super().__init__()
        if feature_maps < 1 or in_chans < 1 or num_classes < 1:
            raise ValueError(
                f"num_classes, in_chans and feature_maps must be positive, got {num_classes}, {in_chans}, "
                f"{feature_maps}"
            )
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.feature_maps = feature_maps
        self.num_features = feature_maps
        self.conv1 = _conv_bn_relu(in_chans, feature_maps, 3)
        self.pools = nn.ModuleList(nn.MaxPool2d(size, stride=size) for size in POOLS)
        self.rcls = nn.ModuleList(RecurrentConvLayer(feature_maps, share_weights) for _ in POOLS[1:])
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.pred = nn.Linear(feature_maps, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.pred.weight, 0.0, 0.01)
        nn.init.zeros_(self.pred.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W), H and W >= 64 -> (N, K) globally pooled features."""
        if x.ndim != 4 or x.shape[1] != self.in_chans:
            raise ValueError(f"STRCN expects (N, {self.in_chans}, H, W), got {tuple(x.shape)}")
        if min(x.shape[-2:]) < MIN_SIZE:
            raise ValueError(
                f"STRCN pools by 4, 4, 2 and 2: H and W must be at least {MIN_SIZE}, "
                f"got {tuple(x.shape[-2:])}"
            )
        x = self.pools[0](self.conv1(x))
        for rcl, pool in zip(self.rcls, self.pools[1:], strict=True):
            x = pool(rcl(x))
        return self.gap(x).flatten(1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return features if pre_logits else self.pred(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, num_classes) logits (no softmax)."""
        return self.forward_head(self.forward_features(x))
