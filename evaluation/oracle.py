"""The oracle-epoch diagnostic (`diagnostics.oracle_epoch=true`): what test-subject epoch selection reports.

Several of the field's best-known repositories keep, for each fold, the epoch that scores best on that
fold's own test subject (specs/field.md: EMR falls from UF1 0.79 to about 0.59 without it). MERLin never
does; with the diagnostic on, each fold also records its test subject's predictions after every epoch
(`fold_k/oracle_epochs.json`, training.selection.OracleEpochs), and this module pools, per fold, the epoch
with the best accuracy on its own test subject (the earliest on a tie): `oracle.json` and a labelled row
of results.md, "oracle, leaky: not a result". It shows how much a published number can owe to the practice;
it is never the run's result and never in summary.json.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from evaluation.metrics import confusion_matrix, megc_scores
from utils.atomic import atomic_write_json

ORACLE_EPOCHS_NAME = "oracle_epochs.json"  # beside fold k's checkpoint: test predictions after every epoch
ORACLE_NAME = "oracle.json"  # at the run's top: the pooled oracle-epoch numbers
ORACLE_LABEL = "oracle, leaky: not a result"


def oracle_report(run_dir: str | Path, classes: Sequence[str], folds: Sequence[Mapping]) -> dict | None:
    """Pool each fold's best-on-its-test-subject epoch (accuracy; the earliest on a tie) into UF1, UAR and
    accuracy; written to RUN_DIR/oracle.json. None when no fold recorded its epochs."""
    run_dir = Path(run_dir)
    y_true, y_pred, chosen = [], [], {}
    for fold in folds:
        path = run_dir / f"fold_{int(fold['index'])}" / ORACLE_EPOCHS_NAME
        if not path.is_file():
            continue
        record = json.loads(path.read_text())
        truth = np.asarray(record["y_true"])
        by_epoch = np.asarray(record["y_pred_by_epoch"])
        accuracy = (by_epoch == truth[None, :]).mean(axis=1)
        best = int(np.argmax(accuracy))  # argmax: the first maximum
        chosen[record["fold"]] = {
            "epoch": best + 1,
            "epochs": len(by_epoch),
            "accuracy": float(accuracy[best]),
        }
        y_true.append(truth)
        y_pred.append(by_epoch[best])
    if not chosen:
        return None
    cm = confusion_matrix(np.concatenate(y_true), np.concatenate(y_pred), len(classes))
    scores = megc_scores(cm, list(classes))
    report = {
        "label": ORACLE_LABEL,
        "what": "each fold's epoch chosen by its accuracy on its own held-out subject, then pooled",
        "uf1": scores["uf1"],
        "uar": scores["uar"],
        "accuracy": scores["accuracy"],
        "n": scores["n"],
        "folds": len(chosen),
        "chosen_epochs": chosen,
    }
    atomic_write_json(run_dir / ORACLE_NAME, report, what="oracle-epoch diagnostic")
    return report


def oracle_markdown(report: Mapping) -> str:
    """The labelled section results.md gets when the diagnostic ran."""
    return (
        f"\n## Oracle epoch ({ORACLE_LABEL})\n\n"
        "Each fold's epoch chosen by its accuracy on its own held-out subject, then pooled: the leaky "
        "practice of published code, shown only to measure what it adds. Not this run's result.\n\n"
        "| | UF1 | UAR | Acc | n | folds |\n|---|---|---|---|---|---|\n"
        f"| {ORACLE_LABEL} | {report['uf1']:.4f} | {report['uar']:.4f} | {report['accuracy']:.4f} | "
        f"{report['n']} | {report['folds']} |\n"
    )


def oracle_line(report: Mapping) -> str:
    return (
        f"{ORACLE_LABEL}: UF1 {report['uf1']:.4f}  UAR {report['uar']:.4f}  Acc {report['accuracy']:.4f} "
        f"({report['folds']} folds, each at its best epoch on its own test subject; see oracle.json)"
    )
