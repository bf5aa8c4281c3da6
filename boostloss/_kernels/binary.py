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
from numba import njit

from .constants import (  # noqa: F401
    HESSIAN_EXACT,
    HESSIAN_FLOOR,
    HESSIAN_GAUSS_NEWTON,
    standard_edges,
)
from .math import (
    _focal_grad_hess_store,
    _ghm_bins_sample,
    _gradient_norm_parts,
    _scale_one,
    bin_of,
    focal_point,
    inlined,
)
from .threads import numpy_twin, row_kernel, rows_of, run_rows

#: Samples per chunk of a reduction; fixed so that the summation order never depends on threads.
CHUNK = 1 << 15


def by_gamma(gamma, kernels):
    """The kernel of ``kernels`` compiled for ``gamma``: ``(gamma 2, gamma 1, gamma 0, any)``.

    The package's one gamma specialiser. Each focal kernel exists in four versions, gamma a literal
    in the first three: a single version would evaluate every branch of the modulating factor (the
    SIMD code computes both sides of a branch), paying an ``exp`` that gamma = 2 does not need.
    The choice is made here, in Python, so a first call compiles only the version it runs (each
    version is a fraction of the code of one kernel holding all four; docs/performance.md).
    """
    if gamma == 2.0:
        return kernels[0]
    if gamma == 1.0:
        return kernels[1]
    if gamma == 0.0:
        return kernels[2]
    return kernels[3]


@row_kernel
def _focal_loss(y, x, w, gamma, alpha_pos, alpha_neg, out):
    weighted = w.shape[0] > 0
    mode = np.int64(HESSIAN_EXACT)  # not a literal: the gradient kernels' focal_point signature
    for i in range(x.shape[0]):
        loss, _, _ = focal_point(y[i], np.float64(x[i]), gamma, alpha_pos, alpha_neg, mode)
        if weighted:
            loss *= w[i]
        out[i] = loss


focal_loss = rows_of(_focal_loss, 0, 1, 2, 6)


# Inlined by numba, not compiled on its own: each gamma's kernel is its one caller in practice, and
# a function that LLVM inlines is compiled twice (on its own, then inside its caller).
@njit(cache=True, inline="always")
def _focal_rows(gamma, y, x, w, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out):
    """The focal gradient and Hessian of every sample (see :func:`by_gamma`).

    The exact and the Gauss-Newton Hessian each have a loop of their own, in which the mode is a
    constant: the per-sample math then computes the one Hessian it returns, where a runtime mode
    selected among the three policies inside the loop, both Hessians computed (8-17% slower per
    call, docs/performance.md). The mode an int64, not a literal: the helpers keep one signature.
    """
    weighted = w.shape[0] > 0
    if hessian_mode == HESSIAN_EXACT:
        exact = np.int64(HESSIAN_EXACT)
        for i in range(x.shape[0]):
            _focal_grad_hess_store(
                i, y, x, w, weighted, gamma, alpha_pos, alpha_neg, exact, grad_out, hess_out
            )
    elif hessian_mode == HESSIAN_GAUSS_NEWTON:
        gauss_newton = np.int64(HESSIAN_GAUSS_NEWTON)
        for i in range(x.shape[0]):
            _focal_grad_hess_store(
                i, y, x, w, weighted, gamma, alpha_pos, alpha_neg, gauss_newton, grad_out, hess_out
            )
    else:
        for i in range(x.shape[0]):
            _focal_grad_hess_store(
                i, y, x, w, weighted, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out
            )


# fmt: off
@row_kernel
def _focal_grad_hess_gamma2(y, x, w, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out,
                            hess_out):
    _focal_rows(2.0, y, x, w, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out)


@row_kernel
def _focal_grad_hess_gamma1(y, x, w, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out,
                            hess_out):
    _focal_rows(1.0, y, x, w, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out)


@row_kernel
def _focal_grad_hess_gamma0(y, x, w, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out,
                            hess_out):
    _focal_rows(0.0, y, x, w, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out)


@row_kernel
def _focal_grad_hess_any(y, x, w, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out):
    _focal_rows(gamma, y, x, w, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out)
# fmt: on


_FOCAL_GRAD_HESS = (
    _focal_grad_hess_gamma2,
    _focal_grad_hess_gamma1,
    _focal_grad_hess_gamma0,
    _focal_grad_hess_any,
)


