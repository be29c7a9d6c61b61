"""A trained MERLin model rebuilt from its checkpoint alone, turning clips (Samples) into class probabilities.

The checkpoint's `merlin` entry holds the network config (`net`) and the input pipeline (`pipeline`, see
training/pipeline.py): feature specs, normalisation, the training subjects' standardisation statistics and
the class names. `Predictor.from_checkpoint` checks all of it before anything runs:

- a file that is not a MERLin checkpoint, or one from a MERLin that did not keep its pipeline, or one with a
  newer pipeline format, is refused with a message naming the file;
- each feature spec is rebuilt and its cache key compared with the one recorded: a different key means
  this installation would compute other inputs than the network was trained on (another MERLin features
  version, another OpenCV flow implementation), and is refused, naming the input;
- the network must be one of this repository's (`models.`), and the weights must fill it exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from datamodules.samples import Sample
from models.svm import ESTIMATOR_KEY
from preprocessing.features import FeatureError, FeatureSpec, compute_features, spec_from_fields
from training.checkpoints import CheckpointError, read_checkpoint
from training.pipeline import PIPELINE_FORMAT

log = logging.getLogger(__name__)

NET_PREFIX = "net."


@dataclass
class Predictor:
    """A network in eval mode behind the exact input pipeline it was trained with."""

    net: torch.nn.Module
    specs: dict[str, FeatureSpec]  # {input name: spec}, in the network's argument order
    normalize: dict[str, str]
    statistics: dict[str, tuple[torch.Tensor, torch.Tensor]]
    classes: tuple[str, ...]
    label_map: str
    path: Path
    experiment: str = ""
    train_subjects: tuple[str, ...] = ()

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(self.specs)

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> Predictor:
        path = Path(path)
        checkpoint = read_checkpoint(path)
        entry = checkpoint.get("merlin")
        if not isinstance(entry, Mapping) or "state_dict" not in checkpoint:
            raise CheckpointError(
                f"{path} is not a checkpoint written by MERLin's train.py (no `merlin` entry); predict.py "
                "needs RUN_DIR/last.ckpt of a run (data.protocol=all trains one on every subject)"
            )
        pipeline = entry.get("pipeline")
        if not isinstance(pipeline, Mapping):
            raise CheckpointError(
                f"{path} was written by a MERLin version that did not keep its input pipeline (feature "
                "spec, normalisation statistics, classes); retrain it with this version to use it here"
            )
        if int(pipeline.get("format", 0)) > PIPELINE_FORMAT:
            raise CheckpointError(
                f"{path} has pipeline format {pipeline.get('format')}, newer than this MERLin reads "
                f"({PIPELINE_FORMAT}); update MERLin"
            )
        if pipeline.get("fold_transforms"):
            raise CheckpointError(
                f"{path}: inputs {pipeline['fold_transforms']} pass through a fitted fold transform (e.g. "
                "STRCN-A's active pixels), which predict.py does not rebuild yet"
            )
        specs = {}
        for name in pipeline["inputs"]:
            try:
                spec = spec_from_fields(pipeline["features"][name])
            except (FeatureError, TypeError, ValueError) as err:
                raise CheckpointError(
                    f"{path}: input {name!r} has a feature spec this MERLin cannot build: {err}"
                ) from err
            recorded = pipeline["feature_keys"][name]
            if spec.key() != recorded:
                raise CheckpointError(
                    f"{path}: input {name!r} was computed with another feature spec than this "
                    f"installation computes (key {recorded[:12]} in the checkpoint, {spec.key()[:12]} "
                    "here: another MERLin features version or OpenCV flow implementation); retrain it, or "
                    "use the MERLin it was made with"
                )
            specs[name] = spec
        statistics = {
            name: (
                torch.tensor(pipeline["statistics"][name]["mean"], dtype=torch.float32),
                torch.tensor(pipeline["statistics"][name]["std"], dtype=torch.float32),
            )
            for name in specs
        }
        classes = tuple(pipeline["classes"])
        if ESTIMATOR_KEY in checkpoint:  # a closed-form model (models.svm): a fitted scikit-learn pipeline
            net = EstimatorNet(_estimator(path, checkpoint[ESTIMATOR_KEY]), len(classes))
        else:
            net = _network(path, entry.get("net"), checkpoint["state_dict"], len(classes))
        return cls(
            net=net,
            specs=specs,
            normalize=dict(pipeline["normalize"]),
            statistics=statistics,
            classes=classes,
            label_map=str(pipeline.get("label_map", "")),
            path=path,
            experiment=str(entry.get("experiment", "")),
            train_subjects=tuple(entry.get("train_subjects") or ()),
        )

    def features(self, sample: Sample) -> dict[str, np.ndarray]:
        """The raw inputs of one clip, computed exactly as train.py computed them for training."""
        return {name: compute_features(sample, spec) for name, spec in self.specs.items()}

    def network_inputs(self, raw: Mapping[str, np.ndarray]) -> list[torch.Tensor]:
        """Raw inputs of a batch ({name: (N, ...)}) -> what the network takes: normalised per sample, then
        standardised with the training subjects' statistics (MERDataModule.transform without augmentation)."""
        from datamodules.normalize import normalize_per_sample

        out = []
        for name in self.inputs:
            x = torch.as_tensor(np.asarray(raw[name], dtype=np.float32))
            x = normalize_per_sample(x, self.normalize[name])
            mean, std = self.statistics[name]
            out.append((x - mean) / std)
        return out

    @torch.no_grad()
    def probabilities(self, raw: Mapping[str, np.ndarray]) -> np.ndarray:
        """(N, K) class probabilities of a batch of raw inputs."""
        logits = self.net(*self.network_inputs(raw))
        return torch.softmax(logits.float(), dim=1).numpy()

    def predict(self, samples: Sequence[Sample]) -> np.ndarray:
        """(N, K) class probabilities of clips, in `classes` order."""
        if not samples:
            return np.zeros((0, len(self.classes)), dtype=np.float32)
        per_sample = [self.features(s) for s in samples]
        raw = {name: np.stack([f[name] for f in per_sample]) for name in self.inputs}
        return self.probabilities(raw)


