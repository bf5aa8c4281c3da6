"""Properties over random inputs (hypothesis): finite outputs, positive Hessians, the focal gradient
points toward the label, and GHM's harmonizing weights are normalised."""

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from boostloss import FocalLoss, GHMLoss

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

sizes = st.integers(min_value=1, max_value=60)
margin_values = st.one_of(
    st.floats(-50, 50, allow_nan=False),
    st.floats(-1e308, 1e308, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 745.0, -745.0, 1e-300, -1e-300]),
)


@st.composite
def problems(draw, weighted=None):
    n = draw(sizes)
    y = draw(arrays(np.float64, n, elements=st.sampled_from([0.0, 1.0])))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    x = draw(arrays(np.float64, n, elements=margin_values))
    with np.errstate(over="ignore"):
        x = x.astype(dtype)
    x = np.where(np.isfinite(x), x, np.sign(x) * np.finfo(dtype).max).astype(dtype)
    if weighted is None:
        weighted = draw(st.booleans())
    # Zero or within nine orders of magnitude: GHM's beta = total / bin weight overflows for weight
    # ratios beyond the float64 range (a denormal weight next to a weight of 1, say).
    weight_values = st.one_of(st.just(0.0), st.floats(1e-6, 1e3))
    w = draw(arrays(np.float64, n, elements=weight_values)) if weighted else None
    return y, x, w


focal_losses = st.builds(
    FocalLoss,
    gamma=st.floats(0.0, 5.0),
    alpha=st.one_of(st.none(), st.floats(0.0, 1.0)),
    hessian=st.sampled_from(["exact", "gauss_newton"]),
)
ghm_losses = st.one_of(
    st.builds(
        GHMLoss, bins=st.integers(1, 40), momentum=st.floats(0.0, 0.95), density=st.just("bins")
    ),
    st.builds(GHMLoss, density=st.just("window"), epsilon=st.floats(1e-3, 1.0)),
)


@SETTINGS
@given(loss=st.one_of(focal_losses, ghm_losses), problem=problems(), rounds=st.integers(1, 3))
def test_outputs_finite_and_hessian_positive(loss, problem, rounds):
    y, x, w = problem
    for _ in range(rounds):
        grad, hess = loss.gradient_hessian(y, x, sample_weight=w)
        assert np.isfinite(grad).all() and np.isfinite(hess).all()
        if w is None:
            assert (hess > 0).all()
        else:
            assert (hess[w > 0] > 0).all() and (hess >= 0).all()
    out = loss.loss(y, x, sample_weight=w)
    assert not np.isnan(out).any() and (out >= 0).all()


@SETTINGS
@given(loss=focal_losses, problem=problems(weighted=False))
@example(
    loss=FocalLoss(alpha=5e-324, gamma=0.0),
    problem=(np.array([1.0]), np.array([0.0], dtype=np.float32), None),
)
def test_focal_gradient_sign_is_sign_of_p_minus_y(loss, problem):
    y, x, _ = problem
    grad, _ = loss.gradient_hessian(y, x)
    alpha_t = (
        np.ones_like(y) if loss.alpha is None else np.where(y == 1, loss.alpha, 1 - loss.alpha)
    )
    # p - y is negative for every positive and positive for every negative (p is never exactly 0
    # or 1 in exact arithmetic); the gradient has that sign unless it underflows to zero or alpha_t
    # switches the class off.
    expected = np.where(y == 1, -1.0, 1.0)
    nonzero = (grad != 0) & (alpha_t > 0)
    assert (np.sign(grad[nonzero]) == expected[nonzero]).all()
    # Where the margin is moderate and alpha_t is not itself near underflow (alpha = 5e-324 times
    # |p - y| = 0.5 rounds to 0) the gradient cannot underflow: at |x| < 30 and gamma <= 5 its
    # magnitude is at least alpha_t * 1e-78.
    moderate = (np.abs(x.astype(np.float64)) < 30) & (alpha_t > 1e-200)
    assert (grad[moderate] != 0).all()


@SETTINGS
@given(bins=st.integers(1, 40), problem=problems(weighted=False))
def test_ghm_bins_weights_sum_to_n(bins, problem):
    y, x, _ = problem
    beta = GHMLoss(bins=bins, momentum=0.0).harmonizing_weights(y, x)
    assert beta.shape == y.shape and (beta > 0).all()
    assert np.isclose(beta.sum(), y.size, rtol=1e-12)


@SETTINGS
@given(epsilon=st.floats(1e-3, 1.0), problem=problems(weighted=False))
def test_ghm_window_weights_sum_to_n(epsilon, problem):
    y, x, _ = problem
    beta = GHMLoss(density="window", epsilon=epsilon).harmonizing_weights(y, x)
    assert (beta > 0).all()
    assert np.isclose(beta.sum(), y.size, rtol=1e-12)


@SETTINGS
@given(loss=ghm_losses, problem=problems(weighted=True))
def test_ghm_weighted_weights_normalised(loss, problem):
    """With sample weights: sum_i w_i beta_i equals the total weight; zero-weight samples get 0."""
    y, x, w = problem
    loss.set_params(momentum=0.0)
    beta = loss.harmonizing_weights(y, x, sample_weight=w)
    assert np.isfinite(beta).all() and (beta >= 0).all()
    assert (beta[w == 0] == 0).all()
    assert (beta[w > 0] > 0).all()
    if w.sum() > 0:
        assert np.isclose((w * beta).sum(), w.sum(), rtol=1e-9)


@SETTINGS
@given(
    loss=st.one_of(focal_losses, ghm_losses),
    problem=problems(weighted=False),
    scale=st.floats(1e-3, 1e3),
)
def test_uniform_weight_scales_gradient(loss, problem, scale):
    """A constant weight c multiplies focal gradients by c; GHM's are unchanged except for c."""
    y, x, _ = problem
    loss.set_params(**({"momentum": 0.0} if isinstance(loss, GHMLoss) else {}))
    g1, h1 = loss.gradient_hessian(y, x)
    gc, hc = loss.gradient_hessian(y, x, sample_weight=np.full(y.size, scale))
    np.testing.assert_allclose(
        gc, scale * g1, rtol=1e-9, atol=1e-300
    )  # subnormals carry few digits
    np.testing.assert_allclose(
        hc, scale * h1, rtol=1e-9, atol=1e-300
    )  # subnormals carry few digits


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_gradient_sign_holds_at_the_boundary_cases(gamma):
    """A fixed check of the property above that runs without hypothesis' search."""
    y = np.array([0, 1, 0, 1])
    x = np.array([-20.0, 20.0, 0.0, 0.0])
    grad, _ = FocalLoss(gamma=gamma, alpha=None).gradient_hessian(y, x)
    assert grad[0] > 0 and grad[1] < 0 and grad[2] > 0 and grad[3] < 0
