"""The class posterior of a focal model from its margin: ``posterior_from_margin`` and every loss's
``predict_proba``, the estimators built on them, and the map a deployed model needs.

The inverse is checked against an independent minimiser of the focal risk (mpmath, 40 digits): for
a true class probability q the minimiser p* of the expected focal loss is found numerically, and
the map must bring its margin back to q.
"""

import json
import pathlib
import pickle
import re
import warnings

import mpmath as mp
import numpy as np
import pytest
from scipy.special import expit, softmax
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV

from boostloss import (
    FocalLoss,
    GHMLoss,
    LGBMClassifier,
    OHEMLoss,
    XGBClassifier,
    make_loss,
    posterior_from_margin,
)
from boostloss._frameworks import compat_xgboost as _compat_xgboost

GAMMAS = [0.0, 0.5, 1.0, 2.0, 3.0, 5.0]
RATES = [1e-4, 1e-3, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99, 0.999, 0.9999]
ROOT = pathlib.Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------------


def _focal_risk_minimiser(q, gamma, alpha):
    """The margin x* minimising q a1 FL1(x) + (1 - q) a0 FL0(x), found numerically (mpmath).

    FL1 = -(1 - p)^gamma log p, FL0 = -p^gamma log(1 - p), p = sigmoid(x). The risk's derivative
    (by mpmath's numerical differentiation) is bracketed and its root refined; nothing of the
    closed-form inverse is used.
    """
    a1, a0 = (1, 1) if alpha is None else (mp.mpf(alpha), 1 - mp.mpf(alpha))
    q = mp.mpf(q)
    gamma = mp.mpf(gamma)

    def risk(x):
        p = 1 / (1 + mp.exp(-x))
        return -q * a1 * (1 - p) ** gamma * mp.log(p) - (1 - q) * a0 * p**gamma * mp.log(1 - p)

    def slope(x):
        return mp.diff(risk, x)

    lo, hi = mp.mpf(-60), mp.mpf(60)
    assert slope(lo) < 0 < slope(hi)
    for _ in range(60):  # bisection to a small bracket, then the secant method inside it
        mid = (lo + hi) / 2
        if slope(mid) < 0:
            lo = mid
        else:
            hi = mid
    return mp.findroot(slope, (lo, hi), solver="anderson")


def _softmax_focal_minimiser(q, gamma, alpha):
    """Class probabilities p* minimising sum_k alpha_k q_k FL(p_k) over the simplex (mpmath).

    FL(p) = -(1 - p)^gamma log p is convex and decreasing; at the minimiser the Lagrange condition
    alpha_k q_k phi(p_k) = lambda holds for every k, phi = -FL'. For a given lambda each p_k is a
    root of a monotone function, and lambda is set by sum_k p_k = 1: two nested bisections.
    """
    gamma = mp.mpf(gamma)
    q = [mp.mpf(v) for v in q]
    alpha = [mp.mpf(1)] * len(q) if alpha is None else [mp.mpf(a) for a in alpha]

    def phi(p):  # -d/dp FL(p) > 0, decreasing in p
        return (1 - p) ** gamma / p - gamma * (1 - p) ** (gamma - 1) * mp.log(p)

    def p_of(c):  # phi(p) = c, by bisection in log p
        lo, hi = mp.mpf(-200), mp.mpf(0)
        for _ in range(200):
            mid = (lo + hi) / 2
            if phi(mp.exp(mid)) > c:
                lo = mid
            else:
                hi = mid
        return mp.exp((lo + hi) / 2)

    def total(log_lambda):
        lam = mp.exp(log_lambda)
        return sum(p_of(lam / (a * v)) for a, v in zip(alpha, q, strict=True)) - 1

    lo, hi = mp.mpf(-60), mp.mpf(60)  # total decreases in lambda
    for _ in range(120):
        mid = (lo + hi) / 2
        if total(mid) > 0:
            lo = mid
        else:
            hi = mid
    lam = mp.exp((lo + hi) / 2)
    return [p_of(lam / (a * v)) for a, v in zip(alpha, q, strict=True)]


def _closed_form_logit(x, gamma):
    """MATH.md's binary map in mpmath (for the tails, where float64 references round)."""
    x, gamma = mp.mpf(x), mp.mpf(gamma)
    sp = lambda t: mp.log1p(mp.exp(t))  # noqa: E731
    return (gamma - 1) * x + mp.log(mp.exp(x) + gamma * sp(x)) - mp.log(mp.exp(-x) + gamma * sp(-x))


