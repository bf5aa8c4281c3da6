"""K-class losses through the public protocol: margins of shape (n, K), labels 0..K-1.

The kernels themselves are checked against a 50-digit reference in test_softmax_kernels.py; here
the loss classes: K = 2 equals the binary loss on the margin difference, gamma = 0 is the softmax
cross-entropy, finite differences, weights, layouts and dtypes, the start, and bad input.
"""

import numpy as np
import pytest
from scipy.special import softmax

from boostloss import FocalLoss, GHMLoss
from boostloss.losses import check_target

FOCALS = {
    "focal_exact": lambda: FocalLoss(gamma=2.0, alpha=None, hessian="exact"),
    "focal_auto": lambda: FocalLoss(gamma=2.0, alpha=None),
    "focal_exact_alpha": lambda: FocalLoss(gamma=2.0, alpha=[0.5, 1.0, 2.0, 1.5, 0.25]),
    "focal_gn_gamma_1.5": lambda: FocalLoss(gamma=1.5, alpha=None, hessian="gauss_newton"),
}
GHMS = {
    "ghm_bins": lambda: GHMLoss(bins=10),
    "ghm_bins_momentum": lambda: GHMLoss(bins=30, momentum=0.75),
    "ghm_window": lambda: GHMLoss(density="window", epsilon=0.1),
}
MULTI = {**FOCALS, **GHMS}
K = 5


def softmax_ce(x, y):
    """-log p_y = log1p(sum_{k != y} exp(z_k - z_y)): no cancellation for small losses."""
    others = np.exp(x - x[np.arange(y.size), y][:, None])
    others[np.arange(y.size), y] = 0.0
    return np.log1p(others.sum(axis=1))


def rows(n=600, n_classes=K, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, n_classes)) * scale
    y = rng.integers(n_classes, size=n)
    return x, y, rng.uniform(0.2, 3.0, size=n)


# ------------------------------------------------------------------------------------------------
# K = 2 is the binary loss on the margin difference
# ------------------------------------------------------------------------------------------------

BINARY_EQUIVALENTS = [
    pytest.param(lambda: FocalLoss(gamma=2.0, alpha=None), id="focal"),
    pytest.param(lambda: FocalLoss(gamma=0.5, alpha=0.25), id="focal-float-alpha"),
    pytest.param(lambda: FocalLoss(gamma=5.0, alpha=[0.75, 0.25]), id="focal-class-alpha"),
    pytest.param(lambda: FocalLoss(gamma=0.0, alpha=None), id="logistic"),
    pytest.param(lambda: GHMLoss(bins=10), id="ghm-bins"),
    pytest.param(lambda: GHMLoss(bins=30, momentum=0.75), id="ghm-momentum"),
    pytest.param(lambda: GHMLoss(density="window", epsilon=0.1), id="ghm-window"),
]


@pytest.mark.parametrize("make", BINARY_EQUIVALENTS)
@pytest.mark.parametrize("weighted", [False, True])
def test_two_classes_equal_the_binary_loss_on_the_margin_difference(make, weighted):
    x, y, w = rows(n_classes=2, seed=1, scale=8.0)
    w = w if weighted else None
    diff = x[:, 1] - x[:, 0]
    two, binary = make(), make()
    tol = dict(rtol=1e-14, atol=1e-300)
    for _ in range(2):  # two rounds: the momentum state of both advances alike
        g2, h2 = two.gradient_hessian(y, x, w)
        g1, h1 = binary.gradient_hessian(y, diff, w)
        np.testing.assert_allclose(g2[:, 1], g1, **tol)
        np.testing.assert_allclose(g2[:, 0], -g1, **tol)
        np.testing.assert_allclose(h2[:, 1], h1, **tol)
        np.testing.assert_allclose(h2[:, 0], h1, **tol)
    np.testing.assert_allclose(two.loss(y, x, w), binary.loss(y, diff, w), **tol)


