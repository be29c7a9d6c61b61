"""SSSN and DSSN: single- and dual-stream shallow networks (Khor, See, Liong, Phan, Lin; ICIP 2019).

specs/models.md section 3. Each stream is AlexNet cut after its second convolution, as in the authors'
Keras code (IcedDoggie/DSSN-MER `networks.py`, `train_shallow_alexnet_imagenet`: the output of Keras layer
13). SSSN classifies one stream's map; DSSN runs two independent streams (no weight sharing) on two
different inputs of the same clip (e.g. an optical-flow image and an optical-strain image) and merges their
maps by element-wise addition or multiplication, or concatenates them.

Shallow AlexNet stream (in_chans=3; 227x227 is the reference input):

    [mean-subtract]             (N, 3, 227, 227)     optional, off by default (see below)
    conv1 96 11x11/4 + ReLU     (N, 96, 55, 55)      96 * (3 * 121) + 96           = 34,944
    max-pool 3x3/2              (N, 96, 27, 27)
    LRN (5, 1e-4, 0.75, k=2)    (N, 96, 27, 27)
    zero-pad 2 (conv2 padding)  (N, 96, 31, 31)
    conv2 256 5x5, 2 groups     (N, 256, 27, 27)     2 * (128 * 48 * 25 + 128)    = 307,456
      + ReLU
    max-pool 3x3/2              (N, 256, 13, 13)
    LRN                         (N, 256, 13, 13)
    zero-pad 1                  (N, 256, 15, 15)     57,600 values                <- stream output

Heads (K classes; the dropout is in `forward_head`, as in OffApexNet and timm):

    SSSN            stream map (N, 256, 15, 15)       <- forward_features
                    flatten -> Dropout 0.5 -> Linear(57,600, K)
    DSSN add / mul  map_a + map_b or map_a * map_b (N, 256, 15, 15)       <- forward_features
                    flatten -> Dropout 0.5 -> Linear(57,600, K)
    DSSN concat     both maps stacked on the channel axis (N, 512, 15, 15) <- forward_features
                    flatten -> Dropout 0.5 -> Linear(115,200, K)

Stacking on the channel axis and flattening gives exactly the concatenation of the two flattened maps (a's
57,600 values, then b's), so the concat head is the authors' and `forward_features` stays a feature map.

Parameters: 342,400 per stream, head 57,600 * K + K (115,200 * K + K for concat). At K=5 (the authors'
default): SSSN 630,405, DSSN add/multiply 972,805, DSSN concat 1,260,805, matching the seed's 0.63 M and
0.97 M; at K=3: 515,203 / 857,603 / 1,030,403. The final zero padding is what gives these counts
(specs/models.md section 12.5); it also means that 56 of the 225 positions of every channel, 14,336 of the
57,600 features, are always zero (for add and multiply too), so those columns of the head never receive a
gradient. We keep them: they are part of the published count.

Choices where the spec or the code leaves room:

* LRN: `nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2)`, the cross-channel normalisation of the
  Caffe AlexNet and of its Keras port (heuritech convnets-keras `crosschannelnormalization`); both divide
  alpha by the window size, as PyTorch does, so the formula is the same.
* Input scaling: the Keras model subtracts the ImageNet mean (123.68, 116.779, 103.939) inside and divides
  by 255 (`models.py` `mean_subtract`), expecting 0-255 RGB. MERLin's data module normalises the inputs
  already, so this is off by default; `mean_subtract=True` restores it for 0-255 three-channel inputs, as a
  fixed, non-persistent buffer (no parameters, no state_dict entries, so the counts above hold either way).
* `in_chans` other than 3 changes conv1's input width (96 * 121 * in_chans + 96 parameters).
* Initialisation without `weights`: Keras he_normal for the convs and the head (PyTorch kaiming normal, fan
  in), zero biases (the Keras code also draws the biases from he_normal, which we do not copy).

Pretrained weights (`weights=`): the paper initialises conv1 and conv2 from ImageNet AlexNet, in the
original layout (96 and 256 filters, conv2 in two groups of 48 input channels). torchvision's
`alexnet` is the "one weird trick" variant (64 and 192 filters, no LRN, ungrouped conv2), so its weights
cannot initialise this stream; such a file is refused with a ValueError that says so. Accepted: a local
state_dict file (`torch.save`, or a Lightning checkpoint; read with weights_only=True) holding, after an
optional `module.`/`net.`/`model.` prefix, either

* `conv1.weight` (96, 3, 11, 11), `conv1.bias` (96,), `conv2.weight` (256, 48, 5, 5), `conv2.bias`
  (256,): the Caffe `bvlc_alexnet` names and shapes, and this stream's own; or
* `conv_1.*` plus the two halves `conv_2_1.*`, `conv_2_2.*` (128, 48, 5, 5) each: the Keras layer names of
  the authors' code, concatenated here into the grouped conv2 (first half = group 1).

The tensors must already be in PyTorch's cross-correlation orientation and the source's channel order (Caffe
expects BGR); they are not flipped or reordered here. Other tensors in the file (conv3..fc8) are ignored.
A 3-channel conv1 is adapted to another `in_chans` as timm adapts its stems (summed over RGB for one
channel; tiled and scaled by 3 / in_chans otherwise). Both DSSN streams load the same file, as both start
from ImageNet AlexNet in the paper. To continue from a MERLin checkpoint of a whole SSSN/DSSN instead, use
`models.weights.load_weights` on the built network.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from models.weights import read_state_dict

log = logging.getLogger(__name__)

# Keras `mean_subtract` of the authors' AlexNet (RGB, 0-255 scale); the result is also divided by 255.
IMAGENET_MEAN_255 = (123.68, 116.779, 103.939)
MERGES = ("add", "multiply", "concat")

# (name, shape) of the stream tensors a pretrained file must provide, with conv1's input channels at 3.
PAPER_SHAPES = {
    "conv1.weight": (96, 3, 11, 11),
    "conv1.bias": (96,),
    "conv2.weight": (256, 48, 5, 5),
    "conv2.bias": (256,),
}
KERAS_NAMES = ("conv_1.weight", "conv_1.bias", "conv_2_1.weight", "conv_2_1.bias", "conv_2_2.weight")
STRIP_PREFIXES = ("module.", "net.", "model.")


class ShallowAlexNet(nn.Module):
    """AlexNet up to conv2, its pool and LRN, zero-padded: (N, in_chans, 227, 227) -> (N, 256, 15, 15).

    Args:
        in_chans: input channels (3 for an RGB-coded flow or strain image).
        mean_subtract: subtract the ImageNet mean and divide by 255 first, as the Keras model does for 0-255
            RGB inputs; needs in_chans=3.
    """

    def __init__(self, in_chans: int = 3, mean_subtract: bool = False):
        super().__init__()
        if mean_subtract and in_chans != 3:
            raise ValueError(f"mean_subtract needs 3-channel (RGB) inputs, not in_chans={in_chans}")
        self.in_chans = in_chans
        self.mean_subtract = mean_subtract
        # Non-persistent: a fixed constant, not state; keeps state_dicts identical with or without it.
        mean = torch.tensor(IMAGENET_MEAN_255).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.conv1 = nn.Conv2d(in_chans, 96, kernel_size=11, stride=4)
        # padding=2 is the Keras ZeroPadding2D((2, 2)) before conv2; groups=2 its two 48-channel halves.
        self.conv2 = nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=2)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2)
        self.lrn = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
        self.num_features = 256 * 15 * 15
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean_subtract:
            x = (x - self.mean) / 255.0
        x = self.lrn(self.pool(self.act(self.conv1(x))))
        x = self.lrn(self.pool(self.act(self.conv2(x))))
        # The authors' features are Keras layer 13, the ZeroPadding2D((1, 1)) after the second LRN.
        return F.pad(x, (1, 1, 1, 1))


def _adapt_conv1(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """A (96, 3, 11, 11) RGB conv1 for `in_chans` inputs, keeping the response to a grey image."""
    if in_chans == 3:
        return weight
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    repeat = math.ceil(in_chans / 3)
    return weight.repeat(1, repeat, 1, 1)[:, :in_chans] * (3 / in_chans)


def _strip_prefixes(key: str) -> str:
    # No name of either accepted layout (nor torchvision's) starts with one of these, so strip them all.
    while key.startswith(STRIP_PREFIXES):
        key = key[len(next(p for p in STRIP_PREFIXES if key.startswith(p))) :]
    return key


def alexnet_stream_state(state: Mapping[str, torch.Tensor], path: str | Path) -> dict[str, torch.Tensor]:
    """Map a pretrained AlexNet state_dict onto `ShallowAlexNet` names (conv1/conv2, 3 input channels).

    Raises:
        ValueError: naming `path`, when the file is torchvision's AlexNet, holds neither accepted layout, or
            holds it with other shapes.
    """
    state = {_strip_prefixes(k): v for k, v in state.items()}
    if "features.0.weight" in state:
        shapes = ", ".join(
            f"{k} {list(state[k].shape)}" for k in ("features.0.weight", "features.3.weight") if k in state
        )
        raise ValueError(
            f"{path} looks like a torchvision AlexNet state_dict ({shapes}). torchvision's AlexNet is the "
            "'one weird trick' variant (64 and 192 filters, no LRN, ungrouped conv2), so it cannot "
            "initialise the paper's stream, which needs conv1 [96, 3, 11, 11] and grouped conv2 "
            "[256, 48, 5, 5]. Convert the original Caffe/Keras AlexNet weights instead (keys conv1.*, "
            "conv2.* or conv_1.*, conv_2_1.*, conv_2_2.*)."
        )
    if all(k in state for k in KERAS_NAMES) and "conv_2_2.bias" in state:
        halves = [state["conv_2_1.weight"], state["conv_2_2.weight"]]
        if halves[0].shape != halves[1].shape:
            raise ValueError(
                f"{path}: conv_2_1.weight {list(halves[0].shape)} and conv_2_2.weight "
                f"{list(halves[1].shape)} are not the two equal halves of a grouped conv2"
            )
        mapped = {
            "conv1.weight": state["conv_1.weight"],
            "conv1.bias": state["conv_1.bias"],
            "conv2.weight": torch.cat(halves, dim=0),
            "conv2.bias": torch.cat([state["conv_2_1.bias"], state["conv_2_2.bias"]], dim=0),
        }
    elif all(k in state for k in PAPER_SHAPES):
        mapped = {k: state[k] for k in PAPER_SHAPES}
    else:
        found = ", ".join(list(state)[:8]) + (", ..." if len(state) > 8 else "")
        raise ValueError(
            f"{path} holds no AlexNet conv1/conv2 in a layout this stream reads (found: {found}); expected "
            f"{', '.join(PAPER_SHAPES)} or the Keras names conv_1.*, conv_2_1.*, conv_2_2.*"
        )
    wrong = [
        f"{k} {list(v.shape)} (expected {list(PAPER_SHAPES[k])})"
        for k, v in mapped.items()
        if tuple(v.shape) != PAPER_SHAPES[k]
    ]
    if wrong:
        raise ValueError(
            f"{path} does not fit the paper's AlexNet stream (96 conv1 filters on 3 channels, conv2 256 "
            f"filters in 2 groups): {'; '.join(wrong)}"
        )
    return mapped


def load_alexnet_streams(streams: Sequence[ShallowAlexNet], path: str | Path) -> None:
    """Initialise every stream's conv1/conv2 from the pretrained AlexNet file `path` (in place)."""
    state = read_state_dict(path)
    mapped = alexnet_stream_state(state, path)
    for stream in streams:
        own = dict(mapped, **{"conv1.weight": _adapt_conv1(mapped["conv1.weight"], stream.in_chans)})
        # strict: the four tensors are the whole stream; a partial ImageNet start would be a silent trap.
        stream.load_state_dict(own, strict=True)
    log.info(
        "initialised %d AlexNet stream(s) (conv1, conv2) from %s (%d tensors in the file, the rest ignored)",
        len(streams),
        path,
        len(state),
    )


