"""EMR: the MEGC2019 winner (Liu, Du, Zheng, Gedeon, "A Neural Micro-expression Recognizer", FG 2019).

specs/models.md section 7a, read from the authors' code `xiaobaishu0097/MEGC2019` (`Model/Model_VGGFace.py`
`Resnet18_pt_mcn_Removed`, `FC_3`, `Classifier`; `Train/main.py` discriminator, `weight_init`). Written anew
as one module. A CNN's last feature map is split by rows into the upper face (brows, eyes) and the lower face
(nose, mouth); each half is average-pooled and projected on its own, the two are concatenated, and three
heads read them: the emotion classifier on the fused vector, one auxiliary classifier per half, and a domain
classifier (macro vs micro) behind a gradient reversal layer, for the macro->micro transfer of EMR
("Expression Magnification and Reduction": CK+ macro clips are trained on together with the micro clips).

Layer table (backbone resnet18, 224x224 input, in_chans=3, num_classes K=3, feature_dim F=64):

    backbone (timm, no pool, no fc)            (N, 512, 7, 7)    11,176,512
    split rows [0, 3) / [3, 7)                 (N, 512, 3, 7), (N, 512, 4, 7)
    average pool each part                     (N, 512), (N, 512)
    fc_top / fc_bottom: Linear 512->F, Tanh,   (N, F), (N, F)    2 * 32,832   (separate weights)
        Dropout 0.1
    concat                                     (N, 2F)           <- forward_features
    classifier Linear 2F->K                    (N, K)            387          <- forward / forward_head
    classifier_top / _bottom Linear F->K       (N, K), (N, K)    2 * 195      auxiliary, on each half
    discriminator: GRL, Linear 2F->64, ReLU,   (N,)              10,369       domain logit, >0: micro
        Dropout 0.5, Linear 64->32, ReLU, Dropout 0.5, Linear 32->1

    total 11,253,322 (specs/models.md section 7a); in general backbone + 2(C F + F) + (2F K + K) + 2(F K + K)
    + (2F * 64 + 64) + (64 * 32 + 32) + 33 for a C-channel map.

The authors' full-face pooled vector, computed and never used, is left out.

Backbones. `backbone` is a timm architecture built with `pretrained=False, num_classes=0, global_pool=""`,
so its `forward_features` is the unpooled (N, C, h, w) map; only CNNs that return such a map fit (resnet,
efficientnet, convnext, ...; a ViT's token sequence is refused at the first forward). EMR's ResNet-18 keeps
its residual BN scales at 1 (torchvision's `zero_init_residual=False`), while timm's ResNets zero the last
one of every block; pass `zero_init_last=False` (a timm kwarg, through **timm_kwargs) to match that when
training from scratch. Pretrained weights overwrite those scales anyway.

`backbone="shallow"` is a small CPU trunk for MERLin's 28x28 and 64x64 flow images (not in the paper):
three 3x3 conv (no bias) -> BN -> ReLU blocks of 16, 32, 64 channels, with a 2x2 max-pool after the first two,
so a 28x28 input gives a (N, 64, 7, 7) map, ResNet-18's 7 rows at 224 (same split, rows 0-2 / 3-6), and a
64x64 input a 16x16 map. It has 9 * 16 * in_chans + 4,608 + 18,432 conv weights and 224 BN parameters:
23,696 at in_chans=3, so 43,162 in all at K=3, F=64. Kaiming-normal (fan out) convs, as ResNets are built.

Row split. `top_rows` rows from the top form the upper face; left at None it is round(3 h / 7) for an
h-row map, EMR's 3 of 7, computed at every forward so any input size keeps the proportion (3/7 * h is never
a half-integer, so the rounding has no ties). The split needs a map of at least 2 rows; each part keeps at
least one.

Heads' initialisation as the authors' `weight_init`: xavier-normal weights and zero biases for every Linear
layer outside the backbone.

Learning rates. EMR trains the backbone at 1e-5 and everything else (both projections, the three classifiers,
the discriminator) at 1e-3, Adam with weight decay 1e-6: `param_groups(backbone_lr, head_lr)` gives the two
groups, `backbone_parameters()` / `head_parameters()` the parts.

Gradient reversal. The discriminator reads `grad_reverse(features, self.grl.coefficient)`; the network never
changes the coefficient: the EMR training recipe sets `net.grl.coefficient =
losses.adversarial.dann_coefficient(step, max_steps)` before each step (specs/models.md 7a; see that module
for the schedule and the authors' per-run counter). The default, 1.0, is full reversal.

Weights. `weights` is a LOCAL state_dict file (.pt/.pth/Lightning .ckpt) loaded into the backbone alone with
`models.weights.load_weights` (weights_only=True, names and shapes checked, the report logged and kept as
`weights_report`): a timm or torchvision ImageNet resnet18 file fits by name (its `fc.*` is reported as
unexpected and ignored), as does the backbone of a MERLin EMR checkpoint (`net.backbone.` is stripped). A
3-channel stem does not fit another `in_chans` and stays at its initialisation, reported as a shape
mismatch. The authors' MatConvNet import (`resnet18_pt_mcn.pth`, names `features_0`, `features_4_0_conv1`,
...) needs its names mapped to timm's first. Nothing is ever downloaded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from losses.adversarial import GradientReversalLayer
from models.timm_backbone import local_source
from models.weights import LoadReport, load_weights

log = logging.getLogger(__name__)

# EMR's split of ResNet-18's 7-row map: rows 0-2 are the upper face.
TOP_FRACTION = (3, 7)
SHALLOW_WIDTHS = (16, 32, 64)
HEAD_MODULES = ("fc_top", "fc_bottom", "classifier", "classifier_top", "classifier_bottom", "discriminator")


class ShallowTrunk(nn.Module):
    """Three conv3x3 -> BN -> ReLU blocks (16, 32, 64 channels), max-pool 2x2 after the first two.

    (N, in_chans, H, W) -> (N, 64, H // 4, W // 4) map; `num_features` is its channel count.
    """

    def __init__(self, in_chans: int = 3, widths: Sequence[int] = SHALLOW_WIDTHS):
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_chans
        for i, width in enumerate(widths):
            # No conv bias: the BN right after it has its own shift.
            layers += [nn.Conv2d(previous, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            previous = width
        self.layers = nn.Sequential(*layers)
        self.num_features = previous
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) float32 -> (N, 64, H // 4, W // 4) feature map."""
        return self.layers(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)


def _projection(in_features: int, feature_dim: int, dropout: float) -> nn.Sequential:
    # EMR's `FC_3`: the tanh bounds each half's features before the concat the discriminator sees.
    return nn.Sequential(nn.Linear(in_features, feature_dim), nn.Tanh(), nn.Dropout(dropout))


class EMR(nn.Module):
    """Upper/lower-face network with auxiliary per-half heads and a gradient-reversed domain classifier.

    Args:
        num_classes: K, emotion logits per sample (3 for the MEGC2019 composite protocol).
        in_chans: input channels (EMR: 3, the RGB-coded onset->apex flow image).
        backbone: a timm CNN architecture name (EMR: "resnet18"), or "shallow" for the small CPU trunk.
        feature_dim: F, width of each half's projection (EMR: 64; the fused vector has 2F).
        top_rows: rows of the backbone's map that form the upper face; None: round(3 h / 7) per forward.
        dropout: after each half's tanh projection (EMR: 0.1).
        domain_hidden: widths of the discriminator's hidden layers (EMR: 64, 32).
        domain_dropout: after each hidden ReLU of the discriminator (EMR: 0.5).
        weights: optional path of a local state_dict file for the backbone (see the module docstring).
        **timm_kwargs: passed to `timm.create_model` (e.g. `zero_init_last=False`, `drop_path_rate`).
    """

    def __init__(
        self,
        num_classes: int = 3,
        in_chans: int = 3,
        backbone: str = "resnet18",
        feature_dim: int = 64,
        top_rows: int | None = None,
        dropout: float = 0.1,
        domain_hidden: Sequence[int] = (64, 32),
        domain_dropout: float = 0.5,
        weights: str | Path | None = None,
        **timm_kwargs: Any,
    ):
        super().__init__()
        path = local_source(backbone, weights)
        if top_rows is not None and top_rows < 1:
            raise ValueError(f"top_rows must be >= 1 (or None for 3/7 of the map), got {top_rows}")

        self.num_classes = num_classes
        self.in_chans = in_chans
        self.backbone_name = backbone
        self.feature_dim = feature_dim
        self.top_rows = top_rows
        self.num_features = 2 * feature_dim

        if backbone == "shallow":
            if timm_kwargs:
                raise ValueError(f"timm kwargs {sorted(timm_kwargs)} given for the shallow backbone")
            self.backbone: nn.Module = ShallowTrunk(in_chans)
            channels = self.backbone.num_features
        else:
            import timm  # ~4 s to import: only when a timm backbone is built

            self.backbone = timm.create_model(
                backbone, pretrained=False, num_classes=0, global_pool="", in_chans=in_chans, **timm_kwargs
            )
            channels = int(self.backbone.num_features)

        self.fc_top = _projection(channels, feature_dim, dropout)
        self.fc_bottom = _projection(channels, feature_dim, dropout)
        self.classifier = nn.Linear(2 * feature_dim, num_classes)
        self.classifier_top = nn.Linear(feature_dim, num_classes)
        self.classifier_bottom = nn.Linear(feature_dim, num_classes)
        self.grl = GradientReversalLayer(1.0)
        layers: list[nn.Module] = []
        previous = 2 * feature_dim
        for width in domain_hidden:
            layers += [nn.Linear(previous, width), nn.ReLU(), nn.Dropout(domain_dropout)]
            previous = width
        layers.append(nn.Linear(previous, 1))
        self.discriminator = nn.Sequential(*layers)

        for name in HEAD_MODULES:
            for m in getattr(self, name).modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_normal_(m.weight)
                    nn.init.zeros_(m.bias)

        self.weights_report: LoadReport | None = None
        if path is not None:
            # `backbone.` too: the backbone of a whole EMR checkpoint (`net.backbone.conv1.weight`) loads.
            self.weights_report = load_weights(
                self.backbone, path, strip_prefixes=("net.", "model.", "module.", "backbone.")
            )

    # -- parameter groups ------------------------------------------------------------------------------------

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """The trunk's parameters (EMR: lr 1e-5)."""
        return self.backbone.parameters()

    def head_parameters(self) -> Iterator[nn.Parameter]:
        """Everything else: projections, the three classifiers, the discriminator (EMR: lr 1e-3)."""
        for name in HEAD_MODULES:
            yield from getattr(self, name).parameters()

    def param_groups(self, backbone_lr: float, head_lr: float) -> list[dict[str, Any]]:
        """Two optimizer parameter groups, `name` "backbone" and "heads", with their learning rates; other
        settings (weight decay) come from the optimizer's defaults. The names let a recipe halve the heads'
        rate alone, as EMR does every 10 epochs."""
        return [
            {"name": "backbone", "params": list(self.backbone_parameters()), "lr": backbone_lr},
            {"name": "heads", "params": list(self.head_parameters()), "lr": head_lr},
        ]

    # -- forward ---------------------------------------------------------------------------------------------

    def split_row(self, height: int) -> int:
        """The first lower-face row of an h-row map: `top_rows`, or round(3 h / 7)."""
        if height < 2:
            raise ValueError(
                f"EMR splits the backbone's feature map into upper and lower face rows, but this input "
                f"gives a {height}-row map; use a larger input (resnet18: >= 33 px; shallow: >= 8 px)"
            )
        if self.top_rows is not None:
            if self.top_rows >= height:
                raise ValueError(f"top_rows={self.top_rows} leaves no lower-face row in a {height}-row map")
            return self.top_rows
        num, den = TOP_FRACTION
        return min(max(round(num * height / den), 1), height - 1)

    def forward_map(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) float32 -> (N, C, h, w) backbone feature map (resnet18 at 224: 512 x 7 x 7)."""
        fmap = self.backbone.forward_features(x)
        if fmap.ndim != 4:
            raise ValueError(
                "EMR needs a CNN backbone whose forward_features is an (N, C, h, w) map; "
                f"{self.backbone_name} gives {tuple(fmap.shape)}"
            )
        return fmap

    def pool_parts(self, fmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, C, h, w) map -> ((N, C) mean of rows [0, split), (N, C) mean of rows [split, h))."""
        split = self.split_row(fmap.shape[2])
        return fmap[:, :, :split].mean(dim=(2, 3)), fmap[:, :, split:].mean(dim=(2, 3))

    def _halves(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        top, bottom = self.pool_parts(self.forward_map(x))
        return self.fc_top(top), self.fc_bottom(bottom)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) float32 -> (N, 2F) fused features: upper-face F, then lower-face F (after
        each half's dropout)."""
        return torch.cat(self._halves(x), dim=1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(N, 2F) -> itself if `pre_logits`, else (N, num_classes) main logits."""
        return features if pre_logits else self.classifier(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_chans, H, W) float32 -> (N, num_classes) main logits (no softmax): EMR as a plain
        classifier; the auxiliary and domain heads are not run."""
        return self.forward_head(self.forward_features(x))

    def forward_heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every head, for the EMR training recipe; one backbone pass.

        Args:
            x: (N, in_chans, H, W) float32, macro and micro samples in any mix.

        Returns:
            logits: (N, K) main emotion logits (as `forward`).
            logits_top, logits_bottom: (N, K) auxiliary logits of the upper / lower half.
            domain: (N,) domain logit, > 0 for micro (BCE target 1) and < 0 for macro (0), computed through
                the gradient reversal layer at `self.grl.coefficient`.
            features: (N, 2F) the fused vector (as `forward_features`).
        """
        top, bottom = self._halves(x)
        features = torch.cat([top, bottom], dim=1)
        return {
            "logits": self.classifier(features),
            "logits_top": self.classifier_top(top),
            "logits_bottom": self.classifier_bottom(bottom),
            "domain": self.discriminator(self.grl(features)).squeeze(-1),
            "features": features,
        }
