"""Motion magnification (Eulerian and Lagrangian): measured gain, the reference's attenuation, identities,
validation, and its place in FeatureSpec (cache key, compute_features, raw frames for apex spotting).

Test clip: a band-limited periodic random texture translated by s(t) = A·sin²(πt/(N-1)) (rises from 0 at
the onset to A at the apex, t = 15, and falls back), by an exact Fourier shift (no interpolation error), at
200 fps. The displacement between two frames is a global translation fitted over the central region (away
from the borders the pyramid reflects) by Gauss-Newton with exact cubic-spline resampling.

What linear EVM predicts (Wu et al. 2012, §3): a motion δ(t) becomes δ(t) + Σ_l α_l p_l · b(t), where b is
the temporal filter applied to δ(t) itself (the filter is linear and acts per pixel) and p_l the share of
the texture's gradient energy in pyramid level l (what a gradient-based displacement estimate weighs); the
onset -> apex displacement is thus true · (1 + α_eff · g) with α_eff = Σ α_l p_l and g = (b_apex - b_onset) /
(δ_apex - δ_onset). It is a first-order model: a sinusoid of wavelength λ moves by atan(θ)/θ of that,
θ = 2π(1 + α)|δ|/λ. Here (1 + α)|δ| = 1.2 px and λ >= 20 px, so θ <= 0.39 and the shortfall is under 5 %
at the shortest wavelength, less on average; measured: within 1-2 % of the prediction (tolerance 3 %), and
10.5 of 1 + α = 11 where nothing but the finest level (4 % of the gradient energy) is held back.
Lagrangian: the error of the flow is magnified too; measured 10.5-11.5 of 11 with DIS (tolerance 10 %).
"""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy import ndimage

from datamodules.readers.synthetic import SyntheticConfig, synthetic_samples
from datamodules.samples import Sample, SampleError
from preprocessing.features import FeatureSpec, compute_features, compute_features_with_info
from preprocessing.magnify import (
    MagnifySpec,
    collapse_pyramid,
    laplacian_pyramid,
    level_alphas,
    magnify_clip,
    pyramid_levels,
    temporal_filter,
)

ROOT = Path(__file__).resolve().parents[1]
FPS = 200.0
N = 31  # frames, onset..offset
APEX = 15
MARGIN = 24  # px left out at each border when measuring


def texture_spectrum(height: int, width: int, shortest: float, longest: float, seed: int = 0) -> np.ndarray:
    """FFT of white noise kept at wavelengths shortest..longest px (an annulus), so its energy sits in the
    pyramid levels the test means to magnify."""
    spectrum = np.fft.fft2(np.random.default_rng(seed).standard_normal((height, width)))
    fy, fx = np.meshgrid(np.fft.fftfreq(height), np.fft.fftfreq(width), indexing="ij")
    radius = np.hypot(fx, fy)
    return spectrum * ((radius >= 1 / longest) & (radius <= 1 / shortest))


def moving_clip(
    amplitude=(0.1, -0.05), size=(128, 128), wavelengths=(20.0, 48.0), n=N
) -> tuple[list[np.ndarray], np.ndarray]:
    """float32 grey frames in [0, 1] (contrast std 0.1 around 0.5: 5 std from either end, so the clip at
    0 and 1 the magnifier applies never bites) and the motion profile s(t) in [0, 1]."""
    spectrum = texture_spectrum(*size, *wavelengths)
    scale = 0.1 / np.real(np.fft.ifft2(spectrum)).std()
    profile = np.sin(np.pi * np.arange(n) / (n - 1)) ** 2
    frames = []
    for s in profile:
        moved = ndimage.fourier_shift(spectrum, (s * amplitude[1], s * amplitude[0]))  # (rows, cols)
        frames.append(np.clip(0.5 + scale * np.real(np.fft.ifft2(moved)), 0, 1).astype(np.float32))
    return frames, profile


