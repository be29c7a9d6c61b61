"""TIM, linear resampling and uniform sampling of a clip to a fixed length (preprocessing.temporal)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.fft import dct

from preprocessing.temporal import TemporalError, linear_resample, resample, tim, uniform_sample


def _random_clip(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 6, 5))


def _cosine_interpolation(frames: np.ndarray, length: int) -> np.ndarray:
    """Per-pixel DCT-II interpolation, read at TIM's output times: the closed form of TIM (the path graph's
    Laplacian eigenvectors are the DCT-II basis), written independently of the SVD/graph steps."""
    n = len(frames)
    coefficients = dct(frames.reshape(n, -1), type=2, axis=0, norm="ortho")
    at = np.linspace(1.0, float(n), length)  # TIM's t_j = linspace(1/n, 1) times n: frame j sits at j
    k = np.arange(n)
    basis = np.sqrt(2.0 / n) * np.cos(np.pi * k[None, :] * (at[:, None] - 0.5) / n)
    basis[:, 0] = np.sqrt(1.0 / n)
    return (basis @ coefficients).reshape(length, *frames.shape[1:])


@pytest.mark.parametrize("n", [2, 3, 7, 12])
def test_tim_to_its_own_length_returns_the_clip(n):
    clip = _random_clip(n)
    np.testing.assert_allclose(tim(clip, n), clip, atol=1e-5)


@pytest.mark.parametrize(("n", "length"), [(7, 12), (12, 5), (10, 10), (4, 30), (9, 2)])
def test_tim_is_cosine_interpolation_of_every_pixel(n, length):
    clip = _random_clip(n, seed=n + length)
    np.testing.assert_allclose(tim(clip, length), _cosine_interpolation(clip, length), atol=1e-5)


def test_tim_keeps_the_first_and_last_frame_at_any_length():
    clip = _random_clip(8)
    for length in (3, 5, 16):
        out = tim(clip, length)
        np.testing.assert_allclose(out[0], clip[0], atol=1e-5)
        np.testing.assert_allclose(out[-1], clip[-1], atol=1e-5)


@pytest.mark.parametrize("length", [4, 13, 25])
def test_a_linear_ramp_stays_linear(length):
    # A pure ramp has rank 1 (TIM refuses it, below); a little texture per frame gives TIM the rank it
    # needs, and the ramp underneath must come out linear at the new length.
    n = 7
    ramp = np.arange(n, dtype=float)[:, None, None] * np.ones((1, 6, 5))
    texture = 1e-3 * np.random.default_rng(1).random((n, 6, 5))
    expected = np.linspace(0.0, n - 1.0, length)[:, None, None]
    np.testing.assert_allclose(
        linear_resample(ramp, length), np.broadcast_to(expected, (length, 6, 5)), atol=1e-5
    )
    deviation = np.abs(tim(ramp + texture, length) - expected).max()
    assert deviation < 0.01 * (n - 1), deviation  # cosine interpolation of a ramp: within 1% of its range


def test_uniform_sampling_picks_frames_and_never_blends():
    clip = np.arange(5, dtype=float)[:, None, None] * np.ones((1, 2, 2))
    np.testing.assert_array_equal(uniform_sample(clip, 3)[:, 0, 0], [0, 2, 4])
    np.testing.assert_array_equal(uniform_sample(clip, 9)[:, 0, 0], [0, 1, 1, 2, 2, 3, 3, 4, 4])
    np.testing.assert_array_equal(uniform_sample(clip, 2)[:, 0, 0], [0, 4])


def test_linear_resampling_blends_neighbours():
    clip = np.array([0.0, 10.0, 30.0])[:, None, None]
    np.testing.assert_allclose(linear_resample(clip, 5)[:, 0, 0], [0, 5, 10, 20, 30])


@pytest.mark.parametrize("method", ["tim", "linear", "uniform"])
def test_every_method_gives_float32_of_the_asked_length(method):
    out = resample(_random_clip(6), 11, method)
    assert out.shape == (11, 6, 5) and out.dtype == np.float32


def test_degenerate_clips_get_a_clear_error():
    with pytest.raises(TemporalError, match="at least 2 frames, got 1"):
        tim(_random_clip(1), 5)
    repeated = _random_clip(5)
    repeated[3] = repeated[2]
    with pytest.raises(TemporalError, match="rank 4, they have rank 3.*resample=linear"):
        tim(repeated, 8)
    with pytest.raises(TemporalError, match="rank 0"):
        tim(np.ones((4, 3, 3)), 8)
    with pytest.raises(TemporalError, match="no frames"):
        linear_resample(np.empty((0, 3, 3)), 4)
    with pytest.raises(TemporalError, match="positive integer"):
        uniform_sample(_random_clip(3), 0)
    with pytest.raises(ValueError, match="unknown resample method 'spline'"):
        resample(_random_clip(3), 4, "spline")
