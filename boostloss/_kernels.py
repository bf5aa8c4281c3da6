"""Numba kernels: per-sample math of the focal and GHM-C losses, and the loops over arrays.

Everything here assumes validated input (see :mod:`boostloss.losses`): labels are float64 in
{0, 1}; sample weights are a float64 array of the same length or an empty array meaning "all ones";
margins are float32 or float64 (they are read as float64, never copied). Outputs are written into
arrays that the caller allocates (float32 or float64), so the adapters can reuse buffers across
boosting rounds.

All arithmetic is done in float64. The logistic pieces are computed in the margin toward the true
class, ``z = s * x`` with ``s = +1`` for ``y = 1`` and ``s = -1`` for ``y = 0``:

    p_t = sigmoid(z),   q = 1 - p_t = sigmoid(-z),
    log p_t = -log1p(exp(-z)),   log q = log p_t - z,

each evaluated from one ``exp`` of ``-|z|`` and one ``log1p``, so nothing overflows, nothing takes
``log(0)`` and nothing raises ``0 ** gamma`` for any finite margin.

Reductions (GHM histograms) run over fixed-size chunks whose partial sums are added in a fixed order,
so results are bit-identical whatever the number of numba threads.
"""

import math

import numpy as np
from numba import njit, prange

#: Every Hessian is floored at this value before the sample weight multiplies it (XGBoost's built-in
#: logistic objective uses the same floor). Boosting needs a strictly positive Hessian.
HESSIAN_FLOOR = 1e-16

#: Hessian policies of the focal loss, as passed to the kernels.
HESSIAN_EXACT = 0
HESSIAN_GAUSS_NEWTON = 1

#: Samples per chunk of a reduction; fixed so that the summation order never depends on threads.
CHUNK = 1 << 15


@njit(cache=True, inline="always")
def _logistic_parts(z):
    """Return ``(p_t, q, log_p_t, log_q)`` for the margin ``z`` toward the true class."""
    if z >= 0.0:
        e = math.exp(-z)
        l1p = math.log1p(e)
        inv = 1.0 / (1.0 + e)
        return inv, e * inv, -l1p, -z - l1p
    e = math.exp(z)
    l1p = math.log1p(e)
    inv = 1.0 / (1.0 + e)
    return e * inv, inv, z - l1p, -l1p


@njit(cache=True, inline="always")
def _modulating_factor(q, log_q, gamma):
    """``(1 - p_t) ** gamma`` in log space, with exact fast paths for gamma in {0, 1, 2}."""
    if gamma == 0.0:
        return 1.0
    if gamma == 2.0:
        return q * q
    if gamma == 1.0:
        return q
    return math.exp(gamma * log_q)


@njit(cache=True, inline="always")
def focal_point(x, y, gamma, alpha_pos, alpha_neg, hessian_mode):
    """Focal loss, its gradient and Hessian with respect to the raw margin, for one sample.

    With ``a = alpha_t`` and ``m = q ** gamma``::

        FL      = -a m log p_t
        dFL/dz  =  a m (gamma p_t log p_t - q)
        d2FL/dz2 = a m (gamma (p_t log p_t)(q - gamma p_t) + (2 gamma + 1) p_t q)

    and ``d/dx = s d/dz``, ``d2/dx2 = d2/dz2``. ``hessian_mode`` HESSIAN_GAUSS_NEWTON replaces the
    second derivative by ``a m p_t q`` (the modulating factor held constant). The returned Hessian is
    floored at HESSIAN_FLOOR.
    """
    if y > 0.5:
        z = x
        s = 1.0
        a = alpha_pos
    else:
        z = -x
        s = -1.0
        a = alpha_neg
    p_t, q, log_p_t, log_q = _logistic_parts(z)
    m = _modulating_factor(q, log_q, gamma)
    # p_t * log_p_t first: it is 0 (not 0 * -inf) when p_t underflows.
    pt_log_pt = p_t * log_p_t
    am = a * m
    loss = -am * log_p_t
    grad = s * am * (gamma * pt_log_pt - q)
    if hessian_mode == HESSIAN_EXACT:
        hess = am * (gamma * pt_log_pt * (q - gamma * p_t) + (2.0 * gamma + 1.0) * p_t * q)
    else:
        hess = am * p_t * q
    if not hess > HESSIAN_FLOOR:
        hess = HESSIAN_FLOOR
    return loss, grad, hess


