"""Extreme margins stay finite: no overflow turned into NaN, no RuntimeWarning, Hessians > 0.

Each check runs with every warning turned into an error and every numpy floating-point event
raising, for both losses, both Hessian policies, both GHM densities, weighted and unweighted,
float32 and float64 margins.
"""

import functools
import warnings

import numpy as np
import pytest
from conftest import LOSSES

from boostloss import HESSIAN_FLOOR

F32_MAX = float(np.finfo(np.float32).max)  # 3.4028235e38
F64_MAX = float(np.finfo(np.float64).max)  # 1.7976931348623157e308

MAGNITUDES = {
    np.float32: [0.0, 1e-30, 36.0, 88.0, 89.0, 104.0, 745.0, 746.0, 1e4, 1e30, 1e38, F32_MAX],
    np.float64: [
        0.0,
        5e-324,
        36.0,
        709.0,
        710.0,
        745.0,
        746.0,
        1e4,
        1e30,
        3.4e38,
        1e300,
        1.7e308,
        F64_MAX,
    ],
}


def extreme_margins(dtype):
    """Every magnitude with both signs, each with both labels, plus a few ordinary samples."""
    mags = np.array(MAGNITUDES[dtype], dtype=np.float64)
    signed = np.concatenate([mags, -mags])
    x = np.concatenate([signed, signed, [-1.0, 0.5, 2.0, -0.3]]).astype(dtype)
    y = np.concatenate([np.zeros(signed.size), np.ones(signed.size), [0, 1, 1, 0]])
    return y, x


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def extreme_data(request):
    return extreme_margins(request.param)


def strict(call):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            return call()


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_gradient_hessian_finite_at_extreme_margins(loss_name, weighted, extreme_data):
    y, x = extreme_data
    rng = np.random.default_rng(0)
    w = rng.uniform(0.1, 3.0, size=y.size) if weighted else None
    loss = LOSSES[loss_name]()
    for _ in range(3):  # repeated rounds exercise GHM's moving average
        grad, hess = strict(lambda: loss.gradient_hessian(y, x, sample_weight=w))
        assert grad.dtype == np.float64 and hess.dtype == np.float64
        assert np.isfinite(grad).all(), x[~np.isfinite(grad)]
        assert np.isfinite(hess).all(), x[~np.isfinite(hess)]
        assert (hess > 0).all(), x[~(hess > 0)]
        # Never more than the cross-entropy's |p - y| <= 1 times the weight and GHM's beta.
        assert np.abs(grad).max() < 1e6


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_gradient_direction_at_saturation(loss_name):
    """Confidently wrong samples push the margin toward the true class; right ones barely move."""
    x = np.array([-1e30, 1e30, 1e30, -1e30, -F64_MAX, F64_MAX])
    y = np.array([1, 0, 1, 0, 1, 0])
    grad, hess = strict(lambda: LOSSES[loss_name]().gradient_hessian(y, x))
    wrong = np.array([True, True, False, False, True, True])
    assert (grad[wrong & (y == 1)] < 0).all()
    assert (grad[wrong & (y == 0)] > 0).all()
    assert (np.abs(grad[~wrong]) < 1e-300).all()
    # Focal floors the Hessian itself; GHM floors p (1 - p) before its weights scale it.
    assert (hess >= HESSIAN_FLOOR).all() if loss_name.startswith("focal") else (hess > 0).all()


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_loss_never_nan_at_extreme_margins(loss_name, weighted, extreme_data):
    y, x = extreme_data
    w = np.linspace(0.5, 2.0, y.size) if weighted else None
    out = strict_warnings_only(lambda: LOSSES[loss_name]().loss(y, x, sample_weight=w))
    assert not np.isnan(out).any()
    assert (out >= 0).all()
    # Up to 1e30 the loss (about |x| times a bounded weight) is representable and must be finite.
    moderate = np.abs(x.astype(np.float64)) <= 1e30
    assert np.isfinite(out[moderate]).all()


def strict_warnings_only(call):
    # A loss of a sample beyond ~1e308 can round to inf legitimately; it must do so silently.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return call()


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_loss_underflow_does_not_raise(loss_name):
    """Correct samples far from the boundary have losses that underflow to 0: no error for that."""
    x = np.array([745.0, -745.0, 1e4, 800.0, -1.0])
    y = np.array([1, 0, 1, 1, 0])
    out = strict(lambda: LOSSES[loss_name]().loss(y, x))
    assert np.isfinite(out).all() and (out >= 0).all()


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_tiny_and_huge_weights_stay_finite(loss_name):
    y, x = extreme_margins(np.float64)
    for scale in (1e-300, 1e-150, 1e150, 1e300):
        w = np.full(y.size, scale)
        grad, hess = strict(
            functools.partial(LOSSES[loss_name]().gradient_hessian, y, x, sample_weight=w)
        )
        assert np.isfinite(grad).all() and np.isfinite(hess).all()
        assert (hess > 0).all()


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_init_score_finite_with_extreme_imbalance(loss_name):
    y = np.zeros(100_000)
    y[:1] = 1
    score = strict_warnings_only(lambda: LOSSES[loss_name]().init_score(y))
    assert np.isfinite(score) and score < 0
