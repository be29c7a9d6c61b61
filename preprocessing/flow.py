"""Dense optical flow between two frames (spec models.md §10.1): TV-L1, Farnebäck or DIS from OpenCV, or
"tvl1_torch", OpenCV's TV-L1 ported to PyTorch (preprocessing.tvl1_torch: batched, on a GPU if there is one).

Convention: flow from `prev` (the onset) to `next` (the apex), so `prev[y, x] ≈ next[y + v, x + u]`;
u = horizontal displacement (x, along columns, + = rightwards), v = vertical (y, along rows, + = downwards),
both float32 (H, W) in pixels of the input resolution.

Input precision (measured on a band-limited texture shifted by (0.4, -0.7) px, 170x140, interior mean
end-point error; `benchmarks/bench_flow.py` repeats the high-contrast case):
* TV-L1 accepts float32 and scales it by 255 internally, so float32 in [0, 1] means the same to its
  parameters as uint8 and skips one quantisation. That matters on smooth, low-contrast skin: with a
  ±5 grey-level texture the EPE was 0.09-0.31 px from uint8 and 0.05-0.06 px from float; for an RGB frame
  made grey in float instead of uint8, 0.13 → 0.07 px (±5 levels) and 0.47 → 0.15 px (±3 levels). At
  ±40 levels the two agree (0.05 px). For a uint8 grey frame the two inputs give identical flow.
* Farnebäck also accepts float32 but does NOT rescale it, and its displacement solve adds a fixed 1e-3 to
  a determinant built from squared intensities: fed [0, 1] it returns (almost) zero flow (EPE = the
  whole shift). So it gets float32 on the 0-255 scale: unquantised, same numbers as uint8 otherwise
  (EPE 0.0097 vs 0.0101 px).
* DIS asserts CV_8UC1, so it gets the grey frame rounded to uint8.
* tvl1_torch takes float32 [0, 1] and scales it by 255 as OpenCV's TV-L1 does, so both read one set of
  parameters the same way.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import cv2
import numpy as np

FLOW_METHODS = ("tvl1", "farneback", "dis", "tvl1_torch")

# TV-L1: name -> (getter, setter, type). Names are OpenCV's own (spec §10.1), so a read-back dict, a config
# override and the spec's table all use one vocabulary.
_TVL1_PARAMS: dict[str, tuple[str, str, type]] = {
    "tau": ("getTau", "setTau", float),
    "lambda": ("getLambda", "setLambda", float),
    "theta": ("getTheta", "setTheta", float),
    "nscales": ("getScalesNumber", "setScalesNumber", int),
    "warps": ("getWarpingsNumber", "setWarpingsNumber", int),
    "epsilon": ("getEpsilon", "setEpsilon", float),
    "innerIterations": ("getInnerIterations", "setInnerIterations", int),
    "outerIterations": ("getOuterIterations", "setOuterIterations", int),
    "scaleStep": ("getScaleStep", "setScaleStep", float),
    "gamma": ("getGamma", "setGamma", float),
    "medianFiltering": ("getMedianFiltering", "setMedianFiltering", int),
    "useInitialFlow": ("getUseInitialFlow", "setUseInitialFlow", bool),
}

_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
# MEDIUM, not OpenCV's FAST default: FAST/ULTRAFAST stop at finest scale 2 and miss sub-pixel motion
# (EPE 0.11-0.16 px vs 0.03-0.04 px for MEDIUM on the test texture) for ~1.7 ms instead of ~0.5 ms at 170x140.
_DIS_DEFAULT_PRESET = "medium"
_DIS_PARAMS: dict[str, tuple[str, str, type]] = {
    "finestScale": ("getFinestScale", "setFinestScale", int),
    "coarsestScale": ("getCoarsestScale", "setCoarsestScale", int),
    "patchSize": ("getPatchSize", "setPatchSize", int),
    "patchStride": ("getPatchStride", "setPatchStride", int),
    "gradientDescentIterations": ("getGradientDescentIterations", "setGradientDescentIterations", int),
    "variationalRefinementIterations": (
        "getVariationalRefinementIterations",
        "setVariationalRefinementIterations",
        int,
    ),
    "variationalRefinementAlpha": ("getVariationalRefinementAlpha", "setVariationalRefinementAlpha", float),
    "variationalRefinementDelta": ("getVariationalRefinementDelta", "setVariationalRefinementDelta", float),
    "variationalRefinementGamma": ("getVariationalRefinementGamma", "setVariationalRefinementGamma", float),
    "variationalRefinementEpsilon": (
        "getVariationalRefinementEpsilon",
        "setVariationalRefinementEpsilon",
        float,
    ),
    "useMeanNormalization": ("getUseMeanNormalization", "setUseMeanNormalization", bool),
    "useSpatialPropagation": ("getUseSpatialPropagation", "setUseSpatialPropagation", bool),
}

# Farnebäck is a plain function, so these cannot be read back; defaults are EMR's (spec §7a), the one
# MER recipe that uses Farnebäck. levels=1 (no pyramid) suits motion of about a pixel.
_FARNEBACK_DEFAULTS: dict[str, float | int] = {
    "pyr_scale": 0.5,
    "levels": 1,
    "winsize": 15,
    "iterations": 2,
    "poly_n": 5,
    "poly_sigma": 1.1,
    "flags": 0,
}
_FARNEBACK_TYPES: dict[str, type] = {
    "pyr_scale": float,
    "levels": int,
    "winsize": int,
    "iterations": int,
    "poly_n": int,
    "poly_sigma": float,
    "flags": int,
}

# Part of flow_parameters(), hence of every feature cache key: changing how frames are fed to OpenCV
# changes the flow, so it must invalidate caches just as a parameter change does.
_INPUT = {
    "tvl1": "gray float32 [0,1]",
    "farneback": "gray float32 [0,255]",
    "dis": "gray uint8",
    "tvl1_torch": "gray float32 [0,1]",
}


def _check_method(method: str) -> None:
    if method not in FLOW_METHODS:
        raise ValueError(f"unknown optical flow method {method!r}; valid methods: {', '.join(FLOW_METHODS)}")


def _check_names(method: str, params: Mapping[str, Any], valid: list[str]) -> None:
    unknown = [name for name in params if name not in valid]
    if unknown:
        raise ValueError(
            f"unknown {method} flow parameter(s) {', '.join(map(repr, unknown))}; valid parameters: "
            f"{', '.join(valid)}"
        )


def _coerce(method: str, name: str, value: Any, kind: type) -> Any:
    """Hydra and JSON hand over 5.0 for 5 and 1 for True; OpenCV's setters reject both, so convert here."""
    if kind is bool:
        if isinstance(value, bool | np.bool_) or value in (0, 1):
            return bool(value)
    elif kind is int:
        if (
            not isinstance(value, bool)
            and isinstance(value, int | float | np.number)
            and float(value).is_integer()
        ):
            return int(value)
    elif isinstance(value, int | float | np.number) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"{method} flow parameter {name!r} must be {kind.__name__}, got {value!r}")


