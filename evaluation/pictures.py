"""Pictures of what a network was given for one sample: its onset and apex frames, the flow as a colour
wheel, the optical strain and the onset→apex difference, as RGB arrays, PNG files and one combined panel.

The maps come from the training pipeline itself (`preprocessing.features.compute_features_with_info`, with
the run's spec: same frames, face crop, magnification, flow method and parameters, strain scheme and input
size), so a picture of the flow is the u, v the network read, at its input size (28x28 for STSTNet),
enlarged by whole pixels (nearest neighbour) to a readable size rather than smoothed into something finer
than the network saw. The frames and their difference are shown at the source (or face-crop) resolution.

Flow colours (the convention of OpenCV's dense-flow tutorial, used by most MER code): hue is the direction
of (u, v) in image coordinates, atan2(v, u) with y pointing down, so red = rightwards (+u), 90° (yellow-
green) = downwards (+v), cyan = leftwards, 270° (violet) = upwards; value (brightness) is the magnitude
over the picture's scale, so a still pixel is black; saturation is 1. The legend wheel is drawn by the same
function: a pixel that moved towards a point of the wheel has that point's colour.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from datamodules.samples import Sample
from preprocessing.features import FeatureSpec, compute_features_with_info, frame_number
from utils.atomic import atomic_write_bytes

# A map or frame is enlarged by a whole factor until its shorter side is at least this many pixels.
READABLE_SIDE = 256
# Larger frames (uncropped HD video) are reduced to fit this, so a page or a panel stays light.
LARGEST_SIDE = 768
# Colour scales are set by this percentile of the values, not their maximum: one wild pixel at a face's
# edge would otherwise turn the rest of the picture black.
SCALE_PERCENTILE = 99.0
# Text and background of the legend strips.
_BACKGROUND = 255
_INK = (40, 40, 40)


def robust_scale(values: np.ndarray, percentile: float = SCALE_PERCENTILE) -> float:
    """The `percentile` of |values| (finite ones), or 1e-6 when all are (nearly) zero: a colour scale."""
    finite = np.abs(np.asarray(values, dtype=np.float64))
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 1e-6
    return max(float(np.percentile(finite, percentile)), 1e-6)


def flow_scale(u: np.ndarray, v: np.ndarray) -> float:
    """Magnitude (px) that maps to full brightness: the SCALE_PERCENTILE of √(u² + v²)."""
    return robust_scale(np.hypot(u, v))


def flow_to_rgb(u: np.ndarray, v: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Flow (u, v), float (H, W) each in px, as an RGB uint8 (H, W, 3) picture (see the module docstring).

    max_magnitude: the magnitude drawn at full brightness (larger ones are clipped to it); None takes
    `flow_scale(u, v)`. Hue in degrees is atan2(v, u) mod 360, value = min(1, |(u, v)| / max_magnitude).
    """
    u = np.asarray(u, dtype=np.float32)
    v = np.asarray(v, dtype=np.float32)
    if u.ndim != 2 or u.shape != v.shape:
        raise ValueError(f"u and v must be (H, W) arrays of one shape, got {u.shape} and {v.shape}")
    scale = flow_scale(u, v) if max_magnitude is None else float(max_magnitude)
    if not scale > 0:
        raise ValueError(f"max_magnitude must be positive, got {max_magnitude!r}")
    finite = np.isfinite(u) & np.isfinite(v)
    u, v = np.where(finite, u, 0), np.where(finite, v, 0)
    hue = np.degrees(np.arctan2(v, u)) % 360.0
    value = np.clip(np.hypot(u, v) / scale, 0.0, 1.0)
    hsv = np.stack([hue, np.ones_like(hue), value], axis=-1).astype(np.float32)
    # OpenCV's float HSV: H in [0, 360), S and V in [0, 1].
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


def color_wheel(size: int = 64) -> np.ndarray:
    """The legend: RGB uint8 (size, size, 3), each pixel of the disc coloured as a flow pointing from the
    centre to it (its distance over the radius as magnitude); white outside the disc."""
    if size < 3:
        raise ValueError(f"a colour wheel needs at least 3 pixels, got {size}")
    centre = (size - 1) / 2
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = xx - centre, yy - centre
    radius = size / 2
    wheel = flow_to_rgb(dx, dy, max_magnitude=radius)
    wheel[np.hypot(dx, dy) > radius] = _BACKGROUND
    return wheel


