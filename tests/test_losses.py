"""Exactness of the losses: high-precision references, finite differences, special cases, GHM."""

import itertools

import mpmath as mp
import numpy as np
import pytest
from scipy.special import expit
from sklearn.base import clone

from boostloss import HESSIAN_FLOOR, FocalLoss, GHMLoss

GAMMAS = [0.0, 0.5, 1.0, 2.0, 2.5, 5.0]
ALPHAS = [None, 0.25, 0.0, 1.0]
MARGINS = [-700.0, -40.0, -7.3, -3.5, -1.0, -1e-3, 0.0, 0.7, 3.0, 40.0, 700.0]


def _p_minus_y(x, y):
    """p - y without the cancellation of expit(x) - 1."""
    return np.where(y == 1, -expit(-x), expit(x))


def _cross_entropy(x, y):
    return np.where(y == 1, np.logaddexp(0, -x), np.logaddexp(0, x))


def _p_one_minus_p(x):
    return expit(x) * expit(-x)


# --------------------------------------------------------------------------------------------
# A 50-digit reference: the focal loss written directly in mpmath, derivatives by mpmath's own
# high-precision numerical differentiation (so the analytic derivation is checked, not copied).
# --------------------------------------------------------------------------------------------


def _mp_focal(x, y, gamma, alpha):
    # Written in the margin toward the true class so that 50 digits suffice at |x| = 700
    # (1 - p with p = 1 - 1e-304 would need 300 digits).
    z = x if y == 1 else -x
    q = 1 / (1 + mp.exp(z))
    log_p_t = -mp.log1p(mp.exp(-z))
    if alpha is None:
        a = mp.mpf(1)
    else:
        a = mp.mpf(alpha) if y == 1 else 1 - mp.mpf(alpha)
    return -a * q**gamma * log_p_t


def _reference(x, y, gamma, alpha):
    with mp.workdps(50):
        f = lambda t: _mp_focal(t, y, mp.mpf(gamma), alpha)  # noqa: E731
        xm = mp.mpf(x)
        values = f(xm), mp.diff(f, xm, 1), mp.diff(f, xm, 2)
        return tuple(float(v) for v in values)


def _reference_table(gamma, alpha):
    rows = [(x, y) + _reference(x, y, gamma, alpha) for x, y in itertools.product(MARGINS, (0, 1))]
    return np.array(rows)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("gamma", GAMMAS)
def test_focal_matches_50_digit_reference(gamma, alpha):
    table = _reference_table(gamma, alpha)
    x, y, ref_loss, ref_grad, ref_hess = table.T
    exact = FocalLoss(gamma=gamma, alpha=alpha, hessian="exact")
    loss = exact.loss(y, x)
    grad, hess = exact.gradient_hessian(y, x)
    # 1e-300: results below the normal float64 range (e.g. e^-1400) round to 0 in both.
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5, atol=1e-300)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-5, atol=1e-300)
    # The exact Hessian changes sign near z = -(2 gamma + 1) / gamma: compare with an absolute
    # tolerance scaled to the Hessian's size there, after the documented floor.
    np.testing.assert_allclose(hess, np.maximum(ref_hess, HESSIAN_FLOOR), rtol=1e-5, atol=1e-12)
    assert np.all(hess >= HESSIAN_FLOOR)


@pytest.mark.parametrize("gamma", [0.0, 2.0, 3.7])
def test_focal_gradient_tighter_than_required(gamma):
    # Where no cancellation is possible the kernels are accurate to a few ulps, not just 1e-5.
    table = _reference_table(gamma, 0.25)
    x, y, ref_loss, ref_grad, _ = table.T
    focal = FocalLoss(gamma=gamma, alpha=0.25)
    keep = np.abs(ref_grad) > 1e-290
    np.testing.assert_allclose(focal.gradient_hessian(y, x)[0][keep], ref_grad[keep], rtol=1e-12)
    keep = np.abs(ref_loss) > 1e-290
    np.testing.assert_allclose(focal.loss(y, x)[keep], ref_loss[keep], rtol=1e-12)


