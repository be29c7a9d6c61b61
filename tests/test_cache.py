"""Feature cache: hits, misses on any change, corrupt files rebuilt with a warning, atomic writes, errors."""

from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np
import pytest

import preprocessing.cache as cache_module
from datamodules.samples import Sample
from preprocessing.cache import FeatureCache, cached_features, sample_key
from preprocessing.features import FeatureError, FeatureSpec

SPEC = FeatureSpec(channels=("u", "v", "strain"), flow_method="farneback", size=(16, 16))


class NoiseFrames:
    """Frame n = smooth noise moved right by n/10 px (wrapping); module-level so worker processes find it."""

    def __init__(self, seed: int = 0, version: str = "v1", broken: bool = False):
        self.frame_numbers = tuple(range(6))
        self.seed, self.version, self.broken = seed, version, broken

    def read(self, number: int) -> np.ndarray:
        if self.broken:
            raise FileNotFoundError(f"missing frame file: /data/clip{self.seed}/img{number}.jpg")
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
