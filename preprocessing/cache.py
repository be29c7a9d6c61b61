"""On-disk cache of computed features: each sample's array is computed once per feature spec.

Layout:
    root/<spec_key[:16]>/spec.json          the spec's describe() plus its full key, for people and for checks
    root/<spec_key[:16]>/<sha256>.npz       one sample: "features" (C, H, W) float32 and "sha256" of them

A sample's cache key is "<spec_key[:16]>/<sha256>", the sha256 covering the spec key, the sample_id, its
onset/apex/offset and its frames' fingerprint: a changed spec, annotation or frame file is a miss. A file
that fails to load or whose checksum does not match is logged, deleted and recomputed, never used. Writes
are atomic (temporary file in the same folder, fsync, os.replace): a crash leaves the old state or a whole
file, never a torn one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import suppress
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from datamodules.samples import Sample
from preprocessing.features import FeatureError, FeatureSpec, compute_features
from utils.atomic import atomic_file

log = logging.getLogger(__name__)

_KEY = re.compile(r"^[0-9a-f]{16}/[0-9a-f]{64}$")


def sample_key(spec_key: str, sample: Sample) -> str:
    """Cache key of one sample under one spec: "<spec_key[:16]>/<sha256 hex>", its path under the root."""
    record = [
        spec_key,
        sample.sample_id,
        sample.onset,
        sample.apex,
        sample.offset,
        sample.frames.fingerprint(),
    ]
    digest = hashlib.sha256(json.dumps(record, separators=(",", ":")).encode()).hexdigest()
    return f"{spec_key[:16]}/{digest}"


def _checksum(array: np.ndarray) -> str:
    # dtype and shape are hashed too: the same bytes read as another shape are not the same features.
    digest = hashlib.sha256(f"{array.dtype.str}|{array.shape}|".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


class FeatureCache:
    """Feature arrays on disk under `root`, one .npz per (spec, sample); see the module docstring."""

    sample_key = staticmethod(sample_key)

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"not a feature cache key (want '<16 hex>/<64 hex>'): {key!r}")
        return self.root / f"{key}.npz"

    def write_spec(self, spec: FeatureSpec, spec_key: str | None = None) -> Path:
        """Write root/<spec_key[:16]>/spec.json (describe() plus the full key) unless it is already there."""
        spec_key = spec_key or spec.key()
        path = self.root / spec_key[:16] / "spec.json"
        if path.is_file():
            try:
                stored = json.loads(path.read_text()).get("key")
            except (OSError, ValueError, AttributeError):
                stored = None
            if stored == spec_key:
                return path
            if stored is not None:
                # 64 bits of sha256 colliding is not expected in practice; if it ever happens, say so.
                raise RuntimeError(
                    f"{path} belongs to spec key {stored}, not {spec_key}: move the folder away"
                )
        text = json.dumps({"key": spec_key, **spec.describe()}, indent=2, sort_keys=True) + "\n"
        with atomic_file(path) as handle:
            handle.write(text.encode())
        return path

    def load(self, key: str) -> np.ndarray | None:
        """The stored array, or None on a miss. A torn, corrupt or checksum-mismatched file is logged as a
        warning, deleted and reported as a miss."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as stored:
                array = stored["features"]
                expected = str(stored["sha256"])
            if _checksum(array) != expected:
                raise ValueError("checksum mismatch")
        except Exception as error:  # any failure to read it back means the file cannot be trusted
            log.warning(
                "corrupt feature cache file %s (%s: %s); deleting it and recomputing",
                path,
                type(error).__name__,
                error,
            )
            with suppress(FileNotFoundError):
                path.unlink()
            return None
        return array

    def store(self, key: str, array: np.ndarray) -> Path:
        """Write `array` under `key` atomically, with its sha256; returns the file's path."""
        path = self.path(key)
        array = np.ascontiguousarray(array)
        with atomic_file(path) as handle:
            np.savez(handle, features=array, sha256=np.array(_checksum(array)))
        return path


def _compute(sample: Sample, spec: FeatureSpec) -> np.ndarray:
    """compute_features with the sample named in any error; module-level so a process pool can pickle it."""
    try:
        array = compute_features(sample, spec)
    except FeatureError:
        raise
    except Exception as error:
        raise FeatureError(
            f"{sample.sample_id}: computing features failed: {type(error).__name__}: {error}"
        ) from error
    expected = (spec.num_channels, *spec.size)
    if array.shape != expected:
        raise FeatureError(f"{sample.sample_id}: features have shape {array.shape}, expected {expected}")
    return np.asarray(array, dtype=np.float32)


def _init_worker(threads: int) -> None:
    import cv2

    # Share the cores between workers rather than letting each OpenCV pool claim all of them.
    cv2.setNumThreads(threads)


def cached_features(
    samples: Sequence[Sample],
    spec: FeatureSpec,
    cache: FeatureCache | None = None,
    progress: bool = True,
    workers: int = 0,
) -> np.ndarray:
    """Features of every sample, float32 (N, C, H, W) in sample order: cache hits are read, misses computed
    (tqdm bar "features") and stored. A sample that cannot be computed raises FeatureError naming it.

    `workers > 0` computes misses in that many (spawned) processes. Worth it only for TV-L1: on 2 cores,
    2 workers were 1.1-1.6x faster than serial (OpenCV's own threads use the second core only in part);
    for Farnebäck and DIS the ~0.5 s process start-up made it 0.4x (slower). Default 0: in this process.
    """
    height, width = spec.size
    out = np.empty((len(samples), spec.num_channels, height, width), dtype=np.float32)
    spec_key = spec.key()
    keys: list[str | None] = [None] * len(samples)
    misses: list[int] = []
    if cache is not None:
        cache.write_spec(spec, spec_key)
    for index, sample in enumerate(samples):
        if cache is not None:
            keys[index] = cache.sample_key(spec_key, sample)
            array = cache.load(keys[index])
            if array is not None and array.shape == out.shape[1:]:
                out[index] = array
                continue
        misses.append(index)

    def keep(index: int, array: np.ndarray) -> None:
        out[index] = array
        if cache is not None:
            cache.store(keys[index], out[index])

    with tqdm(total=len(misses), desc="features", disable=not progress or not misses) as bar:
        if workers > 0 and len(misses) > 1:
            # spawn, not fork: the parent may hold torch/OpenMP/OpenCV threads, which a forked child inherits
            # in an undefined state.
            with ProcessPoolExecutor(
                max_workers=min(workers, len(misses)),
                mp_context=get_context("spawn"),
                initializer=_init_worker,
                initargs=(max(1, (os.cpu_count() or 1) // workers),),
            ) as pool:
                futures = {pool.submit(_compute, samples[index], spec): index for index in misses}
                try:
                    for future in as_completed(futures):
                        index = futures[future]
                        try:
                            array = future.result()
                        except FeatureError:
                            raise
                        except Exception as error:  # a dead worker or an unpicklable sample
                            sample_id = samples[index].sample_id
                            raise FeatureError(
                                f"{sample_id}: worker failed: {type(error).__name__}: {error}"
                            ) from error
                        keep(index, array)
                        bar.update()
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
        else:
            for index in misses:
                keep(index, _compute(samples[index], spec))
                bar.update()
    return out
