"""Hand-crafted descriptors: LBP codes and the u2 mapping by hand and against scikit-image, LBP-TOP / LBP-SIP
histograms, HOOF and Bi-WOOF on synthetic flow, DMD / DMDSP sparse sampling, and the DescriptorSpec."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import ndimage

from datamodules.samples import FrameSource, Sample, SampleError
from preprocessing.handcrafted import (
    DescriptorSpec,
    biwoof,
    biwoof_block_edges,
    block_edges,
    compute_descriptor,
    compute_descriptor_with_info,
    dmdsp,
    global_weights,
    hoof,
    lbp_codes,
    lbp_sip,
    lbp_sip_codes,
    lbp_top,
    lbp_top_codes,
    random_frame_number,
    sparse_sample,
    spec_from_mapping,
    uniform_bins,
    uniform_mapping,
)
from preprocessing.handcrafted.lbp import lbp_sip_length, lbp_top_length
from preprocessing.handcrafted.sparse_sampling import dmdsp_amplitudes
from preprocessing.strain import optical_strain
from preprocessing.temporal import tim

PATCH = np.array([[5, 9, 1], [2, 4, 7], [3, 4, 8]], dtype=np.uint8)
# A 3x3x3 clip around the centre 5 (t, y, x = 1, 1, 1): right 4, up 9, left 7, down 1, the frame before 2,
# the frame after 6; every other voxel is 0.
VOLUME = np.zeros((3, 3, 3))
VOLUME[1, 1, 1] = 5
VOLUME[1, 1, 2], VOLUME[1, 0, 1], VOLUME[1, 1, 0], VOLUME[1, 2, 1] = 4, 9, 7, 1
VOLUME[0, 1, 1], VOLUME[2, 1, 1] = 2, 6


def bilinear(image: np.ndarray, y: float, x: float) -> float:
    """The grey value at (y, x) from the four pixels around it, each weighted by its nearness."""
    y0, x0 = math.floor(y), math.floor(x)
    fy, fx = y - y0, x - x0
    total = 0.0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            if wy * wx:
                total += wy * wx * float(image[y0 + dy, x0 + dx])
    return total


# --- LBP codes and the u2 mapping -------------------------------------------------------------------------


def test_lbp_code_of_a_hand_made_patch_with_four_neighbours():
    # Centre 4; right 7 >= 4 (bit 0), up 9 (bit 1), left 2 < 4 (bit 2 clear), down 4 >= 4 (bit 3).
    assert lbp_codes(PATCH, points=4, radius=1).tolist() == [[1 + 2 + 8]]


def test_lbp_code_with_eight_neighbours_against_a_hand_computation():
    code = 0
    for p in range(8):
        angle = 2 * math.pi * p / 8
        code |= (bilinear(PATCH, 1 - math.sin(angle), 1 + math.cos(angle)) >= 4.0) << p
    # Up-right interpolates to 4.16, up-left 5.12, down-left 3.09 (< 4), down-right 6.62.
    assert code == 0b11001111
    assert lbp_codes(PATCH, points=8, radius=1).tolist() == [[code]]


@pytest.mark.parametrize(("points", "radius"), [(8, 1), (4, 1), (8, 2), (16, 2), (8, 1.5)])
def test_lbp_codes_agree_with_scikit_image(points, radius):
    from skimage.feature import local_binary_pattern

    image = np.random.default_rng(points).integers(0, 256, (40, 44)).astype(np.uint8)
    ours = lbp_codes(image, points, radius)
    m = (image.shape[0] - ours.shape[0]) // 2  # skimage codes every pixel; compare the interior
    assert m == math.ceil(radius)
    theirs = local_binary_pattern(image, points, radius, "default")[m:-m, m:-m].astype(np.int64)
    np.testing.assert_array_equal(ours, theirs)
    # nri_uniform is the same partition into u2 classes, numbered differently (skimage orders uniform
    # patterns by their number of ones and rotation, the Oulu mapping by code value): a bijection.
    nri = local_binary_pattern(image, points, radius, "nri_uniform")[m:-m, m:-m].astype(np.int64)
    ours_u2 = uniform_mapping(points)[ours]
    pairs = set(zip(ours_u2.ravel().tolist(), nri.ravel().tolist(), strict=True))
    assert len(pairs) == len(set(ours_u2.ravel().tolist())) == len(set(nri.ravel().tolist()))


@pytest.mark.parametrize(("points", "bins"), [(8, 59), (4, 15), (16, 243), (2, 5)])
def test_uniform_mapping_bins(points, bins):
    table = uniform_mapping(points)
    assert uniform_bins(points) == bins and len(table) == 2**points
    patterns = [format(code, f"0{points}b") for code in range(2**points)]
    changes = [sum(b[i] != b[(i + 1) % points] for i in range(points)) for b in patterns]
    uniform = [code for code in range(2**points) if changes[code] <= 2]
    assert len(uniform) == points * (points - 1) + 2
    assert table[uniform].tolist() == list(range(len(uniform)))  # uniform codes first, in code order
    assert set(table[[c for c in range(2**points) if changes[c] > 2]].tolist()) <= {bins - 1}


# --- LBP-TOP and LBP-SIP ---------------------------------------------------------------------------------


def test_lbp_top_of_a_hand_made_volume():
    xy, xt, yt = (codes.item() for codes in lbp_top_codes(VOLUME, (1, 1, 1), (4, 4, 4)))
    assert xy == 0b0110  # bit 0 right 4 < 5, bit 1 up 9, bit 2 left 7, bit 3 down 1 < 5
    assert xt == 0b1100  # bit 0 right 4, bit 1 the frame before 2, bit 2 left 7, bit 3 the frame after 6
    assert yt == 0b1001  # bit 0 up 9, bit 1 the frame before 2, bit 2 down 1, bit 3 the frame after 6
    histogram = lbp_top(VOLUME, (1, 1, 1), (4, 4, 4), blocks=(1, 1), mapping="none")
    expected = np.zeros(48)
    expected[[xy, 16 + xt, 32 + yt]] = 1
    np.testing.assert_array_equal(histogram, expected)
    u2 = lbp_top(VOLUME, (1, 1, 1), (4, 4, 4), blocks=(1, 1))
    u2_bins = uniform_mapping(4)[[xy, xt, yt]] + [0, 15, 30]
    assert u2.shape == (45,) and u2[u2_bins].sum() == 3 == u2.sum()


@pytest.mark.parametrize(
    ("points", "radii"), [((8, 8, 8), (1, 1, 1)), ((4, 4, 4), (1, 1, 4)), ((8, 4, 4), (2, 2, 2))]
)
def test_lbp_top_of_a_constant_volume_is_all_ones(points, radii):
    # A flat clip codes as all ones (every neighbour equals the centre), interpolated neighbours included.
    volume = np.full((12, 20, 24), 0.37)
    descriptor = lbp_top(volume, radii, points, blocks=(2, 3), slices=2)
    assert descriptor.shape == (lbp_top_length(points, (2, 3), 2),)
    offset = 0
    for _ in range(2 * 2 * 3):
        for p in points:
            block = descriptor[offset : offset + uniform_bins(p)]
            assert block[uniform_mapping(p)[2**p - 1]] == 1.0 and block.sum() == pytest.approx(1.0)
            offset += uniform_bins(p)
    assert offset == len(descriptor)


def test_lbp_top_blocks_come_left_to_right_and_sum_to_one():
    rng = np.random.default_rng(1)
    volume = np.full((9, 16, 40), 0.5)
    volume[:, :, 20:] = rng.random((9, 16, 20))  # flat left half, textured right half
    descriptor = lbp_top(volume, (1, 1, 1), (8, 8, 8), blocks=(1, 2)).reshape(2, 3, 59)
    np.testing.assert_allclose(descriptor.sum(axis=2), 1.0, rtol=1e-6)
    all_ones = uniform_mapping(8)[255]
    assert descriptor[0, 0, all_ones] > 0.9 > 0.3 > descriptor[1, 0, all_ones]  # about 1/9 on noise


def test_block_edges_with_and_without_overlap():
    assert block_edges(100, 4) == [(0, 25), (25, 50), (50, 75), (75, 100)]
    edges = block_edges(100, 4, overlap=0.5)
    assert edges == [(0, 40), (20, 60), (40, 80), (60, 100)]
    assert all(a1 - b0 == 0.5 * (a1 - a0) for (a0, a1), (b0, _) in zip(edges, edges[1:], strict=False))
    with pytest.raises(ValueError, match="overlap"):
        block_edges(100, 4, overlap=1.0)


def test_overlap_counts_a_pixel_in_every_block_that_holds_it():
    volume = np.random.default_rng(2).random((5, 30, 30))
    plain = lbp_top(volume, (1, 1, 1), (8, 8, 8), blocks=(3, 3))
    overlapping = lbp_top(volume, (1, 1, 1), (8, 8, 8), blocks=(3, 3), overlap=0.7)
    assert plain.shape == overlapping.shape and not np.allclose(plain, overlapping)


def test_bilinear_and_nearest_neighbours_differ_only_off_the_grid():
    volume = np.random.default_rng(3).random((7, 20, 20))
    on_grid = [lbp_top(volume, (1, 1, 1), (4, 4, 4), interpolation=i) for i in ("bilinear", "nearest")]
    np.testing.assert_array_equal(*on_grid)  # P=4, R=1: every neighbour is a pixel
    off_grid = [lbp_top(volume, (1, 1, 1), (8, 8, 8), interpolation=i) for i in ("bilinear", "nearest")]
    assert not np.array_equal(*off_grid)


def test_lbp_top_refuses_a_clip_too_short_for_its_radius():
    with pytest.raises(ValueError, match="at least 9 frames"):
        lbp_top(np.random.default_rng(0).random((8, 20, 20)), (1, 1, 4), (4, 4, 4))


def test_lbp_sip_of_the_hand_made_volume():
    spatial, temporal = (codes.item() for codes in lbp_sip_codes(VOLUME, (1, 1, 1)))
    assert spatial == 0b0110  # E right 4, D up 9, G left 7, F down 1 against the centre 5
    assert temporal == 0b10  # A, the frame before (2), is smaller; B, the frame after (6), is not
    expected = np.zeros(20)
    expected[[spatial, 16 + temporal]] = 1
    np.testing.assert_array_equal(lbp_sip(VOLUME, (1, 1, 1), blocks=(1, 1)), expected)


def test_lbp_sip_keeps_each_of_lbp_top_s_six_points_once():
    volume = np.random.default_rng(4).random((9, 24, 28))
    spatial, temporal = lbp_sip_codes(volume, (1, 1, 2))
    xy, xt, yt = lbp_top_codes(volume, (1, 1, 2), (4, 4, 4))
    np.testing.assert_array_equal(spatial, xy)
    for plane in (xt, yt):  # bits 1 and 3 of the XT and YT circles are A (t - R_T) and B (t + R_T)
        np.testing.assert_array_equal(temporal, ((plane >> 1) & 1) | (((plane >> 3) & 1) << 1))
    descriptor = lbp_sip(volume, (1, 1, 2), blocks=(3, 4), slices=2)
    assert descriptor.shape == (lbp_sip_length((3, 4), 2),) == (3 * 4 * 2 * 20,)
    # The seed's 2.4x smaller feature: LBP-TOP with P=4 and all 16 patterns has 48 bins per block.
    assert lbp_top_length((4, 4, 4), (3, 4), 2, "none") / len(descriptor) == pytest.approx(2.4)
    np.testing.assert_allclose(descriptor.reshape(-1, 20)[:, :16].sum(axis=1), 1.0, rtol=1e-6)


# --- HOOF and Bi-WOOF ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("degrees", "expected_bin"), [(-170, 0), (-90, 2), (10, 4), (100, 6), (170, 7)])
def test_a_uniform_flow_puts_all_mass_in_one_bin(degrees, expected_bin):
    angle = math.radians(degrees)
    u, v = np.full((40, 50), 0.8 * math.cos(angle)), np.full((40, 50), 0.8 * math.sin(angle))
    histograms = hoof(u, v).reshape(25, 8)
    np.testing.assert_allclose(histograms[:, expected_bin], 1.0)
    assert histograms.sum() == pytest.approx(25.0)
    for global_weight in ("none", "flow"):
        descriptor = biwoof(u, v, global_weight=global_weight).reshape(25, 8)
        assert np.count_nonzero(descriptor) == 25 and (descriptor[:, expected_bin] > 0).all()
        assert np.linalg.norm(descriptor) == pytest.approx(1.0)
    np.testing.assert_allclose(biwoof(u, v, global_weight="none").reshape(25, 8)[:, expected_bin], 0.2)
    # A translation has no strain: every global strain weight is 0, and so is the descriptor.
    assert not biwoof(u, v).any()


def test_exactly_leftward_flow_is_minus_180_degrees():
    # atan2(0, -1) is +180°, outside [-180°, 180°): it is the first bin's edge, -180°, not the last bin.
    u, v = np.full((10, 10), -1.0), np.zeros((10, 10))
    np.testing.assert_array_equal(hoof(u, v, blocks=(1, 1)), [1, 0, 0, 0, 0, 0, 0, 0])


def half_and_half() -> tuple[np.ndarray, np.ndarray]:
    """Left half moves right at 1 px (bin 4), right half up at 3 px (bin 2); strain lies on the seam."""
    u, v = np.zeros((20, 20)), np.zeros((20, 20))
    u[:, :10] = 1.0
    v[:, 10:] = -3.0
    return u, v


@pytest.mark.parametrize(
    ("local_weight", "up_over_right"), [("none", 1.0), ("flow", 3.0), ("strain", math.inf)]
)
def test_local_weights(local_weight, up_over_right):
    u, v = half_and_half()
    descriptor = biwoof(u, v, blocks=(1, 1), local_weight=local_weight, global_weight="none")
    right, up = descriptor[4], descriptor[2]
    assert np.count_nonzero(descriptor) == (1 if math.isinf(up_over_right) else 2)
    if math.isinf(up_over_right):  # backward differences put the seam's strain in the right half's column 10
        assert right == 0 and up == pytest.approx(1.0)
    else:
        assert up / right == pytest.approx(up_over_right)
    if local_weight == "flow":
        np.testing.assert_allclose(hoof(u, v, blocks=(1, 1))[[4, 2]], [0.25, 0.75])


def smooth_flow(seed: int = 5, shape: tuple[int, int] = (60, 70)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return tuple(ndimage.gaussian_filter(rng.standard_normal(shape), 4) * 20 for _ in range(2))


def test_biwoof_block_layout_is_biwoof_m():
    # h = 28: MATLAB rows 1..29, 28..57, 56..85, 84..113, 112..140 (one-based, inclusive).
    assert biwoof_block_edges(140, 5) == [(0, 29), (27, 57), (55, 85), (83, 113), (111, 140)]


def test_biwoof_global_weights_are_the_block_strain_sums():
    u, v = smooth_flow()
    strain = optical_strain(u, v)
    rows, cols = biwoof_block_edges(60, 5), biwoof_block_edges(70, 5)
    sums = [strain[y0:y1, x0:x1].sum() for y0, y1 in rows for x0, x1 in cols]
    np.testing.assert_allclose(global_weights(u, v), sums, rtol=1e-6)
    magnitude = np.hypot(u, v)
    flow_sums = [magnitude[y0:y1, x0:x1].sum() for y0, y1 in rows for x0, x1 in cols]
    np.testing.assert_allclose(global_weights(u, v, global_weight="flow"), flow_sums, rtol=1e-6)
    # With no local weight each block's histogram sums to 1 before its global weight: block totals ∝ weights.
    for global_weight, weights in (("strain", sums), ("flow", flow_sums), ("none", np.ones(25))):
        totals = biwoof(u, v, local_weight="none", global_weight=global_weight).reshape(25, 8).sum(axis=1)
        np.testing.assert_allclose(totals / totals.sum(), np.asarray(weights) / np.sum(weights), rtol=1e-5)


def test_each_biwoof_switch_changes_what_it_should():
    u, v = smooth_flow(6)
    base = biwoof(u, v)
    assert base.shape == (200,) and np.linalg.norm(base) == pytest.approx(1.0)
    # Local weight: the bins within each block move, the blocks' shares (the global weights) stay.
    for local in ("none", "strain"):
        other = biwoof(u, v, local_weight=local)
        assert not np.allclose(other, base)
        np.testing.assert_allclose(
            other.reshape(25, 8).sum(1) / other.sum(), base.reshape(25, 8).sum(1) / base.sum(), rtol=1e-5
        )
    # Global weight: the blocks' shares move, the histogram within each block stays.
    within = base.reshape(25, 8) / base.reshape(25, 8).sum(1, keepdims=True)
    for global_weight in ("none", "flow"):
        other = biwoof(u, v, global_weight=global_weight).reshape(25, 8)
        assert not np.allclose(other.sum(1) / other.sum(), base.reshape(25, 8).sum(1) / base.sum())
        np.testing.assert_allclose(other / other.sum(1, keepdims=True), within, rtol=1e-5)
    # Bins: 1..10 of them, 25 per bin; one bin leaves each block its global weight only.
    for bins in (1, 4, 10):
        assert biwoof(u, v, bins=bins).shape == (25 * bins,)
    np.testing.assert_allclose(biwoof(u, v, bins=1, global_weight="none"), 0.2, rtol=1e-6)


# --- sparse sampling (DMD, DMDSP) -----------------------------------------------------------------------


def linear_clip(frames: int = 12) -> np.ndarray:
    """A clip that is exactly four dynamic modes: a still background (μ = 1), a decaying pattern (μ = 0.8)
    and an oscillating pair (μ = 0.97 e^{±0.6i})."""
    rng = np.random.default_rng(7)
    background, decaying, cosine, sine = (rng.standard_normal((16, 18)) for _ in range(4))
    t = np.arange(frames)[:, None, None]
    return (
        2
        + background
        + 0.3 * decaying * 0.8**t
        + 0.1 * 0.97**t * (cosine * np.cos(0.6 * t) + sine * np.sin(0.6 * t))
    )


def test_dmdsp_with_gamma_zero_keeps_all_modes_and_reconstructs_the_clip():
    clip = linear_clip()
    modes = dmdsp(clip, gamma=0.0)
    assert modes.num_kept == len(modes.kept) == 4
    np.testing.assert_allclose(np.sort(np.abs(modes.eigenvalues)), [0.8, 0.97, 0.97, 1.0], atol=1e-8)
    np.testing.assert_allclose(modes.reconstruct(), clip, atol=1e-5)
    assert modes.residual < 1e-12


def test_dmd_of_an_ordinary_clip_reconstructs_all_but_its_last_frame():
    clip = np.random.default_rng(8).random((8, 12, 14))
    rebuilt = dmdsp(clip, 0.0).reconstruct()
    np.testing.assert_allclose(rebuilt[:-1], clip[:-1], atol=1e-5)
    assert np.abs(rebuilt[-1] - clip[-1]).max() > 0.1  # the last frame is outside the span of the others


def test_larger_gamma_keeps_fewer_modes():
    clip = linear_clip()
    kept = [dmdsp(clip, gamma).num_kept for gamma in (0.0, 0.01, 0.3, 1.0, 3.0)]
    assert kept == sorted(kept, reverse=True) and kept[0] == 4 and 0 < kept[-2] < 4
    assert dmdsp(clip, 0.3).residual > dmdsp(clip, 0.0).residual
    with pytest.raises(ValueError, match="keeps none"):
        sparse_sample(clip, 100.0)


def test_admm_soft_thresholds_and_polishing_refits():
    # With P = I the problem splits per amplitude: α_i = max(|q_i| - γ/2, 0) (ADMM); polishing gives q_i back.
    sparse, polished = dmdsp_amplitudes(np.eye(3, dtype=complex), np.array([1.0, 0.02, -0.5j]), gamma=0.1)
    np.testing.assert_allclose(sparse, [0.95, 0, -0.45j], atol=1e-4)
    np.testing.assert_allclose(polished, [1.0, 0, -0.5j], atol=1e-12)


def test_tim_and_sparse_sampling_keep_a_clip_s_length_when_asked_to():
    clip = linear_clip()
    np.testing.assert_allclose(sparse_sample(clip, 0.0, length=len(clip)), clip, atol=1e-5)
    assert sparse_sample(clip, 0.3).shape == (dmdsp(clip, 0.3).num_kept, 16, 18)
    assert sparse_sample(clip, 0.0, length=5).shape == (5, 16, 18)
    texture = np.random.default_rng(9).random((9, 12, 14))
    np.testing.assert_allclose(tim(texture, 9), texture, atol=1e-4)


# --- DescriptorSpec and compute_descriptor ---------------------------------------------------------------


class BulgingTexture:
    """A FrameSource: a smooth texture whose centre bulges out further in every frame (a non-rigid motion,
    so flow, strain and LBP-TOP's temporal planes all see it), uint8 grey (48, 56)."""

    def __init__(self, frame_numbers=range(0, 12), seed: int = 0):
        self.frame_numbers = tuple(frame_numbers)
        rng = np.random.default_rng(seed)
        texture = ndimage.gaussian_filter(rng.standard_normal((48, 56)), 2.0)
        self._texture = 128 + 40 * texture / texture.std()
        yy, xx = np.mgrid[0:48, 0:56].astype(np.float64)
        self._grid = yy, xx
        self._bump = np.exp(-((yy - 24) ** 2 + (xx - 28) ** 2) / 120.0)

    def read(self, number: int) -> np.ndarray:
        k = number - self.frame_numbers[0]
        yy, xx = self._grid
        shift = 0.25 * k * self._bump
        moved = ndimage.map_coordinates(
            self._texture, [yy - shift * (yy - 24) / 8, xx - shift * (xx - 28) / 8]
        )
        return np.clip(np.rint(moved), 0, 255).astype(np.uint8)

    def fingerprint(self) -> str:
        return f"bulging-texture/{self.frame_numbers}"


class StillFrames(BulgingTexture):
    """The same grey frame over and over."""

    def read(self, number: int) -> np.ndarray:
        return np.full((48, 56), 100, np.uint8)


def make_sample(offset: int = 11, apex: int | None = 7, sample_id: str = "synthetic/s01/clip01") -> Sample:
    return Sample(
        sample_id=sample_id,
        dataset="synthetic",
        subject="synthetic/s01",
        clip=sample_id.rsplit("/", 1)[-1],
        frames=BulgingTexture(range(0, offset + 1)),
        onset=0,
        apex=apex,
        offset=offset,
        emotion="happiness",
    )


def test_the_test_clip_is_a_frame_source():
    assert isinstance(BulgingTexture(), FrameSource)


SPECS = [
    DescriptorSpec(),
    DescriptorSpec.preset("casme2"),
    DescriptorSpec.preset("smic"),
    DescriptorSpec.preset("meb"),
    DescriptorSpec(points=(8, 4, 4), slices=2, mapping="none", blocks=(2, 3)),
    DescriptorSpec(temporal="sparse"),
    DescriptorSpec(temporal="uniform", length=9, span=("onset", "apex")),
    DescriptorSpec(descriptor="lbpsip", radii=(1, 1, 2), overlap=0.5),
    DescriptorSpec(descriptor="hoof", flow_method="dis"),
    DescriptorSpec(descriptor="biwoof", flow_method="dis"),
    DescriptorSpec(descriptor="biwoof", flow_method="dis", frames=("onset", "random"), bins=4),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.descriptor}-{s.key()[:6]}")
def test_shape_is_known_before_computing(spec):
    descriptor = compute_descriptor(make_sample(), spec)
    assert descriptor.dtype == np.float32 and descriptor.shape == spec.shape
    assert np.isfinite(descriptor).all() and descriptor.any()
    assert spec.channels == (spec.descriptor,)


def test_preset_lengths():
    assert DescriptorSpec.preset("casme2").shape == (5 * 5 * 3 * 15,)
    assert DescriptorSpec.preset("smic").shape == DescriptorSpec.preset("meb").shape == (8 * 8 * 3 * 59,)
    assert DescriptorSpec(descriptor="biwoof").shape == (200,)
    assert spec_from_mapping({"preset": "smic", "radii": [1, 1, 3]}) == DescriptorSpec.preset(
        "smic", radii=(1, 1, 3)
    )
    with pytest.raises(ValueError, match="unknown LBP-TOP preset"):
        DescriptorSpec.preset("casme3")
    with pytest.raises(ValueError, match="unknown descriptor spec field"):
        spec_from_mapping({"descriptor": "hoof", "bin": 8})


def test_temporal_normalisation_sets_the_number_of_frames():
    sample = make_sample()
    for spec, steps in (
        (DescriptorSpec(), 12),
        (DescriptorSpec(temporal="tim", length=12), 12),
        (DescriptorSpec(temporal="tim", length=20), 20),
        (DescriptorSpec(temporal="sparse", length=12), 12),
        (DescriptorSpec(temporal="uniform", length=6), 6),
        (DescriptorSpec.preset("meb"), 12),  # 12 frames: not shorter than 10, left as it is
    ):
        assert compute_descriptor_with_info(sample, spec)[1]["steps"] == steps
    assert compute_descriptor_with_info(make_sample(offset=7), DescriptorSpec.preset("meb"))[1]["steps"] == 10
    kept = compute_descriptor_with_info(sample, DescriptorSpec(temporal="sparse", sparse_gamma=1e-3))[1][
        "steps"
    ]
    assert 1 <= kept < 12


BASES = {
    "lbptop": DescriptorSpec(),
    "lbpsip": DescriptorSpec(descriptor="lbpsip"),
    "hoof": DescriptorSpec(descriptor="hoof"),
    "biwoof": DescriptorSpec(descriptor="biwoof"),
    "tim10": DescriptorSpec(temporal="tim", length=10),
    "sparse": DescriptorSpec(temporal="sparse"),
    "face": DescriptorSpec(crop="face"),
}
CHANGES = [
    ("lbptop", {"blocks": (8, 8)}),
    ("lbptop", {"radii": (1, 1, 2)}),
    ("lbptop", {"points": (8, 4, 4)}),
    ("lbptop", {"mapping": "none"}),
    ("lbptop", {"slices": 2}),
    ("lbptop", {"overlap": 0.7}),
    ("lbptop", {"interpolation": "nearest"}),
    ("lbptop", {"temporal": "tim", "length": 10}),
    ("lbptop", {"temporal": "uniform", "length": 10}),
    ("lbptop", {"temporal": "sparse"}),
    ("lbptop", {"temporal": "sparse", "length": 10}),
    ("tim10", {"length": 12}),
    ("tim10", {"shorter_only": True}),
    ("tim10", {"temporal": "uniform"}),
    ("sparse", {"sparse_gamma": 1e-3}),
    ("face", {"crop_size": (128, 128)}),
    ("lbptop", {"span": ("onset", "apex")}),
    ("lbptop", {"size": (64, 64)}),
    ("lbptop", {"crop": "face"}),
    ("lbpsip", {"radii": (1, 1, 3)}),
    ("lbpsip", {"blocks": (4, 4)}),
    ("lbpsip", {"slices": 3}),
    ("hoof", {"bins": 6}),
    ("hoof", {"blocks": (4, 4)}),
    ("hoof", {"frames": ("onset", "random")}),
    ("hoof", {"frames": ("onset", "offset")}),
    ("hoof", {"flow_method": "dis"}),
    ("hoof", {"flow_params": {"tau": 0.2}}),
    ("hoof", {"apex_fallback": "frame_difference"}),
    ("biwoof", {"local_weight": "none"}),
    ("biwoof", {"local_weight": "strain"}),
    ("biwoof", {"global_weight": "flow"}),
    ("biwoof", {"strain_scheme": "central"}),
    ("biwoof", {"bins": 10}),
    ("biwoof", {"apex": "spotted"}),
]


@pytest.mark.parametrize(("descriptor", "change"), CHANGES)
def test_key_changes_with_every_parameter(descriptor, change):
    base = BASES[descriptor]
    assert dataclasses.replace(base, **change).key() != base.key()


def test_key_is_stable_and_ignores_what_the_descriptor_does_not_read():
    keys = {base.key() for base in BASES.values()}
    assert len(keys) == len(BASES) and all(len(k) == 64 for k in keys)
    hydra_like = DescriptorSpec(blocks=[5, 5], radii=[1, 1, 1], points=[8, 8, 8], span=["onset", "offset"])
    assert hydra_like == DescriptorSpec() and hydra_like.key() == DescriptorSpec().key()
    # The span onset..offset reads no apex, so how a missing apex would be found cannot change the output.
    assert DescriptorSpec(apex_fallback="strain").key() == DescriptorSpec().key()
    assert DescriptorSpec(descriptor="hoof", flow_params={"tau": 0.2, "warps": 3}).key() == (
        DescriptorSpec(descriptor="hoof", flow_params=[("warps", 3), ("tau", 0.2)]).key()
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"descriptor": "lbp"}, "unknown descriptor"),
        ({"descriptor": "hoof", "radii": (2, 2, 2)}, "radii=.* is not a parameter of hoof"),
        ({"descriptor": "lbpsip", "points": (4, 4, 4)}, "points=.* is not a parameter of lbpsip"),
        ({"descriptor": "lbptop", "bins": 6}, "bins=6 is not a parameter of lbptop"),
        ({"temporal": "tim"}, "needs a length"),
        ({"length": 10}, "temporal='none' has none"),
        ({"sparse_gamma": 0.1}, "sparse_gamma applies"),
        ({"shorter_only": True, "temporal": "sparse"}, "shorter_only"),
        ({"radii": (1, 1, 0)}, "radii"),
        ({"points": (8, 8, 40)}, "points"),
        ({"overlap": 1.0}, "overlap"),
        ({"span": ("offset", "onset")}, "forward"),
        ({"descriptor": "hoof", "frames": ("apex", "random")}, "random"),
        ({"descriptor": "biwoof", "local_weight": "magnitude"}, "local weight"),
        ({"descriptor": "hoof", "flow_params": {"tua": 0.2}}, "tua"),
    ],
)
def test_bad_spec_is_rejected_naming_the_parameter(fields, message):
    with pytest.raises(ValueError, match=message):
        DescriptorSpec(**fields)


