"""The default run (`python train.py`): wall time and peak memory, cold feature cache vs cached.

    python benchmarks/bench_train.py [--logger wandb|csv|none] [extra Hydra overrides...]

Runs train.py three times in fresh processes into fresh run directories: (1) with an empty feature cache,
(2) again with the cache that run filled, (3) features only, computed cold in-process, to split the cold
run's time into pre-processing and training. Prints seconds, peak resident memory and ratios against the
cold run. Nothing here asserts a time; the figures go into issue notes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_train(args: list[str], env: dict) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB of the child, last line of stdout)."""
    start = time.perf_counter()
    # A fresh interpreter per measurement: RUSAGE_CHILDREN reports the largest child so far, so each
    # measurement runs in its own wrapper process.
    code = (
        "import resource, subprocess, sys;"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
        "sys.stdout.write(p.stdout); sys.stderr.write(p.stderr[-4000:]);"
        "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
        "sys.exit(p.returncode)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, sys.executable, "train.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"train.py failed:\n{out.stderr}")
    lines = out.stdout.strip().splitlines()
    peak_kb = int(next(line.split()[1] for line in lines if line.startswith("PEAK_KB")))
    table = [line for line in lines if not line.startswith("PEAK_KB")]
    return wall, peak_kb / 1024, "\n".join(table[-6:])


def features_only_seconds(cache_dir: Path) -> float:
    sys.path.insert(0, str(ROOT))
    from datamodules.readers.synthetic import synthetic_samples
    from preprocessing.cache import FeatureCache, cached_features
    from preprocessing.features import FeatureSpec

    samples = synthetic_samples()
    start = time.perf_counter()
    cached_features(samples, FeatureSpec(), cache=FeatureCache(cache_dir), progress=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--logger", default="none", choices=("wandb", "csv", "none"))
    parser.add_argument("overrides", nargs="*")
    opts = parser.parse_args()
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        common = [f"logger={opts.logger}", "progress=false", f"cache_dir={tmp / 'cache'}", *opts.overrides]
        cold, cold_mem, table = run_train([*common, f"run_dir={tmp / 'cold'}"], env)
        warm, warm_mem, _ = run_train([*common, f"run_dir={tmp / 'warm'}"], env)
        features = features_only_seconds(tmp / "cache-features")
    print(f"default run (logger={opts.logger}{', ' + ' '.join(opts.overrides) if opts.overrides else ''})")
    print(f"cores: {os.cpu_count()}")
    print(f"{'':34s}{'seconds':>9s}{'x cold':>9s}{'peak MiB':>10s}")
    print(f"{'train.py, empty feature cache':34s}{cold:9.1f}{1.0:9.2f}{cold_mem:10.0f}")
    print(f"{'train.py, cached features':34s}{warm:9.1f}{warm / cold:9.2f}{warm_mem:10.0f}")
    print(f"{'features only (cold, in-process)':34s}{features:9.1f}{features / cold:9.2f}{'':>10s}")
    print(f"{'=> training + start-up (cached run)':34s}{warm:9.1f}")
    print("\nresults of the cold run:\n" + table)


if __name__ == "__main__":
    main()