def _f32(value: float) -> float:
    # DIS stores its parameters as float32; 0.01 reads back as 0.009999999776. Seven significant digits
    # give the number that was meant, in the JSON and the cache key alike.
    return float(f"{value:.7g}")


def _tvl1(params: Mapping[str, Any], method: str = "tvl1") -> Any:
    """A configured OpenCV DualTVL1 object; `method` names the caller in messages ("tvl1_torch" reads its
    parameters and defaults from the same object)."""
    _check_names(method, params, list(_TVL1_PARAMS))
    flow = cv2.optflow.DualTVL1OpticalFlow_create()
    for name, value in params.items():
        getter, setter, kind = _TVL1_PARAMS[name]
        value = _coerce(method, name, value, kind)
        if name == "useInitialFlow" and value:
            raise ValueError(
                f"{method} flow parameter 'useInitialFlow' cannot be True: optical_flow() has no initial flow"
            )
        getattr(flow, setter)(value)
    return flow


def _tvl1_values(params: Mapping[str, Any], method: str = "tvl1") -> dict[str, Any]:
    """The TV-L1 parameters in effect, read back from the configured OpenCV object, by OpenCV's names."""
    flow = _tvl1(params, method)
    return {name: kind(getattr(flow, getter)()) for name, (getter, _, kind) in _TVL1_PARAMS.items()}


def _dis(params: Mapping[str, Any]) -> Any:
    _check_names("dis", params, ["preset", *_DIS_PARAMS])
    preset = _dis_preset(params.get("preset", _DIS_DEFAULT_PRESET))
    flow = cv2.DISOpticalFlow_create(_DIS_PRESETS[preset])
    # Setters after the preset, so an explicit parameter overrides what the preset chose.
    for name, value in params.items():
        if name != "preset":
            getter, setter, kind = _DIS_PARAMS[name]
            getattr(flow, setter)(_coerce("dis", name, value, kind))
    return flow


def _dis_preset(preset: Any) -> str:
    by_code = {code: name for name, code in _DIS_PRESETS.items()}
    if isinstance(preset, str) and preset.lower() in _DIS_PRESETS:
        return preset.lower()
    if not isinstance(preset, bool | str) and isinstance(preset, int | float) and preset in by_code:
        return by_code[int(preset)]
    raise ValueError(
        f"unknown dis preset {preset!r}; valid presets: {', '.join(_DIS_PRESETS)} (or codes 0, 1, 2)"
    )


