"""TV-L1 optical flow: OpenCV (CPU, one pair at a time) vs batched PyTorch TV-L1 (CPU, and CUDA if present).

    python benchmarks/flow_speed.py                          # 28, 128 and 224 px, 8 pairs each
    python benchmarks/flow_speed.py --pairs 64 --size 128 --json flow_speed.json

Per size: pairs per second and mean interior end-point error on band-limited textures moved by known shifts
(sub-pixel and whole-pixel), at the composite's sizes: 28x28 (STSTNet's input; its flow is computed on
frames resized to that) and 128x128 / 224x224 face crops. Prints a markdown table whose last columns are
ratios to OpenCV measured in this run. Nothing is asserted. Thread counts are printed; `--threads N` sets
both OpenCV's and torch's (otherwise each follows its own default, torch also OMP_NUM_THREADS).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_flow import shifted, texture  # noqa: E402  (the same test texture and exact sub-pixel shift)

from preprocessing.flow import tvl1_flow  # noqa: E402
from preprocessing.tvl1_torch import tvl1_flow_batch  # noqa: E402

SIZES = (28, 128, 224)
# (dx, dy) px, cycled over the pairs: sub-pixel ones and whole pixels along each axis.
SHIFTS = ((0.4, -0.7), (1.0, 0.0), (0.0, -1.0), (-0.6, 0.3))


def make_pairs(size: int, count: int) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float]]]:
    """`count` float32 grey pairs (N, size, size) in [0, 1], ±40 grey levels, and their shifts."""
    shifts = [SHIFTS[i % len(SHIFTS)] for i in range(count)]
    bases = [texture(size, size, seed=seed) for seed in range(count)]
    prev = np.stack([(128 + 40 * base) / 255 for base in bases]).astype(np.float32)
    next_ = np.stack([(128 + 40 * shifted(b, *s)) / 255 for b, s in zip(bases, shifts, strict=True)])
    return prev, next_.astype(np.float32), shifts


def mean_epe(u: np.ndarray, v: np.ndarray, shifts: list[tuple[float, float]]) -> float:
    border = max(3, u.shape[-1] // 8)
    inner = (slice(None), slice(border, -border), slice(border, -border))
    dx, dy = (np.array(axis, np.float32)[:, None, None] for axis in zip(*shifts, strict=True))
    return float(np.mean(np.hypot(u[inner] - dx, v[inner] - dy)))


def run_opencv(prev: np.ndarray, next_: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    start = time.perf_counter()
    flows = [tvl1_flow(a, b) for a, b in zip(prev, next_, strict=True)]
    seconds = time.perf_counter() - start
    return seconds, np.stack([f[0] for f in flows]), np.stack([f[1] for f in flows])


def run_torch(prev: np.ndarray, next_: np.ndarray, device: str) -> tuple[float, np.ndarray, np.ndarray]:
    prev_t, next_t = torch.from_numpy(prev).to(device), torch.from_numpy(next_).to(device)
    # Warm-up: CUDA context, kernels and allocator (on the CPU one pair is enough).
    warm = slice(None) if device == "cuda" else slice(0, 1)
    tvl1_flow_batch(prev_t[warm], next_t[warm], device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    u, v = tvl1_flow_batch(prev_t, next_t, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return seconds, u.cpu().numpy(), v.cpu().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=8, help="frame pairs per size (one torch batch)")
    parser.add_argument("--size", type=int, nargs="+", default=list(SIZES), help="square sizes in px")
    parser.add_argument("--threads", type=int, help="CPU threads for both OpenCV and torch (default: theirs)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.threads:
        cv2.setNumThreads(args.threads)
        torch.set_num_threads(args.threads)

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    setup = {
        "opencv": cv2.__version__,
        "torch": torch.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "cuda_device": torch.cuda.get_device_name() if "cuda" in devices else None,
        "pairs": args.pairs,
    }
    print(
        f"OpenCV {setup['opencv']} ({setup['opencv_threads']} threads), torch {setup['torch']} "
        f"({setup['torch_threads']} threads), CUDA: {setup['cuda_device'] or 'none'}; "
        f"{args.pairs} pairs per size, default TV-L1 parameters\n"
    )
    rows = []
    for size in args.size:
        prev, next_, shifts = make_pairs(size, args.pairs)
        seconds, u, v = run_opencv(prev, next_)
        opencv = {"size": size, "implementation": "opencv", "device": "cpu", "batch": 1, "seconds": seconds,
                  "epe_px": mean_epe(u, v, shifts)}  # fmt: skip
        rows.append(opencv)
        for device in devices:
            seconds, u, v = run_torch(prev, next_, device)
            rows.append({"size": size, "implementation": "torch", "device": device, "batch": args.pairs,
                         "seconds": seconds, "epe_px": mean_epe(u, v, shifts)})  # fmt: skip
        for row in rows[-1 - len(devices) :]:
            row["pairs_per_s"] = args.pairs / row["seconds"]
            row["speed_vs_opencv"] = opencv["seconds"] / row["seconds"]
            row["epe_minus_opencv_px"] = row["epe_px"] - opencv["epe_px"]

    print(
        "| size | implementation | batch | pairs/s | ms/pair | mean EPE px "
        "| speed x OpenCV | EPE - OpenCV px |"
    )
    print("|---:|:---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        name = "OpenCV DualTVL1" if row["implementation"] == "opencv" else f"torch {row['device']}"
        print(
            f"| {row['size']}x{row['size']} | {name} | {row['batch']} | {row['pairs_per_s']:.1f} | "
            f"{1e3 / row['pairs_per_s']:.1f} | {row['epe_px']:.4f} | {row['speed_vs_opencv']:.2f}x | "
            f"{row['epe_minus_opencv_px']:+.4f} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"setup": setup, "results": rows}, indent=2) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
