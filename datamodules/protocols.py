"""Protocols: how source emotion words become classes, and how subjects are split into folds.

A `LabelMap` turns each database's own vocabulary into the classes of a protocol (or excludes the sample,
with the reason); `loso_folds` and `lodo_folds` define leave-one-subject-out and leave-one-database-out
splits. Subjects are dataset-qualified everywhere, so folds over a composite never merge two databases'
subjects that share a number.
"""

from __future__ import annotations

import random
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
_CKPLUS_CLASSES = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
_CKPLUS_LIKE = ("ckplus", "synthetic_macro")  # CK+ and the synthetic database in its words
_CKPLUS_MEGC = {
    **{w: "negative" for w in ("anger", "contempt", "disgust", "fear", "sadness")},
    "happy": "positive",
    "surprise": "surprise",
}
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
        _CKPLUS_CLASSES,
        {"ckplus": {w: w for w in _CKPLUS_CLASSES}},
    ),
    # The synthetic CK+-like macro database (data=synthetic_macro): CK+'s words, ckplus_7class's order.
    "synthetic_macro_7class": LabelMap(
        "synthetic_macro_7class",
        _CKPLUS_CLASSES,
        {"synthetic_macro": {w: w for w in _CKPLUS_CLASSES}},
    ),
    # CK+ in the MEGC2019 classes, for macro-to-micro transfer. (EMR's code maps sadness to *positive*, a
    # known bug: specs/models.md 12.9.) CK+ has no neutral-labelled sequence (code 0 is never a label and
    # read_ckplus rejects it; unlabelled sequences are `unlabelled`, which no map covers), so there is no
    # `neutral` entry to drop.
    "ckplus_megc": LabelMap(
        "ckplus_megc",
        ("negative", "positive", "surprise"),
        {d: _CKPLUS_MEGC for d in _CKPLUS_LIKE},
    ),
    # CK+ in the CASME II five-class protocol's classes and order (casme2_5class, synthetic_casme2like). Only
    # three have a posed counterpart; anger, contempt, fear and sadness are dropped on purpose, as
    # casme2_5class drops CASME II's own fear and sadness (repression and others have no CK+ word at all).
    "ckplus_casme2_5class": LabelMap(
        "ckplus_casme2_5class",
        ("happiness", "surprise", "disgust", "repression", "others"),
        {
            d: {
                "happy": "happiness",
                "surprise": "surprise",
                "disgust": "disgust",
                **{w: None for w in ("anger", "contempt", "fear", "sadness")},
            }
            for d in _CKPLUS_LIKE
        },
    ),
}

# Macro source label space -> {micro protocol's label map: the macro label map whose classes are the micro
# map's classes in the same order}, so macro pretraining's head is the micro model's head, class for class.
# "ckplus" covers CK+ itself and the synthetic CK+-like database (both maps cover datasets ckplus and
# synthetic_macro).
MACRO_LABEL_MAPS: dict[str, dict[str, str]] = {
    "ckplus": {
        "megc2019": "ckplus_megc",
        "synthetic": "ckplus_megc",
        "smic_3class": "ckplus_megc",
        "casme3_3class": "ckplus_megc",
        "casme2_5class": "ckplus_casme2_5class",
        "synthetic_casme2like": "ckplus_casme2_5class",
    },
}


def label_map(name: str) -> LabelMap:
    try:
        return LABEL_MAPS[name]
    except KeyError:
        raise ValueError(f"unknown label map {name!r}; known: {sorted(LABEL_MAPS)}") from None


def macro_label_map(micro_label_map: str, source: str = "ckplus") -> LabelMap:
    """The label map of macro source `source` whose classes are `micro_label_map`'s, in the same order (so
    class index k means the same emotion in pretraining and fine-tuning). ValueError for a pair not in
    `MACRO_LABEL_MAPS`."""
    name = MACRO_LABEL_MAPS.get(source, {}).get(micro_label_map)
    if name is None:
        known = sorted((s, m) for s, maps in MACRO_LABEL_MAPS.items() for m in maps)
        raise ValueError(
            f"no macro label map for micro label map {micro_label_map!r} from macro source {source!r}; "
            f"known (source, micro) pairs: {known}"
        )
    macro, micro = label_map(name), label_map(micro_label_map)
    if macro.classes != micro.classes:
        raise ValueError(
            f"macro label map {name!r} has classes {macro.classes}, micro label map {micro_label_map!r} "
            f"{micro.classes}: MACRO_LABEL_MAPS pairs maps whose classes differ"
        )
    return macro


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


def holdout_fold(subjects: Sequence[str], test_subjects: int | float = 0.2, seed: int = 0) -> list[Fold]:
    """One subject-disjoint train/test split: `test_subjects` subjects (an int) or that fraction of them (a
    float in (0, 1), at least one), drawn with `seed`, are held out. For pre-training on a macro source,
    where a full LOSO is neither needed nor affordable."""
    unique = sorted(set(subjects), key=natural_key)
    if isinstance(test_subjects, bool) or not isinstance(test_subjects, int | float):
        raise ValueError(f"holdout test_subjects={test_subjects!r}: expected a count or a fraction")
    if isinstance(test_subjects, float):
        if not 0 < test_subjects < 1:
            raise ValueError(f"holdout test_subjects={test_subjects}: a fraction must lie in (0, 1)")
        count = max(1, round(test_subjects * len(unique)))
    else:
        count = test_subjects
    if not 1 <= count < len(unique):
        raise ValueError(
            f"holdout test_subjects={test_subjects}: {len(unique)} subjects leave no subject-disjoint "
            f"split of {count} held out (need 1 <= count < {len(unique)})"
        )
    rng = random.Random(seed)
    held = frozenset(rng.sample(unique, count))
    return [Fold(0, HOLDOUT, held)]


def all_subjects_fold(subjects: Sequence[str]) -> list[Fold]:
    """Train on every subject, test on none: a model for use, not an evaluation (no predictions)."""
    if not subjects:
        raise ValueError("protocol 'all' needs at least one sample")
    return [Fold(0, ALL_SUBJECTS, frozenset())]


# The protocols whose one fold is not a subject's name; their checkpoint is RUN_DIR/last.ckpt.
HOLDOUT, ALL_SUBJECTS = "holdout", "all"
PROTOCOLS = ("loso", "lodo", HOLDOUT, ALL_SUBJECTS)


def make_folds(
    protocol: str,
    subjects: Sequence[str],
    datasets: Sequence[str],
    holdout: Mapping | None = None,
) -> list[Fold]:
    """The folds of `protocol` over the samples' subjects and databases.

    holdout: for protocol "holdout", {test_subjects: count or fraction, seed}; ignored otherwise.
    """
    if protocol == "loso":
        return loso_folds(subjects)
    if protocol == "lodo":
        return lodo_folds(subjects, datasets)
    if protocol == HOLDOUT:
        return holdout_fold(subjects, **dict(holdout or {}))
    if protocol == ALL_SUBJECTS:
        return all_subjects_fold(subjects)
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def split_indices(subjects: Sequence[str], fold: Fold) -> tuple[list[int], list[int]]:
    """(train, test) sample indices of a fold; the test subjects never appear in train."""
    train = [i for i, s in enumerate(subjects) if s not in fold.test_subjects]
    test = [i for i, s in enumerate(subjects) if s in fold.test_subjects]
    if not test and fold.test_subjects:
        raise ValueError(f"fold {fold.name!r} has no test samples")
    if not train:
        raise ValueError(f"fold {fold.name!r} leaves no training samples")
    return train, test
