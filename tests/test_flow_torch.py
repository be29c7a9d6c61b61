"""TV-L1 in PyTorch ("tvl1_torch"): as accurate as OpenCV's on known shifts; a batch = one pair at a time."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_flow import end_point_error, shifted, texture

from preprocessing.flow import flow_parameters, optical_flow, tvl1_flow
from preprocessing.tvl1_torch import tvl1_flow_batch

# (dx, dy) px, +x right, +y down: sub-pixel, then whole pixels along each axis.
SHIFTS = ((0.4, -0.7), (1.0, 0.0), (0.0, -2.0))
HEIGHT, WIDTH = 40, 56  # not square, so a swapped H/W or x/y shows up


def float_pair(dx: float, dy: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A texture of ±40 grey levels and its shifted copy, float32 grey in [0, 1]."""
    base = texture(HEIGHT, WIDTH, seed=seed)
    prev, next_ = ((128 + 40 * image) / 255 for image in (base, shifted(base, dx, dy)))
    return prev.astype(np.float32), next_.astype(np.float32)


@pytest.fixture(scope="module")
def batch() -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    pairs = [float_pair(dx, dy, seed=i) for i, (dx, dy) in enumerate(SHIFTS)]
    prev, next_ = (np.stack(frames) for frames in zip(*pairs, strict=True))
    u, v = tvl1_flow_batch(prev, next_, device="cpu")
    return prev, next_, (u.numpy(), v.numpy())


def test_end_point_error_matches_opencv_on_known_shifts(batch):
    # The acceptance: on synthetic known shifts, EPE within 0.05 px of OpenCV's TV-L1 on the same frames.
    prev, next_, (u, v) = batch
    for i, (dx, dy) in enumerate(SHIFTS):
        opencv = end_point_error(*tvl1_flow(prev[i], next_[i]), dx, dy)
        torch_epe = end_point_error(u[i], v[i], dx, dy)
        assert torch_epe < 0.1, (dx, dy)
        assert abs(torch_epe - opencv) < 0.05, (dx, dy, torch_epe, opencv)


def test_batch_gives_the_flows_of_one_pair_at_a_time(batch):
    # Each image stops on its own epsilon test (the others run on masked), so batching changes nothing.
    prev, next_, (u, v) = batch
    for i in range(len(SHIFTS)):
        u_one, v_one = tvl1_flow_batch(prev[i : i + 1], next_[i : i + 1], device="cpu")
        np.testing.assert_allclose(u_one[0].numpy(), u[i], atol=1e-5)
        np.testing.assert_allclose(v_one[0].numpy(), v[i], atol=1e-5)


def test_outputs_are_float32_tensors_of_the_input_shape(batch):
    prev, next_, _ = batch
    u, v = tvl1_flow_batch(torch.from_numpy(prev[:2]), torch.from_numpy(next_[:2]), {"warps": 1})
    assert u.shape == v.shape == (2, HEIGHT, WIDTH)
    assert u.dtype == v.dtype == torch.float32 and u.device.type == "cpu"  # a tensor keeps its device


def test_sign_convention_through_optical_flow():
    # np.roll along columns moves content one pixel right: u = +1, v = 0; uint8 and RGB as for tvl1.
    prev = np.clip(np.rint(128 + 40 * texture(HEIGHT, WIDTH, seed=1)), 0, 255).astype(np.uint8)
    next_ = np.roll(prev, 1, axis=1)
    u, v = optical_flow(prev, next_, "tvl1_torch")
    assert u.shape == prev.shape and u.dtype == np.float32 and isinstance(u, np.ndarray)
    assert end_point_error(u, v, 1.0, 0.0) < 0.1
    assert np.median(u) == pytest.approx(1.0, abs=0.05) and np.median(v) == pytest.approx(0.0, abs=0.05)
    # RGB made grey in float differs from uint8 / 255 in the last bit, which TV-L1 may amplify locally.
    rgb = optical_flow(np.dstack([prev] * 3), np.dstack([next_] * 3), "tvl1_torch")
    assert end_point_error(*rgb, 1.0, 0.0) < 0.1


def test_zero_motion_gives_zero_flow():
    prev, _ = float_pair(0.0, 0.0, seed=2)
    u, v = tvl1_flow_batch(prev[None], prev[None], device="cpu")
    assert float(u.abs().max()) < 1e-3 and float(v.abs().max()) < 1e-3


def test_parameters_reach_the_algorithm():
    prev, next_ = float_pair(*SHIFTS[0], seed=3)
    default = tvl1_flow_batch(prev[None], next_[None], device="cpu")[0]
    one_warp = tvl1_flow_batch(prev[None], next_[None], {"warps": 1.0, "nscales": 2}, device="cpu")[0]
    assert not torch.allclose(default, one_warp)


def test_parameters_are_opencvs_json_able_and_device_free():
    params = flow_parameters("tvl1_torch")
    opencv = flow_parameters("tvl1")
    assert params["method"] == "tvl1_torch" and params["torch"] == torch.__version__
    # Same names and defaults as OpenCV's TV-L1 (read back from cv2), nothing about the device.
    assert set(params) == set(opencv) | {"torch"}
    for name in set(opencv) - {"method"}:
        assert params[name] == opencv[name], name
    text = json.dumps(params)
    assert "cuda" not in text and "cpu" not in text
    assert "torch" not in opencv  # the OpenCV methods' parameters (and cache keys) are as before
    assert flow_parameters("tvl1_torch", {"nscales": 3.0})["nscales"] == 3


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"tua": 0.1}, r"unknown tvl1_torch flow parameter\(s\) 'tua'; valid parameters: tau, lambda"),
        ({"device": "cuda"}, r"'device'"),
        ({"warps": 1.5}, r"'warps' must be int"),
        ({"medianFiltering": 7}, r"'medianFiltering' must be 0, 1, 3 or 5"),
        ({"useInitialFlow": True}, r"useInitialFlow"),
    ],
)
def test_bad_parameters_raise_value_error(params, message):
    with pytest.raises(ValueError, match=message):
        flow_parameters("tvl1_torch", params)
    frame = np.zeros((32, 32), np.uint8)
    with pytest.raises(ValueError, match=message):
        optical_flow(frame, frame, "tvl1_torch", params)
    with pytest.raises(ValueError, match=message):
        tvl1_flow_batch(frame[None], frame[None], params, device="cpu")


def test_bad_frames_raise_value_error():
    frames = np.zeros((2, 32, 32), np.float32)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        tvl1_flow_batch(frames[0], frames[0], device="cpu")
    with pytest.raises(ValueError, match="differ in shape"):
        tvl1_flow_batch(frames, frames[:, :-1], device="cpu")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):  # 0..255 as float would be scaled by 255 twice
        tvl1_flow_batch(frames + 255, frames + 255, device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_agrees_with_cpu(batch):
    prev, next_, (u, v) = batch
    u_gpu, v_gpu = tvl1_flow_batch(prev, next_, device="cuda")
    assert u_gpu.device.type == "cuda"
    for i, (dx, dy) in enumerate(SHIFTS):
        gpu_epe = end_point_error(u_gpu[i].cpu().numpy(), v_gpu[i].cpu().numpy(), dx, dy)
        assert abs(gpu_epe - end_point_error(u[i], v[i], dx, dy)) < 0.01
