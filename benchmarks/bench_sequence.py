"""Sequence inputs on this machine: resampling a clip (TIM, linear, uniform), and an ELRCN-sized input held in
memory vs streamed from disk (time per epoch of batches, peak RSS).

    python benchmarks/bench_sequence.py [--clips 442] [--steps 9] [--channels 5] [--size 224] [--batch 32]

Part 1 times `preprocessing.temporal` on a 60-frame 170x140 grey clip (a CASME II crop) to T = 10, 32, 150.
Part 2 is the issue's worst case, ELRCN-SE on the 442-clip composite: (442, 9, 5, 224, 224) float32, 4.0 GB.
Each mode runs in a fresh process that builds the input (the streamed one writes it row by row, as
`cached_features` does), computes the channel statistics of 400 training rows, and serves one epoch of
shuffled training batches through the data module's transform; peak RSS is the process's maximum resident
set. Nothing is asserted; ratios against the in-memory run are printed.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("clips", "steps", "channels", "size", "batch")
sys.path.insert(0, str(ROOT))


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def resampling() -> list[str]:
    import numpy as np

    from preprocessing.temporal import resample

    clip = np.random.default_rng(0).random((60, 140, 170)).astype(np.float32)
    rows = ["| method | T | ms per clip |", "| --- | ---: | ---: |"]
    for method in ("tim", "linear", "uniform"):
        for length in (10, 32, 150):
            start = time.perf_counter()
            for _ in range(5):
                resample(clip, length, method)
            rows.append(f"| {method} | {length} | {(time.perf_counter() - start) / 5 * 1000:.1f} |")
    return rows


def serve(mode: str, clips: int, steps: int, channels: int, size: int, batch: int, folder: str) -> dict:
    """One mode's run (in its own process): build the input, statistics, one epoch of batches."""
    import numpy as np
    import torch

    from datamodules.datamodule import FeatureSet, MERDataModule
    from datamodules.disk_array import DiskArray
    from datamodules.protocols import loso_folds

    torch.set_num_threads(2)
    shape = (clips, steps, channels, size, size)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    if mode == "memory":
        array = torch.empty(shape)
        for i in range(clips):
            array[i] = torch.from_numpy(rng.standard_normal(shape[1:], dtype=np.float32))
    else:
        array = DiskArray.create(Path(folder) / "stream.npy", shape)
        for i in range(clips):
            array[i] = rng.standard_normal(shape[1:], dtype=np.float32)
    built = time.perf_counter() - start
    subjects = [f"synthetic/s{i % 68:02d}" for i in range(clips)]
    features = FeatureSet(
        inputs={"x": array},
        channels={"x": tuple(f"c{c}" for c in range(channels))},
        y=torch.zeros(clips, dtype=torch.long),
        sample_ids=[f"{s}/{i}" for i, s in enumerate(subjects)],
        subjects=subjects,
        datasets=["synthetic"] * clips,
        clips=[str(i) for i in range(clips)],
        classes=("a", "b", "c"),
    )
    dm = MERDataModule(
        features, loso_folds(subjects), fold=0, batch_size=batch, normalize="minmax", standardize="channel"
    )
    start = time.perf_counter()
    dm.setup("fit")
    stats = time.perf_counter() - start
    start = time.perf_counter()
    served = 0
    for b in dm.train_dataloader():
        served += len(dm.transform_batch(b, train=True)["x"])
    epoch = time.perf_counter() - start
    return {"built_s": built, "stats_s": stats, "epoch_s": epoch, "served": served, "peak_mib": _peak_mib()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", type=int, default=442)
    parser.add_argument("--steps", type=int, default=9)
    parser.add_argument("--channels", type=int, default=5)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--serve", choices=["memory", "streamed"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = (args.clips, args.steps, args.channels, args.size, args.batch)
    if args.serve:
        print(json.dumps(serve(args.serve, *sizes, args.folder)))
        return

    print("\n".join(resampling()))
    gib = args.clips * args.steps * args.channels * args.size * args.size * 4 / 2**30
    print(
        f"\ninput ({args.clips}, {args.steps}, {args.channels}, {args.size}, {args.size}) float32: "
        f"{gib:.2f} GiB"
    )
    results = {}
    with tempfile.TemporaryDirectory(prefix="merlin-seq-") as folder:
        for mode in ("memory", "streamed"):
            command = [sys.executable, __file__, "--serve", mode, "--folder", folder]
            command += [f"--{k}={v}" for k, v in zip(NAMES, sizes, strict=True)]
            out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
            results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    rows = [
        "| mode | build s | statistics s | epoch s | samples | peak RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mode, r in results.items():
        rows.append(
            f"| {mode} | {r['built_s']:.1f} | {r['stats_s']:.1f} | {r['epoch_s']:.1f} | {r['served']} | "
            f"{r['peak_mib']:.0f} |"
        )
    print("\n".join(rows))
    m, s = results["memory"], results["streamed"]
    print(
        f"streamed / memory: epoch {s['epoch_s'] / m['epoch_s']:.2f}x, "
        f"peak RSS {s['peak_mib'] / m['peak_mib']:.2f}x"
    )


if __name__ == "__main__":
    main()
