"""Feature tensors for one fold: `MERDataModule(features, folds, fold=k)`.

Features of every sample are computed (or read from the cache) once per experiment into a `FeatureSet`;
each fold's data module slices it. Batches are dicts `{"x", "y", "sample_id", "index"}`. The dataloaders
serve raw features (u, v in pixels); `on_after_batch_transfer` then augments (training only), normalises per
sample, and standardises with statistics of the training fold, on whatever device the batch is on.
The epoch order and the augmentation are functions of `seed` alone, never of `num_workers`.
Nothing learned from data (normalisation statistics, class counts for weighting) ever sees a test subject.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from datamodules.augment import FlowAugment
from datamodules.protocols import Fold, LabelMap, split_indices
from datamodules.samples import Sample, check_unique_ids, validate_sample

log = logging.getLogger(__name__)

NORMALIZATIONS = ("minmax", "none")
STANDARDIZATIONS = ("none", "channel", "zero_center")
# The augmentation stream is seeded with `seed + AUGMENT_SEED_OFFSET` (mod 2**64): derived from the fold's
# seed, but distinct from the shuffling stream and from every other fold's seed (folds use seed + k).
AUGMENT_SEED_OFFSET = 0x9E3779B97F4A7C15


@dataclass
class FeatureSet:
    """Every sample's features and labels for one experiment. x: (N, C, H, W) float32, raw units."""

    x: torch.Tensor
    y: torch.Tensor  # (N,) int64 class indices
    sample_ids: list[str]
    subjects: list[str]
    datasets: list[str]
    clips: list[str]
    classes: tuple[str, ...]
    channels: tuple[str, ...]
    exclusions: list = field(default_factory=list)  # protocols.Exclusion of samples the label map dropped
    # (sample_id, reason naming the file) of samples left out because a frame could not be read (lenient mode)
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = self.x.shape[0]
        for name in ("y", "sample_ids", "subjects", "datasets", "clips"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"FeatureSet.{name} has {len(getattr(self, name))} entries for {n} samples")
        if self.x.ndim != 4 or self.x.shape[1] != len(self.channels):
            raise ValueError(f"features of shape {tuple(self.x.shape)} do not match channels {self.channels}")

    def __len__(self) -> int:
        return self.x.shape[0]


def build_feature_set(
    samples: Sequence[Sample],
    labels: LabelMap,
    spec,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    workers: int = 0,
    strict: bool = False,
) -> FeatureSet:
    """Validate samples, map their labels, and compute (or read cached) features for all of them.

    A sample whose frames cannot be read (missing, empty or undecodable file) is left out with the reason
    in `FeatureSet.unreadable`, as the readers' lenient mode drops what it cannot use; with `strict=True`
    it is an error naming the file (datamodules.samples.FrameReadError).
    """
    from preprocessing.cache import FeatureCache, cached_features  # deferred: heavy imports

    check_unique_ids(samples)
    for sample in samples:
        validate_sample(sample)
    kept, y, excluded = labels.apply(samples)
    if not kept:
        raise ValueError(f"no samples left after the {labels.name} label map ({len(excluded)} excluded)")
    cache = FeatureCache(cache_dir) if cache_dir is not None else None
    unreadable: list[tuple[int, str]] | None = None if strict else []
    x = cached_features(kept, spec, cache=cache, progress=progress, workers=workers, unreadable=unreadable)
    if unreadable:
        bad = {index for index, _ in unreadable}
        keep = [i for i in range(len(kept)) if i not in bad]
        if not keep:
            raise ValueError(f"no samples left: the frames of all {len(kept)} samples are unreadable")
        x, kept, y = x[keep], [kept[i] for i in keep], [y[i] for i in keep]
    return FeatureSet(
        x=torch.from_numpy(x),
        y=torch.tensor(y, dtype=torch.long),
        sample_ids=[s.sample_id for s in kept],
        subjects=[s.subject for s in kept],
        datasets=[s.dataset for s in kept],
        clips=[s.clip for s in kept],
        classes=labels.classes,
        channels=tuple(spec.channels),
        exclusions=excluded,
        unreadable=[(message.split(":", 1)[0], message) for _, message in unreadable or []],
    )


def normalize_per_sample(x: torch.Tensor, method: str) -> torch.Tensor:
    """Per sample and channel: "minmax" maps each map to [0, 1] (STSTNet's norm_u_v_os); "none" keeps it."""
    if method == "none":
        return x
    if method != "minmax":
        raise ValueError(f"unknown normalize {method!r}; choose from {NORMALIZATIONS}")
    lo = x.amin(dim=(-2, -1), keepdim=True)
    hi = x.amax(dim=(-2, -1), keepdim=True)
    # A constant map (e.g. no motion at all) becomes 0, not NaN.
    return (x - lo) / (hi - lo).clamp_min(1e-8)


