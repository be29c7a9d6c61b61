"""The seed's comparison rebuilt under one protocol: hand-crafted descriptors + SVM against STSTNet.

    python benchmarks/baselines.py [--data synthetic synthetic_casme2like] [--only lbptop_tim biwoof_apex]
        [--json PATH]

For each data config, a full LOSO run of train.py per method (its own feature cache, so the feature time is
the cold time), all on the same folds, label map and pooled metrics:
- LBP-TOP with TIM10 (experiment=lbptop_svm), LBP-TOP with sparse sampling (DMDSP) to the same length,
- LBP-SIP (TIM10), HOOF (apex & onset), Bi-WOOF (apex & onset, and random frame & onset, as the seed's table),
- STSTNet (the default CPU recipe, experiment=synthetic_ststnet for the synthetic database, ststnet_cpu else).
Prints pooled UF1 / UAR, feature seconds per clip (the run's feature stage over its clips) and fit seconds
per fold (the SVM's fit as the fold loop logs it; a network's training time for STSTNet). Nothing asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import run_train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

METHODS = {
    "lbptop_tim": ("LBP-TOP (TIM10)", ["experiment=lbptop_svm"]),
    "lbptop_sparse": ("LBP-TOP (sparse sampling)", ["experiment=lbptop_svm", "features.temporal=sparse"]),
    "lbpsip_tim": ("LBP-SIP (TIM10)", ["experiment=lbpsip_svm"]),
    "hoof_apex": ("HOOF (apex & onset)", ["experiment=hoof_svm"]),
    "biwoof_apex": ("Bi-WOOF (apex & onset)", ["experiment=biwoof_svm"]),
    "biwoof_random": (
        "Bi-WOOF (random & onset)",
        ["experiment=biwoof_svm", "features.frames=[onset,random]"],
    ),
    "ststnet": ("STSTNet", []),
}
FIT_LINE = re.compile(
    r"fold .*: (?:SVM fitted in (?P<svm>[0-9.]+) s|trained and tested in (?P<net>[0-9.]+) s)"
)


def _fit_times(run_dir: Path) -> list[float]:
    """Per-fold fit seconds as the fold loop logged them in the run's train.log."""
    text = (run_dir / "train.log").read_text()
    return [float(m["svm"] or m["net"]) for m in FIT_LINE.finditer(text)]


def feature_seconds_per_clip(overrides: list[str], clips: int = 24) -> float:
    """Seconds per clip of the method's feature spec(s), computed in this process (no cache, no workers)."""
    sys.path.insert(0, str(ROOT))
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    import train
    from preprocessing.features import compute_features
    from preprocessing.flow import clear_flow_memo

    clear_flow_memo()  # the flow of an earlier method's pair is remembered in this process: time it anew
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, "run_dir=unused"])
    specs = train.feature_specs(cfg, instantiate)
    samples = instantiate(cfg.data.reader).samples[:clips]
    start = time.perf_counter()
    for sample in samples:
        for spec in specs.values():
            compute_features(sample, spec)
    return (time.perf_counter() - start) / len(samples)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", nargs="+", default=["synthetic", "synthetic_casme2like"])
    parser.add_argument("--only", nargs="*", default=list(METHODS))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--timing-only", action="store_true", help="feature seconds per clip, no LOSO runs")
    args = parser.parse_args()
    if args.timing_only:
        for data in args.data:
            for name in args.only:
                label, overrides = METHODS[name]
                if name == "ststnet":
                    overrides = (
                        ["experiment=synthetic_ststnet"]
                        if data == "synthetic"
                        else ["experiment=ststnet_cpu"]
                    )
                seconds = feature_seconds_per_clip([*overrides, f"data={data}"])
                print(f"| {data} | {label} | {seconds:.3f} s per clip |", flush=True)
        return
    work = Path(tempfile.mkdtemp(prefix="merlin-baselines-"))
    env = {**os.environ, "WANDB_MODE": "disabled"}
    rows = []
    for data in args.data:
        for name in args.only:
            label, overrides = METHODS[name]
            if name == "ststnet":
                overrides = (
                    ["experiment=synthetic_ststnet"] if data == "synthetic" else ["experiment=ststnet_cpu"]
                )
            run_dir = work / data / name
            cache = work / data / f"cache-{name}"
            start = time.perf_counter()
            wall, peak, _ = run_train(
                [*overrides, f"data={data}", f"run_dir={run_dir}", f"cache_dir={cache}", "logger=none",
                 "progress=false"],
                {**env, "MERLIN_CACHE_DIR": str(cache)},
            )  # fmt: skip
            summary = json.loads((run_dir / "summary.json").read_text())
            fits = _fit_times(run_dir)
            rows.append(
                {
                    "data": data,
                    "method": label,
                    "uf1": summary["uf1"],
                    "uar": summary["uar"],
                    "clips": summary["n"],
                    "feature_s_per_clip": feature_seconds_per_clip([*overrides, f"data={data}"]),
                    "fit_s_per_fold": sum(fits) / len(fits) if fits else None,
                    "wall_s": wall,
                    "peak_mib": peak,
                }
            )
            print(f"{data:22s} {label:28s} done in {time.perf_counter() - start:.0f} s", flush=True)
    print()
    print("| data | method | UF1 | UAR | feature s / clip | fit s / fold | wall s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        feat = f"{r['feature_s_per_clip']:.3f}"
        fit = "-" if r["fit_s_per_fold"] is None else f"{r['fit_s_per_fold']:.3f}"
        print(
            f"| {r['data']} | {r['method']} | {r['uf1']:.4f} | {r['uar']:.4f} | {feat} | {fit} "
            f"| {r['wall_s']:.0f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
