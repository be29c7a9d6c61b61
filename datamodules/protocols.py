"""Protocols: how source emotion words become classes, and how subjects are split into folds.

A `LabelMap` turns each database's own vocabulary into the classes of a protocol (or excludes the sample,
with the reason); `loso_folds` and `lodo_folds` define leave-one-subject-out and leave-one-database-out
splits. Subjects are dataset-qualified everywhere, so folds over a composite never merge two databases'
subjects that share a number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from datamodules.samples import Sample

# -------------------------------------------------------------------------------------------------------
# Label maps


@dataclass(frozen=True)
class Exclusion:
    sample_id: str
    reason: str


@dataclass(frozen=True)
class LabelMap:
    """Per database, source emotion word -> class name; words mapped to None are excluded on purpose.

    A word a database's entry does not list at all is an error (an unknown emotion word is a typo or a new
    release, never something to drop silently).
    """

    name: str
    classes: tuple[str, ...]
    words: Mapping[str, Mapping[str, str | None]] = field(repr=False)

    def __post_init__(self) -> None:
        for dataset, table in self.words.items():
            bad = {c for c in table.values() if c is not None} - set(self.classes)
            if bad:
                raise ValueError(f"label map {self.name}: {dataset} maps to unknown classes {sorted(bad)}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_of(self, sample: Sample) -> str | None:
        table = self.words.get(sample.dataset)
        if table is None:
            raise ValueError(
                f"label map {self.name!r} does not cover database {sample.dataset!r} "
                f"(covers {sorted(self.words)})"
            )
        if sample.emotion not in table:
            raise ValueError(
                f"{sample.sample_id}: emotion {sample.emotion!r} is not in the {self.name!r} vocabulary for "
                f"{sample.dataset} ({sorted(table)})"
            )
        return table[sample.emotion]

    def apply(self, samples: Sequence[Sample]) -> tuple[list[Sample], list[int], list[Exclusion]]:
        """Samples kept, their class indices, and every excluded sample with its reason."""
        kept, labels, excluded = [], [], []
        for sample in samples:
            cls = self.class_of(sample)
            if cls is None:
                excluded.append(Exclusion(sample.sample_id, f"{sample.emotion!r} is not a {self.name} class"))
                continue
            kept.append(sample)
            labels.append(self.classes.index(cls))
        return kept, labels, excluded


_CASME2_NEG = {"disgust": "negative", "repression": "negative"}
_SAMM_NEG = {w: "negative" for w in ("Anger", "Contempt", "Disgust", "Fear", "Sadness")}

LABEL_MAPS: dict[str, LabelMap] = {
    "synthetic": LabelMap(
        "synthetic",
        ("negative", "positive", "surprise"),
        {"synthetic": {"negative": "negative", "positive": "positive", "surprise": "surprise"}},
    ),
    # The synthetic CASME II-like preset (data=synthetic_casme2like): CASME II's five words and class order.
    "synthetic_casme2like": LabelMap(
        "synthetic_casme2like",
        ("happiness", "surprise", "disgust", "repression", "others"),
        {"synthetic": {w: w for w in ("happiness", "surprise", "disgust", "repression", "others")}},
    ),
    # MEGC2019 composite (specs/datasets.md section 5). The sample-level exclusions of the official list
    # (CASME II apex '/' and apex == onset) are applied by the composite reader, not by word.
    "megc2019": LabelMap(
        "megc2019",
        ("negative", "positive", "surprise"),
        {
            "casme2": {
                **_CASME2_NEG,
                "happiness": "positive",
                "surprise": "surprise",
                "others": None,
                "sadness": None,
                "fear": None,
            },
            "samm": {**_SAMM_NEG, "Happiness": "positive", "Surprise": "surprise", "Other": None},
            "smic": {"negative": "negative", "positive": "positive", "surprise": "surprise"},
            "synthetic": {"negative": "negative", "positive": "positive", "surprise": "surprise"},
        },
    ),
    # SMIC on its own (any subset): its folder names are already the three classes.
    "smic_3class": LabelMap(
        "smic_3class",
        ("negative", "positive", "surprise"),
        {
            d: {"negative": "negative", "positive": "positive", "surprise": "surprise"}
            for d in ("smic", "smic_vis", "smic_nir")
        },
    ),
    "casme2_5class": LabelMap(
        "casme2_5class",
        ("happiness", "surprise", "disgust", "repression", "others"),
        {
            "casme2": {
                "happiness": "happiness",
                "surprise": "surprise",
                "disgust": "disgust",
                "repression": "repression",
                "others": "others",
                "sadness": None,
                "fear": None,
            }
        },
    ),
    "samm_5class": LabelMap(
        "samm_5class",
        ("Anger", "Contempt", "Happiness", "Surprise", "Other"),
        {
            "samm": {
                "Anger": "Anger",
                "Contempt": "Contempt",
                "Happiness": "Happiness",
                "Surprise": "Surprise",
                "Other": "Other",
                "Disgust": None,
                "Fear": None,
                "Sadness": None,
            }
        },
    ),
    "casme3_7class": LabelMap(
        "casme3_7class",
        ("happy", "disgust", "fear", "anger", "sad", "surprise", "others"),
        {"casme3": {w: w for w in ("happy", "disgust", "fear", "anger", "sad", "surprise", "others")}},
    ),
    # As HTNet's 3-class CAS(ME)^3 list: negative 449, positive 54, surprise 184 without `others`.
    "casme3_3class": LabelMap(
        "casme3_3class",
        ("negative", "positive", "surprise"),
        {
            "casme3": {
                **{w: "negative" for w in ("disgust", "fear", "anger", "sad")},
                "happy": "positive",
                "surprise": "surprise",
                "others": None,
            }
        },
    ),
    "ckplus_7class": LabelMap(
        "ckplus_7class",
        ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"),
        {"ckplus": {w: w for w in ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")}},
    ),
    # CK+ in the MEGC2019 classes, for macro-to-micro transfer. (EMR's code maps sadness to *positive*, a
    # known bug: specs/models.md 12.9.)
    "ckplus_megc": LabelMap(
        "ckplus_megc",
        ("negative", "positive", "surprise"),
        {
            "ckplus": {
                **{w: "negative" for w in ("anger", "contempt", "disgust", "fear", "sadness")},
                "happy": "positive",
                "surprise": "surprise",
            }
        },
    ),
}


def label_map(name: str) -> LabelMap:
    try:
        return LABEL_MAPS[name]
    except KeyError:
        raise ValueError(f"unknown label map {name!r}; known: {sorted(LABEL_MAPS)}") from None


# -------------------------------------------------------------------------------------------------------
# Folds


@dataclass(frozen=True)
class Fold:
    """One train/test split: the test set is every sample of `test_subjects`; training is all the rest."""

    index: int
    name: str
    test_subjects: frozenset[str]

    def as_dict(self) -> dict:
        return {"index": self.index, "name": self.name, "test_subjects": sorted(self.test_subjects)}


def natural_key(text: str) -> list:
    """Sort key that orders `s2` before `s10`."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def loso_folds(subjects: Sequence[str]) -> list[Fold]:
    """Leave-one-subject-out: one fold per distinct subject, in natural order."""
    unique = sorted(set(subjects), key=natural_key)
    for s in unique:
        if "/" not in s:
            raise ValueError(f"subject {s!r} is not dataset-qualified (expected e.g. 'casme2/sub01')")
    return [Fold(i, s, frozenset({s})) for i, s in enumerate(unique)]