class EstimatorNet(torch.nn.Module):
    """A fitted SVM behind a network's call: flattened, concatenated inputs -> the scores whose softmax is
    what its fold reported as probabilities (models.svm.SVMClassifier.predict)."""

    def __init__(self, estimator, num_classes: int) -> None:
        super().__init__()
        from models.svm import SVMClassifier

        self.svm = SVMClassifier(tuple(str(c) for c in range(num_classes)), estimator=estimator)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = torch.cat([t.reshape(len(t), -1) for t in inputs], dim=1).double().numpy()
        _, probs = self.svm.predict(x)
        return torch.log(torch.as_tensor(probs).clamp_min(1e-30))  # softmax(log p) == p


def _estimator(path: Path, data: torch.Tensor):
    from models.svm import load_estimator

    try:
        return load_estimator(bytes(data.numpy().tobytes()), where=str(path))
    except Exception as err:  # skops raises a variety of errors on a damaged stream
        raise CheckpointError(f"{path}: its stored estimator cannot be loaded ({err})") from err


def _network(path: Path, net_cfg, state_dict: Mapping, num_classes: int) -> torch.nn.Module:
    """The checkpoint's network, built from its recorded config and filled exactly with its weights."""
    from hydra.utils import instantiate

    if not isinstance(net_cfg, Mapping) or "_target_" not in net_cfg:
        raise CheckpointError(f"{path} records no network config (`merlin.net`); it cannot be rebuilt")
    target = str(net_cfg["_target_"])
    if not target.startswith("models."):
        # A file never chooses which code runs: only this repository's networks are built.
        raise CheckpointError(f"{path}: network {target!r} is not one of MERLin's (models.X.Y)")
    cfg = {k: v for k, v in net_cfg.items() if k != "num_classes"}
    if isinstance(cfg.get("in_chans"), list):
        cfg["in_chans"] = tuple(cfg["in_chans"])
    net = instantiate(cfg, num_classes=num_classes)
    weights = {k[len(NET_PREFIX) :]: v for k, v in state_dict.items() if k.startswith(NET_PREFIX)}
    try:
        net.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise CheckpointError(f"{path}: its weights do not fit the network it records ({first})") from err
    net.eval()
    return net