def test_two_classes_gauss_newton_is_the_positive_part_of_the_softmax_hessian():
    # The K-class Gauss-Newton diagonal freezes the focal weight w = -FL'/q on the cross-entropy
    # Hessian (docs/math.md): -FL' p_t for K = 2, not the binary policy alpha_t m p_t q (which
    # freezes only the modulating factor). Both are the cross-entropy Hessian at gamma = 0.
    x, y, _ = rows(n_classes=2, seed=2)
    diff = x[:, 1] - x[:, 0]
    focal = FocalLoss(gamma=2.0, alpha=None, hessian="gauss_newton")
    _, h2 = focal.gradient_hessian(y, x)
    g1, _ = FocalLoss(gamma=2.0, alpha=None, hessian="exact").gradient_hessian(y, diff)
    p_t = np.where(y == 1, softmax(x, axis=1)[:, 1], softmax(x, axis=1)[:, 0])
    np.testing.assert_allclose(h2[:, 0], np.maximum(np.abs(g1) * p_t, 1e-16), rtol=1e-13)
    _, h_binary = focal.gradient_hessian(y, diff)
    assert not np.allclose(h2[:, 0], h_binary, rtol=1e-3)
    ce = FocalLoss(gamma=0.0, alpha=None, hessian="gauss_newton")
    np.testing.assert_allclose(
        ce.gradient_hessian(y, x)[1][:, 1], ce.gradient_hessian(y, diff)[1], rtol=1e-14
    )


