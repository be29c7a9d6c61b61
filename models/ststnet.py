"""STSTNet: Shallow Triple Stream Three-dimensional CNN (Liong, Gan, See, Khor, Huang; FG 2019 / MEGC2019).

specs/models.md section 1. Input is one (N, 3, 28, 28) float32 image per video whose channels are the
onset->apex horizontal flow u, vertical flow v and optical-strain magnitude (order and scaling set by the
features config). Three parallel 3x3 conv streams with 3, 5 and 8 filters each see all input channels.

Layer table (in_chans=3, num_classes=3):

    stream k (k = 3, 5, 8 filters): conv 3x3 pad 1 -> ReLU -> BatchNorm -> max-pool 3x3/3 pad 1 -> Dropout
        (N, 3, 28, 28) -> (N, k, 28, 28) -> (N, k, 10, 10)
    concat                      (N, 16, 10, 10)
    average pool 2x2/2          (N, 16, 5, 5)      <- forward_features
    flatten -> Linear(400, 3)   (N, 3)             <- forward_head

Parameters: conv 84 + 140 + 224 = 448, BN 32, FC 1,203 -> 1,683 (1,651 with use_bn=False). The paper prints
"1670 weights and biases"; neither implementation count matches it exactly (specs/models.md section 12.1).

Attribute names (conv1..3, bn1..3, fc) follow the authors' PyTorch port (christy1206/STSTNet `main.py`),
so its 68 released per-subject `.pth` files load with `models.weights.load_weights`. That port pads its
convs by 2 instead of the paper's "same" padding (30x30 maps, still 10x10 after P1): the weights fit, the
activations are not identical.
"""

from __future__ import annotations

import torch
from torch import nn

# Filters per stream, paper Table I.
STREAM_WIDTHS = (3, 5, 8)


class STSTNet(nn.Module):
    """Three shallow conv streams over (u, v, strain), average-pooled and classified by one linear layer.

    Args:
        num_classes: K, logits per sample (3 for the MEGC2019 composite protocol).
        in_chans: channels of the input image; every stream convolves all of them.
        use_bn: the BatchNorm after each stream's ReLU (present in both official implementations, absent from
            the paper's table).
        drop_rate: dropout probability after each stream's max-pool.
    """

    def __init__(self, num_classes: int = 3, in_chans: int = 3, use_bn: bool = True, drop_rate: float = 0.5):
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        width = sum(STREAM_WIDTHS)
        self.num_features = width * 5 * 5  # 400: the flattened (16, 5, 5) map the classifier sees

        w1, w2, w3 = STREAM_WIDTHS
        self.conv1 = nn.Conv2d(in_chans, w1, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(in_chans, w2, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(in_chans, w3, kernel_size=3, padding=1)
        # Identity keeps the forward pass one code path; it has no parameters and no state_dict entries.
        self.bn1 = nn.BatchNorm2d(w1, eps=1e-5) if use_bn else nn.Identity()
        self.bn2 = nn.BatchNorm2d(w2, eps=1e-5) if use_bn else nn.Identity()
        self.bn3 = nn.BatchNorm2d(w3, eps=1e-5) if use_bn else nn.Identity()
        self.act = nn.ReLU()
        # 28 -> 10: floor((28 + 2 - 3) / 3) + 1.
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=3, padding=1)
        self.drop = nn.Dropout(drop_rate)
        self.avgpool = nn.AvgPool2d(kernel_size=2, stride=2)
        self.fc = nn.Linear(self.num_features, num_classes)

    def _stream(self, x: torch.Tensor, conv: nn.Module, bn: nn.Module) -> torch.Tensor:
        # ReLU before BN is the authors' order (MATLAB layer graph, PyTorch port), not the usual BN -> ReLU.
        return self.drop(self.maxpool(bn(self.act(conv(x)))))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, 28, 28) float32 -> (N, 16, 5, 5) pooled feature map."""
        x = torch.cat(
            [
                self._stream(x, self.conv1, self.bn1),
                self._stream(x, self.conv2, self.bn2),
                self._stream(x, self.conv3, self.bn3),
            ],
            dim=1,
        )
        return self.avgpool(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, 16, 5, 5) -> (N, 400) flattened features if `pre_logits`, else (N, num_classes) logits."""
        x = features.flatten(1)
        return x if pre_logits else self.fc(x)

    @staticmethod
    def fold_stack(nets, dropout_seed: int | None = None) -> nn.Module:
        """K of these networks as one model trained on shared batches (loso.strategy=parallel,
        training.fold_parallel): models.stacked_ststnet.StackedSTSTNet."""
        from models.stacked_ststnet import StackedSTSTNet

        return StackedSTSTNet(nets, dropout_seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, 28, 28) float32 -> (N, num_classes) logits (no softmax)."""
        return self.forward_head(self.forward_features(x))
