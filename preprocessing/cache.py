"""On-disk cache of computed features: each sample's array is computed once per feature spec.

Layout:
    root/<spec_key[:16]>/spec.json          the spec's describe() plus its full key, for people and for checks
    root/<spec_key[:16]>/<sha256>.npz       one sample: "features" (C, H, W) float32 and "sha256" of them

A sample's cache key is "<spec_key[:16]>/<sha256>", the sha256 covering the spec key, the sample_id, its
onset/apex/offset and its frames' fingerprint: a changed spec, annotation or frame file is a miss. A file
whose bytes do not parse or whose checksum does not match is logged, deleted and recomputed, never used; a
file that cannot be read at all (another user's, in a shared cache) is an error and is left alone. Writes
are atomic (temporary file in the same folder, fsync, os.replace): a crash leaves the old state or a whole
file, never a torn one. Files get the permissions the umask allows, so a group can share one cache_dir.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from datamodules.disk_array import DiskArray
from datamodules.samples import FrameReadError, Sample
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
        """Raises NotADirectoryError (errno ENOTDIR) if `root`, or a folder above it, is a file."""
        self.root = Path(root)
        for folder in (*reversed(self.root.parents), self.root):
            if folder.exists() and not folder.is_dir():
                where = "" if folder == self.root else f": {folder}"
                raise NotADirectoryError(
                    errno.ENOTDIR, f"cache_dir {self.root}{where} is a file, not a folder"
                )

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
        with atomic_file(path, what="feature cache spec") as handle:
            handle.write(text.encode())
        return path

    def load(self, key: str) -> np.ndarray | None:
        """The stored array, or None on a miss. A torn, corrupt or checksum-mismatched file is logged as a
        warning, deleted and reported as a miss.

        A file that cannot be opened or read (PermissionError, EIO, ...) raises that OSError's type, naming
        the file; it is never deleted: its bytes were not seen, so nothing says it is corrupt.
        """
        path = self.path(key)
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None  # a miss; storing over it later says clearly if the path cannot be written
        except OSError as error:
            raise _unreadable(path, error) from error
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as stored:
                array = stored["features"]
                expected = str(stored["sha256"])
            if _checksum(array) != expected:
                raise ValueError("checksum mismatch")
        except Exception as error:  # bytes that do not parse back mean the file cannot be trusted
            log.warning(
                "corrupt feature cache file %s (%s: %s); deleting it and recomputing",
                path,
                type(error).__name__,
                error,
            )
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as unlink_error:
                # Recompute anyway: if the file cannot be replaced either, store() says so, naming it.
                log.warning(
                    "cannot delete corrupt feature cache file %s (%s); recomputing it anyway",
                    path,
                    unlink_error.strerror or unlink_error,
                )
            return None
        return array

    def store(self, key: str, array: np.ndarray) -> Path:
        """Write `array` under `key` atomically, with its sha256; returns the file's path."""
        path = self.path(key)
        array = np.ascontiguousarray(array)
        with atomic_file(path, what="feature cache") as handle:
            np.savez(handle, features=array, sha256=np.array(_checksum(array)))
        return path


def _unreadable(path: Path, error: OSError) -> OSError:
    """`error`'s own type (PermissionError stays one) with a message that names the file and the remedy."""
    reason = error.strerror or str(error)
    message = f"cannot read feature cache file {path} ({reason})"
    if isinstance(error, PermissionError):
        message += (
            ": the cache holds a file this user cannot read (a shared cache: ask its owner to make it "
            "readable, or use another cache_dir)"
        )
    return type(error)(error.errno, message)


def _compute(sample: Sample, spec: FeatureSpec) -> np.ndarray:
    """compute_features with the sample named in any error; module-level so a process pool can pickle it.

    Raises FrameReadError (a frame file is missing or unreadable; "<sample_id>: ... <path>") as it is, so a
    caller can skip that sample, and FeatureError for anything else.
    """
    try:
        array = compute_features(sample, spec)
    except FeatureError:
        raise
    except FrameReadError as error:
        if str(error).startswith(f"{sample.sample_id}:"):
            raise
        raise FrameReadError(f"{sample.sample_id}: {error}") from error
    except Exception as error:
        raise FeatureError(
            f"{sample.sample_id}: computing features failed: {type(error).__name__}: {error}"
        ) from error
    expected = spec.shape
    if array.shape != expected:
        raise FeatureError(f"{sample.sample_id}: features have shape {array.shape}, expected {expected}")
    return np.asarray(array, dtype=np.float32)


# How often a worker checks that the process that started it is still alive, in seconds.
_ORPHAN_CHECK_S = 0.5


