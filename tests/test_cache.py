"""Feature cache: hits, misses on any change, corrupt files rebuilt with a warning, atomic writes, errors,
unreadable files and frames, permissions, worker processes."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import gc
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import preprocessing.cache as cache_module
from datamodules.disk_array import DiskArray
from datamodules.samples import FrameReadError, Sample
from preprocessing.cache import FeatureCache, cached_features, sample_key
from preprocessing.features import FeatureError, FeatureSpec
from utils.atomic import WriteError

TESTS = Path(__file__).resolve().parent

SPEC = FeatureSpec(channels=("u", "v", "strain"), flow_method="farneback", size=(16, 16))


class NoiseFrames:
    """Frame n = smooth noise moved right by n/10 px (wrapping); module-level so worker processes find it."""

    def __init__(self, seed: int = 0, version: str = "v1", broken: bool = False, unreadable: bool = False):
        self.frame_numbers = tuple(range(6))
        self.seed, self.version, self.broken, self.unreadable = seed, version, broken, unreadable

    def read(self, number: int) -> np.ndarray:
        if self.broken:
            raise FileNotFoundError(f"missing frame file: /data/clip{self.seed}/img{number}.jpg")
        if self.unreadable:
            raise FrameReadError(f"unreadable image (empty file): /data/clip{self.seed}/img{number}.jpg")
        spectrum = np.fft.fft2(np.random.default_rng(self.seed).standard_normal((40, 48)))
        freq_y, freq_x = np.meshgrid(np.fft.fftfreq(40), np.fft.fftfreq(48), indexing="ij")
        spectrum *= np.exp(-(freq_x**2 + freq_y**2) * 2 * (np.pi * 2.5) ** 2)
        spectrum *= np.exp(-2j * np.pi * freq_x * number / 10)
        image = np.real(np.fft.ifft2(spectrum))
        return np.clip(128 + 40 * image / image.std(), 0, 255).astype(np.uint8)

    def fingerprint(self) -> str:
        return f"noise/{self.seed}/{self.version}"


def make_sample(index: int, **frames) -> Sample:
    return Sample(
        sample_id=f"synthetic/s{index:02d}/clip",
        dataset="synthetic",
        subject=f"synthetic/s{index:02d}",
        clip="clip",
        frames=NoiseFrames(seed=index, **frames),
        onset=0,
        apex=4,
        offset=5,
        emotion="surprise",
    )


@pytest.fixture
def samples() -> list[Sample]:
    return [make_sample(i) for i in range(3)]


@pytest.fixture
def calls(monkeypatch) -> list[str]:
    """sample_ids in the order compute_features was called for them."""
    seen: list[str] = []
    real = cache_module.compute_features

    def counting(sample, spec):
        seen.append(sample.sample_id)
        return real(sample, spec)

    monkeypatch.setattr(cache_module, "compute_features", counting)
    return seen


def npz_files(root) -> list:
    return sorted(root.rglob("*.npz"))


def test_second_call_reads_the_cache(tmp_path, samples, calls):
    cache = FeatureCache(tmp_path)
    first = cached_features(samples, SPEC, cache, progress=False)
    assert first.shape == (3, 3, 16, 16) and first.dtype == np.float32
    assert len(calls) == 3 and len(npz_files(tmp_path)) == 3
    second = cached_features(samples, SPEC, cache, progress=False)
    assert len(calls) == 3  # no recomputation
    np.testing.assert_array_equal(first, second)
    # Sample order is kept, and each row is that sample's own features.
    reversed_ = cached_features(samples[::-1], SPEC, cache, progress=False)
    np.testing.assert_array_equal(reversed_, first[::-1])
    assert not np.array_equal(first[0], first[1])


def test_spec_json_is_written_beside_the_features(tmp_path, samples):
    cached_features(samples[:1], SPEC, FeatureCache(tmp_path), progress=False)
    key = SPEC.key()
    stored = json.loads((tmp_path / key[:16] / "spec.json").read_text())
    assert stored["key"] == key
    assert stored["channels"] == ["u", "v", "strain"]
    assert stored["flow"]["method"] == "farneback"
    assert npz_files(tmp_path)[0].parent.name == key[:16]


def test_changed_spec_is_a_miss(tmp_path, samples, calls):
    cache = FeatureCache(tmp_path)
    cached_features(samples, SPEC, cache, progress=False)
    other = FeatureSpec(
        channels=("u", "v", "strain"), flow_method="farneback", size=(16, 16), flow_params={"winsize": 9}
    )
    cached_features(samples, other, cache, progress=False)
    assert len(calls) == 6
    assert len({path.parent for path in npz_files(tmp_path)}) == 2


def test_changed_frames_or_annotation_is_a_miss(tmp_path, samples, calls):
    cache = FeatureCache(tmp_path)
    cached_features(samples, SPEC, cache, progress=False)
    edited = [samples[0], make_sample(1, version="v2"), samples[2]]  # frame files replaced
    cached_features(edited, SPEC, cache, progress=False)
    assert calls[3:] == ["synthetic/s01/clip"]
    moved_apex = dataclasses.replace(samples[2], apex=3)
    cached_features([moved_apex], SPEC, cache, progress=False)
    assert calls[4:] == ["synthetic/s02/clip"]
    keys = {sample_key(SPEC.key(), s) for s in samples + edited + [moved_apex]}
    assert len(keys) == 5


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_bit(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def tamper(path):
    # A well-formed npz whose array no longer matches its stored checksum: only the sha256 can tell.
    with np.load(path) as stored:
        features, checksum = stored["features"].copy(), stored["sha256"].copy()
    features[0, 3, 3] += 0.5
    with open(path, "wb") as handle:
        np.savez(handle, features=features, sha256=checksum)


@pytest.mark.parametrize("damage", [truncate, flip_bit, tamper])
def test_corrupt_file_is_detected_and_rebuilt(tmp_path, samples, calls, caplog, damage):
    cache = FeatureCache(tmp_path)
    original = cached_features(samples, SPEC, cache, progress=False)
    victim = cache.path(sample_key(SPEC.key(), samples[1]))
    damage(victim)
    with caplog.at_level(logging.WARNING, logger="preprocessing.cache"):
        assert cache.load(sample_key(SPEC.key(), samples[1])) is None
    assert str(victim) in caplog.text and "corrupt" in caplog.text
    assert not victim.exists()  # deleted, not left to be tried again
    cached_features(samples, SPEC, cache, progress=False)  # miss -> recomputed and stored
    assert len(calls) == 4 and calls[-1] == "synthetic/s01/clip"
    np.testing.assert_array_equal(cache.load(sample_key(SPEC.key(), samples[1])), original[1])


def test_corrupt_file_inside_cached_features_is_never_used(tmp_path, samples, calls, caplog):
    cache = FeatureCache(tmp_path)
    original = cached_features(samples, SPEC, cache, progress=False)
    tamper(cache.path(sample_key(SPEC.key(), samples[0])))
    with caplog.at_level(logging.WARNING, logger="preprocessing.cache"):
        again = cached_features(samples, SPEC, cache, progress=False)
    np.testing.assert_array_equal(again, original)
    assert calls[3:] == ["synthetic/s00/clip"]
    assert "checksum mismatch" in caplog.text


def test_no_temporary_files_remain(tmp_path, samples, monkeypatch):
    cache = FeatureCache(tmp_path)
    cached_features(samples, SPEC, cache, progress=False)
    names = sorted(path.name for path in tmp_path.rglob("*") if path.is_file())
    assert len(names) == 4 and "spec.json" in names and all(not n.startswith(".") for n in names)

    def failing_savez(handle, **arrays):
        handle.write(b"PK\x03\x04 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(cache_module.np, "savez", failing_savez)
    key = sample_key(SPEC.key(), make_sample(7))
    with pytest.raises(OSError, match="disk full"):
        cache.store(key, np.zeros((3, 16, 16), np.float32))
    assert sorted(path.name for path in tmp_path.rglob("*") if path.is_file()) == names
    assert cache.load(key) is None


def test_missing_and_malformed_keys(tmp_path):
    cache = FeatureCache(tmp_path)
    assert cache.load("0" * 16 + "/" + "a" * 64) is None
    with pytest.raises(ValueError, match="not a feature cache key"):
        cache.load("../../etc/passwd")


def test_compute_error_names_the_sample(tmp_path):
    samples = [make_sample(0), make_sample(5, broken=True)]
    with pytest.raises(FeatureError, match=r"synthetic/s05/clip.*missing frame file"):
        cached_features(samples, SPEC, FeatureCache(tmp_path), progress=False)
    with pytest.raises(FeatureError, match=r"synthetic/s05/clip"):
        cached_features(samples, SPEC, None, progress=False)


def test_workers_give_the_same_features_and_name_failures(tmp_path, samples):
    serial = cached_features(samples, SPEC, None, progress=False)
    parallel = cached_features(samples, SPEC, FeatureCache(tmp_path), progress=False, workers=2)
    np.testing.assert_array_equal(parallel, serial)
    assert len(npz_files(tmp_path)) == 3
    with pytest.raises(FeatureError, match=r"synthetic/s09/clip.*missing frame file"):
        cached_features([make_sample(0), make_sample(9, broken=True)], SPEC, None, progress=False, workers=2)


def test_auto_workers_only_for_enough_tvl1_misses(monkeypatch):
    from dataclasses import replace

    from preprocessing.cache import AUTO_WORKERS_MIN_MISSES, auto_workers

    tvl1 = replace(SPEC, flow_method="tvl1")
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 64)  # a node's cores: a job may run on its allocation only
    assert auto_workers(tvl1, AUTO_WORKERS_MIN_MISSES) == 4
    assert auto_workers(tvl1, AUTO_WORKERS_MIN_MISSES - 1) == 0  # start-up would cost more than it saves
    assert auto_workers(SPEC, 1000) == 0  # Farneback: workers only add their start-up
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0}, raising=False)
    assert auto_workers(tvl1, 1000) == 0


@pytest.mark.parametrize("below", ["", "cache"])
def test_cache_dir_that_is_a_file_is_refused(tmp_path, below):
    blocker = tmp_path / "features"
    blocker.write_text("not a folder")
    root = blocker / below if below else blocker
    with pytest.raises(NotADirectoryError) as caught:
        FeatureCache(root)
    assert caught.value.errno == errno.ENOTDIR
    where = f": {blocker}" if below else ""
    assert f"cache_dir {root}{where} is a file, not a folder" in str(caught.value)


@pytest.fixture
def unreadable_path(monkeypatch):
    """Make open() in preprocessing.cache raise PermissionError for one path, as a chmod-000 file of another
    user does (root, running the tests, can read any file)."""
    denied: list[Path] = []
    real_open = open

    def guarded_open(file, *args, **kwargs):
        if Path(file) in denied:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(cache_module, "open", guarded_open, raising=False)
    return denied


def test_unreadable_cache_file_is_an_error_and_never_deleted(tmp_path, samples, calls, unreadable_path):
    cache = FeatureCache(tmp_path)
    cached_features(samples, SPEC, cache, progress=False)
    key = sample_key(SPEC.key(), samples[1])
    victim = cache.path(key)
    before = victim.read_bytes()
    unreadable_path.append(victim)
    with pytest.raises(PermissionError) as caught:
        cache.load(key)
    message = str(caught.value)
    assert caught.value.errno == errno.EACCES
    assert f"cannot read feature cache file {victim} (Permission denied)" in message
    assert "this user cannot read" in message and "another cache_dir" in message
    with pytest.raises(PermissionError, match="this user cannot read"):
        cached_features(samples, SPEC, cache, progress=False)
    assert victim.read_bytes() == before and len(calls) == 3  # kept, and nothing recomputed over it


def test_corrupt_file_that_cannot_be_deleted_is_recomputed(tmp_path, samples, calls, caplog, monkeypatch):
    cache = FeatureCache(tmp_path)
    original = cached_features(samples, SPEC, cache, progress=False)
    key = sample_key(SPEC.key(), samples[2])
    victim = cache.path(key)
    tamper(victim)
    real_unlink = Path.unlink

    def guarded_unlink(self, *args, **kwargs):
        if self == victim:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", guarded_unlink)
    with caplog.at_level(logging.WARNING, logger="preprocessing.cache"):
        again = cached_features(samples, SPEC, cache, progress=False)
    assert "checksum mismatch" in caplog.text
    assert f"cannot delete corrupt feature cache file {victim}" in caplog.text
    np.testing.assert_array_equal(again, original)
    assert calls[3:] == ["synthetic/s02/clip"]
    np.testing.assert_array_equal(cache.load(key), original[2])  # replaced by the recomputed one


@pytest.mark.parametrize("umask", [0o022, 0o002], ids=["022", "002"])
def test_cache_files_follow_the_umask(tmp_path, samples, umask):
    old = os.umask(umask)
    try:
        cached_features(samples[:1], SPEC, FeatureCache(tmp_path), progress=False)
    finally:
        os.umask(old)
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert len(files) == 2  # spec.json and one .npz
    assert {stat.S_IMODE(path.stat().st_mode) for path in files} == {0o666 & ~umask}


def test_store_error_names_the_cache_file(tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path)
    key = sample_key(SPEC.key(), make_sample(3))

    def full_disk(handle, **arrays):
        handle.write(b"PK\x03\x04")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cache_module.np, "savez", full_disk)
    with pytest.raises(WriteError) as caught:
        cache.store(key, np.zeros((3, 16, 16), np.float32))
    assert caught.value.errno == errno.ENOSPC
    assert str(caught.value) == (
        f"cannot write {cache.path(key)} (feature cache): No space left on device [Errno {errno.ENOSPC}]"
    )
    assert not any(tmp_path.rglob("*.tmp")) and not any(tmp_path.rglob(".*"))


@pytest.mark.parametrize("workers", [0, 2], ids=["serial", "workers"])
def test_unreadable_frames_raise_by_default(workers):
    samples = [make_sample(0), make_sample(4, unreadable=True), make_sample(6)]
    with pytest.raises(FrameReadError) as caught:
        cached_features(samples, SPEC, None, progress=False, workers=workers)
    assert str(caught.value) == "synthetic/s04/clip: unreadable image (empty file): /data/clip4/img0.jpg"


@pytest.mark.parametrize("workers", [0, 2], ids=["serial", "workers"])
def test_unreadable_frames_are_listed_and_skipped_when_asked(tmp_path, workers):
    good = cached_features([make_sample(0), make_sample(6)], SPEC, None, progress=False)
    samples = [
        make_sample(0),
        make_sample(4, unreadable=True),
        make_sample(6),
        make_sample(8, unreadable=True),
    ]
    unreadable: list = []
    cache = FeatureCache(tmp_path)
    features = cached_features(samples, SPEC, cache, progress=False, workers=workers, unreadable=unreadable)
    assert unreadable == [
        (1, "synthetic/s04/clip: unreadable image (empty file): /data/clip4/img0.jpg"),
        (3, "synthetic/s08/clip: unreadable image (empty file): /data/clip8/img0.jpg"),
    ]
    np.testing.assert_array_equal(features[[0, 2]], good)
    assert not features[[1, 3]].any()
    assert len(npz_files(tmp_path)) == 2  # nothing stored for the unreadable clips
    assert cache.load(sample_key(SPEC.key(), samples[1])) is None


def test_frame_read_error_already_naming_the_sample_is_not_prefixed_twice(monkeypatch):
    def failing(sample, spec):
        raise FrameReadError(f"{sample.sample_id}: missing frame file: /data/x/img3.jpg")

    monkeypatch.setattr(cache_module, "compute_features", failing)
    unreadable: list = []
    cached_features([make_sample(1)], SPEC, None, progress=False, unreadable=unreadable)
    assert unreadable == [(0, "synthetic/s01/clip: missing frame file: /data/x/img3.jpg")]


def _process_state(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) from /proc/<pid>/stat, or None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, ppid = text.rsplit(")", 1)[1].split()[:2]
    return state, int(ppid)


def _alive(pid: int) -> bool:
    # A zombie has exited; whether anyone reaps it (PID 1 of a container may not) is not the worker's doing.
    state = _process_state(pid)
    return state is not None and state[0] not in "ZX"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            state = _process_state(int(entry.name))
            if state is not None and state[1] == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_workers_exit_when_their_parent_is_killed(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    code = (
        f"import sys; sys.path[:0] = [{str(TESTS)!r}, {str(TESTS.parent)!r}]; "
        f"import slow_frames; slow_frames.compute_slowly({str(markers)!r}, delay_s=60.0, workers=2)"
    )
    log_path = tmp_path / "child.log"
    with open(log_path, "wb") as log_file:
        child = subprocess.Popen(
            [sys.executable, "-c", code], cwd=TESTS.parent, stdout=log_file, stderr=subprocess.STDOUT
        )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 15
        # Both workers inside SlowFrames.read, i.e. started, initialised and busy with a sample.
        while len(list(markers.iterdir())) < 2:
            assert child.poll() is None, f"child exited early: {log_path.read_text()}"
            assert time.monotonic() < deadline, f"workers never got busy: {log_path.read_text()}"
            time.sleep(0.1)
        workers = [int(marker.name.split(".")[0]) for marker in markers.iterdir()]
        assert set(workers) <= set(_children(child.pid))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if _alive(pid)], "workers outlived their killed parent"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for pid in workers:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def test_streamed_features_equal_the_in_memory_ones(tmp_path, samples):
    # Sequences (T, C, H, W) through the cache, into memory and into a file read a batch at a time.
    spec = FeatureSpec(channels=("u", "frame"), size=(10, 12), sequence={"length": 3, "resample": "linear"})
    cache = FeatureCache(tmp_path / "cache")
    memory = cached_features(samples, spec, cache=cache, progress=False)
    assert memory.shape == (3, 3, 2, 10, 12)
    streamed = cached_features(samples, spec, cache=cache, progress=False, stream_to=tmp_path / "s.npy")
    assert isinstance(streamed, DiskArray)
    np.testing.assert_array_equal(streamed[np.arange(3)], memory)
    fresh = cached_features(samples, spec, cache=None, progress=False, stream_to=tmp_path / "t.npy")
    np.testing.assert_array_equal(fresh[np.arange(3)], memory)  # computed, not read from the cache


def test_build_feature_set_streams_large_inputs_and_drops_unreadable_rows(tmp_path):
    from datamodules.datamodule import build_feature_set
    from datamodules.protocols import label_map

    samples = [make_sample(i) for i in range(4)]
    samples[1] = make_sample(1, unreadable=True)
    spec = FeatureSpec(channels=("frame",), size=(6, 8), sequence={"length": 2, "resample": "uniform"})
    labels = label_map("synthetic")
    held = build_feature_set(samples, labels, spec, cache_dir=tmp_path, progress=False)
    streamed = build_feature_set(samples, labels, spec, cache_dir=tmp_path, progress=False, stream_over_mb=0)
    assert isinstance(streamed.x, DiskArray) and isinstance(held.x, torch.Tensor)
    assert streamed.sample_ids == held.sample_ids and len(held) == 3  # s01 dropped from both
    np.testing.assert_array_equal(streamed.x[np.arange(3)], held.x.numpy())
    path = streamed.x.path
    assert path.parent == tmp_path / "streams"
    del streamed
    gc.collect()
    assert not path.exists()  # the stream file lives as long as its FeatureSet
