"""Load local weights into a network for fine-tuning, dropping and reporting what does not fit.

Accepts a Lightning checkpoint (a dict whose `state_dict` holds the LightningModule's tensors, so the
network's keys carry its attribute name, e.g. `net.`) or a plain `state_dict` saved with `torch.save`
(.pt / .pth).
A tensor is loaded only when its name and shape both match the model; a classifier head trained for another
number of classes is therefore left at its fresh initialisation and listed as mismatched.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """What `load_weights` did with each tensor name.

    missing_keys: in the model, not in the checkpoint (left as initialised).
    unexpected_keys: in the checkpoint (after prefix stripping), not in the model (ignored).
    mismatched_keys: (name, checkpoint shape, model shape) for names in both whose shapes differ (not loaded).
    loaded_keys: names copied into the model.
    """

    path: str = ""
    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    mismatched_keys: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    loaded_keys: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        """True when every model tensor was loaded and nothing in the checkpoint was left over."""
        return not (self.missing_keys or self.unexpected_keys or self.mismatched_keys)

    def __str__(self) -> str:
        total = len(self.loaded_keys) + len(self.missing_keys) + len(self.mismatched_keys)
        lines = [f"loaded {len(self.loaded_keys)}/{total} model tensors from {self.path}"]
        if self.mismatched_keys:
            shapes = ", ".join(f"{k} {list(c)} vs model {list(m)}" for k, c, m in self.mismatched_keys)
            lines.append(f"  shape mismatch (kept model init): {shapes}")
        if self.missing_keys:
            lines.append(f"  missing in checkpoint (kept model init): {', '.join(self.missing_keys)}")
        if self.unexpected_keys:
            lines.append(f"  unexpected in checkpoint (ignored): {', '.join(self.unexpected_keys)}")
        return "\n".join(lines)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        # weights_only: a checkpoint file may come from anywhere; never run its pickled code.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise RuntimeError(
            f"{path} holds objects other than tensors and plain containers, so it cannot be read with "
            f"weights_only=True; re-save its state_dict alone (torch.save(model.state_dict(), ...)). ({e})"
        ) from e
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} is neither a Lightning checkpoint nor a state_dict of tensors")
    return dict(obj)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a local Lightning checkpoint or plain state_dict file, read with weights_only=True,
    unmatched and unrenamed: for loaders that must map another layout's names onto a network first.

    Raises:
        FileNotFoundError: `path` does not exist (the message names it).
        RuntimeError / ValueError: as `load_weights`, for unsafe pickles and files that hold no state_dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    return _read_state_dict(path)


def _strip(key: str, model_keys: set[str], prefixes: Iterable[str]) -> str:
    # Strip repeatedly ("module.net.conv1.weight" from DDP) but stop as soon as the name is a model key, so a
    # model whose own submodule is called `model` or `net` keeps its names.
    prefixes = tuple(prefixes)
    while key not in model_keys:
        prefix = next((p for p in prefixes if key.startswith(p)), None)
        if prefix is None:
            break
        key = key[len(prefix) :]
    return key


def match_tensors(
    model: nn.Module,
    checkpoint: Mapping[str, torch.Tensor],
    strip_prefixes: Iterable[str] = ("net.", "model.", "module."),
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """({model name: tensor} of the checkpoint tensors that fit `model` by name and shape, the report of
    what did not). Nothing is loaded; `load_weights` and `models.finetune` load the dict."""
    target = model.state_dict()
    model_keys = set(target)
    report = LoadReport()
    to_load: dict[str, torch.Tensor] = {}
    for raw_key, tensor in checkpoint.items():
        key = _strip(raw_key, model_keys, strip_prefixes)
        if key not in model_keys:
            report.unexpected_keys.append(key)
        elif tensor.shape != target[key].shape:
            report.mismatched_keys.append((key, tuple(tensor.shape), tuple(target[key].shape)))
        else:
            to_load[key] = tensor
    mismatched = {k for k, _, _ in report.mismatched_keys}
    report.missing_keys = [k for k in target if k not in to_load and k not in mismatched]
    report.loaded_keys = [k for k in target if k in to_load]
    return to_load, report


def load_weights(
    model: nn.Module,
    path: str | Path,
    *,
    strip_prefixes: Iterable[str] = ("net.", "model.", "module."),
    strict: bool = False,
) -> LoadReport:
    """Copy the tensors of checkpoint `path` whose names and shapes match into `model` (in place, on CPU
    or wherever the model lives).

    Args:
        model: the network to fill (its parameters and buffers, e.g. BatchNorm running statistics).
        path: a Lightning `.ckpt` or a plain state_dict `.pt` / `.pth` file.
        strip_prefixes: leading name parts removed from checkpoint keys (LightningModule attribute, DDP).
        strict: raise instead of skipping when anything is missing, unexpected or of another shape; the model
            is then left untouched.

    Returns:
        the LoadReport, also logged (warning level when anything was not loaded).

    Raises:
        FileNotFoundError: `path` does not exist.
        RuntimeError: `strict` and the checkpoint does not fit exactly, or the file needs unsafe unpickling.
    """
    path = Path(path)
    checkpoint = read_state_dict(path)
    to_load, report = match_tensors(model, checkpoint, strip_prefixes)
    report.path = str(path)

    if strict and not report.exact:
        raise RuntimeError(f"strict weight loading failed for {type(model).__name__}:\n{report}")
    # Names and shapes are already checked, so strict=False here only allows the partial dict.
    model.load_state_dict(to_load, strict=False)
    log.log(logging.INFO if report.exact else logging.WARNING, "%s", report)
    return report
