"""Optical flow: every method recovers a known sub-pixel shift, u = +x; parameters are read back."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage

from preprocessing.flow import FLOW_METHODS, flow_parameters, optical_flow

SHIFT = (0.4, -0.7)  # (dx, dy) in px: content moves 0.4 px right and 0.7 px up
BORDER = 10


def texture(height: int, width: int, sigma: float = 2.5, seed: int = 0) -> np.ndarray:
    """Smooth but rich periodic texture (Gaussian-filtered white noise), zero mean, unit std, float64."""
    noise = np.random.default_rng(seed).standard_normal((height, width))
    smooth = np.real(np.fft.ifft2(ndimage.fourier_gaussian(np.fft.fft2(noise), sigma)))
    return (smooth - smooth.mean()) / smooth.std()


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """`image` moved by (dx, dy) px (+x right, +y down), exact for a periodic band-limited image."""
    return np.real(np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(image), (dy, dx))))


def to_uint8(image: np.ndarray, contrast: float = 40.0) -> np.ndarray:
    return np.clip(np.rint(128 + contrast * image), 0, 255).astype(np.uint8)


def end_point_error(u: np.ndarray, v: np.ndarray, dx: float, dy: float) -> float:
    inner = (slice(BORDER, -BORDER), slice(BORDER, -BORDER))
    return float(np.mean(np.hypot(u[inner] - dx, v[inner] - dy)))


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    # Not square, so a swapped H/W or x/y shows up.
    base = texture(96, 120)
    return to_uint8(base), to_uint8(shifted(base, *SHIFT))


@pytest.mark.parametrize("method", FLOW_METHODS)
def test_recovers_subpixel_shift(pair, method):
    prev, next_ = pair
    u, v = optical_flow(prev, next_, method)
    assert u.shape == v.shape == prev.shape
    assert u.dtype == v.dtype == np.float32
    assert end_point_error(u, v, *SHIFT) < 0.1
    # The sign convention: content moved right (+x) and up (-y).
    inner = (slice(BORDER, -BORDER), slice(BORDER, -BORDER))
    assert np.median(u[inner]) == pytest.approx(SHIFT[0], abs=0.1)
    assert np.median(v[inner]) == pytest.approx(SHIFT[1], abs=0.1)


@pytest.mark.parametrize("method", FLOW_METHODS)
def test_u_is_columns_and_v_is_rows(method):
    # np.roll along columns moves content right by a whole pixel: no doubt about direction.
    prev = to_uint8(texture(64, 80, seed=1))
    u, v = optical_flow(prev, np.roll(prev, 1, axis=1), method)
    assert end_point_error(u, v, 1.0, 0.0) < 0.15
    u, v = optical_flow(prev, np.roll(prev, 1, axis=0), method)
    assert end_point_error(u, v, 0.0, 1.0) < 0.15


def test_accepts_rgb_and_float_frames(pair):
    prev, next_ = pair
    u8 = optical_flow(prev, next_)
    # A uint8 grey frame and the same frame as float [0, 1] are the same to TV-L1.
    as_float = optical_flow(prev / 255.0, next_.astype(np.float32) / 255)
    np.testing.assert_allclose(as_float[0], u8[0], atol=1e-4)
    rgb = optical_flow(np.dstack([prev] * 3), np.dstack([next_] * 3))
    assert end_point_error(*rgb, *SHIFT) < 0.1


def test_float_frames_beat_quantised_ones_at_low_contrast():
    # Why the float path exists: on a low-contrast (±5 grey levels) face-like texture, rounding to uint8
    # before TV-L1 loses sub-pixel precision that float input keeps.
    base = texture(96, 120, sigma=4.0, seed=3)
    prev, next_ = (128 + 5 * base) / 255, (128 + 5 * shifted(base, *SHIFT)) / 255
    from_float = end_point_error(*optical_flow(prev, next_, "tvl1"), *SHIFT)
    from_uint8 = end_point_error(
        *optical_flow(to_uint8(5 * base, 1), to_uint8(5 * shifted(base, *SHIFT), 1)), *SHIFT
    )
    assert from_float < 0.1
    assert from_float < from_uint8


def test_rejects_bad_frames(pair):
    prev, next_ = pair
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        optical_flow(prev.astype(np.float32), next_.astype(np.float32))
    with pytest.raises(ValueError, match="differ in size"):
        optical_flow(prev, next_[:-1])


def test_tvl1_parameters_read_back():
    params = flow_parameters("tvl1")
    assert params["method"] == "tvl1"
    assert params["opencv"] == cv2.__version__
    expected = {"tau": 0.25, "lambda": 0.15, "theta": 0.3, "nscales": 5, "warps": 5, "epsilon": 0.01,
                "innerIterations": 30, "outerIterations": 10, "scaleStep": 0.8, "gamma": 0.0,
                "medianFiltering": 5, "useInitialFlow": False}  # fmt: skip
    for name, value in expected.items():
        assert params[name] == pytest.approx(value), name
    override = flow_parameters("tvl1", {"tau": 0.125, "nscales": 3.0, "warps": 2})
    assert override["tau"] == 0.125 and override["nscales"] == 3 and override["warps"] == 2
    assert isinstance(override["nscales"], int)
    assert override["lambda"] == pytest.approx(0.15)


def test_dis_and_farneback_parameters():
    dis = flow_parameters("dis", {"preset": "fast", "patchSize": 12})
    assert dis["preset"] == "fast" and dis["patchSize"] == 12
    assert (
        flow_parameters("dis")["finestScale"] < dis["finestScale"]
    )  # medium (default) works finer than fast
    farneback = flow_parameters("farneback", {"winsize": 9})
    assert farneback["winsize"] == 9 and farneback["levels"] == 1


def test_override_changes_the_flow(pair):
    # The parameters must reach OpenCV, not just the returned dict.
    prev, next_ = pair
    default = optical_flow(prev, next_, "dis")
    coarse = optical_flow(prev, next_, "dis", {"preset": "ultrafast"})
    assert not np.allclose(default[0], coarse[0])


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("lucas-kanade", None, r"unknown optical flow method 'lucas-kanade'.*tvl1, farneback, dis"),
        ("tvl1", {"tua": 0.1}, r"'tua'.*valid parameters: tau, lambda"),
        ("dis", {"tau": 0.1}, r"'tau'.*valid parameters: preset, finestScale"),
        ("farneback", {"levels": 1.5}, r"'levels' must be int"),
        ("dis", {"preset": "slow"}, r"unknown dis preset 'slow'"),
        ("tvl1", {"useInitialFlow": True}, r"useInitialFlow"),
    ],
)
def test_bad_method_or_parameter_is_named(method, params, message):
    with pytest.raises(ValueError, match=message):
        flow_parameters(method, params)
    frame = np.zeros((32, 32), np.uint8)
    with pytest.raises(ValueError, match=message):
        optical_flow(frame, frame, method, params)


def test_flow_memo_returns_the_same_field_once_computed_and_copies(monkeypatch):
    from preprocessing import flow as flow_module

    flow_module.clear_flow_memo()
    calls = []
    real = flow_module._FLOWS["tvl1"]

    def counting(prev, next, params):
        calls.append(1)
        return real(prev, next, params)

    monkeypatch.setitem(flow_module._FLOWS, "tvl1", counting)
    rng = np.random.default_rng(0)
    a = rng.random((32, 32)).astype(np.float32)
    b = np.roll(a, 1, axis=1)
    u1, v1 = flow_module.optical_flow(a, b)
    u1[:] = 99  # a caller's change must not reach the memo
    u2, v2 = flow_module.optical_flow(a.copy(), b.copy())
    assert len(calls) == 1 and not np.any(u2 == 99) and np.array_equal(v1, v2)
    flow_module.optical_flow(a, b, params={"warps": 3})  # other parameters: computed again
    flow_module.optical_flow(b, a)  # other order: computed again
    assert len(calls) == 3
    flow_module.clear_flow_memo()
    flow_module.optical_flow(a, b)
    assert len(calls) == 4
    flow_module.clear_flow_memo()


def test_flow_memo_is_bounded(monkeypatch):
    from preprocessing import flow as flow_module

    flow_module.clear_flow_memo()
    monkeypatch.setattr(flow_module, "FLOW_MEMO_BYTES", 3 * 2 * 32 * 32 * 4)  # three fields
    rng = np.random.default_rng(1)
    frames = [rng.random((32, 32)).astype(np.float32) for _ in range(6)]
    for i in range(5):
        flow_module.optical_flow(frames[i], frames[i + 1], "farneback")
    assert len(flow_module._MEMO) == 3 and flow_module._memo_bytes <= flow_module.FLOW_MEMO_BYTES
    flow_module.clear_flow_memo()
