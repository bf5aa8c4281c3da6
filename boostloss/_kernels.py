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

Reductions (GHM histograms) run over fixed-size chunks whose partial sums are added in a fixed
order, so results are bit-identical whatever the number of numba threads.
"""

import math

import numpy as np
from numba import njit, prange

from ._constants import (  # noqa: F401
    HESSIAN_BOUNDED,
    HESSIAN_EXACT,
    HESSIAN_FLOOR,
    HESSIAN_GAUSS_NEWTON,
)

#: Samples per chunk of a reduction; fixed so that the summation order never depends on threads.
CHUNK = 1 << 15
#: The ``table`` of for_each_with_gamma's binary callers (they have none).
_NO_TABLE = np.empty(0)

#: The per-sample functions compiled for both targets: here for the CPU, and from the same source
#: for CUDA by boostloss._cuda_build. Each must compile for CUDA too (scalar arithmetic, reads and
#: writes of array elements, no allocation); tests/test_cuda.py compiles them for real devices.
DEVICE_FUNCTIONS = (
    "_exp_nonpositive",
    "_log1p_unit",
    "_log_reduced",
    "_logistic_parts",
    "_modulating_factor",
    "focal_point",
    "_store_weighted",
    "_focal_grad_hess_store",
    "_gradient_norm_parts",
    "_ghm_bins_sample",
    "bin_of",
    "_scale_one",
)


# --------------------------------------------------------------------------------------------
# exp and log1p that the compiler can vectorise
#
# libm's exp and log1p are opaque calls, so a loop that uses them runs one sample at a time. The
# two functions below are fdlibm's algorithms (the reference implementations behind most libms)
# written as straight-line arithmetic, with the range restricted to what the losses need:
# exp of a non-positive argument and log1p of an argument in [0, 1]. Without branches or calls the
# loops over samples compile to SIMD code. Both stay within 1 ulp of glibc (checked over millions of
# arguments, subnormal results included); both are exact at the ends: exp(0) = 1, exp(-750) = 0,
# log1p(0) = 0, log1p(e) = e below 2**-53.
# --------------------------------------------------------------------------------------------

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that k * _LN2_HI is exact for |k| < 2**20
_LN2_LO = 1.90821492927058770002e-10
_EXP_P1 = 1.66666666666666019037e-01
_EXP_P2 = -2.77777777770155933842e-03
_EXP_P3 = 6.61375632143793436117e-05
_EXP_P4 = -1.65339022054652515390e-06
_EXP_P5 = 4.13813679705723846039e-08
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_SQRT2 = 1.4142135623730951


#: Powers of two for the scaling of exp: 2**k = _POW2_LOW[k & 31] * _POW2_HIGH[(k >> 5) + 34] for
#: -1088 <= k <= 0, both factors normal numbers (2**-96 .. 2**-65 and 2**-992 .. 2**96). Table
#: look-ups rather than bit manipulation keep the code plain arithmetic, so the same source also
#: compiles for CUDA (see boostloss.cuda) and vectorises on CPUs (gathers).
_POW2_LOW = np.ldexp(1.0, np.arange(32) - 96)
_POW2_HIGH = np.ldexp(1.0, 32 * np.arange(-34, 1) + 96)


@njit(cache=True, inline="always")
def _exp_nonpositive(t):
    """``exp(t)`` for ``t <= 0`` (fdlibm's e_exp.c: t = k ln2 + r, |r| <= ln2 / 2, rational e**r).

    The scaling by 2**k is one exact and one rounding multiplication, so subnormal results are
    rounded once, like libm's; below -745.2 the result is 0.
    """
    t = max(t, -750.0)
    k = int(math.floor(t * _LOG2E + 0.5))  # an int on both targets (CUDA's floor is a float)
    kf = float(k)
    hi = t - kf * _LN2_HI
    lo = kf * _LN2_LO
    r = hi - lo
    rr = r * r
    c = r - rr * (_EXP_P1 + rr * (_EXP_P2 + rr * (_EXP_P3 + rr * (_EXP_P4 + rr * _EXP_P5))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    # The first product is exact (a normal number); the second rounds once, also when subnormal.
    return (y * _POW2_LOW[k & 31]) * _POW2_HIGH[(k >> 5) + 34]


@njit(cache=True, inline="always")
def _log1p_unit(e, u, inv_u):
    """``log1p(e)`` for ``0 <= e <= 1``, given ``u = 1 + e`` (rounded) and ``inv_u = 1 / u``.

    fdlibm's s_log1p.c: log(u) by the Lg1..Lg7 polynomial in ``s = f / (2 + f)`` after scaling u
    into [sqrt(2)/2, sqrt(2)), plus the correction ``(e - (u - 1)) / u`` for the rounding of u.
    """
    c = (e - (u - 1.0)) * inv_u
    big = u > _SQRT2
    return _log_reduced(u * 0.5 if big else u, 1.0 if big else 0.0, c)


#: (k, 2**-k, 2**k sqrt(2)/2) for k = 512, 256, ..., 1, 1: the steps of _log1p_nonnegative's
#: scaling (the second 1 for u >= 2**1023 sqrt(2), which needs 1024 halvings).
_LOG_STEPS = tuple(
    (float(k), 2.0**-k, 2.0**k * (_SQRT2 / 2.0)) for k in (512, 256, 128, 64, 32, 16, 8, 4, 2, 1, 1)
)


@njit(cache=True, inline="always")
def _log1p_nonnegative(t):
    """``log1p(t)`` for any finite ``t >= 0`` (the softmax kernels' log1p of sums of exps).

    ``u = 1 + t`` is scaled by ``2**-k`` into [sqrt(2)/2, sqrt(2)) in eleven exact halving steps
    written as selects, then as :func:`_log1p_unit`: the polynomial and the correction
    ``(t - (u - 1)) / u`` for the rounding of u (``u - 1`` is exact for ``u >= 1``).
    """
    u = 1.0 + t
    c = (t - (u - 1.0)) / u
    m = u
    dk = 0.0
    for k, scale, threshold in _LOG_STEPS:
        big = m >= threshold
        m = m * scale if big else m
        dk = dk + k if big else dk
    return _log_reduced(m, dk, c)


@njit(cache=True, inline="always")
def _log_reduced(m, dk, c):
    """``log(m 2**dk) + c`` for ``m`` in [sqrt(2)/2, sqrt(2)] and a correction ``c`` of the order
    of an ulp of the result: fdlibm's Lg1..Lg7 polynomial in ``s = f / (2 + f)``, ``f = m - 1``,
    with ``dk ln 2`` added in two parts (``_LN2_HI`` times an integer below 2**20 is exact)."""
    f = m - 1.0
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    return dk * _LN2_HI - ((hfsq - (s * (hfsq + t2 + t1) + (dk * _LN2_LO + c))) - f)


@njit(cache=True, inline="always")
def _logistic_parts(z):
    """Return ``(p_t, q, log_p_t, log_q)`` for the margin ``z`` toward the true class.

    One exp of ``-|z|`` (in (0, 1], never overflows), one division and one log1p, for both signs.
    """
    e = _exp_nonpositive(-abs(z))
    u = 1.0 + e
    inv = 1.0 / u
    l1p = _log1p_unit(e, u, inv)
    small = e * inv
    if z >= 0.0:
        return inv, small, -l1p, -z - l1p
    return small, inv, z - l1p, -l1p


@njit(cache=True, inline="always")
def _modulating_factor(q, log_q, gamma):
    """``(1 - p_t) ** gamma`` in log space, with exact fast paths for gamma in {0, 1, 2}."""
    if gamma == 0.0:
        return 1.0
    if gamma == 2.0:
        return q * q
    if gamma == 1.0:
        return q
    return _exp_nonpositive(gamma * log_q)


@njit(cache=True, inline="always")
def focal_point(y, x, gamma, alpha_pos, alpha_neg, hessian_mode):
    """Focal loss, its gradient and Hessian with respect to the raw margin, for one sample.

    With ``a = alpha_t`` and ``m = q ** gamma``::

        FL      = -a m log p_t
        dFL/dz  =  a m (gamma p_t log p_t - q)
        d2FL/dz2 = a m (gamma (p_t log p_t)(q - gamma p_t) + (2 gamma + 1) p_t q)

    and ``d/dx = s d/dz``, ``d2/dx2 = d2/dz2``. ``hessian_mode`` HESSIAN_GAUSS_NEWTON replaces the
    second derivative by ``a m p_t q`` (the modulating factor held constant), HESSIAN_BOUNDED by
    the larger of the two. The returned Hessian is floored at HESSIAN_FLOOR.
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
    elif hessian_mode == HESSIAN_GAUSS_NEWTON:
        hess = am * p_t * q
    else:  # HESSIAN_BOUNDED: the larger of the two
        hess = am * (gamma * pt_log_pt * (q - gamma * p_t) + (2.0 * gamma + 1.0) * p_t * q)
        gauss_newton = am * p_t * q
        if not hess > gauss_newton:
            hess = gauss_newton
    if not hess > HESSIAN_FLOOR:
        hess = HESSIAN_FLOOR
    return loss, grad, hess


@njit(cache=True, parallel=True)
def focal_loss(y, x, w, gamma, alpha_pos, alpha_neg, out):
    n = x.shape[0]
    weighted = w.shape[0] > 0
    for i in prange(n):
        loss, _, _ = focal_point(y[i], np.float64(x[i]), gamma, alpha_pos, alpha_neg, 0)
        if weighted:
            loss *= w[i]
        out[i] = loss


@njit(cache=True, inline="always")
def _store_weighted(i, w, weighted, g, h, grad_out, hess_out):
    """``grad_out[i] = w_i g``, ``hess_out[i] = w_i h`` (no multiplication when unweighted)."""
    if weighted:
        g *= w[i]
        h *= w[i]
    grad_out[i] = g
    hess_out[i] = h


@njit(cache=True, inline="always")
def _focal_grad_hess_store(
    i, y, x, w, weighted, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out
):
    _, g, h = focal_point(y[i], np.float64(x[i]), gamma, alpha_pos, alpha_neg, hessian_mode)
    _store_weighted(i, w, weighted, g, h, grad_out, hess_out)


@njit(cache=True, inline="always")
def _focal_sample_store(i, gamma, y, x, w, table, params, grad_out, hess_out):
    """:func:`_focal_grad_hess_store` in the form :func:`for_each_with_gamma` calls, ``params``
    being ``(weighted, alpha_pos, alpha_neg, hessian_mode)``."""
    weighted, alpha_pos, alpha_neg, hessian_mode = params
    _focal_grad_hess_store(
        i, y, x, w, weighted, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out
    )


@njit(cache=True, inline="always")
def for_each_with_gamma(store, n, gamma, y, x, w, table, params, grad_out, hess_out):
    """``store(i, gamma, y, x, w, table, params, grad_out, hess_out)`` for ``i`` in ``0 .. n - 1``,
    a prange loop: call it from a parallel kernel. The binary focal kernel calls it per sample, the
    softmax one per sweep of row blocks (``boostloss._kernels_softmax``).

    One loop per common gamma (2, 1, 0), with gamma a literal in it: a single loop would evaluate
    every branch of the modulating factor (the SIMD code computes both sides of a branch), paying
    an ``exp`` that gamma = 2 does not need. ``params`` (a tuple) holds scalars only; ``table`` is a
    read-only array (the softmax's class weights; empty for the binary kernel). Arrays taken out of
    a tuple misbehave in a prange loop: numba drops the writes to them, and reads of them kept the
    loops from compiling to SIMD code (measured: 2x slower).
    """
    if gamma == 2.0:
        for i in prange(n):
            store(i, 2.0, y, x, w, table, params, grad_out, hess_out)
    elif gamma == 1.0:
        for i in prange(n):
            store(i, 1.0, y, x, w, table, params, grad_out, hess_out)
    elif gamma == 0.0:
        for i in prange(n):
            store(i, 0.0, y, x, w, table, params, grad_out, hess_out)
    else:
        for i in prange(n):
            store(i, gamma, y, x, w, table, params, grad_out, hess_out)


@njit(cache=True, parallel=True)
def focal_grad_hess(y, x, w, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out):
    """Weighted focal gradient and Hessian of every sample, written into the output buffers."""
    for_each_with_gamma(
        _focal_sample_store,
        x.shape[0],
        gamma,
        y,
        x,
        w,
        _NO_TABLE,
        (w.shape[0] > 0, alpha_pos, alpha_neg, hessian_mode),
        grad_out,
        hess_out,
    )


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
def _gradient_norm_parts(y, x):
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
    """Bin of ``g`` in [0, 1]: half-open ``[edges[b], edges[b+1])``, ``edges[-1] = 1 + 1e-6``."""
    b = min(int(g * bins), bins - 1)
    # int(g * bins) can be off by one from the edge comparisons after rounding: settle it exactly.
    # Written without branches (edges increase, so at most one side applies) to keep loops SIMD.
    down = g < edges[b]
    up = g >= edges[b + 1]
    return b - np.int64(down) + np.int64(up)


@njit(cache=True, inline="always")
def _bin_of_uniform(g, bins, fbins):
    """:func:`bin_of` for the standard edges ``b / bins`` (last one above 1), without a look-up.

    The edges are recomputed by the same correctly rounded division that made them, so the result
    is identical; table look-ups (gathers) would keep the compiler from vectorising the loop.
    """
    b = min(int(g * bins), bins - 1)
    down = g < b / fbins
    up = (b + 1 < bins) & (g >= (b + 1) / fbins)
    return b - np.int64(down) + np.int64(up)


@njit(cache=True)
def _edges_are_uniform(edges):
    """True when ``edges[b] == b / bins`` for b < bins and ``edges[bins] > 1`` (GHMLoss's edges)."""
    bins = edges.shape[0] - 1
    fbins = float(bins)
    for b in range(bins):
        if edges[b] != b / fbins:
            return False
    return edges[bins] > 1.0


@njit(cache=True, inline="always")
def _ghm_bins_sample(i, y, x, w, weighted, grad_out, hess_out):
    """Weighted CE gradient and floored Hessian of sample ``i`` into the outputs; returns ``g``."""
    diff, hess, g, _ = _gradient_norm_parts(y[i], np.float64(x[i]))
    if not hess > HESSIAN_FLOOR:
        hess = HESSIAN_FLOOR
    _store_weighted(i, w, weighted, diff, hess, grad_out, hess_out)
    return g


@njit(cache=True, inline="always")
def _chunk_histogram(c, n, bins, weighted, w, bin_idx, partial, partial_tot):
    """Bin counts (and total weight) of the valid samples of chunk ``c``, into row ``c``."""
    start = c * CHUNK
    stop = min(start + CHUNK, n)
    if weighted:
        tot = 0.0
        for i in range(start, stop):
            wi = w[i]
            if wi > 0.0:
                partial[c, bin_idx[i]] += wi
                tot += wi
        partial_tot[c] = tot
    else:
        # Four interleaved integer histograms: consecutive samples often share a bin, and one
        # histogram would make every increment wait for the previous one.
        counts4 = np.empty((4, bins), dtype=np.int64)
        for b in range(bins):
            for r in range(4):
                counts4[r, b] = 0
        for i in range(start, stop):
            counts4[i & 3, bin_idx[i]] += 1
        for b in range(bins):
            partial[c, b] = float(counts4[0, b] + counts4[1, b] + counts4[2, b] + counts4[3, b])
        partial_tot[c] = float(stop - start)


@njit(cache=True, parallel=True)
def bin_histogram(bin_idx, w, bins, counts_out):
    """Add the (weighted) count of every bin to ``counts_out``; return the total weight counted.

    Only samples with positive weight are counted (zero-weight samples are not "valid" in GHM's
    sense). Each fixed-size chunk of samples gets its own histogram, and the chunks are added in
    chunk order, so the result is the same whatever the number of threads; unweighted counts are
    integers, summed exactly.
    """
    n = bin_idx.shape[0]
    weighted = w.shape[0] > 0
    n_chunks = (n + CHUNK - 1) // CHUNK
    # np.empty and explicit zeroing: in a parallel kernel numba turns np.zeros into a parallel loop
    # of its own, one more wake-up of the threads for a few bytes.
    partial = np.empty((n_chunks, bins))
    partial_tot = np.empty(n_chunks)
    for c in range(n_chunks):
        partial_tot[c] = 0.0
        for b in range(bins):
            partial[c, b] = 0.0
    for c in prange(n_chunks):
        _chunk_histogram(c, n, bins, weighted, w, bin_idx, partial, partial_tot)
    total = 0.0
    for c in range(n_chunks):
        total += partial_tot[c]
        for b in range(bins):
            counts_out[b] += partial[c, b]
    return total


@njit(cache=True, inline="always")
def for_each_bin(norm_store, edges, y, x, w, grad_out, hess_out, bin_out):
    """``bin_out[i]`` = the bin of ``g = norm_store(i, y, x, w, weighted, grad_out, hess_out)`` for
    every sample (or row) ``i``, a prange loop: call it from a parallel kernel. The binary and the
    softmax GHM passes share it.

    ``norm_store`` writes the derivatives of ``i`` and returns its ``g``; the bins are half-open,
    ``[edges[b], edges[b + 1])``. A flat loop with no reduction, so it compiles to SIMD code; the
    standard edges get a loop of their own without table look-ups.
    """
    n = x.shape[0]
    weighted = w.shape[0] > 0
    bins = edges.shape[0] - 1
    fbins = float(bins)
    if _edges_are_uniform(edges):
        for i in prange(n):
            g = norm_store(i, y, x, w, weighted, grad_out, hess_out)
            bin_out[i] = _bin_of_uniform(g, bins, fbins)
    else:
        for i in prange(n):
            g = norm_store(i, y, x, w, weighted, grad_out, hess_out)
            bin_out[i] = bin_of(g, bins, edges)


@njit(cache=True, parallel=True)
def ghm_bins_pass(y, x, w, edges, grad_out, hess_out, bin_out):
    """First GHM pass with binned density: per-sample derivatives and bins.

    Writes the sample-weighted cross-entropy gradient ``w (p - y)`` and floored Hessian
    ``w max(p (1 - p), floor)``, and each sample's bin of ``g = |p - y|``; the counts come from
    :func:`bin_histogram`.
    """
    for_each_bin(_ghm_bins_sample, edges, y, x, w, grad_out, hess_out, bin_out)


@njit(cache=True, parallel=True)
def assign_bins(g, edges, bin_out):
    """The bin of every precomputed gradient norm ``g`` (same rule as :func:`ghm_bins_pass`)."""
    bins = edges.shape[0] - 1
    for i in prange(g.shape[0]):
        bin_out[i] = bin_of(g[i], bins, edges)


@njit(cache=True, inline="always")
def _scale_one(i, factor, grad, hess):
    grad[i] *= factor
    hess[i] *= factor


@njit(cache=True, parallel=True)
def scale_by_bin(bin_idx, beta, grad, hess):
    """``grad *= beta[bin]``, ``hess *= beta[bin]`` in place."""
    n = grad.shape[0]
    for i in prange(n):
        _scale_one(i, beta[bin_idx[i]], grad, hess)


@njit(cache=True, parallel=True)
def ghm_norm_pass(y, x, w, grad_out, hess_out, g_out):
    """First GHM pass, window density: weighted CE gradient, floored Hessian and ``g = |p - y|``."""
    n = x.shape[0]
    weighted = w.shape[0] > 0
    for i in prange(n):
        g_out[i] = _ghm_bins_sample(i, y, x, w, weighted, grad_out, hess_out)


_RADIX_BITS = 11
_RADIX = 1 << _RADIX_BITS
_RADIX_PASSES = 6  # 66 bits: the 63 bits of a non-negative float64


@njit(cache=True)
def _radix_sort_bits(n, keys, idx, keys_tmp, idx_tmp):
    """Stable LSD radix sort of the first ``n`` non-negative int64 keys (float64 bit patterns),
    carrying ``idx``.

    For non-negative floats the bit patterns order like the values, so this sorts the values
    exactly. 11-bit digits (a 2048-bucket histogram stays in L1), all digit histograms in one read,
    and digits that are equal for every key are skipped. Returns the sorted ``(keys, idx)``: the
    input arrays or the scratch ones, whichever holds the result.
    """
    hist = np.zeros((_RADIX_PASSES, _RADIX), dtype=np.int64)
    for i in range(n):
        k = keys[i]
        for p in range(_RADIX_PASSES):
            hist[p, (k >> (p * _RADIX_BITS)) & (_RADIX - 1)] += 1
    src_k, src_i, dst_k, dst_i = keys, idx, keys_tmp, idx_tmp
    offsets = np.empty(_RADIX, dtype=np.int64)
    for p in range(_RADIX_PASSES):
        shift = p * _RADIX_BITS
        skip = False
        running = 0
        for d in range(_RADIX):
            count = hist[p, d]
            if count == n:
                skip = True
            offsets[d] = running
            running += count
        if skip:
            continue
        for i in range(n):
            k = src_k[i]
            d = (k >> shift) & (_RADIX - 1)
            pos = offsets[d]
            offsets[d] = pos + 1
            dst_k[pos] = k
            dst_i[pos] = src_i[i]
        src_k, src_i, dst_k, dst_i = dst_k, dst_i, src_k, src_i
    return src_k, src_i


@njit(cache=True)
def window_beta(g, w, epsilon, beta_out):
    """:func:`window_beta_into` with its work arrays allocated here."""
    n = g.shape[0]
    return window_beta_into(
        g,
        w,
        epsilon,
        beta_out,
        np.empty(n, dtype=np.int64),
        np.empty(n, dtype=np.int64),
        np.empty(n, dtype=np.int64),
        np.empty(n, dtype=np.int64),
        np.empty(n + 1),
    )


@njit(cache=True)
def _sort_valid_norms(g, w, beta_out, keys, idx, keys_tmp, idx_tmp):
    """Sort the ``g`` of the valid samples (positive weight); zero-weight samples get beta 0.

    Returns ``(n_valid, sorted_keys, sorted_idx)``: the float64 bit patterns of the sorted ``g``
    and the sample index of each.
    """
    weighted = w.shape[0] > 0
    g_bits = g.view(np.int64)
    n_valid = 0
    for i in range(g.shape[0]):
        if (not weighted) or w[i] > 0.0:
            keys[n_valid] = g_bits[i]
            idx[n_valid] = i
            n_valid += 1
        else:
            beta_out[i] = 0.0
    keys, idx = _radix_sort_bits(n_valid, keys, idx, keys_tmp, idx_tmp)
    return n_valid, keys, idx


@njit(cache=True)
def _window_sweep(n_valid, sorted_g, idx, prefix, weighted, tot, epsilon, beta_out):
    """``beta_i = tot * l_eps(g_i) / count_eps(g_i)`` for the valid samples, in one sweep.

    The window's two ends only move forward over the sorted ``g``, so every count costs O(1);
    ``prefix[k]`` is the total weight of the k smallest (unused when unweighted).
    """
    half = 0.5 * epsilon
    lo = 0  # number of sorted g <= g_j - half
    hi = 0  # number of sorted g < g_j + half
    for k in range(n_valid):
        gk = sorted_g[k]
        below = gk - half
        above = gk + half
        while lo < n_valid and sorted_g[lo] <= below:
            lo += 1
        while hi < n_valid and sorted_g[hi] < above:
            hi += 1
        if weighted:
            count = prefix[hi] - prefix[lo]
        else:
            count = float(hi - lo)
        length = min(above, 1.0) - max(below, 0.0)
        if count > 0.0:
            beta_out[idx[k]] = tot * length / count
        else:
            beta_out[idx[k]] = 0.0


@njit(cache=True)
def _normalise_betas(w, tot, beta_out):
    """Rescale all betas by one constant so that ``sum_i w_i beta_i = tot``.

    Sums in sample order, so the result does not depend on how ties were sorted.
    """
    weighted = w.shape[0] > 0
    n = beta_out.shape[0]
    norm = 0.0
    if weighted:
        for i in range(n):
            norm += w[i] * beta_out[i]
    else:
        for i in range(n):
            norm += beta_out[i]
    if norm > 0.0:
        scale = tot / norm
        for i in range(n):
            beta_out[i] *= scale


@njit(cache=True)
def window_beta_into(g, w, epsilon, beta_out, keys, idx, keys_tmp, idx_tmp, prefix):
    """Harmonising weights from the paper's sliding-window gradient density.

    ``GD(g_i) = (sum of weights of valid k with g_k in (g_i - eps/2, g_i + eps/2)) / l_eps(g_i)``,
    ``l_eps(g) = min(g + eps/2, 1) - max(g - eps/2, 0)``, ``beta_i = tot / GD(g_i)``, then all betas
    are rescaled by one constant so that ``sum_i w_i beta_i = tot`` (the binned version's
    normalisation). Samples with zero weight get beta 0. Returns ``tot``.

    One exact sort of the valid samples' ``g`` (a radix sort of the float64 bit patterns, carrying
    the sample index), then one sweep in sorted order. ``keys``, ``idx``, ``keys_tmp``, ``idx_tmp``
    (int64, length n) and ``prefix`` (float64, length n + 1) are work arrays, so a training can
    reuse them across rounds.
    """
    weighted = w.shape[0] > 0
    n_valid, keys, idx = _sort_valid_norms(g, w, beta_out, keys, idx, keys_tmp, idx_tmp)
    if weighted:
        prefix[0] = 0.0
        for k in range(n_valid):
            prefix[k + 1] = prefix[k] + w[idx[k]]
        tot = prefix[n_valid]
    else:
        tot = float(n_valid)
    _window_sweep(n_valid, keys.view(np.float64), idx, prefix, weighted, tot, epsilon, beta_out)
    _normalise_betas(w, tot, beta_out)
    return tot


@njit(cache=True, parallel=True)
def scale_by_sample(beta, grad, hess):
    """``grad *= beta``, ``hess *= beta`` in place."""
    n = grad.shape[0]
    for i in prange(n):
        _scale_one(i, beta[i], grad, hess)


@njit(cache=True, parallel=True)
def cross_entropy_and_norm(y, x, ce_out, g_out):
    """Unweighted cross-entropy and gradient norm ``g = |p - y|`` per sample."""
    for i in prange(x.shape[0]):
        _, _, g, ce = _gradient_norm_parts(y[i], np.float64(x[i]))
        ce_out[i] = ce
        g_out[i] = g
