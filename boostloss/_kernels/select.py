"""Numba kernels of OHEM (online hard example mining): the per-round selection and its derivatives.

Every boosting round OHEM keeps all positives and only the hardest negatives; the other rows get
gradient 0 and Hessian 0 for that round (Shrivastava, Gupta, Girshick 2016, "Training Region-based
Object Detectors with Online Hard Example Mining", arXiv:1604.03540; SSD's rule of 3 negatives per
positive, Liu et al. 2016, arXiv:1512.02325). See docs/math.md, section "OHEM".

The ranking
    Negatives are ranked by their current cross-entropy loss, hardest first. For the binary
    cross-entropy of a negative, ``log1p(exp(x))`` is strictly increasing in the margin ``x``, so
    the kernels rank by the margin itself (exact, and no rounding of the loss can merge two
    margins); ``-0.0`` and ``+0.0`` are the same margin. The multi-class variant ranks background
    rows by their computed loss ``-log p_background``. Ties (every negative ties at a constant
    start) are broken by a caller-supplied random key per row, smaller key first, and rows equal in
    both (repeated keys) by row index. The ranking is therefore the order of
    ``np.lexsort((row, tie_keys, -score))``.

The kept set
    Unweighted: the first ``k = min(n_neg, ceil(ratio * n_pos))`` negatives of the ranking, with
    ``ratio * n_pos`` evaluated in float64. Weighted: the shortest prefix of the ranking whose total
    weight reaches ``ratio * W_pos`` (all of them when the negatives weigh less). Negatives of
    weight 0 carry nothing and are never kept (they are not part of the ranking). Every positive is
    kept, whatever its weight. No positives (or ``W_pos = 0``): no negative is kept.

The selection is a radix select, O(n), no sort: the ranking key is the pair (score, tie key), and
rows equal in both are taken in row order. A level takes the candidates' range of the current
component and splits it into 2**11 buckets (scores linearly in value, tie keys by their top bits
above the common prefix), walks the buckets in ranking order to the one where the count (or
weight) reaches the target, keeps the rows of the buckets before it and takes that bucket's rows as
the next level's candidates; a component on which all candidates agree is skipped. The search ends
when the boundary bucket is kept whole (it holds one row, or, unweighted, exactly the rows still
needed), or when its rows tie on both components (then the first ones in row order are kept). The
passes over all rows are three: a census (counts, weights, score range), the first level's
histogram, and one pass that marks the rows of the buckets before the boundary bucket and gathers
the rows of that bucket; the later levels only see those few rows. The levels are driven from
Python (:class:`_Selection`), the passes are numba kernels. Passes over many rows run over
fixed-size chunks in parallel, their loops free of branches on the (random) class of a row, and
partial counts and sums are added in chunk order, so the kept set and the returned weight are
bit-identical whatever the number of numba threads.

Over several workers
    With a worker ``group`` (a distributed XGBoost training, ``_frameworks.collective``) every
    number a decision needs is reduced over the workers before it is used: the census (counts and
    weights of both classes), each level's key range (min / max) and its bucket totals, and, at a
    tie on both components, the number (weight) of tied rows of the workers of lower rank. Every
    worker therefore walks the same global histograms, takes the same decisions and makes the same
    collective calls (a worker without rows included), and keeps its own rows of the one global
    ranking: the kept count is ``min(n_neg, ceil(ratio * n_pos))`` of the global counts (weighted:
    the shortest prefix of the global ranking reaching ``ratio * W_pos``). Rows tied on score
    and tie key across workers are taken in (worker rank, row) order. If each worker's tie keys
    are those of one draw over all rows in rank order (``tie_keys(n, seed, offset)``, as the
    adapters draw them), the kept set is exactly that of one process holding the workers' rows
    concatenated in rank order, ties included. A typical round costs 2 + 2 per level reductions
    (of 5, 2 and 2048 or 4096 numbers).

The tie keys must be drawn once per training data (not per round) from a seeded generator, e.g.
:func:`tie_keys`; redrawing them every round would make the order at a tie random across rounds.
"""

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from .binary import CHUNK
from .math import inlined
from .softmax import softmax_ce_loss_and_norm
from .threads import row_kernel, rows_of, run_spans

__all__ = [
    "select_rows",
    "ohem_select",
    "ohem_select_softmax",
    "softmax_negative_loss",
    "ohem_best_constant",
    "tie_keys",
    "compile_radix_select",
]

