"""Is fold-parallel LOSO statistically the same as sequential LOSO? Pooled scores of both over seeds.

    python benchmarks/parallel_equivalence.py [--experiment synthetic_ststnet] [--seeds 0 1 2]
        [--overrides data=synthetic_casme2like ...] [--json PATH]

Runs `train.py experiment=E seed=s loso.strategy=S` for every seed and both strategies (features cached once),
and prints each run's pooled UF1 / UAR / accuracy and wall time, then per strategy the mean and sample
standard deviation over seeds, and whether the parallel mean lies within one standard deviation of the
sequential mean (the issue's acceptance: "pooled UF1 of the two modes within the spread of sequential runs
over 3 seeds"). The two modes draw different batches (parallel: all samples, shared by the folds;
sequential: each fold's own), so equal numbers are not expected, only equal distributions. Nothing is
asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import run_train  # noqa: E402

STRATEGIES = ("sequential", "parallel")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiment", default="synthetic_ststnet")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--overrides", nargs="*", default=[], help="more train.py overrides, e.g. data=...")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    env = {**os.environ, "WANDB_MODE": "disabled"}
    work = Path(tempfile.mkdtemp(prefix="merlin-equivalence-"))
    runs = []
    for seed in args.seeds:
        for strategy in STRATEGIES:
            run_dir = work / f"{strategy}-{seed}"
            wall, peak, _ = run_train(
                [
                    f"experiment={args.experiment}",
                    f"seed={seed}",
                    f"loso.strategy={strategy}",
                    "logger=none",
                    "progress=false",
                    f"run_dir={run_dir}",
                    f"cache_dir={work / 'cache'}",
                    *args.overrides,
                ],
                env,
            )
            summary = json.loads((run_dir / "summary.json").read_text())
            row = {
                "seed": seed,
                "strategy": strategy,
                "uf1": summary["uf1"],
                "uar": summary["uar"],
                "accuracy": summary["accuracy"],
                "wall_s": wall,
                "peak_rss_mib": peak,
            }
            runs.append(row)
            print(
                f"seed {seed} {strategy:10s} UF1 {row['uf1']:.4f} UAR {row['uar']:.4f} "
                f"acc {row['accuracy']:.4f} {wall:6.1f} s",
                flush=True,
            )
    stats = {}
    for strategy in STRATEGIES:
        mine = [r for r in runs if r["strategy"] == strategy]
        stats[strategy] = {
            key: (
                statistics.mean(r[key] for r in mine),
                statistics.stdev(r[key] for r in mine) if len(mine) > 1 else 0.0,
            )
            for key in ("uf1", "uar", "accuracy", "wall_s")
        }
    print(
        f"\n{args.experiment} {' '.join(args.overrides)}; seeds {args.seeds} "
        "(the first run also computed the features)"
    )
    print("| strategy | UF1 | UAR | accuracy | wall s |")
    print("| --- | --- | --- | --- | ---: |")
    for strategy, s in stats.items():
        cells = " | ".join(f"{s[k][0]:.4f} ± {s[k][1]:.4f}" for k in ("uf1", "uar", "accuracy"))
        print(f"| {strategy} | {cells} | {s['wall_s'][0]:.1f} |")
    seq_mean, seq_sd = stats["sequential"]["uf1"]
    par_mean = stats["parallel"]["uf1"][0]
    within = abs(par_mean - seq_mean) <= seq_sd
    ratio = stats["sequential"]["wall_s"][0] / stats["parallel"]["wall_s"][0]
    print(
        f"parallel UF1 mean - sequential UF1 mean = {par_mean - seq_mean:+.4f} "
        f"(sequential sd {seq_sd:.4f}): {'within' if within else 'outside'} one sequential sd; "
        f"sequential / parallel wall time {ratio:.2f}x"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"runs": runs, "stats": stats, "within_one_sd": within}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
