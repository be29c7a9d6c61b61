"""Where the default recipe lands on the harder synthetic preset (`data=synthetic_casme2like`).

    python benchmarks/calibrate_synthetic.py                       # the preset as shipped
    python benchmarks/calibrate_synthetic.py --variant "" \
        --variant "data.reader.num_subjects=9 data.reader.clips_per_subject=16"   # and the 144-clip variant

Each variant (a space-separated list of Hydra overrides, "" = the preset as shipped) is one full run of the
default experiment (STSTNet, Adam 1e-3, batch 32, 60 epochs, apex_flow) in a fresh process and run directory,
features cached under --cache-dir. Prints per variant: pooled UF1, UAR, seconds, and whether UF1 lies in the
band the preset is calibrated for (0.5-0.75: model choices show, chance and ceiling are far). Nothing is
asserted; a run takes 3-5 minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BAND = (0.5, 0.75)


def run(overrides: list[str], run_dir: Path, cache_dir: Path) -> tuple[dict, float]:
    """(summary.json of the run, wall seconds)."""
    args = [
        sys.executable,
        "train.py",
        "data=synthetic_casme2like",
        "logger=none",
        "progress=false",
        f"run_dir={run_dir}",
        f"cache_dir={cache_dir}",
        *overrides,
    ]
    start = time.perf_counter()
    out = subprocess.run(args, cwd=ROOT, env={**os.environ, "WANDB_MODE": "disabled"}, capture_output=True)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"train.py {' '.join(overrides)} failed:\n{out.stderr.decode()[-4000:]}")
    return json.loads((run_dir / "summary.json").read_text()), seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--variant", action="append", help='Hydra overrides, space-separated ("" = as shipped)'
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="feature cache (default: a temporary one)"
    )
    opts = parser.parse_args()
    variants = opts.variant if opts.variant is not None else [""]
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = opts.cache_dir or Path(tmp) / "cache"
        print(f"cores: {os.cpu_count()}; band {BAND[0]}-{BAND[1]}")
        print(f"{'UF1':>7s} {'UAR':>7s} {'n':>5s} {'seconds':>8s}  in band  variant")
        for i, variant in enumerate(variants):
            summary, seconds = run(shlex.split(variant), Path(tmp) / f"run{i}", cache_dir)
            inside = BAND[0] <= summary["uf1"] <= BAND[1]
            print(
                f"{summary['uf1']:7.4f} {summary['uar']:7.4f} {summary['n']:5d} {seconds:8.0f}  "
                f"{'yes' if inside else 'NO':7s}  {variant or '(as shipped)'}",
                flush=True,
            )


if __name__ == "__main__":
    main()
