"""Where a LOSO run's time goes: MERLin's fold-parallel and sequential modes vs a plain PyTorch loop vs
the FLOP floor.

    python benchmarks/loso_speed.py [--subjects 68] [--clips 7] [--epochs 2 12] [--plain-folds 8]
        [--model ststnet] [--parallel-epochs 20 60] [--full] [--json PATH]

On a synthetic composite-sized database (68 subjects x 7 clips = 476 clips, 3 classes; the MEGC2019
composite has 442 clips of 68 subjects), with the paper recipe of `experiment=<model>` (STSTNet: Adam 5e-5,
batch 256):
- MERLin parallel (`loso.strategy=parallel`, the default for STSTNet): `train.py` at two short schedules
  (`--parallel-epochs`); the stack's training time T(E) = overhead + E x per-epoch is solved from the two and
  extrapolated; testing and writing the folds is measured as it is. `--full` also runs the whole 500-epoch
  schedule once (no extrapolation) and reports its wall time and peak RSS.
- MERLin sequential (`loso.strategy=sequential`): `train.py` over all folds at two short schedules
  (`--epochs`), in fresh processes, features cached; a fold's time t(E) = overhead + E x per-epoch is solved
  from the two, so the per-fold overhead (Trainer construction, logger, test, writing) is measured apart.
- plain: a hand-written loop over the same cached features (per-sample min-max, as MERLin), the same
  network, Adam and batch size, index gathers from one tensor, no Lightning, `--plain-folds` folds.
- floor: forward + backward FLOPs per sample (torch.utils.flop_counter) x sample-passes over the
  measured fp32 matrix-product rate of this machine.
All three are extrapolated to 500 epochs x every fold. Runs must have the machine to themselves. Prints a
table ending in ratios measured in the same run; `--json PATH` writes the figures. Nothing is asserted.
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

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import run_train  # noqa: E402

PAPER_EPOCHS = 500


def train_args(args, work: Path, strategy: str, epochs: int, run_dir: Path) -> list[str]:
    """train.py overrides of one measured run: the recipe on the composite-sized database, no logger."""
    return [
        f"experiment={args.model}",
        f"loso.strategy={strategy}",
        f"data.reader.num_subjects={args.subjects}",
        f"data.reader.clips_per_subject={args.clips}",
        f"trainer.max_epochs={epochs}",
        "logger=none",
        "progress=false",
        f"run_dir={run_dir}",
        f"cache_dir={work / 'cache'}",
    ]


def merlin_fold_seconds(args, work: Path, env: dict) -> dict:
    """{epochs: [per-fold seconds]} from train.log's `trained and tested in` lines."""
    out = {}
    for epochs in args.epochs:
        run_dir = work / f"merlin-{epochs}"
        run_train(train_args(args, work, "sequential", epochs, run_dir), env)
        text = (run_dir / "train.log").read_text()
        out[epochs] = [float(s) for s in re.findall(r"trained and tested in ([0-9.]+) s", text)]
    return out


def parallel_seconds(args, work: Path, env: dict, epochs: int) -> dict:
    """One fold-parallel run: the stack's training seconds, the testing-and-writing seconds, the wall time
    and the peak RSS (MiB) of the whole train.py process."""
    run_dir = work / f"parallel-{epochs}"
    wall, peak_mib, _ = run_train(train_args(args, work, "parallel", epochs, run_dir), env)
    text = (run_dir / "train.log").read_text()
    trained, finished = re.search(r"trained in ([0-9.]+) s, tested and written in ([0-9.]+) s", text).groups()
    uf1 = re.search(r"^Full\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)", text, re.M)
    return {
        "train_s": float(trained),
        "finish_s": float(finished),
        "wall_s": wall,
        "peak_rss_mib": peak_mib,
        "uf1": float(uf1.group(1)) if uf1 else None,
    }


def _features(args, work: Path):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from datamodules.datamodule import build_feature_set
    from datamodules.protocols import label_map, loso_folds

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                f"experiment={args.model}",
                f"data.reader.num_subjects={args.subjects}",
                f"data.reader.clips_per_subject={args.clips}",
            ],
        )
    read = instantiate(cfg.data.reader)
    features = build_feature_set(
        read.samples,
        label_map(cfg.data.label_map),
        instantiate(cfg.features),
        cache_dir=work / "cache",
        progress=False,
    )
    return cfg, features, loso_folds(features.subjects)


