"""Sequence inputs: a clip as T steps of flow, strain and grey frames (FeatureSpec.sequence)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from datamodules.samples import Sample, SampleError
from preprocessing.features import FeatureSpec, compute_features
from preprocessing.flow import optical_flow, to_gray
from preprocessing.sequence import SequenceSpec

STEP = (0.1, -0.05)  # px per frame (dx, dy)
INNER = (slice(None), slice(6, -6), slice(6, -6))  # steps, rows, columns away from the borders


class ShiftingTexture:
    """Frame n is a smooth random texture moved by n * STEP (uint8 grey); `still` makes every frame equal."""

    def __init__(self, frame_numbers=range(0, 11), still: bool = False):
        self.frame_numbers = tuple(frame_numbers)
        self.still = still
        noise = np.random.default_rng(0).standard_normal((48, 56))
        self._spectrum = ndimage.fourier_gaussian(np.fft.fft2(noise), 2.5)
        self._scale = 40 / np.real(np.fft.ifft2(self._spectrum)).std()

    def read(self, number: int) -> np.ndarray:
        k = 0 if self.still else number - self.frame_numbers[0]
        moved = np.real(np.fft.ifft2(ndimage.fourier_shift(self._spectrum, (k * STEP[1], k * STEP[0]))))
        return np.clip(np.rint(128 + self._scale * moved), 0, 255).astype(np.uint8)

    def fingerprint(self) -> str:
        return f"sequence-texture/{self.still}"


def make_sample(onset=0, apex=6, offset=10, **kwargs) -> Sample:
    return Sample(
        sample_id="synthetic/s01/clip01",
        dataset="synthetic",
        subject="synthetic/s01",
        clip="clip01",
        frames=ShiftingTexture(**kwargs),
        onset=onset,
        apex=apex,
        offset=offset,
        emotion="happiness",
    )


def spec(**sequence) -> FeatureSpec:
    return FeatureSpec(channels=("u", "v", "frame"), size=(48, 56), sequence=sequence)


def _flow(sample: Sample, first: int, second: int) -> np.ndarray:
    u, v = optical_flow(to_gray(sample.frames.read(first)), to_gray(sample.frames.read(second)), "tvl1", {})
    return np.stack([u, v])


@pytest.mark.parametrize("resample", ["tim", "linear", "uniform"])
def test_consecutive_flow_pairs_frame_k_with_k_plus_1(resample):
    # 11 frames to 6 lands every method on frames 0, 2, ..., 10 exactly: step k is the flow 2k -> 2k + 2.
    sample = make_sample()
    out = compute_features(sample, spec(length=5, resample=resample))
    assert out.shape == (5, 3, 48, 56) and out.dtype == np.float32
    for step in range(5):
        np.testing.assert_allclose(out[step, :2], _flow(sample, 2 * step, 2 * step + 2), atol=2e-3)
    # And it is the known motion (TV-L1 underestimates a 0.2 px shift on this small texture by ~20%).
    u, v = np.median(out[:, 0][INNER], axis=(1, 2)), np.median(out[:, 1][INNER], axis=(1, 2))
    np.testing.assert_allclose(u, 2 * STEP[0], rtol=0.3)
    np.testing.assert_allclose(v, 2 * STEP[1], rtol=0.4)


def test_accumulated_flow_runs_from_the_onset_and_frames_are_the_destinations():
    sample = make_sample()
    out = compute_features(sample, spec(length=5, resample="linear", flow="accumulated"))
    for step in range(5):
        np.testing.assert_allclose(out[step, :2], _flow(sample, 0, 2 * step + 2), atol=2e-3)
        # Step k's grey frame is frame 2(k + 1), the flow's destination, in [0, 1].
        np.testing.assert_allclose(out[step, 2], sample.frames.read(2 * step + 2) / 255.0, atol=1e-6)
    u = np.median(out[:, 0][INNER], axis=(1, 2))
    assert np.all(np.diff(u) > 0), u  # the displacement from the onset grows step by step


def test_frames_only_sequence_holds_t_frames_of_the_span():
    sample = make_sample()
    grey = FeatureSpec(channels=("frame",), size=(48, 56), sequence={"length": 3, "resample": "uniform"})
    out = compute_features(sample, grey)
    assert out.shape == (3, 1, 48, 56)
    for step, number in enumerate((0, 5, 10)):
        np.testing.assert_allclose(out[step, 0], sample.frames.read(number) / 255.0, atol=1e-6)
    to_apex = FeatureSpec(
        channels=("frame",),
        size=(48, 56),
        sequence={"length": 2, "resample": "uniform", "span": ["onset", "apex"]},
    )
    np.testing.assert_allclose(
        compute_features(sample, to_apex)[1, 0], sample.frames.read(6) / 255.0, atol=1e-6
    )


def test_tim_upsampling_interpolates_between_frames():
    # 6 frames (0..5) to 11 by TIM: consecutive steps move about half a frame's shift.
    out = compute_features(make_sample(offset=5, apex=3), spec(length=10, resample="tim"))
    u = np.median(out[:, 0][INNER], axis=(1, 2))
    # Half a frame's shift per step (TV-L1 reads sub-pixel shifts on this texture 10-30% short).
    assert np.all((u > 0.5 * STEP[0] / 2) & (u < 1.1 * STEP[0] / 2)), u
    assert u.std() < 0.1 * u.mean(), u  # evenly spread: no step doubles up, none stands still


def test_degenerate_clips_name_the_sample_and_the_way_out():
    with pytest.raises(
        SampleError, match=r"synthetic/s01/clip01: frames 0\.\.10 \(11 frames\).*by tim.*resample=linear"
    ):
        compute_features(make_sample(still=True), spec(length=4))
    with pytest.raises(SampleError, match="1 frames.*at least 2 frames"):
        compute_features(make_sample(onset=3, apex=3, offset=3), spec(length=4))
    # The same still clip is fine for linear resampling: no motion at all.
    out = compute_features(make_sample(still=True), spec(length=4, resample="linear"))
    assert np.abs(out[:, :2]).max() < 1e-3


def test_sequence_specs_are_validated():
    with pytest.raises(ValueError, match="unknown sequence resample 'cubic'"):
        spec(resample="cubic")
    with pytest.raises(ValueError, match="positive integer"):
        spec(length=0)
    with pytest.raises(ValueError, match="run forward"):
        spec(span=["apex", "onset"])
    with pytest.raises(ValueError, match=r"unknown sequence field\(s\) \['steps'\]"):
        spec(steps=3)
    with pytest.raises(ValueError, match="channel of a sequence 'apex'"):
        FeatureSpec(channels=("u", "apex"), sequence={})
    with pytest.raises(ValueError, match="'frame' is a sequence step's frame"):
        FeatureSpec(channels=("u", "frame"))
    with pytest.raises(ValueError, match="frames=.*unused"):
        FeatureSpec(frames=("onset", "offset"), sequence={})


def test_sequence_is_in_the_key_only_when_set():
    plain = FeatureSpec()
    assert "sequence" not in plain.describe()
    keys = {
        FeatureSpec(sequence=SequenceSpec()).key(),
        FeatureSpec(sequence={"length": 10}).key(),
        FeatureSpec(sequence={"resample": "linear"}).key(),
        FeatureSpec(sequence={"flow": "accumulated"}).key(),
        FeatureSpec(sequence={"span": ["onset", "apex"]}).key(),
        plain.key(),
    }
    assert len(keys) == 6
    assert FeatureSpec(sequence={"length": 9}).shape == (9, 3, 28, 28)