class SSSN(nn.Module):
    """Single-stream shallow network: one shallow AlexNet stream, dropout, one linear classifier.

    Args:
        num_classes: K, logits per sample (5 in the authors' code).
        in_chans: input channels of the stream.
        drop_rate: dropout probability before the classifier.
        weights: optional path to a local pretrained AlexNet state_dict (module docstring); None trains from
            the he_normal initialisation.
        mean_subtract: subtract the ImageNet mean and divide by 255 inside, as the Keras model (0-255 RGB in).
    """

    def __init__(
        self,
        num_classes: int = 5,
        in_chans: int = 3,
        drop_rate: float = 0.5,
        weights: str | Path | None = None,
        mean_subtract: bool = False,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.stream = ShallowAlexNet(in_chans, mean_subtract)
        self.num_features = self.stream.num_features  # 57,600
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.num_features, num_classes)
        nn.init.kaiming_normal_(self.head.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.head.bias)
        if weights is not None:
            load_alexnet_streams([self.stream], weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, 227, 227) float32 -> (N, 256, 15, 15) zero-padded conv2 map."""
        return self.stream(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, 256, 15, 15) -> (N, 57,600) after dropout if `pre_logits`, else (N, num_classes) logits."""
        x = self.head_drop(features.flatten(1))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, 227, 227) float32 -> (N, num_classes) logits (no softmax)."""
        return self.forward_head(self.forward_features(x))


def _stream_chans(in_chans: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(in_chans, int):
        return in_chans, in_chans
    chans = tuple(int(c) for c in in_chans)
    if len(chans) != 2:
        raise ValueError(f"DSSN has two streams: in_chans must be one int or two, not {list(chans)}")
    return chans[0], chans[1]


class DSSN(nn.Module):
    """Dual-stream shallow network: two independent shallow AlexNet streams, merged, dropout, one linear.

    Args:
        num_classes: K, logits per sample (5 in the authors' code).
        in_chans: input channels, one int for both streams or a pair (stream a, stream b).
        merge: `add` or `multiply` the two (256, 15, 15) maps element-wise, or `concat` them.
        drop_rate: dropout probability before the classifier.
        weights: optional path to a local pretrained AlexNet state_dict, loaded into both streams.
        mean_subtract: subtract the ImageNet mean and divide by 255 inside each stream (0-255 RGB inputs).
    """

    def __init__(
        self,
        num_classes: int = 5,
        in_chans: int | Sequence[int] = 3,
        merge: str = "add",
        drop_rate: float = 0.5,
        weights: str | Path | None = None,
        mean_subtract: bool = False,
    ):
        super().__init__()
        if merge not in MERGES:
            raise ValueError(f"merge must be one of {MERGES}, not {merge!r}")
        chans_a, chans_b = _stream_chans(in_chans)
        self.num_classes = num_classes
        self.in_chans = (chans_a, chans_b)
        self.merge = merge
        self.stream_a = ShallowAlexNet(chans_a, mean_subtract)
        self.stream_b = ShallowAlexNet(chans_b, mean_subtract)
        per_stream = self.stream_a.num_features
        self.num_features = 2 * per_stream if merge == "concat" else per_stream
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.num_features, num_classes)
        nn.init.kaiming_normal_(self.head.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.head.bias)
        if weights is not None:
            load_alexnet_streams([self.stream_a, self.stream_b], weights)

    def forward_features(self, x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
        """Two (N, C, 227, 227) float32 inputs -> (N, 256, 15, 15) merged map ((N, 512, 15, 15) concat)."""
        a, b = self.stream_a(x_a), self.stream_b(x_b)
        if self.merge == "add":
            return a + b
        if self.merge == "multiply":
            return a * b
        return torch.cat([a, b], dim=1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Merged map -> (N, num_features) after dropout if `pre_logits`, else (N, num_classes) logits."""
        x = self.head_drop(features.flatten(1))
        return x if pre_logits else self.head(x)

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
        """Stream a's and stream b's (N, C, 227, 227) float32 inputs -> (N, num_classes) logits."""
        return self.forward_head(self.forward_features(x_a, x_b))
