"""Numba kernels of the multi-class (softmax) focal loss and GHM-C, row by row.

A row holds the K raw margins ``z`` of one sample, ``p = softmax(z)``, and ``y`` is its class.
Everything rests on one identity: with ``t = z_y - LSE_{k != y} z_k`` (the margin of the true class
over the log-sum-exp of the others), ``p_y = sigmoid(t)``, so the loss of a row is the binary focal
loss of ``t``, and its derivatives follow from the binary ones in ``t``. The wrong classes share the
rest through ``r_k = e^{z_k} / sum_{j != y} e^{z_j}`` (softmax over the wrong classes only):
``p_k = q r_k`` with ``q = 1 - p_y``.

Stable evaluation of a row (O(1) scalars, no temporaries):

1. ``mo = max_{k != y} z_k`` and ``am`` its first index (compares only);
2. ``s_rest = sum_{k != y, am} e_k`` with ``e_k = exp(z_k - mo) <= 1`` (one ``exp`` per value, none
   can overflow), so ``s = sum_{k != y} e_k = 1 + s_rest`` and ``log s = log1p(s_rest)``; the
   gradient kernels also park ``e_k`` in the row of the output buffers (see
   :func:`_row_margin_keep`), so that no ``exp`` is evaluated twice;
3. ``P = p_y``, ``q``, ``log P``, ``log q`` from ``a = z_y - mo`` and ``s`` (:func:`_true_class_parts`:
   the binary pieces of ``t = a - log s``, without rounding ``t`` itself), then every output:
   ``r_k = e_k / s``, with ``1 - r_am = s_rest / s`` and ``1 - r_k = (s - e_k) / s`` otherwise
   (``s - e_k >= 1``: no cancellation), and ``1 - p_k = P + q (1 - r_k)``.

Inputs are validated by the caller (:mod:`boostloss.losses`): labels are float64 class indices
0..K-1, margins float32 or float64 of shape (n, K) in C or F order (read as float64, never copied),
sample weights float64 (n,) or empty (all ones), per-class weights float64 (K,) or empty (none).
Outputs are written into (n, K) arrays (float32 or float64, C or F order) that the caller owns.

Rows are independent and nothing here reduces over rows (GHM's histogram of the row bins is
``_kernels.bin_histogram``), so every result is bit-identical whatever the number of numba threads.

Reference: Lin, Goyal, Girshick, He, Dollar, "Focal Loss for Dense Object Detection", 2017,
arXiv:1708.02002 (the loss is written for K-way softmax there); Li, Liu, Wang, "Gradient Harmonized
Single-stage Detector", 2019, arXiv:1811.05181.
"""

import math

import numpy as np
from numba import njit, prange

from ._kernels import (
    CHUNK,
    HESSIAN_EXACT,
    HESSIAN_FLOOR,
    HESSIAN_GAUSS_NEWTON,
    _exp_nonpositive,
    _modulating_factor,
    for_each_bin,
    for_each_with_gamma,
)

__all__ = [
    "CHUNK",
    "HESSIAN_EXACT",
    "HESSIAN_FLOOR",
    "HESSIAN_GAUSS_NEWTON",
    "scale_rows_by_bin",
    "scale_rows_by_sample",
    "softmax_ce_grad_hess_norm",
    "softmax_ce_loss_and_norm",
    "softmax_focal_grad_hess",
    "softmax_focal_loss",
    "softmax_ghm_bins_pass",
]


# --------------------------------------------------------------------------------------------
# Per-row math
# --------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _row_max_others(x, i, c, n_classes):
    """``(mo, am)``: ``mo = max_{k != c} x[i, k]`` and ``am`` the first ``k != c`` reaching it."""
    first = 1 if c == 0 else 0
    mo = np.float64(x[i, first])
    am = first
    for k in range(first + 1, n_classes):
        xk = np.float64(x[i, k])
        if k != c and xk > mo:
            mo = xk
            am = k
    return mo, am


