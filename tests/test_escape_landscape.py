"""The Styblinski-Tang training loss: exact critical points against numerical minimisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import optimize

from lcamlab.escape.landscape import (
    StyblinskiTangLandscape,
    critical_points,
    make_training_data,
    styblinski_tang,
    training_loss_coefficients,
)


def _direct_loss(data: np.ndarray, coordinate: int):
    """The training loss of one coordinate straight from its definition (no moments)."""
    x = data[:, coordinate]

    def loss(u: float) -> float:
        y = u - x
        return float(np.mean(0.5 * (y**4 - 16 * y**2 + 5 * y)))

    return loss


@pytest.mark.parametrize("noise_scale, seed", [(1.0, 0), (0.5, 3), (1.3, 7)])
def test_critical_points_match_numerical_minimisation(noise_scale, seed):
    data = make_training_data(2000, 4, noise_scale, seed=seed).numpy()
    points = critical_points(training_loss_coefficients(data))
    for i in range(4):
        loss = _direct_loss(data, i)
        top = points.boundary[i]
        lo_min, hi_min = sorted([points.shallow_min[i], points.deep_min[i]])
        left = optimize.minimize_scalar(loss, bounds=(lo_min - 3, top), method="bounded",
                                        options={"xatol": 1e-10})
        right = optimize.minimize_scalar(loss, bounds=(top, hi_min + 3), method="bounded",
                                         options={"xatol": 1e-10})
        ridge = optimize.minimize_scalar(lambda u: -loss(u), bounds=(lo_min, hi_min), method="bounded",
                                         options={"xatol": 1e-10})
        assert left.x == pytest.approx(lo_min, abs=1e-6)
        assert right.x == pytest.approx(hi_min, abs=1e-6)
        assert ridge.x == pytest.approx(top, abs=1e-6)
        # the shallow valley is the higher of the two minima; the barrier is measured from it
        assert loss(points.shallow_min[i]) >= loss(points.deep_min[i])
        assert points.barrier[i] == pytest.approx(loss(top) - loss(points.shallow_min[i]), rel=1e-9)
        # curvature: numerical second derivative
        h = 1e-4
        for u, curvature in [(points.shallow_min[i], points.curvature_shallow[i]),
                             (top, points.curvature_boundary[i])]:
            numeric = (loss(u + h) - 2 * loss(u) + loss(u - h)) / h**2
            assert numeric == pytest.approx(curvature, rel=1e-4)
        assert points.direction[i] == (1.0 if points.shallow_min[i] > top else -1.0)


def test_noiseless_limit_gives_the_textbook_points():
    # 004 Appendix E: -2.903534, 0.156731, 2.746803 for the noiseless 1-D function
    data = make_training_data(100, 2, 1e-9, seed=0)
    points = critical_points(training_loss_coefficients(data))
    np.testing.assert_allclose(points.deep_min, -2.903534, atol=1e-6)
    np.testing.assert_allclose(points.boundary, 0.156731, atol=1e-6)
    np.testing.assert_allclose(points.shallow_min, 2.746803, atol=1e-6)


def test_noise_moves_the_points_as_the_mean_loss_predicts():
    # E f(u - x) = 1/2 (u^4 - 10 u^2 + 5 u) + const for x ~ N(0, 1)
    landscape = StyblinskiTangLandscape(dim=3, n_samples=200_000, noise_scale=1.0, seed=1, dtype=torch.float64)
    expected = np.sort(np.roots([2.0, 0.0, -10.0, 2.5]).real)
    np.testing.assert_allclose(landscape.points.deep_min, expected[0], atol=0.03)
    np.testing.assert_allclose(landscape.points.boundary, expected[1], atol=0.03)
    np.testing.assert_allclose(landscape.points.shallow_min, expected[2], atol=0.03)


def test_sharpness_rescales_positions_and_hessian_not_barrier():
    landscape = StyblinskiTangLandscape(dim=2, n_samples=500, seed=2)
    points = landscape.points
    at4 = points.in_theta(4.0)
    np.testing.assert_allclose(at4["shallow_min"], points.shallow_min / 2)
    np.testing.assert_allclose(at4["hessian_shallow"], 4 * points.curvature_shallow)
    # the loss at theta = u / sqrt(k) with sharpness k is the loss at u: the barrier does not move
    data = landscape.data.double()
    k = 4.0
    theta_min = torch.as_tensor(at4["shallow_min"])
    theta_top = torch.as_tensor(at4["boundary"])
    barrier = (styblinski_tang(k**0.5 * theta_top - data).mean() - styblinski_tang(k**0.5 * theta_min - data).mean())
    assert float(barrier) == pytest.approx(points.barrier.sum(), rel=1e-9)
    with pytest.raises(ValueError, match="sharpness k"):
        points.in_theta(0.0)


def test_gradient_formula_matches_autograd():
    # the eager runner's gradient kernel, f'(y) = (2y^2 - 16) y + 5/2 (times sqrt(k) = 1 here)
    from lcamlab.escape.simulate import _grad_from_y

    y = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    styblinski_tang(y).sum().backward()
    constants = (torch.tensor(-16.0, dtype=torch.float64), torch.tensor(2.5, dtype=torch.float64))
    grad = _grad_from_y(y.detach().clone(), torch.tensor(1.0, dtype=torch.float64), None, constants)
    torch.testing.assert_close(grad, y.grad, rtol=1e-12, atol=1e-12)


def test_single_valley_is_an_unreachable_boundary():
    # sigma = 2: the u^2 coefficient 3 m2 - 8 turns positive, one valley per coordinate
    with pytest.raises(ValueError, match="Unreachable valley boundary"):
        StyblinskiTangLandscape(dim=3, n_samples=5000, noise_scale=2.0)


def test_bad_data_arguments():
    with pytest.raises(ValueError, match="noise scale"):
        make_training_data(10, 2, -1.0)
    with pytest.raises(ValueError, match="dimension"):
        make_training_data(10, 0, 1.0)