# ------------------------------------------------------------------------------------------------
# gamma = 0 is the softmax cross-entropy; finite differences; GHM's weights
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hessian", ["exact", "gauss_newton"])
def test_gamma_zero_is_softmax_cross_entropy(hessian):
    x, y, w = rows(seed=3)
    p = softmax(x, axis=1)
    onehot = np.eye(K)[y]
    grad, hess = FocalLoss(gamma=0.0, alpha=None, hessian=hessian).gradient_hessian(y, x, w)
    np.testing.assert_allclose(grad, w[:, None] * (p - onehot), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(hess, w[:, None] * np.maximum(p * (1 - p), 1e-16), rtol=1e-12)
    np.testing.assert_allclose(
        FocalLoss(gamma=0.0, alpha=None).loss(y, x), softmax_ce(x, y), rtol=1e-13
    )
    # A single GHM bin gives every sample weight 1: the cross-entropy too.
    g1, h1 = GHMLoss(bins=1).gradient_hessian(y, x, w)
    np.testing.assert_allclose(g1, grad, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(h1, w[:, None] * np.maximum(p * (1 - p), 1e-16), rtol=1e-12)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [None, [0.5, 1.0, 2.0, 1.5, 0.25]], ids=["none", "classes"])
def test_finite_differences_of_loss_and_gradient(gamma, alpha):
    x, y, _ = rows(n=60, seed=4, scale=2.0)
    focal = FocalLoss(gamma=gamma, alpha=alpha, hessian="exact")
    grad, hess = focal.gradient_hessian(y, x)
    step = 1e-6
    for k in range(K):
        up, down = x.copy(), x.copy()
        up[:, k] += step
        down[:, k] -= step
        fd_grad = (focal.loss(y, up) - focal.loss(y, down)) / (2 * step)
        np.testing.assert_allclose(grad[:, k], fd_grad, rtol=1e-6, atol=1e-9)
        fd_hess = (
            focal.gradient_hessian(y, up)[0][:, k] - focal.gradient_hessian(y, down)[0][:, k]
        ) / (2 * step)
        # The exact diagonal is floored at 1e-16 where it is negative.
        np.testing.assert_allclose(hess[:, k], np.maximum(fd_hess, 1e-16), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [None, [0.5, 1.0, 2.0, 1.5, 0.25]], ids=["none", "classes"])
@pytest.mark.parametrize("shape", ["binary", "softmax"])
def test_bounded_hessian_is_the_larger_of_exact_and_gauss_newton(gamma, alpha, shape):
    x, y, w = rows(seed=6, scale=4.0)
    if shape == "binary":
        x, y = x[:, 1] - x[:, 0], (y > 1).astype(np.float64)
        alpha = None if alpha is None else alpha[:2]
    out = {
        h: FocalLoss(gamma=gamma, alpha=alpha, hessian=h).gradient_hessian(y, x, w)
        for h in ("exact", "gauss_newton", "bounded")
    }
    np.testing.assert_array_equal(out["bounded"][0], out["exact"][0])
    np.testing.assert_array_equal(
        out["bounded"][1], np.maximum(out["exact"][1], out["gauss_newton"][1])
    )
    if gamma == 0.0:  # the cross-entropy: all three agree
        np.testing.assert_allclose(out["bounded"][1], out["exact"][1], rtol=1e-12)
    elif shape == "softmax":  # the bound is active somewhere and the exact part elsewhere
        assert (out["exact"][1] < out["gauss_newton"][1]).any()
        assert (out["exact"][1] > out["gauss_newton"][1]).any()


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0, 5.0])
def test_bounded_hessian_switches_whole_rows_where_docs_say(gamma):
    # exact - Gauss-Newton = r_k^2 (FL'' + FL' P) on every entry of a row (r_y = 1), and
    # (FL'' + FL' P) / (alpha_y q^gamma gamma P) = log P (1 - gamma P) + 2 (1 - P).
    x, y, _ = rows(n=2000, seed=8, scale=2.5)
    p_y = softmax(x, axis=1)[np.arange(y.size), y]
    switch = np.log(p_y) * (1 - gamma * p_y) + 2 * (1 - p_y)
    out = {
        h: FocalLoss(gamma=gamma, alpha=None, hessian=h).gradient_hessian(y, x)[1]
        for h in ("exact", "gauss_newton", "bounded")
    }
    sure = np.abs(switch) > 1e-6
    exact_rows = sure & (switch > 0)
    gn_rows = sure & (switch < 0)
    assert exact_rows.sum() > 100 and gn_rows.sum() > 100
    np.testing.assert_array_equal(out["bounded"][exact_rows], out["exact"][exact_rows])
    np.testing.assert_array_equal(out["bounded"][gn_rows], out["gauss_newton"][gn_rows])
    if gamma == 1.0:  # the switch at p_y = e^-2
        np.testing.assert_array_equal(sure & (p_y > np.exp(-2)), exact_rows)


def test_bounded_hessian_keeps_confidently_wrong_rows_off_the_floor():
    # A row of a rare class at the start (p_y = 1e-3): the exact curvature in t is negative and is
    # floored at 1e-16, so a leaf of such rows gets a Newton step of ~1e16 x its gradient; the
    # bounded Hessian is the Gauss-Newton one there, the cross-entropy's p_y (1 - p_y) to 2%.
    x = np.log(np.array([[1e-3, 0.5, 0.499]]))
    y = np.array([0])
    g, h_exact = FocalLoss(gamma=2.0, alpha=None, hessian="exact").gradient_hessian(y, x)
    _, h = FocalLoss(gamma=2.0, alpha=None, hessian="bounded").gradient_hessian(y, x)
    assert h_exact[0, 0] == 1e-16 and g[0, 0] < -0.99
    np.testing.assert_allclose(h[0, 0], 1e-3 * (1 - 1e-3), rtol=2e-2)


