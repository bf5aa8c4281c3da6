"""OHEM selection kernels: the kept set against a brute-force full sort, the derivatives of the kept
and dropped rows, invariances, determinism across numba thread counts and repeated calls.
"""

import math

import numba
import numpy as np
import pytest

from boostloss._kernels import binary as kb
from boostloss._kernels import select as ks
from boostloss._kernels import softmax as ksm
from boostloss._kernels.constants import HESSIAN_FLOOR

N_LARGE = 150_000  # several chunks of _kernels.CHUNK rows
SORT_LIMIT = ks._NUMPY_SELECT_UPTO  # up to this many rows, unweighted: numpy's sort


@pytest.fixture(autouse=True, params=["default", "radix"])
def selection_path(request, monkeypatch):
    """Every test twice: as the package selects (small unweighted inputs by numpy's sort), and
    with the radix select's kernels at every size."""
    if request.param == "radix":
        monkeypatch.setattr(ks, "_NUMPY_SELECT_UPTO", -1)
    return request.param


# ---------------------------------------------------------------------------------------------
# Reference: a full sort
# ---------------------------------------------------------------------------------------------


def brute_force_keep(y, score, w, ratio, tie_keys, negative_label=0.0):
    """Kept rows by a full sort: negatives by score descending, then tie key, then row."""
    n = y.shape[0]
    negative = y == negative_label
    if w.shape[0]:
        negative &= w > 0
    rows = np.flatnonzero(negative)
    s = score[rows].astype(np.float64) + 0.0
    order = rows[np.lexsort((rows, tie_keys[rows], -s))]
    keep = (y != negative_label).astype(np.uint8)
    if w.shape[0]:
        target = ratio * w[y != negative_label].sum()
        if target <= 0:
            k = 0
        else:
            k = min(int(np.searchsorted(np.cumsum(w[order]), target, side="left")) + 1, len(order))
    else:
        k = min(len(order), math.ceil(ratio * int((y != negative_label).sum())))
    keep[order[:k]] = 1
    assert keep.shape[0] == n
    return keep


def select(y, x, w, ratio, tie_keys):
    keep = np.full(y.shape[0], 7, dtype=np.uint8)  # every entry must be written
    n_kept, w_kept = ks.ohem_select(y, x, w, ratio, tie_keys, keep)
    return keep, n_kept, w_kept


def make_data(rng, n, margins, pos_rate=0.1):
    y = (rng.random(n) < pos_rate).astype(np.float64)
    if margins == "continuous":
        x = rng.normal(-2.0, 1.5, n)
    elif margins == "few_values":  # a boosting round with a few leaves: many exact ties
        x = rng.choice(np.array([-3.0, -1.25, -0.5, 0.0, -0.0, 0.75]), n)
    elif margins == "constant":  # the first round: every negative ties
        x = np.full(n, -1.5)
    else:
        raise ValueError(margins)
    return y, x


MARGINS = ["continuous", "few_values", "constant"]


# ---------------------------------------------------------------------------------------------
# The kept set
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("margins", MARGINS)
@pytest.mark.parametrize("ratio", [0.5, 1.0, 3.0, 7.25])
def test_kept_set_equals_full_sort_unweighted(margins, ratio):
    rng = np.random.default_rng(hash((margins, ratio)) % 2**32)
    for n in (1, 2, 17, 1000, 5000):
        y, x = make_data(rng, n, margins)
        keys = ks.tie_keys(n, 3)
        keep, n_kept, w_kept = select(y, x, np.empty(0), ratio, keys)
        expected = brute_force_keep(y, x, np.empty(0), ratio, keys)
        np.testing.assert_array_equal(keep, expected)
        n_neg_kept = int(expected[y == 0].sum())
        assert n_kept == n_neg_kept and w_kept == float(n_neg_kept)
        n_pos, n_neg = int(y.sum()), int((y == 0).sum())
        assert n_kept == min(n_neg, math.ceil(ratio * n_pos))


@pytest.mark.parametrize("margins", MARGINS)
@pytest.mark.parametrize("ratio", [0.5, 3.0])
def test_kept_set_equals_full_sort_weighted(margins, ratio):
    rng = np.random.default_rng(hash((margins, ratio, "w")) % 2**32)
    for n in (1, 40, 3000, 2 * 32768 + 11):
        y, x = make_data(rng, n, margins)
        # Multiples of 1/8: every partial sum is exact, so the prefix rule has one answer.
        w = rng.integers(0, 40, n) / 8.0
        keys = ks.tie_keys(n, 5)
        keep, n_kept, w_kept = select(y, x, w, ratio, keys)
        expected = brute_force_keep(y, x, w, ratio, keys)
        np.testing.assert_array_equal(keep, expected)
        kept_neg = (expected == 1) & (y == 0)
        assert n_kept == kept_neg.sum()
        assert w_kept == w[kept_neg].sum()