@njit(cache=True, inline="always")
def _true_class_parts(a, s_rest):
    """``(P, q, log P, log q)`` of the true class from ``a = z_y - mo`` and ``s_rest``.

    ``P = e^a / (e^a + s)`` with ``s = 1 + s_rest``: the binary pieces of ``t = a - log s`` without
    forming ``t`` (whose rounding would cost ``|t|`` ulps in ``q``), from one ``exp`` of ``-|a|``:

        a <= 0:  E = e^a,     P = E / (s + E),  q = s / (s + E),
                 log P = a - log1p(s_rest + E),  log q = -log1p(E / s)
        a >  0:  v = s e^-a,  P = 1 / (1 + v),  q = v / (1 + v),
                 log P = -log1p(v),              log q = (log1p(s_rest) - a) - log1p(v)

    Nothing overflows, nothing takes ``log(0)`` (``v`` may underflow; ``log q`` does not need it).
    With K = 2 (``s_rest = 0``) ``P`` and ``q`` are computed exactly as the binary kernels compute
    them from the margin difference.
    """
    s = 1.0 + s_rest
    if a <= 0.0:
        big = _exp_nonpositive(a)
        inv = 1.0 / (s + big)
        return big * inv, s * inv, a - math.log1p(s_rest + big), -math.log1p(big / s)
    v = s * _exp_nonpositive(-a)
    inv = 1.0 / (1.0 + v)
    l1p = math.log1p(v)
    return inv, v * inv, -l1p, (math.log1p(s_rest) - a) - l1p


@njit(cache=True, inline="always")
def _row_margin(x, i, c, n_classes):
    """``(a, am, s_rest)`` of row ``i`` with true class ``c``: ``a = z_c - mo``, ``am`` the index of
    ``mo = max_{k != c} z_k``.

    ``s_rest = sum_{k != c, am} exp(x[i, k] - mo)``, so ``LSE_{k != c} = mo + log1p(s_rest)``. The sum
    is written without branches (the two skipped terms are selected away; the ``min`` keeps the
    true class's term from overflowing), so its ``exp`` calls are independent of each other.
    """
    mo, am = _row_max_others(x, i, c, n_classes)
    s_rest = 0.0
    for k in range(n_classes):
        e = math.exp(min(np.float64(x[i, k]) - mo, 0.0))
        s_rest += e if (k != c) & (k != am) else 0.0
    return np.float64(x[i, c]) - mo, am, s_rest


@njit(cache=True, inline="always")
def _row_margin_keep(x, i, c, n_classes, hi_out, lo_out):
    """:func:`_row_margin` that also leaves ``e_k = exp(x[i, k] - mo)`` in the output row.

    ``e_k`` is split as ``hi = e_k`` rounded to the output's dtype and ``lo = e_k - hi`` rounded
    again, so ``hi + lo`` gives ``e_k`` back exactly for float64 outputs and to 2**-48 relative for
    float32 outputs (absolute 2**-149 once ``e_k`` is below float32's normal range, where every
    result derived from it is itself below float32's resolution): the second sweep reads it back
    instead of calling ``exp`` again.
    """
    mo, am = _row_max_others(x, i, c, n_classes)
    s_rest = 0.0
    for k in range(n_classes):
        e = math.exp(min(np.float64(x[i, k]) - mo, 0.0))
        hi_out[i, k] = e
        lo_out[i, k] = e - np.float64(hi_out[i, k])
        s_rest += e if (k != c) & (k != am) else 0.0
    return np.float64(x[i, c]) - mo, am, s_rest


@njit(cache=True, inline="always")
def _focal_t_parts(p, q, log_p, log_q, gamma, a):
    """Binary focal loss of the margin ``t`` and its derivatives in ``t``, from its pieces.

    Returns ``(FL, FL', FL'')`` with ``P = sigmoid(t)``, ``q = 1 - P``, ``m = q ** gamma``::

        FL   = -a m log P
        FL'  =  a m (gamma P log P - q)                          (<= 0)
        FL'' =  a m (gamma P log P (q - gamma P) + (2 gamma + 1) P q)
    """
    am = a * _modulating_factor(q, log_q, gamma)
    # P log P first: 0 (not 0 * -inf) when P underflows.
    p_log_p = p * log_p
    fl = -am * log_p
    d1 = am * (gamma * p_log_p - q)
    d2 = am * (gamma * p_log_p * (q - gamma * p) + (2.0 * gamma + 1.0) * p * q)
    return fl, d1, d2


@njit(cache=True, inline="always")
def _row_parts_keep(i, y, x, grad_out, hess_out):
    """First sweep of row ``i``: park ``e_k`` in the output row (:func:`_row_margin_keep`) and return
    ``(c, am, s_rest, inv_s, P, q, log P, log q)`` with ``c`` the true class and ``inv_s = 1 / s``."""
    c = int(y[i])
    a_y, am, s_rest = _row_margin_keep(x, i, c, x.shape[1], grad_out, hess_out)
    p, q, log_p, log_q = _true_class_parts(a_y, s_rest)
    return c, am, s_rest, 1.0 / (1.0 + s_rest), p, q, log_p, log_q