@pytest.mark.parametrize("hessian", ["exact", "gauss_newton"])
@pytest.mark.parametrize("gamma,alpha", [(0.0, None), (2.0, 0.25), (1.5, 0.9), (4.0, None)])
def test_focal_finite_differences(gamma, alpha, hessian):
    rng = np.random.default_rng(0)
    x = rng.uniform(-8, 8, 400)
    y = (rng.random(400) < 0.4).astype(float)
    focal = FocalLoss(gamma=gamma, alpha=alpha, hessian=hessian)
    h = 1e-5
    fd_grad = (focal.loss(y, x + h) - focal.loss(y, x - h)) / (2 * h)
    grad, hess = focal.gradient_hessian(y, x)
    # The gradient does not depend on the Hessian policy.
    np.testing.assert_allclose(grad, fd_grad, rtol=1e-6, atol=1e-10)
    if hessian == "exact":
        fd_hess = (focal.gradient_hessian(y, x + h)[0] - focal.gradient_hessian(y, x - h)[0]) / (
            2 * h
        )
        np.testing.assert_allclose(hess, np.maximum(fd_hess, HESSIAN_FLOOR), rtol=1e-5, atol=1e-9)
    else:
        p = expit(x)
        p_t = np.where(y == 1, p, 1 - p)
        a_t = 1.0 if alpha is None else np.where(y == 1, alpha, 1 - alpha)
        expected = np.maximum(a_t * (1 - p_t) ** gamma * p * (1 - p), HESSIAN_FLOOR)
        np.testing.assert_allclose(hess, expected, rtol=1e-12)


def test_exact_hessian_is_negative_where_documented_and_floored():
    # gamma=2, y=1: the true second derivative dips below zero around x = -3.5.
    x = np.linspace(-10, -2, 81)
    y = np.ones_like(x)
    ref = np.array([_reference(xi, 1, 2.0, None)[2] for xi in x])
    assert ref.min() < -0.04
    _, hess = FocalLoss(gamma=2.0, alpha=None, hessian="exact").gradient_hessian(y, x)
    assert np.all(hess[ref < 0] == HESSIAN_FLOOR)
    _, hess_gn = FocalLoss(gamma=2.0, alpha=None, hessian="gauss_newton").gradient_hessian(y, x)
    assert np.all(hess_gn > HESSIAN_FLOOR)


def test_gamma_zero_no_alpha_is_logistic_loss():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 5, 500), [-700, -40, 0, 40, 700]])
    y = (rng.random(x.size) < 0.3).astype(float)
    for hessian in ("exact", "gauss_newton"):
        focal = FocalLoss(gamma=0.0, alpha=None, hessian=hessian)
        grad, hess = focal.gradient_hessian(y, x)
        np.testing.assert_allclose(grad, _p_minus_y(x, y), rtol=1e-13, atol=1e-300)
        np.testing.assert_allclose(hess, np.maximum(_p_one_minus_p(x), HESSIAN_FLOOR), rtol=1e-13)
    ce = _cross_entropy(x, y)
    np.testing.assert_allclose(
        FocalLoss(gamma=0.0, alpha=None).loss(y, x), ce, rtol=1e-13, atol=1e-300
    )


def test_gamma_zero_with_alpha_is_balanced_cross_entropy():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 3, 300)
    y = (rng.random(300) < 0.5).astype(float)
    a_t = np.where(y == 1, 0.3, 0.7)
    focal = FocalLoss(gamma=0.0, alpha=0.3)
    grad, hess = focal.gradient_hessian(y, x)
    np.testing.assert_allclose(grad, a_t * _p_minus_y(x, y), rtol=1e-13)
    np.testing.assert_allclose(hess, a_t * _p_one_minus_p(x), rtol=1e-13)
    np.testing.assert_allclose(focal.loss(y, x), a_t * _cross_entropy(x, y), rtol=1e-13)


def test_focal_over_cross_entropy_is_the_modulating_factor():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 4, 300)
    y = (rng.random(300) < 0.5).astype(float)
    p_t = np.where(y == 1, expit(x), expit(-x))
    ce = FocalLoss(gamma=0.0, alpha=None).loss(y, x)
    for gamma in (0.5, 2.0, 3.3):
        fl = FocalLoss(gamma=gamma, alpha=None).loss(y, x)
        assert np.all(fl <= ce)
        np.testing.assert_allclose(fl / ce, (1 - p_t) ** gamma, rtol=1e-9)


def test_float32_margins_equal_float64_of_the_same_values():
    rng = np.random.default_rng(4)
    x32 = rng.normal(0, 6, 1000).astype(np.float32)
    y = rng.integers(0, 2, 1000)
    for loss in (FocalLoss(gamma=1.7), GHMLoss(), GHMLoss(density="window")):
        g32, h32 = loss.gradient_hessian(y, x32)
        g64, h64 = loss.gradient_hessian(y, x32.astype(np.float64))
        assert g32.dtype == np.float64
        np.testing.assert_array_equal(g32, g64)
        np.testing.assert_array_equal(h32, h64)