@njit(cache=True, parallel=True)
def focal_loss(y, x, w, gamma, alpha_pos, alpha_neg, out):
    n = x.shape[0]
    weighted = w.shape[0] > 0
    for i in prange(n):
        loss, _, _ = focal_point(np.float64(x[i]), y[i], gamma, alpha_pos, alpha_neg, 0)
        if weighted:
            loss *= w[i]
        out[i] = loss


@njit(cache=True, parallel=True)
def focal_grad_hess(y, x, w, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out):
    n = x.shape[0]
    weighted = w.shape[0] > 0
    for i in prange(n):
        _, g, h = focal_point(np.float64(x[i]), y[i], gamma, alpha_pos, alpha_neg, hessian_mode)
        if weighted:
            g *= w[i]
            h *= w[i]
        grad_out[i] = g
        hess_out[i] = h


@njit(cache=True)
def count_nonfinite(x):
    """Number of NaN or infinite entries (the margins' validity check, one pass)."""
    bad = 0
    for i in range(x.shape[0]):
        if not math.isfinite(x[i]):
            bad += 1
    return bad


# --------------------------------------------------------------------------------------------
# GHM-C
# --------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _gradient_norm_parts(x, y):
    """Return ``(p - y, p (1 - p), g = |p - y|, CE)`` for one sample."""
    if y > 0.5:
        z = x
    else:
        z = -x
    p_t, q, log_p_t, _ = _logistic_parts(z)
    diff = q if y <= 0.5 else -q
    return diff, p_t * q, q, -log_p_t


@njit(cache=True, inline="always")
def bin_of(g, bins, edges):
    """Bin of ``g`` for half-open bins ``[edges[b], edges[b+1])`` (``edges[-1] = 1 + 1e-6``)."""
    b = int(g * bins)
    if b >= bins:
        b = bins - 1
    # int(g * bins) can be off by one from the edge comparisons after rounding: settle it exactly.
    if g < edges[b]:
        b -= 1
    elif b + 1 < bins and g >= edges[b + 1]:
        b += 1
    return b


@njit(cache=True, parallel=True)
def ghm_bins_pass(y, x, w, edges, grad_out, hess_out, bin_out, counts_out):
    """First GHM pass with binned density.

    Writes the sample-weighted cross-entropy gradient ``w (p - y)`` and floored Hessian
    ``w max(p (1 - p), floor)``, each sample's bin, and the (weighted) count of every bin, summed
    over samples with positive weight only (zero-weight samples are not "valid" in GHM's sense).
    Returns the total weight of valid samples.
    """
    n = x.shape[0]
    bins = edges.shape[0] - 1
    weighted = w.shape[0] > 0
    n_chunks = (n + CHUNK - 1) // CHUNK
    partial = np.zeros((n_chunks, bins))
    partial_tot = np.zeros(n_chunks)
    for c in prange(n_chunks):
        start = c * CHUNK
        stop = min(start + CHUNK, n)
        tot = 0.0
        for i in range(start, stop):
            diff, hess, g, _ = _gradient_norm_parts(np.float64(x[i]), y[i])
            if not hess > HESSIAN_FLOOR:
                hess = HESSIAN_FLOOR
            b = bin_of(g, bins, edges)
            bin_out[i] = b
            wi = 1.0
            if weighted:
                wi = w[i]
            grad_out[i] = wi * diff
            hess_out[i] = wi * hess
            if wi > 0.0:
                partial[c, b] += wi
                tot += wi
        partial_tot[c] = tot
    total = 0.0
    for c in range(n_chunks):
        total += partial_tot[c]
        for b in range(bins):
            counts_out[b] += partial[c, b]
    return total


@njit(cache=True, parallel=True)
def scale_by_bin(bin_idx, beta, grad, hess):
    """``grad *= beta[bin]``, ``hess *= beta[bin]`` in place."""
    for i in prange(grad.shape[0]):
        bb = beta[bin_idx[i]]
        grad[i] *= bb
        hess[i] *= bb