def test_weighted_prefix_with_lognormal_weights():
    rng = np.random.default_rng(11)
    n = 20_000
    y, x = make_data(rng, n, "continuous")
    w = rng.lognormal(0.0, 1.5, n)
    keys = ks.tie_keys(n, 1)
    keep, _, w_kept = select(y, x, w, 3.0, keys)
    np.testing.assert_array_equal(keep, brute_force_keep(y, x, w, 3.0, keys))
    assert w_kept >= 3.0 * w[y == 1].sum() * (1 - 1e-12)


def test_zero_weight_negatives_are_never_kept_and_do_not_count():
    rng = np.random.default_rng(2)
    n = 2000
    y, x = make_data(rng, n, "continuous")
    w = np.ones(n)
    hardest = np.argsort(-np.where(y == 0, x, -np.inf))[:50]
    w[hardest] = 0.0
    keys = ks.tie_keys(n, 0)
    keep, n_kept, _ = select(y, x, w, 2.0, keys)
    assert not keep[hardest].any()
    assert n_kept == min(int((w[y == 0] > 0).sum()), math.ceil(2.0 * y.sum()))
    np.testing.assert_array_equal(keep, brute_force_keep(y, x, w, 2.0, keys))


def test_zero_weight_positives_are_kept():
    y = np.array([1.0, 0.0, 0.0, 1.0])
    w = np.array([0.0, 1.0, 1.0, 2.0])
    keep, _, _ = select(y, np.zeros(4), w, 0.5, ks.tie_keys(4, 0))
    assert keep[0] == 1 and keep[3] == 1
    assert keep[1] + keep[2] == 1  # ratio * W+ = 1: one negative of weight 1 reaches it


def test_unit_weights_equal_unweighted():
    rng = np.random.default_rng(4)
    y, x = make_data(rng, 4000, "few_values")
    keys = ks.tie_keys(4000, 9)
    a, na, wa = select(y, x, np.empty(0), 2.5, keys)
    b, nb, wb = select(y, x, np.ones(4000), 2.5, keys)
    np.testing.assert_array_equal(a, b)
    assert (na, wa) == (nb, wb)


