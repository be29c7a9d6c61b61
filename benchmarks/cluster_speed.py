"""Folds as separate processes (Hydra's submitit launcher, `hydra/launcher=local`) vs one process training
the same folds one after another.

    python benchmarks/cluster_speed.py [--subjects 2] [--clips 6] [--epochs 2 100] [--stack] [--json PATH]

For each schedule in `--epochs`, on the synthetic database (features cached once before anything is timed):
- one process: `python train.py loso.strategy=sequential run_dir=...` over the folds;
- processes: `python train.py -m hydra/launcher=local fold=0,1,.. run_dir=...`, one job (a fresh
  interpreter) per fold (one per subject), all at once, into one run directory (training.claims keeps
  them apart);
- with `--stack`, one process, fold stack: `loso.strategy=parallel` (STSTNet's default), for context.
Each is a whole command's wall time, fresh run directory, `OMP_NUM_THREADS=1` per process. `train s` is the
sum of the folds' `trained and tested in` seconds from train.log (the rest is interpreter start, imports,
reading the data and the cached features, and reports: paid once per process). Prints a table with the
ratio one process / processes (above 1: the processes were faster); `--json PATH` writes the figures.
Nothing is asserted; runs must have the machine to themselves.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ("one process", "processes", "fold stack")


def common(args, work: Path, epochs: int) -> list[str]:
    return [
        "experiment=synthetic_ststnet",
        f"data.reader.num_subjects={args.subjects}",
        f"data.reader.clips_per_subject={args.clips}",
        f"trainer.max_epochs={epochs}",
        "logger=none",
        "progress=false",
        f"cache_dir={work / 'cache'}",
    ]


def timed(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{out.stderr[-4000:]}")
    return wall


def train_seconds(run_dir: Path) -> float:
    """The folds' training and testing seconds from train.log (sequential folds, or the fold stack)."""
    text = (run_dir / "train.log").read_text()
    per_fold = [float(s) for s in re.findall(r"trained and tested in ([0-9.]+) s", text)]
    stack = re.findall(r"trained in ([0-9.]+) s, tested and written in ([0-9.]+) s", text)
    return sum(per_fold) if per_fold else sum(float(s) for s in stack[0])


def measure(args, work: Path, env: dict, epochs: int) -> dict:
    folds = ",".join(str(k) for k in range(args.folds))
    row: dict = {"epochs": epochs}
    for mode in MODES if args.stack else MODES[:2]:
        run_dir = work / f"{mode.replace(' ', '-')}-{epochs}"
        if mode == "processes":
            sweep = work / f"sweep-{epochs}"
            command = ["-m", "hydra/launcher=local", f"fold={folds}", f"hydra.sweep.dir={sweep}"]
        else:
            command = [f"loso.strategy={'parallel' if mode == 'fold stack' else 'sequential'}"]
        wall = timed(
            [sys.executable, "train.py", *command, f"run_dir={run_dir}", *common(args, work, epochs)], env
        )
        summary = json.loads((run_dir / "summary.json").read_text())
        if summary["folds_done"] != args.folds:
            raise SystemExit(f"{run_dir}: {summary['folds_done']} folds done, expected {args.folds}")
        row[mode] = {"wall_s": wall, "train_s": train_seconds(run_dir), "uf1": summary["uf1"]}
    row["one_process_over_processes"] = row["one process"]["wall_s"] / row["processes"]["wall_s"]
    if args.stack:
        row["fold_stack_over_processes"] = row["fold stack"]["wall_s"] / row["processes"]["wall_s"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--epochs", type=int, nargs="+", default=[2, 100])
    parser.add_argument("--stack", action="store_true", help="also one process training the fold stack")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.folds = args.subjects  # LOSO: one fold per subject, each its own process in the launcher's run

    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    work = Path(tempfile.mkdtemp(prefix="merlin-cluster-"))
    # Features computed once, so no measured run pays for them (nor races the other for a cold cache).
    timed([sys.executable, "train.py", "fold=0", f"run_dir={work / 'warm'}", *common(args, work, 1)], env)
    rows = [measure(args, work, env, epochs) for epochs in args.epochs]

    cores = os.cpu_count()
    modes = MODES if args.stack else MODES[:2]
    heads = {"one process": "one process, sequential", "processes": "processes (launcher=local)"}
    heads["fold stack"] = "one process, fold stack"
    print(
        f"{args.subjects * args.clips} clips, {args.folds} folds, STSTNet (synthetic_ststnet), {cores} cores"
    )
    print(f"| epochs | {' | '.join(heads[m] for m in modes)} | ratio |")
    print("| ---: |" + " ---: |" * (len(modes) + 1))
    for row in rows:
        cells = [f"{row[m]['wall_s']:.1f} s (train {row[m]['train_s']:.1f} s)" for m in modes]
        print(f"| {row['epochs']} | {' | '.join(cells)} | {row['one_process_over_processes']:.2f}x |")
    fixed = [row["one process"]["wall_s"] - row["one process"]["train_s"] for row in rows]
    print(
        "ratio: one process (sequential) wall / processes wall; above 1, the processes were faster. "
        f"Fixed cost of a train.py process (wall less training): {min(fixed):.1f}-{max(fixed):.1f} s"
    )
    if args.json:
        setup = {"subjects": args.subjects, "clips": args.clips, "folds": args.folds, "cores": cores}
        args.json.write_text(json.dumps({"setup": setup, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