@njit(cache=True, inline="always")
def _parked_share(i, k, am, s_rest, inv_s, grad_out, hess_out):
    """Second sweep: ``(r_k, 1 - r_k)`` from the ``e_k`` parked in the output row.

    ``1 - r_am = s_rest / s`` and ``1 - r_k = (s - e_k) / s`` otherwise (``s - e_k >= 1``: no
    cancellation). Written with selects, not branches, so the loops over k run without jumps.
    """
    e = np.float64(grad_out[i, k]) + np.float64(hess_out[i, k])
    one_minus_r = (s_rest if k == am else (1.0 + s_rest) - e) * inv_s
    return e * inv_s, one_minus_r


@njit(cache=True, inline="always")
def _store_floored(i, k, g, h, wi, grad_out, hess_out):
    """``grad_out[i, k] = wi g``, ``hess_out[i, k] = wi max(h, HESSIAN_FLOOR)``."""
    h = h if h > HESSIAN_FLOOR else HESSIAN_FLOOR
    grad_out[i, k] = g * wi
    hess_out[i, k] = h * wi


@njit(cache=True, inline="always")
def _focal_row_store(i, gamma, y, x, w, params, grad_out, hess_out):
    """Gradient and diagonal Hessian of row ``i`` into the outputs (see softmax_focal_grad_hess);
    ``params`` is ``(weighted, alpha, class_weighted, hessian_mode)``."""
    weighted, alpha, class_weighted, hessian_mode = params
    c, am, s_rest, inv_s, p, q, log_p, log_q = _row_parts_keep(i, y, x, grad_out, hess_out)
    a = alpha[c] if class_weighted else 1.0
    _, d1, d2 = _focal_t_parts(p, q, log_p, log_q, gamma, a)
    wi = w[i] if weighted else 1.0
    # The true class's parked value e_c is finite, it is just not used.
    if hessian_mode == HESSIAN_EXACT:
        for k in range(x.shape[1]):
            r, one_minus_r = _parked_share(i, k, am, s_rest, inv_s, grad_out, hess_out)
            h = d2 if k == c else d2 * r * r - d1 * r * one_minus_r
            _store_floored(i, k, d1 if k == c else -r * d1, h, wi, grad_out, hess_out)
    else:
        h_y = -d1 * p
        for k in range(x.shape[1]):
            r, one_minus_r = _parked_share(i, k, am, s_rest, inv_s, grad_out, hess_out)
            h = h_y if k == c else -d1 * r * (p + q * one_minus_r)
            _store_floored(i, k, d1 if k == c else -r * d1, h, wi, grad_out, hess_out)


@njit(cache=True, inline="always")
def _ce_row_store(i, y, x, w, weighted, grad_out, hess_out):
    """Softmax cross-entropy gradient ``p - e_y`` and Hessian ``p (1 - p)`` (floored) of row ``i``,
    times the sample weight; returns the gradient norm ``g = 1 - p_y``."""
    c, am, s_rest, inv_s, p, q, _, _ = _row_parts_keep(i, y, x, grad_out, hess_out)
    wi = w[i] if weighted else 1.0
    h_y = p * q
    for k in range(x.shape[1]):
        r, one_minus_r = _parked_share(i, k, am, s_rest, inv_s, grad_out, hess_out)
        g = q * r
        h = g * (p + q * one_minus_r)
        _store_floored(i, k, -q if k == c else g, h_y if k == c else h, wi, grad_out, hess_out)
    return q


# --------------------------------------------------------------------------------------------
# Focal loss
# --------------------------------------------------------------------------------------------


@njit(cache=True, parallel=True)
def softmax_focal_loss(y, x, w, gamma, alpha, out):
    """Per-row softmax focal loss ``-alpha_y (1 - p_y)^gamma log p_y``, times the sample weight.

    ``alpha`` empty means no class weights (``alpha_y = 1``).
    """
    n = x.shape[0]
    n_classes = x.shape[1]
    weighted = w.shape[0] > 0
    class_weighted = alpha.shape[0] > 0
    for i in prange(n):
        c = int(y[i])
        a_y, _, s_rest = _row_margin(x, i, c, n_classes)
        p, q, log_p, log_q = _true_class_parts(a_y, s_rest)
        a = alpha[c] if class_weighted else 1.0
        fl, _, _ = _focal_t_parts(p, q, log_p, log_q, gamma, a)
        out[i] = fl * w[i] if weighted else fl


