"""Flow, strain and feature-cache speed, as ratios measured in one run (no timed assertions in tests).

    python benchmarks/bench_flow.py            # about 30 s on 2 cores
    python benchmarks/bench_flow.py --workers  # adds serial vs 2-process feature computation (~20 s more)

Prints, per flow method at 170x140 (a CASME II-sized face crop) and 28x28: median time per frame pair, the
ratio against Farnebäck in this run and the mean end-point error on a texture moved by (0.4, -0.7) px; then
uint8 vs float input for TV-L1 on a low-contrast texture, strain time, OpenCV object creation, and the cache's
read time per sample against computing it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datamodules.samples import Sample  # noqa: E402
from preprocessing.cache import FeatureCache, cached_features, sample_key  # noqa: E402
from preprocessing.features import FeatureSpec, compute_features  # noqa: E402
from preprocessing.flow import FLOW_METHODS, optical_flow  # noqa: E402
from preprocessing.strain import STRAIN_SCHEMES, optical_strain  # noqa: E402

SHIFT = (0.4, -0.7)  # (dx, dy) px


def texture(height: int, width: int, sigma: float = 2.5, seed: int = 0) -> np.ndarray:
    """Periodic band-limited noise, zero mean, unit std: smooth like skin, rich enough for flow."""
    spectrum = np.fft.fft2(np.random.default_rng(seed).standard_normal((height, width)))
    fy, fx = np.meshgrid(np.fft.fftfreq(height), np.fft.fftfreq(width), indexing="ij")
    image = np.real(np.fft.ifft2(spectrum * np.exp(-2 * (np.pi * sigma) ** 2 * (fx**2 + fy**2))))
    return (image - image.mean()) / image.std()


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    fy, fx = np.meshgrid(np.fft.fftfreq(image.shape[0]), np.fft.fftfreq(image.shape[1]), indexing="ij")
    return np.real(np.fft.ifft2(np.fft.fft2(image) * np.exp(-2j * np.pi * (fx * dx + fy * dy))))


def grey(image: np.ndarray, contrast: float = 40.0) -> np.ndarray:
    return np.clip(np.rint(128 + contrast * image), 0, 255).astype(np.uint8)


def epe(u: np.ndarray, v: np.ndarray, border: int) -> float:
    inner = (slice(border, -border), slice(border, -border))
    return float(np.mean(np.hypot(u[inner] - SHIFT[0], v[inner] - SHIFT[1])))


def median_time(fn: Callable[[], object], repeats: int, budget_s: float = 2.0) -> float:
    """Median seconds per call over `repeats` calls (fewer if they exceed `budget_s`), after one warm-up."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
        if time.perf_counter() - start > budget_s and len(times) >= 3:
            break
    return statistics.median(times)


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:9.3f} ms"


class TextureFrames:
    """A FrameSource: frame n is the texture moved by n/10 of SHIFT (apex 10 -> the full SHIFT)."""

    def __init__(self, height: int, width: int, seed: int):
        self.frame_numbers = tuple(range(11))
        self.height, self.width, self.seed = height, width, seed
        self._base = texture(height, width, seed=seed)

    def read(self, number: int) -> np.ndarray:
        return grey(shifted(self._base, SHIFT[0] * number / 10, SHIFT[1] * number / 10))

    def fingerprint(self) -> str:
        return f"bench/{self.height}x{self.width}/{self.seed}"


def make_samples(count: int, height: int = 140, width: int = 170) -> list[Sample]:
    return [
        Sample(
            f"bench/s{i:02d}/clip",
            "bench",
            f"bench/s{i:02d}",
            "clip",
            TextureFrames(height, width, i),
            0,
            10,
            10,
            "x",
        )
        for i in range(count)
    ]