def test_errors_name_the_sample_and_the_parameter():
    short = make_sample(offset=5, sample_id="synthetic/s01/short")
    with pytest.raises(
        SampleError, match=r"synthetic/s01/short: lbptop .*radii=\[1.0, 1.0, 4.0\].*at least 9 frames"
    ):
        compute_descriptor(short, DescriptorSpec.preset("casme2"))
    still = dataclasses.replace(short, frames=StillFrames(range(0, 6)))
    with pytest.raises(SampleError, match="synthetic/s01/short: frames 0..5 .*temporal='tim' length=10"):
        compute_descriptor(still, DescriptorSpec(temporal="tim", length=10))  # no motion for TIM's curve


def test_random_frame_is_after_the_onset_and_the_same_on_every_run():
    sample = make_sample()
    drawn = random_frame_number(sample)
    assert sample.onset < drawn <= sample.offset and random_frame_number(make_sample()) == drawn
    others = {random_frame_number(make_sample(sample_id=f"synthetic/s01/c{i}")) for i in range(20)}
    assert len(others) > 3
    spec = DescriptorSpec(descriptor="hoof", frames=("onset", "random"), flow_method="dis")
    assert compute_descriptor_with_info(sample, spec)[1]["frames"] == [0, drawn]
    apex = compute_descriptor_with_info(sample, dataclasses.replace(spec, frames=("onset", "apex")))[1]
    assert apex["frames"] == [0, 7] and apex["apex_source"] == "annotated"