def test_auto_hessian_is_exact_for_two_classes_and_bounded_for_more():
    x, y, w = rows(seed=7)
    for hessian, n_classes in (("bounded", K), ("exact", 2)):
        yk = y % n_classes
        np.testing.assert_array_equal(
            FocalLoss(alpha=None).gradient_hessian(yk, x[:, :n_classes], w)[1],
            FocalLoss(alpha=None, hessian=hessian).gradient_hessian(yk, x[:, :n_classes], w)[1],
        )
    binary = (y > 1).astype(np.float64)
    np.testing.assert_array_equal(
        FocalLoss().gradient_hessian(binary, x[:, 0], w)[1],
        FocalLoss(hessian="exact").gradient_hessian(binary, x[:, 0], w)[1],
    )
    with pytest.raises(ValueError, match="'auto', 'exact', 'gauss_newton', 'bounded'"):
        FocalLoss(hessian="positive").gradient_hessian(binary, x[:, 0])


@pytest.mark.parametrize("name", sorted(GHMS))
def test_ghm_weights_multiply_the_softmax_cross_entropy(name):
    x, y, _ = rows(seed=5)
    ghm = GHMS[name]()
    beta = ghm.harmonizing_weights(y, x)
    assert beta.shape == (y.size,)
    np.testing.assert_allclose(beta.sum(), y.size, rtol=1e-12)
    p = softmax(x, axis=1)
    grad, hess = GHMS[name]().gradient_hessian(y, x)
    # The moving average starts from zero: the first round's weights are divided by 1 - momentum.
    scale = beta[:, None] / (1.0 - ghm.momentum)
    np.testing.assert_allclose(grad, scale * (p - np.eye(K)[y]), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(hess, scale * p * (1 - p), rtol=1e-12)
    np.testing.assert_allclose(ghm.loss(y, x), beta * softmax_ce(x, y), rtol=1e-12)
    g = 1.0 - p[np.arange(y.size), y]
    # The density is over g = 1 - p_y: binary labels 1 with margins logit(p_y) have the same g.
    np.testing.assert_allclose(
        GHMLoss(bins=10).harmonizing_weights(y, x),
        GHMLoss(bins=10).harmonizing_weights(np.ones(y.size, dtype=int), np.log1p(-g) - np.log(g)),
        rtol=1e-9,
    )


@pytest.mark.parametrize("name", sorted(MULTI))
def test_gradients_sum_to_zero_and_are_finite(name):
    x, y, w = rows(seed=6, scale=300.0)
    grad, hess = MULTI[name]().gradient_hessian(y, x, w)
    assert np.isfinite(grad).all() and (hess > 0).all()
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-12 * np.abs(grad).max())


# ------------------------------------------------------------------------------------------------
# Weights, layouts and dtypes
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FOCALS))
def test_focal_weights_multiply(name):
    x, y, w = rows(seed=7)
    g, h = MULTI[name]().gradient_hessian(y, x)
    gw, hw = MULTI[name]().gradient_hessian(y, x, w)
    np.testing.assert_allclose(gw, g * w[:, None], rtol=1e-15, atol=1e-300)
    np.testing.assert_allclose(hw, h * w[:, None], rtol=1e-15)
    np.testing.assert_allclose(
        MULTI[name]().loss(y, x, w), MULTI[name]().loss(y, x) * w, rtol=1e-15
    )


@pytest.mark.parametrize("name", sorted(MULTI))
def test_integer_weights_equal_repeated_rows(name):
    x, y, _ = rows(n=300, seed=8)
    counts = np.random.default_rng(8).integers(0, 4, size=y.size)
    g, h = MULTI[name]().gradient_hessian(y, x, counts.astype(float))
    rep = np.repeat(np.arange(y.size), counts)
    g_rep, h_rep = MULTI[name]().gradient_hessian(y[rep], x[rep])
    keep = counts > 0
    np.testing.assert_allclose(
        g[keep], g_rep[np.cumsum(counts)[keep] - 1] * counts[keep, None], rtol=1e-12, atol=1e-300
    )
    np.testing.assert_allclose(
        h[keep], h_rep[np.cumsum(counts)[keep] - 1] * counts[keep, None], rtol=1e-12
    )