def strain_to_rgb(strain: np.ndarray, max_strain: float | None = None) -> np.ndarray:
    """Optical strain (H, W), dimensionless, as RGB uint8 (H, W, 3) on the inferno colour map: 0 black,
    `max_strain` (default `robust_scale(strain)`) and above pale yellow."""
    strain = np.nan_to_num(np.asarray(strain, dtype=np.float32))
    if strain.ndim != 2:
        raise ValueError(f"strain must be an (H, W) array, got shape {strain.shape}")
    scale = robust_scale(strain) if max_strain is None else float(max_strain)
    level = np.clip(np.rint(strain / scale * 255), 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(level, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def difference_gain(onset: np.ndarray, apex: np.ndarray) -> float:
    """How much `difference_to_rgb` magnifies apex - onset: half the grey range over its robust scale."""
    return 0.5 / robust_scale(np.asarray(apex, np.float32) - np.asarray(onset, np.float32))


def difference_to_rgb(onset: np.ndarray, apex: np.ndarray, gain: float | None = None) -> np.ndarray:
    """apex - onset, grey frames (H, W) in [0, 1], contrast-stretched: mid-grey where nothing changed,
    brighter where the apex is brighter; grey = 0.5 + gain * difference, clipped, as RGB uint8 (H, W, 3).
    gain: None takes `difference_gain` (the SCALE_PERCENTILE of |difference| reaches black or white)."""
    onset = np.asarray(onset, dtype=np.float32)
    apex = np.asarray(apex, dtype=np.float32)
    if onset.shape != apex.shape or onset.ndim != 2:
        raise ValueError(
            f"onset and apex must be grey (H, W) frames of one shape: {onset.shape}, {apex.shape}"
        )
    gain = difference_gain(onset, apex) if gain is None else float(gain)
    grey = np.clip(np.rint((0.5 + gain * (apex - onset)) * 255), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def grey_to_rgb(frame: np.ndarray) -> np.ndarray:
    """A grey frame (H, W) in [0, 1] as RGB uint8 (H, W, 3)."""
    grey = np.clip(np.rint(np.asarray(frame, dtype=np.float32) * 255), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def readable_factor(height: int, width: int, side: int = READABLE_SIDE) -> int:
    """The whole factor that brings the shorter side of a (height, width) picture to at least `side`."""
    return max(1, math.ceil(side / max(1, min(height, width))))


def readable(image: np.ndarray, side: int = READABLE_SIDE, largest: int = LARGEST_SIDE) -> np.ndarray:
    """`image` (H, W, 3) enlarged by `readable_factor` whole pixels (nearest neighbour: every pixel of the
    map stays a visible square), or reduced (area average) when its longer side exceeds `largest`."""
    height, width = image.shape[:2]
    factor = readable_factor(height, width, side)
    if factor > 1:
        return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
    if max(height, width) > largest:
        ratio = largest / max(height, width)
        size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image


def with_legend(image: np.ndarray, legend: np.ndarray | None, lines: Sequence[str]) -> np.ndarray:
    """`image` (H, W, 3) with a white strip on its right: `legend` at its top, then a line of text each."""
    height = image.shape[0]
    font, font_scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1
    line_height = 16
    text_width = max([cv2.getTextSize(t, font, font_scale, thickness)[0][0] for t in lines] or [0])
    legend_h, legend_w = legend.shape[:2] if legend is not None else (0, 0)
    pad = 8
    strip_w = max(legend_w, text_width) + 2 * pad
    strip_h = max(height, legend_h + pad * 2 + line_height * len(lines))
    strip = np.full((strip_h, strip_w, 3), _BACKGROUND, dtype=np.uint8)
    if legend is not None:
        left = (strip_w - legend_w) // 2
        strip[pad : pad + legend_h, left : left + legend_w] = legend
    for i, text in enumerate(lines):
        baseline = pad + legend_h + pad + line_height * (i + 1) - 4
        cv2.putText(strip, text, (pad, baseline), font, font_scale, _INK, thickness, cv2.LINE_AA)
    out = np.full((strip_h, image.shape[1] + strip_w, 3), _BACKGROUND, dtype=np.uint8)
    out[:height, : image.shape[1]] = image
    out[:, image.shape[1] :] = strip
    return out


def strain_bar(height: int, width: int = 14) -> np.ndarray:
    """A vertical inferno colour bar (height, width, 3): the scale's top at the top, 0 at the bottom."""
    ramp = np.linspace(1.0, 0.0, max(2, height), dtype=np.float32)[:, None].repeat(width, axis=1)
    return strain_to_rgb(ramp, max_strain=1.0)


def png_bytes(rgb: np.ndarray) -> bytes:
    """An RGB uint8 (H, W, 3) picture encoded as PNG."""
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"OpenCV could not encode a {rgb.shape} picture as PNG")
    return buffer.tobytes()


@dataclass(frozen=True)
class SampleMaps:
    """What one sample's pictures are made of, straight from the pipeline.

    onset, apex: grey float32 (H, W) in [0, 1] at the source (or face-crop) resolution, after the spec's
        crop and magnification; onset_frame, apex_frame their frame numbers, apex_source where the apex came
        from ("annotated", "fallback:<spotter>", "spotted:<spotter>").
    u, v (px), strain (dimensionless): float32 (h, w) at the network's input size `spec.size`, the flow from
        frame `pair[0]` to `pair[1]` (frame numbers `pair_frames`) exactly as the network's u, v, strain
        channels are made.
    """

    sample_id: str
    onset: np.ndarray
    apex: np.ndarray
    onset_frame: int
    apex_frame: int
    apex_source: str
    u: np.ndarray
    v: np.ndarray
    strain: np.ndarray
    pair: tuple[str, str]
    pair_frames: tuple[int, int]
    flow_method: str


def picture_spec(spec: FeatureSpec) -> FeatureSpec:
    """The spec the flow pictures are computed with: the run's spec with channels u, v, strain. A sequence
    spec (T steps per sample) is pictured by its onset→apex pair with the same flow, crop and size."""
    frames = spec.frames if spec.sequence is None else ("onset", "apex")
    return replace(spec, frames=frames, channels=("u", "v", "strain"), sequence=None)


def network_flow(sample: Sample, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, v, strain) float32 (h, w) of `sample` at the network's input size, as `spec` makes them."""
    maps, _ = compute_features_with_info(sample, picture_spec(spec))
    return maps[0], maps[1], maps[2]


def sample_maps(sample: Sample, spec: FeatureSpec) -> SampleMaps:
    """The flow, strain and frames of `sample` under `spec` (see SampleMaps), by compute_features_with_info.

    Raises what the pipeline raises: SampleError (a frame missing, no face found, no apex with
    apex_fallback=error), FeatureError.
    """
    flow_spec = picture_spec(spec)
    maps, info = compute_features_with_info(sample, flow_spec)
    if info["crop"] is not None:
        width, height = info["crop"]["size"]
    else:
        height, width = sample.frames.read(sample.onset).shape[:2]
    # The same crop and magnification at the source size: the frames the flow was computed from.
    frames, frames_info = compute_features_with_info(
        sample, replace(flow_spec, channels=("onset", "apex"), size=(height, width))
    )
    numbers = [
        info["apex_frame"]
        if name == "apex"
        else frame_number(sample, name, flow_spec.apex_fallback, flow_spec.apex)
        for name in flow_spec.frames
    ]
    return SampleMaps(
        sample_id=sample.sample_id,
        onset=frames[0],
        apex=frames[1],
        onset_frame=sample.onset,
        apex_frame=int(frames_info["apex_frame"]),
        apex_source=str(frames_info["apex_source"]),
        u=maps[0],
        v=maps[1],
        strain=maps[2],
        pair=(flow_spec.frames[0], flow_spec.frames[1]),
        pair_frames=(int(numbers[0]), int(numbers[1])),
        flow_method=flow_spec.flow_method,
    )


def flow_maps(features: np.ndarray, channels: Sequence[str]) -> tuple[np.ndarray, ...] | None:
    """(u, v, strain or None) from one sample's cached features (C, H, W) with these channel names, or None
    when they hold no u and v (the direction of a flow cannot be drawn from its magnitude alone)."""
    names = list(channels)
    if "u" not in names or "v" not in names or np.asarray(features).ndim != 3:
        return None
    u, v = features[names.index("u")], features[names.index("v")]
    strain = features[names.index("strain")] if "strain" in names else None
    return u, v, strain


def flow_picture(u: np.ndarray, v: np.ndarray, side: int = READABLE_SIDE, wheel: int = 64) -> np.ndarray:
    """The flow at a readable size with its legend: the colour wheel and the magnitude at full brightness."""
    scale = flow_scale(u, v)
    image = readable(flow_to_rgb(u, v, scale), side)
    return with_legend(
        image, color_wheel(wheel), ["flow", f"max {scale:.3g} px", f"{u.shape[1]}x{u.shape[0]}"]
    )


def strain_picture(strain: np.ndarray, side: int = READABLE_SIDE) -> np.ndarray:
    """The optical strain at a readable size with a colour bar and its scale."""
    scale = robust_scale(strain)
    image = readable(strain_to_rgb(strain, scale), side)
    bar = strain_bar(min(image.shape[0] // 2, 128))
    return with_legend(image, bar, ["strain", f"top {scale:.3g}", "bottom 0"])


def difference_picture(onset: np.ndarray, apex: np.ndarray, side: int = READABLE_SIDE) -> np.ndarray:
    """apex - onset, contrast-stretched, at a readable size, its gain written beside it."""
    gain = difference_gain(onset, apex)
    image = readable(difference_to_rgb(onset, apex, gain), side)
    return with_legend(image, None, ["apex - onset", f"x{gain:.3g}", "grey = no change"])


def sample_pictures(maps: SampleMaps, side: int = READABLE_SIDE) -> dict[str, np.ndarray]:
    """The per-sample pictures as RGB uint8 arrays: onset, apex (frames), flow, strain, difference."""
    return {
        "onset": readable(grey_to_rgb(maps.onset), side),
        "apex": readable(grey_to_rgb(maps.apex), side),
        "flow": flow_picture(maps.u, maps.v, side),
        "strain": strain_picture(maps.strain, side),
        "difference": difference_picture(maps.onset, maps.apex, side),
    }


def panel_png(maps: SampleMaps, title: str = "", dpi: int = 100) -> bytes:
    """One PNG of the five pictures side by side, each titled with its frames, units and scale."""
    # A Figure with its own Agg canvas, as evaluation.reports does: headless, pyplot's backend untouched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    fig = Figure(figsize=(18, 4.4))
    FigureCanvasAgg(fig)
    # A narrow column beside the flow holds its legend wheel, so that no inset hides part of a map.
    axes = fig.subplots(1, 6, gridspec_kw={"width_ratios": [1, 1, 1, 1, 0.42, 1]})
    apex_note = "" if maps.apex_source == "annotated" else f" ({maps.apex_source})"
    flow_scale_px = flow_scale(maps.u, maps.v)
    strain_scale = robust_scale(maps.strain)
    gain = difference_gain(maps.onset, maps.apex)
    h, w = maps.u.shape
    pictures = [
        (grey_to_rgb(maps.onset), f"onset, frame {maps.onset_frame}"),
        (grey_to_rgb(maps.apex), f"apex, frame {maps.apex_frame}{apex_note}"),
        (difference_to_rgb(maps.onset, maps.apex, gain), f"apex - onset, x{gain:.3g}\n(grey: no change)"),
        (
            flow_to_rgb(maps.u, maps.v, flow_scale_px),
            f"flow {maps.pair[0]} {maps.pair_frames[0]} → {maps.pair[1]} {maps.pair_frames[1]}\n"
            f"{maps.flow_method}, {w}x{h} (network input)",
        ),
        (color_wheel(129), f"colour: direction\nbrightness: |flow|,\nfull at {flow_scale_px:.3g} px"),
        (strain_to_rgb(maps.strain, strain_scale), f"optical strain, {w}x{h}"),
    ]
    for index, (ax, (image, caption)) in enumerate(zip(axes, pictures, strict=True)):
        ax.imshow(image, interpolation="bilinear" if index == 4 else "nearest")
        ax.set_title(caption, fontsize=9)
        if index == 4:
            ax.set_axis_off()
        else:
            ax.set_xticks([])
            ax.set_yticks([])
    bar = ScalarMappable(Normalize(0, strain_scale), cmap="inferno")
    fig.colorbar(bar, ax=axes[5], fraction=0.046, pad=0.03)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.94) if title else (0, 0, 1, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def write_sample_pictures(maps: SampleMaps, out_dir: str | Path, title: str = "") -> dict[str, Path]:
    """Write onset.png, apex.png, flow.png, strain.png, difference.png and panel.png (each atomically)
    into out_dir; returns {name: path}."""
    out_dir = Path(out_dir)
    written: dict[str, Path] = {}
    pictures: Mapping[str, np.ndarray] = sample_pictures(maps)
    for name, image in pictures.items():
        written[name] = out_dir / f"{name}.png"
        atomic_write_bytes(written[name], png_bytes(image), what=f"{name} picture")
    written["panel"] = out_dir / "panel.png"
    atomic_write_bytes(written["panel"], panel_png(maps, title or maps.sample_id), what="panel picture")
    return written