@njit(cache=True, parallel=True)
def softmax_focal_grad_hess(y, x, w, gamma, alpha, hessian_mode, grad_out, hess_out):
    """Weighted gradient and diagonal Hessian of the softmax focal loss, for every row.

    With ``FL(z) = -alpha_y (1 - p_y)^gamma log p_y = FL(t)``, ``t = z_y - LSE_{k != y} z_k``,
    ``FL'``, ``FL''`` its derivatives in ``t`` (see :func:`_focal_t_parts`), ``P = p_y``,
    ``q = 1 - P`` and ``r_k = p_k / q`` (k != y)::

        g_y = FL',                    g_k = -r_k FL'
        h_y = FL'',                   h_k = FL'' r_k^2 - FL' r_k (1 - r_k)     (HESSIAN_EXACT)
        h_y = -FL' P,                 h_k = -FL' r_k (1 - p_k)           (HESSIAN_GAUSS_NEWTON)

    The Gauss-Newton diagonal is ``w_f p_k (1 - p_k)`` with the focal weight ``w_f = -FL' / q``
    frozen (the positive-semidefinite part). The gradient is ``w_f (p - e_y)`` and sums to 0 over
    the classes. Every Hessian entry is floored at HESSIAN_FLOOR, then both are multiplied by the
    sample weight. gamma = 0 and no alpha give the softmax cross-entropy, ``p - e_y`` and
    ``p (1 - p)``.

    Parameters
    ----------
    y : float64 (n,)        class indices 0..K-1
    x : float32/64 (n, K)   raw margins, C or F order
    w : float64 (n,) or (0,)
    gamma : float >= 0
    alpha : float64 (K,) or (0,)
    hessian_mode : HESSIAN_EXACT or HESSIAN_GAUSS_NEWTON
    grad_out, hess_out : float32/64 (n, K), written
    """
    for_each_with_gamma(_focal_row_store, gamma, y, x, w,
                        (w.shape[0] > 0, alpha, alpha.shape[0] > 0, hessian_mode), grad_out, hess_out)


# --------------------------------------------------------------------------------------------
# GHM-C with K classes: weights on the softmax cross-entropy, g = 1 - p_y
# --------------------------------------------------------------------------------------------


@njit(cache=True, parallel=True)
def softmax_ce_grad_hess_norm(y, x, w, grad_out, hess_out, g_out):
    """Weighted softmax cross-entropy gradient ``w (p - e_y)`` and Hessian
    ``w max(p (1 - p), floor)`` of every row, and its gradient norm ``g = 1 - p_y`` into ``g_out``.

    ``g`` is what GHM-C's density is computed on (for K = 2 it is the binary ``|p - y|`` of the
    margin difference), so the binary density code runs unchanged on ``g_out``.
    """
    n = x.shape[0]
    weighted = w.shape[0] > 0
    for i in prange(n):
        g_out[i] = _ce_row_store(i, y, x, w, weighted, grad_out, hess_out)


@njit(cache=True, parallel=True)
def softmax_ghm_bins_pass(y, x, w, edges, grad_out, hess_out, bin_out):
    """First GHM pass with binned density, K classes (the row version of ``ghm_bins_pass``).

    Writes the sample-weighted cross-entropy gradient and floored Hessian of every row and the bin
    of each row's ``g = 1 - p_y`` (half-open bins ``[edges[b], edges[b + 1])``). The counts come
    from ``_kernels.bin_histogram``, the package's one histogram kernel (fixed-size chunks summed
    in chunk order: the counts do not depend on the thread count).
    """
    for_each_bin(_ce_row_store, edges, y, x, w, grad_out, hess_out, bin_out)


@njit(cache=True, parallel=True)
def softmax_ce_loss_and_norm(y, x, ce_out, g_out):
    """Unweighted softmax cross-entropy ``-log p_y`` and gradient norm ``g = 1 - p_y`` per row."""
    n = x.shape[0]
    n_classes = x.shape[1]
    for i in prange(n):
        c = int(y[i])
        a_y, _, s_rest = _row_margin(x, i, c, n_classes)
        _, q, log_p, _ = _true_class_parts(a_y, s_rest)
        ce_out[i] = -log_p
        g_out[i] = q


@njit(cache=True, inline="always")
def _scale_row(i, factor, grad, hess):
    for k in range(grad.shape[1]):
        grad[i, k] *= factor
        hess[i, k] *= factor


@njit(cache=True, parallel=True)
def scale_rows_by_sample(beta, grad, hess):
    """``grad[i, :] *= beta[i]``, ``hess[i, :] *= beta[i]`` in place."""
    for i in prange(grad.shape[0]):
        _scale_row(i, beta[i], grad, hess)


@njit(cache=True, parallel=True)
def scale_rows_by_bin(bin_idx, beta, grad, hess):
    """``grad[i, :] *= beta[bin_idx[i]]``, ``hess[i, :] *= beta[bin_idx[i]]`` in place."""
    for i in prange(grad.shape[0]):
        _scale_row(i, beta[bin_idx[i]], grad, hess)
