"""Support vector machines: the classifier of the hand-crafted baselines (LBP-TOP, LBP-SIP, HOOF, Bi-WOOF).

A closed-form recipe: the fold loop (training.loop) fits it once on the fold's training rows instead of
running a Lightning Trainer, then tests it like any model, through the same predictions, checkpoint and
reports. Everything it learns comes from the rows it is given, which are the fold's training subjects:

- `standardize=True`: a StandardScaler fitted on those rows (the papers scale features before LIBSVM);
- `class_weight="balanced"`: weights from those rows' class counts (the field's imbalanced databases);
- `grid`: hyper-parameters chosen on the fold's inner validation subjects (selection=inner), by UF1 on
  them, the earliest grid point on a tie; the chosen setting is then refitted on training and validation
  subjects together. The held-out subject chooses nothing.

"Probabilities" are the softmax of the one-vs-rest decision values: scores that rank the classes as the
SVM does (their argmax is its prediction), not calibrated probabilities (Platt scaling would fit a second
model by internal cross-validation, mixing subjects).

The fitted estimator is kept as skops bytes, which load without unpickling arbitrary objects: only
scikit-learn and NumPy types are accepted (`load_estimator`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

KERNELS = ("linear", "rbf")
# Where a checkpoint keeps the fitted estimator (skops bytes as a uint8 tensor).
ESTIMATOR_KEY = "estimator"


@dataclass
class SVMClassifier:
    """A fold's SVM: (classes, inputs) like the networks' recipes, plus the SVM's settings."""

    class_names: tuple[str, ...]
    inputs: tuple[str, ...] = ("x",)
    kernel: str = "linear"
    C: float = 1.0
    gamma: str | float = "scale"
    class_weight: str | None = "balanced"
    standardize: bool = True
    grid: Mapping[str, Sequence] | None = None
    max_iter: int = -1
    estimator: object = field(default=None, repr=False)
    selection: dict | None = None  # what the inner validation tried and chose (selection.json)

    # The fold loop fits this once (no Trainer, no epochs).
    closed_form = True

    def __post_init__(self) -> None:
        self.class_names = tuple(self.class_names)
        self.inputs = tuple(self.inputs)
        if self.kernel not in KERNELS:
            raise ValueError(f"model.svm.kernel {self.kernel!r}: expected one of {', '.join(KERNELS)}")
        if not float(self.C) > 0:
            raise ValueError(f"model.svm.C {self.C!r}: expected a positive number")
        if self.class_weight not in (None, "balanced"):
            raise ValueError(f"model.svm.class_weight {self.class_weight!r}: expected balanced or null")
        for name, values in (self.grid or {}).items():
            if name not in ("C", "gamma", "kernel"):
                raise ValueError(f"model.svm.grid.{name}: only C, gamma and kernel can be searched")
            if not list(values):
                raise ValueError(f"model.svm.grid.{name} is empty")

    def _estimator(self, **override):
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        settings = {"kernel": self.kernel, "C": float(self.C), "gamma": self.gamma, **override}
        svc = SVC(
            **settings,
            class_weight=self.class_weight,
            decision_function_shape="ovr",
            max_iter=self.max_iter,
        )
        return make_pipeline(StandardScaler(), svc) if self.standardize else make_pipeline(svc)

    def fit(self, x: np.ndarray, y: np.ndarray, x_val=None, y_val=None) -> SVMClassifier:
        """Fit on (x, y); with a grid, choose on (x_val, y_val) first, then refit on both."""
        if len(np.unique(y)) < 2:
            raise ValueError(f"an SVM needs at least two classes among its {len(y)} training samples")
        if self.grid:
            if x_val is None or not len(x_val):
                raise ValueError("model.svm.grid chooses on inner validation subjects: set selection=inner")
            self.selection = self._choose(x, y, x_val, y_val)
            x, y = np.concatenate([x, x_val]), np.concatenate([y, y_val])
            self.estimator = self._estimator(**self.selection["chosen"]).fit(x, y)
        else:
            self.estimator = self._estimator().fit(x, y)
        return self

    def _choose(self, x, y, x_val, y_val) -> dict:
        from evaluation.metrics import pooled_scores

        names = list(self.grid)
        tried = []
        for values in itertools.product(*(list(self.grid[n]) for n in names)):
            setting = dict(zip(names, values, strict=True))
            predicted = self._estimator(**setting).fit(x, y).predict(x_val)
            score = pooled_scores(y_val, predicted, len(self.class_names))["uf1"]
            tried.append({"setting": setting, "uf1": float(score)})
        best = max(range(len(tried)), key=lambda i: (tried[i]["uf1"], -i))  # earliest on a tie
        return {
            "monitor": "uf1",
            "tried": tried,
            "chosen": tried[best]["setting"],
            "validation_rows": len(y_val),
        }

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(predicted class indices, (N, K) softmax of the one-vs-rest decision values)."""
        scores = np.asarray(self.estimator.decision_function(x), dtype=np.float64)
        if scores.ndim == 1:  # two classes: one signed distance, positive for the second
            scores = np.stack([-scores, scores], axis=1)
        seen = [int(c) for c in self.estimator.classes_]
        full = np.full((len(x), len(self.class_names)), -np.inf)
        full[:, seen] = scores  # a class absent from the training rows is never predicted
        shifted = np.exp(full - full.max(axis=1, keepdims=True))
        probs = shifted / shifted.sum(axis=1, keepdims=True)
        return np.asarray(self.estimator.predict(x)).astype(int), probs.astype(np.float32)

    def finite(self) -> bool:
        """Every fitted number is finite (the leakage canary's check: a NaN row would show here)."""
        svc = self.estimator[-1]
        arrays = [svc.dual_coef_, svc.intercept_, svc.support_vectors_]
        if self.standardize:
            arrays += [self.estimator[0].mean_, self.estimator[0].scale_]
        return all(np.isfinite(a).all() for a in arrays)

    def dumps(self) -> bytes:
        import skops.io

        return skops.io.dumps(self.estimator)


def load_estimator(data: bytes, where: str = "checkpoint"):
    """A fitted estimator from skops bytes; refuses any type outside scikit-learn and NumPy."""
    import skops.io

    untrusted = skops.io.get_untrusted_types(data=data)
    foreign = [t for t in untrusted if not t.startswith(("sklearn.", "numpy."))]
    if foreign:
        raise ValueError(f"{where}: the stored estimator holds types other than scikit-learn's: {foreign}")
    return skops.io.loads(data, trusted=untrusted)
