"""Any timm image backbone as a MERLin network: (num_classes, in_chans) -> logits, pooled features.

Not a paper model: a generic way to try a standard CNN or transformer (and ImageNet or macro-expression
pretrained weights) on MERLin's inputs. `name` is a timm architecture (`resnet18`, `efficientnet_b0`,
`convnext_atto`, `vit_tiny_patch16_224`, ...), optionally with a pretrained tag (`resnet18.a1_in1k`), which
only selects the pretrained config that a local file is read against.

Shapes (resnet18, in_chans=3, 3 classes, 112x112 input):

    timm forward_features        (N, 512, 4, 4)   unpooled map
    global pool (+ drop_rate)    (N, 512)         <- forward_features here (timm's pre_logits)
    classifier fc                (N, 3)           <- forward_head

Parameters: whatever timm builds. resnet18 has 11,689,512 with its 1000-class ImageNet fc (513,000), so
11,176,512 without it, 11,178,051 at 3 classes (+ 512 * 3 + 3), and 6,272 more at in_chans=5 (its 64 7x7
stem filters gain two input slices: 64 * 2 * 49).

Weights: `weights` is a LOCAL file (.pth / .pt / .safetensors) of that architecture's state_dict, loaded
through timm's own pretrained mechanism (`pretrained=True, pretrained_cfg_overlay=dict(file=...)`): timm
adapts a 3-channel stem to `in_chans` (summing for 1 channel, tiling and rescaling otherwise) and, when
`num_classes` differs from the config's (1000 for ImageNet weights), drops the file's classifier and keeps a
fresh head. The file is read with weights_only=True (timm's default). A missing file is a
FileNotFoundError raised before timm is imported or asked for anything; names that would fetch a config
from the Hugging Face hub (`hf-hub:...`) are refused; nothing here downloads.

`forward_features` returns `model.forward_head(model.forward_features(x), pre_logits=True)`: pooled, and
after timm's head dropout (`drop_rate`) like OffApexNet's pre-logits; `num_features` is its width
(`head_hidden_size`, which differs from timm's `num_features` for models with a pre-logits layer, such as
MobileNetV3). `forward_head` applies `model.get_classifier()` to it, which is timm's own forward for the
CNN and ViT families (checked for resnet18 in tests/test_models.py); models whose head does more after the
pre-logits (distilled two-head transformers) are not supported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

HUB_PREFIXES = ("hf-hub:", "hf_hub:")


def local_source(name: str, weights: str | Path | None) -> Path | None:
    """Refuse what would make timm reach the network: a hub name, or a weights file that is not there
    (checked before the slow timm import, so that timm never falls back to a download). Returns the path."""
    if name.startswith(HUB_PREFIXES):
        raise ValueError(
            f"timm model name {name!r} would load its config from the Hugging Face hub; give the "
            "architecture name and a local weights file instead"
        )
    path = None if weights is None else Path(weights)
    if path is not None and not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    return path


class TimmBackbone(nn.Module):
    """A `timm.create_model` network with MERLin's interface.

    Args:
        num_classes: K, logits per sample.
        in_chans: input channels (timm adapts the stem, and pretrained stem weights, to it).
        name: timm architecture name.
        weights: optional path to a local pretrained state_dict file of that architecture.
        drop_rate: dropout before the classifier (timm's `drop_rate`).
        **timm_kwargs: passed to `timm.create_model` (e.g. `drop_path_rate`, `img_size` for a ViT).
    """

    def __init__(
        self,
        num_classes: int = 3,
        in_chans: int = 3,
        name: str = "resnet18",
        weights: str | Path | None = None,
        drop_rate: float = 0.0,
        **timm_kwargs: Any,
    ):
        super().__init__()
        path = local_source(name, weights)

        import timm  # ~4 s to import: only when a backbone is built (specs/stack.md)

        kwargs = dict(num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, **timm_kwargs)
        if path is None:
            self.model = timm.create_model(name, pretrained=False, **kwargs)
        else:
            # source=None: load from the file even for architectures whose registry config names the hub.
            overlay = dict(file=str(path), source=None)
            self.model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
        self.name = name
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.num_features = int(getattr(self.model, "head_hidden_size", None) or self.model.num_features)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) float32 -> (N, num_features) pooled pre-logits features."""
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, num_features) -> itself if `pre_logits`, else (N, num_classes) logits."""
        return features if pre_logits else self.model.get_classifier()(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) float32 -> (N, num_classes) logits (no softmax)."""
        return self.forward_head(self.forward_features(x))
