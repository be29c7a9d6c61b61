"""Seeds and spread: one experiment run once per seed, reported as mean +/- standard deviation.

    python train.py seeds=[0,1,2,3,4] run_dir=runs/X

A seeds run directory holds one complete run directory per seed (`seed_0/`, `seed_1/`, ...: each its own
run.json, predictions, checkpoints and reports, resumable on its own) and, at its top, `seeds.json` (the
experiment and the seeds it holds) with the reports over seeds: `summary.json` (mean and sample standard
deviation, ddof=1, of the pooled UF1, UAR and accuracy over the seeds, the same per source database, and
each seed's pooled numbers), `results.md` (one row per seed, then mean +/- std). Only complete seed runs
enter the mean; a seed with folds missing is named, never averaged in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from evaluation.predictions import EvaluationError
from utils.atomic import atomic_write_json, atomic_write_text

SEEDS_NAME = "seeds.json"
SEEDS_FORMAT = 1
METRICS = ("uf1", "uar", "accuracy")


def seed_dir(run_dir: str | Path, seed: int) -> Path:
    """The run directory of one seed inside a seeds run directory."""
    return Path(run_dir) / f"seed_{seed}"


def is_seeds_dir(run_dir: str | Path) -> bool:
    return (Path(run_dir) / SEEDS_NAME).is_file()


def read_seed_index(run_dir: str | Path) -> dict:
    path = Path(run_dir) / SEEDS_NAME
    try:
        index = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise EvaluationError(f"{path} cannot be read ({err}); remove it or use another run_dir") from err
    if not isinstance(index, dict) or not isinstance(index.get("seeds"), list):
        raise EvaluationError(f"{path} is not a seeds index (no list of seeds)")
    return index


def check_seeds_dir(run_dir: str | Path, experiment: str) -> list[int]:
    """The seeds a seeds run directory already holds ([] for a new one); EvaluationError for a directory
    that is a single run or another experiment's seeds."""
    run_dir = Path(run_dir)
    if (run_dir / "run.json").exists():
        raise EvaluationError(
            f"run directory {run_dir} holds a single run (run.json); a seeds run needs its own run_dir"
        )
    if not is_seeds_dir(run_dir):
        return []
    index = read_seed_index(run_dir)
    if index.get("experiment") != experiment:
        raise EvaluationError(
            f"run directory {run_dir} holds the seeds of experiment {index.get('experiment')!r}, not "
            f"{experiment!r}; use a new run_dir"
        )
    return [int(s) for s in index["seeds"]]


def claim_seeds_dir(run_dir: str | Path, experiment: str, seeds: Sequence[int]) -> None:
    """Record `seeds` in the seeds index (added to those already there: a later call may extend a seeds
    run with more seeds), after `check_seeds_dir`."""
    run_dir = Path(run_dir)
    held = check_seeds_dir(run_dir, experiment)
    merged = held + [s for s in seeds if s not in held]
    if merged != held or not is_seeds_dir(run_dir):
        index = {"format": SEEDS_FORMAT, "experiment": experiment, "seeds": merged}
        atomic_write_json(run_dir / SEEDS_NAME, index, what="seeds index")


def _spread(values: Sequence[float]) -> dict:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "n_seeds": n}


