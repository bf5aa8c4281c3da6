"""Numba kernels of OHEM (online hard example mining): the per-round selection and its derivatives.

Every boosting round OHEM keeps all positives and only the hardest negatives; the other rows get
gradient 0 and Hessian 0 for that round (Shrivastava, Gupta, Girshick 2016, "Training Region-based
Object Detectors with Online Hard Example Mining", arXiv:1604.03540; SSD's rule of 3 negatives per
positive, Liu et al. 2016, arXiv:1512.02325). See ``MATH.md``, section "OHEM".

The ranking
    Negatives are ranked by their current cross-entropy loss, hardest first. For the binary
    cross-entropy of a negative, ``log1p(exp(x))`` is strictly increasing in the margin ``x``, so the
    kernels rank by the margin itself (exact, and no rounding of the loss can merge two margins);
    ``-0.0`` and ``+0.0`` are the same margin. The multi-class variant ranks background rows by their
    computed loss ``-log p_background``. Ties (every negative ties at a constant start) are broken by
    a caller-supplied random key per row, smaller key first, and rows equal in both (repeated keys) by
    row index. The ranking is therefore the order of ``np.lexsort((row, tie_keys, -score))``.

The kept set
    Unweighted: the first ``k = min(n_neg, ceil(ratio * n_pos))`` negatives of the ranking, with
    ``ratio * n_pos`` evaluated in float64. Weighted: the shortest prefix of the ranking whose total
    weight reaches ``ratio * W_pos`` (all of them when the negatives weigh less). Negatives of weight 0
    carry nothing and are never kept (they are not part of the ranking). Every positive is kept,
    whatever its weight. No positives (or ``W_pos = 0``): no negative is kept.

The selection is a radix select, O(n), no sort: the ranking key is the triple
(order-preserving integer image of the score, tie key, row index); a level takes the candidates'
minimum and maximum of the current component, histograms the digit ``(key - min) >> shift`` into
2**11 buckets, walks the buckets in ranking order to the one where the count (or weight) reaches
the target, and keeps only that bucket's rows as the next level's candidates; a component on which
all candidates agree is skipped. Levels over many rows run over fixed-size chunks in parallel, with
partial histograms added in chunk order, so the kept set and the returned weight are bit-identical
whatever the number of numba threads. A last parallel pass compares every row with the boundary
row's key.

The tie keys must be drawn once per training data (not per round) from a seeded generator, e.g.
:func:`tie_keys`; redrawing them every round would make the order at a tie random across rounds.
"""

import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from boostloss._kernels import CHUNK, HESSIAN_FLOOR, _gradient_norm_parts, _logistic_parts

__all__ = [
    "ohem_select",
    "ohem_grad_hess",
    "ohem_select_softmax",
    "ohem_softmax_grad_hess",
    "softmax_negative_loss",
    "ohem_best_constant",
    "tie_keys",
]

_DIGIT_BITS = 11
_BUCKETS = 1 << _DIGIT_BITS
_INT64_MIN = np.int64(-(1 << 63))
_LOW63 = np.int64((1 << 63) - 1)

#: Components of the ranking key, in lexicographic order.
_SCORE, _TIE, _ROW = 0, 1, 2


# --------------------------------------------------------------------------------------------
# Ranking keys: int64 images whose signed order is the ranking order (smaller = harder)
# --------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _score_rank(s):
    """Order-reversing int64 image of a score (higher score = harder = smaller image).

    The float64 bit pattern read as int64 orders like the value for non-negative floats; for
    negative ones the 63 low bits are flipped. ``+ 0.0`` turns ``-0.0`` into ``+0.0``. Bitwise NOT
    reverses the order without overflow.
    """
    b = np.float64(np.float64(s) + 0.0).view(np.int64)
    if b < 0:
        b ^= _LOW63
    return ~b


def _tie_rank(t):  # pragma: no cover - replaced by the overload below inside jitted code
    raise NotImplementedError


@overload(_tie_rank, inline="always")
def _tie_rank_overload(t):
    """int64 image of a tie key whose signed order is the key's own order (uint64 or int64)."""
    if isinstance(t, types.Integer) and not t.signed:
        return lambda t: np.int64(t) ^ _INT64_MIN
    return lambda t: np.int64(t)


@njit(cache=True, inline="always")
def _component(domain, score, ties, i):
    if domain == _SCORE:
        return _score_rank(score[i])
    if domain == _TIE:
        return _tie_rank(ties[i])
    return np.int64(i)


