"""Spotting: where in a long video the micro- and macro-expressions are (onset, apex, offset, kind).

    config.py      SpotterConfig: every setting, in seconds and fractions, with where its default comes from
    regions.py     the facial regions watched (brows, cheeks, nose, mouth; not the eyes) as face-frame shares
    signal.py      the two-scale go-and-return motion signal from optical flow, head motion removed
    peaks.py       smoothing, the MEGC threshold, peaks and their intervals
    spotter.py     spot_frames (face frames) and spot_video (a LongVideo): detections and the signals
    detections.py  Detection, the record a spotter reports (and evaluation.spotting scores)

Names are loaded on first use, so `from spotting import Detection` does not import OpenCV.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Detection": "spotting.detections",
    "SpotterConfig": "spotting.config",
    "minimum_frames": "spotting.config",
    "Region": "spotting.regions",
    "FACE_REGIONS": "spotting.regions",
    "SpotResult": "spotting.spotter",
    "spot_frames": "spotting.spotter",
    "spot_video": "spotting.spotter",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'spotting' has no attribute {name!r}")
