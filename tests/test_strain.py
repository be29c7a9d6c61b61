"""Optical strain: analytic values for linear flows under both finite-difference schemes."""

from __future__ import annotations

import numpy as np
import pytest

from preprocessing.strain import STRAIN_SCHEMES, optical_strain, strain_components

INNER = (slice(2, -2), slice(2, -2))


def linear_flow(a: float, b: float, c: float, d: float, height: int = 24, width: int = 31):
    """u = a x + b y, v = c x + d y with x = column index, y = row index (px)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return a * x + b * y, c * x + d * y


@pytest.mark.parametrize("scheme", STRAIN_SCHEMES)
@pytest.mark.parametrize(
    ("a", "b", "c", "d"), [(0.02, 0.0, 0.0, 0.0), (0.0, 0.03, 0.0, 0.0), (0.01, -0.02, 0.05, 0.04)]
)
def test_linear_deformation_gives_analytic_strain(scheme, a, b, c, d):
    u, v = linear_flow(a, b, c, d)
    exx, eyy, exy = strain_components(u, v, scheme)
    # Distinct a, b, c, d: an x/y swap or a u/v swap in the differences changes these numbers.
    np.testing.assert_allclose(exx[INNER], a, atol=1e-5)
    np.testing.assert_allclose(eyy[INNER], d, atol=1e-5)
    np.testing.assert_allclose(exy[INNER], 0.5 * (b + c), atol=1e-5)
    magnitude = optical_strain(u, v, scheme)
    assert magnitude.dtype == np.float32 and magnitude.shape == u.shape
    np.testing.assert_allclose(magnitude[INNER], np.sqrt(a**2 + d**2 + 0.5 * (b + c) ** 2), rtol=1e-4)


@pytest.mark.parametrize("scheme", STRAIN_SCHEMES)
def test_translation_has_no_strain(scheme):
    u = np.full((20, 30), 0.7, np.float32)
    v = np.full((20, 30), -1.2, np.float32)
    np.testing.assert_array_equal(optical_strain(u, v, scheme), 0)


@pytest.mark.parametrize("scheme", STRAIN_SCHEMES)
def test_rotation_has_no_shear(scheme):
    # Small rigid rotation: u = -w y, v = w x (b = -c): no shear, no stretch.
    u, v = linear_flow(0.0, -0.03, 0.03, 0.0)
    exx, eyy, exy = strain_components(u, v, scheme)
    # Interior only: os.m's zero difference on the first row/column breaks the symmetry there.
    np.testing.assert_allclose(exy[INNER], 0, atol=1e-6)
    np.testing.assert_allclose(exx, 0, atol=1e-6)
    np.testing.assert_allclose(eyy, 0, atol=1e-6)
    np.testing.assert_allclose(optical_strain(u, v, scheme)[INNER], 0, atol=1e-6)


def test_backward_scheme_is_os_m():
    # os.m: the first column (row) has zero x (y) difference; elsewhere f[i, j] - f[i, j-1].
    u = np.array([[0.0, 1.0, 3.0], [0.0, 2.0, 6.0]], np.float32)
    exx, eyy, _ = strain_components(u, np.zeros_like(u), "backward")
    np.testing.assert_array_equal(exx, [[0, 1, 2], [0, 2, 4]])
    _, eyy, exy = strain_components(np.zeros_like(u), u, "backward")
    np.testing.assert_array_equal(eyy, [[0, 0, 0], [0, 1, 3]])
    np.testing.assert_array_equal(exy, 0.5 * np.array([[0, 1, 2], [0, 2, 4]]))


def test_central_scheme_on_a_curved_flow():
    # u = x^2: central differences are exact for a quadratic (2x inside), backward ones lag by half a pixel.
    y, x = np.mgrid[0:8, 0:9].astype(np.float32)
    exx, _, _ = strain_components(x**2, np.zeros_like(x), "central")
    np.testing.assert_allclose(exx[:, 1:-1], 2 * x[:, 1:-1])
    exx, _, _ = strain_components(x**2, np.zeros_like(x), "backward")
    np.testing.assert_allclose(exx[:, 1:], 2 * x[:, 1:] - 1)


def test_bad_scheme_or_shapes():
    u = np.zeros((4, 5), np.float32)
    with pytest.raises(ValueError, match=r"'forward'.*backward, central"):
        optical_strain(u, u, "forward")
    with pytest.raises(ValueError, match="one shape"):
        optical_strain(u, u.T)
