"""One command for whoever has a CUDA GPU: every recipe, one fold, a few epochs, in 32-bit, 16-mixed and
bf16-mixed, checked for NaNs; then the full fold-parallel STSTNet LOSO and the batched TV-L1.

    python benchmarks/gpu_check.py [--epochs 3] [--experiments a,b,...] [--precisions 32-true 16-mixed
        bf16-mixed] [--no-loso] [--no-flow] [--json PATH]
    python benchmarks/gpu_check.py --cpu --experiments ststnet_cpu --precisions 32-true   # a smoke test here

Each (experiment, precision) runs `train.py experiment=X trainer=gpu trainer.precision=P fold=0
trainer.max_epochs=E` on the built-in synthetic data (the macro source for pre-training recipes is the
built-in synthetic macro database), in its own process, features cached once per experiment. A run passes
when train.py exits 0, writes fold 0's predictions, and every probability in them is finite. Recipes that
start from a checkpoint (finetune*, distill*) get the checkpoint of the matching pretrain_macro run of the
same precision. Then, unless told not to:
- the full MEGC2019-sized LOSO (68 subjects x 7 clips, STSTNet's 500-epoch paper recipe) with
  loso.strategy=parallel, wall time (the issue's target: under 10 s on one H100-class card once features are
  cached) and peak GPU memory of the stack;
- benchmarks/flow_speed.py: OpenCV TV-L1 on the CPU vs the batched PyTorch TV-L1 on the GPU.
Prints a table per part; `--json PATH` writes every figure. Nothing is asserted; a failed run is listed with
the last lines of its error and the script exits 1.
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
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")
# Recipes whose starting weights come from a pre-training run (the key that takes its checkpoint).
NEEDS_CHECKPOINT = {
    "finetune": "model.init_from",
    "finetune_cpu": "model.init_from",
    "distill": "model.distill.teacher.ckpt",
    "distill_cpu": "model.distill.teacher.ckpt",
}
PRETRAIN_FOR = {"finetune": "pretrain_macro", "distill": "pretrain_macro"}


def experiments() -> list[str]:
    return sorted(p.stem for p in (ROOT / "configs" / "experiment").glob("*.yaml"))


def train(args: list[str], env: dict) -> tuple[int, float, str]:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "train.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    return out.returncode, time.perf_counter() - start, (out.stderr or out.stdout)[-1500:]


def finite_predictions(run_dir: Path) -> bool | None:
    import numpy as np
    import pandas as pd

    path = run_dir / "predictions" / "fold_000.csv"
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    probs = frame[[c for c in frame.columns if c.startswith("p_")]].to_numpy(dtype=float)
    return bool(np.isfinite(probs).all())


def check_recipes(cli, work: Path, env: dict) -> list[dict]:
    rows = []
    trainer = "trainer=cpu" if cli.cpu else "trainer=gpu"
    names = cli.experiments.split(",") if cli.experiments else experiments()
    # Pre-training recipes first: the recipes that fine-tune or distil start from their checkpoints.
    names.sort(key=lambda n: (not n.startswith("pretrain"), n))
    for precision in cli.precisions:
        pretrained: dict[str, Path] = {}
        for name in names:
            run_dir = work / f"{name}-{precision}"
            args = [
                f"experiment={name}",
                trainer,
                f"trainer.precision={precision}",
                f"trainer.max_epochs={cli.epochs}",
                "logger=none",
                "progress=false",
                f"run_dir={run_dir}",
                f"cache_dir={work / 'cache'}",
            ]
            if not name.startswith("pretrain"):
                args.append("fold=0")
            if name in NEEDS_CHECKPOINT:
                source = PRETRAIN_FOR[name.removesuffix("_cpu")] + ("_cpu" if name.endswith("_cpu") else "")
                if source not in pretrained:
                    rows.append(
                        {"experiment": name, "precision": precision, "status": f"skipped: no {source}"}
                    )
                    continue
                args.append(f"{NEEDS_CHECKPOINT[name]}={pretrained[source]}")
            code, seconds, tail = train(args, env)
            if name.startswith("pretrain"):
                pretrained[name] = run_dir / "last.ckpt"
                finite = (run_dir / "last.ckpt").is_file() if code == 0 else None
            else:
                finite = finite_predictions(run_dir) if code == 0 else None
            status = "ok" if code == 0 and finite else ("NaN in predictions" if code == 0 else "failed")
            rows.append(
                {
                    "experiment": name,
                    "precision": precision,
                    "status": status,
                    "seconds": round(seconds, 1),
                    "error": None if status == "ok" else tail,
                }
            )
            print(f"{name:24s} {precision:10s} {status:20s} {seconds:7.1f} s", flush=True)
    return rows


def full_loso(cli, work: Path, env: dict) -> dict:
    run_dir = work / "loso-parallel"
    args = [
        "experiment=ststnet",
        "trainer=cpu" if cli.cpu else "trainer=gpu",
        "trainer.precision=32-true",
        "loso.strategy=parallel",
        "data.reader.num_subjects=68",
        "data.reader.clips_per_subject=7",
        "logger=none",
        "progress=false",
        f"run_dir={run_dir}",
        f"cache_dir={work / 'cache'}",
    ]
    if cli.cpu:
        args.append("trainer.max_epochs=5")  # a smoke test of the script, not a measurement
    # A first run of 1 epoch computes the features, so the measured run reads them from the cache.
    train([*args[:-1], f"run_dir={work / 'loso-warm'}", "trainer.max_epochs=1"], env)
    code, seconds, tail = train(args, env)
    text = (run_dir / "train.log").read_text() if (run_dir / "train.log").is_file() else ""
    trained = re.search(r"trained in ([0-9.]+) s, tested and written in ([0-9.]+) s", text)
    table = re.search(r"^Full\s+([0-9.]+)\s+([0-9.]+)", text, re.M)
    return {
        "status": "ok" if code == 0 else "failed",
        "wall_s": round(seconds, 1),
        "stack_train_s": float(trained.group(1)) if trained else None,
        "test_and_write_s": float(trained.group(2)) if trained else None,
        "uf1": float(table.group(1)) if table else None,
        "uar": float(table.group(2)) if table else None,
        "error": None if code == 0 else tail,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--experiments", default="", help="comma-separated experiment names (default: all)")
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--no-loso", action="store_true")
    parser.add_argument("--no-flow", action="store_true")
    parser.add_argument("--cpu", action="store_true", help="smoke-test this script on a machine without CUDA")
    parser.add_argument("--json", type=Path)
    cli = parser.parse_args()

    import torch

    if not cli.cpu and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run this on a GPU machine (or pass --cpu for a smoke test)")
    device = "cpu" if cli.cpu else torch.cuda.get_device_name(0)
    print(f"device: {device}; torch {torch.__version__}")
    env = {**os.environ, "WANDB_MODE": "disabled"}
    work = Path(tempfile.mkdtemp(prefix="merlin-gpu-check-"))
    figures: dict = {"device": device, "torch": torch.__version__}
    figures["recipes"] = rows = check_recipes(cli, work, env)
    if not cli.no_loso:
        figures["loso_parallel"] = loso = full_loso(cli, work, env)
        print(
            f"full LOSO, STSTNet, 68 folds, fold-parallel: {loso['status']}, {loso['wall_s']} s wall "
            f"(stack trained in {loso['stack_train_s']} s, tested and written in "
            f"{loso['test_and_write_s']} s), "
            f"UF1 {loso['uf1']} UAR {loso['uar']}"
        )
    if not cli.no_flow:
        flow_json = work / "flow.json"
        out = subprocess.run(
            [sys.executable, "benchmarks/flow_speed.py", "--json", str(flow_json)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        print(out.stdout[-4000:])
        figures["flow_speed"] = (
            json.loads(flow_json.read_text()) if flow_json.is_file() else out.stderr[-1500:]
        )
    print("| experiment | precision | status | s |")
    print("| --- | --- | --- | ---: |")
    for row in rows:
        print(f"| {row['experiment']} | {row['precision']} | {row['status']} | {row.get('seconds', '')} |")
    failed = [r for r in rows if r["status"] not in ("ok",) and not r["status"].startswith("skipped")]
    for row in failed:
        print(f"\n{row['experiment']} {row['precision']}: {row['status']}\n{row['error']}")
    if cli.json:
        cli.json.write_text(json.dumps(figures, indent=2) + "\n")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