@pytest.mark.parametrize("name", sorted(MULTI))
def test_layout_and_dtype_do_not_change_results(name):
    x, y, w = rows(seed=9)
    x32 = x.astype(np.float32)
    ref_g, ref_h = MULTI[name]().gradient_hessian(y, x32.astype(np.float64), w)
    for margins in (
        x32,
        np.asfortranarray(x32),
        np.asfortranarray(x32.astype(np.float64)),
        x32.astype(np.float64)[:, ::-1][:, ::-1],
    ):
        g, h = MULTI[name]().gradient_hessian(y, margins, w)
        assert g.tobytes() == ref_g.tobytes() and h.tobytes() == ref_h.tobytes()
    # float32 and F-ordered output buffers: the float64 results rounded once.
    g32 = np.empty((y.size, K), dtype=np.float32, order="F")
    h32 = np.empty((y.size, K), dtype=np.float32, order="F")
    loss = MULTI[name]()
    out = loss.gradient_hessian(check_target(y, w), x32, gradient_out=g32, hessian_out=h32)
    assert out[0] is g32 and out[1] is h32
    if name.startswith("focal"):  # rounded once
        np.testing.assert_array_equal(g32, ref_g.astype(np.float32))
        np.testing.assert_array_equal(h32, ref_h.astype(np.float32))
    else:  # rounded, then scaled by the harmonising weights in float32
        f32 = np.finfo(np.float32)
        np.testing.assert_allclose(g32, ref_g, rtol=2 * f32.eps, atol=2 * f32.smallest_subnormal)
        np.testing.assert_allclose(h32, ref_h, rtol=2 * f32.eps, atol=2 * f32.smallest_subnormal)
    # The inputs are not modified.
    assert np.array_equal(x32, x.astype(np.float32))


def test_output_buffers_are_checked():
    x, y, _ = rows(n=10, seed=10)
    focal = FocalLoss(alpha=None)
    with pytest.raises(ValueError, match=r"gradient_out must have shape \(10, 5\).*got \(10,\)"):
        focal.gradient_hessian(y, x, gradient_out=np.empty(10))
    with pytest.raises(ValueError, match="C- or F-contiguous"):
        focal.gradient_hessian(y, x, hessian_out=np.empty((10, 10))[:, ::2])


# ------------------------------------------------------------------------------------------------
# The start
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
@pytest.mark.parametrize("alpha", [None, [0.5, 1.0, 2.0, 1.5, 0.25]], ids=["none", "classes"])
@pytest.mark.parametrize("weighted", [False, True])
def test_init_score_zeroes_the_total_gradient(gamma, alpha, weighted):
    rng = np.random.default_rng(11)
    y = rng.choice(K, size=4000, p=[0.6, 0.25, 0.1, 0.04, 0.01])
    w = rng.uniform(0.1, 5.0, size=y.size) if weighted else None
    focal = FocalLoss(gamma=gamma, alpha=alpha)
    start = focal.init_score(y, w, n_classes=K)
    assert start.shape == (K,) and abs(start.mean()) < 1e-12
    grad, _ = focal.gradient_hessian(y, np.tile(start, (y.size, 1)), w)
    total = grad.sum(axis=0)
    assert np.abs(total).max() < 1e-9 * np.abs(grad).sum(axis=0).max()
    # A small move away raises the total loss.
    base = focal.loss(y, np.tile(start, (y.size, 1)), w).sum()
    for k in range(K):
        moved = start.copy()
        moved[k] += 1e-3
        assert focal.loss(y, np.tile(moved, (y.size, 1)), w).sum() > base


def test_init_score_gamma_zero_and_ghm_are_log_priors():
    rng = np.random.default_rng(12)
    y = rng.choice(3, size=500, p=[0.7, 0.2, 0.1])
    w = rng.uniform(0.5, 2.0, size=y.size)
    priors = np.bincount(y, weights=w) / w.sum()
    expected = np.log(priors) - np.log(priors).mean()
    for loss in (FocalLoss(gamma=0.0, alpha=None), GHMLoss(), GHMLoss(density="window")):
        np.testing.assert_allclose(loss.init_score(y, w, n_classes=3), expected, rtol=1e-12)