_DIGIT_BITS = 11
_BUCKETS = 1 << _DIGIT_BITS
_INT64_MIN = np.int64(-(1 << 63))
_LOW63 = np.int64((1 << 63) - 1)

#: Components of the ranking key, in lexicographic order (rows equal in both: row order).
_SCORE, _TIE, _ROW = 0, 1, 2


# --------------------------------------------------------------------------------------------
# Ranking keys: int64 images whose signed order is the ranking order (smaller = harder)
# --------------------------------------------------------------------------------------------


@inlined
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
    if isinstance(t, types.Integer) and not t.signed:  # type: ignore[attr-defined]
        return lambda t: np.int64(t) ^ _INT64_MIN
    return lambda t: np.int64(t)


@inlined
def _rank_to_score(r):
    """Inverse of :func:`_score_rank` (up to the sign of zero)."""
    b = ~r
    if b < 0:
        b ^= _LOW63
    return np.int64(b).view(np.float64)


@inlined
def _component(domain, score, ties, i):
    if domain == _SCORE:
        return _score_rank(score[i])
    return _tie_rank(ties[i])


@inlined
def _digit(key, low, shift):
    """``(key - low) >> shift`` as unsigned 64-bit arithmetic (the difference may exceed 2**63)."""
    d = key - low
    if shift == 0:
        return d
    return (d >> shift) & ((np.int64(1) << (64 - shift)) - 1)


@inlined
def _float_bucket(s, plan):
    """Linear value bucket, clamped in floating point first: rows that are not candidates (the
    positives, in branch-free loops) may lie outside the candidates' range."""
    d = (plan[3] - np.float64(s)) * plan[4]
    return np.int64(min(max(d, 0.0), _BUCKETS - 1.0))


@inlined
def _bucket(plan, score, ties, i):
    """Bucket of row ``i`` at a level of digit plan ``plan`` (:func:`_plan`); buckets are in
    ranking order (bucket 0 holds the hardest).

    Scores are bucketed linearly in value, ``floor((top_score - s) * scale)``: the float bit
    patterns are logarithmic, so their top bits would put most margins of a typical round into a
    handful of buckets. Subtracting from a constant and scaling by a positive one are monotone in
    floating point, so a lower bucket never holds an easier row. ``scale = 0`` marks a level that
    uses the integer digits (tie keys, rows, or a score range too wide or too narrow for floats).
    Rows that are not candidates get some bucket in range (branch-free loops ignore it).
    """
    domain, low, shift, _, scale = plan
    if domain == _SCORE and scale > 0.0:
        return _float_bucket(score[i], plan)
    # Candidates' digits are below _BUCKETS already; the mask keeps other rows' in range.
    return _digit(_component(domain, score, ties, i), low, shift) & (_BUCKETS - 1)


@njit(cache=True)
def _plan(domain, low, high):
    """The digit plan ``(domain, low, shift, top_score, scale)`` of a level over the keys
    ``low..high`` of component ``domain``: one tuple of scalars that the passes take as one."""
    if domain == _SCORE:
        top_score = _rank_to_score(low)
        span = top_score - _rank_to_score(high)
        if span > 0.0 and math.isfinite(span):
            scale = _BUCKETS / span
            if scale > 0.0 and math.isfinite(scale):
                return domain, low, 0, top_score, scale
    span = high - low
    if span < 0:
        bits = 64
    else:
        bits = 0
        while span > 0:
            bits += 1
            span >>= 1
    return domain, low, max(0, bits - _DIGIT_BITS), 0.0, 0.0


@inlined
def _is_candidate(y, w, weighted, negative_label, i):
    return y[i] == negative_label and (not weighted or w[i] > 0.0)


# --------------------------------------------------------------------------------------------
# The selection engine, shared by the binary and the softmax kernels
# --------------------------------------------------------------------------------------------


