"""Motion magnification before optical flow: the seed's first MER pre-processing step (spec models.md §10.5).

Micro-expressions move the face by a pixel or less; magnifying that motion before the flow is taken is the
"data magnification" step of the MER pipelines the seed describes (Li et al. 2017; Le Ngo et al. 2016/2018).
Two methods, one entry point (`magnify_clip`, or `MagnifySpec.apply`):

**Eulerian** (linear EVM for motion, Wu, Rubinstein, Shih, Guttag, Durand, Freeman, SIGGRAPH 2012), as in the
authors' `amplify_spatial_lpyr_temporal_{iir,ideal,butter}.m`:
  1. a Laplacian pyramid per frame (cv2.pyrDown / pyrUp; level 1 = finest band, level L = the low-pass
     residual; L by default as matlabPyrTools' `buildLpyr(..., 'auto')`: 1 + the number of halvings while
     the smaller side is at least the 5-tap filter);
  2. a temporal band-pass per pixel per level over the whole clip:
     - "iir": two first-order low-passes y[n] = r·x[n] + (1 - r)·y[n-1] with radii r1 > r2, band = y1 - y2;
       the radii are per frame, so their cut-offs in Hz scale with the fps (at 200 fps, r1 = 0.4 and
       r2 = 0.05 are about 16 Hz and 1.6 Hz; r2 = 0 makes y2 the onset itself: band = low-pass(r1) - onset);
     - "butterworth": first-order Butterworth low-pass at fh minus one at fl (Hz, at the clip's fps);
     - "ideal": FFT over time, frequencies fl <= |f| <= fh (Hz) kept, inverse FFT.
     IIR and Butterworth are causal and start in steady state at the first frame (the reference sets both
     low-passes to the first frame's pyramid), so the first (onset) frame comes out unchanged; the ideal
     filter sees the whole clip and shifts every frame, the onset included, by α times its departure from
     the clip's mean.
  3. level l is multiplied by α_l; the finest and the coarsest (residual) level by 0, as in the reference.
     The attenuation (paper §3.2, Fig. 6, and the reference code): a band of representative wavelength λ
     may be magnified only while (1 + α_l)·δ < λ/8, δ being the motion; the reference fixes
     δ = λ_c / 8 / (1 + α), the motion that α may magnify at the cut-off wavelength λ_c, so that
         α_l = min(α, λ_l / (8δ) - 1) = min(α, (1 + α)·λ_l/λ_c - 1)
     (full α at λ >= λ_c, ramped down linearly below it; clipped at 0 here, the code would go negative
     below λ_c / (1 + α)). λ_l, in pixels of the input frame, is the reference's: the coarsest level gets
     λ_L = √(H² + W²) / 3 ("3 is experimental constant"), and λ halves at each finer level,
     λ_l = λ_L / 2^(L - l). (It is not the diagonal of level l's own image / 3: it follows the frame's
     diagonal and the number of levels.) The reference code then multiplies (λ/8δ - 1) by an
     `exaggeration_factor` of 2 "to boost alpha above the bound we have in the paper (for better
     visualization)"; `exaggeration` (default 1, the paper's bound) reproduces it with 2.
     This λ_l is conservative: measured with sinusoidal gratings, level l of this pyramid holds most of
     the wavelengths around 3·2^l px (12, 24, 48 px for l = 2, 3, 4), while the reference assigns 170x140
     frames 4.6, 9.2, 18.4 px, 2.6 times less, so fine levels are attenuated more than the bound needs
     (which the reference's exaggeration of 2 partly undoes).
  4. the amplified bands are collapsed and added to the frame. Grey frames; for RGB the luminance
     (BT.601, as cv2 RGB2GRAY) is magnified and its change added to every channel, which is the reference's
     YIQ processing with chromAttenuation = 0.
  Deliberate differences from the reference code: the ideal filter keeps both the positive and the negative
  frequencies (the reference masks only the positive half and takes the real part, which halves the band's
  amplitude, so its ideal-filter α acts as α/2), and Butterworth cut-offs are in Hz (the reference's
  `butter(1, fl/samplingRate)` is normalised to Nyquist in MATLAB, so its cut-offs sit at half the Hz given).
  Validity: linear EVM is first order. For a sinusoid of wavelength λ moved by δ, the output moves by
  atan(θ)/θ · (1 + α)δ with θ = 2π(1 + α)δ/λ: 95 % of the intended motion at (1 + α)δ = λ/16, 85 % at the
  paper's bound λ/8; beyond it the band's intensity change saturates and clips instead of moving. Pick λ_c
  with (1 + α)·δ_max < λ_c / 8 for the largest motion δ_max that should be magnified fully.

**Lagrangian** (Le Ngo et al. 2018's global Lagrangian magnification, the seed's I_T = warp(I_R, σ(u, v))):
  flow d_k from the onset to each frame k (`preprocessing.flow.optical_flow`), amplified, and the onset warped
  by it. The flow convention is onset(x) ≈ frame_k(x + d_k(x)), so frame_k(y) ≈ onset(y - d_k(y)) and the
  magnified frame is a backward warp (cv2.remap, bicubic) that samples the onset at y - (1 + α)·d_k(y).
  `warp_from="frame"` instead samples frame k at y - α·d_k(y): the same motion to first order, frame k's own
  appearance kept, and α = 0 gives the clip back exactly (with "onset", α = 0 gives the onset warped by the
  measured flow, i.e. frame k up to the flow's error). The onset frame is returned as it is.

Cost (2-core CPU, a 40-frame 170x140 grey clip): Eulerian 20-40 ms per clip (ideal ~20, IIR ~30,
Butterworth ~40); Lagrangian ~5 ms per frame with DIS (0.2 s per clip), ~0.3 s per frame with TV-L1. The
warp uses cv2.remap, which places samples on a 1/32 px grid: at most 0.016 px of error in the magnified
motion, negligible against (1 + α)·d.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np
import scipy.fft

from preprocessing.flow import FLOW_METHODS, flow_parameters, optical_flow, to_gray

# Bump when MagnifySpec.apply changes what it produces for the same spec: it is in the cache key of every
# magnified feature (and of no other).
MAGNIFY_VERSION = 1

MAGNIFY_METHODS = ("eulerian", "lagrangian")
TEMPORAL_FILTERS = ("iir", "ideal", "butterworth")
WARP_SOURCES = ("onset", "frame")
FILTER_TAPS = 5  # cv2.pyrDown's 5x5 Gaussian, the reference's binom5: sets the automatic pyramid height
MIN_LEVELS = 3  # the finest and the coarsest level are never magnified: fewer levels would magnify nothing


def _number(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValueError(f"magnify {field} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"magnify {field} must be finite, got {value!r}")
    return value


def _choice(field: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown magnify {field} {value!r}; allowed: {', '.join(allowed)}")


def _flow_pairs(params: Any) -> tuple[tuple[str, Any], ...]:
    """A dict or (Hydra) list of pairs -> pairs sorted by name (hashable, order-free)."""
    items = params.items() if isinstance(params, Mapping) else params
    pairs = []
    for item in items:
        name, value = item
        if isinstance(value, np.generic):
            value = value.item()
        if not isinstance(value, bool | int | float | str):
            raise ValueError(f"magnify flow_params {name!r} must be a number or a string, got {value!r}")
        pairs.append((str(name), value))
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError(f"magnify flow_params names a parameter twice: {names}")
    return tuple(sorted(pairs))


@dataclass(frozen=True)
class MagnifySpec:
    """How a clip is magnified; every field hashable, values checked on construction (ValueError naming the
    field). See the module docstring for the methods.

    method: "eulerian" (linear EVM) or "lagrangian" (flow from the onset, amplified, warp).
    alpha: amplification, >= 0 (0: nothing magnified); the motion becomes (1 + alpha) times the original.
    Eulerian only:
      lambda_c: spatial cut-off wavelength in px of the input frames (> 0); bands below it are attenuated.
      temporal: "iir" (r1, r2: per-frame radii, 0 <= r2 < r1 <= 1), "ideal" or "butterworth" (fl, fh in Hz
          at the clip's fps, 0 < fl < fh; Butterworth also needs fh < fps / 2).
      levels: pyramid levels including the residual (>= 3), or None for the reference's automatic height.
      exaggeration: factor on the attenuated alpha below lambda_c (1 = the paper's bound, 2 = the reference
          code's `exaggeration_factor`); alpha itself stays the cap.
    Lagrangian only:
      flow_method / flow_params: the flow from the onset to each frame (preprocessing.flow); DIS by default,
          since one flow per frame is needed (with the warp ~5 ms per 170x140 frame; TV-L1 ~0.3 s).
      warp_from: "onset" (the seed's warp of the reference frame) or "frame" (frame k warped by alpha·d).
    """

    method: str = "eulerian"
    alpha: float = 10.0
    lambda_c: float = 16.0
    temporal: str = "iir"
    r1: float = 0.4
    r2: float = 0.05
    fl: float = 0.5
    fh: float = 10.0
    levels: int | None = None
    exaggeration: float = 1.0
    flow_method: str = "dis"
    flow_params: tuple[tuple[str, Any], ...] = ()
    warp_from: str = "onset"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        _choice("method", self.method, MAGNIFY_METHODS)
        _choice("temporal", self.temporal, TEMPORAL_FILTERS)
        _choice("warp_from", self.warp_from, WARP_SOURCES)
        for name in ("alpha", "lambda_c", "r1", "r2", "fl", "fh", "exaggeration"):
            set_(self, name, _number(name, getattr(self, name)))
        if self.alpha < 0:
            raise ValueError(f"magnify alpha must be >= 0, got {self.alpha}")
        if self.lambda_c <= 0:
            raise ValueError(f"magnify lambda_c must be > 0 (a wavelength in px), got {self.lambda_c}")
        if self.exaggeration < 0:
            raise ValueError(f"magnify exaggeration must be >= 0, got {self.exaggeration}")
        if not 0 < self.r1 <= 1:
            raise ValueError(f"magnify r1 must be in (0, 1], got {self.r1}")
        if not 0 <= self.r2 < self.r1:
            raise ValueError(f"magnify r2 must be in [0, r1) = [0, {self.r1}), got {self.r2}")
        if self.fl <= 0:
            raise ValueError(f"magnify fl must be > 0 Hz (0 would magnify the still image), got {self.fl}")
        if self.fh <= self.fl:
            raise ValueError(f"magnify fh must be above fl = {self.fl} Hz, got {self.fh}")
        if self.levels is not None:
            if (
                isinstance(self.levels, bool)
                or not isinstance(self.levels, int | float | np.number)
                or not float(self.levels).is_integer()
            ):
                raise ValueError(f"magnify levels must be an integer or None, got {self.levels!r}")
            set_(self, "levels", int(self.levels))
            if self.levels < MIN_LEVELS:
                raise ValueError(
                    f"magnify levels must be >= {MIN_LEVELS} (the finest and the coarsest level are never "
                    f"magnified), got {self.levels}"
                )
        _choice("flow_method", self.flow_method, FLOW_METHODS)
        set_(self, "flow_params", _flow_pairs(self.flow_params))
        try:  # names and types now, not at the first clip of a long run
            flow_parameters(self.flow_method, dict(self.flow_params))
        except ValueError as error:
            raise ValueError(f"magnify flow_params: {error}") from error

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> MagnifySpec:
        """A spec from a dict or a Hydra DictConfig of its fields; an unknown name is a ValueError."""
        names = [field.name for field in fields(cls)]
        unknown = [str(name) for name in settings if name not in names]
        if unknown:
            raise ValueError(
                f"unknown magnify field(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(names)}"
            )
        return cls(**{str(name): value for name, value in settings.items()})

    def describe(self) -> dict[str, Any]:
        """The settings in effect for this method (JSON-able): what a feature cache key records. Fields the
        method ignores are left out, so changing them does not invalidate a cache."""
        record: dict[str, Any] = {"version": MAGNIFY_VERSION, "method": self.method, "alpha": self.alpha}
        if self.method == "eulerian":
            record |= {
                "lambda_c": self.lambda_c,
                "levels": self.levels,
                "exaggeration": self.exaggeration,
                "temporal": self.temporal,
            }
            if self.temporal == "iir":
                record |= {"r1": self.r1, "r2": self.r2}
            else:
                record |= {"fl": self.fl, "fh": self.fh}
        else:
            record["warp_from"] = self.warp_from
            record["flow"] = flow_parameters(self.flow_method, dict(self.flow_params))
        return record

    def apply(self, frames: Sequence[np.ndarray], fps: float) -> list[np.ndarray]:
        """The clip magnified; see `magnify_clip`."""
        frames = [np.asarray(frame) for frame in frames]
        if not frames:
            return []
        shapes = {frame.shape for frame in frames}
        if len(shapes) != 1:
            raise ValueError(f"frames differ in shape: {sorted(shapes)}")
        dtypes = {frame.dtype for frame in frames}
        if len(dtypes) != 1:
            raise ValueError(f"frames differ in dtype: {sorted(map(str, dtypes))}")
        fps = _number("fps", fps)
        if fps <= 0:
            raise ValueError(f"magnify fps must be > 0, got {fps}")
        if self.method == "eulerian":
            return _eulerian(frames, self, fps)
        return _lagrangian(frames, self)


def magnify_clip(
    frames: Sequence[np.ndarray], method: str = "eulerian", fps: float = 200.0, **params: Any
) -> list[np.ndarray]:
    """Magnify the motion of a clip (onset first, frames in time order at `fps`).

    frames: uint8 (H, W) grey or (H, W, 3) RGB, or float in [0, 1] with those shapes; all alike.
    method / params: the fields of `MagnifySpec` (alpha, lambda_c, temporal, r1, r2, fl, fh, levels,
        exaggeration, flow_method, flow_params, warp_from).
    Returns as many frames, same shape; uint8 in -> uint8 out (rounded), float in -> float32 out, both
    clipped to the input's range ([0, 255] / [0, 1]).
    """
    return MagnifySpec(method=method, **params).apply(frames, fps)


# ---------------------------------------------------------------------------------------------------------
# Eulerian


def pyramid_levels(height: int, width: int) -> int:
    """The reference's automatic Laplacian pyramid height (matlabPyrTools buildLpyr 'auto', 5-tap filter):
    1 + the number of times the smaller side can be halved while it is at least FILTER_TAPS. 170x140 -> 6."""
    size, halvings = min(height, width), 0
    while size >= FILTER_TAPS:
        halvings += 1
        size //= 2
    return 1 + halvings


def laplacian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """float32 (H, W) -> `levels` arrays, finest band first, the low-pass residual last; exact inverse:
    `collapse_pyramid`."""
    bands, current = [], image
    for _ in range(levels - 1):
        down = cv2.pyrDown(current)
        bands.append(current - cv2.pyrUp(down, dstsize=(current.shape[1], current.shape[0])))
        current = down
    bands.append(current)
    return bands


def collapse_pyramid(bands: Sequence[np.ndarray]) -> np.ndarray:
    """Inverse of `laplacian_pyramid`."""
    image = bands[-1]
    for band in reversed(bands[:-1]):
        image = band + cv2.pyrUp(image, dstsize=(band.shape[1], band.shape[0]))
    return image


def level_alphas(
    height: int,
    width: int,
    levels: int,
    alpha: float,
    lambda_c: float,
    exaggeration: float = 1.0,
) -> list[float]:
    """Amplification per pyramid level, finest first (the reference's attenuation, module docstring):
    0 for the finest and the coarsest level; else min(alpha, max(0, exaggeration·(λ_l / (8δ) - 1))) with
    δ = lambda_c / 8 / (1 + alpha), λ_coarsest = √(H² + W²) / 3 and λ halving at each finer level."""
    delta = lambda_c / 8 / (1 + alpha)
    coarsest = math.hypot(height, width) / 3
    alphas = []
    for level in range(levels):  # 0 = finest
        if level in (0, levels - 1):
            alphas.append(0.0)
            continue
        wavelength = coarsest / 2 ** (levels - 1 - level)
        alphas.append(min(alpha, max(0.0, exaggeration * (wavelength / (8 * delta) - 1))))
    return alphas


def _first_order(b: np.ndarray, a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """First-order causal filter along axis 0, started as if x[0] had always been the input, which is how the
    reference starts (both low-passes set to the first frame). The steady state of lfilter's one delay is
    (b1 - a1)·x0; computed directly because lfilter_zi fails for a pole at 1 (r = 0)."""
    from scipy import signal  # here, not at the top: importing scipy.signal takes about a second

    b = np.pad(np.asarray(b, dtype=np.float64), (0, 2 - len(b)))
    state = (b[1] - a[1]) * x[:1]
    return signal.lfilter(b, a, x, axis=0, zi=state)[0]


def temporal_filter(
    stack: np.ndarray,
    kind: str,
    fps: float,
    r1: float = 0.4,
    r2: float = 0.05,
    fl: float = 0.5,
    fh: float = 10.0,
) -> np.ndarray:
    """The band-passed signal of `stack` along axis 0 (time): same shape and float dtype.

    kind "iir": low-pass(r1) - low-pass(r2), per-frame radii; "butterworth": first-order Butterworth low-pass
    at fh minus one at fl (Hz); "ideal": only the frequencies fl <= |f| <= fh (Hz) kept. Raises ValueError
    when the band cannot be realised at this fps / clip length.
    """
    stack = np.asarray(stack)
    if not np.issubdtype(stack.dtype, np.floating):
        stack = stack.astype(np.float32)
    if kind == "iir":
        radii = []
        for r in (r1, r2):
            radii.append(_first_order(np.array([r]), np.array([1.0, r - 1.0]), stack))
        return (radii[0] - radii[1]).astype(stack.dtype, copy=False)
    if kind == "butterworth":
        if fh >= fps / 2:
            raise ValueError(f"magnify fh = {fh} Hz must be below the Nyquist frequency {fps / 2} Hz")
        from scipy import signal

        lows = []
        for cutoff in (fh, fl):
            b, a = signal.butter(1, cutoff, btype="low", fs=fps)
            lows.append(_first_order(b, a, stack))
        return (lows[0] - lows[1]).astype(stack.dtype, copy=False)
    if kind == "ideal":
        n = stack.shape[0]
        freqs = np.fft.rfftfreq(n, d=1 / fps)
        keep = (freqs >= fl) & (freqs <= fh)
        if not keep.any():
            raise ValueError(
                f"no frequency of a {n}-frame clip at {fps:g} fps lies in [fl, fh] = [{fl:g}, {fh:g}] Hz "
                f"(its frequencies are multiples of {fps / n:g} Hz up to {fps / 2:g} Hz)"
            )
        spectrum = scipy.fft.rfft(stack, axis=0)
        spectrum *= keep.reshape((-1,) + (1,) * (stack.ndim - 1))
        return scipy.fft.irfft(spectrum, n=n, axis=0).astype(stack.dtype, copy=False)
    raise ValueError(f"unknown magnify temporal filter {kind!r}; allowed: {', '.join(TEMPORAL_FILTERS)}")


def _to_float(frame: np.ndarray) -> np.ndarray:
    """float32 in [0, 1], channels kept (to_gray's checks of range and dtype, without going grey)."""
    if frame.dtype == np.uint8:
        return frame.astype(np.float32) / np.float32(255)
    to_gray(frame)  # raises for a bad shape, dtype or a 0..255 float frame
    return frame.astype(np.float32)


def _from_float(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    image = np.clip(image, 0, 1)
    if dtype == np.uint8:
        return np.rint(image * 255).astype(np.uint8)
    return image.astype(np.float32, copy=False)


def _eulerian(frames: list[np.ndarray], spec: MagnifySpec, fps: float) -> list[np.ndarray]:
    height, width = frames[0].shape[:2]
    levels = spec.levels or pyramid_levels(height, width)
    if levels < MIN_LEVELS or min(height, width) < 2 ** (levels - 1):
        raise ValueError(
            f"a {height}x{width} frame cannot hold a {levels}-level pyramid with a magnified level "
            f"(at least {MIN_LEVELS} levels, the coarsest one at least 1 px)"
        )
    alphas = level_alphas(height, width, levels, spec.alpha, spec.lambda_c, spec.exaggeration)
    if len(frames) < 2 or not any(alphas):
        return [frame.copy() for frame in frames]
    grey = np.stack([to_gray(frame) for frame in frames])
    pyramids = [laplacian_pyramid(image, levels) for image in grey]
    amplified: dict[int, np.ndarray] = {}
    for level, level_alpha in enumerate(alphas):
        if level_alpha:
            stack = np.stack([pyramid[level] for pyramid in pyramids])
            band = temporal_filter(stack, spec.temporal, fps, spec.r1, spec.r2, spec.fl, spec.fh)
            amplified[level] = band * np.float32(level_alpha)
    out = []
    for index, frame in enumerate(frames):
        bands = [
            amplified[level][index] if level in amplified else np.zeros_like(pyramids[index][level])
            for level in range(levels)
        ]
        change = collapse_pyramid(bands)
        image = _to_float(frame)
        if image.ndim == 3:
            # Equal change in R, G, B changes only the luminance: YIQ with chromAttenuation = 0.
            change = change[..., None]
        out.append(_from_float(image + change, frame.dtype))
    return out


# ---------------------------------------------------------------------------------------------------------
# Lagrangian


def _lagrangian(frames: list[np.ndarray], spec: MagnifySpec) -> list[np.ndarray]:
    onset = frames[0]
    if spec.warp_from == "frame" and spec.alpha == 0:
        return [frame.copy() for frame in frames]
    height, width = onset.shape[:2]
    grid_y, grid_x = np.mgrid[0:height, 0:width].astype(np.float32)
    onset_float = _to_float(onset)
    params = dict(spec.flow_params)
    out = [onset.copy()]
    for frame in frames[1:]:
        u, v = optical_flow(onset, frame, spec.flow_method, params)
        if spec.warp_from == "onset":
            source, gain = onset_float, np.float32(1 + spec.alpha)
        else:
            source, gain = _to_float(frame), np.float32(spec.alpha)
        # Backward warp: onset(x) ≈ frame(x + d(x)), so the motion (1 + α)·d means sampling at y - (1 + α)·d.
        warped = cv2.remap(
            source, grid_x - gain * u, grid_y - gain * v, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101
        )
        out.append(_from_float(warped, frame.dtype))
    return out
