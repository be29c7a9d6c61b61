"""Face crop on a real photograph (skimage astronaut): found, aligned, one warp for every frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from datamodules.samples import Sample, SampleError
from preprocessing import face
from preprocessing.face import FaceNotFound, detect_eyes, detect_face, face_crop_for
from preprocessing.features import FeatureSpec, compute_features


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()  # 512x512 RGB; the face is around x 170-280, y 50-170


def test_face_and_eyes_found_where_they_are(astronaut):
    box = detect_face(astronaut)
    assert box is not None
    # Measured: x 167, y 59, w = h = 112 (forehead to chin, cheek to cheek of Eileen Collins).
    assert 140 <= box.x <= 200 and 30 <= box.y <= 90 and 80 <= box.w <= 160
    (lx, ly), (rx, ry) = detect_eyes(astronaut, box)
    # Measured: eyes at (202, 100) and (247.5, 102.5): both in the upper half, one each side of the midline.
    assert 185 <= lx <= 220 and 230 <= rx <= 265 and 85 <= ly <= 120 and 85 <= ry <= 120
    assert lx < box.x + box.w / 2 < rx


def test_rotation_is_measured_and_levelled(astronaut):
    base = face_crop_for(astronaut).angle  # the astronaut's own head tilt, ~3 degrees
    assert abs(base) < 6
    turned = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((223, 115), 10, 1.0), (512, 512))
    crop = face_crop_for(turned)
    # Turning the picture 10 degrees counter-clockwise tilts the eye line by -10 degrees (y points down).
    # Haar eye boxes are coarse (a 1-2 px error over a 45 px eye distance is 1-3 degrees): measured -8.0.
    assert crop.angle - base == pytest.approx(-10, abs=3)
    assert abs(face_crop_for(crop.apply(turned), margin=0.0).angle) < abs(crop.angle)


def test_the_crop_is_one_transform_for_the_whole_clip(astronaut, monkeypatch):
    crop = face_crop_for(astronaut, size=(96, 96))
    plain = face_crop_for(astronaut, align=False)
    assert crop.apply(astronaut).shape == (96, 96, 3)
    # apply() never detects again: with the detector gone, later frames are still warped.
    monkeypatch.setattr(face, "detect_face", lambda image: pytest.fail("re-detected the face per frame"))
    shifted = np.roll(astronaut, 3, axis=1)  # the head moves 3 px right in a later frame
    a, b = (cv2.cvtColor(crop.apply(f), cv2.COLOR_RGB2GRAY).astype(np.float64) for f in (astronaut, shifted))
    # The output moves by the same affine map's linear part applied to (3, 0): the crop is not re-centred.
    expected = crop.matrix[:, :2] @ np.array([3.0, 0.0])
    window = cv2.createHanningWindow((96, 96), cv2.CV_64F)
    (dx, dy), _ = cv2.phaseCorrelate(a, b, window)
    assert (dx, dy) == pytest.approx(tuple(expected), abs=0.3)
    assert np.hypot(*expected) > 2  # a real move, not one the tolerance would hide
    # Without alignment and at the box's own size the warp is a pure crop: an exact 3 px shift.
    np.testing.assert_array_equal(plain.apply(shifted)[:, 3:], plain.apply(astronaut)[:, :-3])


def test_no_face_raises(astronaut):
    noise = np.random.default_rng(0).integers(0, 255, (200, 200), dtype=np.uint8)
    with pytest.raises(FaceNotFound, match="no frontal face"):
        face_crop_for(noise)


class _Photos:
    """Frames 1..3 of the astronaut, each moved one more pixel right."""

    frame_numbers = (1, 2, 3)

    def read(self, n: int) -> np.ndarray:
        return np.roll(data.astronaut(), n - 1, axis=1)

    def fingerprint(self) -> str:
        return "astronaut"


def test_face_crop_in_the_feature_spec():
    sample = Sample("x/s1/c1", "x", "x/s1", "c1", _Photos(), onset=1, apex=3, offset=3, emotion="e")
    spec = FeatureSpec(
        crop="face", crop_size=(112, 112), channels=("u", "v", "apex"), flow_method="farneback"
    )
    x = compute_features(sample, spec)
    assert x.shape == (3, 28, 28)
    assert 1.0 < np.median(x[0]) < 3.0  # ~2 px right at the crop's scale (112 / ~134)
    assert spec.key() != FeatureSpec(channels=("u", "v", "apex"), flow_method="farneback").key()

    class Noise(_Photos):
        def read(self, n):
            return np.random.default_rng(n).integers(0, 255, (100, 100), dtype=np.uint8)

    with pytest.raises(SampleError, match=r"x/s1/c1: no frontal face.*onset frame 1"):
        compute_features(Sample("x/s1/c1", "x", "x/s1", "c1", Noise(), 1, 3, 3, "e"), spec)
    with pytest.raises(ValueError, match="unknown crop"):
        FeatureSpec(crop="eyes")