def summarize_seeds(run_dir: str | Path, seeds: Sequence[int] | None = None) -> dict:
    """Mean +/- std over the complete seed runs of a seeds run directory (its `seeds` by default).

    Keys: experiment, seeds (those asked), seeds_complete, seeds_incomplete ({seed: "3/68 folds"}),
    uf1 / uar / accuracy ({mean, std, n_seeds}: std is the sample standard deviation, None for one seed),
    per_source {dataset: {uf1, uar, accuracy: {mean, std, n_seeds}}}, per_seed {seed: that seed's pooled
    uf1, uar, accuracy, n, folds_done, folds_total, per_source, run_dir}.
    Raises EvaluationError when no seed run has finished.
    """
    from evaluation.reports import summarize

    run_dir = Path(run_dir)
    index = read_seed_index(run_dir)
    seeds = [int(s) for s in (seeds if seeds is not None else index["seeds"])]
    per_seed: dict[str, dict] = {}
    incomplete: dict[str, str] = {}
    for seed in seeds:
        folder = seed_dir(run_dir, seed)
        if not (folder / "run.json").is_file():
            incomplete[str(seed)] = "not started"
            continue
        try:
            summary = summarize(folder)
        except EvaluationError as err:
            if "no finished folds" not in str(err):
                raise
            incomplete[str(seed)] = "no fold finished"
            continue
        row = {key: summary[key] for key in (*METRICS, "n", "folds_done", "folds_total", "per_source")}
        row["run_dir"] = folder.name
        per_seed[str(seed)] = row
        if summary["folds_missing"]:
            incomplete[str(seed)] = f"{summary['folds_done']}/{summary['folds_total']} folds"
    complete = [s for s in seeds if str(s) in per_seed and str(s) not in incomplete]
    if not complete:
        states = ", ".join(f"seed {s}: {v}" for s, v in incomplete.items())
        raise EvaluationError(f"{run_dir}: no seed run has finished every fold yet ({states})")
    rows = [per_seed[str(s)] for s in complete]
    sources = sorted({name for row in rows for name in row["per_source"]})
    return {
        "experiment": index.get("experiment"),
        "seeds": seeds,
        "seeds_complete": complete,
        "seeds_incomplete": incomplete,
        **{metric: _spread([row[metric] for row in rows]) for metric in METRICS},
        "per_source": {
            name: {
                metric: _spread(
                    [row["per_source"][name][metric] for row in rows if name in row["per_source"]]
                )
                for metric in METRICS
            }
            for name in sources
        },
        "per_seed": per_seed,
    }


def _pm(spread: Mapping) -> str:
    std = spread["std"]
    return f"{spread['mean']:.4f} ± {std:.4f}" if std is not None else f"{spread['mean']:.4f}"


def format_seeds_table(summary: Mapping) -> str:
    """Terminal table: one row per seed, then mean ± std (and per source), then any incomplete seed."""
    lines = [f"{'':<12}  {'UF1':>6}  {'UAR':>6}  {'Acc':>6}  {'n':>5}"]
    for seed, row in summary["per_seed"].items():
        mark = "" if int(seed) in summary["seeds_complete"] else "  (partial: not in the mean)"
        lines.append(
            f"{'seed ' + seed:<12}  {row['uf1']:6.4f}  {row['uar']:6.4f}  {row['accuracy']:6.4f}  "
            f"{row['n']:>5d}{mark}"
        )
    n = len(summary["seeds_complete"])
    lines.append(f"mean ± std over {n} seed{'s' if n != 1 else ''}:")
    for name, row in [("Full", summary), *summary["per_source"].items()]:
        lines.append(
            f"  {name:<10}  UF1 {_pm(row['uf1'])}  UAR {_pm(row['uar'])}  Acc {_pm(row['accuracy'])}"
        )
    for seed, why in summary["seeds_incomplete"].items():
        lines.append(f"seed {seed}: {why}")
    return "\n".join(lines)


def seeds_markdown(summary: Mapping) -> str:
    out = [f"# {summary['experiment']}: {len(summary['seeds_complete'])} seeds", ""]
    out += ["| seed | UF1 | UAR | Acc | n |", "|---|---|---|---|---|"]
    for seed, row in summary["per_seed"].items():
        out.append(f"| {seed} | {row['uf1']:.4f} | {row['uar']:.4f} | {row['accuracy']:.4f} | {row['n']} |")
    out += ["", "Mean ± sample standard deviation over the complete seeds:", ""]
    out += ["| | UF1 | UAR | Acc |", "|---|---|---|---|"]
    for name, row in [("Full", summary), *summary["per_source"].items()]:
        out.append(f"| {name} | {_pm(row['uf1'])} | {_pm(row['uar'])} | {_pm(row['accuracy'])} |")
    if summary["seeds_incomplete"]:
        out += [
            "",
            "Not in the mean: " + "; ".join(f"seed {s}: {w}" for s, w in summary["seeds_incomplete"].items()),
        ]
    out += ["", "Each seed's own reports: `seed_N/results.md`."]
    return "\n".join(out) + "\n"


def write_seed_reports(run_dir: str | Path, seeds: Sequence[int] | None = None) -> dict:
    """summary.json and results.md over the seeds, at the top of the seeds run directory."""
    run_dir = Path(run_dir)
    summary = summarize_seeds(run_dir, seeds)
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
    atomic_write_text(run_dir / "results.md", seeds_markdown(summary))
    return summary
