"""Per-sample training-step time of STSTNet and OFF-ApexNet on CPU, fp32 vs bf16 autocast.

One step = forward + cross-entropy + backward + Adam step, at the papers' batch size of 256 on 28x28 inputs.
Times are reported as ratios against STSTNet fp32 measured in the same run, because absolute CPU times
depend on the machine and its load; the ratios are what carries over.

    python benchmarks/bench_models.py [--batch-size 256] [--steps 20] [--threads N]

Runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

# Runnable as a script from anywhere: the repository root holds the `models` package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.off_apexnet import OffApexNet  # noqa: E402
from models.ststnet import STSTNet  # noqa: E402

NETWORKS = {"STSTNet": (STSTNet, 3), "OffApexNet": (OffApexNet, 2)}  # name: (class, in_chans)
PRECISIONS = ("fp32", "bf16-autocast")


class TrainStep:
    """One network + Adam + a fixed random batch; calling it runs one step and returns its seconds."""

    def __init__(self, name: str, precision: str, batch_size: int):
        cls, in_chans = NETWORKS[name]
        torch.manual_seed(0)
        self.model = cls(num_classes=3, in_chans=in_chans).train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4)
        self.x = torch.rand(batch_size, in_chans, 28, 28) * 255.0  # the papers feed 0-255 flow images
        self.y = torch.randint(0, 3, (batch_size,))
        self.precision = precision

    def __call__(self) -> float:
        # Autocast keeps master weights and the optimizer in fp32, as Lightning's "bf16-mixed" does.
        context = torch.autocast("cpu", dtype=torch.bfloat16) if self.precision != "fp32" else nullcontext()
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        with context:
            loss = F.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.optimizer.step()
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per configuration, at most")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--budget-s", type=float, default=40.0, help="stop timing after this many seconds")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    steps = {(n, p): TrainStep(n, p, args.batch_size) for n in NETWORKS for p in PRECISIONS}
    times: dict[tuple[str, str], list[float]] = {key: [] for key in steps}
    began = time.perf_counter()
    # Round robin: on a shared machine a burst of load then slows every configuration alike, so the ratios
    # hold even when the absolute times do not. The budget keeps a loaded machine under a minute.
    for i in range(args.warmup + args.steps):
        for key, step in steps.items():
            seconds = step()
            if i >= args.warmup:
                times[key].append(seconds)
        if i >= args.warmup and time.perf_counter() - began > args.budget_s:
            break

    rounds = len(times["STSTNet", "fp32"])
    print(
        f"torch {torch.__version__}, CPU, {torch.get_num_threads()} threads, batch {args.batch_size}, "
        f"median of {rounds} interleaved steps after {args.warmup} warm-up"
    )
    per_sample = {key: statistics.median(t) / args.batch_size for key, t in times.items()}
    baseline = per_sample["STSTNet", "fp32"]
    print(f"{'network':<12} {'precision':<14} {'us/sample':>10} {'vs STSTNet fp32':>16}")
    for (name, precision), value in per_sample.items():
        print(f"{name:<12} {precision:<14} {value * 1e6:>10.1f} {value / baseline:>15.2f}x")


if __name__ == "__main__":
    main()
