"""Flow-aware augmentation: a flip negates u, a rotation rotates the (u, v) vectors with the image."""

from __future__ import annotations

import math

import pytest
import torch

from datamodules.augment import FlowAugment, hflip_flow, rotate_flow

CH = ("u", "v", "strain")


def _field(u: float, v: float, h: int = 16, w: int = 16) -> torch.Tensor:
    x = torch.zeros(1, 3, h, w)
    x[:, 0], x[:, 1] = u, v
    x[:, 2] = torch.arange(w, dtype=torch.float32)  # a ramp shows which way the maps moved
    return x


def test_hflip_mirrors_maps_and_negates_u_only():
    x = _field(0.7, -0.3)
    y = hflip_flow(x, CH)
    assert torch.allclose(y[:, 0], torch.full_like(y[:, 0], -0.7))
    assert torch.allclose(y[:, 1], torch.full_like(y[:, 1], -0.3))
    assert torch.equal(y[:, 2], x[:, 2].flip(-1))
    assert torch.equal(hflip_flow(y, CH), x)


def test_hflip_mask_leaves_other_samples():
    x = torch.cat([_field(1.0, 0.0), _field(2.0, 0.0)])
    y = hflip_flow(x, CH, torch.tensor([True, False]))
    assert y[0, 0, 0, 0] == -1.0 and torch.equal(y[1], x[1])


def test_rotation_by_90_degrees_turns_rightward_motion_upward():
    # Counter-clockwise on screen with y down: a displacement to the right becomes one upwards (v < 0).
    y = rotate_flow(_field(1.0, 0.0), CH, torch.tensor([math.pi / 2]))
    centre = y[0, :2, 4:12, 4:12]
    assert torch.allclose(centre[0], torch.zeros_like(centre[0]), atol=1e-5)
    assert torch.allclose(centre[1], -torch.ones_like(centre[1]), atol=1e-5)
    # The ramp (high on the right) is now high at the top: the maps turned the same way as the vectors.
    ramp = y[0, 2, 4:12, 8]
    assert torch.all(ramp[1:] < ramp[:-1])


def test_rotation_keeps_vector_length_and_zero_angle_is_identity():
    x = _field(0.6, 0.8)
    y = rotate_flow(x, CH, torch.tensor([0.3]))
    length = torch.sqrt(y[0, 0] ** 2 + y[0, 1] ** 2)[4:12, 4:12]
    assert torch.allclose(length, torch.ones_like(length), atol=1e-5)
    assert torch.allclose(rotate_flow(x, CH, torch.tensor([0.0])), x, atol=1e-5)


def test_augment_off_by_default_and_validates():
    aug = FlowAugment(CH)
    x = _field(1.0, 0.0)
    assert not aug.active and aug(x) is x
    with pytest.raises(ValueError, match="both u and v"):
        FlowAugment(("u", "strain"), rotate_degrees=10)
    with pytest.raises(ValueError, match="probability"):
        FlowAugment(CH, hflip=1.5)
    flipped = FlowAugment(CH, hflip=1.0)(x)
    assert torch.allclose(flipped[:, 0], -x[:, 0])
