"""Apex-flow features: shapes, units, channel order, apex fallback, spec validation and cache key."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from scipy import ndimage

import preprocessing.features as features
from datamodules.samples import FrameSource, Sample, SampleError
from preprocessing.features import FeatureSpec, compute_features, compute_features_with_info
from preprocessing.magnify import MagnifySpec

STEP = (0.1, -0.05)  # px per frame (dx, dy): frame n is the first frame moved by n * STEP
INNER = (slice(5, -5), slice(5, -5))


class ShiftingTexture:
    """A FrameSource whose frame n is a smooth random texture moved by (n - first) * STEP, uint8 grey."""

    def __init__(self, frame_numbers=range(0, 11), height: int = 70, width: int = 84, seed: int = 0):
        self.frame_numbers = tuple(frame_numbers)
        self.seed = seed
        noise = np.random.default_rng(seed).standard_normal((height, width))
        self._spectrum = ndimage.fourier_gaussian(np.fft.fft2(noise), 2.5)
        self._scale = 40 / np.real(np.fft.ifft2(self._spectrum)).std()
        self.reads: list[int] = []

    def read(self, number: int) -> np.ndarray:
        self.reads.append(number)
        k = number - self.frame_numbers[0]
        moved = np.real(np.fft.ifft2(ndimage.fourier_shift(self._spectrum, (k * STEP[1], k * STEP[0]))))
        return np.clip(np.rint(128 + self._scale * moved), 0, 255).astype(np.uint8)

    def fingerprint(self) -> str:
        return f"shifting-texture/{self.seed}/{STEP}"


def make_sample(apex: int | None = 8, onset: int = 0, offset: int = 10, **kwargs) -> Sample:
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


def test_the_test_source_is_a_frame_source():
    assert isinstance(ShiftingTexture(), FrameSource)


def test_default_features_are_flow_and_strain_in_source_pixels():
    out = compute_features(make_sample(apex=8), FeatureSpec())
    assert out.shape == (3, 28, 28) and out.dtype == np.float32
    # Onset 0 -> apex 8: 8 frames of STEP, still in source pixels after resizing 84x70 -> 28x28.
    assert np.median(out[0][INNER]) == pytest.approx(8 * STEP[0], abs=0.1)
    assert np.median(out[1][INNER]) == pytest.approx(8 * STEP[1], abs=0.1)
    # Pure translation: (almost) no strain.
    assert np.median(out[2][INNER]) < 0.05


def test_channel_selection_and_order():
    sample = make_sample(apex=8)
    spec = FeatureSpec(channels=["v", "apex", "u", "magnitude", "onset"], size=(20, 24))
    out = compute_features(sample, spec)
    assert out.shape == (5, 20, 24) and spec.num_channels == 5
    assert np.median(out[0][INNER]) == pytest.approx(8 * STEP[1], abs=0.1)  # v first
    assert np.median(out[2][INNER]) == pytest.approx(8 * STEP[0], abs=0.1)  # then u

    def resize(image):
        return cv2.resize(image, (24, 20), interpolation=cv2.INTER_AREA)

    frames = ShiftingTexture()
    np.testing.assert_allclose(out[1], resize(frames.read(8).astype(np.float32) / 255), atol=1e-6)  # apex
    np.testing.assert_allclose(out[4], resize(frames.read(0).astype(np.float32) / 255), atol=1e-6)  # onset
    # Magnitude is taken before resizing; inside, where the flow is uniform, that equals hypot after it.
    np.testing.assert_allclose(out[3][INNER], np.hypot(out[2], out[0])[INNER], atol=0.02)
    assert np.median(out[3][INNER]) == pytest.approx(np.hypot(*STEP) * 8, abs=0.1)


def test_selected_flow_channels_match_the_full_set():
    sample = make_sample(apex=8)
    full = compute_features(sample, FeatureSpec(channels=("u", "v", "strain")))
    swapped = compute_features(sample, FeatureSpec(channels=("strain", "u")))
    np.testing.assert_allclose(swapped[0], full[2], atol=1e-6)
    np.testing.assert_allclose(swapped[1], full[0], atol=1e-6)


def test_missing_apex_uses_the_middle_frame():
    sample = make_sample(apex=None, onset=0, offset=10)
    out = compute_features(sample, FeatureSpec(channels=("u", "v")))
    assert np.median(out[0][INNER]) == pytest.approx(5 * STEP[0], abs=0.1)  # middle of 0..10 is 5, not 8
    assert sorted(set(sample.frames.reads)) == [0, 5]
    with pytest.raises(SampleError, match="synthetic/s01/clip01.*no apex"):
        compute_features(sample, FeatureSpec(apex_fallback="error"))


def test_middle_frame_with_a_gap_in_the_numbering():
    sample = make_sample(
        apex=None, onset=100, offset=110, frame_numbers=[100, 101, 102, 103, 104, 106, 108, 110]
    )
    assert features.frame_number(sample, "apex") == 104  # 105 is missing: nearest, lower on a tie
    assert features.frame_number(sample, "middle") == 104


def test_frames_only_never_computes_flow(monkeypatch):
    def no_flow(*args, **kwargs):
        raise AssertionError("flow computed although no flow channel was asked for")

    monkeypatch.setattr(features, "optical_flow", no_flow)
    out = compute_features(make_sample(), FeatureSpec(channels=("onset", "apex")))
    assert out.shape == (2, 28, 28)
    with pytest.raises(AssertionError, match="flow computed"):
        compute_features(make_sample(), FeatureSpec(channels=("apex", "u")))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("channels", ("u", "flow"), r"unknown channel 'flow'; allowed: u, v, strain, magnitude, onset, apex"),
        ("flow_method", "horn-schunck", r"unknown flow method 'horn-schunck'; allowed: tvl1, farneback, dis"),
        ("strain_scheme", "sobel", r"unknown strain scheme 'sobel'; allowed: backward, central"),
        ("frames", ("onset", "peak"), r"unknown frame 'peak'"),
        ("apex_fallback", "first", r"unknown apex fallback 'first'"),
        ("flow_params", (("tua", 0.2),), r"'tua'.*valid parameters"),
        ("size", (28,), r"size must be \(H, W\)"),
        ("channels", ("u", "u"), r"repeat"),
        ("magnify", {"alpha": -1}, r"magnify alpha must be >= 0"),
        ("magnify", {"alpah": 10}, r"unknown magnify field\(s\) 'alpah'"),
    ],
)
def test_bad_spec_is_rejected(field, value, message):
    with pytest.raises(ValueError, match=message):
        FeatureSpec(**{field: value})


def test_hydra_style_lists_become_tuples():
    spec = FeatureSpec(
        frames=["onset", "apex"], channels=["u", "v"], size=[32, 32], flow_params=[["warps", 3]]
    )
    assert spec.frames == ("onset", "apex") and spec.channels == ("u", "v") and spec.size == (32, 32)
    assert spec.flow_params == (("warps", 3),)
    hash(spec)


def test_key_is_stable_and_order_free():
    a = FeatureSpec(flow_params={"tau": 0.2, "warps": 3})
    b = FeatureSpec(flow_params=[("warps", 3), ("tau", 0.2)])
    assert a.key() == b.key() == a.key()
    assert len(a.key()) == 64
    assert a.describe()["flow"]["tau"] == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("frames", ("onset", "offset")),
        ("channels", ("u", "v")),
        ("channels", ("v", "u", "strain")),
        ("flow_method", "dis"),
        ("flow_params", (("tau", 0.2),)),
        ("strain_scheme", "central"),
        ("size", (32, 28)),
        ("apex_fallback", "error"),
        ("apex_fallback", "frame_difference"),
        ("apex_fallback", "strain"),
        ("apex", "spotted"),
        ("crop", "face"),
        ("magnify", MagnifySpec()),
        ("magnify", MagnifySpec(method="lagrangian")),
    ],
)
def test_key_changes_with_every_field(field, value):
    assert dataclasses.replace(FeatureSpec(), **{field: value}).key() != FeatureSpec().key()


def test_key_follows_the_flow_parameters_opencv_reports(monkeypatch):
    flow_spec, frames_spec = FeatureSpec(), FeatureSpec(channels=("onset", "apex"))
    before = flow_spec.key(), frames_spec.key()
    assert "flow" not in frames_spec.describe()
    real = features.flow_parameters
    # As if an OpenCV upgrade changed a default or the version string.
    monkeypatch.setattr(features, "flow_parameters", lambda *a: real(*a) | {"opencv": "9.9.9"})
    assert flow_spec.key() != before[0]
    assert frames_spec.key() == before[1]  # no flow channel: OpenCV's flow does not matter


def test_default_spec_record_is_unchanged():
    # The default spec's record (hence its key and its cache folder) as it was before the crop/apex options:
    # new fields appear only when set away from their defaults. ("flow" is OpenCV's, checked elsewhere.)
    record = FeatureSpec().describe()
    record.pop("flow")
    assert record == {
        "features_version": 1,
        "frames": ["onset", "apex"],
        "channels": ["u", "v", "strain"],
        "flow_method": "tvl1",
        "flow_params": {},
        "strain_scheme": "backward",
        "size": [28, 28],
        "apex_fallback": "middle",
    }


def test_new_settings_give_distinct_keys():
    specs = [
        FeatureSpec(),
        FeatureSpec(crop="face"),
        FeatureSpec(crop="face", crop_size=(140, 170)),
        FeatureSpec(crop="face", crop_size=(128, 128)),
        FeatureSpec(apex="spotted"),
        FeatureSpec(apex="spotted", apex_fallback="strain"),
        FeatureSpec(apex_fallback="strain"),
        FeatureSpec(magnify={"alpha": 8}),
        FeatureSpec(magnify={"alpha": 8, "temporal": "ideal"}),
    ]
    assert len({s.key() for s in specs}) == len(specs)
    assert FeatureSpec(crop_size=[128, 128]).crop_size == (128, 128)


class AstronautClip:
    """Frames 0..6 of skimage's astronaut (a real face, 512x512 RGB), moved 1 px right per frame."""

    frame_numbers = tuple(range(7))

    def read(self, number: int) -> np.ndarray:
        from skimage import data

        return np.roll(data.astronaut(), number, axis=1)

    def fingerprint(self) -> str:
        return "astronaut-roll"


