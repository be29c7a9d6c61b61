"""Fine-tuning a network from earlier weights: initialise, guard against subject overlap, freeze, split lrs.

`model.init_from=PATH` starts each fold from local weights: a MERLin checkpoint (`RUN/fold_{k}/last.ckpt`,
`RUN/last.ckpt`), another Lightning checkpoint, or a plain state_dict (`.pt` / `.pth`, e.g. the STSTNet
authors' released files); `{fold}` in PATH is replaced by the fold's index, so fold k of a LOSO fine-tuning
starts from fold k of a pre-training that held out the same subject. Files are read with
`weights_only=True`: a pickle that would run code is refused and nothing in it runs. Tensors are matched by
name and shape (models.weights); a head trained for another class count keeps its fresh initialisation.

The overlap guard: a MERLin checkpoint records every subject it was trained on (training.checkpoints). A
fold whose held-out subject is among them refuses to start, naming the subject: such a fold would test on a
person its starting weights have already seen (a macro and a micro database recorded from the same people,
or a pre-training on the micro database itself). `model.allow_overlap=true` lets it start and the report
says so. Weights of unknown provenance (a plain state_dict) cannot be checked; the report says that too.

Freezing (`model.freeze`: parameter names or name prefixes, `backbone` for everything but the classifier
head; `model.freeze_stages=k`: the network's first k child modules) stops gradients, and the frozen batch-norm
layers keep their running statistics: they stay in eval mode while the rest trains (MERClassifier.train).
`model.head_lr` gives the head its own learning rate (the backbone keeps the optimizer's), as EMR's recipe
fine-tunes a pre-trained backbone at 1e-5 and its new heads at 1e-3.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from models.weights import match_tensors
from training.checkpoints import CheckpointError, overlap, read_checkpoint, read_provenance, resolve_init_from
from utils.atomic import atomic_write_json

log = logging.getLogger(__name__)

BACKBONE = "backbone"  # the freeze name for every parameter outside the classifier head
# The LightningModule attribute that holds the network: a MERLin checkpoint's network tensors start with it.
NET_PREFIX = "net."


class OverlapError(CheckpointError):
    """The starting weights were trained on a subject this fold holds out."""


@dataclass
class InitReport:
    """What initialising a fold's network from a file did (init_report.json beside its checkpoint)."""

    path: str
    fold: str
    loaded: list[str] = field(default_factory=list)
    newly_initialised: list[str] = field(
        default_factory=list
    )  # in the network, not (or not fitting) in the file
    mismatched: list[tuple[str, list[int], list[int]]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # in the file, not in the network
    provenance: str = "unknown"  # checked | unknown | overlap allowed
    overlap: list[str] = field(default_factory=list)
    frozen: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "fold": self.fold,
            "provenance": self.provenance,
            "overlap_allowed": self.overlap,
            "loaded": self.loaded,
            "newly_initialised": self.newly_initialised,
            "shape_mismatch": [{"name": n, "checkpoint": c, "model": m} for n, c, m in self.mismatched],
            "skipped": self.skipped,
            "frozen": self.frozen,
        }

    def __str__(self) -> str:
        total = len(self.loaded) + len(self.newly_initialised)
        lines = [f"fold {self.fold}: loaded {len(self.loaded)}/{total} network tensors from {self.path}"]
        if self.mismatched:
            shapes = ", ".join(f"{n} {c} vs {m}" for n, c, m in self.mismatched)
            lines.append(f"  other shape, newly initialised: {shapes}")
        rest = [n for n in self.newly_initialised if n not in {m[0] for m in self.mismatched}]
        if rest:
            lines.append(f"  not in the file, newly initialised: {', '.join(rest)}")
        if self.skipped:
            lines.append(f"  in the file, not in the network (skipped): {', '.join(self.skipped)}")
        if self.provenance == "unknown":
            lines.append(
                "  the file records no training subjects: overlap with the held-out subject unchecked"
            )
        elif self.overlap:
            lines.append(
                f"  WARNING: trained on held-out subject(s) {', '.join(self.overlap)} "
                "(model.allow_overlap=true)"
            )
        if self.frozen:
            lines.append(f"  frozen: {len(self.frozen)} parameter tensors")
        return "\n".join(lines)


def _network_state(checkpoint: Mapping, path: Path) -> dict[str, torch.Tensor]:
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(f"{path} holds no state_dict of tensors")
    tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path} holds no tensors")
    # A LightningModule's checkpoint also holds its loss's buffers (class weights) and such: keep the network.
    if any(k.startswith(NET_PREFIX) for k in tensors):
        tensors = {k[len(NET_PREFIX) :]: v for k, v in tensors.items() if k.startswith(NET_PREFIX)}
    return tensors


def overlap_error(path: Path, seen: Sequence[str], fold_name: str) -> OverlapError:
    return OverlapError(
        f"model.init_from={path}: these weights were trained on {', '.join(seen)}, which fold {fold_name} "
        "holds out; testing on it would report a number its starting weights have already seen. Use a "
        "pre-training that held it out (a {fold} pattern), or set model.allow_overlap=true to run anyway"
    )


