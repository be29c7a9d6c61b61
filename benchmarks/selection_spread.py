"""Fixed schedule vs inner-validation selection vs the leaky oracle epoch, over seeds.

    python benchmarks/selection_spread.py [--experiment synthetic_ststnet] [--seeds 0 1 2 3 4]
        [--overrides data=synthetic_casme2like ...] [--json PATH]

Three seeds runs of train.py (`seeds=[...]`, features cached once):
- fixed: the recipe's schedule, last epoch tested (the default; fold-parallel where the recipe allows);
- inner: selection=inner (one validation subject per fold chooses the epoch; folds sequential);
- fixed + diagnostics.oracle_epoch=true (sequential): the same fixed-schedule numbers, sequentially trained,
  and the oracle: each fold at its best epoch on its own test subject (leaky; what published code reports).
Prints pooled UF1 / UAR as mean +/- sample std over the seeds per mode, the oracle's gain over its own fixed
run, and wall times. Nothing is asserted: the oracle is expected to exceed every honest mode.
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

MODES = {
    "fixed": [],
    "inner": ["selection=inner"],
    "fixed_sequential_oracle": ["loso.strategy=sequential", "diagnostics.oracle_epoch=true"],
}


def _spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiment", default="synthetic_ststnet")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--overrides", nargs="*", default=[], help="more train.py overrides, e.g. data=...")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    env = {**os.environ, "WANDB_MODE": "disabled"}
    work = Path(tempfile.mkdtemp(prefix="merlin-selection-"))
    seeds = "[" + ",".join(str(s) for s in args.seeds) + "]"
    results: dict[str, dict] = {}
    for mode, overrides in MODES.items():
        run_dir = work / mode
        wall, _, _ = run_train(
            [
                f"experiment={args.experiment}",
                f"seeds={seeds}",
                "logger=none",
                "progress=false",
                f"run_dir={run_dir}",
                f"cache_dir={work / 'cache'}",
                *overrides,
                *args.overrides,
            ],
            env,
        )
        summary = json.loads((run_dir / "summary.json").read_text())
        per_seed = summary["per_seed"]
        row = {
            "uf1": [per_seed[str(s)]["uf1"] for s in args.seeds],
            "uar": [per_seed[str(s)]["uar"] for s in args.seeds],
            "wall_s": wall,
        }
        if "oracle" in mode:
            oracles = [json.loads((run_dir / f"seed_{s}" / "oracle.json").read_text()) for s in args.seeds]
            results["oracle (leaky: not a result)"] = {
                "uf1": [o["uf1"] for o in oracles],
                "uar": [o["uar"] for o in oracles],
                "wall_s": None,
            }
        results[mode] = row
        print(f"{mode}: UF1 {_spread(row['uf1'])}  UAR {_spread(row['uar'])}  ({wall:.0f} s)", flush=True)
    print(
        f"\n{args.experiment}, {len(args.seeds)} seeds ({' '.join(map(str, args.seeds))}); mean ± sample std"
    )
    print(f"{'mode':<30}  {'UF1':>17}  {'UAR':>17}  {'wall':>7}")
    for mode, row in results.items():
        wall = "" if row["wall_s"] is None else f"{row['wall_s']:.0f} s"
        print(f"{mode:<30}  {_spread(row['uf1']):>17}  {_spread(row['uar']):>17}  {wall:>7}")
    oracle, honest = results["oracle (leaky: not a result)"], results["fixed_sequential_oracle"]
    gains = [o - h for o, h in zip(oracle["uf1"], honest["uf1"], strict=True)]
    print(f"oracle gain over its own fixed run (UF1): {_spread(gains)}")
    if args.json:
        args.json.write_text(
            json.dumps({"experiment": args.experiment, "seeds": args.seeds, **results}, indent=2)
        )


if __name__ == "__main__":
    main()