@njit(cache=True, parallel=True)
def ghm_norm_pass(y, x, w, grad_out, hess_out, g_out):
    """First GHM pass with window density: weighted CE gradient, floored Hessian and ``g = |p - y|``."""
    n = x.shape[0]
    weighted = w.shape[0] > 0
    for i in prange(n):
        diff, hess, g, _ = _gradient_norm_parts(np.float64(x[i]), y[i])
        if not hess > HESSIAN_FLOOR:
            hess = HESSIAN_FLOOR
        wi = 1.0
        if weighted:
            wi = w[i]
        g_out[i] = g
        grad_out[i] = wi * diff
        hess_out[i] = wi * hess


@njit(cache=True)
def window_beta(g, w, epsilon, beta_out):
    """Harmonising weights from the paper's sliding-window gradient density.

    ``GD(g_i) = (sum of weights of valid k with g_k in (g_i - eps/2, g_i + eps/2)) / l_eps(g_i)``,
    ``l_eps(g) = min(g + eps/2, 1) - max(g - eps/2, 0)``, ``beta_i = tot / GD(g_i)``, then all betas
    are rescaled by one constant so that ``sum_i w_i beta_i = tot`` (the binned version's
    normalisation). O(n log n): one sort and two binary searches per sample. Samples with zero
    weight get beta 0. Returns ``tot``.
    """
    n = g.shape[0]
    weighted = w.shape[0] > 0
    # Sort the valid samples' g (and weights) once; prefix sums give window counts.
    n_valid = 0
    for i in range(n):
        if (not weighted) or w[i] > 0.0:
            n_valid += 1
    keys = np.empty(n_valid)
    wv = np.empty(n_valid)
    j = 0
    for i in range(n):
        if (not weighted) or w[i] > 0.0:
            keys[j] = g[i]
            wv[j] = w[i] if weighted else 1.0
            j += 1
    order = np.argsort(keys, kind="mergesort")
    sorted_g = keys[order]
    prefix = np.empty(n_valid + 1)
    prefix[0] = 0.0
    for k in range(n_valid):
        prefix[k + 1] = prefix[k] + wv[order[k]]
    tot = prefix[n_valid]
    half = 0.5 * epsilon
    norm = 0.0
    for i in range(n):
        wi = 1.0
        if weighted:
            wi = w[i]
        if wi > 0.0:
            gi = g[i]
            lo = np.searchsorted(sorted_g, gi - half, side="right")
            hi = np.searchsorted(sorted_g, gi + half, side="left")
            count = prefix[hi] - prefix[lo]
            length = min(gi + half, 1.0) - max(gi - half, 0.0)
            if count > 0.0:
                b = tot * length / count
            else:
                b = 0.0
            beta_out[i] = b
            norm += wi * b
        else:
            beta_out[i] = 0.0
    if norm > 0.0:
        scale = tot / norm
        for i in range(n):
            beta_out[i] *= scale
    return tot


@njit(cache=True, parallel=True)
def scale_by_sample(beta, grad, hess):
    for i in prange(grad.shape[0]):
        grad[i] *= beta[i]
        hess[i] *= beta[i]


@njit(cache=True, parallel=True)
def cross_entropy_and_norm(y, x, ce_out, g_out):
    """Unweighted cross-entropy and gradient norm ``g = |p - y|`` per sample."""
    for i in prange(x.shape[0]):
        _, _, g, ce = _gradient_norm_parts(np.float64(x[i]), y[i])
        ce_out[i] = ce
        g_out[i] = g


@njit(cache=True)
def bin_counts(g, w, edges, bin_out, counts_out):
    """Bins and (weighted, valid-only) bin counts of precomputed gradient norms. Returns tot."""
    bins = edges.shape[0] - 1
    weighted = w.shape[0] > 0
    tot = 0.0
    for i in range(g.shape[0]):
        b = bin_of(g[i], bins, edges)
        bin_out[i] = b
        wi = w[i] if weighted else 1.0
        if wi > 0.0:
            counts_out[b] += wi
            tot += wi
    return tot