def test_face_crop_on_a_real_face_clip():
    sample = Sample("x/s1/c1", "x", "x/s1", "c1", AstronautClip(), onset=0, apex=4, offset=6, emotion="e")
    spec = FeatureSpec(crop="face", crop_size=(140, 170), channels=("u", "v", "onset"), size=(34, 28))
    out, info = compute_features_with_info(sample, spec)
    assert out.shape == (3, 34, 28) and out.dtype == np.float32
    assert info["crop"]["size"] == [140, 170] and abs(info["crop"]["angle"]) < 6
    assert info["apex_frame"] == 4 and info["apex_source"] == "annotated"
    x, y, w, h = info["crop"]["box"]
    assert 120 <= x <= 200 and 20 <= y <= 90 and 100 <= w <= 180
    # The head moved 4 px right in the source: 4 * 140 / w px in the crop (which is not re-centred).
    assert np.median(out[0][5:-5, 5:-5]) == pytest.approx(4 * 140 / w, abs=0.6)
    np.testing.assert_array_equal(out, compute_features(sample, spec))
    plain, plain_info = compute_features_with_info(sample, dataclasses.replace(spec, crop="none"))
    assert plain_info["crop"] is None and not np.allclose(plain, out)


class PeakedTexture(ShiftingTexture):
    """ShiftingTexture whose middle square moves out to frame 3 and back: the motion peaks at frame 3."""

    def read(self, number: int) -> np.ndarray:
        base = super().read(self.frame_numbers[0])
        frame = base.copy()
        shift = 4 - abs(number - 3) if number <= 7 else 0
        frame[20:50, 30 + shift : 60 + shift] = base[20:50, 30:60]
        return frame