# --------------------------------------------------------------------------------------------
# The inverse
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [None, 0.25, 0.75])
@pytest.mark.parametrize("gamma", GAMMAS)
def test_binary_map_inverts_the_focal_risk_minimiser(gamma, alpha):
    mp.mp.dps = 40
    worst = 0.0
    for q in RATES:
        x_star = float(_focal_risk_minimiser(q, gamma, alpha))
        proba = FocalLoss(gamma=gamma, alpha=alpha).predict_proba(np.array([x_star]))[0]
        # the smaller of q and 1 - q carries the relative error that matters
        worst = max(worst, abs(proba[1] - q) / q, abs(proba[0] - (1 - q)) / (1 - q))
    assert worst <= 1e-6  # the bound
    # reached: 1.5e-15 (rounding x* to float64 alone moves q by about (1 + gamma) |x*| 1e-16)
    assert worst <= 1e-13


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize(
    "q, alpha",
    [
        ([0.7, 0.2, 0.1], None),
        ([0.001, 0.01, 0.989], [0.2, 0.3, 0.5]),
        ([0.05, 0.5, 0.05, 0.3, 0.1], [1.0, 2.0, 0.5, 1.0, 3.0]),
        ([1e-4, 0.25, 0.25, 0.25, 0.2499], None),
    ],
    ids=["3-none", "3-alpha", "5-alpha", "5-rare"],
)
def test_softmax_map_inverts_the_focal_risk_minimiser(q, alpha, gamma):
    mp.mp.dps = 40
    p_star = _softmax_focal_minimiser(q, gamma, alpha)
    margins = np.array([[float(mp.log(p)) for p in p_star]])
    proba = FocalLoss(gamma=gamma, alpha=alpha).predict_proba(margins)[0]
    np.testing.assert_allclose(proba, q, rtol=1e-13)  # reached: 1.4e-15


def test_the_focal_minimiser_is_far_from_the_rate():
    # The distortion the map undoes (MATH.md): gamma = 2, no alpha, q = 0.01 -> p* = 0.154.
    mp.mp.dps = 30
    x_star = _focal_risk_minimiser(0.01, 2.0, None)
    assert float(1 / (1 + mp.exp(-x_star))) == pytest.approx(0.154, abs=5e-4)


@pytest.mark.parametrize("gamma", [0.5, 2.0, 5.0])
def test_binary_tails_match_the_closed_form_in_high_precision(gamma):
    mp.mp.dps = 60
    xs = [-700.0, -300.0, -40.0, -5.0, -1e-3, 1e-8, 0.7, 30.0, 200.0, 650.0]
    proba = posterior_from_margin(np.array(xs), gamma=gamma)
    for x, row in zip(xs, proba, strict=True):
        logit = _closed_form_logit(x, gamma)
        q1 = 1 / (1 + mp.exp(-logit))
        q0 = 1 / (1 + mp.exp(logit))
        for got, want in ((row[1], q1), (row[0], q0)):
            if want > mp.mpf("1e-300"):
                # a margin rounded to float64 moves q by (1 + gamma) |x| 1e-16 in relative terms
                assert abs(got - want) / want <= 4 * (1 + gamma) * max(abs(x), 1) * 2.3e-16


def test_gamma_zero_is_scipys_sigmoid_and_softmax_to_the_bit():
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(size=1000) * 8, 0.0, -0.0, 745.0, -745.0, 1e300, -1e300]
    for margins in (x, np.r_[x[:-2], 3e38, -3e38].astype(np.float32)):
        got = FocalLoss(gamma=0.0, alpha=None).predict_proba(margins)
        wide = margins.astype(np.float64)
        np.testing.assert_array_equal(got[:, 1], expit(wide))
        np.testing.assert_array_equal(got[:, 0], expit(-wide))
        np.testing.assert_array_equal(posterior_from_margin(margins), got)
    z = rng.normal(size=(500, 4)) * 5
    np.testing.assert_array_equal(
        FocalLoss(gamma=0.0, alpha=None).predict_proba(z), softmax(z, axis=1)
    )
    for loss in (GHMLoss(), OHEMLoss(), GHMLoss(density="window")):
        np.testing.assert_array_equal(loss.predict_proba(x)[:, 1], expit(x))
        np.testing.assert_array_equal(loss.predict_proba(z), softmax(z, axis=1))


