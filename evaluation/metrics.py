"""MEGC metrics on a confusion matrix: UF1, UAR, accuracy and per-class scores (pure numpy, no I/O).

The MEGC2019 protocol scores predictions *pooled over all folds*: per class, TP/FP/FN are summed over the
folds and only then turned into F1 and recall. Averaging per-fold scores instead gives a different (and,
with one subject per fold, much noisier) number; `mean_of_fold_scores` exists only to show that difference.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _as_labels(values, name: str) -> np.ndarray:
    """1-D int64 class indices; integral floats (e.g. from a CSV with a blank cell elsewhere) are accepted."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            bad = arr[~(np.isfinite(arr) & (arr == np.round(arr)))][:5]
            raise ValueError(f"{name} holds values that are not class indices: {bad.tolist()}")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """Counts of (true, predicted) pairs.

    y_true, y_pred: (N,) integer class indices in [0, num_classes).
    Returns (K, K) int64 with rows = true class, columns = predicted class, K = num_classes.
    A label outside [0, K) raises ValueError (a silently dropped sample would change every score).
    """
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    k = int(num_classes)
    t = _as_labels(y_true, "y_true")
    p = _as_labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.shape[0]} vs {p.shape[0]}")
    for name, arr in (("y_true", t), ("y_pred", p)):
        bad = (arr < 0) | (arr >= k)
        if bad.any():
            where = np.flatnonzero(bad)[:5].tolist()
            raise ValueError(
                f"{name} has labels outside [0, {k}): {arr[bad][:5].tolist()} at positions {where}"
            )
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(np.int64)


def megc_scores(cm: np.ndarray, class_names: Sequence[str] | None = None) -> dict:
    """MEGC scores of one confusion matrix (pass the pooled one to get the protocol's numbers).

    cm: (K, K) non-negative counts, rows = true, columns = predicted.
    class_names: K names for `per_class` (default "0", "1", ...).

    Per class c: F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c), recall_c = TP_c / N_c with N_c the support
    (true samples of c). UF1 = mean of F1_c, UAR = mean of recall_c, accuracy = trace / n.

    A class with zero support in the evaluated set is excluded from both UF1 and UAR: its recall is 0/0 and
    its F1 would say nothing about how well that class is recognised. This follows the MEGC2019 reference
    code (`recognition_evaluation` in the STSTNet/HTNet scripts): there a class absent from both truth and
    predictions makes the per-class computation fail and is skipped. (If the absent class *is* predicted,
    that code gets F1 = 0 and a NaN recall, i.e. a NaN UAR; we exclude the class in both cases so no score
    is ever NaN.) An excluded class's false positives are still counted: they are false negatives of the
    true classes, so they lower those classes' recall and F1.

    Returns a JSON-ready dict of plain Python numbers, never NaN:
      uf1, uar, accuracy (floats in [0, 1]), n (int, samples),
      per_class {name: {f1, recall, precision, support}} (None where undefined: f1/recall of an absent
      class, precision of a class never predicted), classes_absent (names with zero support).
    An empty matrix (n = 0) raises ValueError: there is nothing to score.
    """
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
        raise ValueError(f"confusion matrix must be square (K, K) with K >= 1, got shape {cm.shape}")
    if (cm < 0).any():
        raise ValueError("confusion matrix has negative counts")
    cm = cm.astype(np.int64)
    k = cm.shape[0]
    names = [str(c) for c in range(k)] if class_names is None else [str(c) for c in class_names]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for a {k}x{k} confusion matrix")
    n = int(cm.sum())
    if n == 0:
        raise ValueError("no samples to score: the confusion matrix is empty")

    tp = np.diag(cm)
    support = cm.sum(axis=1)  # N_c = TP + FN
    predicted = cm.sum(axis=0)  # TP + FP
    fp = predicted - tp
    fn = support - tp

    per_class: dict[str, dict] = {}
    f1s: list[float] = []
    recalls: list[float] = []
    absent: list[str] = []
    for c, name in enumerate(names):
        precision = float(tp[c] / predicted[c]) if predicted[c] > 0 else None
        if support[c] == 0:
            absent.append(name)
            f1 = recall = None
        else:
            # support > 0 makes both denominators positive.
            f1 = float(2 * tp[c] / (2 * tp[c] + fp[c] + fn[c]))
            recall = float(tp[c] / support[c])
            f1s.append(f1)
            recalls.append(recall)
        per_class[name] = {"f1": f1, "recall": recall, "precision": precision, "support": int(support[c])}

    return {
        "uf1": float(np.mean(f1s)),
        "uar": float(np.mean(recalls)),
        "accuracy": float(tp.sum() / n),
        "n": n,
        "per_class": per_class,
        "classes_absent": absent,
    }


def pooled_scores(y_true, y_pred, num_classes: int, class_names: Sequence[str] | None = None) -> dict:
    """The MEGC protocol's scores: `megc_scores` of the confusion matrix of all folds' predictions together.

    y_true, y_pred: (N,) class indices of every test sample of every fold. Pooling the samples and building
    one confusion matrix is the same as summing each class's TP/FP/FN over the folds.
    """
    return megc_scores(confusion_matrix(y_true, y_pred, num_classes), class_names)


def mean_of_fold_scores(y_true, y_pred, fold, num_classes: int) -> dict:
    """Mean over folds of per-fold UF1/UAR/accuracy. NOT the MEGC protocol, and never reported.

    It exists so tests (and anyone wondering) can see that it differs from `pooled_scores`. fold: (N,) fold
    id of each sample. Folds are scored with the same absent-class rule as `megc_scores`.
    Returns {uf1, uar, accuracy, folds}.
    """
    t = _as_labels(y_true, "y_true")
    p = _as_labels(y_pred, "y_pred")
    f = np.asarray(fold)
    if not (t.shape == p.shape == f.shape):
        raise ValueError(f"y_true, y_pred and fold differ in length: {t.shape}, {p.shape}, {f.shape}")
    per_fold = [megc_scores(confusion_matrix(t[f == k], p[f == k], num_classes)) for k in np.unique(f)]
    if not per_fold:
        raise ValueError("no samples to score")
    return {
        "uf1": float(np.mean([s["uf1"] for s in per_fold])),
        "uar": float(np.mean([s["uar"] for s in per_fold])),
        "accuracy": float(np.mean([s["accuracy"] for s in per_fold])),
        "folds": len(per_fold),
    }