def focal_grad_hess(y, x, w, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out):
    """Weighted focal gradient and Hessian of every sample, written into the output buffers."""
    kernel = by_gamma(gamma, _FOCAL_GRAD_HESS)
    args = (y, x, w, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out)
    run_rows(kernel, args, (0, 1, 2, 7, 8))


@njit(cache=True)
def focal_constant_total_and_slope(s, w1, w0, gamma, alpha_pos, alpha_neg):
    """The focal total ``w1 FL(1, s) + w0 FL(0, s)`` of a constant margin ``s`` and its slope in
    ``s``: what the best constant start minimises (the sums of :func:`focal_loss` and
    :func:`focal_grad_hess` over the two classes, to the bit)."""
    # The mode an int64, not a literal: focal_point is then the version the gradient kernels use
    # (a literal argument is a second signature to compile).
    mode = np.int64(HESSIAN_EXACT)
    loss1, slope1, _ = focal_point(1.0, s, gamma, alpha_pos, alpha_neg, mode)
    loss0, slope0, _ = focal_point(0.0, s, gamma, alpha_pos, alpha_neg, mode)
    return loss1 * w1 + loss0 * w0, slope1 * w1 + slope0 * w0


def as_float64(x):
    """``x`` itself if float64, else a float64 copy (exact from float32, 0.14 ms at 1M rows): a
    kernel long to compile (OHEM's selection) then exists in one version."""
    return x if x.dtype == np.float64 else x.astype(np.float64)


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


@inlined
def _bin_of_uniform(g, bins, fbins):
    """:func:`bin_of` for the standard edges ``b / bins`` (last one above 1), without a look-up.

    The edges are recomputed by the same correctly rounded division that made them, so the result
    is identical; table look-ups (gathers) would keep the compiler from vectorising the loop.
    """
    b = int(g * bins)
    b = bins - 1 if bins - 1 < b else b
    down = g < b / fbins
    up = (b + 1 < bins) & (g >= (b + 1) / fbins)
    return b - np.int64(down) + np.int64(up)


def _edges_are_uniform(edges):
    """True when ``edges[b] == b / bins`` for b < bins and ``edges[bins] > 1`` (GHMLoss's edges):
    the kernels that bin without a look-up (:func:`_bin_of_uniform`) apply. GHMLoss's own edges
    (``constants.standard_edges``) by identity, others in numpy with the same correctly rounded
    divisions."""
    bins = edges.shape[0] - 1
    standard = standard_edges(bins)
    if edges is standard:
        return True
    return bool(np.array_equal(edges[:bins], standard[:bins]) and edges[bins] > 1.0)


@njit(cache=True, nogil=True)
def _chunk_histograms(chunks, bin_idx, w, bins, partial, partial_tot, counts4):
    """Bin counts (and total weight) of the valid samples of each chunk ``chunks[j]`` of
    :data:`CHUNK` samples, into ``partial[j]`` and ``partial_tot[j]``; ``counts4[j]`` is chunk
    ``j``'s (4, bins) integer scratch (allocated by the caller: an allocation compiled into the
    kernel cost more to compile than the rest of it)."""
    n = bin_idx.shape[0]
    weighted = w.shape[0] > 0
    # Four interleaved integer histograms: consecutive samples often share a bin, and one
    # histogram would make every increment wait for the previous one.
    for j in range(chunks.shape[0]):
        start = chunks[j] * CHUNK
        stop = start + CHUNK if start + CHUNK < n else n
        if weighted:
            tot = 0.0
            for b in range(bins):
                partial[j, b] = 0.0
            for i in range(start, stop):
                wi = w[i]
                if wi > 0.0:
                    partial[j, bin_idx[i]] += wi
                    tot += wi
            partial_tot[j] = tot
        else:
            c4 = counts4[j]
            for r in range(4):
                for b in range(bins):
                    c4[r, b] = 0
            for i in range(start, stop):
                c4[i & 3, bin_idx[i]] += 1
            for b in range(bins):
                partial[j, b] = float(c4[0, b] + c4[1, b] + c4[2, b] + c4[3, b])
            partial_tot[j] = float(stop - start)


#: Up to this many samples (one chunk) :func:`bin_histogram` is numpy's ``bincount``: as fast or
#: faster there (unweighted 2.9 against 6.2 us at 400 samples, 7.8 against 9.4 us at 4,000), the
#: same numbers to the bit, and nothing to compile (the kernel is 0.3-0.6 s of a first GHM-C
#: training on a cold cache). Weighted, ``bincount`` is slower sooner (22 against 11 us at 4,000).
_NUMPY_HISTOGRAM_UPTO = 8192
_NUMPY_WEIGHTED_HISTOGRAM_UPTO = 2048