@pytest.mark.parametrize("gamma", [0.5, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [None, 0.25, 0.9])
def test_two_class_softmax_equals_the_binary_map(gamma, alpha):
    rng = np.random.default_rng(1)
    z = rng.normal(size=(2000, 2)) * 6
    loss = FocalLoss(gamma=gamma, alpha=alpha)
    np.testing.assert_allclose(
        loss.predict_proba(z), loss.predict_proba(z[:, 1] - z[:, 0]), rtol=1e-13, atol=1e-300
    )


def test_hessian_policy_does_not_change_the_map():
    x = np.linspace(-20, 20, 101)
    np.testing.assert_array_equal(
        FocalLoss(hessian="exact").predict_proba(x),
        FocalLoss(hessian="gauss_newton").predict_proba(x),
    )


def test_alpha_is_the_prior_odds_correction():
    rng = np.random.default_rng(2)
    x = rng.normal(size=300) * 4
    plain = posterior_from_margin(x, gamma=2.0)
    weighted = FocalLoss(gamma=2.0, alpha=0.25).predict_proba(x)
    np.testing.assert_allclose(
        np.log(weighted[:, 1] / weighted[:, 0]),
        np.log(plain[:, 1] / plain[:, 0]) + np.log(3.0),
        rtol=1e-12,
        atol=1e-12,
    )
    # a class-weighted logistic model (positives weighted s): logit q = x - log s
    np.testing.assert_allclose(
        posterior_from_margin(x, class_weights=(1.0, 4.0))[:, 1], expit(x - np.log(4.0)), rtol=1e-14
    )
    # two equal class weights change nothing, to the bit
    np.testing.assert_array_equal(
        FocalLoss(gamma=2.0, alpha=0.5).predict_proba(x),
        FocalLoss(gamma=2.0, alpha=None).predict_proba(x),
    )
    # K classes: per-class alpha divides each class's weight
    z = rng.normal(size=(200, 3))
    base = FocalLoss(gamma=1.0, alpha=None).predict_proba(z)
    alpha = np.array([0.5, 1.0, 2.0])
    want = base / alpha
    np.testing.assert_allclose(
        FocalLoss(gamma=1.0, alpha=list(alpha)).predict_proba(z),
        want / want.sum(axis=1, keepdims=True),
        rtol=1e-13,
    )


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", [None, 0.25])
def test_the_map_is_monotone(gamma, alpha):
    x = np.sort(
        np.r_[
            np.linspace(-60, 60, 200001),
            np.geomspace(1e-300, 1e300, 4000),
            -np.geomspace(1e-300, 1e300, 4000),
            0.0,
        ]
    )
    x = np.sort(np.r_[x, np.linspace(-1e-7, 1e-7, 20001), np.linspace(-1e-14, 1e-14, 20001)])
    q = FocalLoss(gamma=gamma, alpha=alpha).predict_proba(x)
    assert np.all(np.diff(q[:, 1]) >= 0.0)
    assert np.all(np.diff(q[:, 0]) <= 0.0)
    # between neighbouring floating-point margins the rounding can step back, by a few ulps only
    for x0 in (1e-9, 1e-3, 0.1, 1.0, 30.0):
        near = x0 + np.arange(5000) * np.spacing(x0)
        near = np.r_[-near[::-1], near]
        qn = FocalLoss(gamma=gamma, alpha=alpha).predict_proba(near)
        for column, sign in ((1, 1.0), (0, -1.0)):
            step = sign * np.diff(qn[:, column])
            back = step < 0
            assert np.all(-step[back] <= 8 * np.spacing(qn[1:, column][back]))
    # strictly monotone on a grid of step 6e-4, read on the smaller probability (full precision)
    grid = np.linspace(0.0, 20.0, 33334)
    loss = FocalLoss(gamma=gamma, alpha=alpha)
    assert np.all(np.diff(loss.predict_proba(-grid[::-1])[:, 1]) > 0.0)
    assert np.all(np.diff(loss.predict_proba(grid)[:, 0]) < 0.0)
    # K classes: raising one class's margin raises its probability (by at most a few ulps back
    # between margins 1e-18 apart)
    k_loss = FocalLoss(gamma=gamma, alpha=None if alpha is None else [0.2, 0.5, 0.3])
    z = np.tile([0.3, -1.0, 0.5], (x.size, 1))
    z[:, 1] = x
    qk = k_loss.predict_proba(z)[:, 1]
    step = np.diff(qk)
    assert np.all(-step[step < 0] <= 8 * np.spacing(qk[1:][step < 0]))


@pytest.fixture(params=["numpy", "kernel"])
def path(request, monkeypatch):
    """Each test below on both of the map's paths: numpy's (small inputs) and the kernels'."""
    from boostloss._kernels import posterior

    numpy = request.param == "numpy"
    monkeypatch.setattr(posterior, "numpy_twin", lambda n, limit, kernel: numpy)
    return request.param


def _varied_margins(rng, n, k):
    """Margins of every scale, ties, zeros of both signs and near-ties (the map's branches)."""
    parts = [
        rng.normal(size=(n, k)),
        rng.normal(scale=30.0, size=(n, k)),
        rng.normal(scale=1e-9, size=(n, k)),
        np.round(rng.normal(size=(n, k))),
        rng.normal(scale=400.0, size=(n, k)),
        10.0 ** rng.uniform(-320, 308.2, size=(n, k)) * rng.choice([-1.0, 1.0], size=(n, k)),
    ]
    z = np.concatenate(parts)
    z[::7, 0] = -0.0
    z[1::7] = 0.0
    z[2::7, -1] = z[2::7, 0]  # a tie for the top class
    return z


@pytest.mark.parametrize("k", [2, 3, 5, 9])
@pytest.mark.parametrize("gamma", [1e-300, 0.5, 1.0, 2.0, 5.0, 50.0, 1e300])
def test_numpy_and_kernel_paths_give_the_same_bits(monkeypatch, k, gamma):
    """Small inputs go through numpy's twin of the kernels (nothing to compile): the same bits,
    so a prediction does not depend on how many rows it is made with."""
    from boostloss._kernels import posterior

    rng = np.random.default_rng(k)
    z = _varied_margins(rng, 300, k)
    x = np.r_[z[:, 0], np.geomspace(1e-320, 1e308, 600), -np.geomspace(1e-320, 1e308, 600)]
    x = np.r_[x, 2.0**-26, -(2.0**-26), np.nextafter(2.0**-26, 0), 745.2, -745.2, 1e4]
    weights = [None, 10.0 ** rng.uniform(-3, 3, size=k)]
    results = {}
    for numpy in (True, False):
        monkeypatch.setattr(posterior, "numpy_twin", lambda n, limit, kernel, numpy=numpy: numpy)
        results[numpy] = [
            posterior_from_margin(margins, gamma=gamma, class_weights=w)
            for w in weights
            for margins in ((z, x) if w is None or k == 2 else (z,))
        ]
    for a, b in zip(*results.values(), strict=True):
        assert a.tobytes() == b.tobytes()


def test_a_prediction_does_not_depend_on_the_batch_size(monkeypatch):
    from boostloss._kernels import posterior

    # numpy's twin for the small parts even where the kernels are already compiled
    monkeypatch.setattr(posterior, "numpy_twin", lambda n, limit, kernel: n <= limit)
    rng = np.random.default_rng(5)
    loss = FocalLoss(gamma=2.0)
    for margins in (rng.normal(size=6000) * 5, rng.normal(size=(6000, 4)) * 5):
        whole = loss.predict_proba(margins)  # above the limit: the kernels
        parts = np.concatenate([loss.predict_proba(part) for part in np.array_split(margins, 7)])
        assert whole.tobytes() == parts.tobytes()


class _Kernel:
    """A stand-in for a kernel: compiled in this process or not, refusing to be called."""

    def __init__(self, compiled):
        self.signatures = ["(float64[::1],)"] if compiled else []

    def __call__(self, *args):
        raise AssertionError("a kernel was called")


@pytest.mark.parametrize("compiled", [False, True], ids=["not compiled", "compiled"])
def test_a_small_prediction_compiles_nothing(monkeypatch, compiled):
    """Up to NUMPY_POSTERIOR_UPTO rows numpy's twin, unless the kernel is already in the process
    (then it is the faster); above, the kernel."""
    from boostloss._kernels import posterior

    for name in ("_binary_posterior", "_binary_posterior_rows", "_softmax_posterior"):
        monkeypatch.setattr(posterior, name, _Kernel(compiled))
    rng = np.random.default_rng(6)
    n = posterior.NUMPY_POSTERIOR_UPTO
    small = (_varied_margins(rng, n // 6, 3), _varied_margins(rng, n // 6, 2)[:, 0])
    if compiled:
        for margins in small:
            with pytest.raises(AssertionError, match="a kernel was called"):
                FocalLoss(gamma=2.0).predict_proba(margins)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy's discarded infinities stay silent
            for margins in small:
                q = FocalLoss(gamma=0.5).predict_proba(margins)
                assert np.isfinite(q).all()
    for margins in (np.zeros(n + 1), np.zeros((n + 1, 3))):
        with pytest.raises(AssertionError, match="a kernel was called"):
            FocalLoss(gamma=2.0).predict_proba(margins)


@pytest.mark.parametrize("gamma", [0.5, 2.0, 5.0, 50.0])
def test_extreme_margins_stay_finite(gamma, path):
    big = np.array(
        [
            0.0,
            1e-300,
            -1e-300,
            5e-324,
            1.0,
            -1.0,
            36.0,
            -36.0,
            709.0,
            -709.0,
            745.0,
            -746.0,
            1e10,
            -1e10,
            1e300,
            -1e300,
            1.7e308,
            -1.7e308,
        ]
    )
    big32 = np.array(
        [0.0, 1e-45, -1e-45, 1.0, -1.0, 36.0, -36.0, 1e10, -1e10, 3.4e38, -3.4e38], dtype=np.float32
    )
    for x in (big, big32):
        for alpha in (None, 0.25, 1e-9):
            q = FocalLoss(gamma=gamma, alpha=alpha).predict_proba(x)
            assert np.all(np.isfinite(q)) and np.all((q >= 0.0) & (q <= 1.0))
            np.testing.assert_allclose(q.sum(axis=1), 1.0, rtol=1e-15)
    q = FocalLoss(gamma=gamma).predict_proba(big)
    assert q[0, 1] == pytest.approx(0.75)  # margin 0 with alpha 0.25: odds 3
    assert q[-4, 1] == 1.0 and q[-3, 1] == 0.0
    z = np.array(
        [
            [1e300, -1e300, 0.0],
            [0.0, 0.0, 0.0],
            [1e300, 1e300, -1e300],
            [-1e300, -1e300, -1e300],
            [700.0, -700.0, 0.0],
            [5e-324, 0.0, -5e-324],
            [1.7e308, -1.7e308, 0.0],
        ]
    )
    z32 = np.clip(z, -3.4e38, 3.4e38).astype(np.float32)
    for margins in (z32, z):
        qk = FocalLoss(gamma=gamma, alpha=None).predict_proba(margins)
        assert np.all(np.isfinite(qk))
        np.testing.assert_allclose(qk.sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(qk[1], 1 / 3, rtol=1e-15)
    np.testing.assert_allclose(qk[2], [0.5, 0.5, 0.0], atol=1e-300)
    np.testing.assert_allclose(qk[0], [1.0, 0.0, 0.0], atol=1e-300)


def test_random_extreme_inputs_give_finite_rows_summing_to_one(path):
    rng = np.random.default_rng(12)
    for _ in range(60):
        k = int(rng.integers(2, 8))
        z = 10.0 ** rng.uniform(-320, 308.2, size=(100, k)) * rng.choice([-1.0, 1.0], size=(100, k))
        z[rng.random(z.shape) < 0.1] = 0.0
        gamma = float(rng.choice([1e-300, 1e-3, 0.5, 2.0, 5.0, 50.0, 1e5, 1e300, 1.7e308]))
        weights = None if rng.random() < 0.3 else 10.0 ** rng.uniform(-300, 300, size=k)
        for margins, w in ((z, weights), (z[:, 0], None if weights is None else weights[:2])):
            q = posterior_from_margin(margins, gamma=gamma, class_weights=w)
            assert np.all(np.isfinite(q)) and np.all(q >= 0.0)
            np.testing.assert_allclose(q.sum(axis=1), 1.0, rtol=1e-14)


def test_float32_margins_give_the_float64_answer_of_their_values():
    rng = np.random.default_rng(3)
    x = (rng.normal(size=5000) * 5).astype(np.float32)
    z = (rng.normal(size=(500, 4)) * 5).astype(np.float32)
    for gamma in (0.0, 2.0):
        np.testing.assert_array_equal(
            posterior_from_margin(x, gamma=gamma),
            posterior_from_margin(x.astype(np.float64), gamma=gamma),
        )
        np.testing.assert_array_equal(
            posterior_from_margin(z, gamma=gamma),
            posterior_from_margin(z.astype(np.float64), gamma=gamma),
        )
    # any memory layout
    zf = np.asfortranarray(z.astype(np.float64))
    np.testing.assert_array_equal(
        posterior_from_margin(zf, gamma=2.0), posterior_from_margin(z.astype(np.float64), gamma=2.0)
    )


def test_the_answer_does_not_depend_on_the_threads():
    import numba

    rng = np.random.default_rng(4)
    x = rng.normal(size=100_000) * 5
    z = rng.normal(size=(40_000, 5)) * 5
    default = (posterior_from_margin(x, gamma=2.0), posterior_from_margin(z, gamma=2.0))
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = (posterior_from_margin(x, gamma=2.0), posterior_from_margin(z, gamma=2.0))
    finally:
        numba.set_num_threads(previous)
    for a, b in zip(default, one, strict=True):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: FocalLoss().predict_proba([0.1, np.nan]), ValueError, r"non-finite.*index 1: nan"),
        (lambda: FocalLoss().predict_proba([np.inf, 0.0]), ValueError, r"non-finite.*index 0: inf"),
        (
            lambda: FocalLoss(alpha=None).predict_proba([[0.0, 1.0, np.nan]]),
            ValueError,
            r"row 0, column 2: nan",
        ),
        (lambda: GHMLoss().predict_proba([0.0, -np.inf]), ValueError, r"index 1: -inf"),
        (lambda: posterior_from_margin([0.0, np.nan], gamma=2.0), ValueError, r"index 1: nan"),
        (
            lambda: posterior_from_margin(np.array([[0.0, np.nan, 1.0]]), gamma=2.0),
            ValueError,
            r"row 0, column 1: nan",
        ),
        (lambda: posterior_from_margin([np.nan]), ValueError, r"index 0: nan"),
        (
            lambda: FocalLoss().predict_proba(np.zeros((2, 2, 2))),
            ValueError,
            r"got shape \(2, 2, 2\)",
        ),
        (
            lambda: posterior_from_margin(np.zeros((3, 1))),
            ValueError,
            r"K >= 2.*got shape \(3, 1\)",
        ),
        (lambda: FocalLoss().predict_proba(["a", "b"]), TypeError, r"real numbers"),
        (lambda: posterior_from_margin(["a"]), TypeError, r"real numbers"),
        (
            lambda: FocalLoss(alpha=0.25).predict_proba(np.zeros((2, 3))),
            ValueError,
            r"alpha=0\.25 is a binary weight.*3 classes.*alpha='auto'",
        ),
        (
            lambda: FocalLoss(alpha=[1, 2, 3]).predict_proba(np.zeros(2)),
            ValueError,
            r"3 class weights.*1-D",
        ),
        (
            lambda: FocalLoss(alpha=[1, 2]).predict_proba(np.zeros((2, 3))),
            ValueError,
            r"2 class weights.*3 columns",
        ),
        (
            lambda: FocalLoss(alpha=0.0).predict_proba(np.zeros(2)),
            ValueError,
            r"alpha=0\.0 gives class 1 weight 0",
        ),
        (
            lambda: FocalLoss(alpha=[1.0, 0.0, 2.0]).predict_proba(np.zeros((1, 3))),
            ValueError,
            r"gives class 1 weight 0",
        ),
        (lambda: FocalLoss(gamma=-1).predict_proba(np.zeros(2)), ValueError, r"gamma must be in"),
        (
            lambda: FocalLoss(alpha="0.25").predict_proba(np.zeros(2)),
            TypeError,
            r"alpha must be a real number.*'auto'",
        ),
        (lambda: posterior_from_margin([0.0], gamma=-0.5), ValueError, r"gamma must be.*-0\.5"),
        (lambda: posterior_from_margin([0.0], gamma=float("nan")), ValueError, r"gamma.*nan"),
        (lambda: posterior_from_margin([0.0], gamma=True), ValueError, r"gamma.*True"),
        (
            lambda: posterior_from_margin([0.0], class_weights=(1.0, 2.0, 3.0)),
            ValueError,
            r"3 weights.*2 classes",
        ),
        (
            lambda: posterior_from_margin([0.0], class_weights=(1.0, 0.0)),
            ValueError,
            r"> 0.*got 0\.0 for class 1",
        ),
        (
            lambda: posterior_from_margin([0.0], class_weights=(1.0, np.nan)),
            ValueError,
            r"got nan for class 1",
        ),
        (
            lambda: posterior_from_margin(np.zeros((1, 3)), class_weights=(1.0, -2.0, 1.0)),
            ValueError,
            r"got -2\.0 for class 1",
        ),
        (
            lambda: posterior_from_margin([0.0], class_weights="balanced"),
            ValueError,
            r"class_weights must be None or a sequence",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_input_is_refused(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_empty_margins():
    assert FocalLoss().predict_proba(np.empty(0)).shape == (0, 2)
    assert FocalLoss(alpha=None).predict_proba(np.empty((0, 4))).shape == (0, 4)
    assert posterior_from_margin(np.empty(0)).shape == (0, 2)


# --------------------------------------------------------------------------------------------
# The default alpha
# --------------------------------------------------------------------------------------------


def test_default_alpha_is_auto_binary_025_and_none_for_k_classes():
    loss = FocalLoss()
    assert loss.get_params()["alpha"] == "auto"
    rng = np.random.default_rng(5)
    x = rng.normal(size=50)
    y = (x > 0).astype(int)
    # binary: exactly alpha=0.25
    for method in ("loss", "gradient_hessian"):
        a = getattr(FocalLoss(), method)(y, x)
        b = getattr(FocalLoss(alpha=0.25), method)(y, x)
        for u, w in zip(np.atleast_2d(a), np.atleast_2d(b), strict=True):
            np.testing.assert_array_equal(u, w)
    assert FocalLoss().init_score(y) == FocalLoss(alpha=0.25).init_score(y)
    np.testing.assert_array_equal(
        FocalLoss().predict_proba(x), FocalLoss(alpha=0.25).predict_proba(x)
    )
    z2 = rng.normal(size=(50, 2))
    np.testing.assert_array_equal(
        FocalLoss().predict_proba(z2), FocalLoss(alpha=0.25).predict_proba(z2)
    )
    # K classes: no class weighting
    z = rng.normal(size=(60, 4))
    yk = np.arange(60) % 4
    np.testing.assert_array_equal(FocalLoss().loss(yk, z), FocalLoss(alpha=None).loss(yk, z))
    for u, w in zip(
        FocalLoss().gradient_hessian(yk, z),
        FocalLoss(alpha=None).gradient_hessian(yk, z),
        strict=True,
    ):
        np.testing.assert_array_equal(u, w)
    np.testing.assert_array_equal(
        FocalLoss().init_score(yk, n_classes=4), FocalLoss(alpha=None).init_score(yk, n_classes=4)
    )
    np.testing.assert_array_equal(
        FocalLoss().predict_proba(z), FocalLoss(alpha=None).predict_proba(z)
    )
    # names, clones
    assert make_loss("focal").get_params()["alpha"] == "auto"
    assert make_loss("focal:alpha=auto").get_params()["alpha"] == "auto"
    assert make_loss("focal:alpha=0.25").alpha == 0.25
    assert clone(FocalLoss()).alpha == "auto"
    assert repr(FocalLoss()) == "FocalLoss()"


# --------------------------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------------------------

SMALL = {
    XGBClassifier: dict(n_estimators=20, max_depth=3, learning_rate=0.2, n_jobs=1),
    LGBMClassifier: dict(n_estimators=20, num_leaves=7, learning_rate=0.2, n_jobs=1, verbose=-1),
}
CLASSES = [XGBClassifier, LGBMClassifier]


@pytest.fixture(scope="module")
def binary_data():
    X, y = make_classification(n_samples=800, n_features=6, weights=[0.85], random_state=7)
    return X, np.where(y == 1, "yes", "no")


@pytest.fixture(scope="module")
def multiclass_data():
    X, y = make_classification(
        n_samples=900, n_features=8, n_informative=5, n_classes=4, random_state=8
    )
    return X, np.array(["a", "b", "c", "d"])[y]


def _margin(clf, X):
    if isinstance(clf, XGBClassifier):
        return clf.predict(X, output_margin=True)
    return clf.predict(X, raw_score=True)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize(
    "loss",
    [
        "focal",
        FocalLoss(gamma=1.0, alpha=0.75),
        FocalLoss(gamma=2.0, hessian="gauss_newton"),
        "ghm",
        "ohem",
    ],
    ids=repr,
)
@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_estimators_return_the_losss_map_and_agree_with_predict(
    cls, loss, task, binary_data, multiclass_data
):
    X, y = binary_data if task == "binary" else multiclass_data
    if loss == "ohem" and task == "multiclass":
        loss = OHEMLoss(negative_class="a")
    if isinstance(loss, FocalLoss) and loss.alpha == 0.75 and task == "multiclass":
        loss = FocalLoss(gamma=1.0, alpha=[0.4, 0.3, 0.2, 0.1])
    clf = cls(loss=loss, **SMALL[cls])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.fit(X, y)
        proba = clf.predict_proba(X)
        pred = clf.predict(X)
    n_classes = 2 if task == "binary" else 4
    assert proba.shape == (X.shape[0], n_classes)
    margin = _margin(clf, X)
    assert margin.shape == ((X.shape[0],) if task == "binary" else (X.shape[0], n_classes))
    fitted_loss = make_loss(loss)
    if isinstance(fitted_loss, OHEMLoss):
        fitted_loss = fitted_loss.for_classes(clf.classes_)
    if isinstance(fitted_loss, FocalLoss):
        # the posterior, computed by boostloss in float64
        assert proba.dtype == np.float64
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-14)
        np.testing.assert_array_equal(proba, fitted_loss.predict_proba(margin))
    else:
        # the sigmoid / softmax: the framework's own (XGBoost's in float32), as a plain reload
        np.testing.assert_allclose(
            proba,
            fitted_loss.predict_proba(margin),
            rtol=1e-12,
            atol=1e-7 if cls is XGBClassifier else 0,
        )
    np.testing.assert_array_equal(pred, clf.classes_[np.argmax(proba, axis=1)])
    assert clf.posterior_map_["posterior"] == isinstance(fitted_loss, FocalLoss)
    # pickled estimators give the same numbers
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), proba)
    np.testing.assert_array_equal(again.predict(X), pred)


@pytest.mark.parametrize("cls", CLASSES)
def test_focal_predict_uses_the_posterior_not_the_margin_sign(cls):
    # alpha = 0.25 moves the decision boundary: margin 0 is a posterior of 0.75
    X, y = make_classification(n_samples=600, n_features=5, random_state=9)
    clf = cls(loss=FocalLoss(gamma=2.0, alpha=0.25), **SMALL[cls]).fit(X, y)
    margin = _margin(clf, X)
    q = clf.predict_proba(X)[:, 1]
    np.testing.assert_array_equal(clf.predict(X), (q > 0.5).astype(int))
    assert np.all(q[(margin > -0.3) & (margin <= 0)] > 0.5)


@pytest.mark.parametrize("cls", CLASSES)
def test_loss_none_keeps_the_frameworks_probabilities(cls, binary_data):
    import lightgbm as lgb
    import xgboost as xgb

    X, labels = binary_data
    y = (labels == "yes").astype(int)
    native = {XGBClassifier: xgb.XGBClassifier, LGBMClassifier: lgb.LGBMClassifier}[cls]
    ours = cls(**SMALL[cls]).fit(X, y)
    theirs = native(**SMALL[cls]).fit(X, y)
    np.testing.assert_array_equal(ours.predict_proba(X), theirs.predict_proba(X))
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    assert ours.posterior_map_ is None


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("loss", ["focal", FocalLoss(gamma=2.0)], ids=repr)
def test_the_default_focal_loss_trains_on_k_classes(cls, loss, multiclass_data):
    X, y = multiclass_data
    clf = cls(loss=loss, **SMALL[cls]).fit(X, y)
    assert clf.posterior_map_["class_weights"] is None
    assert (clf.predict(X) == y).mean() > 0.6
    with pytest.raises(ValueError, match=r"alpha=0\.25 is a binary weight.*4 classes"):
        cls(loss=FocalLoss(alpha=0.25), **SMALL[cls]).fit(X, y)


def test_grid_search_over_alpha_with_auto(binary_data):
    X, y = binary_data
    search = GridSearchCV(
        XGBClassifier(loss=FocalLoss(), **SMALL[XGBClassifier]),
        {"loss__alpha": ["auto", None, 0.5]},
        cv=2,
        scoring="neg_log_loss",
    )
    search.fit(X, y)
    assert search.best_params_["loss__alpha"] in ("auto", None, 0.5)
    assert search.best_estimator_.loss.alpha == search.best_params_["loss__alpha"]


@pytest.mark.parametrize("cls", CLASSES)
def test_calibrated_classifier_cv_around_a_ghm_estimator(cls, binary_data):
    X, y = binary_data
    calibrated = CalibratedClassifierCV(cls(loss="ghm", **SMALL[cls]), method="isotonic", cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        calibrated.fit(X, y)
        proba = calibrated.predict_proba(X)
    assert proba.shape == (X.shape[0], 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert list(calibrated.classes_) == ["no", "yes"]
    assert set(calibrated.predict(X)) <= {"no", "yes"}


# --------------------------------------------------------------------------------------------
# Deployment: plain reload + the documented numpy lines = predict_proba
# --------------------------------------------------------------------------------------------


def _documented_map():
    """The ``focal_posterior`` function of docs/deploying.md, run as written there."""
    text = (ROOT / "docs" / "deploying.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    source = [b for b in blocks if "def focal_posterior" in b]
    assert len(source) == 1
    namespace = {}
    exec(compile(source[0], "docs/deploying.md", "exec"), namespace)  # noqa: S102
    return namespace["focal_posterior"]


@pytest.mark.parametrize(
    "loss",
    [FocalLoss(gamma=2.0), FocalLoss(gamma=0.5, alpha=None), FocalLoss(gamma=3.0, alpha=0.6)],
    ids=repr,
)
@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_plain_xgboost_reload_and_the_documented_lines_give_predict_proba(
    loss, task, tmp_path, binary_data, multiclass_data
):
    import xgboost as xgb

    X, y = binary_data if task == "binary" else multiclass_data
    if task == "multiclass" and loss.alpha == 0.6:
        loss = FocalLoss(gamma=3.0, alpha=[0.1, 0.2, 0.3, 0.4])
    clf = XGBClassifier(loss=loss, **SMALL[XGBClassifier]).fit(X, y)
    start_stored = task == "binary" or _compat_xgboost.takes_vector_base_score()
    for name in ("model.json", "model.ubj"):
        clf.save_model(tmp_path / name)
        booster = xgb.Booster(model_file=str(tmp_path / name))
        spec = json.loads(booster.attr("boostloss_posterior"))
        assert spec == clf.posterior_map_
        margin = booster.predict(xgb.DMatrix(X), output_margin=True)
        if not start_stored:
            # XGBoost < 3.1 stores one float base_score: the K-class start is the estimator's
            # base_margin, added by hand after a plain reload (docs/deploying.md)
            margin = margin + clf.init_score_
        proba = _documented_map()(margin, spec["gamma"], spec["class_weights"])
        # (XGBoost adds a base_margin in float32; the start added by hand is float64)
        tolerance = 1e-12 if start_stored else 1e-6
        np.testing.assert_allclose(proba, clf.predict_proba(X), rtol=tolerance, atol=1e-300)
        # plain XGBoost serves the sigmoid / softmax of the margin, which is not the posterior
        plain = xgb.XGBClassifier()
        plain.load_model(tmp_path / name)
        assert np.max(np.abs(plain.predict_proba(X) - proba)) > 1e-3
        # boostloss's estimator reads the map back from the file (and the start, where stored)
        loaded = XGBClassifier()
        loaded.load_model(tmp_path / name)
        if start_stored:
            np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
        else:
            np.testing.assert_allclose(
                loaded.predict_proba(X, base_margin=np.tile(clf.init_score_, (X.shape[0], 1))),
                clf.predict_proba(X),
                rtol=1e-12,
                atol=1e-300,
            )


@pytest.mark.parametrize("loss", [FocalLoss(gamma=2.0), FocalLoss(gamma=1.0, alpha=None)], ids=repr)
@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_plain_lightgbm_reload_and_the_documented_lines_give_predict_proba(
    loss, task, tmp_path, binary_data, multiclass_data
):
    import lightgbm as lgb

    X, y = binary_data if task == "binary" else multiclass_data
    clf = LGBMClassifier(loss=loss, **SMALL[LGBMClassifier]).fit(X, y)
    clf.booster_.save_model(tmp_path / "model.txt")
    booster = lgb.Booster(model_file=str(tmp_path / "model.txt"))
    margin = booster.predict(X, raw_score=True)
    proba = _documented_map()(margin, loss.gamma, clf.posterior_map_["class_weights"])
    np.testing.assert_allclose(proba, clf.predict_proba(X), rtol=1e-12, atol=1e-300)
    assert (
        np.max(np.abs(booster.predict(X).reshape(proba.shape[0], -1)[:, -1] - proba[:, -1])) > 1e-3
    )


def test_the_documented_lines_match_the_kernel_on_ordinary_margins():
    rng = np.random.default_rng(11)
    focal_posterior = _documented_map()
    x = rng.normal(size=2000) * 15
    z = rng.normal(size=(2000, 5)) * 15
    for gamma in (0.0, 0.5, 2.0, 5.0):
        np.testing.assert_allclose(
            focal_posterior(x, gamma, [0.75, 0.25]),
            posterior_from_margin(x, gamma=gamma, class_weights=[0.75, 0.25]),
            rtol=1e-11,
            atol=1e-300,
        )
        np.testing.assert_allclose(
            focal_posterior(z, gamma, [1, 2, 3, 4, 5]),
            posterior_from_margin(z, gamma=gamma, class_weights=[1, 2, 3, 4, 5]),
            rtol=1e-11,
            atol=1e-300,
        )