def displacement(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(dx, dy) in px such that second(x + d) ≈ first(x), i.e. the motion from first to second, over the
    inner region: Gauss-Newton on the squared difference, `second` resampled by cubic splines at exact
    positions (cv2's ECC and remap quantise positions to 1/32 px, a 0.01 px bias at this scale)."""
    first, second = np.float64(first), np.float64(second)
    inner = (slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
    coefficients = ndimage.spline_filter(second, order=3, mode="mirror")
    rows, cols = np.mgrid[0 : first.shape[0], 0 : first.shape[1]].astype(np.float64)
    d = np.zeros(2)
    for _ in range(30):
        warped = ndimage.map_coordinates(
            coefficients, [rows + d[1], cols + d[0]], order=3, mode="mirror", prefilter=False
        )
        gy, gx = np.gradient(warped)
        jacobian = np.stack([gx[inner].ravel(), gy[inner].ravel()], axis=1)
        step = np.linalg.solve(jacobian.T @ jacobian, jacobian.T @ (first - warped)[inner].ravel())
        d += step
        if np.abs(step).max() < 1e-7:
            break
    return d


def gradient_shares(image: np.ndarray, levels: int) -> np.ndarray:
    """Share of the image's gradient energy (inner region) carried by each pyramid level, finest first."""
    bands = laplacian_pyramid(image, levels)
    gy, gx = np.gradient(image)
    inner = (slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
    total = np.sum(gx[inner] ** 2 + gy[inner] ** 2)
    shares = []
    for level in range(levels):
        only = [band if index == level else np.zeros_like(band) for index, band in enumerate(bands)]
        ry, rx = np.gradient(collapse_pyramid(only))
        shares.append(np.sum((rx * gx + ry * gy)[inner]) / total)
    return np.array(shares)


# ---------------------------------------------------------------------------------------------------------
# The reference's pyramid and attenuation


def test_pyramid_height_and_exact_collapse():
    assert pyramid_levels(170, 140) == 6  # matlabPyrTools: 140 -> 70 -> 35 -> 17 -> 8 (>= 5 taps), + residual
    assert pyramid_levels(128, 128) == 6 and pyramid_levels(256, 256) == 7 and pyramid_levels(4, 40) == 1
    image = np.random.default_rng(1).random((170, 140)).astype(np.float32)
    bands = laplacian_pyramid(image, 6)
    assert [band.shape for band in bands] == [(170, 140), (85, 70), (43, 35), (22, 18), (11, 9), (6, 5)]
    np.testing.assert_allclose(collapse_pyramid(bands), image, atol=1e-5)


def test_level_alphas_follow_the_reference_code():
    # 170x140: λ_coarsest = √(170² + 140²) / 3 = 73.41 px, halving per finer level: 36.70, 18.35, 9.18, 4.59.
    # α=10, λ_c=16: δ = 16 / 8 / 11, α_l = min(10, λ_l / (8δ) - 1) = min(10, 11·λ_l/16 - 1); ends are 0.
    expected = [0.0, 11 * 4.5886 / 16 - 1, 11 * 9.1771 / 16 - 1, 10.0, 10.0, 0.0]
    np.testing.assert_allclose(level_alphas(170, 140, 6, 10, 16), expected, atol=1e-3)
    # The reference code's exaggeration_factor = 2 doubles the ramp, the cap stays α.
    exaggerated = level_alphas(170, 140, 6, 10, 16, exaggeration=2)
    np.testing.assert_allclose(exaggerated, [0.0, 2 * expected[1], 10.0, 10.0, 10.0, 0.0], atol=1e-3)
    assert level_alphas(170, 140, 6, 0, 16) == [0.0] * 6
    assert level_alphas(170, 140, 6, 10, 1000) == [0.0] * 6  # ramp clipped at 0, never negative


# ---------------------------------------------------------------------------------------------------------
# Measured gain


def test_eulerian_magnifies_motion_by_one_plus_alpha():
    # No spatial attenuation (λ_c tiny), a filter passing everything but DC: the onset -> apex motion should
    # become (1 + α) times the true one, less the share of the finest level, which is never magnified.
    alpha, truth = 10.0, np.array([0.1, -0.05])
    frames, _ = moving_clip(truth, wavelengths=(24.0, 64.0))
    out = magnify_clip(frames, "eulerian", FPS, alpha=alpha, lambda_c=1e-3, temporal="ideal", fl=1, fh=100)
    np.testing.assert_allclose(displacement(frames[0], frames[APEX]), truth, atol=0.005)
    measured = displacement(out[0], out[APEX])
    p_finest = gradient_shares(frames[0], 6)[0]
    assert p_finest < 0.06
    gain = measured / truth
    np.testing.assert_allclose(gain, 1 + alpha, rtol=0.06)  # measured 10.5 of 11
    np.testing.assert_allclose(gain, 1 + alpha * (1 - p_finest), rtol=0.03)


@pytest.mark.parametrize(
    "temporal",
    [
        {"temporal": "iir", "r1": 0.4, "r2": 0.05},
        {"temporal": "ideal", "fl": 1.0, "fh": 30.0},
        {"temporal": "butterworth", "fl": 0.5, "fh": 30.0},
    ],
    ids=lambda t: t["temporal"],
)
def test_eulerian_gain_matches_linear_evm(temporal):
    # The reference settings (α = 10, λ_c = 16): fine levels attenuated, the temporal filter's own gain g.
    alpha, truth = 10.0, np.array([0.1, -0.05])
    frames, profile = moving_clip(truth)
    out = magnify_clip(frames, "eulerian", FPS, alpha=alpha, lambda_c=16, **temporal)
    kind = temporal["temporal"]
    params = {name: value for name, value in temporal.items() if name != "temporal"}
    b = temporal_filter(profile[:, None], kind, FPS, **params)[:, 0]
    g = (b[APEX] - b[0]) / (profile[APEX] - profile[0])
    alpha_eff = np.dot(level_alphas(128, 128, 6, alpha, 16), gradient_shares(frames[0], 6))
    predicted = 1 + alpha_eff * g
    # IIR (r1 = 0.4, r2 = 0.05) passes 62 % of this 150 ms rise; α_eff ≈ 4.4 of 10 after the attenuation.
    assert {"iir": 0.55 < g < 0.7, "ideal": 0.95 < g < 1.05, "butterworth": 0.8 < g < 0.95}[kind]
    assert 3.5 < alpha_eff < 5.5
    measured = displacement(out[0], out[APEX]) / truth
    np.testing.assert_allclose(measured, predicted, rtol=0.03)


@pytest.mark.parametrize("warp_from", ["onset", "frame"])
def test_lagrangian_magnifies_motion_by_one_plus_alpha(warp_from):
    # Sign and size on both axes: the magnified apex moved (1 + α)·d from the onset, d = the true motion.
    alpha, truth = 10.0, np.array([0.2, -0.1])
    frames, _ = moving_clip(truth)
    out = magnify_clip(frames, "lagrangian", FPS, alpha=alpha, warp_from=warp_from)
    assert out[0] is not frames[0] and np.array_equal(out[0], frames[0])
    measured = displacement(out[0], out[APEX])
    # DIS's error on d (~0.01 px here) is multiplied by 1 + α: 10 % of (1 + α)·|d|.
    np.testing.assert_allclose(measured, (1 + alpha) * truth, atol=0.1 * (1 + alpha) * 0.1)
    assert np.sign(measured).tolist() == [1.0, -1.0]


# ---------------------------------------------------------------------------------------------------------
# Identities


@pytest.mark.parametrize("temporal", ["iir", "ideal", "butterworth"])
def test_alpha_zero_and_a_static_clip_change_nothing(temporal):
    frames, _ = moving_clip()
    unchanged = magnify_clip(frames, "eulerian", FPS, alpha=0, temporal=temporal, fl=1, fh=30)
    for before, after in zip(frames, unchanged, strict=True):
        np.testing.assert_array_equal(after, before)
    still = [frames[0]] * 20  # no motion, nothing in any band but DC
    magnified = magnify_clip(still, "eulerian", FPS, alpha=20, temporal=temporal, fl=1, fh=30)
    np.testing.assert_allclose(np.stack(magnified), np.stack(still), atol=1e-5)
    as_uint8 = [np.rint(frame * 255).astype(np.uint8) for frame in still]
    out = magnify_clip(as_uint8, "eulerian", FPS, alpha=20, temporal=temporal, fl=1, fh=30)
    assert all(frame.dtype == np.uint8 for frame in out)
    np.testing.assert_array_equal(np.stack(out), np.stack(as_uint8))


def test_lagrangian_alpha_zero():
    frames, _ = moving_clip((0.2, -0.1))
    exact = magnify_clip(frames, "lagrangian", FPS, alpha=0, warp_from="frame")
    np.testing.assert_array_equal(np.stack(exact), np.stack(frames))
    # From the onset, α = 0 re-synthesises each frame from the onset and the measured flow: close, not exact.
    warped = magnify_clip(frames, "lagrangian", FPS, alpha=0, warp_from="onset")
    error = np.abs(np.stack(warped) - np.stack(frames))[:, MARGIN:-MARGIN, MARGIN:-MARGIN]
    assert error.mean() < 0.002  # of a 0..1 grey scale whose texture has std 0.1


def test_motion_outside_the_band_is_not_magnified():
    # A 50 Hz tremor of 0.2 px (an exact FFT bin of 40 frames at 200 fps) and its harmonics lie outside
    # 1-20 Hz; the ideal band-pass leaves the clip as it is. The same tremor inside the band (5 Hz) is
    # magnified.
    spectrum = texture_spectrum(96, 96, 16, 40)
    t = np.arange(40) / FPS

    def tremor(hz):
        return [
            (
                0.5
                + np.real(
                    np.fft.ifft2(ndimage.fourier_shift(spectrum, (0, 0.2 * np.sin(2 * np.pi * hz * s))))
                )
            )
            .clip(0, 1)
            .astype(np.float32)
            for s in t
        ]

    fast, slow = tremor(50.0), tremor(5.0)
    params = {"alpha": 10, "temporal": "ideal", "fl": 1.0, "fh": 20.0}
    np.testing.assert_allclose(
        np.stack(magnify_clip(fast, "eulerian", FPS, **params)), np.stack(fast), atol=1e-4
    )
    assert np.abs(np.stack(magnify_clip(slow, "eulerian", FPS, **params)) - np.stack(slow)).max() > 0.01


def test_causal_filters_keep_the_onset_and_the_ideal_filter_does_not():
    frames, _ = moving_clip()
    for temporal in ("iir", "butterworth"):
        assert np.array_equal(magnify_clip(frames, "eulerian", FPS, temporal=temporal)[0], frames[0])
    assert not np.array_equal(
        magnify_clip(frames, "eulerian", FPS, temporal="ideal", fl=1, fh=30)[0], frames[0]
    )


def test_rgb_frames_magnify_their_luminance():
    frames, _ = moving_clip((0.2, -0.1), size=(64, 64))
    tint = np.array([1.1, 1.0, 0.8], dtype=np.float32)
    rgb = [np.rint(np.clip(frame[..., None] * tint, 0, 1) * 255).astype(np.uint8) for frame in frames]
    out = magnify_clip(rgb, "eulerian", FPS, alpha=10)
    assert out[APEX].shape == (64, 64, 3) and out[APEX].dtype == np.uint8
    change = out[APEX].astype(np.int16) - rgb[APEX]
    assert np.abs(change).max() > 5  # something was magnified ...
    inner = change[8:-8, 8:-8]
    # ... and equally in R, G and B (the reference's YIQ with chromAttenuation 0), up to rounding and clipping
    assert np.percentile(np.abs(inner[..., 0] - inner[..., 2]), 99) <= 1
    lagrangian = magnify_clip(rgb, "lagrangian", FPS, alpha=10)
    assert lagrangian[APEX].shape == (64, 64, 3) and lagrangian[APEX].dtype == np.uint8


# ---------------------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("method", "phase", r"unknown magnify method 'phase'; allowed: eulerian, lagrangian"),
        ("alpha", -1, r"magnify alpha must be >= 0"),
        ("alpha", "ten", r"magnify alpha must be a number"),
        ("alpha", True, r"magnify alpha must be a number"),
        ("lambda_c", 0, r"magnify lambda_c must be > 0"),
        ("temporal", "fir", r"unknown magnify temporal 'fir'; allowed: iir, ideal, butterworth"),
        ("r1", 1.5, r"magnify r1 must be in \(0, 1\]"),
        ("r2", 0.5, r"magnify r2 must be in \[0, r1\)"),
        ("fl", 0, r"magnify fl must be > 0 Hz"),
        ("fh", 0.2, r"magnify fh must be above fl"),
        ("levels", 2, r"magnify levels must be >= 3"),
        ("levels", 4.5, r"magnify levels must be an integer"),
        ("exaggeration", -2, r"magnify exaggeration must be >= 0"),
        ("flow_method", "horn", r"unknown magnify flow_method 'horn'"),
        ("flow_params", [["finestscale", 0]], r"magnify flow_params: unknown dis flow parameter"),
        ("warp_from", "apex", r"unknown magnify warp_from 'apex'; allowed: onset, frame"),
    ],
)
def test_bad_parameter_is_a_clear_error(field, value, message):
    with pytest.raises(ValueError, match=message):
        MagnifySpec(**{field: value})


def test_bad_clip_for_the_settings_is_a_clear_error():
    frames, _ = moving_clip(size=(64, 64), n=10)
    with pytest.raises(ValueError, match=r"fh = 120.0 Hz must be below the Nyquist frequency 100.0 Hz"):
        magnify_clip(frames, temporal="butterworth", fl=1, fh=120)
    with pytest.raises(ValueError, match=r"no frequency of a 10-frame clip at 200 fps lies in \[fl, fh\]"):
        magnify_clip(frames, temporal="ideal", fl=1, fh=10)  # its frequencies are 0, 20, 40, ... Hz
    with pytest.raises(ValueError, match="fps must be > 0"):
        magnify_clip(frames, fps=0)
    with pytest.raises(ValueError, match="frames differ in shape"):
        magnify_clip([frames[0], frames[1][:32]])
    with pytest.raises(ValueError, match="cannot hold a 9-level pyramid"):
        magnify_clip(frames, levels=9)
    with pytest.raises(ValueError, match="float frames must be scaled to"):
        magnify_clip([frame * 255 for frame in frames])


def test_spec_is_hashable_and_comes_from_a_mapping():
    spec = MagnifySpec(alpha=10, flow_params={"preset": "fast"})
    assert spec == MagnifySpec(alpha=10.0, flow_params=[("preset", "fast")]) and isinstance(spec.alpha, float)
    hash(spec)
    assert pickle.loads(pickle.dumps(spec)) == spec
    config = OmegaConf.create(
        {"method": "eulerian", "alpha": 8, "levels": None, "flow_params": [["preset", "fast"]]}
    )
    assert MagnifySpec.from_mapping(config) == dataclasses.replace(spec, alpha=8.0)
    with pytest.raises(ValueError, match=r"unknown magnify field\(s\) 'gain'; allowed: method, alpha"):
        MagnifySpec.from_mapping({"gain": 3})


# ---------------------------------------------------------------------------------------------------------
# FeatureSpec


def test_feature_key_has_magnify_only_when_set():
    plain = FeatureSpec()
    assert "magnify" not in plain.describe() and FeatureSpec(magnify=None).key() == plain.key()
    magnified = FeatureSpec(magnify=MagnifySpec())
    assert magnified.key() != plain.key()
    assert magnified.describe()["magnify"] == {
        "version": 1,
        "method": "eulerian",
        "alpha": 10.0,
        "lambda_c": 16.0,
        "levels": None,
        "exaggeration": 1.0,
        "temporal": "iir",
        "r1": 0.4,
        "r2": 0.05,
    }
    # A mapping (Hydra) is the same spec; a changed setting is another key; one the method ignores is not.
    assert FeatureSpec(magnify=OmegaConf.create({"alpha": 10})).key() == magnified.key()
    assert FeatureSpec(magnify=MagnifySpec(alpha=8)).key() != magnified.key()
    assert FeatureSpec(magnify=MagnifySpec(fh=12)).key() == magnified.key()  # fh: not the IIR's
    lagrangian = FeatureSpec(magnify=MagnifySpec(method="lagrangian"))
    assert lagrangian.describe()["magnify"]["flow"]["method"] == "dis"
    assert len({plain.key(), magnified.key(), lagrangian.key()}) == 3
    assert pickle.loads(pickle.dumps(magnified)) == magnified
    with pytest.raises(ValueError, match="magnify must be None, a MagnifySpec or a mapping"):
        FeatureSpec(magnify=10)


def test_features_config_builds_a_magnified_spec():
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        magnified = instantiate(compose("train", overrides=["features=apex_flow_magnified"]).features)
        plain = instantiate(compose("train", overrides=["features=apex_flow"]).features)
    assert isinstance(magnified.magnify, MagnifySpec) and magnified.magnify.method == "eulerian"
    assert dataclasses.replace(magnified, magnify=None) == plain


class RecordingClip:
    """Frames of `moving_clip` as uint8 (the motion peaks at frame APEX), recording which are read."""

    def __init__(self, amplitude=(0.3, -0.15)):
        frames, _ = moving_clip(amplitude, size=(96, 96))
        self._frames = [np.rint(frame * 255).astype(np.uint8) for frame in frames]
        self.frame_numbers = tuple(range(100, 100 + N))
        self.reads: list[int] = []

    def read(self, number: int) -> np.ndarray:
        self.reads.append(number)
        return self._frames[number - 100]

    def fingerprint(self) -> str:
        return "recording-clip"


def clip_sample(apex: int | None = 100 + APEX) -> Sample:
    return Sample(
        "x/s1/c1", "x", "x/s1", "c1", RecordingClip(), onset=100, apex=apex, offset=100 + N - 1, emotion="e"
    )


def test_compute_features_magnifies_what_the_flow_sees():
    spec = FeatureSpec(channels=("u", "v", "magnitude", "apex"), flow_method="dis", size=(24, 24))
    plain = compute_features(clip_sample(), spec)
    sample = clip_sample()
    lagrangian = compute_features(sample, dataclasses.replace(spec, magnify=MagnifySpec(method="lagrangian")))
    assert sorted(set(sample.frames.reads)) == [100, 100 + APEX]  # Lagrangian: the onset and the apex only
    inner = (slice(4, -4), slice(4, -4))
    np.testing.assert_allclose(np.median(plain[0][inner]), 0.3, atol=0.05)
    np.testing.assert_allclose(np.median(lagrangian[0][inner]), 11 * 0.3, rtol=0.1)
    np.testing.assert_allclose(np.median(lagrangian[1][inner]), 11 * -0.15, rtol=0.1)
    sample = clip_sample()
    eulerian = compute_features(sample, dataclasses.replace(spec, magnify=MagnifySpec(lambda_c=1e-3, r2=0)))
    assert sorted(set(sample.frames.reads)) == list(sample.frames.frame_numbers)  # the whole clip
    assert np.median(eulerian[2][inner]) > 3 * np.median(plain[2][inner])
    assert not np.allclose(eulerian[3], plain[3])  # the grey apex channel is the magnified apex


def test_spotted_apex_is_found_on_the_raw_frames():
    spec = FeatureSpec(
        channels=("u", "v"), flow_method="dis", apex="spotted", apex_fallback="frame_difference"
    )
    _, raw = compute_features_with_info(clip_sample(), spec)
    _, magnified = compute_features_with_info(
        clip_sample(), dataclasses.replace(spec, magnify=MagnifySpec(alpha=20))
    )
    assert raw["apex_frame"] == magnified["apex_frame"]
    assert raw["apex_source"] == magnified["apex_source"] == "spotted:frame_difference"


def test_a_clip_the_magnifier_cannot_take_names_the_sample():
    spec = FeatureSpec(flow_method="dis", magnify=MagnifySpec(temporal="butterworth", fl=1, fh=150))
    with pytest.raises(SampleError, match=r"x/s1/c1: magnifying frames 100..130: .*Nyquist"):
        compute_features(clip_sample(), spec)


def test_magnification_raises_the_flow_of_a_synthetic_micro_expression():
    # The synthetic database's AU motions are 0.3-1.2 px at the apex, on a 170x140 face.
    sample = synthetic_samples(SyntheticConfig(num_subjects=1, clips_per_subject=1))[0]
    spec = FeatureSpec(channels=("magnitude",), flow_method="dis", size=(28, 28))
    plain = np.percentile(compute_features(sample, spec), 95)
    eulerian = np.percentile(compute_features(sample, dataclasses.replace(spec, magnify=MagnifySpec())), 95)
    lagrangian_spec = dataclasses.replace(spec, magnify=MagnifySpec(method="lagrangian", alpha=5))
    lagrangian = np.percentile(compute_features(sample, lagrangian_spec), 95)
    assert eulerian > 1.5 * plain  # α = 10 attenuated below λ_c = 16, IIR gain < 1: ~2x measured
    assert 4 * plain < lagrangian < 8 * plain  # ~(1 + α) = 6
