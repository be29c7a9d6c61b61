"""Every setting of the spotter, in one frozen dataclass with real defaults, in seconds and fractions.

No setting is a frame count: each duration is converted at the video's frame rate (`frames_at`), so one
config spots a 30 fps CAS(ME)^2 video and a 200 fps SAMM long video alike.

Where the defaults come from (real recordings, not the synthetic generator):
* micro_window 0.4 s: the motion signal compares each frame with the frames one window before and after
  it (spotting/signal.py). A movement that goes and comes back within 2 windows shows at full strength,
  and its edges are measured right while the window is at least 3/4 of its length; micro-expressions last
  0.2-0.5 s onset to offset (CASME II, SAMM, CAS(ME)^2: mean ~0.3-0.4 s), so 0.4 s covers them while
  keeping the window short enough that neighbouring movements rarely fall in it. MEGC baselines choose
  k = half the mean expression length for the same job (SoftNet: 6 frames at 30 fps, 37 at 200 fps).
* macro_window 2.0 s: macro-expressions last 0.5-4 s (mean ~1.2-1.7 s in CAS(ME)^2 and SAMM long videos);
  a 2 s window sees every one up to 4 s, and measures the edges of those up to ~2.7 s.
* threshold_p 0.25, macro_threshold_p 0.3: the MEGC threshold mean + p (max - mean) over the video's
  signal (Moilanen et al. 2014, used by LTP-ML, MDMD and SoftNet), p chosen per database in the papers
  within 0.01-0.6; 0.25 keeps micro-expressions down to about a quarter of the video's strongest one
  (apex amplitudes of one person's micro-expressions span about 4x), 0.3 a third of the strongest macro.
* min_peak_ratio 3, macro_min_peak_ratio 6: a peak must also reach this many times the video's quiet level
  (its signal's 25th percentile, spotting/peaks.py), so a video without any expression does not report its
  largest noise peak as one. On still synthetic faces (sensor noise, the light drifting by 3 %) the largest
  peak of 12 s was 1.6-2.0x the quiet level on the micro scale and up to 4.4x on the macro scale, where a
  slow swing of the light reads as a slow go-and-return of a few hundredths of a pixel; macro-expressions
  peaked at 9x or more.
* smooth_seconds 0.04: a Gaussian of sigma 0.04 s (FWHM 0.09 s) averages 2-3 frames at 30 fps and stays
  under the half-height width of the shortest micro-expression (0.1 s for 0.2 s onset to offset).
* head_leak 0.05, blink_leak 0.3: what a movement the spotter does not want leaks into the regions it
  watches is taken off them (spotting/spotter.py `without_leaks`). Optical flow misses a few per cent of a
  moving face's displacement (DIS: 3.5 % of a synthetic 3 px head move and back), which after the head's
  motion is removed is left as a small go-and-return of its own; a blink leaks 15-35 % of the eyes' signal
  into the cheeks and brows on the synthetic faces (a closing lid drags skin; the flow's patches are
  several pixels wide). A brow-raising micro-expression moves the eyes about as much as the brows, so at
  0.3 it keeps ~95 % of its signal.
* max_analysis_fps 60: the signal is computed on every s-th frame, s = ceil(fps / 60). A micro-expression
  keeps 10-30 analysed frames at 50-60 fps, enough to place its edges to a frame or two of the original;
  a 200 fps video costs a quarter of its frames (and the optical flow of a quarter).
* face_height 128 px, cell_px 4: faces are resized to 128 px high, and flow is averaged over 4x4 px cells
  (a 32 x ~26 grid) before anything else: action units move patches of skin a few millimetres wide.
  At 128 px a micro-expression of 0.3-1 px in a 280 px CASME II face is 0.15-0.5 px, within DIS's reach
  (preprocessing/flow.py measured 0.03-0.04 px end-point error for sub-pixel shifts at the medium preset).
* flow "dis": DIS (Kroeger et al. 2016) at its medium preset, with mean normalisation of its patches, so
  the slow drift of the light in a long recording is not read as motion; preprocessing/flow.py measured
  its end-point error on sub-pixel shifts at 0.03-0.04 px. Farneback ("farneback") costs about the same
  at this size (benchmarks/spotting_speed.py); TV-L1 costs 25-250 ms a pair (preprocessing/flow.py), which
  at two flows per analysed frame and 3600 analysed frames a minute is hours per minute of video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from spotting.regions import FACE_REGIONS, Region, as_region

FLOWS = ("dis", "farneback")
HEAD_MOTION = ("affine", "translation", "none")
FACE_MODES = ("detect", "full")


@dataclass(frozen=True)
class SpotterConfig:
    """The spotter's settings; durations in seconds, sizes in working pixels, shares as fractions."""

    # --- motion signal (spotting/signal.py) ---
    face_height: int = 128  # the face frame is resized to this height (px); width keeps the aspect
    cell_px: int = 4  # flow is averaged over cells of cell_px x cell_px working pixels
    blur_sigma: float = 1.0  # Gaussian blur of each frame before flow, working px (sensor noise)
    flow: str = "dis"  # dis | farneback
    max_analysis_fps: float = 60.0  # frames are analysed at most this often
    micro_window: float = 0.4  # s: the micro scale's comparison distance
    macro_window: float = 2.0  # s: the macro scale's comparison distance
    head_motion: str = "affine"  # global motion removed from every flow: affine | translation | none
    head_leak: float = 0.05  # share of the head's own go-and-return taken off every region (flow error)
    blink_leak: float = 0.3  # share of the eye band's go-and-return taken off every region (blinks)
    border: float = 0.06  # share of each side of the face frame left out (crop edge)
    regions: tuple[Region, ...] = FACE_REGIONS  # spotting/regions.py
    locate_eyes: bool = True  # move the regions to the eye line the Haar eye cascade finds (if it does)
    # --- peaks and intervals (spotting/peaks.py) ---
    smooth_seconds: float = 0.04  # Gaussian smoothing of the signal (sigma)
    threshold_p: float = 0.25  # micro scale: threshold = mean + p * (max - mean)
    macro_threshold_p: float = 0.3  # macro scale, the same rule
    min_peak_ratio: float = 3.0  # and a peak at least this many times the video's quiet level
    macro_min_peak_ratio: float = 6.0  # the same on the macro scale
    edge_level: float = (
        0.5  # an interval's edges are measured where the signal crosses this share of its peak
    )
    edge_extend: float = 1.0  # ... and lie this many times that point's distance from the peak beyond it
    # --- face crop of spot_video (spotting/spotter.py) ---
    face: str = "detect"  # detect: Haar face on the first frame, one crop for the video | full: whole frame
    face_margin: float = 0.1  # margin added around the detected face box, share of its size

    def __post_init__(self) -> None:
        object.__setattr__(self, "regions", tuple(as_region(r) for r in self.regions))
        if self.flow not in FLOWS:
            raise ValueError(f"spotter flow {self.flow!r}: choose from {', '.join(FLOWS)}")
        if self.head_motion not in HEAD_MOTION:
            raise ValueError(
                f"spotter head_motion {self.head_motion!r}: choose from {', '.join(HEAD_MOTION)}"
            )
        if self.face not in FACE_MODES:
            raise ValueError(f"spotter face {self.face!r}: choose from {', '.join(FACE_MODES)}")
        if self.face_height < 32 or self.cell_px < 1 or self.face_height < 8 * self.cell_px:
            raise ValueError(
                f"spotter face_height {self.face_height} px and cell_px {self.cell_px}: need a face of at "
                "least 32 px and at least 8 cells across it"
            )
        positive = ("max_analysis_fps", "micro_window", "macro_window")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"spotter {name} must be positive, got {getattr(self, name)}")
        if self.macro_window < self.micro_window:
            raise ValueError(
                f"spotter macro_window {self.macro_window} s is shorter than micro_window "
                f"{self.micro_window} s"
            )
        for name in ("threshold_p", "macro_threshold_p", "edge_level"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"spotter {name} must be in [0, 1), got {getattr(self, name)}")
        for name in (
            "blur_sigma",
            "smooth_seconds",
            "min_peak_ratio",
            "macro_min_peak_ratio",
            "edge_extend",
            "face_margin",
            "head_leak",
            "blink_leak",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"spotter {name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.border < 0.25:
            raise ValueError(f"spotter border must be in [0, 0.25), got {self.border}")
        if not self.regions:
            raise ValueError("spotter regions: at least one region is needed")

    def stride(self, fps: float) -> int:
        """Every stride-th frame is analysed: ceil(fps / max_analysis_fps), at least 1."""
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        return max(1, math.ceil(fps / self.max_analysis_fps - 1e-9))

    def analysis_fps(self, fps: float) -> float:
        return fps / self.stride(fps)

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["regions"] = [
            {"name": r.name, "top": r.top, "bottom": r.bottom, "left": r.left, "right": r.right}
            for r in self.regions
        ]
        return out


def frames_at(seconds: float, fps: float, minimum: int = 1) -> int:
    """A duration as a whole number of frames at `fps` (rounded), at least `minimum`."""
    return max(minimum, int(round(seconds * fps)))


def minimum_frames(fps: float, config: SpotterConfig | None = None) -> int:
    """The fewest frames a video (or shot) needs to be spotted: one micro window on each side of a frame."""
    config = config or SpotterConfig()
    stride = config.stride(fps)
    return 2 * frames_at(config.micro_window, fps / stride) * stride + 1
