"""The multi-class (softmax) kernels against a 50-digit reference, special cases and invariances.

Tolerances (float64 outputs):

- loss, gradient and exact / Gauss-Newton diagonal Hessian against mpmath at 50 digits:
  ``|kernel - ref| <= 1e-12 |ref| + 1e-300`` (the absolute part only matters where the reference
  is far below float64's normal range); margins up to |z| = 1e3, K = 3..10.
- gamma = 0, alpha None against a careful numpy softmax cross-entropy: 16 ulps. Both are within
  about 10 ulps of the 50-digit value on these inputs (|z| ~ 15: the rounding of ``z - max``, which
  both share in kind, dominates), so this is agreement to the last bits either can claim.
- finite differences (central, float64): 1e-6 relative.
"""

import math

import mpmath
import numba
import numpy as np
import pytest
from scipy.special import expit

from boostloss._kernels import binary as kb
from boostloss._kernels import math as km
from boostloss._kernels import softmax as ks
from boostloss.losses._multiclass import softmax_focal_best_constant

EMPTY = np.empty(0)
EXACT = ks.HESSIAN_EXACT
GN = ks.HESSIAN_GAUSS_NEWTON
GAMMAS = [0.0, 0.5, 1.0, 2.0, 5.0]
RTOL = 1e-12
ATOL = 1e-300
FLOOR = ks.HESSIAN_FLOOR