def _farneback(params: Mapping[str, Any]) -> dict[str, Any]:
    _check_names("farneback", params, list(_FARNEBACK_DEFAULTS))
    merged = dict(_FARNEBACK_DEFAULTS)
    for name, value in params.items():
        merged[name] = _coerce("farneback", name, value, _FARNEBACK_TYPES[name])
    if merged["flags"] & cv2.OPTFLOW_USE_INITIAL_FLOW:
        raise ValueError(
            "farneback flag OPTFLOW_USE_INITIAL_FLOW cannot be set: optical_flow() has no initial flow"
        )
    if merged["flags"] & ~cv2.OPTFLOW_FARNEBACK_GAUSSIAN:
        raise ValueError(f"farneback flags must be 0 or {cv2.OPTFLOW_FARNEBACK_GAUSSIAN} (gaussian window)")
    return merged


def flow_parameters(method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The parameters in effect for `method` with `params` overrides, as JSON-able values.

    TV-L1 and DIS values are read back from the configured OpenCV object's getters (so a changed OpenCV
    default shows up; tvl1_torch reads OpenCV's TV-L1 defaults the same way); Farnebäck has no object, so
    its merged defaults are returned. Also returned: `method`, the `opencv` version and `input` (how frames
    are handed to OpenCV), and for tvl1_torch the `torch` version. Nothing depends on the device, so a flow
    computed on a GPU and one computed on the CPU share a cache key.
    Raises ValueError for an unknown method or parameter name, listing the valid ones.
    """
    _check_method(method)
    params = dict(params or {})
    head: dict[str, Any] = {"method": method, "opencv": cv2.__version__, "input": _INPUT[method]}
    if method == "tvl1":
        values = _tvl1_values(params)
    elif method == "tvl1_torch":
        import torch

        from preprocessing.tvl1_torch import tvl1_parameters

        head["torch"] = torch.__version__
        values = tvl1_parameters(params)
    elif method == "dis":
        flow = _dis(params)
        values = {"preset": _dis_preset(params.get("preset", _DIS_DEFAULT_PRESET))}
        for name, (getter, _, kind) in _DIS_PARAMS.items():
            value = getattr(flow, getter)()
            values[name] = _f32(value) if kind is float else kind(value)
    else:
        values = _farneback(params)
    return head | values


def to_gray(image: np.ndarray) -> np.ndarray:
    """A frame as float32 (H, W) grey in [0, 1].

    `image`: uint8 (H, W) / (H, W, 1) / (H, W, 3) RGB in 0..255, or float in [0, 1] (magnified or
    interpolated frames may overshoot a little). RGB is converted in float so no second rounding happens.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected a frame of shape (H, W) or (H, W, 3), got {image.shape}")
    if image.dtype == np.uint8:
        gray = image.astype(np.float32) / np.float32(255)
    elif np.issubdtype(image.dtype, np.floating):
        gray = image.astype(np.float32, copy=False)
        # A 0..255 float frame would reach OpenCV 255x too bright and silently change TV-L1's balance.
        if gray.size and float(np.nanmax(gray)) > 2.0:
            raise ValueError(
                f"float frames must be scaled to [0, 1]; this one reaches {float(np.nanmax(gray)):.1f} "
                "(pass uint8 or divide by 255)"
            )
    else:
        raise ValueError(f"expected a uint8 or float frame, got dtype {image.dtype}")
    if gray.ndim == 3:
        gray = cv2.cvtColor(np.ascontiguousarray(gray), cv2.COLOR_RGB2GRAY)
    return np.ascontiguousarray(gray)


def _gray_pair(prev: np.ndarray, next: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    prev_gray, next_gray = to_gray(prev), to_gray(next)
    if prev_gray.shape != next_gray.shape:
        raise ValueError(f"frames differ in size: {prev_gray.shape} and {next_gray.shape}")
    return prev_gray, next_gray


def _split(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u = np.ascontiguousarray(flow[..., 0], dtype=np.float32)
    v = np.ascontiguousarray(flow[..., 1], dtype=np.float32)
    return u, v


# OpenCV objects are built on every call: measured 0.4 µs (TV-L1) and 5-35 µs (DIS) against 25-250 ms and
# 0.3-3 ms for the flow itself (benchmarks/bench_flow.py), so a cache would save <10 % even for DIS at 28x28,
# and would share one mutable, non-thread-safe object between callers.
def tvl1_flow(
    prev: np.ndarray, next: np.ndarray, params: Mapping[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """TV-L1 (Zach et al. 2007; OpenCV DualTVL1) flow from `prev` to `next`; see `optical_flow`."""
    flow = _tvl1(dict(params or {}))
    return _split(flow.calc(*_gray_pair(prev, next), None))


def farneback_flow(
    prev: np.ndarray, next: np.ndarray, params: Mapping[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Farnebäck (2003) polynomial-expansion flow from `prev` to `next`; see `optical_flow`."""
    p = _farneback(dict(params or {}))
    prev_gray, next_gray = _gray_pair(prev, next)
    scale = np.float32(255)
    flow = cv2.calcOpticalFlowFarneback(
        prev_gray * scale,
        next_gray * scale,
        None,
        p["pyr_scale"],
        p["levels"],
        p["winsize"],
        p["iterations"],
        p["poly_n"],
        p["poly_sigma"],
        p["flags"],
    )
    return _split(flow)


def dis_flow(
    prev: np.ndarray, next: np.ndarray, params: Mapping[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """DIS (Kroeger et al. 2016) flow from `prev` to `next`, grey quantised to uint8; see `optical_flow`."""
    flow = _dis(dict(params or {}))
    prev_u8, next_u8 = (
        np.clip(np.rint(g * np.float32(255)), 0, 255).astype(np.uint8) for g in _gray_pair(prev, next)
    )
    return _split(flow.calc(prev_u8, next_u8, None))


def tvl1_torch_flow(
    prev: np.ndarray, next: np.ndarray, params: Mapping[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """TV-L1 in PyTorch (preprocessing.tvl1_torch), one pair, on CUDA when available; see `optical_flow`.

    For many pairs at once, call `preprocessing.tvl1_torch.tvl1_flow_batch` directly.
    """
    # Imported here: torch costs a second or two to import, which the OpenCV methods need not pay.
    from preprocessing.tvl1_torch import tvl1_flow_batch

    prev_gray, next_gray = _gray_pair(prev, next)
    u, v = tvl1_flow_batch(prev_gray[None], next_gray[None], params)
    return u[0].cpu().numpy(), v[0].cpu().numpy()


_FLOWS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "tvl1": tvl1_flow,
    "farneback": farneback_flow,
    "dis": dis_flow,
    "tvl1_torch": tvl1_torch_flow,
}


def optical_flow(
    prev: np.ndarray,
    next: np.ndarray,
    method: str = "tvl1",
    params: Mapping[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Dense flow from frame `prev` (onset) to frame `next` (apex).

    prev, next: uint8 (H, W) or (H, W, 3) RGB, or float in [0, 1]; the same shape.
    method: one of FLOW_METHODS; params: overrides by the names `flow_parameters` reports.
    Returns (u, v): float32 (H, W) each, in pixels; u = +x (rightwards, columns), v = +y (downwards, rows).
    """
    _check_method(method)
    key = _memo_key(prev, next, method, params)
    hit = _MEMO.get(key)
    if hit is not None:
        _MEMO.move_to_end(key)
        return hit[0].copy(), hit[1].copy()
    u, v = _FLOWS[method](prev, next, params)
    _remember(key, u, v)
    return u, v


# Flow fields computed in this process, by the content of the two frames and the method's parameters: two
# inputs of one experiment that need the same flow (ELRCN-TE's flow and strain streams, DSSN's two inputs)
# compute it once, though each input has its own cache entries. Least recently used first out past
# FLOW_MEMO_BYTES; build_feature_set empties it once the features are built.
FLOW_MEMO_BYTES = 512 * 2**20
_MEMO: OrderedDict[bytes, tuple[np.ndarray, np.ndarray]] = OrderedDict()
_memo_bytes = 0


def _memo_key(prev: np.ndarray, next: np.ndarray, method: str, params: Mapping[str, Any] | None) -> bytes:
    digest = hashlib.blake2b(digest_size=20)
    for frame in (prev, next):
        frame = np.ascontiguousarray(frame)
        digest.update(f"{frame.dtype.str}{frame.shape}".encode())
        digest.update(frame.data)
    digest.update(repr((method, sorted((params or {}).items()))).encode())
    return digest.digest()


def _remember(key: bytes, u: np.ndarray, v: np.ndarray) -> None:
    global _memo_bytes
    size = u.nbytes + v.nbytes
    if size > FLOW_MEMO_BYTES:
        return
    _MEMO[key] = (u.copy(), v.copy())
    _memo_bytes += size
    while _memo_bytes > FLOW_MEMO_BYTES:
        _, (old_u, old_v) = _MEMO.popitem(last=False)
        _memo_bytes -= old_u.nbytes + old_v.nbytes


def clear_flow_memo() -> None:
    """Forget the flows computed so far (their memory is returned)."""
    global _memo_bytes
    _MEMO.clear()
    _memo_bytes = 0