def test_hardest_negatives_are_the_highest_margins():
    y = np.array([1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    x = np.array([0.0, -5.0, 4.0, -1.0, 2.0, 3.0])
    keep, n_kept, _ = select(y, x, np.empty(0), 3.0, ks.tie_keys(6, 0))
    np.testing.assert_array_equal(keep, [1, 0, 1, 0, 1, 1])
    assert n_kept == 3


def test_ties_follow_the_random_keys_not_the_row_order():
    n = 1000
    y = np.zeros(n)
    y[:10] = 1.0
    x = np.zeros(n)
    keys = ks.tie_keys(n, 123)
    keep, n_kept, _ = select(y, x, np.empty(0), 3.0, keys)
    assert n_kept == 30
    negatives = np.flatnonzero(y == 0)
    expected = negatives[np.argsort(keys[negatives], kind="stable")[:30]]
    np.testing.assert_array_equal(np.flatnonzero(keep[10:]) + 10, np.sort(expected))
    assert not keep[10:40].all()  # not the first rows
    other, _, _ = select(y, x, np.empty(0), 3.0, ks.tie_keys(n, 124))
    assert not np.array_equal(keep, other)


def test_int64_and_uint64_keys_and_repeated_keys():
    rng = np.random.default_rng(8)
    n = 3000
    y, x = make_data(rng, n, "few_values")
    signed = rng.integers(-(2**62), 2**62, n)
    keep, _, _ = select(y, x, np.empty(0), 1.5, signed)
    np.testing.assert_array_equal(keep, brute_force_keep(y, x, np.empty(0), 1.5, signed))
    unsigned = ks.tie_keys(n, 2)
    assert unsigned.dtype == np.uint64 and (unsigned > np.uint64(2**63)).any()
    keep, _, _ = select(y, x, np.empty(0), 1.5, unsigned)
    np.testing.assert_array_equal(keep, brute_force_keep(y, x, np.empty(0), 1.5, unsigned))
    repeated = rng.integers(0, 3, n)  # equal margins and equal keys: row order decides
    keep, _, _ = select(y, x, np.empty(0), 1.5, repeated)
    np.testing.assert_array_equal(keep, brute_force_keep(y, x, np.empty(0), 1.5, repeated))


def test_extreme_margins():
    rng = np.random.default_rng(6)
    n = 5000
    y = (rng.random(n) < 0.2).astype(np.float64)
    x = rng.choice(np.array([-1e308, 1e308, -5e-324, 5e-324, 0.0, -0.0, 1.0, 1.0 + 2**-52]), n)
    x[:50] = rng.normal(size=50)
    keys = ks.tie_keys(n, 4)
    for ratio in (0.3, 1.0, 2.0):
        keep, _, _ = select(y, x, np.empty(0), ratio, keys)
        np.testing.assert_array_equal(keep, brute_force_keep(y, x, np.empty(0), ratio, keys))


@pytest.mark.parametrize("weighted", [False, True])
def test_ratio_edge_cases(weighted):
    rng = np.random.default_rng(1)
    n = 500
    y, x = make_data(rng, n, "continuous")
    w = rng.random(n) + 0.5 if weighted else np.empty(0)
    keys = ks.tie_keys(n, 0)
    n_neg = int((y == 0).sum())
    # So large that k >= n_neg: every negative is kept.
    keep, n_kept, _ = select(y, x, w, 1e6, keys)
    assert keep.all() and n_kept == n_neg
    # Exactly enough to keep all.
    ratio = n_neg / y.sum()
    keep, n_kept, _ = select(y, x, w if not weighted else np.ones(n), ratio, keys)
    assert keep.all() and n_kept == n_neg
    # Tiny: still at least one negative (ceil).
    keep, n_kept, _ = select(y, x, w, 1e-9, keys)
    assert n_kept == 1 and keep[y == 1].all()
    # No positives: no negative is kept; no negatives: the positives are.
    keep, n_kept, w_kept = select(np.zeros(n), x, w, 3.0, keys)
    assert not keep.any() and n_kept == 0 and w_kept == 0.0
    keep, n_kept, _ = select(np.ones(n), x, w, 3.0, keys)
    assert keep.all() and n_kept == 0
    # Empty input.
    keep, n_kept, _ = select(np.empty(0), np.empty(0), np.empty(0), 3.0, ks.tie_keys(0, 0))
    assert keep.shape == (0,) and n_kept == 0


def test_bool_keep_buffer():
    rng = np.random.default_rng(3)
    y, x = make_data(rng, 1000, "continuous")
    keys = ks.tie_keys(1000, 0)
    keep = np.zeros(1000, dtype=bool)
    ks.ohem_select(y, x, np.empty(0), 3.0, keys, keep)
    np.testing.assert_array_equal(keep, brute_force_keep(y, x, np.empty(0), 3.0, keys) == 1)


def test_float32_margins_select_like_float64():
    rng = np.random.default_rng(12)
    y, x = make_data(rng, 30_000, "continuous")
    x32 = x.astype(np.float32)
    keys = ks.tie_keys(30_000, 0)
    a = select(y, x32, np.empty(0), 3.0, keys)
    b = select(y, x32.astype(np.float64), np.empty(0), 3.0, keys)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1:] == b[1:]


# ---------------------------------------------------------------------------------------------
# Derivatives
# ---------------------------------------------------------------------------------------------


def cross_entropy_derivatives(y, x):
    p = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    return p - y, np.maximum(p * (1.0 - p), HESSIAN_FLOOR)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_kept_rows_get_cross_entropy_dropped_rows_exact_zero(dtype, weighted):
    rng = np.random.default_rng(5)
    n = 5000
    y, x = make_data(rng, n, "continuous")
    x = x.astype(dtype)
    w = rng.random(n) * 3 if weighted else np.empty(0)
    keys = ks.tie_keys(n, 0)
    keep, _, _ = select(y, x, w, 3.0, keys)
    assert 0 < keep.sum() < n
    grad = np.full(n, np.nan, dtype=dtype)
    hess = np.full(n, np.nan, dtype=dtype)
    kb.kept_cross_entropy_grad_hess(y, x, w, keep, grad, hess)
    g_ref, h_ref = cross_entropy_derivatives(y, x)
    if weighted:
        g_ref, h_ref = g_ref * w, h_ref * w
    kept = keep == 1
    rtol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(grad[kept], g_ref[kept], rtol=rtol, atol=1e-300)
    np.testing.assert_allclose(hess[kept], h_ref[kept], rtol=rtol, atol=1e-300)
    dropped = ~kept
    assert (grad[dropped] == 0).all() and (hess[dropped] == 0).all()
    assert not np.signbit(grad[dropped]).any()  # +0.0, not -0.0


def test_hessian_floor_on_kept_rows():
    y = np.array([0.0, 1.0, 0.0])
    x = np.array([800.0, -800.0, -800.0])
    grad, hess = np.empty(3), np.empty(3)
    kb.kept_cross_entropy_grad_hess(y, x, np.empty(0), np.ones(3, dtype=np.uint8), grad, hess)
    np.testing.assert_array_equal(grad, [1.0, -1.0, 0.0])
    np.testing.assert_array_equal(hess, [HESSIAN_FLOOR] * 3)


def test_best_constant():
    assert ks.ohem_best_constant(10.0, 30.0) == pytest.approx(-math.log(3.0), rel=1e-15)
    # At a constant start the kept set holds ceil(ratio * n+) negatives: -log(ratio).
    n = 4000
    y = np.zeros(n)
    y[:100] = 1.0
    start = ks.ohem_best_constant(100.0, 300.0)
    keep, n_kept, w_kept = select(y, np.full(n, start), np.empty(0), 3.0, ks.tie_keys(n, 0))
    assert n_kept == 300 and ks.ohem_best_constant(100.0, w_kept) == start
    grad, hess = np.empty(n), np.empty(n)
    kb.kept_cross_entropy_grad_hess(y, np.full(n, start), np.empty(0), keep, grad, hess)
    assert abs(grad.sum()) < 1e-10  # the minimiser of the kept set's cross-entropy
    with pytest.raises(ValueError, match="0.0"):
        ks.ohem_best_constant(10.0, 0.0)
    with pytest.raises(ValueError, match="nan"):
        ks.ohem_best_constant(float("nan"), 1.0)


# ---------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------


needs_two_threads = pytest.mark.skipif(
    numba.config.NUMBA_NUM_THREADS < 2, reason="numba was started with a single thread"
)


def _run_with_threads(n_threads, fn):
    previous = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        return fn()
    finally:
        numba.set_num_threads(previous)


@needs_two_threads
@pytest.mark.parametrize("margins", ["continuous", "few_values", "constant"])
@pytest.mark.parametrize("weighted", [False, True])
def test_bit_identical_across_thread_counts_and_calls(margins, weighted):
    rng = np.random.default_rng(21)
    y, x = make_data(rng, N_LARGE, margins)
    x = x.astype(np.float32)
    w = rng.lognormal(0.0, 2.0, N_LARGE) * (rng.random(N_LARGE) > 0.05) if weighted else np.empty(0)
    keys = ks.tie_keys(N_LARGE, 77)

    def run():
        keep, n_kept, w_kept = select(y, x, w, 3.0, keys)
        grad = np.empty(N_LARGE, dtype=np.float32)
        hess = np.empty(N_LARGE, dtype=np.float32)
        kb.kept_cross_entropy_grad_hess(y, x, w, keep, grad, hess)
        return keep, n_kept, w_kept, grad, hess

    one = _run_with_threads(1, run)
    two = _run_with_threads(2, run)
    again = _run_with_threads(2, run)
    for a, b, c in zip(one, two, again, strict=True):
        np.testing.assert_array_equal(a, b, strict=True)
        np.testing.assert_array_equal(b, c, strict=True)
    if not weighted:
        np.testing.assert_array_equal(one[0], brute_force_keep(y, x, w, 3.0, keys))


# ---------------------------------------------------------------------------------------------
# Multi-class
# ---------------------------------------------------------------------------------------------


def softmax_reference(x):
    z = x - x.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def test_softmax_negative_loss_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 4, (500, 5))
    x[0] = [1000.0, -1000.0, 0.0, 3.0, 1000.0]
    out = np.empty(500)
    ks.softmax_negative_loss(x, 2, out)
    # A 50-digit reference: -log of a float64 softmax loses digits where p is near 1.
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(50):
        ref = np.array(
            [
                float(mpmath.log(mpmath.fsum(mpmath.exp(mpmath.mpf(v)) for v in row)) - row[2])
                for row in x
            ]
        )
    assert ref[0] == 1000.0 + math.log(2.0)
    np.testing.assert_allclose(out, ref, rtol=1e-13)
    assert (out >= 0).all()