def plain_loop_seconds(cfg, features, folds, epochs: int, num_folds: int) -> float:
    """Seconds per fold-epoch of a hand-written loop: same network, optimizer, batch size and inputs."""
    from hydra.utils import instantiate

    from datamodules.datamodule import normalize_per_sample

    x = normalize_per_sample(features.inputs["x"].float(), "minmax")
    y = features.y
    subjects = features.subjects
    batch = int(cfg.datamodule.batch_size)
    total = 0.0
    for k in range(num_folds):
        held = folds[k].test_subjects
        train = torch.tensor([i for i, s in enumerate(subjects) if s not in held])
        torch.manual_seed(k)
        net = instantiate(cfg.model.net, num_classes=len(features.classes), in_chans=x.shape[1])
        optimizer = instantiate(cfg.model.optimizer)(net.parameters())
        start = time.perf_counter()
        net.train()
        for _ in range(epochs):
            order = train[torch.randperm(len(train))]
            for first in range(0, len(order), batch):
                rows = order[first : first + batch]
                loss = torch.nn.functional.cross_entropy(net(x[rows]), y[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        total += time.perf_counter() - start
    return total / (num_folds * epochs)


def floor_seconds(cfg, features, folds, epochs: int) -> dict:
    """Forward + backward FLOPs of one sample, the machine's fp32 matmul rate, and the LOSO's floor."""
    from hydra.utils import instantiate
    from torch.utils.flop_counter import FlopCounterMode

    x = features.inputs["x"][:64].float()
    net = instantiate(cfg.model.net, num_classes=len(features.classes), in_chans=x.shape[1])
    with FlopCounterMode(display=False) as counter:
        net(x).sum().backward()
    flops_per_sample = counter.get_total_flops() / len(x)
    a = torch.randn(1024, 1024)
    torch.mm(a, a)
    reps = 20
    start = time.perf_counter()
    for _ in range(reps):
        torch.mm(a, a)
    rate = reps * 2 * 1024**3 / (time.perf_counter() - start)
    passes = sum(len(features) - sum(s in f.test_subjects for s in features.subjects) for f in folds) * epochs
    return {
        "passes_per_epoch": passes / epochs,
        "flops_per_sample": flops_per_sample,
        "matmul_flops_per_s": rate,
        "floor_s": passes * flops_per_sample / rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subjects", type=int, default=68)
    parser.add_argument("--clips", type=int, default=7)
    parser.add_argument("--epochs", type=int, nargs=2, default=[2, 12], help="two short schedules")
    parser.add_argument("--plain-folds", type=int, default=8)
    parser.add_argument("--model", default="ststnet", help="the experiment whose recipe is used")
    parser.add_argument("--parallel-epochs", type=int, nargs=2, default=[20, 60], help="two short schedules")
    parser.add_argument("--full", action="store_true", help="also run the whole parallel schedule once")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    env = {**os.environ, "WANDB_MODE": "disabled"}
    work = Path(tempfile.mkdtemp(prefix="merlin-loso-"))
    cfg, features, folds = _features(args, work)  # cold once; every run below reads the cache
    p1, p2 = (parallel_seconds(args, work, env, e) for e in args.parallel_epochs)
    (pe1, pe2) = args.parallel_epochs
    parallel_epoch = (p2["train_s"] - p1["train_s"]) / (pe2 - pe1)
    parallel_overhead = p1["train_s"] - pe1 * parallel_epoch
    parallel = parallel_overhead + PAPER_EPOCHS * parallel_epoch + p2["finish_s"]
    full = parallel_seconds(args, work, env, PAPER_EPOCHS) if args.full else None
    merlin = merlin_fold_seconds(args, work, env)
    e1, e2 = args.epochs
    mean = {e: sum(v) / len(v) for e, v in merlin.items()}
    per_epoch = (mean[e2] - mean[e1]) / (e2 - e1)
    overhead = mean[e1] - e1 * per_epoch
    n_folds = len(folds)
    sequential = n_folds * (overhead + PAPER_EPOCHS * per_epoch)
    plain_epoch = plain_loop_seconds(cfg, features, folds, e2, min(args.plain_folds, n_folds))
    plain = n_folds * PAPER_EPOCHS * plain_epoch
    floor = floor_seconds(cfg, features, folds, PAPER_EPOCHS)
    figures = {
        "clips": len(features),
        "folds": n_folds,
        "parallel_s": parallel,
        "parallel_epoch_s": parallel_epoch,
        "parallel_overhead_s": parallel_overhead,
        "parallel_finish_s": p2["finish_s"],
        "parallel_peak_rss_mib": max(p1["peak_rss_mib"], p2["peak_rss_mib"]),
        "parallel_full_wall_s": None if full is None else full["wall_s"],
        "parallel_full_train_s": None if full is None else full["train_s"],
        "parallel_full_peak_rss_mib": None if full is None else full["peak_rss_mib"],
        "parallel_full_uf1": None if full is None else full["uf1"],
        "merlin_fold_overhead_s": overhead,
        "merlin_fold_epoch_s": per_epoch,
        "plain_fold_epoch_s": plain_epoch,
        "sequential_s": sequential,
        "plain_loop_s": plain,
        **floor,
        "sequential_over_plain": sequential / plain,
        "speedup": sequential / parallel,
        "parallel_over_plain": plain / parallel,
        "parallel_over_floor": parallel / floor["floor_s"],
        # Sample-passes one epoch of all folds makes (what the floor counts), over the stack's epoch time.
        "achieved_gflops_parallel": floor["flops_per_sample"]
        * floor["passes_per_epoch"]
        / parallel_epoch
        / 1e9,
        "plain_over_floor": plain / floor["floor_s"],
        "achieved_gflops_plain": floor["flops_per_sample"]
        * (len(features) * (n_folds - 1) / n_folds)
        / plain_epoch
        / 1e9,
    }
    print(
        f"{len(features)} clips, {n_folds} folds, {args.model} recipe; extrapolated to {PAPER_EPOCHS} epochs"
    )
    print("| what | per fold-epoch | full LOSO |")
    print("| --- | ---: | ---: |")
    print(
        f"| MERLin sequential (+ {overhead:.2f} s per fold) | {per_epoch * 1e3:.1f} ms | "
        f"{sequential / 60:.1f} min |"
    )
    print(
        f"| MERLin parallel ({len(folds)} folds as one stack; + {parallel_overhead:.1f} s start, "
        f"{p2['finish_s']:.1f} s testing and writing) | {parallel_epoch / n_folds * 1e3:.1f} ms | "
        f"{parallel / 60:.1f} min |"
    )
    if full is not None:
        print(
            f"| MERLin parallel, the whole {PAPER_EPOCHS} epochs run (train.py wall, cached features) | | "
            f"{full['wall_s'] / 60:.1f} min |"
        )
    print(f"| plain PyTorch loop | {plain_epoch * 1e3:.1f} ms | {plain / 60:.1f} min |")
    print(
        f"| floor: {floor['flops_per_sample'] / 1e6:.2f} MFLOP per sample-pass at "
        f"{floor['matmul_flops_per_s'] / 1e9:.0f} GFLOP/s | | {floor['floor_s'] / 60:.2f} min |"
    )
    print(
        f"ratios: sequential / parallel {figures['speedup']:.1f}x; plain / parallel "
        f"{figures['parallel_over_plain']:.1f}x; parallel / floor {figures['parallel_over_floor']:.1f}x; "
        f"sequential / plain {figures['sequential_over_plain']:.2f}x; plain / floor "
        f"{figures['plain_over_floor']:.1f}x. Achieved: parallel {figures['achieved_gflops_parallel']:.1f} "
        f"GFLOP/s, plain {figures['achieved_gflops_plain']:.1f} GFLOP/s; peak RSS (parallel) "
        f"{figures['parallel_peak_rss_mib']:.0f} MiB"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