def test_spotted_apex_differs_from_the_annotated_one_where_they_differ():
    sample = Sample("x/s1/c1", "x", "x/s1", "c1", PeakedTexture(), onset=0, apex=8, offset=10, emotion="e")
    annotated_spec = FeatureSpec(channels=("u", "v", "apex"), flow_method="farneback")
    spotted_spec = dataclasses.replace(annotated_spec, apex="spotted", apex_fallback="frame_difference")
    annotated, a_info = compute_features_with_info(sample, annotated_spec)
    spotted, s_info = compute_features_with_info(sample, spotted_spec)
    assert a_info["apex_frame"] == 8 and a_info["apex_source"] == "annotated"
    assert s_info["apex_frame"] == 3 and s_info["apex_source"] == "spotted:frame_difference"
    assert not np.allclose(annotated, spotted)
    assert annotated_spec.key() != spotted_spec.key()
    # Where the annotation agrees with the spotter, so do the features.
    agreeing = dataclasses.replace(sample, apex=3)
    np.testing.assert_array_equal(compute_features(agreeing, annotated_spec), spotted)
    # No annotation: the fallback, recorded as such; frames-only specs resolve no apex.
    missing = dataclasses.replace(sample, apex=None)
    _, m_info = compute_features_with_info(
        missing, dataclasses.replace(annotated_spec, apex_fallback="strain")
    )
    assert m_info["apex_source"] == "fallback:strain" and m_info["apex_frame"] in range(2, 5)
    _, none_info = compute_features_with_info(sample, FeatureSpec(channels=("onset",)))
    assert none_info == {"apex_frame": None, "apex_source": None, "crop": None}
