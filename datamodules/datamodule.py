"""Feature tensors for one fold: `MERDataModule(features, folds, fold=k)`.

Features of every sample are computed (or read from the cache) once per experiment into a `FeatureSet`;
each fold's data module slices it. Batches are dicts `{"x", "y", "sample_id", "index"}`. The dataloaders
serve raw features (u, v in pixels); `on_after_batch_transfer` then augments (training only), normalises per
sample, and standardises with statistics of the training fold, on whatever device the batch is on.
The epoch order and the augmentation are functions of `seed` alone, never of `num_workers`.
Nothing learned from data (normalisation statistics, class counts for weighting) ever sees a test subject.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import secrets
import socket
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from datamodules.au_targets import au_list, au_targets
from datamodules.augment import FlowAugment
from datamodules.disk_array import DiskArray
from datamodules.normalize import NORMALIZATIONS, normalize_per_sample
from datamodules.protocols import Fold, LabelMap, split_indices
from datamodules.samples import Sample, check_unique_ids, validate_sample

log = logging.getLogger(__name__)

STANDARDIZATIONS = ("none", "channel", "zero_center")
# The augmentation stream is seeded with `seed + AUGMENT_SEED_OFFSET` (mod 2**64): derived from the fold's
# seed, but distinct from the shuffling stream and from every other fold's seed (folds use seed + k).
AUGMENT_SEED_OFFSET = 0x9E3779B97F4A7C15


# The name of the input of a single-input experiment: its batches carry it as batch["x"], as always.
SINGLE_INPUT = "x"


class FeatureSet:
    """Every sample's inputs, labels and (optionally) action-unit targets for one experiment.

    inputs: {name: (N, C, H, W) float32 in raw units} (part 2's sequences are (N, T, C, H, W)), one per
        named input of the features config; a single-input experiment has the one input "x", which
        `FeatureSet(x=..., channels=(...))` builds as before named inputs existed.
    channels: {name: channel names of that input}.
    au / au_mask: (N, A) float32 targets and bool mask (True: known) over `au_names`, or None.
    An input may also be a NumPy array or a `datamodules.disk_array.DiskArray` (an input too large for
    memory, read from disk a batch at a time): rows are taken with `take`, so only a batch is ever read,
    and the training statistics are computed in chunks.
    """

    def __init__(
        self,
        y: torch.Tensor,
        sample_ids: list[str],
        subjects: list[str],
        datasets: list[str],
        clips: list[str],
        classes: tuple[str, ...],
        channels: Mapping[str, Sequence[str]] | Sequence[str],
        x: torch.Tensor | None = None,
        inputs: Mapping[str, torch.Tensor] | None = None,
        exclusions: list | None = None,
        unreadable: list[tuple[str, str]] | None = None,
        au: torch.Tensor | None = None,
        au_mask: torch.Tensor | None = None,
        au_names: Sequence[str] = (),
    ) -> None:
        if (x is None) == (inputs is None):
            raise ValueError("give FeatureSet either x (one input) or inputs (named inputs)")
        if inputs is None:
            inputs = {SINGLE_INPUT: x}
            channels = {SINGLE_INPUT: tuple(channels)}
        if not isinstance(channels, Mapping) or set(channels) != set(inputs):
            raise ValueError(f"channels must name the channels of each input {sorted(inputs)}")
        self.inputs = dict(inputs)
        self.channels = {name: tuple(channels[name]) for name in self.inputs}
        self.y = y
        self.sample_ids, self.subjects, self.datasets, self.clips = sample_ids, subjects, datasets, clips
        self.classes = tuple(classes)
        self.exclusions = list(exclusions or [])  # protocols.Exclusion of samples the label map dropped
        # (sample_id, reason naming the file) of samples left out because a frame could not be read
        self.unreadable = list(unreadable or [])
        self.au, self.au_mask, self.au_names = au, au_mask, tuple(au_names)
        n = len(y)
        for name in ("sample_ids", "subjects", "datasets", "clips"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"FeatureSet.{name} has {len(getattr(self, name))} entries for {n} samples")
        for name, array in self.inputs.items():
            # A hand-crafted descriptor is one vector per sample: (N, D), one channel naming it.
            vector = array.ndim == 2 and len(self.channels[name]) == 1
            maps = array.ndim in (4, 5) and array.shape[-3] == len(self.channels[name])
            if array.shape[0] != n or not (vector or maps):
                raise ValueError(
                    f"input {name!r} of shape {tuple(array.shape)} does not match {n} samples of channels "
                    f"{self.channels[name]} ((N, C, H, W), (N, T, C, H, W), or (N, D) for one descriptor)"
                )
        if (au is None) != (au_mask is None) or (au is not None and au.shape != (n, len(self.au_names))):
            raise ValueError(f"au and au_mask must both be (N, A) = ({n}, {len(self.au_names)}) or both None")

    @property
    def x(self) -> torch.Tensor:
        """The input of a single-input experiment."""
        if SINGLE_INPUT not in self.inputs:
            raise AttributeError(f"this experiment has named inputs {sorted(self.inputs)}, not a single x")
        return self.inputs[SINGLE_INPUT]

    @x.setter
    def x(self, value: torch.Tensor) -> None:
        self.inputs[SINGLE_INPUT] = value

    def __len__(self) -> int:
        return len(self.y)

    def shapes(self) -> str:
        """`3x28x28` (single input) or `flow 3x227x227, strain 1x227x227`, for logs."""
        parts = {name: "x".join(str(s) for s in a.shape[1:]) for name, a in self.inputs.items()}
        if list(parts) == [SINGLE_INPUT]:
            return parts[SINGLE_INPUT]
        return ", ".join(f"{name} {shape}" for name, shape in parts.items())


def take(array, rows: torch.Tensor) -> torch.Tensor:
    """Rows of an input held as a tensor, a (memory-mapped) NumPy array or a DiskArray, as a tensor."""
    if isinstance(array, torch.Tensor):
        return array[rows]
    return torch.from_numpy(np.ascontiguousarray(array[rows.numpy()]))


_STREAM_NAME = re.compile(r"^[^-]+-(?P<pid>\d+)-[0-9a-f]+(?:@(?P<host>[A-Za-z0-9._-]+))?\.npy$")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "host"


def stream_path(cache_dir: str | Path | None, spec_key: str) -> Path:
    """A new file for a streamed input: <cache_dir>/streams/<spec key>-<pid>-<random>@<host>.npy (the
    system's temp folder without a cache). One per process and input; deleted when the run ends. Files that
    killed runs on this host left behind (their pid no longer runs here) are deleted first: each can be
    gigabytes. Another host's files are never touched: a pid says nothing about a process elsewhere (a cache
    folder shared by cluster nodes); names without a host are an earlier MERLin's, made on this host."""
    root = Path(cache_dir) if cache_dir is not None else Path(tempfile.gettempdir()) / "merlin"
    folder = root / "streams"
    host = _host()
    for old in folder.glob("*.npy") if folder.is_dir() else ():
        match = _STREAM_NAME.match(old.name)
        if match is None or match["host"] not in (None, host):
            continue  # not ours, or another host's
        try:
            os.kill(int(match["pid"]), 0)
        except ProcessLookupError:
            old.unlink(missing_ok=True)  # its process is gone
        except OSError:
            continue  # another user's live process
    return folder / f"{spec_key[:16]}-{os.getpid()}-{secrets.token_hex(4)}@{host}.npy"


def feature_specs(spec) -> dict:
    """{input name: FeatureSpec} of a features config: one spec is the single input "x"."""
    if isinstance(spec, Mapping):
        if not spec:
            raise ValueError("the features config names no inputs")
        return dict(spec)
    return {SINGLE_INPUT: spec}


def build_feature_set(
    samples: Sequence[Sample],
    labels: LabelMap,
    spec,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    workers: int | str = 0,
    strict: bool = False,
    action_units: Sequence[str] | None = None,
    stream_over_mb: float | None = None,
) -> FeatureSet:
    """Validate samples, map their labels, and compute (or read cached) every input of every sample.

    spec: one FeatureSpec (the single input "x") or {input name: FeatureSpec}; each input has its own cache
    entries. action_units: an AU list (`["1", "2", "4", ...]`): AU targets and masks from each sample's AU
    codes (datamodules.au_targets); None: no AU targets.
    A sample whose frames cannot be read (missing, empty or undecodable file) is left out with the reason
    in `FeatureSet.unreadable`, as the readers' lenient mode drops what it cannot use; with `strict=True`
    it is an error naming the file (datamodules.samples.FrameReadError).
    stream_over_mb: an input whose rows take more than this many MiB is not held in memory but streamed
    from a file beside the cache (`DiskArray`, `stream_path`); None holds every input in memory. Either way
    the batches are the same.
    """
    from preprocessing.cache import FeatureCache, cached_features  # deferred: heavy imports
    from preprocessing.flow import clear_flow_memo

    specs = feature_specs(spec)
    check_unique_ids(samples)
    for sample in samples:
        validate_sample(sample)
    kept, y, excluded = labels.apply(samples)
    if not kept:
        raise ValueError(f"no samples left after the {labels.name} label map ({len(excluded)} excluded)")
    cache = FeatureCache(cache_dir) if cache_dir is not None else None
    arrays: dict[str, np.ndarray] = {}
    failed: dict[int, str] = {}
    try:
        for name, input_spec in specs.items():
            unreadable: list[tuple[int, str]] | None = None if strict else []
            size_mb = len(kept) * int(np.prod(input_spec.shape)) * 4 / 2**20
            stream_to = None
            if stream_over_mb is not None and size_mb > stream_over_mb:
                stream_to = stream_path(cache_dir, input_spec.key())
                log.info("input %s: %.0f MiB, streamed from %s", name, size_mb, stream_to)
            arrays[name] = cached_features(
                kept,
                input_spec,
                cache=cache,
                progress=progress,
                workers=workers,
                unreadable=unreadable,
                stream_to=stream_to,
            )
            for index, message in unreadable or []:
                failed.setdefault(index, message)
    finally:
        clear_flow_memo()  # the inputs that could share a flow field are built
    if failed:
        keep = [i for i in range(len(kept)) if i not in failed]
        if not keep:
            raise ValueError(f"no samples left: the frames of all {len(kept)} samples are unreadable")
        arrays = {name: _rows(a, keep) for name, a in arrays.items()}
        dropped = [failed[i] for i in sorted(failed)]
        kept, y = [kept[i] for i in keep], [y[i] for i in keep]
    else:
        dropped = []
    au = au_mask = None
    if action_units is not None:
        targets, mask = au_targets([s.action_units for s in kept], action_units)
        au, au_mask = torch.from_numpy(targets), torch.from_numpy(mask)
    return FeatureSet(
        inputs={name: a if isinstance(a, DiskArray) else torch.from_numpy(a) for name, a in arrays.items()},
        channels={name: tuple(s.channels) for name, s in specs.items()},
        y=torch.tensor(y, dtype=torch.long),
        sample_ids=[s.sample_id for s in kept],
        subjects=[s.subject for s in kept],
        datasets=[s.dataset for s in kept],
        clips=[s.clip for s in kept],
        classes=labels.classes,
        exclusions=excluded,
        unreadable=[(message.split(":", 1)[0], message) for message in dropped],
        au=au,
        au_mask=au_mask,
        au_names=au_list(action_units) if action_units is not None else (),
    )


def poisoned_features(features: FeatureSet, rows: Sequence[int]) -> FeatureSet:
    """A copy of `features` whose `rows` (a fold's held-out subject) carry NaN inputs and AU targets and the
    label `len(classes)`, which no loss, metric or class count accepts (the leakage canary). The other rows
    are the same values, so a recipe that never reads `rows` fits exactly the same weights."""
    rows = torch.as_tensor(list(rows), dtype=torch.long)
    inputs = {}
    for name, array in features.inputs.items():
        if isinstance(array, DiskArray):
            raise ValueError(
                f"guard.poison_test copies every input to poison the held-out rows, and input {name!r} is "
                "streamed from disk; hold it in memory (datamodule.stream_over_mb=null)"
            )
        copy_ = array.clone() if isinstance(array, torch.Tensor) else torch.from_numpy(np.array(array))
        copy_[rows] = float("nan")
        inputs[name] = copy_
    y = features.y.clone()
    y[rows] = len(features.classes)
    au = None if features.au is None else features.au.clone()
    if au is not None:
        au[rows] = float("nan")
    return FeatureSet(
        inputs=inputs,
        channels=features.channels,
        y=y,
        sample_ids=features.sample_ids,
        subjects=features.subjects,
        datasets=features.datasets,
        clips=features.clips,
        classes=features.classes,
        exclusions=features.exclusions,
        unreadable=features.unreadable,
        au=au,
        au_mask=features.au_mask,
        au_names=features.au_names,
    )


def _rows(array, rows: list[int]):
    return array.subset(rows) if isinstance(array, DiskArray) else array[rows]


# Rows per chunk of the streamed statistics: as many as fit in this many bytes (at least one). Each chunk is
# held about four times (float32 rows, normalised, float64, its square): 128 MiB keeps that near 0.5 GiB.
STATISTICS_CHUNK_BYTES = 128 * 2**20


def training_statistics(
    array, rows: Sequence[int], normalize: str, method: str, chunk: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) that `standardize=method` subtracts and divides by, from rows `rows` of `array` after
    `normalize`: "channel" per channel over samples, (time steps) and pixels; "zero_center" the mean map
    (STSTNet's MATLAB 'zerocenter'), std 1; "none" (0, 1).

    A tensor is reduced at once (as always); any other input (a DiskArray) in chunks of `chunk` rows (by
    default as many as fit in STATISTICS_CHUNK_BYTES), accumulated in float64, so the statistics of an input
    larger than memory never hold more than a chunk.
    """
    if method == "none":
        return torch.zeros(1), torch.ones(1)
    if isinstance(array, torch.Tensor):
        train = normalize_per_sample(take(array, torch.as_tensor(rows, dtype=torch.long)), normalize)
        if method == "channel":
            dims = tuple(d for d in range(train.ndim) if d != train.ndim - 3)
            mean = train.mean(dim=dims, keepdim=True)[0]
            std = train.std(dim=dims, keepdim=True)[0].clamp_min(1e-6)
            return mean, std
        return train.mean(dim=0), torch.ones(1)
    total = total_sq = None
    count = 0
    rows = list(rows)
    if chunk is None:
        row_bytes = 4 * int(np.prod(array.shape[1:]))
        chunk = max(1, STATISTICS_CHUNK_BYTES // row_bytes)
    for start in range(0, len(rows), chunk):
        part = normalize_per_sample(take(array, torch.as_tensor(rows[start : start + chunk])), normalize)
        part = part.double()
        if method == "channel":
            dims = tuple(d for d in range(part.ndim) if d != part.ndim - 3)
            s, sq = part.sum(dim=dims, keepdim=True)[0], (part * part).sum(dim=dims, keepdim=True)[0]
            count += part.numel() // part.shape[-3]
        else:
            s, sq = part.sum(dim=0), None
            count += part.shape[0]
        total = s if total is None else total + s
        total_sq = sq if total_sq is None or sq is None else total_sq + sq
    mean = total / count
    if method == "channel":
        # Unbiased, as torch.std above; the difference of sums is fine in float64 for maps in [0, 1] or px.
        var = ((total_sq - count * mean * mean) / max(count - 1, 1)).clamp_min(0.0)
        return mean.float(), var.sqrt().float().clamp_min(1e-6)
    return mean.float(), torch.ones(1)


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
        batch = {name: take(array, rows) for name, array in self.features.inputs.items()}
        batch.update(
            y=self.features.y[rows],
            sample_id=[self.features.sample_ids[r] for r in rows.tolist()],
            index=rows,
        )
        if self.features.au is not None:
            batch.update(au=self.features.au[rows], au_mask=self.features.au_mask[rows])
        return batch


def _keep_batch(batch: dict) -> dict:
    return batch


def _per_input(value, names: Sequence[str], what: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """One setting for every input (a string) or one per input (a mapping naming each input)."""
    if isinstance(value, str):
        out = dict.fromkeys(names, value)
    elif isinstance(value, Mapping):
        unknown = sorted(set(value) - set(names))
        missing = sorted(set(names) - set(value))
        if unknown or missing:
            raise ValueError(
                f"{what} per input must name each input {list(names)} "
                f"(unknown: {unknown or 'none'}, missing: {missing or 'none'})"
            )
        out = {name: str(value[name]) for name in names}
    else:
        raise ValueError(
            f"{what} must be one of {allowed} or a mapping from input name to one, got {value!r}"
        )
    for name, method in out.items():
        if method not in allowed:
            raise ValueError(f"unknown {what} {method!r} for input {name!r}; choose from {allowed}")
    return out


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
    """Train and test data of fold `fold` of `folds`; the test set is the fold's held-out subject(s).

    normalize / standardize: one method for every input, or {input name: method}. augment: one FlowAugment
    (single input) or {input name: FlowAugment or None}; every input of a sample gets the same random flip
    and angle, so the streams of a two-stream network still show the same face.
    fold_transforms: {input name: transform} learned from the fold's training subjects in `setup` (its
    `fit(array, train_rows)`) and applied last in `transform` (e.g. datamodules.active_pixels.ActivePixels,
    STRCN-A's pixels-by-time image). Each data module fits its own copy.
    generative_augment: a `datamodules.au_generative.AUGenerativeAugment`, fitted in `setup` on the training
    rows only; the training loader then serves those rows and the samples it generates (one named input,
    held in memory, AU targets needed). Statistics and fold transforms still come from the real rows.
    poison_test: the leakage canary (`guard.poison_test`): everything this data module serves or fits
    before the test step sees `features` with the held-out subject's inputs and AU targets replaced by NaN
    and its labels by an invalid class (`poisoned_features`); only `test_dataloader` reads the real rows.
    A recipe that lets the test subject touch a statistic, a sampler, a graph or a batch then ends with
    non-finite weights or an out-of-range label error instead of a quietly inflated score.
    """

    def __init__(
        self,
        features: FeatureSet,
        folds: Sequence[Fold],
        fold: int,
        batch_size: int = 256,
        normalize: str | Mapping[str, str] = "minmax",
        standardize: str | Mapping[str, str] = "none",
        augment: FlowAugment | Mapping[str, FlowAugment | None] | None = None,
        num_workers: int = 0,
        seed: int = 0,
        fold_transforms: Mapping | None = None,
        generative_augment=None,
        poison_test: bool = False,
        validation_subjects: Sequence[str] = (),
    ) -> None:
        super().__init__()
        if not 0 <= fold < len(folds):
            raise ValueError(f"fold {fold} does not exist: this protocol has folds 0..{len(folds) - 1}")
        names = list(features.inputs)
        self.fold = folds[fold]
        self.poison_test = bool(poison_test)
        # The real rows: read by the test step alone. `features` is what fitting sees (poisoned or not).
        self.test_features = features
        if self.poison_test:
            features = poisoned_features(features, split_indices(features.subjects, self.fold)[1])
        self.features = features
        self.batch_size = batch_size
        self.normalize = _per_input(normalize, names, "normalize", NORMALIZATIONS)
        self.standardize = _per_input(standardize, names, "standardize", STANDARDIZATIONS)
        for name, method in self.normalize.items():
            maps = len(features.inputs[name].shape) >= 3  # (N, ..., H, W); a descriptor is (N, D)
            if not maps and (method != "none" or self.standardize[name] != "none"):
                raise ValueError(
                    f"input {name!r} is a vector per sample {tuple(features.inputs[name].shape[1:])} (a "
                    "hand-crafted descriptor), not maps: set datamodule.normalize=none and "
                    "datamodule.standardize=none (model=svm standardises on the training fold itself)"
                )
            if method == "flow_image" and features.channels[name] != ("u", "v", "magnitude"):
                raise ValueError(
                    f"normalize flow_image needs the channels (u, v, magnitude) in input {name!r}, "
                    f"which has {features.channels[name]}"
                )
        if augment is None or isinstance(augment, FlowAugment):
            augment = dict.fromkeys(names, augment) if len(names) == 1 or augment is None else None
            if augment is None:
                raise ValueError("give one FlowAugment per named input ({name: FlowAugment})")
        self.augment = {name: augment.get(name) for name in names}
        unknown = sorted(set(fold_transforms or {}) - set(names))
        if unknown:
            raise ValueError(
                f"fold_transforms name inputs {unknown} that this experiment does not have {names}"
            )
        # Copies: a transform handed to every fold's data module must not carry one fold's fit into another.
        self.fold_transforms = {name: copy.deepcopy(t) for name, t in (fold_transforms or {}).items()}
        self.generative_augment = copy.deepcopy(generative_augment)
        self._train_set: FeatureSet | None = None  # the training rows plus generated ones, when asked for
        self.num_workers = num_workers
        self.seed = seed
        self.train_idx, self.test_idx = split_indices(features.subjects, self.fold)
        # selection=inner: training subjects set aside to choose the epoch (training.selection). They are
        # out of every fitted statistic, count and batch, like the test subject; unlike it, they choose.
        self.validation_subjects = tuple(sorted(validation_subjects))
        if self.validation_subjects:
            wrong = sorted(set(self.validation_subjects) & self.fold.test_subjects)
            if wrong:
                raise ValueError(f"validation subjects {wrong} are fold {self.fold.name}'s test subjects")
            held = set(self.validation_subjects)
            self.val_idx = [i for i in self.train_idx if features.subjects[i] in held]
            self.train_idx = [i for i in self.train_idx if features.subjects[i] not in held]
            if not self.val_idx or not self.train_idx:
                raise ValueError(
                    f"fold {self.fold.name}: validation subjects {list(self.validation_subjects)} leave "
                    f"{len(self.train_idx)} training and {len(self.val_idx)} validation samples"
                )
        else:
            self.val_idx = []
        self.stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
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
    def inputs(self) -> tuple[str, ...]:
        return tuple(self.features.inputs)

    @property
    def mean(self) -> torch.Tensor | None:
        """Standardisation mean of the single input (see `stats` for named inputs)."""
        return self.stats[SINGLE_INPUT][0] if SINGLE_INPUT in self.stats else None

    @property
    def std(self) -> torch.Tensor | None:
        return self.stats[SINGLE_INPUT][1] if SINGLE_INPUT in self.stats else None

    @property
    def train_class_counts(self) -> torch.Tensor:
        """(K,) int64 samples per class in the training fold (for class-weighted losses)."""
        return torch.bincount(self.features.y[self.train_idx], minlength=len(self.classes))

    def setup(self, stage: str | None = None) -> None:
        if self.stats:
            return
        for name in self.inputs:
            # Statistics from the training subjects only, on normalised, un-augmented features.
            self.stats[name] = training_statistics(
                self.features.inputs[name], self.train_idx, self.normalize[name], self.standardize[name]
            )
        for name, fold_transform in self.fold_transforms.items():
            # Fitted on raw training rows only; the held-out subject's clips are never read here.
            fold_transform.fit(self.features.inputs[name], self.train_idx)
        if self.generative_augment is not None:
            self._train_set = self._generated_training_set()

    def _generated_training_set(self) -> FeatureSet:
        from datamodules.au_generative import extended_training_rows

        f = self.features
        if f.au is None:
            raise ValueError("datamodule.au_generative needs AU targets: set datamodule.action_units")
        inputs, y, au, au_mask = extended_training_rows(
            f.inputs, f.y, f.au, f.au_mask, self.train_idx, self.generative_augment
        )
        extra = len(y) - len(self.train_idx)
        log.info("fold %s: %d generated training samples", self.fold.name, extra)

        def rows(values: list) -> list:
            return [values[i] for i in self.train_idx]

        return FeatureSet(
            inputs=inputs,
            channels=f.channels,
            y=y,
            sample_ids=rows(f.sample_ids) + [f"generated/{k}" for k in range(extra)],
            subjects=rows(f.subjects) + ["generated"] * extra,
            datasets=rows(f.datasets) + ["generated"] * extra,
            clips=rows(f.clips) + [f"generated{k}" for k in range(extra)],
            classes=f.classes,
            au=au,
            au_mask=au_mask,
            au_names=f.au_names,
        )

    def transform(self, x: torch.Tensor, train: bool, name: str = SINGLE_INPUT) -> torch.Tensor:
        """Raw input `name` -> network input: augment (train only), normalise per sample, standardise."""
        if not self.stats:
            self.setup()
        augment = self.augment[name]
        if train and augment is not None:
            x = augment(x, generator=self._augment_generator)
        x = normalize_per_sample(x, self.normalize[name])
        mean, std = self.stats[name]
        x = (x - mean.to(x.device)) / std.to(x.device)
        if name in self.fold_transforms:
            x = self.fold_transforms[name](x)
        return x

    def transform_batch(self, batch: dict, train: bool) -> dict:
        """Every named input of a batch through `transform`, with one set of random draws for all."""
        out = dict(batch)
        start = self._augment_generator.get_state()
        for name in self.inputs:
            # Rewind so each input sees the same flips and angles; the state after the last one is kept.
            self._augment_generator.set_state(start)
            out[name] = self.transform(batch[name], train=train, name=name)
        return out

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        training = self.trainer is not None and self.trainer.training
        return self.transform_batch(batch, train=training)

    def _loader(
        self, indices: Sequence[int], shuffle: bool, features: FeatureSet | None = None
    ) -> DataLoader:
        data = _FoldData(features or self.features, indices)
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
        if self.generative_augment is not None:
            self.setup()
            return self._loader(range(len(self._train_set)), shuffle=True, features=self._train_set)
        return self._loader(self.train_idx, shuffle=True)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_idx, shuffle=False, features=self.test_features)

    def evaluation_batches(self, rows: Sequence[int], features: FeatureSet | None = None):
        """Batches of `rows` with the test transforms, without a DataLoader: a per-epoch evaluation
        (training.selection) then draws nothing from any random stream, so the training it watches is
        the training it would be unwatched."""
        data = _FoldData(features or self.features, rows)
        for start in range(0, len(data), self.batch_size):
            positions = list(range(start, min(start + self.batch_size, len(data))))
            yield self.transform_batch(data.__getitems__(positions), train=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()
