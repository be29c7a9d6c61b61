"""OFF-ApexNet (Gan, Liong, Yau, Huang, Tan; Signal Processing: Image Communication 74:129-139, 2019).

specs/models.md section 2. Input is (N, 2, 28, 28) float32: the onset->apex horizontal (u) and vertical (v)
optical flow. Each input channel gets its own LeNet-like stream (weights not shared), the streams are
concatenated and classified by two 1024-unit fully connected layers.

Layer table (per stream, then shared head; in_chans=2, num_classes=3):

    stream: conv 6x5x5 pad 2 + ReLU -> max-pool 2 -> conv 16x5x5 pad 2 + ReLU -> max-pool 2 -> flatten
        (N, 1, 28, 28) -> (N, 6, 14, 14) -> (N, 16, 7, 7) -> (N, 784)           156 + 2,416 params
    concat                              (N, 1568)
    FC1 1024 + ReLU + Dropout           (N, 1024)                                1,606,656 params
    FC2 1024 + ReLU                     (N, 1024)   <- forward_features          1,049,600 params
    Dropout -> FC num_classes           (N, 3)      <- forward_head                  3,075 params

Parameters: 2 * 2,572 + 1,606,656 + 1,049,600 + 3,075 = 2,664,475. The STSTNet paper (Table V) reports
2.77 M for OFF-ApexNet; the 0.11 M gap is known and unexplained (no official code; the original TensorFlow
graph was not available), see specs/models.md section 12.4. The 5x5 kernels and the conv ReLUs are not
verified against the paper either. PyTorch default initialisation, not TensorFlow's Glorot uniform.

`forward_features` returns the (N, 1024) output of FC2 after its ReLU, the penultimate vector: the network
has no spatial map that a head could pool, and FC1/FC2 are the representation the paper trains, so this is
what a distillation hint or a domain discriminator should see. FC2's dropout sits in `forward_head`, as the
head dropout does in timm, so the features are the same in train and eval mode up to FC1's dropout.
"""

from __future__ import annotations

import torch
from torch import nn


class LeNetStream(nn.Module):
    """(N, 1, 28, 28) one flow component -> (N, 784): two 5x5 conv + ReLU + 2x2 max-pool stages."""

    def __init__(self, in_chans: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, 6, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5, padding=2)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.num_features = 16 * 7 * 7

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.act(self.conv1(x)))
        x = self.pool(self.act(self.conv2(x)))
        return x.flatten(1)


class OffApexNet(nn.Module):
    """One LeNet stream per input channel (u, v), concatenated, then FC 1024 -> FC 1024 -> logits.

    Args:
        num_classes: K, logits per sample.
        in_chans: input channels; each one gets its own (unshared) stream, so the FC1 width grows with it.
        drop_rate: dropout probability after FC1 and FC2.
    """

    def __init__(self, num_classes: int = 3, in_chans: int = 2, drop_rate: float = 0.5):
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.num_features = 1024
        self.streams = nn.ModuleList(LeNetStream(1) for _ in range(in_chans))
        stream_width = sum(s.num_features for s in self.streams)  # 784 per channel
        self.fc1 = nn.Linear(stream_width, 1024)
        self.fc2 = nn.Linear(1024, self.num_features)
        self.act = nn.ReLU()
        self.drop1 = nn.Dropout(drop_rate)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, 28, 28) float32 -> (N, 1024) FC2 activations (post-ReLU, before its dropout)."""
        # Slicing with c:c+1 keeps the channel axis each stream's conv expects.
        x = torch.cat([stream(x[:, c : c + 1]) for c, stream in enumerate(self.streams)], dim=1)
        x = self.drop1(self.act(self.fc1(x)))
        return self.act(self.fc2(x))

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, 1024) -> (N, 1024) after FC2's dropout if `pre_logits`, else (N, num_classes) logits."""
        x = self.head_drop(features.flatten(1))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, 28, 28) float32 -> (N, num_classes) logits (no softmax)."""
        return self.forward_head(self.forward_features(x))
