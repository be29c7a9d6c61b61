"""Face detection, in-plane alignment and cropping for databases used uncropped (specs/models.md 10.8).

The crop is computed ONCE per clip, on the onset frame, and the same affine transform is applied to every
frame. Re-detecting per frame would move the box by a pixel or two from frame to frame, and optical flow
would read that jitter as facial motion larger than the micro-expression itself.
Detectors are OpenCV's bundled Haar cascades (offline; no model download).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from preprocessing.flow import to_gray

# Haar settings: scale step 1.1 and 5 neighbours is OpenCV's documented trade-off; faces under 1/5 of the
# shorter image side are ignored (these databases film one face filling most of the frame).
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 5
MIN_FACE_FRACTION = 0.2


class FaceNotFound(RuntimeError):
    """No face was detected on the frame the crop is computed from."""


@dataclass(frozen=True)
class FaceBox:
    x: int
    y: int
    w: int
    h: int


@lru_cache(maxsize=2)
def _cascade(name: str) -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    if cascade.empty():
        raise RuntimeError(f"OpenCV Haar cascade {name} is missing from {cv2.data.haarcascades}")
    return cascade


def _gray_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(to_gray(image) * 255), 0, 255).astype(np.uint8)


def detect_face(image: np.ndarray) -> FaceBox | None:
    """The largest frontal face (Haar), or None."""
    gray = _gray_uint8(image)
    side = int(min(gray.shape) * MIN_FACE_FRACTION)
    found = _cascade("haarcascade_frontalface_default.xml").detectMultiScale(
        gray, scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBORS, minSize=(side, side)
    )
    if len(found) == 0:
        return None
    x, y, w, h = max(found, key=lambda b: b[2] * b[3])
    return FaceBox(int(x), int(y), int(w), int(h))


def detect_eyes(image: np.ndarray, box: FaceBox) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """Centres (x, y) of the image-left and image-right eye inside the upper half of `box`, or None."""
    gray = _gray_uint8(image)
    top = gray[box.y : box.y + box.h // 2, box.x : box.x + box.w]
    found = _cascade("haarcascade_eye.xml").detectMultiScale(
        top, scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBORS, minSize=(box.w // 10, box.w // 10)
    )
    if len(found) < 2:
        return None
    # The two largest detections, ordered left to right in the image.
    two = sorted(sorted(found, key=lambda b: b[2] * b[3])[-2:], key=lambda b: b[0])
    (lx, ly, lw, lh), (rx, ry, rw, rh) = two
    left = (box.x + lx + lw / 2, box.y + ly + lh / 2)
    right = (box.x + rx + rw / 2, box.y + ry + rh / 2)
    if abs(right[0] - left[0]) < box.w / 6:  # one eye detected twice
        return None
    return left, right


@dataclass(frozen=True)
class FaceCrop:
    """One clip's alignment and crop: rotate about the face centre by `angle` degrees (levelling the eye
    line), then cut `box` (x, y, w, h in the rotated image) and resize to `size` (W, H)."""

    angle: float
    center: tuple[float, float]
    box: tuple[int, int, int, int]
    size: tuple[int, int]

    @property
    def matrix(self) -> np.ndarray:
        """The 2x3 affine map from source pixels to output pixels."""
        rotate = np.vstack([cv2.getRotationMatrix2D(self.center, self.angle, 1.0), [0, 0, 1]])
        x, y, w, h = self.box
        sx, sy = self.size[0] / w, self.size[1] / h
        crop = np.array([[sx, 0, -x * sx], [0, sy, -y * sy], [0, 0, 1]])
        return (crop @ rotate)[:2]

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """The same warp for every frame of the clip; output (H, W[, C]) of the input's dtype."""
        return cv2.warpAffine(
            frame, self.matrix, self.size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )


def face_crop_for(
    onset_frame: np.ndarray, margin: float = 0.1, size: tuple[int, int] | None = None, align: bool = True
) -> FaceCrop:
    """Compute a clip's crop from its onset frame. `size` is (W, H); None keeps the box's own size."""
    box = detect_face(onset_frame)
    if box is None:
        h, w = onset_frame.shape[:2]
        raise FaceNotFound(f"no frontal face found by the Haar cascade in a {w}x{h} frame")
    angle = 0.0
    eyes = detect_eyes(onset_frame, box) if align else None
    if eyes is not None:
        (lx, ly), (rx, ry) = eyes
        angle = math.degrees(math.atan2(ry - ly, rx - lx))
    center = (box.x + box.w / 2, box.y + box.h / 2)
    mx, my = int(round(box.w * margin)), int(round(box.h * margin))
    crop_box = (box.x - mx, box.y - my, box.w + 2 * mx, box.h + 2 * my)
    out = tuple(size) if size is not None else (crop_box[2], crop_box[3])
    return FaceCrop(angle=angle, center=center, box=crop_box, size=(int(out[0]), int(out[1])))
