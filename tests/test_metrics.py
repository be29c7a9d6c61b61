"""MEGC metrics against hand-computed confusion matrices; pooled over folds, never averaged per fold."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from evaluation.metrics import confusion_matrix, mean_of_fold_scores, megc_scores, pooled_scores

CLASSES = ("negative", "positive", "surprise")
EXACT = {"rel": 1e-12, "abs": 1e-12}  # the fractions below, up to float rounding


def labels_from(cm: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_pred) with exactly the counts of cm (rows true, columns predicted)."""
    pairs = [(t, p) for t, row in enumerate(cm) for p, count in enumerate(row) for _ in range(count)]
    return np.array([t for t, _ in pairs]), np.array([p for _, p in pairs])


def floats_in(obj) -> list[float]:
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in floats_in(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in floats_in(v)]
    return [obj] if isinstance(obj, float) else []


def test_ten_sample_example_by_hand():
    # rows = true, columns = predicted; n = 10, correct = 4 + 2 + 1 = 7 -> accuracy 0.7
    cm = [
        [4, 1, 0],  # negative: support 5
        [1, 2, 0],  # positive: support 3
        [0, 1, 1],  # surprise: support 2
    ]
    y_true, y_pred = labels_from(cm)
    assert confusion_matrix(y_true, y_pred, 3).tolist() == cm
    assert confusion_matrix(y_true, y_pred, 3).dtype == np.int64
    s = megc_scores(np.array(cm), CLASSES)
    # negative: TP 4, FP 1 (column 4+1+0 minus TP), FN 1 -> F1 = 8/(8+1+1) = 0.8, recall 4/5, precision 4/5
    # positive: TP 2, FP 2 (column 1+2+1 minus TP), FN 1 -> F1 = 4/(4+2+1) = 4/7, recall 2/3, precision 2/4
    # surprise: TP 1, FP 0, FN 1 -> F1 = 2/(2+0+1) = 2/3, recall 1/2, precision 1
    # UF1 = (4/5 + 4/7 + 2/3) / 3 = (84 + 60 + 70) / 315 = 214/315
    # UAR = (4/5 + 2/3 + 1/2) / 3 = (24 + 20 + 15) / 90 = 59/90
    assert s["uf1"] == pytest.approx(214 / 315, **EXACT)
    assert s["uar"] == pytest.approx(59 / 90, **EXACT)
    assert s["accuracy"] == pytest.approx(0.7, **EXACT)
    assert s["n"] == 10 and s["classes_absent"] == []
    assert s["per_class"]["negative"] == pytest.approx(
        {"f1": 0.8, "recall": 0.8, "precision": 0.8, "support": 5}
    )
    assert s["per_class"]["positive"] == pytest.approx(
        {"f1": 4 / 7, "recall": 2 / 3, "precision": 0.5, "support": 3}
    )
    assert s["per_class"]["surprise"] == pytest.approx(
        {"f1": 2 / 3, "recall": 0.5, "precision": 1.0, "support": 2}
    )
    assert pooled_scores(y_true, y_pred, 3, CLASSES) == s


def test_default_class_names_are_indices():
    s = megc_scores(np.array([[1, 0], [0, 1]]))
    assert list(s["per_class"]) == ["0", "1"] and s["uf1"] == 1.0 and s["uar"] == 1.0


def test_absent_class_not_predicted_is_excluded():
    # surprise has no samples and is never predicted: only negative and positive are averaged.
    cm = np.array([[3, 1, 0], [1, 2, 0], [0, 0, 0]])
    s = megc_scores(cm, CLASSES)
    # negative: TP 3, FP 1, FN 1 -> F1 6/8 = 3/4, recall 3/4
    # positive: TP 2, FP 1, FN 1 -> F1 4/6 = 2/3, recall 2/3
    # UF1 = UAR = (3/4 + 2/3) / 2 = 17/24; accuracy 5/7
    assert s["uf1"] == pytest.approx(17 / 24, **EXACT)
    assert s["uar"] == pytest.approx(17 / 24, **EXACT)
    assert s["accuracy"] == pytest.approx(5 / 7, **EXACT)
    assert s["classes_absent"] == ["surprise"]
    assert s["per_class"]["surprise"] == {"f1": None, "recall": None, "precision": None, "support": 0}
    assert not any(math.isnan(x) for x in floats_in(s))
    json.dumps(s, allow_nan=False)


