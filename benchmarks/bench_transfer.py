"""Macro -> micro transfer on this machine: each route's pooled UF1 / UAR over seeds, against training from
scratch on the same folds, epochs and seeds.

    python benchmarks/bench_transfer.py [--data synthetic_casme2like] [--subjects 6] [--clips 15]
        [--seeds 0 1 2] [--routes scratch finetune distill emr] [--out table.md]

Per seed: `pretrain_macro_cpu` (STSTNet on the synthetic macro database, CK+'s seven classes, a 20 %
subject hold-out whose score is shown as its own row) keeps RUN/last.ckpt; then on the micro data (the
same `--subjects` x `--clips` clips for every route, LOSO):
    scratch    ststnet_cpu                          STSTNet from its initialisation
    finetune   finetune_cpu   init_from=pre/last.ckpt   every layer but the 7-class head loaded
    distill    distill_cpu    teacher=pre/last.ckpt     the frozen macro STSTNet as teacher, hint only
    emr        emr_cpu                              EMR's shallow trunk with the macro database in training
    emr_no_macro  emr_cpu as a plain classifier, no macro source: the same network, input and schedule
Every run is train.py in a fresh process; runs must have the machine to themselves. Prints a Markdown
table (mean +/- standard deviation over seeds of the pooled numbers, each seed's UF1, training seconds per
fold, checkpoint bytes per fold); nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import run_train  # noqa: E402  (the wall-time and peak-RSS wrapper)

ROUTES = ("scratch", "finetune", "distill", "emr", "emr_no_macro")


def route_overrides(route: str, pre: Path) -> list[str]:
    ckpt = pre / "last.ckpt"
    return {
        "scratch": ["experiment=ststnet_cpu"],
        "finetune": ["experiment=finetune_cpu", f"model.init_from={ckpt}"],
        "distill": ["experiment=distill_cpu", f"model.distill.teacher.ckpt={ckpt}"],
        "emr": ["experiment=emr_cpu"],
        # EMR's network, input and schedule as a plain classifier without the macro source: what the
        # macro clips and the domain-adversarial loss add, apart from the network.
        "emr_no_macro": ["experiment=emr_cpu", "model.recipe=classifier", "macro=null"],
    }[route]


def _seconds_per_fold(run_dir: Path) -> float:
    found = re.findall(r"trained and tested in ([0-9.]+) s", (run_dir / "train.log").read_text())
    return sum(float(s) for s in found) / max(len(found), 1)


def _checkpoint_bytes(run_dir: Path) -> float:
    files = list(run_dir.glob("fold_*/last.ckpt")) or list(run_dir.glob("last.ckpt"))
    return sum(f.stat().st_size for f in files) / max(len(files), 1)


def _spread(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} +/- {sd:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="synthetic_casme2like")
    parser.add_argument("--subjects", type=int, default=6)
    parser.add_argument("--clips", type=int, default=15)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--routes", nargs="+", default=list(ROUTES), choices=ROUTES)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--override", nargs="*", default=[], help="extra overrides for every micro run")
    parser.add_argument("--pretrain-override", nargs="*", default=[], help="extra overrides for pretraining")
    args = parser.parse_args()

    env = {**os.environ, "WANDB_MODE": "disabled"}
    work = Path(tempfile.mkdtemp(prefix="merlin-transfer-"))
    common = ["logger=none", "progress=false", f"cache_dir={work / 'cache'}"]
    results: dict[str, list[dict]] = {route: [] for route in ("pretrain (macro hold-out)", *args.routes)}
    for seed in args.seeds:
        pre = work / f"pre-{seed}"
        run_train(
            [
                "experiment=pretrain_macro_cpu",
                f"seed={seed}",
                f"run_dir={pre}",
                *common,
                *args.pretrain_override,
            ],
            env,
        )
        results["pretrain (macro hold-out)"].append(_result(pre))
        for route in args.routes:
            run_dir = work / f"{route}-{seed}"
            overrides = [
                *route_overrides(route, pre),
                f"data={args.data}",
                f"data.reader.num_subjects={args.subjects}",
                f"data.reader.clips_per_subject={args.clips}",
                f"seed={seed}",
                f"run_dir={run_dir}",
                *common,
                *args.override,
            ]
            run_train(overrides, env)
            results[route].append(_result(run_dir))
            r = results[route][-1]
            print(f"seed {seed} {route}: UF1 {r['uf1']:.4f} UAR {r['uar']:.4f}", flush=True)

    rows = [
        f"{args.data}, {args.subjects} subjects x {args.clips} clips, LOSO; seeds {args.seeds}",
        "",
        "| route | UF1 | UAR | UF1 per seed | s / fold | checkpoint KB / fold |",
        "| --- | ---: | ---: | --- | ---: | ---: |",
    ]
    for route, runs in results.items():
        if not runs:
            continue
        rows.append(
            f"| {route} | {_spread([r['uf1'] for r in runs])} | {_spread([r['uar'] for r in runs])} | "
            f"{' / '.join(format(r['uf1'], '.3f') for r in runs)} | "
            f"{statistics.mean(r['seconds'] for r in runs):.1f} | "
            f"{statistics.mean(r['checkpoint'] for r in runs) / 1024:.1f} |"
        )
    table = "\n".join(rows)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


def _result(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    return {
        "uf1": summary["uf1"],
        "uar": summary["uar"],
        "seconds": _seconds_per_fold(run_dir),
        "checkpoint": _checkpoint_bytes(run_dir),
    }


if __name__ == "__main__":
    main()
