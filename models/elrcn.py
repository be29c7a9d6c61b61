"""ELRCN: enriched long-term recurrent convolutional network (Khor, See, Phan, Lin; FG 2018, MEGC 2018).

specs/models.md section 4, read from the authors' Keras code (IcedDoggie/Micro-Expression-with-Deep-Learning
`models.py`, `train.py`); written anew. A VGG-16 turns every step of a clip into a 4096-d fc7 feature, an LSTM
of 3000 units reads the T features, and two dense layers classify its last state:

* SE, spatial enrichment (`ELRCN_SE`): the modalities of a step (flow image 3 + strain 1 (+ grey 1)) are
  stacked as channels into one VGG-16 whose first convolution takes 4 (or 5) channels. One named input,
  (N, T, C, H, W).
* TE, temporal enrichment (`ELRCN_TE`): one VGG-16 per modality (each a named input (N, T, C_i, H, W)), their
  fc7 features concatenated per step (8192-d for two), then the LSTM.

    VGG-16 convs (13 x 3x3, 5 max-pools), 224x224 -> 512x7x7        14,714,688 at 3 channels
    adaptive average pool to 7x7 (identity at 224; lets a CPU variant use smaller frames)
    fc6 25,088 -> 4096, ReLU, Dropout 0.5; fc7 4096 -> 4096, ReLU, Dropout 0.5       119,545,856
    LSTM(3000) over the T fc7 features, last hidden state                   4 * 3000 * (D + 3000) + biases
    Dense(128) + ReLU -> Dense(K)                                           384,128 + 129 K

Parameters at 5 classes (224x224): SE-4ch 219,821,893 and TE-2 403,233,861 with PyTorch's LSTM, which has
two bias vectors per gate (b_ih and b_hh); Keras has one, and the spec's 219,809,893 / 403,221,861 are
12,000 fewer. `keras_lstm_bias=True` fixes b_hh at zero and out of training, giving exactly the Keras count
of trainable parameters (the same function: the two biases only ever appear summed). Each VGG also carries
its stage-one frame head (fc7 -> K: 20,485 at 5 classes), which the spec counts apart: with it, SE-4ch has
219,842,378 parameters and TE-2 403,274,831 (Keras bias: 219,830,378 and 403,262,831).

Training (`training`):

* "two_stage", the paper's: for the first `cnn_epochs` epochs each step is classified on its own by the
  VGG's frame head (fc7 -> K; the clip's label copied to its T steps, as the code does), and the LSTM does
  not train; afterwards the VGG is frozen (eval mode, no gradient: its fc7 features are what the code
  extracts) and the LSTM and dense layers train on the clip label. `models.classifier.MERClassifier` asks
  the network for each epoch's stage (`set_epoch`) and its training logits (`training_logits`).
* "end_to_end": everything trains on the clip label from the first epoch.

Choices where the code and the paper differ or say nothing: the code's output layer is a sigmoid trained
with categorical cross-entropy; here it is logits for softmax cross-entropy (the spec's advice). The SE
VGG is built without pretrained weights, as the released code builds its 4/5-channel VGG; the TE streams
would start from VGG-Face in the paper, which is not distributed with a licence we can rely on: they start
from He initialisation unless `weights` names a local torchvision-layout VGG-16 state_dict. `width` scales
every layer (channels, fc, LSTM units; at least 1) for CPU-sized variants.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from models.weights import read_state_dict

VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
TRAININGS = ("two_stage", "end_to_end")


def _scaled(value: int, width: float) -> int:
    return max(1, round(value * width))


class FrameVGG(nn.Module):
    """VGG-16 up to fc7, the per-step feature extractor, plus the frame head used in stage one."""

    def __init__(self, in_chans: int, num_classes: int, width: float = 1.0, drop_rate: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        chans = in_chans
        for item in VGG16_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                out = _scaled(item, width)
                layers += [nn.Conv2d(chans, out, 3, padding=1), nn.ReLU(inplace=True)]
                chans = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        hidden = _scaled(4096, width)
        self.fc = nn.Sequential(
            nn.Linear(chans * 49, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(drop_rate),
        )
        self.frame_head = nn.Linear(hidden, num_classes)
        self.num_features = hidden
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(M, C, H, W) frames -> (M, hidden) fc7 features."""
        return self.fc(torch.flatten(self.avgpool(self.features(x)), 1))

    def load_torchvision(self, path: str | Path) -> None:
        """Convs and fc6/fc7 from a local torchvision `vgg16` state_dict (features.*, classifier.0/3)."""
        state = read_state_dict(path)
        mapped = {k: v for k, v in state.items() if k.startswith("features.")}
        for ours, theirs in (("fc.0", "classifier.0"), ("fc.3", "classifier.3")):
            for kind in ("weight", "bias"):
                if f"{theirs}.{kind}" in state:
                    mapped[f"{ours}.{kind}"] = state[f"{theirs}.{kind}"]
        own = self.state_dict()
        bad = [k for k, v in mapped.items() if k not in own or own[k].shape != v.shape]
        if bad or not mapped:
            raise ValueError(
                f"{path} is not a torchvision VGG-16 state_dict for this stream (mismatched: {bad[:4]}); "
                "it needs width=1 and 3 input channels"
            )
        self.load_state_dict(mapped, strict=False)