def _exit_when_orphaned(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:
            # Not sys.exit: this is a side thread, and the main one may be deep in OpenCV for seconds.
            os._exit(1)
        time.sleep(_ORPHAN_CHECK_S)


def _init_worker(threads: int, parent_pid: int | None = None) -> None:
    import cv2

    # Share the cores between workers rather than letting each OpenCV pool claim all of them.
    cv2.setNumThreads(threads)
    if parent_pid is not None:
        # A parent killed with SIGKILL never closes the pool: the call queue a spawned worker unpickled holds
        # its write end too, so the worker never sees EOF and would wait forever. When the parent dies the
        # worker is reparented, which getppid shows on every POSIX system (no prctl, no Linux-only API).
        threading.Thread(
            target=_exit_when_orphaned, args=(parent_pid,), name="orphan-watchdog", daemon=True
        ).start()


# feature_workers=auto: fewer misses than this are computed in this process (a spawned worker takes ~0.5 s to
# start and import OpenCV, about what 15 TV-L1 pairs at 128x128 take).
AUTO_WORKERS_MIN_MISSES = 32


def usable_cores() -> int:
    """The cores this process may run on: a SLURM job or a `taskset` gets its allocation, not the node's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no affinity call on this platform
        return os.cpu_count() or 1


def auto_workers(spec, misses: int) -> int:
    """Worker processes for `workers="auto"`: one per core when the spec's flow is OpenCV's TV-L1 and at least
    AUTO_WORKERS_MIN_MISSES samples need computing; 0 (this process) otherwise. Farneback and DIS are fast
    enough that workers only add their start-up (0.4x measured); tvl1_torch batches in this process."""
    cores = usable_cores()
    if cores < 2 or misses < AUTO_WORKERS_MIN_MISSES:
        return 0
    return cores if getattr(spec, "flow_method", None) == "tvl1" else 0


def cached_features(
    samples: Sequence[Sample],
    spec: FeatureSpec,
    cache: FeatureCache | None = None,
    progress: bool = True,
    workers: int | str = 0,
    unreadable: list[tuple[int, str]] | None = None,
    stream_to: str | os.PathLike[str] | None = None,
) -> np.ndarray | DiskArray:
    """Features of every sample, float32 (N, C, H, W) in sample order: cache hits are read, misses computed
    (tqdm bar "features") and stored. A sample that cannot be computed raises FeatureError naming it; one
    whose frame file is missing or unreadable raises FrameReadError ("<sample_id>: ... <path>").

    `unreadable`: a list makes the FrameReadError case lenient: `(index, message)` is appended to it (in
    sample order), the sample's row is left all zeros and nothing is cached for it; drop those rows.

    `workers > 0` computes misses in that many (spawned) processes. Worth it only for TV-L1: on 2 cores,
    2 workers were 1.1-1.6x faster than serial (OpenCV's own threads use the second core only in part);
    for Farnebäck and DIS the ~0.5 s process start-up made it 0.4x (slower). Default 0: in this process;
    "auto": `auto_workers` decides from the spec and the number of misses (train.py's default).

    `stream_to`: a new file path: the rows go there (a `datamodules.disk_array.DiskArray`, returned, read a
    batch at a time) instead of into memory, for inputs too large to hold; the per-sample cache entries are
    read and written as always, one at a time.
    """
    shape = (len(samples), *spec.shape)
    out = DiskArray.create(stream_to, shape) if stream_to is not None else np.empty(shape, np.float32)
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

    skipped: list[tuple[int, str]] = []

    def keep(index: int, array: np.ndarray) -> None:
        array = np.asarray(array, dtype=np.float32)
        out[index] = array
        if cache is not None:
            cache.store(keys[index], array)

    def skip(index: int, error: FrameReadError) -> None:
        if unreadable is None:
            raise error
        out[index] = np.zeros(spec.shape, dtype=np.float32)
        skipped.append((index, str(error)))

    if workers == "auto":
        workers = auto_workers(spec, len(misses))
    with tqdm(total=len(misses), desc="features", disable=not progress or not misses) as bar:
        if workers > 0 and len(misses) > 1:
            # spawn, not fork: the parent may hold torch/OpenMP/OpenCV threads, which a forked child inherits
            # in an undefined state.
            with ProcessPoolExecutor(
                max_workers=min(workers, len(misses)),
                mp_context=get_context("spawn"),
                initializer=_init_worker,
                initargs=(max(1, usable_cores() // workers), os.getpid()),
            ) as pool:
                futures = {pool.submit(_compute, samples[index], spec): index for index in misses}
                try:
                    for future in as_completed(futures):
                        index = futures[future]
                        try:
                            array = future.result()
                        except FrameReadError as error:
                            skip(index, error)
                            bar.update()
                            continue
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
                try:
                    array = _compute(samples[index], spec)
                except FrameReadError as error:
                    skip(index, error)
                else:
                    keep(index, array)
                bar.update()
    if unreadable is not None:
        unreadable.extend(sorted(skipped))
    return out