@pytest.mark.parametrize(
    "loss",
    [
        FocalLoss(gamma=2.0, alpha=0.25),
        FocalLoss(hessian="exact"),
        GHMLoss(),
        GHMLoss(density="window", epsilon=0.2),
    ],
    ids=["focal", "focal-exact", "ghm-bins", "ghm-window"],
)
def test_sample_weight_multiplies_focal_and_ghm_uniformly(loss):
    rng = np.random.default_rng(5)
    x = rng.normal(-1, 3, 600)
    y = (rng.random(600) < 0.2).astype(float)
    # A constant weight leaves GHM's density weights unchanged, so everything scales by it.
    w = np.full(600, 2.5)
    np.testing.assert_allclose(loss.loss(y, x, w), 2.5 * loss.loss(y, x), rtol=1e-12)
    g_w, h_w = loss.gradient_hessian(y, x, w)
    g, h = loss.gradient_hessian(y, x)
    np.testing.assert_allclose(g_w, 2.5 * g, rtol=1e-12)
    np.testing.assert_allclose(h_w, 2.5 * h, rtol=1e-12)


def test_focal_sample_weight_multiplies_per_sample():
    rng = np.random.default_rng(6)
    x = rng.normal(0, 3, 200)
    y = rng.integers(0, 2, 200)
    w = rng.uniform(0, 3, 200)
    focal = FocalLoss(gamma=2.0, alpha=0.4)
    np.testing.assert_allclose(focal.loss(y, x, w), w * focal.loss(y, x), rtol=1e-14)
    g_w, h_w = focal.gradient_hessian(y, x, w)
    g, h = focal.gradient_hessian(y, x)
    np.testing.assert_allclose(g_w, w * g, rtol=1e-14)
    np.testing.assert_allclose(h_w, w * h, rtol=1e-14)


def test_integer_weights_equal_repeated_samples():
    rng = np.random.default_rng(7)
    x = rng.normal(0, 2, 150)
    y = rng.integers(0, 2, 150)
    w = rng.integers(0, 4, 150)
    xr, yr = np.repeat(x, w), np.repeat(y, w)
    for loss in (FocalLoss(gamma=2.0), GHMLoss(bins=7), GHMLoss(density="window")):
        g_w, _ = loss.gradient_hessian(y, x, w.astype(float))
        g_r, _ = loss.gradient_hessian(yr, xr)
        # Summing the repeated copies of each sample gives the weighted sample.
        np.testing.assert_allclose(
            np.add.reduceat(g_r, np.r_[0, np.cumsum(w)[:-1]])[w > 0], g_w[w > 0], rtol=1e-10
        )
        assert loss.init_score(y, w.astype(float)) == pytest.approx(loss.init_score(yr), abs=1e-9)


# --------------------------------------------------------------------------------------------
# init_score
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_pos,n_neg", [(1, 1), (3, 97), (1, 10_000), (500, 3)])
def test_logistic_init_score_is_prior_log_odds(n_pos, n_neg):
    y = np.r_[np.ones(n_pos), np.zeros(n_neg)]
    got = FocalLoss(gamma=0.0, alpha=None).init_score(y)
    assert got == pytest.approx(np.log(n_pos / n_neg), abs=1e-12)


def test_weighted_logistic_init_score():
    y = np.array([1, 0, 0, 1, 0])
    w = np.array([2.0, 1.0, 0.5, 0.25, 3.0])
    got = FocalLoss(gamma=0.0, alpha=None).init_score(y, w)
    assert got == pytest.approx(np.log(2.25 / 4.5), abs=1e-12)