class _ELRCN(nn.Module):
    def __init__(
        self,
        num_classes: int,
        streams: Sequence[int],
        width: float,
        drop_rate: float,
        training: str,
        cnn_epochs: int,
        keras_lstm_bias: bool,
        weights: str | None,
    ) -> None:
        super().__init__()
        if training not in TRAININGS:
            raise ValueError(f"unknown training {training!r}; allowed: {', '.join(TRAININGS)}")
        if training == "two_stage" and cnn_epochs < 1:
            raise ValueError(f"two_stage training needs cnn_epochs >= 1, got {cnn_epochs}")
        self.num_classes = num_classes
        self.training_mode, self.cnn_epochs = training, int(cnn_epochs)
        self.cnns = nn.ModuleList(FrameVGG(c, num_classes, width, drop_rate) for c in streams)
        if weights is not None:
            for cnn in self.cnns:
                cnn.load_torchvision(weights)
        frame_dim = sum(cnn.num_features for cnn in self.cnns)
        units = _scaled(3000, width)
        self.lstm = nn.LSTM(frame_dim, units, batch_first=True)
        if keras_lstm_bias:
            # One bias per gate, as Keras: b_hh stays zero and untrained (only b_ih + b_hh ever counts).
            nn.init.zeros_(self.lstm.bias_hh_l0)
            self.lstm.bias_hh_l0.requires_grad_(False)
        self.dense = nn.Sequential(nn.Linear(units, _scaled(128, width)), nn.ReLU(inplace=True))
        self.head = nn.Linear(_scaled(128, width), num_classes)
        self.num_features = _scaled(128, width)
        self.stage = "lstm" if training == "end_to_end" else "cnn"

    def set_epoch(self, epoch: int) -> None:
        """Called by the classifier before each training epoch: stage one ("cnn") or two ("lstm")."""
        if self.training_mode == "two_stage":
            self.stage = "cnn" if epoch < self.cnn_epochs else "lstm"

    @staticmethod
    def _check(x: torch.Tensor, chans: int) -> None:
        if x.ndim != 5 or x.shape[2] != chans:
            raise ValueError(f"ELRCN expects sequences (N, T, {chans}, H, W), got {tuple(x.shape)}")

    def _frame_features(self, streams: Sequence[torch.Tensor], frozen: bool) -> list[torch.Tensor]:
        out = []
        for cnn, x in zip(self.cnns, streams, strict=True):
            self._check(x, cnn.features[0].in_channels)
            n, t = x.shape[:2]
            if frozen:
                was_training = cnn.training
                cnn.eval()
                with torch.no_grad():
                    features = cnn(x.flatten(0, 1))
                cnn.train(was_training)
            else:
                features = cnn(x.flatten(0, 1))
            out.append(features.view(n, t, -1))
        return out

    def forward_features(self, *streams: torch.Tensor) -> torch.Tensor:
        """Sequences -> (N, 128 * width): the dense layer's output on the LSTM's last state."""
        frozen = self.training_mode == "two_stage" and self.stage == "lstm" and self.training
        steps = torch.cat(self._frame_features(streams, frozen), dim=-1)
        _, (hidden, _) = self.lstm(steps)
        return self.dense(hidden[-1])

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return features if pre_logits else self.head(features)

    def forward(self, *streams: torch.Tensor) -> torch.Tensor:
        """Sequences (N, T, C_i, H, W), one per stream -> (N, K) clip logits."""
        return self.forward_head(self.forward_features(*streams))

    def training_logits(self, *streams: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, targets) of the current stage: per-step frame logits and the clip label repeated over the
        T steps in stage one (each VGG's frame head, summed over streams), clip logits afterwards."""
        if self.stage == "lstm":
            return self(*streams), y
        logits = None
        for cnn, x in zip(self.cnns, streams, strict=True):
            self._check(x, cnn.features[0].in_channels)
            frame_logits = cnn.frame_head(cnn(x.flatten(0, 1)))
            logits = frame_logits if logits is None else logits + frame_logits
        return logits, y.repeat_interleave(streams[0].shape[1])


class ELRCN_SE(_ELRCN):
    """Spatial enrichment: one VGG-16 on the modalities stacked as `in_chans` channels per step."""

    def __init__(
        self,
        num_classes: int = 5,
        in_chans: int = 4,
        width: float = 1.0,
        drop_rate: float = 0.5,
        training: str = "two_stage",
        cnn_epochs: int = 10,
        keras_lstm_bias: bool = False,
        weights: str | None = None,
    ) -> None:
        if not isinstance(in_chans, int):
            raise ValueError(f"ELRCN-SE takes one input of stacked channels, got in_chans={in_chans!r}")
        super().__init__(
            num_classes, [in_chans], width, drop_rate, training, cnn_epochs, keras_lstm_bias, weights
        )
        self.in_chans = in_chans


class ELRCN_TE(_ELRCN):
    """Temporal enrichment: one VGG-16 per modality (named input), fc7 features concatenated per step."""

    def __init__(
        self,
        num_classes: int = 5,
        in_chans: Sequence[int] = (3, 3),
        width: float = 1.0,
        drop_rate: float = 0.5,
        training: str = "two_stage",
        cnn_epochs: int = 10,
        keras_lstm_bias: bool = False,
        weights: str | None = None,
    ) -> None:
        chans = [in_chans] if isinstance(in_chans, int) else list(in_chans)
        if len(chans) < 2:
            raise ValueError(f"ELRCN-TE needs at least two streams (named inputs), got in_chans={in_chans!r}")
        super().__init__(num_classes, chans, width, drop_rate, training, cnn_epochs, keras_lstm_bias, weights)
        self.in_chans = tuple(chans)