def test_absent_class_that_is_predicted_is_excluded_but_its_false_positives_count():
    # One negative sample is predicted as surprise, a class with no samples.
    cm = np.array([[3, 0, 1], [1, 2, 0], [0, 0, 0]])
    s = megc_scores(cm, CLASSES)
    # negative: TP 3, FP 1, FN 1 (the sample called surprise) -> F1 6/8 = 3/4, recall 3/4
    # positive: TP 2, FP 0, FN 1 -> F1 4/5, recall 2/3
    # surprise: excluded (support 0); precision 0/1 = 0 is still reported.
    # UF1 = (3/4 + 4/5) / 2 = 31/40; UAR = (3/4 + 2/3) / 2 = 17/24
    assert s["uf1"] == pytest.approx(31 / 40, **EXACT)
    assert s["uar"] == pytest.approx(17 / 24, **EXACT)
    assert s["classes_absent"] == ["surprise"]
    assert s["per_class"]["surprise"] == {"f1": None, "recall": None, "precision": 0.0, "support": 0}
    # Were that sample predicted correctly, negative's recall would be 1: the false positive costs it.
    assert megc_scores(np.array([[4, 0, 0], [1, 2, 0], [0, 0, 0]]))["per_class"]["0"]["recall"] == 1.0
    assert not any(math.isnan(x) for x in floats_in(s))
    json.dumps(s, allow_nan=False)


def test_pooled_differs_from_mean_of_fold_scores():
    # fold 0 (perfect): true [0 0 0 1], pred [0 0 0 1] -> UF1 1, UAR 1 (surprise absent, excluded), acc 1
    # fold 1: true [0 1 1 2 2 2], pred [1 1 0 2 0 0] -> cm [[0,1,0],[1,1,0],[2,0,1]]
    #   negative: TP 0, FP 3, FN 1 -> F1 0, recall 0
    #   positive: TP 1, FP 1, FN 1 -> F1 2/4 = 1/2, recall 1/2
    #   surprise: TP 1, FP 0, FN 2 -> F1 2/4 = 1/2, recall 1/3
    #   UF1 = 1/3, UAR = (0 + 1/2 + 1/3) / 3 = 5/18, acc 2/6
    # mean of folds: UF1 (1 + 1/3)/2 = 2/3, UAR (1 + 5/18)/2 = 23/36, acc (1 + 1/3)/2 = 2/3
    # pooled cm [[3,1,0],[1,2,0],[2,0,1]], n = 10:
    #   negative: TP 3, FP 3, FN 1 -> F1 6/10 = 3/5, recall 3/4
    #   positive: TP 2, FP 1, FN 1 -> F1 4/6 = 2/3, recall 2/3
    #   surprise: TP 1, FP 0, FN 2 -> F1 2/4 = 1/2, recall 1/3
    #   UF1 = (3/5 + 2/3 + 1/2)/3 = (18 + 20 + 15)/90 = 53/90, UAR = (9 + 8 + 4)/36 = 7/12, acc 6/10
    y_true = np.array([0, 0, 0, 1, 0, 1, 1, 2, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 1, 0, 2, 0, 0])
    fold = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    pooled = pooled_scores(y_true, y_pred, 3, CLASSES)
    assert pooled["uf1"] == pytest.approx(53 / 90, **EXACT)
    assert pooled["uar"] == pytest.approx(7 / 12, **EXACT)
    assert pooled["accuracy"] == pytest.approx(0.6, **EXACT)
    mean = mean_of_fold_scores(y_true, y_pred, fold, 3)
    assert mean["uf1"] == pytest.approx(2 / 3, **EXACT)
    assert mean["uar"] == pytest.approx(23 / 36, **EXACT)
    assert mean["accuracy"] == pytest.approx(2 / 3, **EXACT)
    assert mean["folds"] == 2
    assert pooled["uf1"] != pytest.approx(mean["uf1"]) and pooled["uar"] != pytest.approx(mean["uar"])


@pytest.mark.parametrize(
    ("y_true", "y_pred", "match"),
    [
        ([0, 1, 3], [0, 1, 2], r"y_true has labels outside \[0, 3\): \[3\]"),
        ([0, 1, 2], [0, -1, 2], r"y_pred has labels outside \[0, 3\): \[-1\]"),
        ([0, 1, 2], [0, 1], "differ in length"),
        ([0, 1.5, 2], [0, 1, 2], "not class indices"),
        (["a", "b"], [0, 1], "integer class indices"),
        ([[0, 1]], [[0, 1]], "1-D"),
    ],
)
def test_bad_labels_raise(y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(y_true, y_pred, 3)


def test_integral_floats_are_accepted():
    assert confusion_matrix([0.0, 2.0], [2.0, 2.0], 3).tolist() == [[0, 0, 1], [0, 0, 0], [0, 0, 1]]


def test_empty_input_raises():
    assert confusion_matrix([], [], 3).sum() == 0
    with pytest.raises(ValueError, match="no samples"):
        megc_scores(np.zeros((3, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="no samples"):
        pooled_scores([], [], 3)
    with pytest.raises(ValueError, match="square"):
        megc_scores(np.ones((2, 3)))
    with pytest.raises(ValueError, match="class names"):
        megc_scores(np.eye(3), ["a", "b"])
