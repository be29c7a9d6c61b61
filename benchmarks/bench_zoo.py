"""The model zoo on this machine: each CPU recipe under LOSO, pooled UF1/UAR, time per fold, peak memory.

    python benchmarks/bench_zoo.py [--experiments ststnet_cpu dssn_cpu ...]
        [--data synthetic synthetic_casme2like] [--magnify [only]] [--subjects 9] [--clips 16]
        [--out table.md] [--override key=value ...]

Each (experiment, data) pair runs train.py in a fresh process over `--subjects` x `--clips` clips (default
9 x 16 = 144, the size the *_cpu recipes are sized for), same folds and epochs for every network; with
--magnify every pair runs a second time (--magnify only: only that time) with Eulerian magnification
(configs/features/apex_flow_magnified: alpha 8, lambda_c 16, IIR) on every input. Features are computed cold
once per spec into one cache, so the per-fold time reported is training only (the first run of a spec also
pays its features; its total is shown). Runs must have the machine to themselves: two at once oversubscribe
the cores and the times mean nothing. Prints a Markdown table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import run_train  # noqa: E402  (the wall-time and peak-RSS wrapper)

EXPERIMENTS = [
    "ststnet_cpu",
    "off_apexnet_cpu",
    "sssn_cpu",
    "dssn_cpu",
    "rcn_a_cpu",
    "timm_cpu",
    "strcn_g_cpu",
    "strcn_a_cpu",
    "elrcn_se_cpu",
    "elrcn_te_cpu",
    "au_gacn_cpu",
]
# Experiments with named inputs: magnification goes on each of them.
NAMED_INPUTS = {"dssn": ("stream_a", "stream_b"), "elrcn_te": ("flow", "strain")}
DATA = ["synthetic", "synthetic_casme2like"]
MAGNIFY = "{method:eulerian,alpha:8,lambda_c:16,temporal:iir,r1:0.4,r2:0.05}"


def magnify_overrides(experiment: str) -> list[str]:
    names = NAMED_INPUTS.get(experiment.removesuffix("_cpu"))
    if names:
        return [f"+features.inputs.{name}.magnify={MAGNIFY}" for name in names]
    if experiment.startswith("strcn_g"):  # its recipe magnifies already (apex_flow_magnified)
        return []
    return [f"+features.magnify={MAGNIFY}"]


def raw_overrides(experiment: str) -> list[str]:
    """What a run without magnification adds: nothing, except for the recipe that magnifies by default."""
    return ["features.magnify=null"] if experiment.startswith("strcn_g") else []


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiments", nargs="+", default=EXPERIMENTS)
    parser.add_argument("--data", nargs="+", default=DATA)
    parser.add_argument(
        "--magnify",
        nargs="?",
        const="both",
        choices=["both", "only"],
        help="also (both) or only (only) run with Eulerian magnification",
    )
    parser.add_argument("--subjects", type=int, default=9)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--override", nargs="*", default=[], help="extra train.py overrides for every run (key=value)"
    )
    args = parser.parse_args()

    env = {**os.environ, "WANDB_MODE": "disabled"}
    work = Path(tempfile.mkdtemp(prefix="merlin-zoo-"))
    rows = [
        "| experiment | data | magnified | UF1 | UAR | n | s / fold | total s | peak RSS MiB |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for data in args.data:
        for experiment in args.experiments:
            for magnify in {None: (False,), "both": (False, True), "only": (True,)}[args.magnify]:
                run_dir = work / f"{experiment}-{data}-{'mag' if magnify else 'raw'}"
                overrides = [
                    f"experiment={experiment}",
                    f"data={data}",
                    f"data.reader.num_subjects={args.subjects}",
                    f"data.reader.clips_per_subject={args.clips}",
                    "logger=none",
                    "progress=false",
                    f"run_dir={run_dir}",
                    f"cache_dir={work / 'cache'}",
                    *(magnify_overrides(experiment) if magnify else raw_overrides(experiment)),
                    *args.override,
                ]
                wall, peak, _ = run_train(overrides, env)
                summary = json.loads((run_dir / "summary.json").read_text())
                per_fold = _training_seconds(run_dir) / summary["folds_done"]
                rows.append(
                    f"| {experiment} | {data} | {'yes' if magnify else 'no'} | {summary['uf1']:.4f} | "
                    f"{summary['uar']:.4f} | {summary['n']} | {per_fold:.1f} | {wall:.0f} | {peak:.0f} |"
                )
                print(rows[-1], flush=True)
    table = "\n".join(rows)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


def _training_seconds(run_dir: Path) -> float:
    """Seconds the folds took to train and test, summed from train.log's `trained and tested in` lines."""
    import re

    found = re.findall(r"trained and tested in ([0-9.]+) s", (run_dir / "train.log").read_text())
    return sum(float(s) for s in found)


if __name__ == "__main__":
    main()
