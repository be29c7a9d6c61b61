"""One fold of a closed-form model (models.svm.SVMClassifier): fitted once, no Trainer, same outputs.

The fold loop hands such a model the same data module as a network gets, so the rows, the inputs'
normalisation and standardisation (fitted on the training subjects), the inner validation subjects and the
leakage canary are the ones every recipe uses. The fold then ends as every fold ends (training.loop):
checkpoint, then record, then predictions, so a crash between writes leaves a fold that is fitted again.

The checkpoint has the usual `merlin` provenance and pipeline entries, no `state_dict`, and `estimator`: the
fitted scikit-learn pipeline as skops bytes in a uint8 tensor (readable with weights_only=True; loaded by
models.svm.load_estimator, which accepts scikit-learn and NumPy types only).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from datamodules.datamodule import FeatureSet, take
from datamodules.protocols import Fold
from evaluation.predictions import write_fold_predictions
from models.svm import ESTIMATOR_KEY
from training.checkpoints import checkpoint_path, encode_checkpoint, provenance, write_checkpoint
from training.guard import LeakageError
from training.pipeline import pipeline_record
from utils.atomic import atomic_write_json

log = logging.getLogger(__name__)

SELECTION_FILE = "selection.json"


def design_matrix(datamodule, features: FeatureSet, rows: Sequence[int], inputs: Sequence[str]) -> np.ndarray:
    """(len(rows), D) float64: each named input of `rows` through the data module's transform (normalised,
    standardised with the training subjects' statistics, no augmentation), flattened and concatenated."""
    index = torch.as_tensor(list(rows), dtype=torch.long)
    parts = []
    for name in inputs:
        x = datamodule.transform(take(features.inputs[name], index).float(), train=False, name=name)
        parts.append(x.reshape(len(index), -1).double().numpy())
    return np.concatenate(parts, axis=1)


def fit_fold(
    model,
    datamodule,
    features: FeatureSet,
    folds: Sequence[Fold],
    k: int,
    run_dir: Path,
    identity: Mapping | None,
    experiment: str,
    loggers: Sequence = (),
) -> pd.DataFrame | None:
    """Fit fold k's closed-form model on its training rows, test it, write checkpoint and predictions."""
    from training.loop import _fold_entry, fold_predictions, train_subjects_of

    fold = folds[k]
    seen = datamodule.features  # what fitting may read: under guard.poison_test, the test rows are NaN
    y = seen.y.numpy()
    train, val = list(datamodule.train_idx), list(getattr(datamodule, "val_idx", []) or [])
    start = time.perf_counter()
    x_train = design_matrix(datamodule, seen, train, model.inputs)
    x_val = design_matrix(datamodule, seen, val, model.inputs) if val else None
    try:
        model.fit(x_train, y[train], x_val, y[val] if val else None)
    except ValueError as err:
        if datamodule.poison_test:
            raise LeakageError(
                f"guard.poison_test: fitting fold {fold.name} failed ({err}); if it fits without the guard, "
                "something fitted on this fold read its held-out subject's poisoned rows"
            ) from err
        raise ValueError(f"fold {fold.name}: {err}") from err
    if datamodule.poison_test and not model.finite():
        raise LeakageError(f"guard.poison_test: fold {fold.name}'s fitted SVM is not finite")
    fit_seconds = time.perf_counter() - start
    folder = checkpoint_path(run_dir, k, folds).parent
    if model.selection is not None:
        atomic_write_json(folder / SELECTION_FILE, model.selection, what="model selection record")
    frame = None
    if fold.test_subjects:
        test = list(datamodule.test_idx)
        # The real rows, read by the test alone (datamodule.test_features under the canary).
        x_test = design_matrix(datamodule, datamodule.test_features, test, model.inputs)
        y_pred, probs = model.predict(x_test)
        predictions = {
            "index": np.asarray(test),
            "y_true": features.y[test].numpy(),
            "y_pred": y_pred,
            "probs": probs,
        }
        frame = fold_predictions(features, fold, predictions)
    for logger in loggers:
        metrics = {"fit/seconds": fit_seconds, "fit/train_rows": float(len(train))}
        if frame is not None:
            metrics["test/acc"] = float((frame.y_true == frame.y_pred).mean())
        logger.log_metrics(metrics, step=0)
    checkpoint = {
        "state_dict": {},
        "epoch": 0,
        "global_step": 0,
        ESTIMATOR_KEY: torch.frombuffer(bytearray(model.dumps()), dtype=torch.uint8),
        "merlin": provenance(
            fold,
            train_subjects_of(features, datamodule),
            identity,
            experiment=experiment,
            inputs=model.inputs,
            net={"_target_": "models.svm.SVMClassifier", **model_settings(model)},
        ),
    }
    pipeline = pipeline_record(getattr(model, "pipeline_config", None), datamodule)
    if pipeline is not None:
        checkpoint["merlin"]["pipeline"] = pipeline
    write_checkpoint(checkpoint_path(run_dir, k, folds), encode_checkpoint(checkpoint))
    if frame is not None:
        fold_identity = None if identity is None else {**identity, **_fold_entry(fold)}
        write_fold_predictions(run_dir, k, frame, fold_identity)
    log.info("fold %s: SVM fitted in %.2f s on %d samples", fold.name, fit_seconds, len(train) + len(val))
    return frame


def model_settings(model) -> dict:
    """The SVM's settings as plain values (kept in the checkpoint's provenance for people and reports)."""
    grid = None if not model.grid else {k: list(v) for k, v in model.grid.items()}
    return {
        "kernel": model.kernel,
        "C": float(model.C),
        "gamma": model.gamma,
        "class_weight": model.class_weight,
        "standardize": bool(model.standardize),
        "grid": grid,
        "chosen": None if model.selection is None else dict(model.selection["chosen"]),
    }