def _rows(seed, n_classes):
    """Margins of many shapes: random at several scales up to 1e3, and hand-made extremes."""
    rng = np.random.default_rng(seed)
    K = n_classes
    rows, labels = [], []
    for scale in (0.3, 3.0, 30.0, 1e3):
        for _ in range(4):
            rows.append(rng.standard_normal(K) * scale)
            labels.append(int(rng.integers(K)))
    special = [
        (np.full(K, 0.0), 0),  # uniform: P = 1/K
        (np.r_[1e3, np.full(K - 1, -1e3)], 0),  # confidently right
        (np.r_[-1e3, np.full(K - 1, 1e3)], 0),  # confidently wrong
        (np.r_[-40.0, 0.0, np.full(K - 2, -40.0)], 0),  # one dominant wrong class
        (np.r_[0.0, 0.0, np.full(K - 2, -45.0)], 1),  # 1 - r of the others tiny
        (np.r_[3.0, 3.0, np.full(K - 2, 3.0)], K - 1),  # ties among the others
        (np.linspace(-1e3, 1e3, K), K // 2),
        (np.linspace(1e3, -1e3, K), K - 1),
        (np.r_[np.full(K - 1, 2.0), 2.0 + 1e-9], K - 1),
    ]
    for row, label in special:
        rows.append(row)
        labels.append(label)
    return np.array(rows, dtype=np.float64), np.array(labels, dtype=np.float64)


def _mp_reference(z, y, gamma, alpha):
    """Loss, gradient, exact and Gauss-Newton diagonal Hessian of one row at 50 digits.

    Derived in p-space (not through the margin t that the kernels use): with
    ``f(P) = -a q^gamma log P``, ``dP/dz_k = P (d_k - p_k)`` and
    ``d2P/dz_k2 = P (d_k - p_k)^2 - P p_k (1 - p_k)``:
    ``g_k = f'(P) dP/dz_k``, ``h_k = f''(P) (dP/dz_k)^2 + f'(P) d2P/dz_k2``. Every ``1 - p`` is a
    sum of the other probabilities, so nothing cancels even for |z| = 1e3.
    """
    with mpmath.workdps(50):
        K = len(z)
        zm = [mpmath.mpf(float(v)) for v in z]
        top = max(zm)
        e = [mpmath.exp(v - top) for v in zm]
        tot = mpmath.fsum(e)
        p = [v / tot for v in e]
        P = p[y]
        q = mpmath.fsum(p[k] for k in range(K) if k != y)
        a = mpmath.mpf(1) if alpha is None else mpmath.mpf(float(alpha[y]))
        g_ = mpmath.mpf(gamma)
        logP = -mpmath.log1p(q / P)  # not log(P): P rounds to 1 at 50 digits when q < 1e-50
        loss = -a * q**g_ * logP
        # f'(P), f''(P) with (1 - P) written as q.
        f1 = -a * (-g_ * q ** (g_ - 1) * logP + q**g_ / P) if gamma != 0 else -a / P
        if gamma == 0:
            f2 = a / P**2
        else:
            f2 = -a * (
                g_ * (g_ - 1) * q ** (g_ - 2) * logP - 2 * g_ * q ** (g_ - 1) / P - q**g_ / P**2
            )
        # The focal weight w = -FL'(t) / q with dFL/dt = f'(P) P q, so w = -f'(P) P.
        w_focal = -f1 * P
        grad, h_exact, h_gn = [], [], []
        for k in range(K):
            one_minus_pk = (
                q
                if k == y
                else 1 - p[k]
                if p[k] < 0.5
                else mpmath.fsum(p[j] for j in range(K) if j != k)
            )
            dk = q if k == y else -p[k]
            dP = P * dk
            d2P = P * dk**2 - P * p[k] * one_minus_pk
            grad.append(f1 * dP)
            h_exact.append(f2 * dP**2 + f1 * d2P)
            h_gn.append(w_focal * p[k] * one_minus_pk)
        return loss, grad, h_exact, h_gn


def _assert_close(got, ref, what):
    ref = np.asarray([float(r) for r in ref])
    err = np.abs(got - ref)
    tol = RTOL * np.abs(ref) + ATOL
    bad = err > tol
    assert not bad.any(), (
        f"{what}: got {got[bad]}, reference {ref[bad]}, relative error "
        f"{(err[bad] / np.maximum(np.abs(ref[bad]), 1e-300))}"
    )


@pytest.fixture(params=["numpy", "kernel"])
def path(request, monkeypatch):
    """The focal gradients' two paths: numpy's (up to NUMPY_FOCAL_UPTO rows) and the kernels'."""
    numpy = request.param == "numpy"
    monkeypatch.setattr(ks, "numpy_twin", lambda n, limit, kernel: numpy)
    return request.param


@pytest.mark.parametrize("n_classes", [2, 3, 5, 9])
@pytest.mark.parametrize("gamma", [2.0, 1.0, 0.0, 0.5, 3.7])
def test_numpy_and_kernel_focal_gradients_give_the_same_bits(monkeypatch, n_classes, gamma):
    """Small K-class trainings get numpy's twin of the gradient kernels while these are not
    compiled (nothing to compile): the same bits, for every Hessian policy, margin and output
    dtype, layout, sample and class weights, margins of every scale and ties."""
    rng = np.random.default_rng(n_classes)
    n = 200
    z = np.concatenate(
        [
            rng.normal(size=(n, n_classes)),
            rng.normal(scale=30.0, size=(n, n_classes)),
            np.round(rng.normal(size=(n, n_classes))),  # ties, for the top class too
            rng.normal(scale=1e-9, size=(n, n_classes)),
            rng.normal(scale=300.0, size=(n, n_classes)),
        ]
    )
    y = rng.integers(0, n_classes, z.shape[0]).astype(np.float64)
    weights = (EMPTY, rng.random(z.shape[0]))
    alphas = (EMPTY, rng.random(n_classes) + 0.1)
    for mode in (EXACT, GN, ks.HESSIAN_BOUNDED):
        layouts = [(np.float32, np.float32, "C"), (np.float64, np.float32, "F")]
        if gamma in (2.0, 0.5):  # (each layout is a compilation of each gamma's kernel)
            layouts += [(np.float64, np.float64, "C"), (np.float32, np.float64, "F")]
        for x_dtype, out_dtype, order in layouts:
            x = np.array(z, dtype=x_dtype, order=order)
            for w, alpha in ((weights[0], alphas[0]), (weights[1], alphas[1])):
                results = []
                for numpy in (True, False):
                    monkeypatch.setattr(ks, "numpy_twin", lambda n, limit, k, numpy=numpy: numpy)
                    g = np.full(z.shape, np.nan, dtype=out_dtype, order=order)
                    h = np.full(z.shape, np.nan, dtype=out_dtype, order=order)
                    ks.softmax_focal_grad_hess(y, x, w, gamma, alpha, mode, g, h)
                    results.append(g.tobytes() + h.tobytes())
                assert results[0] == results[1], (mode, x_dtype, out_dtype, order, w.size)


@pytest.mark.parametrize("n_classes", [3, 4, 7, 10])
@pytest.mark.parametrize("with_alpha", [False, True])
def test_against_mpmath(n_classes, with_alpha, path):
    x, y = _rows(n_classes, n_classes)
    n = x.shape[0]
    alpha = np.linspace(0.25, 3.0, n_classes) if with_alpha else EMPTY
    for gamma in GAMMAS:
        loss = np.empty(n)
        ks.softmax_focal_loss(y, x, EMPTY, gamma, alpha, loss)
        g = np.empty((n, n_classes))
        h = np.empty((n, n_classes))
        g_gn = np.empty((n, n_classes))
        h_gn = np.empty((n, n_classes))
        ks.softmax_focal_grad_hess(y, x, EMPTY, gamma, alpha, EXACT, g, h)
        ks.softmax_focal_grad_hess(y, x, EMPTY, gamma, alpha, GN, g_gn, h_gn)
        assert np.array_equal(g, g_gn)
        for i in range(n):
            ref_loss, ref_g, ref_h, ref_hgn = _mp_reference(
                x[i], int(y[i]), gamma, alpha if with_alpha else None
            )
            what = f"K={n_classes} gamma={gamma} alpha={with_alpha} row {x[i]} y={y[i]}"
            _assert_close(loss[i : i + 1], [ref_loss], "loss " + what)
            _assert_close(g[i], ref_g, "gradient " + what)
            _assert_close(h[i], [max(v, FLOOR) for v in ref_h], "exact Hessian " + what)
            _assert_close(h_gn[i], [max(v, FLOOR) for v in ref_hgn], "Gauss-Newton " + what)


def test_mpmath_reference_matches_numerical_derivatives():
    # The closed forms of the reference against mpmath's own differentiation of the definition.
    z = [0.3, -1.2, 2.0, 0.7]
    y, gamma, alpha = 1, 1.5, [0.5, 2.0, 1.0, 1.0]

    def fl(*zz):
        e = [mpmath.exp(v) for v in zz]
        P = e[y] / mpmath.fsum(e)
        return -alpha[y] * (1 - P) ** gamma * mpmath.log(P)

    with mpmath.workdps(50):
        _, grad, h_exact, _ = _mp_reference(z, y, gamma, alpha)
        for k in range(4):
            order = [0] * 4
            order[k] = 1
            assert abs(mpmath.diff(fl, z, tuple(order)) - grad[k]) < mpmath.mpf(10) ** -40
            order[k] = 2
            assert abs(mpmath.diff(fl, z, tuple(order)) - h_exact[k]) < mpmath.mpf(10) ** -40


def _numpy_softmax_ce(x, y):
    """Careful numpy softmax cross-entropy: ``p - onehot``, ``p (1 - p)``, with every ``1 - p``
    a sum of the other probabilities (never a subtraction from 1)."""
    n, K = x.shape
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    one_minus = np.empty_like(p)
    for k in range(K):
        one_minus[:, k] = p[:, np.arange(K) != k].sum(axis=1)
    grad = p.copy()
    rows = np.arange(n)
    yi = y.astype(np.intp)
    grad[rows, yi] = -one_minus[rows, yi]
    hess = np.maximum(p * one_minus, FLOOR)
    return grad, hess, one_minus[rows, yi]


@pytest.mark.parametrize("n_classes", [3, 10])
def test_gamma_zero_is_softmax_cross_entropy(n_classes):
    rng = np.random.default_rng(1)
    n = 2000
    x = rng.standard_normal((n, n_classes)) * 4.0
    y = rng.integers(n_classes, size=n).astype(np.float64)
    ref_g, ref_h, ref_q = _numpy_softmax_ce(x, y)
    ulps = 16 * np.finfo(float).eps
    for mode in (EXACT, GN):
        g = np.empty((n, n_classes))
        h = np.empty((n, n_classes))
        ks.softmax_focal_grad_hess(y, x, EMPTY, 0.0, EMPTY, mode, g, h)
        np.testing.assert_allclose(g, ref_g, rtol=ulps, atol=1e-300)
        np.testing.assert_allclose(h, ref_h, rtol=ulps, atol=1e-300)
    g = np.empty((n, n_classes))
    h = np.empty((n, n_classes))
    g_norm = np.empty(n)
    ks.softmax_ce_grad_hess_norm(y, x, EMPTY, g, h, g_norm)
    np.testing.assert_allclose(g, ref_g, rtol=ulps, atol=1e-300)
    np.testing.assert_allclose(h, ref_h, rtol=ulps, atol=1e-300)
    np.testing.assert_allclose(g_norm, ref_q, rtol=ulps)
    ce = np.empty(n)
    g_norm2 = np.empty(n)
    ks.softmax_ce_loss_and_norm(y, x, ce, g_norm2)
    assert np.array_equal(g_norm, g_norm2)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p_y = e[np.arange(n), y.astype(np.intp)] / e.sum(axis=1)
    with np.errstate(divide="ignore"):
        ref_ce = np.where(ref_q < 0.5, -np.log1p(-ref_q), -np.log(p_y))
    np.testing.assert_allclose(ce, ref_ce, rtol=ulps, atol=1e-300)
    fl = np.empty(n)
    ks.softmax_focal_loss(y, x, EMPTY, 0.0, EMPTY, fl)
    assert np.array_equal(fl, ce)


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("with_alpha", [False, True])
def test_two_classes_equal_binary_focal_on_margin_difference(gamma, with_alpha):
    rng = np.random.default_rng(2)
    n = 500
    x = rng.standard_normal((n, 2)) * np.r_[0.5, 5.0, 50.0, 500.0][rng.integers(4, size=(n, 1))]
    y = rng.integers(2, size=n).astype(np.float64)
    alpha = np.array([0.75, 0.25]) if with_alpha else EMPTY
    a_pos, a_neg = (0.25, 0.75) if with_alpha else (1.0, 1.0)
    diff = x[:, 1] - x[:, 0]
    bg, bh = np.empty(n), np.empty(n)
    kb.focal_grad_hess(y, diff, EMPTY, gamma, a_pos, a_neg, EXACT, bg, bh)
    g, h = np.empty((n, 2)), np.empty((n, 2))
    ks.softmax_focal_grad_hess(y, x, EMPTY, gamma, alpha, EXACT, g, h)
    tol = dict(rtol=4 * np.finfo(float).eps, atol=1e-300)
    np.testing.assert_allclose(g[:, 1], bg, **tol)
    np.testing.assert_allclose(g[:, 0], -bg, **tol)
    # Exact Hessian: d2/dz1^2 = d2/dz0^2 = the binary second derivative (r = 1 for the one wrong
    # class, so h_k = FL'' r^2 = FL'').
    np.testing.assert_allclose(h[:, 1], bh, **tol)
    np.testing.assert_allclose(h[:, 0], bh, **tol)
    # Gauss-Newton: both entries are -FL' p_t = |binary gradient| * p_t (the focal weight frozen on
    # the cross-entropy Hessian), which is the binary Gauss-Newton a m p_t q times
    # (1 - gamma p_t log p_t / q): equal to it only at gamma = 0.
    g_gn, h_gn = np.empty((n, 2)), np.empty((n, 2))
    ks.softmax_focal_grad_hess(y, x, EMPTY, gamma, alpha, GN, g_gn, h_gn)
    p_t = expit(np.where(y > 0.5, diff, -diff))
    expected = np.maximum(np.abs(bg) * p_t, FLOOR)
    np.testing.assert_allclose(h_gn[:, 0], expected, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(h_gn[:, 1], expected, rtol=1e-13, atol=1e-300)
    loss, bloss = np.empty(n), np.empty(n)
    ks.softmax_focal_loss(y, x, EMPTY, gamma, alpha, loss)
    kb.focal_loss(y, diff, EMPTY, gamma, a_pos, a_neg, bloss)
    np.testing.assert_allclose(loss, bloss, **tol)


def test_two_classes_equal_binary_ghm_pass():
    rng = np.random.default_rng(3)
    n = 3000
    x = rng.standard_normal((n, 2)) * 3.0
    y = rng.integers(2, size=n).astype(np.float64)
    w = rng.random(n)
    w[::7] = 0.0
    diff = x[:, 1] - x[:, 0]
    edges = np.arange(11) / 10.0
    edges[-1] += 1e-6
    for weights in (EMPTY, w):
        bg, bh, bb = np.empty(n), np.empty(n), np.empty(n, dtype=np.int32)
        kb.ghm_bins_pass(y, diff, weights, edges, bg, bh, bb)
        g, h, b = np.empty((n, 2)), np.empty((n, 2)), np.empty(n, dtype=np.int32)
        ks.softmax_ghm_bins_pass(y, x, weights, edges, g, h, b)
        assert np.array_equal(b, bb)
        np.testing.assert_allclose(g[:, 1], bg, rtol=4e-16, atol=1e-300)
        np.testing.assert_allclose(g[:, 0], -bg, rtol=4e-16, atol=1e-300)
        np.testing.assert_allclose(h[:, 1], bh, rtol=4e-16, atol=1e-300)
        g_norm = np.empty(n)
        ks.softmax_ce_grad_hess_norm(y, x, weights, g, h, g_norm)
        bn = np.empty(n)
        kb.ghm_norm_pass(y, diff, weights, bg, bh, bn)
        assert np.array_equal(g_norm, bn)


def test_binary_ghm_bins_pass_on_uniform_and_other_edges():
    """The standard edges run the kernel without look-ups, any others the general one: the same
    derivatives, and the bins of ``searchsorted``."""
    rng = np.random.default_rng(5)
    n = 5000
    x = rng.standard_normal(n) * 4.0
    y = rng.integers(2, size=n).astype(np.float64)
    uniform = np.arange(11) / 10.0
    uniform[-1] += 1e-6
    other = np.array([0.0, 0.05, 0.3, 0.9, 1.0 + 1e-6])
    assert kb._edges_are_uniform(uniform) and not kb._edges_are_uniform(other)
    g_norm = np.abs(1.0 / (1.0 + np.exp(-x)) - y)
    outputs = []
    for kernel, edges in (
        (kb.ghm_bins_pass, uniform),
        (kb._ghm_bins_pass_edges, uniform),
        (kb.ghm_bins_pass, other),
    ):
        g, h, b = np.empty(n), np.empty(n), np.empty(n, dtype=np.int32)
        kernel(y, x, EMPTY, edges, g, h, b)
        near_edge = np.isclose(g_norm[:, None], edges[None, :], rtol=0, atol=1e-12).any(axis=1)
        expected = np.searchsorted(edges, g_norm, side="right") - 1
        assert np.array_equal(b[~near_edge], expected[~near_edge])
        outputs.append((g, h, b))
    for a, b in zip(outputs[0], outputs[1], strict=True):
        assert np.array_equal(a, b)
    assert np.array_equal(outputs[0][0], outputs[2][0])


def test_ghm_bins_nonuniform_edges_and_scaling():
    rng = np.random.default_rng(4)
    n, K = 1000, 5
    x = rng.standard_normal((n, K)) * 2.0
    y = rng.integers(K, size=n).astype(np.float64)
    edges = np.array([0.0, 0.05, 0.3, 0.9, 1.0 + 1e-6])
    g, h, b = np.empty((n, K)), np.empty((n, K)), np.empty(n, dtype=np.int64)
    ks.softmax_ghm_bins_pass(y, x, EMPTY, edges, g, h, b)
    ce, g_norm = np.empty(n), np.empty(n)
    ks.softmax_ce_loss_and_norm(y, x, ce, g_norm)
    expected_bins = np.searchsorted(edges, g_norm, side="right") - 1
    assert np.array_equal(b, expected_bins)
    beta = np.array([0.5, 2.0, 3.0, 7.0])
    g2, h2 = g.copy(), h.copy()
    ks.scale_rows_by_bin(b, beta, g2, h2)
    assert np.array_equal(g2, g * beta[b][:, None])
    assert np.array_equal(h2, h * beta[b][:, None])
    per_row = rng.random(n)
    g3, h3 = g.copy(), h.copy()
    ks.scale_rows_by_sample(per_row, g3, h3)
    assert np.array_equal(g3, g * per_row[:, None])
    assert np.array_equal(h3, h * per_row[:, None])


@pytest.mark.parametrize("gamma", GAMMAS)
def test_gradients_sum_to_zero_and_weights_multiply(gamma):
    rng = np.random.default_rng(5)
    n, K = 3000, 6
    x = rng.standard_normal((n, K)) * 10.0
    y = rng.integers(K, size=n).astype(np.float64)
    alpha = rng.random(K) + 0.1
    g, h = np.empty((n, K)), np.empty((n, K))
    ks.softmax_focal_grad_hess(y, x, EMPTY, gamma, alpha, EXACT, g, h)
    assert np.all(np.abs(g.sum(axis=1)) <= 4 * np.finfo(float).eps * np.abs(g).sum(axis=1))
    assert np.all(g[np.arange(n), y.astype(np.intp)] <= 0.0)
    assert np.all(h >= FLOOR)
    w = rng.random(n) * 3.0
    gw, hw = np.empty((n, K)), np.empty((n, K))
    ks.softmax_focal_grad_hess(y, x, w, gamma, alpha, EXACT, gw, hw)
    assert np.array_equal(gw, g * w[:, None])
    assert np.array_equal(hw, h * w[:, None])
    loss, lw = np.empty(n), np.empty(n)
    ks.softmax_focal_loss(y, x, EMPTY, gamma, alpha, loss)
    ks.softmax_focal_loss(y, x, w, gamma, alpha, lw)
    assert np.array_equal(lw, loss * w)
    # alpha multiplies the whole row by alpha_y.
    g1, h1 = np.empty((n, K)), np.empty((n, K))
    ks.softmax_focal_grad_hess(y, x, EMPTY, gamma, EMPTY, EXACT, g1, h1)
    a_y = alpha[y.astype(np.intp)][:, None]
    np.testing.assert_allclose(g, g1 * a_y, rtol=1e-15, atol=1e-300)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
def test_finite_differences(gamma, path):
    rng = np.random.default_rng(6)
    n, K = 40, 5
    x = rng.standard_normal((n, K)) * 2.0
    y = rng.integers(K, size=n).astype(np.float64)
    alpha = np.linspace(0.5, 1.5, K)
    g, h = np.empty((n, K)), np.empty((n, K))
    ks.softmax_focal_grad_hess(y, x, EMPTY, gamma, alpha, EXACT, g, h)
    step = 1e-5
    for k in range(K):
        xp, xm = x.copy(), x.copy()
        xp[:, k] += step
        xm[:, k] -= step
        lp, lm = np.empty(n), np.empty(n)
        ks.softmax_focal_loss(y, xp, EMPTY, gamma, alpha, lp)
        ks.softmax_focal_loss(y, xm, EMPTY, gamma, alpha, lm)
        fd_grad = (lp - lm) / (xp[:, k] - xm[:, k])
        np.testing.assert_allclose(g[:, k], fd_grad, rtol=1e-6, atol=1e-9)
        gp, gm, hh = np.empty((n, K)), np.empty((n, K)), np.empty((n, K))
        ks.softmax_focal_grad_hess(y, xp, EMPTY, gamma, alpha, EXACT, gp, hh)
        ks.softmax_focal_grad_hess(y, xm, EMPTY, gamma, alpha, EXACT, gm, hh)
        fd_hess = (gp[:, k] - gm[:, k]) / (xp[:, k] - xm[:, k])
        unfloored = np.abs(fd_hess) > 1e-8
        assert unfloored.sum() > n // 2
        np.testing.assert_allclose(
            np.maximum(fd_hess, FLOOR)[unfloored], h[unfloored, k], rtol=1e-6, atol=1e-9
        )


def test_layout_and_dtype_do_not_change_results():
    rng = np.random.default_rng(7)
    n, K = 5000, 7
    x32 = (rng.standard_normal((n, K)) * 5.0).astype(np.float32)
    y = rng.integers(K, size=n).astype(np.float64)
    alpha = np.linspace(0.5, 1.5, K)
    w = rng.random(n)
    inputs = [
        x32,
        np.asfortranarray(x32),
        x32.astype(np.float64),
        np.asfortranarray(x32.astype(np.float64)),
    ]
    results = []
    # Every input layout with every output layout (the kernels copy a block in and out in each
    # array's own order), n not a multiple of the 128-row block.
    for xin in inputs:
        for out_order in "CF":
            g, h = np.empty((n, K), order=out_order), np.empty((n, K), order=out_order)
            ks.softmax_focal_grad_hess(y, xin, w, 2.0, alpha, EXACT, g, h)
            gc, hc = np.empty((n, K), order=out_order), np.empty((n, K), order=out_order)
            gn = np.empty(n)
            ks.softmax_ce_grad_hess_norm(y, xin, w, gc, hc, gn)
            loss = np.empty(n)
            ks.softmax_focal_loss(y, xin, w, 2.0, alpha, loss)
            results.append((g, h, gc, hc, gn, loss))
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert np.array_equal(a, b)
    # float32 outputs: the float64 results rounded, to within one float32 rounding more (the
    # kernels park exp values in the output rows as a float32 pair), the same in both orders.
    g, h = results[0][0], results[0][1]
    g32, h32 = np.empty((n, K), np.float32), np.empty((n, K), np.float32)
    ks.softmax_focal_grad_hess(y, x32, w, 2.0, alpha, EXACT, g32, h32)
    g32f, h32f = np.empty((n, K), np.float32, order="F"), np.empty((n, K), np.float32, order="F")
    ks.softmax_focal_grad_hess(y, np.asfortranarray(x32), w, 2.0, alpha, EXACT, g32f, h32f)
    assert np.array_equal(g32, g32f) and np.array_equal(h32, h32f)
    f32 = np.finfo(np.float32)
    np.testing.assert_allclose(g32, g, rtol=2 * f32.eps, atol=2 * f32.smallest_subnormal)
    np.testing.assert_allclose(h32, h, rtol=2 * f32.eps, atol=2 * f32.smallest_subnormal)


def test_bit_identical_across_thread_counts():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has a single thread")
    rng = np.random.default_rng(8)
    n, K = 2 * ks.CHUNK + 12345, 4
    x = (rng.standard_normal((n, K)) * 3.0).astype(np.float32)
    y = rng.integers(K, size=n).astype(np.float64)
    w = rng.random(n)
    alpha = np.linspace(0.5, 1.5, K)
    edges = np.arange(11) / 10.0
    edges[-1] += 1e-6

    def run():
        out = {}
        for name, gamma, mode in (("focal2", 2.0, EXACT), ("focal1.5gn", 1.5, GN)):
            g, h = np.empty((n, K), np.float32), np.empty((n, K), np.float32)
            ks.softmax_focal_grad_hess(y, x, w, gamma, alpha, mode, g, h)
            out[name] = (g, h)
        loss = np.empty(n)
        ks.softmax_focal_loss(y, x, w, 2.0, alpha, loss)
        out["loss"] = (loss,)
        g, h, b, counts = np.empty((n, K)), np.empty((n, K)), np.empty(n, np.int32), np.zeros(10)
        ks.softmax_ghm_bins_pass(y, x, w, edges, g, h, b)
        tot = kb.bin_histogram(b, w, 10, counts)
        out["ghm"] = (g, h, b, counts, np.array([tot]))
        return out

    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run()
        numba.set_num_threads(2)
        two = run()
    finally:
        numba.set_num_threads(before)
    for name in one:
        for a, b in zip(one[name], two[name], strict=True):
            assert a.tobytes() == b.tobytes(), name


# ---------------------------------------------------------------------------------------------
# Best constant
# ---------------------------------------------------------------------------------------------


def _total_gradient(class_weights, c, gamma, alpha):
    K = len(class_weights)
    y = np.arange(K, dtype=np.float64)
    x = np.tile(c, (K, 1))
    g, h = np.empty((K, K)), np.empty((K, K))
    a = EMPTY if alpha is None else np.asarray(alpha, dtype=np.float64)
    ks.softmax_focal_grad_hess(
        y, x, np.asarray(class_weights, dtype=np.float64), gamma, a, EXACT, g, h
    )
    return g.sum(axis=0), np.abs(g).sum(axis=0)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize(
    "weights, alpha",
    [
        ([100.0, 10.0, 1.0], None),
        ([1e6, 3.0, 1.0, 50.0], None),
        ([5.0, 5.0, 5.0], [1.0, 2.0, 3.0]),
        ([1.0, 1e-3, 1e5, 7.0, 7.0, 2.0, 9.0, 1.0, 0.5, 30.0], np.linspace(0.25, 4.0, 10)),
    ],
)
def test_best_constant_zeroes_the_total_gradient(gamma, weights, alpha):
    c = softmax_focal_best_constant(weights, gamma, alpha)
    assert c.shape == (len(weights),)
    assert abs(c.sum()) <= 1e-12 * np.abs(c).sum() + 1e-15
    total, scale = _total_gradient(weights, c, gamma, alpha)
    assert np.all(np.abs(total) <= 1e-10 * scale.max()), total / scale.max()
    # A stationary point that is a minimum: moving any margin pair apart raises the total loss.
    K = len(weights)
    y = np.arange(K, dtype=np.float64)
    a = EMPTY if alpha is None else np.asarray(alpha, dtype=np.float64)

    def total_loss(cc):
        out = np.empty(K)
        ks.softmax_focal_loss(
            y, np.tile(cc, (K, 1)), np.asarray(weights, dtype=float), gamma, a, out
        )
        return out.sum()

    base = total_loss(c)
    for k in range(K):
        for d in (-1e-3, 1e-3):
            cc = c.copy()
            cc[k] += d
            assert total_loss(cc) > base


def test_best_constant_at_gamma_zero_is_log_priors():
    weights = np.array([120.0, 30.0, 5.0, 0.25])
    c = softmax_focal_best_constant(weights, 0.0)
    expected = np.log(weights) - np.log(weights).mean()
    np.testing.assert_allclose(c, expected, rtol=1e-15, atol=1e-15)
    # with alpha: log of alpha-weighted priors; and gamma -> 0 is continuous.
    alpha = np.array([0.5, 1.0, 2.0, 4.0])
    c = softmax_focal_best_constant(weights, 0.0, alpha)
    expected = np.log(alpha * weights) - np.log(alpha * weights).mean()
    np.testing.assert_allclose(c, expected, rtol=1e-15, atol=1e-15)
    near = softmax_focal_best_constant(weights, 1e-9, alpha)
    np.testing.assert_allclose(near, expected, atol=1e-6)


@pytest.mark.parametrize(
    "weights, gamma, alpha, match",
    [
        ([1.0], 2.0, None, "at least 2"),
        ([1.0, 0.0, 2.0], 2.0, None, "0.0 for class 1"),
        ([1.0, np.nan], 2.0, None, "nan for class 1"),
        ([1.0, 2.0], -1.0, None, "-1.0"),
        ([1.0, 2.0], 2.0, [1.0], r"shape \(1,\)"),
        ([1.0, 2.0], 2.0, [1.0, -0.5], "-0.5 for class 1"),
    ],
)
def test_best_constant_rejects_bad_input(weights, gamma, alpha, match):
    with pytest.raises(ValueError, match=match):
        softmax_focal_best_constant(weights, gamma, alpha)


def test_helpers_exported():
    assert math.isclose(ks.HESSIAN_FLOOR, 1e-16)
    for name in ks.__all__:
        assert hasattr(ks, name)


def test_log1p_nonnegative_within_one_ulp_of_libm():
    """The vectorisable log1p of the softmax kernels over its whole domain: 0, tiny values, the
    sums of exps the kernels pass (up to K), and up to the float64 maximum."""
    rng = np.random.default_rng(7)
    t = np.concatenate(
        [
            [
                0.0,
                5e-324,
                1e-300,
                2.0**-53,
                2.0**-52,
                0.5,
                1.0,
                math.sqrt(2.0) - 1.0,
                2.0,
                1e300,
                np.finfo(np.float64).max,
            ],
            rng.uniform(0.0, 1.0, 20000),
            rng.uniform(0.0, 20.0, 20000),
            10.0 ** rng.uniform(-300, 308, 20000),
        ]
    )

    @numba.njit
    def ours(values, out):
        for i in range(values.shape[0]):
            out[i] = km._log1p_nonnegative(values[i])

    got = np.empty_like(t)
    ours(t, got)
    # libm's log1p (math.log1p), not numpy's: numpy 1.24 has a log1p of its own, off by an ulp
    # or more on some of these values.
    want = np.array([math.log1p(v) for v in t])
    ulp = np.spacing(np.abs(want))
    assert np.all(np.abs(got - want) <= ulp), t[np.argmax(np.abs(got - want) / ulp)]
    assert got[0] == 0.0 and got[1] == 5e-324
