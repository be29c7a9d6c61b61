"""Reports of a run directory: pooled MEGC scores, per source database, tables, plot and MEGC log.

`summarize` pools the predictions of every finished fold (per class TP/FP/FN summed over folds, then
UF1/UAR: see `evaluation.metrics`) and works on a partial run too, naming the folds still missing.
`write_reports` writes, each atomically, into the run directory:

    summary.json           the summary dict (keys uf1, uar, accuracy, n, folds_done, folds_missing,
                           per_source are a public interface: train.py, the W&B summary and users read them)
    results.md             Markdown tables: Full + per source, per class, confusion matrix
    confusion_matrix.png   pooled confusion matrix
    megc_log.txt           MEGC2019 submission log: `<db> <subject>` per subject, then `<clip> <gt> <pred>`
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.metrics import confusion_matrix, megc_scores
from evaluation.oracle import oracle_markdown, oracle_report
from evaluation.predictions import EvaluationError, fold_path, read_predictions, read_run_info
from utils.atomic import atomic_write_bytes, atomic_write_text

REPORT_FILES = ("summary.json", "results.md", "confusion_matrix.png", "megc_log.txt")


def _fold_table(info: Mapping) -> list[dict]:
    """run.json folds with their index made explicit (position in the list when absent)."""
    return [{**f, "index": int(f.get("index", i))} for i, f in enumerate(info["folds"])]


def _check_predictions(run_dir: Path, folds: list[dict], frame: pd.DataFrame) -> None:
    """Refuse predictions that would pool into a number no experiment produced."""
    known = {f["index"]: f for f in folds}
    for k in sorted(set(frame["fold"].tolist()) - set(known)):
        raise EvaluationError(
            f"{fold_path(run_dir, k)}: fold {k} is not one of the {len(folds)} folds in run.json"
        )
    line = frame.groupby("fold").cumcount() + 2  # CSV line of each row: header is line 1
    for k, fold in known.items():
        test_subjects = fold.get("test_subjects")
        if not test_subjects:
            continue
        rows = frame.index[(frame["fold"] == k) & ~frame["subject"].isin(test_subjects)]
        if len(rows):
            r = rows[0]
            raise EvaluationError(
                f"{fold_path(run_dir, k)} line {line[r]}: subject {frame['subject'][r]!r} is not a test "
                f"subject of fold {fold['name']!r} ({sorted(test_subjects)[:5]})"
            )
    dup = frame["sample_id"].duplicated(keep=False)
    if dup.any():
        ids = sorted(set(frame.loc[dup, "sample_id"].tolist()))
        files = [fold_path(run_dir, k).name for k in sorted(set(frame.loc[dup, "fold"].tolist()))]
        raise EvaluationError(
            f"{run_dir}: samples predicted more than once ({ids[:5]}{' ...' if len(ids) > 5 else ''}) "
            f"in {files}; pooling would count them twice"
        )


def _scores(frame: pd.DataFrame, classes: Sequence[str]) -> dict:
    cm = confusion_matrix(frame["y_true"].to_numpy(), frame["y_pred"].to_numpy(), len(classes))
    scores = megc_scores(cm, classes)
    scores["confusion_matrix"] = cm.tolist()
    return scores


def _summarize(run_dir: Path, info: Mapping, frame: pd.DataFrame) -> dict:
    classes = list(info["classes"])
    folds = _fold_table(info)
    if frame.empty and len(folds) == 1 and not info["folds"][0].get("test_subjects"):
        raise EvaluationError(
            f"{run_dir} trained one model on all subjects (data.protocol=all): nothing was held out, so "
            f"there is nothing to evaluate; its weights are {run_dir / 'last.ckpt'}"
        )
    if frame.empty:
        raise EvaluationError(
            f"{run_dir} has no finished folds yet (0/{len(folds)}: no predictions/fold_NNN.csv); "
            "nothing to evaluate"
        )
    _check_predictions(run_dir, folds, frame)
    done = set(frame["fold"].tolist())
    full = _scores(frame, classes)
    per_source: dict[str, dict] = {}
    absent_by_source: dict[str, list[str]] = {}
    for dataset in sorted(set(frame["dataset"].tolist())):
        s = _scores(frame[frame["dataset"] == dataset], classes)
        # Flat scalar rows: loggers turn each key into a metric (`pooled/<source>/uf1`).
        per_source[dataset] = {k: s[k] for k in ("uf1", "uar", "accuracy", "n")}
        absent_by_source[dataset] = s["classes_absent"]
    return {
        "experiment": info.get("experiment"),
        "fingerprint": info.get("fingerprint"),
        "classes": classes,
        "uf1": full["uf1"],
        "uar": full["uar"],
        "accuracy": full["accuracy"],
        "n": full["n"],
        "folds_done": len(done),
        "folds_total": len(folds),
        "folds_missing": [f["name"] for f in folds if f["index"] not in done],
        "per_source": per_source,
        "per_class": full["per_class"],
        "classes_absent": full["classes_absent"],
        "per_source_classes_absent": absent_by_source,
        "confusion_matrix": full["confusion_matrix"],
        # False for a run directory of an earlier MERLin, whose fold files carry no records to check.
        "verified": "format" in info,
    }


def summarize(run_dir: str | Path) -> dict:
    """Pooled MEGC scores of every finished fold of a run directory (a JSON-ready dict).

    Keys: uf1, uar, accuracy (floats), n (samples), per_source {dataset: {uf1, uar, accuracy, n}} (same
    rules restricted to that database's samples), per_class {class: {f1, recall, precision, support}},
    classes_absent, per_source_classes_absent, confusion_matrix (K x K list, rows true), classes,
    folds_done, folds_total, folds_missing (fold names, in fold order), experiment, fingerprint, verified
    (every fold file checked against its record and run.json; False for an earlier MERLin's run directory).
    Raises FileNotFoundError / EvaluationError (a ValueError) naming the file for a missing or malformed
    run.json or predictions file, and EvaluationError when no fold has finished.
    """
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    return _summarize(run_dir, info, _verified_predictions(run_dir, info))


def _verified_predictions(run_dir: Path, info: Mapping) -> pd.DataFrame:
    # A run directory of format 1 (before fold records existed) is pooled as it is, flagged unverified.
    return read_predictions(run_dir, info["classes"], info if "format" in info else None)


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.4f}"


def _score_rows(summary: Mapping) -> list[tuple[str, Mapping]]:
    return [("Full", summary), *summary.get("per_source", {}).items()]


def _folds_line(summary: Mapping, limit: int = 8) -> str:
    done, total, missing = summary["folds_done"], summary["folds_total"], summary["folds_missing"]
    if not missing:
        return f"folds: {done}/{total} done"
    shown = ", ".join(missing[:limit]) + (
        f", ... (+{len(missing) - limit} more)" if len(missing) > limit else ""
    )
    return f"folds: {done}/{total} done; missing: {shown}"


def format_table(summary: Mapping) -> str:
    """Plain-text results table for a terminal: Full + one row per source, UF1/UAR/Acc/n, then the folds."""
    rows = _score_rows(summary)
    width = max(len(name) for name, _ in rows)
    lines = [f"{'':<{width}}  {'UF1':>6}  {'UAR':>6}  {'Acc':>6}  {'n':>5}"]
    for name, r in rows:
        lines.append(f"{name:<{width}}  {r['uf1']:6.4f}  {r['uar']:6.4f}  {r['accuracy']:6.4f}  {r['n']:>5d}")
    if summary.get("verified") is False:
        lines.append("note: made by an earlier MERLin; its fold files carry no records and were not verified")
    lines.append(_folds_line(summary))
    return "\n".join(lines)


def results_markdown(summary: Mapping) -> str:
    """results.md: score table (Full + per source), per-class table, confusion matrix, folds missing."""
    classes = summary["classes"]
    done, total = summary["folds_done"], summary["folds_total"]
    out = [f"# Results: {summary.get('experiment') or 'MERLin run'}", ""]
    out.append(
        f"Pooled over {done} of {total} folds (MEGC2019): per class, TP/FP/FN are summed over all folds; "
        "UF1 = mean per-class F1, UAR = mean per-class recall. Not an average of per-fold scores."
    )
    out.append("")
    if summary["folds_missing"]:
        missing = ", ".join(summary["folds_missing"])
        out += [f"**Partial run, {done}/{total} folds done. Missing folds: {missing}.**", ""]
    out += ["| Set | UF1 | UAR | Accuracy | n |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, r in _score_rows(summary):
        out.append(f"| {name} | {r['uf1']:.4f} | {r['uar']:.4f} | {r['accuracy']:.4f} | {r['n']} |")
    absent = [("Full", summary.get("classes_absent", []))]
    absent += list(summary.get("per_source_classes_absent", {}).items())
    notes = [f"{name}: {', '.join(a)}" for name, a in absent if a]
    if notes:
        out += ["", f"Classes with no samples, left out of that row's UF1/UAR: {'; '.join(notes)}."]

    out += [
        "",
        "## Per class (Full)",
        "",
        "| Class | F1 | Recall | Precision | Support |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, c in summary["per_class"].items():
        out.append(
            f"| {name} | {_fmt(c['f1'])} | {_fmt(c['recall'])} | {_fmt(c['precision'])} | {c['support']} |"
        )
    if any(v is None for c in summary["per_class"].values() for v in c.values()):
        out += [
            "",
            "— : undefined (F1/recall of a class with no samples; precision of a class never predicted).",
        ]

    out += ["", "## Confusion matrix", "", "Rows: true class; columns: predicted class.", ""]
    out.append("| true \\ predicted | " + " | ".join(classes) + " |")
    out.append("| --- |" + " ---: |" * len(classes))
    for name, row in zip(classes, summary["confusion_matrix"], strict=True):
        out.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    if summary.get("fingerprint"):
        out += ["", f"Experiment fingerprint: `{summary['fingerprint']}`."]
    return "\n".join(out) + "\n"


def megc_log(frame: pd.DataFrame) -> str:
    """MEGC2019 log of pooled predictions: per subject a `<db> <subject>` line, then `<clip> <gt> <pred>`.

    frame: rows as read by `read_predictions`. Folds come in fold order; inside a fold, subjects in order of
    first appearance (one per LOSO fold; a leave-one-database-out fold has several), samples in file order.
    The subject is written without its dataset prefix (`casme2/sub01` -> `sub01`), as the challenge expects.
    """
    lines: list[str] = []
    for _, fold_rows in frame.groupby("fold", sort=True):
        for (dataset, subject), rows in fold_rows.groupby(["dataset", "subject"], sort=False):
            bare = subject.split("/", 1)[1] if "/" in subject else subject
            lines.append(f"{dataset} {bare}")
            lines += [
                f"{c} {t} {p}" for c, t, p in zip(rows["clip"], rows["y_true"], rows["y_pred"], strict=True)
            ]
    return "\n".join(lines) + "\n"


def confusion_matrix_png(summary: Mapping, dpi: int = 120) -> bytes:
    """PNG of the pooled confusion matrix: counts (and row %) per cell, class names, UF1/UAR in the title."""
    # Imported here: matplotlib is slow to import and only reports need it. A Figure with an explicit Agg
    # canvas renders headless without switching the process-wide pyplot backend (a notebook keeps its own).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    classes = list(summary["classes"])
    cm = np.asarray(summary["confusion_matrix"], dtype=np.int64)
    k = len(classes)
    fig = Figure(figsize=(2.2 + 1.1 * k, 1.8 + 1.0 * k))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(cm, cmap="Blues", vmin=0, vmax=max(int(cm.max()), 1))
    row_total = cm.sum(axis=1)
    for i in range(k):
        for j in range(k):
            pct = f"\n{100 * cm[i, j] / row_total[i]:.0f}%" if row_total[i] else ""
            dark = cm[i, j] > cm.max() / 2
            ax.text(j, i, f"{cm[i, j]}{pct}", ha="center", va="center", color="white" if dark else "black")
    ax.set_xticks(range(k), classes, rotation=30 if max(map(len, classes)) > 8 else 0)
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    title = f"UF1 {summary['uf1']:.4f}   UAR {summary['uar']:.4f}   n={summary['n']}"
    if summary["folds_missing"]:
        title += f"\npartial: {summary['folds_done']}/{summary['folds_total']} folds"
    if summary.get("experiment"):
        title = f"{summary['experiment']}\n{title}"
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def write_reports(run_dir: str | Path, summary: Mapping | None = None) -> dict:
    """Write summary.json, results.md, confusion_matrix.png and megc_log.txt (each atomically) into run_dir,
    and oracle.json when folds recorded the oracle-epoch diagnostic (evaluation.oracle).

    summary: a `summarize` result to reuse; computed from the run directory when None. The MEGC log is
    always built from the prediction files. Returns the summary written.
    """
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    frame = _verified_predictions(run_dir, info)
    summary = dict(summary) if summary is not None else _summarize(run_dir, info, frame)
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
    # diagnostics.oracle_epoch: the leaky number, in its own file and a labelled section, never in summary
    oracle = oracle_report(run_dir, info["classes"], _fold_table(info))
    markdown = results_markdown(summary) + (oracle_markdown(oracle) if oracle else "")
    atomic_write_text(run_dir / "results.md", markdown)
    atomic_write_text(run_dir / "megc_log.txt", megc_log(frame))
    atomic_write_bytes(run_dir / "confusion_matrix.png", confusion_matrix_png(summary))
    return summary