def test_init_score_with_two_classes_matches_the_binary_start():
    y = (np.random.default_rng(13).random(700) < 0.15).astype(int)
    for focal in (FocalLoss(gamma=2.0, alpha=0.25), FocalLoss(gamma=0.7, alpha=None)):
        pair = focal.init_score(y, n_classes=2)
        assert pair[1] - pair[0] == pytest.approx(focal.init_score(y), rel=1e-9)
    assert isinstance(FocalLoss().init_score(y), float)


def test_init_score_needs_every_class():
    y = np.array([0, 1, 3, 3, 0])
    with pytest.raises(ValueError, match=r"weight 0\.0 for class 2 \(of 4 classes"):
        FocalLoss(alpha=None).init_score(y, n_classes=4)
    with pytest.raises(ValueError, match=r"weight 0\.0 for class 1"):
        FocalLoss(alpha=None).init_score([0, 1, 2], [1.0, 0.0, 1.0], n_classes=3)
    with pytest.raises(ValueError, match=r"class indices 0\.\.2.*2 other value\(s\): 3"):
        FocalLoss(alpha=None).init_score(y, n_classes=3)
    with pytest.raises(ValueError, match=r"n_classes must be >= 2, got 1"):
        FocalLoss(alpha=None).init_score([0, 0], n_classes=1)
    with pytest.raises(ValueError, match=r"alpha=\[1\.0, 0\.0, 2\.0\].*0 for class 1"):
        FocalLoss(alpha=[1.0, 0.0, 2.0]).init_score([0, 1, 2], n_classes=3)


# ------------------------------------------------------------------------------------------------
# Per-class alpha
# ------------------------------------------------------------------------------------------------


def test_class_alpha_weights_each_class():
    x, y, _ = rows(seed=14)
    alpha = np.array([0.5, 1.0, 2.0, 1.5, 0.25])
    g, h = FocalLoss(alpha=alpha).gradient_hessian(y, x)
    g1, h1 = FocalLoss(alpha=None).gradient_hessian(y, x)
    np.testing.assert_allclose(g, g1 * alpha[y][:, None], rtol=1e-15, atol=1e-300)
    # Away from the floor (applied after alpha) the Hessian scales too.
    clear = (h1 > 1e-16) & (h > 1e-16)
    np.testing.assert_allclose(h[clear], (h1 * alpha[y][:, None])[clear], rtol=1e-15)
    np.testing.assert_allclose(
        FocalLoss(alpha=list(alpha)).loss(y, x),
        FocalLoss(alpha=None).loss(y, x) * alpha[y],
        rtol=1e-15,
    )


def test_two_class_alpha_with_binary_margins_is_class0_class1():
    rng = np.random.default_rng(15)
    x, y = rng.standard_normal(200) * 3, rng.integers(2, size=200)
    a = FocalLoss(alpha=[0.75, 0.25]).gradient_hessian(y, x)
    b = FocalLoss(alpha=0.25).gradient_hessian(y, x)
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()


# ------------------------------------------------------------------------------------------------
# Bad input: a clear error that quotes the value
# ------------------------------------------------------------------------------------------------

Y3 = np.array([0, 2, 1, 0])
X3 = np.zeros((4, 3))