def lodo_folds(subjects: Sequence[str], datasets: Sequence[str]) -> list[Fold]:
    """Leave-one-database-out: one fold per database, testing on all its subjects."""
    by_dataset: dict[str, set[str]] = {}
    for s, d in zip(subjects, datasets, strict=True):
        by_dataset.setdefault(d, set()).add(s)
    if len(by_dataset) < 2:
        raise ValueError(f"leave-one-database-out needs at least two databases, got {sorted(by_dataset)}")
    return [Fold(i, d, frozenset(by_dataset[d])) for i, d in enumerate(sorted(by_dataset))]


def make_folds(protocol: str, subjects: Sequence[str], datasets: Sequence[str]) -> list[Fold]:
    if protocol == "loso":
        return loso_folds(subjects)
    if protocol == "lodo":
        return lodo_folds(subjects, datasets)
    raise ValueError(f"unknown protocol {protocol!r}; choose 'loso' or 'lodo'")


def split_indices(subjects: Sequence[str], fold: Fold) -> tuple[list[int], list[int]]:
    """(train, test) sample indices of a fold; the test subjects never appear in train."""
    train = [i for i, s in enumerate(subjects) if s not in fold.test_subjects]
    test = [i for i, s in enumerate(subjects) if s in fold.test_subjects]
    if not test:
        raise ValueError(f"fold {fold.name!r} has no test samples")
    if not train:
        raise ValueError(f"fold {fold.name!r} leaves no training samples")
    return train, test