def _numpy_histogram(bin_idx, w, bins, counts_out):
    """:func:`bin_histogram` of at most one chunk, by numpy, to the bit: ``bincount`` adds the
    weights bin by bin in sample order as the kernel does (a zero weight adds 0.0, which changes
    no sum), and ``add.accumulate`` sums the total in sample order (``sum`` would pair)."""
    if not w.shape[0]:
        counts_out += np.bincount(bin_idx, minlength=bins)
        return float(bin_idx.shape[0])
    counts_out += np.bincount(bin_idx, weights=w, minlength=bins)
    return 0.0 + float(np.add.accumulate(w)[-1])  # 0.0 + as the kernel's total: -0.0 -> 0.0


def compile_bin_histogram(n_samples=None):
    """Compile (or load) the histogram kernel that :func:`bin_histogram` runs above its numpy
    limits, when ``n_samples`` samples (None: any number) can reach it: for a warm-up before a
    training whose small trial runs would not."""
    if n_samples is None or n_samples > _NUMPY_WEIGHTED_HISTOGRAM_UPTO:
        n = max(_NUMPY_HISTOGRAM_UPTO, _NUMPY_WEIGHTED_HISTOGRAM_UPTO) + 1
        bin_histogram(np.zeros(n, dtype=np.int32), np.empty(0), 1, np.zeros(1))