@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_selection_equals_full_sort(weighted):
    rng = np.random.default_rng(9)
    n, k_classes, background = 6000, 4, 0
    y = rng.choice(k_classes, n, p=[0.85, 0.05, 0.05, 0.05]).astype(np.float64)
    x = np.round(rng.normal(0, 1.5, (n, k_classes)), 1)  # many equal losses
    x[: n // 3] = 0.0  # a constant start block: ties
    w = rng.integers(0, 16, n) / 4.0 if weighted else np.empty(0)
    keys = ks.tie_keys(n, 1)
    keep = np.empty(n, dtype=np.uint8)
    n_kept, _ = ks.ohem_select_softmax(y, x, w, background, 3.0, keys, keep)
    loss = np.empty(n)
    ks.softmax_negative_loss(x, background, loss)
    expected = brute_force_keep(y, loss, w, 3.0, keys, negative_label=float(background))
    np.testing.assert_array_equal(keep, expected)
    assert n_kept == ((expected == 1) & (y == background)).sum()
    assert keep[y != background].all()


def test_softmax_grad_hess_kept_and_dropped():
    rng = np.random.default_rng(10)
    n, k_classes = 3000, 3
    y = rng.choice(k_classes, n, p=[0.9, 0.05, 0.05]).astype(np.float64)
    x = rng.normal(0, 2, (n, k_classes)).astype(np.float32)
    w = rng.random(n) + 0.1
    keep = np.empty(n, dtype=np.uint8)
    ks.ohem_select_softmax(y, x, w, 0, 2.0, ks.tie_keys(n, 0), keep)
    grad = np.full((n, k_classes), np.nan)
    hess = np.full((n, k_classes), np.nan)
    ksm.kept_softmax_ce_grad_hess(y, x, w, keep, grad, hess)
    p = softmax_reference(x.astype(np.float64))
    onehot = np.eye(k_classes)[y.astype(int)]
    kept = keep == 1
    np.testing.assert_allclose(
        grad[kept], (w[:, None] * (p - onehot))[kept], rtol=1e-12, atol=1e-15
    )
    np.testing.assert_allclose(hess[kept], (w[:, None] * p * (1 - p))[kept], rtol=1e-12, atol=1e-15)
    assert (grad[~kept] == 0).all() and (hess[~kept] == 0).all()
    np.testing.assert_allclose(grad[kept].sum(axis=1), 0.0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Small unweighted selections: numpy's sort, to the bit the radix select's
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("negative_label", [0.0, 1.0, 2.0])
def test_sorted_selection_equals_the_radix_select(negative_label):
    """Kept set, counts and weights equal, returned types included, on both sides of the size
    limit: ties on the margin (signed zeros too), on the tie keys (uint64 and int64), no
    negatives, no positives, ratios that keep none, some or all."""
    rng = np.random.default_rng(int(negative_label) + 11)
    limit = SORT_LIMIT
    for n in (0, 1, 2, 9, 200, limit - 1, limit, limit + 1):
        for kind in ("continuous", "few_values", "constant", "all_negative", "no_negative"):
            y = rng.choice(np.array([0.0, 1.0, 2.0]), n, p=[0.2, 0.7, 0.1])
            y = np.where(y == 2.0, negative_label, y) if negative_label != 2.0 else y
            if kind == "all_negative":
                y = np.full(n, negative_label)
            elif kind == "no_negative":
                y = np.full(n, 5.0)
            score = {
                "continuous": rng.normal(0.0, 2.0, n),
                "few_values": rng.choice(np.array([-1.0, -0.0, 0.0, 0.5, 2.0]), n),
                "constant": np.zeros(n),
            }.get(kind, rng.normal(0.0, 1.0, n))
            keys = ks.tie_keys(n, 9)
            if kind == "few_values":
                keys = keys % np.uint64(4)  # repeated keys: row order decides
            for ties in (keys, keys.view(np.int64)):
                for ratio in (0.0, 0.3, 1.0, 3.0, 1e9):
                    got, want = np.full(n, 7, np.uint8), np.full(n, 7, np.uint8)
                    a = ks._select(
                        y, score, np.empty(0), negative_label, ratio, ties, got, sort_upto=n
                    )
                    b = ks._select(
                        y, score, np.empty(0), negative_label, ratio, ties, want, sort_upto=-1
                    )
                    assert got.tobytes() == want.tobytes(), (n, kind, ratio)
                    assert repr(a) == repr(b), (n, kind, ratio)