def _n_chunks(n):
    return max(1, (n + CHUNK - 1) // CHUNK)


def _on_chunks(kernel, args, n_chunks):
    """``kernel(*args, first, last)`` over the chunks ``[first, last)`` of one range per thread
    (:func:`~boostloss._kernels.threads.run_spans`): each chunk's partial results go to its own
    row of the output arrays, which the caller then adds in chunk order."""
    run_spans(kernel, args, n_chunks, 1)


def _in_chunk_order(values):
    """The sum of ``values`` added one after another from the first (as a serial loop does)."""
    total = 0.0
    for v in values.tolist():
        total += v
    return total


@row_kernel
def _census_chunks(y, score, w, weighted, negative_label, counts, sums, ranks, first, last):
    """Per-chunk statistics of the chunks ``[first, last)`` (see :func:`_census`)."""
    n = y.shape[0]
    for c in range(first, last):
        start = c * CHUNK
        stop = min(start + CHUNK, n)
        n_pos = 0
        w_pos = 0.0
        n_cand = 0
        w_cand = 0.0
        low = np.int64(_LOW63)
        high = np.int64(_INT64_MIN)
        # Branch-free (the class of a row is random); unweighted, no floating-point sum at all
        # (a running float sum is a chain of dependent additions that nothing can reorder).
        if weighted:
            for i in range(start, stop):
                wi = w[i]
                negative = y[i] == negative_label
                candidate = negative & (wi > 0.0)
                n_pos += 0 if negative else 1
                w_pos += 0.0 if negative else wi
                n_cand += 1 if candidate else 0
                w_cand += wi if candidate else 0.0
                k = _score_rank(score[i])
                low = min(low, k if candidate else _LOW63)
                high = max(high, k if candidate else _INT64_MIN)
        else:
            for i in range(start, stop):
                candidate = y[i] == negative_label
                n_cand += 1 if candidate else 0
                k = _score_rank(score[i])
                low = min(low, k if candidate else _LOW63)
                high = max(high, k if candidate else _INT64_MIN)
            n_pos = (stop - start) - n_cand
            w_pos = float(n_pos)
            w_cand = float(n_cand)
        counts[c, 0] = n_pos
        counts[c, 1] = n_cand
        sums[c, 0] = w_pos
        sums[c, 1] = w_cand
        ranks[c, 0] = low
        ranks[c, 1] = high


def _census(y, score, w, weighted, negative_label):
    """Per-chunk statistics, combined in chunk order.

    Returns ``(n_pos, w_pos, n_cand, w_cand, low, high)``: positives (rows not of the negative
    label) and their weight, candidate negatives (weight > 0) and their weight, and the candidates'
    smallest and largest score rank.
    """
    n_chunks = _n_chunks(y.shape[0])
    counts = np.empty((n_chunks, 2), dtype=np.int64)
    sums = np.empty((n_chunks, 2))
    ranks = np.empty((n_chunks, 2), dtype=np.int64)
    args = (y, score, w, weighted, negative_label, counts, sums, ranks)
    _on_chunks(_census_chunks, args, n_chunks)
    n_pos, n_cand = (int(v) for v in counts.sum(axis=0))
    w_pos, w_cand = _in_chunk_order(sums[:, 0]), _in_chunk_order(sums[:, 1])
    return n_pos, w_pos, n_cand, w_cand, int(ranks[:, 0].min()), int(ranks[:, 1].max())


@row_kernel
def _range_chunks(y, score, w, weighted, negative_label, ties, domain, ranks, first, last):
    """Smallest and largest rank of one key component over the candidates of each chunk."""
    for c in range(first, last):
        ranks[c, 0] = _LOW63
        ranks[c, 1] = _INT64_MIN
        for i in range(c * CHUNK, min(c * CHUNK + CHUNK, y.shape[0])):
            if _is_candidate(y, w, weighted, negative_label, i):
                k = _component(domain, score, ties, i)
                ranks[c, 0] = min(ranks[c, 0], k)
                ranks[c, 1] = max(ranks[c, 1], k)


def _rows_range(y, score, w, weighted, negative_label, ties, domain):
    """Smallest and largest rank of one key component over the candidate negatives of all rows."""
    n_chunks = _n_chunks(y.shape[0])
    ranks = np.empty((n_chunks, 2), dtype=np.int64)
    args = (y, score, w, weighted, negative_label, ties, domain, ranks)
    _on_chunks(_range_chunks, args, n_chunks)
    return int(ranks[:, 0].min()), int(ranks[:, 1].max())


@njit(cache=True)
def _cand_range(score, ties, cand, domain):
    """Smallest and largest rank of one key component over the rows ``cand``."""
    low = np.int64(_LOW63)
    high = np.int64(_INT64_MIN)
    for j in range(cand.shape[0]):
        k = _component(domain, score, ties, cand[j])
        low = min(low, k)
        high = max(high, k)
    return low, high


@inlined
def _histogram_row(i, b, y, w, weighted, negative_label, counts, weights):
    if weighted:
        wi = w[i]
        candidate = (y[i] == negative_label) & (wi > 0.0)
        counts[b] += 1 if candidate else 0
        weights[b] += wi if candidate else 0.0
    else:
        counts[b] += 1 if y[i] == negative_label else 0


@inlined
def _rows_histogram_chunk(c, y, score, w, weighted, label, ties, plan, counts_out, weights_out):
    """Bucket counts (weights) of the candidate negatives among the rows of chunk ``c``.

    Branch-free in the row's class (which is random, so a branch would be mispredicted): every row
    gets a bucket and the others add 0 to it. The loop over scores in value buckets (the usual
    level) is written out on its own so that nothing else is evaluated per row.
    """
    start = c * CHUNK
    stop = min(start + CHUNK, y.shape[0])
    counts = counts_out[c]
    weights = weights_out[c]
    counts[:] = 0
    weights[:] = 0.0
    if plan[0] == _SCORE and plan[4] > 0.0:
        for i in range(start, stop):
            b = _float_bucket(score[i], plan)
            _histogram_row(i, b, y, w, weighted, label, counts, weights)
    else:
        for i in range(start, stop):
            b = _bucket(plan, score, ties, i)
            _histogram_row(i, b, y, w, weighted, label, counts, weights)


@row_kernel
def _rows_histograms(y, score, w, weighted, label, ties, plan, counts, weights, first, last):
    """First level: per-chunk bucket counts (weights) over all rows, shape (n_chunks, _BUCKETS)."""
    for c in range(first, last):
        _rows_histogram_chunk(c, y, score, w, weighted, label, ties, plan, counts, weights)


@inlined
def _split_row(i, b, y, w, weighted, negative_label, bucket, keep_out, cand_out, pos):
    negative = y[i] == negative_label
    candidate = negative & ((not weighted) or w[i] > 0.0)
    keep_out[i] = 1 if ((candidate & (b < bucket)) | (not negative)) else 0
    if candidate & (b == bucket):
        cand_out[pos] = i
        pos += 1
    return pos


# fmt: off
@row_kernel
def _mark_splits(y, score, w, weighted, label, ties, plan, bucket, offsets, keep_out, cand_out,
                 first, last):
    """Keep the positives and the rows of buckets before ``bucket``; gather ``bucket``'s rows.

    Each chunk writes its own segment of ``cand_out`` (from ``offsets``), so the gathered rows
    are in row order; they get ``keep_out = 0`` here.
    """
    for c in range(first, last):
        pos = offsets[c]
        stop = min(c * CHUNK + CHUNK, y.shape[0])
        if plan[0] == _SCORE and plan[4] > 0.0:
            for i in range(c * CHUNK, stop):
                b = _float_bucket(score[i], plan)
                pos = _split_row(i, b, y, w, weighted, label, bucket, keep_out, cand_out, pos)
        else:
            for i in range(c * CHUNK, stop):
                b = _bucket(plan, score, ties, i)
                pos = _split_row(i, b, y, w, weighted, label, bucket, keep_out, cand_out, pos)
# fmt: on


# The later levels: the same two passes over the rows ``cand`` only.
@inlined
def _cand_histogram_chunk(c, score, w, weighted, ties, cand, plan, counts, weights):
    """Bucket counts (weights) of the candidates of chunk ``c`` (as :func:`_rows_histogram`)."""
    counts[c, :] = 0
    weights[c, :] = 0.0
    for j in range(c * CHUNK, min(c * CHUNK + CHUNK, cand.shape[0])):
        b = _bucket(plan, score, ties, cand[j])
        counts[c, b] += 1
        weights[c, b] += w[cand[j]] if weighted else 0.0


@row_kernel
def _cand_histograms(score, w, weighted, ties, cand, plan, counts, weights, first, last):
    for c in range(first, last):
        _cand_histogram_chunk(c, score, w, weighted, ties, cand, plan, counts, weights)


@inlined
def _cand_split_chunk(c, score, ties, cand, plan, bucket, offsets, keep_out, cand_out):
    """Keep the candidates of chunk ``c`` in buckets before ``bucket``, gather those of ``bucket``
    (as :func:`_mark_split`)."""
    pos = offsets[c]
    for j in range(c * CHUNK, min(c * CHUNK + CHUNK, cand.shape[0])):
        i = cand[j]
        b = _bucket(plan, score, ties, i)
        if b < bucket:
            keep_out[i] = 1
        elif b == bucket:
            cand_out[pos] = i
            pos += 1


@row_kernel
def _cand_splits(score, ties, cand, plan, bucket, offsets, keep_out, cand_out, first, last):
    for c in range(first, last):
        _cand_split_chunk(c, score, ties, cand, plan, bucket, offsets, keep_out, cand_out)


@njit(cache=True)
def _totals(counts, weights, totals_out, weight_totals_out):
    """The buckets' totals over the chunks, added in chunk order."""
    totals_out[:] = 0
    weight_totals_out[:] = 0.0
    for c in range(counts.shape[0]):
        for b in range(_BUCKETS):
            totals_out[b] += counts[c, b]
            weight_totals_out[b] += weights[c, b]


@njit(cache=True)
def _offsets(counts, bucket, offsets_out):
    """Each chunk's first slot among the rows of ``bucket`` (``offsets_out[-1]``: their number)."""
    offsets_out[0] = 0
    for c in range(counts.shape[0]):
        offsets_out[c + 1] = offsets_out[c] + counts[c, bucket]


@njit(cache=True)
def _walk(counts, weights, weighted, acc_count, acc_weight, need_count, need_weight):
    """The bucket where the running count (weight) reaches the target, and the totals before it.

    Buckets are walked in ranking order. If weighted partial sums fall short by rounding, the last
    non-empty bucket is the answer.
    """
    last = -1
    last_count = acc_count
    last_weight = acc_weight
    for b in range(_BUCKETS):
        bc = counts[b]
        bw = weights[b]
        if bc == 0:
            continue
        if weighted:
            if acc_weight + bw >= need_weight:
                return b, acc_count, acc_weight
        elif acc_count + bc >= need_count:
            return b, acc_count, acc_weight
        last, last_count, last_weight = b, acc_count, acc_weight
        acc_count += bc
        acc_weight += bw
    return last, last_count, last_weight


@njit(cache=True)
def _keep_prefix(cand, w, weighted, count_left, weight_left, keep_out):
    """Keep the rows ``cand`` in their order until ``count_left`` rows (weighted: until their
    weight reaches ``weight_left``, the row that reaches it included); returns count and weight."""
    kept = 0
    kept_w = 0.0
    for j in range(cand.shape[0]):
        if (kept >= count_left) if not weighted else (kept_w >= weight_left):
            break
        keep_out[cand[j]] = 1
        kept += 1
        kept_w += w[cand[j]] if weighted else 1.0
    return kept, kept_w


@row_kernel
def _mark_all_or_none_rows(y, w, weighted, negative_label, keep_all, keep_out):
    """``keep_out`` when every candidate negative is kept (or none)."""
    for i in range(y.shape[0]):
        keep = (y[i] != negative_label) | (keep_all & ((not weighted) or w[i] > 0.0))
        keep_out[i] = 1 if keep else 0


_mark_all_or_none = rows_of(_mark_all_or_none_rows, 0, 1, 5)


class _Selection:
    """One selection: the rows, the targets, and where the walk over the ranking stands.

    ``group`` is None (one process) or the workers of a distributed training (see
    :func:`ohem_select`); every decision below is taken on global numbers, so every worker takes
    the same ones and makes the same collective calls.
    """

    def __init__(self, y, score, w, negative_label, ties, keep_out, group):
        self.y, self.score, self.w, self.ties, self.keep = y, score, w, ties, keep_out
        self.label = negative_label
        self.weighted = w.shape[0] > 0
        self.group = group
        self.acc_count, self.acc_weight = 0, 0.0

    def span(self, low, high):
        return (low, high) if self.group is None else self.group.span(low, high)

    def domain_range(self, domain, cand):
        if cand is None:
            low, high = _rows_range(
                self.y, self.score, self.w, self.weighted, self.label, self.ties, domain
            )
        else:
            low, high = _cand_range(self.score, self.ties, cand, domain)
        return self.span(low, high)

    def totals(self, counts, weights):
        """Bucket totals over the chunks (and the workers): int64 counts, float64 weights."""
        totals = np.empty(_BUCKETS, dtype=np.int64)
        weight_totals = np.empty(_BUCKETS)
        _totals(counts, weights, totals, weight_totals)
        if self.group is not None:
            parts = [totals.astype(np.float64)] + ([weight_totals] if self.weighted else [])
            summed = self.group.sum(np.concatenate(parts))
            totals = summed[:_BUCKETS].astype(np.int64)
            if self.weighted:
                weight_totals = np.ascontiguousarray(summed[_BUCKETS:])
        return totals, weight_totals

    def level(self, cand, domain, low, high, need_count, need_weight):
        """One radix level; returns the next candidates and the boundary bucket's totals."""
        plan = _plan(domain, low, high)
        n_chunks = _n_chunks(self.y.shape[0] if cand is None else cand.shape[0])
        counts = np.empty((n_chunks, _BUCKETS), dtype=np.int64)
        weights = np.empty((n_chunks, _BUCKETS))
        rows = (self.y, self.score, self.w, self.weighted, self.label, self.ties, plan)
        if cand is None:
            _on_chunks(_rows_histograms, (*rows, counts, weights), n_chunks)
        else:
            args = (self.score, self.w, self.weighted, self.ties, cand, plan, counts, weights)
            _on_chunks(_cand_histograms, args, n_chunks)
        totals, w_sums = self.totals(counts, weights)
        bucket, self.acc_count, self.acc_weight = _walk(
            totals, w_sums, self.weighted, self.acc_count, self.acc_weight, need_count, need_weight
        )
        offsets = np.empty(n_chunks + 1, dtype=np.int64)
        _offsets(counts, bucket, offsets)
        next_cand = np.empty(offsets[-1], dtype=np.int64)
        if cand is None:
            _on_chunks(_mark_splits, (*rows, bucket, offsets, self.keep, next_cand), n_chunks)
        else:
            args = (self.score, self.ties, cand, plan, bucket, offsets, self.keep, next_cand)
            _on_chunks(_cand_splits, args, n_chunks)
        return next_cand, int(totals[bucket]), float(w_sums[bucket])

    def tied_prefix(self, cand, need_count, need_weight):
        """The rows left that tie on score and tie key: kept in (worker rank, row) order."""
        if cand is None:  # every candidate ties: nothing was marked yet
            _mark_all_or_none(self.y, self.w, self.weighted, self.label, False, self.keep)
            candidate = self.y == self.label
            if self.weighted:
                candidate &= self.w > 0.0
            cand = np.flatnonzero(candidate)
        count_left = need_count - self.acc_count
        weight_left = need_weight - self.acc_weight
        mine = [cand.shape[0], float(self.w[cand].sum()) if self.weighted else 0.0]
        if self.group is not None:
            before = self.group.before(np.array(mine))
            count_left -= int(before[0])
            weight_left -= before[1]
        kept, kept_w = _keep_prefix(cand, self.w, self.weighted, count_left, weight_left, self.keep)
        if self.group is not None:
            kept, kept_w = self.group.sum(np.array([kept, kept_w], dtype=np.float64))
        return self.result(int(kept), float(kept_w))

    def result(self, count, weight):
        """``(n_kept, kept_weight)``: the rows before the boundary and ``count`` more."""
        n_kept = self.acc_count + count
        return n_kept, (self.acc_weight + weight) if self.weighted else float(n_kept)


#: Up to this many rows an unweighted selection in one process is numpy's sort of the ranking
#: (:func:`_select_sorted`): the same kept set and numbers, no kernel to compile (the radix
#: select's passes are about 4 s of compiling on a cold cache), and as fast or faster on so few
#: rows (400 rows: 16 against 28 us; 1,000: 33 against 32 us; 4,096: 318 against 58 us).
_NUMPY_SELECT_UPTO = 1024


def compile_radix_select(n_rows=None):
    """Compile (or load) the radix select's kernels when a selection over ``n_rows`` rows (None:
    any number) can reach them: for a warm-up before a training whose small trial runs are
    sorted by numpy. Selections that take each path: distinct margins, ties on the margin and on
    the tie keys, a constant start, weights, and none, some or all negatives kept."""
    if n_rows is not None and n_rows <= _NUMPY_SELECT_UPTO:
        return
    n = 600
    rng = np.random.default_rng(0)
    y = (np.arange(n) % 5 == 0).astype(np.float64)
    keys = tie_keys(n, 0)
    keep = np.empty(n, dtype=np.uint8)
    for score in (rng.normal(size=n), np.repeat(np.arange(6.0), n // 6), np.zeros(n)):
        for ties in (keys, keys % np.uint64(3)):
            for w in (np.empty(0), np.ones(n)):
                for ratio in (0.0, 2.0, 1e9):
                    _select(y, score, w, 0.0, ratio, ties, keep, sort_upto=-1)


def _select_sorted(y, score, negative_label, ratio, ties, keep_out):
    """:func:`_select` unweighted in one process, by sorting the ranking with numpy: the first
    ``ceil(ratio * n_pos)`` candidates of ``np.lexsort((row, tie_keys, -score))``. Integer counts
    only, so every returned number is the radix select's (whose unweighted sums are counts)."""
    negative = y == negative_label
    n_cand = int(np.count_nonzero(negative))
    n_pos = y.shape[0] - n_cand
    need = math.ceil(ratio * n_pos)
    np.logical_not(negative, out=keep_out, casting="unsafe")
    if need <= 0 or n_cand == 0:
        return 0, 0.0, n_pos, float(n_pos)
    rows = np.flatnonzero(negative)
    if need < n_cand:
        # -0.0 and +0.0 compare equal in the sort, as in the ranking; rows ascend, so a stable
        # sort keeps row order at a tie on both keys.
        rows = rows[np.lexsort((ties[rows], -score[rows]))[:need]]
    keep_out[rows] = 1
    return rows.shape[0], float(rows.shape[0]), n_pos, float(n_pos)


def _select(y, score, w, negative_label, ratio, ties, keep_out, group=None, sort_upto=None):
    """The OHEM selection of candidates ``y == negative_label`` ranked by ``score``, highest first.

    Returns ``(n_kept, kept_weight, n_pos, w_pos)`` over all workers. The radix levels are
    described in the module docstring; with a ``group`` every count, weight and key range that a
    decision needs is first reduced over the workers. Unweighted in one process, up to
    ``sort_upto`` rows (default :data:`_NUMPY_SELECT_UPTO`) the ranking is sorted instead.
    """
    upto = _NUMPY_SELECT_UPTO if sort_upto is None else sort_upto
    if group is None and not w.shape[0] and y.shape[0] <= upto:
        return _select_sorted(y, score, negative_label, ratio, ties, keep_out)
    s = _Selection(y, score, w, negative_label, ties, keep_out, group)
    n_pos, w_pos, n_cand, w_cand, low, high = _census(y, score, w, s.weighted, negative_label)
    if group is not None:
        # A worker without rows has no weights either: weighted is what any worker says.
        n_pos, w_pos, n_cand, w_cand, weighted = group.sum(
            np.array([n_pos, w_pos, n_cand, w_cand, s.weighted], dtype=np.float64)
        )
        n_pos, n_cand, s.weighted = int(n_pos), int(n_cand), weighted > 0.0
        low, high = group.span(low, high)
    need_count, need_weight = 0, 0.0
    if s.weighted:
        need_weight = ratio * w_pos
        keep_none, keep_all = need_weight <= 0.0 or n_cand == 0, need_weight >= w_cand
    else:
        need_count = math.ceil(ratio * n_pos)
        keep_none, keep_all = need_count <= 0 or n_cand == 0, need_count >= n_cand
    if keep_none or keep_all:
        _mark_all_or_none(y, w, s.weighted, negative_label, not keep_none, keep_out)
        return (0, 0.0, n_pos, w_pos) if keep_none else (n_cand, w_cand, n_pos, w_pos)

    domain, cand = _SCORE, None
    while True:
        while low == high:  # the candidates agree on this component: rank by the next one
            domain += 1
            if domain == _ROW:
                return s.tied_prefix(cand, need_count, need_weight) + (n_pos, w_pos)
            low, high = s.domain_range(domain, cand)
        cand, b_count, b_weight = s.level(cand, domain, low, high, need_count, need_weight)
        if b_count == 1 or (not s.weighted and s.acc_count + b_count == need_count):
            keep_out[cand] = 1  # the boundary bucket is kept whole
            return s.result(b_count, b_weight) + (n_pos, w_pos)
        low, high = s.domain_range(domain, cand)


# --------------------------------------------------------------------------------------------
# Binary OHEM
# --------------------------------------------------------------------------------------------


def select_rows(y, x, w, negative_class, ratio, tie_keys, keep_out, group=None):
    """The selection of any OHEM model; returns ``(n_kept_neg, kept_neg_weight, n_pos, w_pos)``.

    ``x`` of shape (n, K): :func:`ohem_select_softmax`. ``x`` of shape (n,), a binary model whose
    negatives are the rows of ``negative_class`` 0 (ranked by ``x``, :func:`ohem_select`) or 1
    (ranked by ``-x``: their cross-entropy ``log1p(exp(-x))``). ``x`` None: a constant start,
    where every negative ties and the tie keys alone rank them. ``n_pos`` and ``w_pos`` count the
    rows of the other classes (over all workers with a ``group``).
    """
    if x is None:
        score = np.zeros(y.shape[0])
    elif x.ndim == 2:
        score = np.empty(x.shape[0])
        softmax_negative_loss(x, negative_class, score)
    else:
        score = np.negative(x, dtype=np.float64) if negative_class == 1 else x
    return _select(y, score, w, float(negative_class), ratio, tie_keys, keep_out, group)


def ohem_select(y, x, w, ratio, tie_keys, keep_out, group=None):
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
    group : None or a worker group
        None: one process. In a training spread over workers, an object with ``sum(array)``
        (element-wise float64 sum over the workers), ``span(low, high)`` (the smallest ``low`` and
        largest ``high`` over the workers, int64) and ``before(array)`` (the sum of the arrays of
        the workers of lower rank), such as ``_frameworks.collective.WorkerGroup``. The selection is
        then global (module docstring, "Over several workers") and so are the returned numbers.

    The selection is O(n) (radix select) and bit-identical across thread counts; see the module
    docstring for the ranking and the treatment of zero weights.
    """
    return _select(y, x, w, 0.0, ratio, tie_keys, keep_out, group)[:2]


# --------------------------------------------------------------------------------------------
# Multi-class OHEM: the rows of a background class play the negatives
# --------------------------------------------------------------------------------------------


def softmax_negative_loss(x, negative_class, out):
    """``-log p_negative`` of every row of the (n, K) margins ``x``, into ``out``: the softmax
    cross-entropy of :mod:`.softmax` (never negative) with every label ``negative_class``."""
    n = x.shape[0]
    softmax_ce_loss_and_norm(np.full(n, float(negative_class)), x, out, np.empty(n))


def ohem_select_softmax(y, x, w, negative_class, ratio, tie_keys, keep_out, group=None):
    """Multi-class OHEM selection; returns ``(n_kept_neg, kept_neg_weight)``.

    ``y``: float64 class labels in 0..K-1; ``x``: (n, K) margins. Rows of ``negative_class`` are the
    negatives, ranked by ``-log p_negative`` (highest first, ties by ``tie_keys``, then row); rows
    of every other class are kept. The count rule is that of :func:`ohem_select` with ``n_pos`` the
    number (weight) of non-background rows; ``group`` as there.
    """
    return select_rows(y, x, w, negative_class, ratio, tie_keys, keep_out, group)[:2]


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
        raise ValueError(
            f"positive_weight must be a positive finite number, got {positive_weight!r}"
        )
    if not (kept_negative_weight > 0.0 and math.isfinite(kept_negative_weight)):
        raise ValueError(
            "kept_negative_weight must be a positive finite number (no negative is kept "
            "otherwise), "
            f"got {kept_negative_weight!r}"
        )
    return math.log(positive_weight) - math.log(kept_negative_weight)


def tie_keys(n, random_state, offset=0):
    """``n`` random uint64 tie keys from ``Generator(PCG64(random_state))``: draw once per data.

    ``offset``: skip that many keys first (``PCG64.advance``), so that the keys of rows
    ``offset .. offset + n - 1`` of a larger data set are those that one draw for all its rows
    gives them: each key is one 64-bit output of the generator.
    """
    bits = np.random.PCG64(random_state)
    if offset:
        bits.advance(int(offset))
    return np.random.Generator(bits).integers(
        0, np.iinfo(np.uint64).max, size=n, dtype=np.uint64, endpoint=True
    )