def bench_flow() -> None:
    print(f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} OpenCV threads\n")
    print(
        "optical flow per frame pair (median), ratio to Farneback in this run, EPE on a (0.4, -0.7) px shift"
    )
    print(f"{'size (WxH)':>11} {'method':>10} {'time':>12} {'x Farneback':>12} {'EPE px':>8}")
    for height, width, border, repeats in ((140, 170, 10, 9), (28, 28, 4, 41)):
        base = texture(height, width)
        prev, next_ = grey(base), grey(shifted(base, *SHIFT))
        timings = {
            m: median_time(lambda m=m, a=prev, b=next_: optical_flow(a, b, m), repeats) for m in FLOW_METHODS
        }
        for method in FLOW_METHODS:
            error = epe(*optical_flow(prev, next_, method), border)
            ratio = timings[method] / timings["farneback"]
            print(
                f"{width:>5}x{height:<5} {method:>10} {fmt_ms(timings[method])} {ratio:11.1f}x {error:8.4f}"
            )
    print()


def bench_precision() -> None:
    print("TV-L1 input precision: EPE (px), texture of ±contrast grey levels, 170x140")
    print(f"{'contrast':>9} {'uint8':>8} {'float':>8}")
    for contrast in (40.0, 5.0, 3.0):
        base = texture(140, 170, sigma=4.0, seed=3)
        moved = shifted(base, *SHIFT)
        from_uint8 = epe(*optical_flow(grey(base, contrast), grey(moved, contrast)), 10)
        from_float = epe(*optical_flow((128 + contrast * base) / 255, (128 + contrast * moved) / 255), 10)
        print(f"{contrast:>9.0f} {from_uint8:8.4f} {from_float:8.4f}")
    print()


def bench_strain_and_objects() -> None:
    rng = np.random.default_rng(0)
    u, v = rng.standard_normal((2, 140, 170)).astype(np.float32)
    print("other steps at 170x140")
    for scheme in STRAIN_SCHEMES:
        seconds = median_time(lambda s=scheme: optical_strain(u, v, s), 201)
        print(f"  optical_strain {scheme:<9} {fmt_ms(seconds)}")
    create_tvl1 = median_time(cv2.optflow.DualTVL1OpticalFlow_create, 201)
    create_dis = median_time(lambda: cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM), 201)
    print(f"  create TV-L1 object       {create_tvl1 * 1e6:9.1f} us")
    print(f"  create DIS object         {create_dis * 1e6:9.1f} us")
    print()


def bench_cache() -> None:
    samples = make_samples(8)
    spec = FeatureSpec()
    compute = median_time(lambda: compute_features(samples[0], spec), 7)
    with tempfile.TemporaryDirectory() as root:
        cache = FeatureCache(root)
        cached_features(samples, spec, cache, progress=False)
        keys = [sample_key(spec.key(), s) for s in samples]
        read = median_time(lambda: [cache.load(k) for k in keys], 51) / len(keys)
        whole_hit = median_time(lambda: cached_features(samples, spec, cache, progress=False), 21) / len(
            samples
        )
    print(f"feature cache, default spec {spec.channels} {spec.flow_method} at 170x140 -> {spec.size}")
    print(f"  compute_features per sample      {fmt_ms(compute)}")
    print(f"  cache.load per sample            {fmt_ms(read)}   ({compute / read:,.0f}x faster)")
    print(f"  cached_features, all hits        {fmt_ms(whole_hit)}   (incl. keys and fingerprints)")
    print()


def bench_workers(count: int = 24) -> None:
    print(f"cached_features on {count} misses at 170x140 (no cache), process start-up included")
    samples = make_samples(count)
    for method in ("tvl1", "farneback"):
        spec = FeatureSpec(flow_method=method)
        line = []
        for workers in (0, 1, 2):
            start = time.perf_counter()
            cached_features(samples, spec, None, progress=False, workers=workers)
            line.append((time.perf_counter() - start) / count)
        print(f"  {method:>10}: serial {fmt_ms(line[0])}/sample, 1 worker {line[0] / line[1]:.2f}x, "
              f"2 workers {line[0] / line[2]:.2f}x faster than serial")  # fmt: skip
    print()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workers", action="store_true", help="also time cached_features with process workers"
    )
    args = parser.parse_args()
    start = time.perf_counter()
    bench_flow()
    bench_precision()
    bench_strain_and_objects()
    bench_cache()
    if args.workers:
        bench_workers()
    print(f"total {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