@pytest.mark.parametrize(
    "loss",
    [
        FocalLoss(gamma=2.0, alpha=0.25),
        FocalLoss(gamma=0.5, alpha=None),
        FocalLoss(gamma=3.0, alpha=0.9, hessian="exact"),
        GHMLoss(),
        GHMLoss(bins=5),
        GHMLoss(density="window"),
    ],
    ids=["focal", "focal-0.5", "focal-3", "ghm", "ghm-5", "ghm-window"],
)
@pytest.mark.parametrize("rate", [0.5, 0.1, 0.01])
def test_init_score_minimises_the_total_loss(loss, rate):
    rng = np.random.default_rng(8)
    y = (rng.random(2000) < rate).astype(float)
    y[:2] = [0, 1]
    s = loss.init_score(y)
    total = lambda c: loss.loss(y, np.full(y.size, c)).sum()  # noqa: E731
    best = total(s)
    grid = np.linspace(s - 10, s + 10, 2001)
    assert best <= min(total(c) for c in grid) + 1e-9 * abs(best)
    for d in (1e-4, 1e-2, 0.5):
        assert best <= total(s - d) + 1e-12 * abs(best)
        assert best <= total(s + d) + 1e-12 * abs(best)


def test_focal_init_score_zeroes_the_gradient_sum():
    y = np.r_[np.ones(30), np.zeros(970)]
    focal = FocalLoss(gamma=2.0, alpha=0.25)
    s = focal.init_score(y)
    grad, _ = focal.gradient_hessian(y, np.full(y.size, s))
    assert abs(grad.sum()) < 1e-9 * np.abs(grad).sum()


def test_init_score_needs_both_classes():
    with pytest.raises(ValueError, match="both classes"):
        FocalLoss().init_score([1, 1, 1])
    with pytest.raises(ValueError, match="both classes"):
        GHMLoss().init_score([0, 1], sample_weight=[1.0, 0.0])


# --------------------------------------------------------------------------------------------
# GHM-C against a straightforward reference written here (the paper's official code's logic)
# --------------------------------------------------------------------------------------------


class ReferenceGHMC:
    """Loop-per-bin GHM-C weights, as in the paper's code, with weighted counts."""

    def __init__(self, bins, momentum):
        self.bins = bins
        self.momentum = momentum
        self.edges = [float(i) / bins for i in range(bins + 1)]
        self.edges[-1] += 1e-6
        self.acc_sum = [0.0] * bins

    def weights(self, y, x, w):
        g = np.abs(expit(x) - y)
        valid = w > 0
        tot = w[valid].sum()
        beta = np.zeros_like(g)
        n = 0
        for i in range(self.bins):
            inds = (g >= self.edges[i]) & (g < self.edges[i + 1]) & valid
            num_in_bin = w[inds].sum()
            if num_in_bin > 0:
                if self.momentum > 0:
                    self.acc_sum[i] = (
                        self.momentum * self.acc_sum[i] + (1 - self.momentum) * num_in_bin
                    )
                    beta[inds] = tot / self.acc_sum[i]
                else:
                    beta[inds] = tot / num_in_bin
                n += 1
        if n > 0:
            beta = beta / n
        return beta