def bin_histogram(bin_idx, w, bins, counts_out):
    """Add the (weighted) count of every bin to ``counts_out``; return the total weight counted.

    Only samples with positive weight are counted (zero-weight samples are not "valid" in GHM's
    sense). Each fixed-size chunk of samples gets its own histogram, and the chunks are added in
    chunk order, so the result is the same whatever the number of threads; unweighted counts are
    integers, summed exactly.
    """
    n = bin_idx.shape[0]
    if n <= (_NUMPY_WEIGHTED_HISTOGRAM_UPTO if w.shape[0] else _NUMPY_HISTOGRAM_UPTO):
        return _numpy_histogram(bin_idx, w, bins, counts_out)
    n_chunks = -(-n // CHUNK)
    partial = np.empty((n_chunks, bins))
    partial_tot = np.empty(n_chunks)
    chunks = np.arange(n_chunks)
    counts4 = np.empty((0 if w.shape[0] else n_chunks, 4, bins), dtype=np.int64)
    args = (chunks, bin_idx, w, bins, partial, partial_tot, counts4)
    run_rows(_chunk_histograms, args, (0, 4, 5, 6), 1)
    total = 0.0
    for c in range(n_chunks):
        total += float(partial_tot[c])
        counts_out += partial[c]
    return total


@row_kernel
def _ghm_bins_pass_uniform(y, x, w, edges, grad_out, hess_out, bin_out):
    """First GHM pass with binned density on the standard edges ``b / bins`` (last above 1):
    per-sample derivatives and bins.

    Writes the sample-weighted cross-entropy gradient ``w (p - y)`` and floored Hessian
    ``w max(p (1 - p), floor)``, and each sample's bin of ``g = |p - y|``; the counts come from
    :func:`bin_histogram`. A flat loop with no reduction and no table look-up (SIMD code).
    """
    weighted = w.shape[0] > 0
    bins = edges.shape[0] - 1
    fbins = float(bins)
    for i in range(x.shape[0]):
        g = _ghm_bins_sample(i, y, x, w, weighted, grad_out, hess_out)
        bin_out[i] = _bin_of_uniform(g, bins, fbins)


@row_kernel
def _ghm_bins_pass_edges(y, x, w, edges, grad_out, hess_out, bin_out):
    """:func:`_ghm_bins_pass_uniform` on any increasing edges: bins ``[edges[b], edges[b + 1])``."""
    weighted = w.shape[0] > 0
    bins = edges.shape[0] - 1
    for i in range(x.shape[0]):
        g = _ghm_bins_sample(i, y, x, w, weighted, grad_out, hess_out)
        bin_out[i] = bin_of(g, bins, edges)


def ghm_bins_pass(y, x, w, edges, grad_out, hess_out, bin_out):
    """First GHM pass with binned density: per-sample derivatives and bins (the standard edges
    and any others each have a kernel, chosen here: a first call compiles the one it runs)."""
    kernel = _ghm_bins_pass_uniform if _edges_are_uniform(edges) else _ghm_bins_pass_edges
    run_rows(kernel, (y, x, w, edges, grad_out, hess_out, bin_out), (0, 1, 2, 4, 5, 6))


@row_kernel
def _assign_bins(g, edges, bin_out):
    """The bin of every precomputed gradient norm ``g`` (same rule as :func:`ghm_bins_pass`)."""
    bins = edges.shape[0] - 1
    for i in range(g.shape[0]):
        bin_out[i] = bin_of(g[i], bins, edges)


assign_bins = rows_of(_assign_bins, 0, 2)


@row_kernel
def _scale_by_bin(bin_idx, beta, grad, hess):
    """``grad *= beta[bin]``, ``hess *= beta[bin]`` in place."""
    for i in range(grad.shape[0]):
        _scale_one(i, beta[bin_idx[i]], grad, hess)


scale_by_bin = rows_of(_scale_by_bin, 0, 2, 3)


@row_kernel
def _ghm_norm_pass(y, x, w, grad_out, hess_out, g_out):
    """First GHM pass, window density: weighted CE gradient, floored Hessian and ``g = |p - y|``."""
    weighted = w.shape[0] > 0
    for i in range(x.shape[0]):
        g_out[i] = _ghm_bins_sample(i, y, x, w, weighted, grad_out, hess_out)


ghm_norm_pass = rows_of(_ghm_norm_pass, 0, 1, 2, 3, 4, 5)


_RADIX_BITS = 11
_RADIX = 1 << _RADIX_BITS
_RADIX_PASSES = 6  # 66 bits: the 63 bits of a non-negative float64


@njit(cache=True, inline="always")
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
def _window_beta(g, w, epsilon, beta_out):
    """:func:`_window_beta_into` with its work arrays allocated here."""
    n = g.shape[0]
    return _window_beta_into(
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


@njit(cache=True, inline="always")
def _sort_valid_norms(g, w, beta_out, keys, idx, keys_tmp, idx_tmp):
    """Sort the ``g`` of the valid samples (positive weight); zero-weight samples get beta 0.

    Returns ``(n_valid, sorted_keys, sorted_idx)``: the float64 bit patterns of the sorted ``g``
    and the sample index of each.
    """
    weighted = w.shape[0] > 0
    g_bits = g.view(np.int64)
    n_valid = np.int64(0)  # not the literal 0: the sort below would be compiled for it as well
    for i in range(g.shape[0]):
        if (not weighted) or w[i] > 0.0:
            keys[n_valid] = g_bits[i]
            idx[n_valid] = i
            n_valid += 1
        else:
            beta_out[i] = 0.0
    keys, idx = _radix_sort_bits(n_valid, keys, idx, keys_tmp, idx_tmp)
    return n_valid, keys, idx


@inlined
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
        length = (1.0 if above > 1.0 else above) - (0.0 if below < 0.0 else below)
        if count > 0.0:
            beta_out[idx[k]] = tot * length / count
        else:
            beta_out[idx[k]] = 0.0


@inlined
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
def _window_beta_into(g, w, epsilon, beta_out, keys, idx, keys_tmp, idx_tmp, prefix):
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


def _window_beta_numpy(g, w, epsilon, beta_out):
    """:func:`_window_beta_into` in numpy, the same bits: numpy's stable sort orders the valid
    ``g`` (all ``>= +0``) as the radix sort of their bit patterns does, equal values by sample;
    the two ends of each window are counted by ``searchsorted`` (``lo`` the number of sorted ``g
    <= g_j - eps/2``, ``hi`` of those ``< g_j + eps/2``, as the sweep's two pointers); the prefix
    of the weights and the normalising sum are serial sums (``np.add.accumulate``), as in the
    kernel."""
    weighted = w.shape[0] > 0
    if weighted:
        valid = w > 0.0
        beta_out[~valid] = 0.0
        rows = np.flatnonzero(valid)
        idx = rows[np.argsort(g[rows], kind="stable")]
    else:
        idx = np.argsort(g, kind="stable")
    n_valid = idx.shape[0]
    sorted_g = g[idx]
    if weighted:
        prefix = np.zeros(n_valid + 1)
        np.add.accumulate(w[idx], out=prefix[1:])
        tot = float(prefix[n_valid])
    else:
        tot = float(n_valid)
    half = 0.5 * epsilon
    below = sorted_g - half
    above = sorted_g + half
    lo = np.searchsorted(sorted_g, below, side="right")
    hi = np.searchsorted(sorted_g, above, side="left")
    count = prefix[hi] - prefix[lo] if weighted else (hi - lo).astype(np.float64)
    length = np.where(above > 1.0, 1.0, above) - np.where(below < 0.0, 0.0, below)
    positive = count > 0.0
    beta_out[idx] = np.where(positive, tot * length / np.where(positive, count, 1.0), 0.0)
    terms = w * beta_out if weighted else beta_out
    norm = 0.0 + np.add.accumulate(terms)[-1] if terms.shape[0] else 0.0
    if norm > 0.0:
        beta_out *= tot / norm
    return tot


#: Up to this many samples, while the kernel is not in the process, the window density runs in
#: numpy (:func:`_window_beta_numpy`, the same bits; :func:`threads.numpy_twin`): the radix sort
#: and the sweep are 2-3 s of compiling; numpy's twin costs 0.07-0.2 ms a call there, the kernel
#: 0.03-0.05 ms.
_NUMPY_WINDOW_UPTO = 1024


def compile_window_density(n_samples=None):
    """Compile (or load) the window density's kernels when ``n_samples`` samples (None: any
    number) reach them, for a warm-up ahead of a large training."""
    if n_samples is None or n_samples > _NUMPY_WINDOW_UPTO:
        g = np.zeros(1)
        _window_beta(g, np.empty(0), 0.1, np.empty(1))
        keys, idx, keys_tmp, idx_tmp = (np.empty(1, dtype=np.int64) for _ in range(4))
        _window_beta_into(
            g, np.empty(0), 0.1, np.empty(1), keys, idx, keys_tmp, idx_tmp, np.empty(2)
        )


def window_beta(g, w, epsilon, beta_out):
    """Harmonising weights of the sliding-window density (:func:`_window_beta_into`), its work
    arrays allocated here. Returns ``tot``."""
    if numpy_twin(g.shape[0], _NUMPY_WINDOW_UPTO, _window_beta):
        return _window_beta_numpy(g, w, epsilon, beta_out)
    return _window_beta(g, w, epsilon, beta_out)


def window_beta_into(g, w, epsilon, beta_out, keys, idx, keys_tmp, idx_tmp, prefix):
    """:func:`_window_beta_into` (or numpy's twin, see :data:`_NUMPY_WINDOW_UPTO`)."""
    if numpy_twin(g.shape[0], _NUMPY_WINDOW_UPTO, _window_beta_into):
        return _window_beta_numpy(g, w, epsilon, beta_out)
    return _window_beta_into(g, w, epsilon, beta_out, keys, idx, keys_tmp, idx_tmp, prefix)


@row_kernel
def _scale_by_sample(beta, grad, hess):
    """``grad *= beta``, ``hess *= beta`` in place."""
    for i in range(grad.shape[0]):
        _scale_one(i, beta[i], grad, hess)


scale_by_sample = rows_of(_scale_by_sample, 0, 1, 2)


@row_kernel
def _cross_entropy_and_norm(y, x, ce_out, g_out):
    """Unweighted cross-entropy and gradient norm ``g = |p - y|`` per sample."""
    for i in range(x.shape[0]):
        _, _, g, ce = _gradient_norm_parts(y[i], np.float64(x[i]))
        ce_out[i] = ce
        g_out[i] = g


cross_entropy_and_norm = rows_of(_cross_entropy_and_norm, 0, 1, 2, 3)


@row_kernel
def _kept_cross_entropy_grad_hess(y, x, w, keep, grad_out, hess_out):
    """Weighted cross-entropy gradient ``w (p - y)`` and floored Hessian ``w max(p (1 - p),
    HESSIAN_FLOOR)`` of the rows with ``keep != 0`` (GHM-C's per-sample pieces), ``+0.0`` for the
    others: OHEM's derivatives."""
    weighted = w.shape[0] > 0
    for i in range(x.shape[0]):
        _ghm_bins_sample(i, y, x, w, weighted, grad_out, hess_out)
        kept = keep[i] != 0
        grad_out[i] = grad_out[i] if kept else 0.0
        hess_out[i] = hess_out[i] if kept else 0.0


kept_cross_entropy_grad_hess = rows_of(_kept_cross_entropy_grad_hess, 0, 1, 2, 3, 4, 5)