class _FoldData(Dataset):
    """Rows of a FeatureSet; `__getitems__` hands the DataLoader a whole batch (no per-item collate)."""

    def __init__(self, features: FeatureSet, indices: Sequence[int]) -> None:
        self.features = features
        self.indices = torch.as_tensor(list(indices), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict:
        return self.__getitems__([i])

    def __getitems__(self, positions: list[int]) -> dict:
        rows = self.indices[torch.as_tensor(positions, dtype=torch.long)]
        return {
            "x": self.features.x[rows],
            "y": self.features.y[rows],
            "sample_id": [self.features.sample_ids[r] for r in rows.tolist()],
            "index": rows,
        }


def _keep_batch(batch: dict) -> dict:
    return batch


class EpochShuffle(Sampler[int]):
    """A fresh permutation of range(n) per epoch, a function of `generator`'s seed and the epoch only.

    Each `__iter__` makes, at its start and before yielding, exactly the draws that a single-process
    `DataLoader(shuffle=True, generator=generator)` makes per epoch: the iterator's worker base seed (one
    int64), RandomSampler's `randperm(n)` and its trailing `randperm(n)[:0]`. So the order matches what
    MERLin's loaders gave before this sampler existed, whatever `num_workers` is: a multi-process loader with
    persistent workers draws its base seed only once, and its prefetching would move RandomSampler's draws
    relative to anything else sharing the generator.
    """

    def __init__(self, n: int, generator: torch.Generator) -> None:
        self.n = n
        self.generator = generator

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)  # the old per-epoch base seed
        order = torch.randperm(self.n, generator=self.generator).tolist()
        torch.randperm(self.n, generator=self.generator)  # RandomSampler's trailing randperm(n)[:0]
        return iter(order)


class MERDataModule(L.LightningDataModule):
    """Train and test data of fold `fold` of `folds`; the test set is the fold's held-out subject(s)."""

    def __init__(
        self,
        features: FeatureSet,
        folds: Sequence[Fold],
        fold: int,
        batch_size: int = 256,
        normalize: str = "minmax",
        standardize: str = "none",
        augment: FlowAugment | None = None,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0 <= fold < len(folds):
            raise ValueError(f"fold {fold} does not exist: this protocol has folds 0..{len(folds) - 1}")
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"unknown normalize {normalize!r}; choose from {NORMALIZATIONS}")
        if standardize not in STANDARDIZATIONS:
            raise ValueError(f"unknown standardize {standardize!r}; choose from {STANDARDIZATIONS}")
        self.features = features
        self.fold = folds[fold]
        self.batch_size = batch_size
        self.normalize = normalize
        self.standardize = standardize
        self.augment = augment
        self.num_workers = num_workers
        self.seed = seed
        self.train_idx, self.test_idx = split_indices(features.subjects, self.fold)
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None
        # Three streams, so that nothing but the seed decides a batch: the epoch order (`_generator`, drawn
        # only by EpochShuffle), the augmentation (`_augment_generator`) and the DataLoader's own generator
        # (worker base seeds; given so that the global RNG is not consumed). Un-augmented runs shuffle
        # exactly as before the streams were split; augmented runs changed their numbers with it (the
        # augmentation used to share the shuffling stream, which made results depend on num_workers).
        self._generator = torch.Generator().manual_seed(seed)
        self._augment_generator = torch.Generator().manual_seed((seed + AUGMENT_SEED_OFFSET) % 2**64)
        self._loader_generator = torch.Generator().manual_seed(seed)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.features.classes

    @property
    def train_class_counts(self) -> torch.Tensor:
        """(K,) int64 samples per class in the training fold (for class-weighted losses)."""
        return torch.bincount(self.features.y[self.train_idx], minlength=len(self.classes))

    def setup(self, stage: str | None = None) -> None:
        if self.mean is not None:
            return
        # Statistics from the training subjects only, on normalised, un-augmented features.
        train = normalize_per_sample(self.features.x[self.train_idx], self.normalize)
        if self.standardize == "channel":
            self.mean = train.mean(dim=(0, 2, 3), keepdim=True)[0]
            self.std = train.std(dim=(0, 2, 3), keepdim=True)[0].clamp_min(1e-6)
        elif self.standardize == "zero_center":  # STSTNet's MATLAB 'zerocenter': minus the mean image
            self.mean = train.mean(dim=0)
            self.std = torch.ones(1)
        else:
            self.mean, self.std = torch.zeros(1), torch.ones(1)

    def transform(self, x: torch.Tensor, train: bool) -> torch.Tensor:
        """Raw features -> network input: augment (train only), normalise per sample, standardise."""
        if self.mean is None:
            self.setup()
        if train and self.augment is not None:
            x = self.augment(x, generator=self._augment_generator)
        x = normalize_per_sample(x, self.normalize)
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        training = self.trainer is not None and self.trainer.training
        return {**batch, "x": self.transform(batch["x"], train=training)}

    def _loader(self, indices: Sequence[int], shuffle: bool) -> DataLoader:
        data = _FoldData(self.features, indices)
        return DataLoader(
            data,
            batch_size=self.batch_size,
            sampler=EpochShuffle(len(data), self._generator) if shuffle else None,
            generator=self._loader_generator if shuffle else None,
            collate_fn=_keep_batch,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_idx, shuffle=True)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_idx, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()