# (id, loss factory, y_true, raw_prediction, exception, message regex)
BAD = [
    (
        "too_few_columns",
        lambda: FocalLoss(alpha=None),
        [0, 3, 1, 0],
        X3,
        ValueError,
        r"class indices 0\.\.2 \(integers: the margins have 3 columns.*1 other value\(s\): 3",
    ),
    (
        "one_d_margins_for_k_labels",
        lambda: FocalLoss(alpha=None),
        Y3,
        np.zeros(4),
        ValueError,
        r"only 0 and 1.*margins of shape \(n, K\)\), got 1 other value\(s\): 2",
    ),
    (
        "negative_label",
        lambda: GHMLoss(),
        [0, -1, 1, 2],
        X3,
        ValueError,
        r"class indices 0\.\.2.*other value\(s\): -1",
    ),
    (
        "non_integer_label",
        lambda: FocalLoss(alpha=None),
        [0, 1.5, 1, 2],
        X3,
        ValueError,
        r"class indices.*other value\(s\): 1\.5",
    ),
    (
        "nan_label",
        lambda: GHMLoss(density="window"),
        [0, np.nan, 1, 2],
        X3,
        ValueError,
        r"other value\(s\): nan",
    ),
    (
        "string_labels",
        lambda: FocalLoss(alpha=None),
        ["a", "b", "c", "a"],
        X3,
        TypeError,
        r"y_true must hold real numbers.*'a'",
    ),
    (
        "one_column",
        lambda: FocalLoss(alpha=None),
        [0, 0, 0, 0],
        np.zeros((4, 1)),
        ValueError,
        r"raw_prediction must be 1-D .* or of shape \(n, K\) with K >= 2.*\(4, 1\)",
    ),
    (
        "rows_mismatch",
        lambda: FocalLoss(alpha=None),
        Y3,
        np.zeros((5, 3)),
        ValueError,
        r"raw_prediction has 5 rows but y_true has 4",
    ),
    (
        "nan_margin",
        lambda: FocalLoss(alpha=None),
        Y3,
        np.r_[X3[:3], [[0, np.nan, 0]]],
        ValueError,
        r"1 non-finite.*row 3, column 1: nan",
    ),
    (
        "inf_margin",
        lambda: GHMLoss(),
        Y3,
        np.r_[[[np.inf, 0, 0]], X3[1:]],
        ValueError,
        r"non-finite.*row 0, column 0: inf",
    ),
    (
        "float_alpha_with_k_classes",
        lambda: FocalLoss(alpha=0.25),
        Y3,
        X3,
        ValueError,
        r"alpha=0\.25 is a binary weight.*3 classes.*one weight per class",
    ),
    (
        "alpha_wrong_length",
        lambda: FocalLoss(alpha=[1.0, 2.0]),
        Y3,
        X3,
        ValueError,
        r"alpha=\[1\.0, 2\.0\] has 2 class weights, but the margins have 3 columns",
    ),
    (
        "alpha_negative",
        lambda: FocalLoss(alpha=[1.0, -0.5, 2.0]),
        Y3,
        X3,
        ValueError,
        r"alpha must hold finite class weights >= 0, got -0\.5 for class 1",
    ),
    (
        "alpha_nan",
        lambda: FocalLoss(alpha=[1.0, 1.0, np.nan]),
        Y3,
        X3,
        ValueError,
        r"got nan for class 2",
    ),
    (
        "alpha_nested",
        lambda: FocalLoss(alpha=[[1.0, 2.0, 3.0]]),
        Y3,
        X3,
        ValueError,
        r"alpha must be None, a float in \[0, 1\].*or a sequence of one weight >= 0 per class",
    ),
    (
        "class_alpha_with_binary_margins",
        lambda: FocalLoss(alpha=[1.0, 2.0, 3.0]),
        [0, 1, 1, 0],
        np.zeros(4),
        ValueError,
        r"alpha=\[1\.0, 2\.0, 3\.0\] has 3 class weights, but the margins are 1-D",
    ),
]


@pytest.mark.parametrize("case", BAD, ids=[case[0] for case in BAD])
def test_bad_input_is_rejected_with_the_value(case):
    _, make, y, x, exc, pattern = case
    loss = make()
    with pytest.raises(exc, match=pattern):
        loss.gradient_hessian(y, x)
    with pytest.raises(exc, match=pattern):
        loss.loss(y, x)
    if isinstance(loss, GHMLoss):
        assert loss.running_counts_ is None