@njit(cache=True, inline="always")
def _digit(key, low, shift):
    """``(key - low) >> shift`` as unsigned 64-bit arithmetic (the difference may exceed 2**63)."""
    d = key - low
    if shift == 0:
        return d
    return (d >> shift) & ((np.int64(1) << (64 - shift)) - 1)


@njit(cache=True)
def _shift_for(low, high):
    """Smallest shift that maps the unsigned span ``high - low`` into ``_BUCKETS`` digits."""
    span = high - low
    if span < 0:
        bits = 64
    else:
        bits = 0
        while span > 0:
            bits += 1
            span >>= 1
    return max(0, bits - _DIGIT_BITS)


@njit(cache=True, inline="always")
def _is_candidate(y, w, weighted, negative_label, i):
    return y[i] == negative_label and (not weighted or w[i] > 0.0)


# --------------------------------------------------------------------------------------------
# The selection engine, shared by the binary and the softmax kernels
# --------------------------------------------------------------------------------------------


@njit(cache=True, parallel=True)
def _census(y, score, w, weighted, negative_label, ties):
    """Per-chunk statistics, combined in chunk order.

    Returns ``(n_pos, w_pos, n_cand, w_cand, lows, highs)``: positives (rows not of the negative
    label) and their weight, candidate negatives (weight > 0) and their weight, and the candidates'
    minimum and maximum of the score and tie components (``lows``/``highs`` of length 2).
    """
    n = y.shape[0]
    n_chunks = max(1, (n + CHUNK - 1) // CHUNK)
    counts = np.empty((n_chunks, 2), dtype=np.int64)
    sums = np.empty((n_chunks, 2))
    lows = np.empty((n_chunks, 2), dtype=np.int64)
    highs = np.empty((n_chunks, 2), dtype=np.int64)
    for c in prange(n_chunks):
        start = c * CHUNK
        stop = min(start + CHUNK, n)
        n_pos = 0
        w_pos = 0.0
        n_cand = 0
        w_cand = 0.0
        lo_s = np.int64(_LOW63)
        hi_s = np.int64(_INT64_MIN)
        lo_t = np.int64(_LOW63)
        hi_t = np.int64(_INT64_MIN)
        for i in range(start, stop):
            wi = w[i] if weighted else 1.0
            if y[i] != negative_label:
                n_pos += 1
                w_pos += wi
            elif wi > 0.0:
                n_cand += 1
                w_cand += wi
                ks = _score_rank(score[i])
                kt = _tie_rank(ties[i])
                lo_s = min(lo_s, ks)
                hi_s = max(hi_s, ks)
                lo_t = min(lo_t, kt)
                hi_t = max(hi_t, kt)
        counts[c, 0] = n_pos
        counts[c, 1] = n_cand
        sums[c, 0] = w_pos
        sums[c, 1] = w_cand
        lows[c, 0] = lo_s
        lows[c, 1] = lo_t
        highs[c, 0] = hi_s
        highs[c, 1] = hi_t
    n_pos = 0
    n_cand = 0
    w_pos = 0.0
    w_cand = 0.0
    low = np.empty(2, dtype=np.int64)
    high = np.empty(2, dtype=np.int64)
    low[:] = _LOW63
    high[:] = _INT64_MIN
    for c in range(n_chunks):
        n_pos += counts[c, 0]
        n_cand += counts[c, 1]
        w_pos += sums[c, 0]
        w_cand += sums[c, 1]
        for d in range(2):
            low[d] = min(low[d], lows[c, d])
            high[d] = max(high[d], highs[c, d])
    return n_pos, w_pos, n_cand, w_cand, low, high


@njit(cache=True, parallel=True)
def _level(y, score, w, weighted, negative_label, ties, cand, m, all_rows, domain, low, shift,
           counts_out, weights_out):
    """Histogram of one level: digit counts (and weights) per fixed chunk of the candidates.

    ``all_rows``: the candidates are the rows ``0..m-1`` that pass :func:`_is_candidate`;
    otherwise they are ``cand[:m]``. ``counts_out``/``weights_out`` have shape (n_chunks, _BUCKETS).
    """
    n_chunks = counts_out.shape[0]
    for c in prange(n_chunks):
        start = c * CHUNK
        stop = min(start + CHUNK, m)
        for b in range(_BUCKETS):
            counts_out[c, b] = 0
            weights_out[c, b] = 0.0
        for j in range(start, stop):
            if all_rows:
                i = j
                if not _is_candidate(y, w, weighted, negative_label, i):
                    continue
            else:
                i = cand[j]
            b = _digit(_component(domain, score, ties, i), low, shift)
            counts_out[c, b] += 1
            if weighted:
                weights_out[c, b] += w[i]


@njit(cache=True, parallel=True)
def _gather(y, score, w, weighted, negative_label, ties, cand, m, all_rows, domain, low, shift,
            bucket, chunk_counts, cand_out):
    """Rows of ``bucket`` into ``cand_out``, in row order (each chunk writes its own segment)."""
    n_chunks = chunk_counts.shape[0]
    offsets = np.empty(n_chunks + 1, dtype=np.int64)
    offsets[0] = 0
    for c in range(n_chunks):
        offsets[c + 1] = offsets[c] + chunk_counts[c, bucket]
    for c in prange(n_chunks):
        if chunk_counts[c, bucket] == 0:
            continue
        pos = offsets[c]
        start = c * CHUNK
        stop = min(start + CHUNK, m)
        for j in range(start, stop):
            if all_rows:
                i = j
                if not _is_candidate(y, w, weighted, negative_label, i):
                    continue
            else:
                i = cand[j]
            if _digit(_component(domain, score, ties, i), low, shift) == bucket:
                cand_out[pos] = i
                pos += 1
    return offsets[n_chunks]


@njit(cache=True)
def _candidate_range(score, ties, cand, m, domain):
    low = np.int64(_LOW63)
    high = np.int64(_INT64_MIN)
    for j in range(m):
        k = _component(domain, score, ties, cand[j])
        low = min(low, k)
        high = max(high, k)
    return low, high


@njit(cache=True)
def _boundary_row(y, score, w, weighted, negative_label, ties, n_cand, census_low, census_high,
                  need_count, need_weight):
    """Row index of the last kept negative of the ranking (there is at least one to keep).

    Unweighted (``need_count`` > 0): the ``need_count``-th candidate of the ranking. Weighted: the
    first candidate at which the running weight reaches ``need_weight`` (the last candidate if the
    rounding of the partial sums leaves it short).
    """
    n = y.shape[0]
    cand = np.empty(0, dtype=np.int64)
    m = n
    all_rows = True
    domain = _SCORE
    low = census_low[0]
    high = census_high[0]
    if low == high:
        domain = _TIE
        low = census_low[1]
        high = census_high[1]
        if low == high:
            domain = _ROW
            low, high = 0, n - 1
    acc_count = 0
    acc_weight = 0.0
    while True:
        if domain == _ROW and not all_rows and m == 1:
            return cand[0]
        shift = _shift_for(low, high)
        n_chunks = max(1, (m + CHUNK - 1) // CHUNK)
        counts = np.empty((n_chunks, _BUCKETS), dtype=np.int64)
        weights = np.empty((n_chunks, _BUCKETS))
        _level(y, score, w, weighted, negative_label, ties, cand, m, all_rows, domain, low, shift,
               counts, weights)
        # Walk the buckets in ranking order to the one where the target is reached.
        top = _digit(high, low, shift)
        bucket = top
        for b in range(top + 1):
            bc = 0
            bw = 0.0
            for c in range(n_chunks):
                bc += counts[c, b]
                if weighted:
                    bw += weights[c, b]
            if bc == 0:
                continue
            if weighted:
                if acc_weight + bw >= need_weight:
                    bucket = b
                    break
                acc_weight += bw
            else:
                if acc_count + bc >= need_count:
                    bucket = b
                    break
                acc_count += bc
            # Weighted sums that fall short by rounding end in the last non-empty bucket.
        size = 0
        for c in range(n_chunks):
            size += counts[c, bucket]
        next_cand = np.empty(size, dtype=np.int64)
        _gather(y, score, w, weighted, negative_label, ties, cand, m, all_rows, domain, low, shift,
                bucket, counts, next_cand)
        cand = next_cand
        m = size
        all_rows = False
        if m == 1:
            return cand[0]
        # The next component on which the remaining candidates differ.
        low, high = _candidate_range(score, ties, cand, m, domain)
        while low == high:
            domain += 1
            if domain == _ROW:
                low, high = cand[0], cand[m - 1]
            else:
                low, high = _candidate_range(score, ties, cand, m, domain)


@njit(cache=True, parallel=True)
def _mark(y, score, w, weighted, negative_label, ties, mode, b_score, b_tie, b_row, keep_out):
    """Write ``keep_out`` and return the kept negatives' count and weight (chunk-ordered sums).

    ``mode``: 0 keeps no negative, 1 keeps every candidate, 2 keeps the candidates whose ranking key
    is at most the boundary's ``(b_score, b_tie, b_row)``.
    """
    n = y.shape[0]
    n_chunks = max(1, (n + CHUNK - 1) // CHUNK)
    counts = np.empty(n_chunks, dtype=np.int64)
    sums = np.empty(n_chunks)
    for c in prange(n_chunks):
        start = c * CHUNK
        stop = min(start + CHUNK, n)
        kept = 0
        kept_w = 0.0
        for i in range(start, stop):
            keep = False
            if y[i] != negative_label:
                keep = True
            elif mode != 0 and (not weighted or w[i] > 0.0):
                if mode == 1:
                    keep = True
                else:
                    ks = _score_rank(score[i])
                    if ks < b_score:
                        keep = True
                    elif ks == b_score:
                        kt = _tie_rank(ties[i])
                        keep = kt < b_tie or (kt == b_tie and i <= b_row)
                if keep:
                    kept += 1
                    kept_w += w[i] if weighted else 1.0
            keep_out[i] = 1 if keep else 0
        counts[c] = kept
        sums[c] = kept_w
    n_kept = 0
    w_kept = 0.0
    for c in range(n_chunks):
        n_kept += counts[c]
        w_kept += sums[c]
    return n_kept, w_kept


@njit(cache=True)
def _select(y, score, w, negative_label, ratio, ties, keep_out):
    weighted = w.shape[0] > 0
    n_pos, w_pos, n_cand, w_cand, low, high = _census(y, score, w, weighted, negative_label, ties)
    need_count = 0
    need_weight = 0.0
    if weighted:
        need_weight = ratio * w_pos
        if need_weight <= 0.0 or n_cand == 0:
            mode = 0
        elif need_weight >= w_cand:
            mode = 1
        else:
            mode = 2
    else:
        need = math.ceil(ratio * n_pos)
        if need <= 0 or n_cand == 0:
            mode = 0
        elif need >= n_cand:
            mode = 1
        else:
            mode = 2
            need_count = np.int64(need)
    b_score = np.int64(0)
    b_tie = np.int64(0)
    b_row = np.int64(0)
    if mode == 2:
        b_row = _boundary_row(y, score, w, weighted, negative_label, ties, n_cand, low, high,
                              need_count, need_weight)
        b_score = _score_rank(score[b_row])
        b_tie = _tie_rank(ties[b_row])
    return _mark(y, score, w, weighted, negative_label, ties, mode, b_score, b_tie, b_row, keep_out)


# --------------------------------------------------------------------------------------------
# Binary OHEM
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def ohem_select(y, x, w, ratio, tie_keys, keep_out):
    """Keep every positive and the hardest negatives; returns ``(n_kept_neg, kept_neg_weight)``.

    Parameters
    ----------
    y : float64 array (n,)
        Labels in {0, 1}.
    x : float32 or float64 array (n,)
        Current margins. A negative's cross-entropy ``log1p(exp(x))`` increases with ``x``, so the
        hardest negatives are those with the highest margins.
    w : float64 array (n,) or empty
        Sample weights (empty: all ones).
    ratio : float
        Negatives kept per positive: ``k = min(n_neg, ceil(ratio * n_pos))``, or weighted the
        shortest prefix of the ranking whose weight reaches ``ratio * W_pos``.
    tie_keys : uint64 or int64 array (n,)
        Random keys, drawn once per training data; at equal margins the smaller key ranks first.
    keep_out : uint8 or bool array (n,)
        Set to 1 for kept rows, 0 for the others.

    The selection is O(n) (radix select) and bit-identical across thread counts; see the module
    docstring for the ranking and the treatment of zero weights.
    """
    return _select(y, x, w, 0.0, ratio, tie_keys, keep_out)


@njit(cache=True, parallel=True)
def ohem_grad_hess(y, x, w, keep, grad_out, hess_out):
    """Cross-entropy derivatives of the kept rows, exactly 0 for the others.

    Kept rows: ``grad = w (p - y)``, ``hess = w max(p (1 - p), HESSIAN_FLOOR)`` with
    ``p = sigmoid(x)``; dropped rows: ``grad = hess = +0.0``.
    """
    n = x.shape[0]
    weighted = w.shape[0] > 0
    for i in prange(n):
        diff, hess, _, _ = _gradient_norm_parts(np.float64(x[i]), y[i])
        if not hess > HESSIAN_FLOOR:
            hess = HESSIAN_FLOOR
        if weighted:
            diff *= w[i]
            hess *= w[i]
        kept = keep[i] != 0
        grad_out[i] = diff if kept else 0.0
        hess_out[i] = hess if kept else 0.0


# --------------------------------------------------------------------------------------------
# Multi-class OHEM: the rows of a background class play the negatives
# --------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _log_sum_exp_row(x, i):
    k_classes = x.shape[1]
    top = np.float64(x[i, 0])
    for k in range(1, k_classes):
        top = max(top, np.float64(x[i, k]))
    s = 0.0
    for k in range(k_classes):
        s += math.exp(np.float64(x[i, k]) - top)
    return top, s


@njit(cache=True, parallel=True)
def softmax_negative_loss(x, negative_class, out):
    """``-log p_negative = LSE(x_i) - x_i[negative_class]`` of every row, into ``out``.

    Stable: ``(max_k x_ik - x_i,neg) + log(sum_k exp(x_ik - max))``, both terms >= 0 (the sum is at
    least 1), so the loss is never negative.
    """
    for i in prange(x.shape[0]):
        top, s = _log_sum_exp_row(x, i)
        out[i] = (top - np.float64(x[i, negative_class])) + math.log(s)


@njit(cache=True)
def ohem_select_softmax(y, x, w, negative_class, ratio, tie_keys, keep_out):
    """Multi-class OHEM selection; returns ``(n_kept_neg, kept_neg_weight)``.

    ``y``: float64 class labels in 0..K-1; ``x``: (n, K) margins. Rows of ``negative_class`` are the
    negatives, ranked by ``-log p_negative`` (highest first, ties by ``tie_keys``, then row); rows of
    every other class are kept. The count rule is that of :func:`ohem_select` with ``n_pos`` the
    number (weight) of non-background rows.
    """
    loss = np.empty(x.shape[0])
    softmax_negative_loss(x, negative_class, loss)
    return _select(y, loss, w, np.float64(negative_class), ratio, tie_keys, keep_out)


@njit(cache=True, parallel=True)
def ohem_softmax_grad_hess(y, x, w, keep, grad_out, hess_out):
    """Softmax cross-entropy derivatives of the kept rows, exactly 0 for the others.

    Kept rows: ``grad_k = w (p_k - [k == y])``, ``hess_k = w max(p_k (1 - p_k), HESSIAN_FLOOR)`` with
    ``p = softmax(x_i)`` (the diagonal; the framework's own Hessian factor is the adapter's business).
    ``1 - p_k`` is evaluated as ``(s - e_k) / s`` so it does not cancel for a dominant class.
    """
    n = x.shape[0]
    k_classes = x.shape[1]
    weighted = w.shape[0] > 0
    for i in prange(n):
        if keep[i] == 0:
            for k in range(k_classes):
                grad_out[i, k] = 0.0
                hess_out[i, k] = 0.0
            continue
        top, s = _log_sum_exp_row(x, i)
        wi = w[i] if weighted else 1.0
        label = int(y[i])
        for k in range(k_classes):
            e = math.exp(np.float64(x[i, k]) - top)
            p = e / s
            q = (s - e) / s
            g = p - 1.0 if k == label else p
            h = p * q
            if not h > HESSIAN_FLOOR:
                h = HESSIAN_FLOOR
            grad_out[i, k] = wi * g
            hess_out[i, k] = wi * h


# --------------------------------------------------------------------------------------------
# Pure-Python helpers
# --------------------------------------------------------------------------------------------


def ohem_best_constant(positive_weight, kept_negative_weight):
    """The cross-entropy minimiser over the kept set at a constant start: ``log(W+ / W-kept)``.

    At a constant start every negative ties, so the kept set is ``ceil(ratio * n+)`` negatives
    (unweighted), and the constant margin ``s`` with ``sum_kept (sigmoid(s) - y) = 0`` is
    ``log(n+ / k) = -log(ratio)`` when ``ratio * n+`` is a whole number not above ``n-``. Weighted:
    pass the positives' total weight and the kept negatives' weight returned by :func:`ohem_select`
    called on constant margins. The kept set does not change at the new constant (all still tie).
    """
    if not (positive_weight > 0.0 and math.isfinite(positive_weight)):
        raise ValueError(f"positive_weight must be a positive finite number, got {positive_weight!r}")
    if not (kept_negative_weight > 0.0 and math.isfinite(kept_negative_weight)):
        raise ValueError(
            f"kept_negative_weight must be a positive finite number (no negative is kept otherwise), "
            f"got {kept_negative_weight!r}"
        )
    return math.log(positive_weight) - math.log(kept_negative_weight)


def tie_keys(n, random_state):
    """``n`` random uint64 tie keys from ``Generator(PCG64(random_state))``: draw once per data."""
    return np.random.Generator(np.random.PCG64(random_state)).integers(
        0, np.iinfo(np.uint64).max, size=n, dtype=np.uint64, endpoint=True
    )