def _ghm_data(seed, n=3000, weighted=False):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.1).astype(float)
    x = rng.normal(-2, 3, n) + 4 * y * (rng.random(n) < 0.6)
    w = rng.uniform(0, 2, n) * (rng.random(n) < 0.9) if weighted else np.ones(n)
    return y, x, w


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("bins", [1, 2, 10, 30])
def test_ghm_bins_matches_reference(bins, weighted):
    y, x, w = _ghm_data(bins, weighted=weighted)
    ref = ReferenceGHMC(bins, 0.0).weights(y, x, w)
    ghm = GHMLoss(bins=bins)
    sw = w if weighted else None
    np.testing.assert_allclose(ghm.harmonizing_weights(y, x, sw), ref, rtol=1e-12)
    grad, hess = ghm.gradient_hessian(y, x, sw)
    np.testing.assert_allclose(grad, w * ref * _p_minus_y(x, y), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(
        hess, w * ref * np.maximum(_p_one_minus_p(x), HESSIAN_FLOOR), rtol=1e-12
    )
    ce = _cross_entropy(x, y)
    np.testing.assert_allclose(ghm.loss(y, x, sw), w * ref * ce, rtol=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_ghm_momentum_matches_reference_over_rounds(weighted):
    ghm = GHMLoss(bins=30, momentum=0.75)
    ref = ReferenceGHMC(30, 0.75)
    for r in range(5):
        y, x, w = _ghm_data(100 + r, weighted=weighted)
        beta = ref.weights(y, x, w)
        grad, _ = ghm.gradient_hessian(y, x, w if weighted else None)
        np.testing.assert_allclose(grad, w * beta * _p_minus_y(x, y), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(ghm.running_counts_, ref.acc_sum, rtol=1e-12)
    # reset() starts a new average: the next round equals the first round of a fresh loss.
    y, x, w = _ghm_data(7, weighted=weighted)
    ghm.reset()
    np.testing.assert_array_equal(
        ghm.gradient_hessian(y, x)[0], GHMLoss(bins=30, momentum=0.75).gradient_hessian(y, x)[0]
    )


def test_ghm_state_is_not_shared_by_clones_and_set_params_resets():
    y, x, _ = _ghm_data(11)
    ghm = GHMLoss(momentum=0.5)
    ghm.gradient_hessian(y, x)
    assert ghm.running_counts_ is not None
    assert clone(ghm).running_counts_ is None
    ghm.set_params(bins=12)
    assert ghm.running_counts_ is None
    ghm.gradient_hessian(y, x)
    assert ghm.running_counts_.shape == (12,)


def _reference_window_weights(y, x, w, eps):
    g = np.abs(expit(x) - y)
    valid = w > 0
    tot = w[valid].sum()
    beta = np.zeros_like(g)
    for i in np.flatnonzero(valid):
        inside = valid & (g > g[i] - eps / 2) & (g < g[i] + eps / 2)
        length = min(g[i] + eps / 2, 1.0) - max(g[i] - eps / 2, 0.0)
        density = w[inside].sum() / length
        beta[i] = tot / density
    return beta * tot / (w * beta).sum()


@pytest.mark.parametrize("eps", [0.01, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_ghm_window_matches_quadratic_reference(eps, weighted):
    y, x, w = _ghm_data(21, n=700, weighted=weighted)
    ref = _reference_window_weights(y, x, w, eps)
    ghm = GHMLoss(density="window", epsilon=eps)
    sw = w if weighted else None
    np.testing.assert_allclose(ghm.harmonizing_weights(y, x, sw), ref, rtol=1e-10)
    grad, hess = ghm.gradient_hessian(y, x, sw)
    np.testing.assert_allclose(grad, w * ref * _p_minus_y(x, y), rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize(
    "ghm",
    [
        GHMLoss(),
        GHMLoss(bins=3),
        GHMLoss(density="window"),
        GHMLoss(density="window", epsilon=0.03),
    ],
)
def test_ghm_unweighted_weights_sum_to_n(ghm):
    y, x, _ = _ghm_data(31, n=5000)
    assert ghm.harmonizing_weights(y, x).sum() == pytest.approx(5000, rel=1e-12)


def test_ghm_downweights_the_crowded_easy_samples():
    # Most samples are easy (g near 0): their weight must be below 1, the rare mid-g ones above.
    y, x, _ = _ghm_data(41, n=20_000)
    beta = GHMLoss().harmonizing_weights(y, x)
    g = np.abs(expit(x) - y)
    assert beta[g < 0.1].mean() < 1.0 < beta[(g > 0.4) & (g < 0.6)].mean()


def test_ghm_recomputes_density_every_call():
    y, x, _ = _ghm_data(51)
    ghm = GHMLoss()
    g1, _ = ghm.gradient_hessian(y, x)
    g2, _ = ghm.gradient_hessian(y, x + 1.0)
    np.testing.assert_array_equal(g1, ghm.gradient_hessian(y, x)[0])
    ref = ReferenceGHMC(10, 0.0).weights(y, x + 1.0, np.ones_like(x))
    np.testing.assert_allclose(g2, ref * _p_minus_y(x + 1.0, y), rtol=1e-12, atol=1e-300)


def test_window_density_is_not_quadratic():
    # 200k samples in one call: a quadratic implementation would take minutes.
    rng = np.random.default_rng(61)
    n = 200_000
    y = (rng.random(n) < 0.05).astype(float)
    x = rng.normal(-3, 2, n)
    beta = GHMLoss(density="window").harmonizing_weights(y, x)
    assert beta.sum() == pytest.approx(n, rel=1e-9)


def test_get_set_params_and_clone_roundtrip():
    focal = FocalLoss(gamma=1.5, alpha=None, hessian="exact")
    assert focal.get_params() == {"gamma": 1.5, "alpha": None, "hessian": "exact"}
    c = clone(focal).set_params(gamma=3.0)
    assert c.gamma == 3.0 and focal.gamma == 1.5
    ghm = GHMLoss(bins=20, momentum=0.5)
    assert ghm.get_params() == {"bins": 20, "momentum": 0.5, "density": "bins", "epsilon": 0.1}