def initialise_from(
    net: nn.Module,
    pattern: str | Path,
    fold_index: int,
    fold_name: str,
    test_subjects: Iterable[str],
    allow_overlap: bool = False,
) -> InitReport:
    """Load the weights `pattern` names for fold `fold_index` into `net` (in place), after the overlap guard.

    Raises:
        CheckpointError: the file is missing, unreadable, an unsafe pickle, or holds no tensors.
        OverlapError: it was trained on one of `test_subjects` and allow_overlap is False (nothing loaded).
    """
    path = resolve_init_from(pattern, fold_index)
    checkpoint = read_checkpoint(path)
    record = read_provenance(path, checkpoint)
    report = InitReport(path=str(path), fold=fold_name)
    if record is not None:
        seen = overlap(record, test_subjects)
        if seen and not allow_overlap:
            raise overlap_error(path, seen, fold_name)
        report.overlap = seen
        report.provenance = "overlap allowed" if seen else "checked"
    tensors = _network_state(checkpoint, path)
    to_load, matched = match_tensors(net, tensors)
    report.skipped = matched.unexpected_keys
    report.mismatched = [(k, list(c), list(m)) for k, c, m in matched.mismatched_keys]
    if not to_load:
        raise CheckpointError(
            f"model.init_from={path}: none of its {len(tensors)} tensors fits {type(net).__name__} by name "
            f"and shape (e.g. {', '.join(sorted(tensors)[:3])}); is it another network's checkpoint?"
        )
    net.load_state_dict(to_load, strict=False)
    report.loaded = matched.loaded_keys
    report.newly_initialised = [k for k in net.state_dict() if k not in to_load]
    return report


def write_init_report(report: InitReport, path: str | Path) -> None:
    atomic_write_json(path, report.as_dict(), what="initialisation report")


def head_parameter_names(net: nn.Module, num_classes: int) -> list[str]:
    """Names of the classifier head's parameters: those of every Linear (or 1x1 conv) layer that outputs
    the class scores (`out_features == num_classes`; a network with auxiliary heads has several)."""
    names = []
    for module_name, module in net.named_modules():
        out = getattr(module, "out_features", None)
        if isinstance(module, nn.Conv2d | nn.Conv3d) and module.kernel_size in ((1, 1), (1, 1, 1)):
            out = module.out_channels
        if isinstance(module, nn.Linear | nn.Conv2d | nn.Conv3d) and out == num_classes:
            names += [f"{module_name}.{p}" if module_name else p for p, _ in module.named_parameters()]
    return names


def freeze(
    net: nn.Module, names: Sequence[str] = (), stages: int = 0, num_classes: int | None = None
) -> list[str]:
    """Stop gradients to the named parameters (names or prefixes; `backbone`: all but the head) and to the
    first `stages` child modules. Returns the frozen parameter names.

    Raises:
        ValueError: a name matches no parameter (the message lists the network's top-level modules), or
            `stages` exceeds the number of child modules.
    """
    params = dict(net.named_parameters())
    chosen: set[str] = set()
    for name in names:
        if name == BACKBONE:
            if num_classes is None:
                raise ValueError("freezing the backbone needs the class count to find the head")
            head = set(head_parameter_names(net, num_classes))
            chosen |= {p for p in params if p not in head}
            continue
        hits = {p for p in params if p == name or p.startswith(name.rstrip(".") + ".")}
        if not hits:
            top = sorted({p.split(".")[0] for p in params})
            raise ValueError(
                f"model.freeze: {name!r} names no parameter of {type(net).__name__} "
                f"(its modules: {', '.join(top)}; or 'backbone')"
            )
        chosen |= hits
    children = [n for n, m in net.named_children() if any(True for _ in m.parameters())]
    if stages < 0 or stages > len(children):
        raise ValueError(
            f"model.freeze_stages={stages}: {type(net).__name__} has {len(children)} stages with parameters "
            f"({', '.join(children)})"
        )
    for child in children[:stages]:
        chosen |= {p for p in params if p.startswith(child + ".")}
    for p in chosen:
        params[p].requires_grad_(False)
    return [p for p in params if p in chosen]


def frozen_norm_layers(net: nn.Module) -> list[nn.Module]:
    """The normalisation layers all of whose parameters are frozen: they must keep their running statistics
    (train mode would update them from the micro batches even with no gradient)."""
    out = []
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._NormBase):
            own = list(module.parameters(recurse=False))
            if own and not any(p.requires_grad for p in own):
                out.append(module)
    return out


def parameter_groups(
    net: nn.Module, lr: float | None, head_lr: float | None, num_classes: int
) -> list[dict] | None:
    """Optimizer groups with the head at `head_lr` and the rest at the optimizer's lr (None: one group);
    frozen parameters are left out."""
    trainable = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    if head_lr is None:
        return None
    head = set(head_parameter_names(net, num_classes))
    if not head:
        raise ValueError(f"model.head_lr: {type(net).__name__} has no layer with {num_classes} outputs")
    groups = [
        {"params": [p for n, p in trainable if n not in head], "name": BACKBONE},
        {"params": [p for n, p in trainable if n in head], "lr": float(head_lr), "name": "head"},
    ]
    if lr is not None:
        groups[0]["lr"] = float(lr)
    return [g for g in groups if g["params"]]
