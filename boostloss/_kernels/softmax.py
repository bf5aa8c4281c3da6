"""Numba kernels of the multi-class (softmax) focal loss and GHM-C.

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
   :func:`_block_first_sweep`), so that no ``exp`` is evaluated twice;
3. ``P = p_y``, ``q``, and where needed ``log P``, ``log q``, from ``a = z_y - mo`` and ``s``
   (:func:`_true_class_pq`: the binary pieces of ``t = a - log s``, without rounding ``t`` itself),
   then every output: ``r_k = e_k / s``, with ``1 - r_am = s_rest / s`` and
   ``1 - r_k = (s - e_k) / s`` otherwise (``s - e_k >= 1``: no cancellation), and
   ``1 - p_k = P + q (1 - r_k)``.

The gradient kernels go over blocks of ``ROW_BLOCK`` rows: a block's margins are copied into an
F-ordered float64 scratch block (read in the caller's order: C from XGBoost, F from LightGBM), the
math runs on it one class at a time, so that every inner loop runs over adjacent rows and compiles
to SIMD code (``exp`` and ``log1p`` are ``_kernels``' fdlibm versions written as plain arithmetic,
and the per-row math has selects, not branches), and the block's gradient and Hessian are copied
out in the caller's order. The scratch stays in the L1 cache. The loss kernels go the same way.

Inputs are validated by the caller (:mod:`boostloss.losses`): labels are float64 class indices
0..K-1, margins float32 or float64 of shape (n, K) in C or F order (read as float64, never copied
whole), sample weights float64 (n,) or empty (all ones), per-class weights float64 (K,) or empty.
Outputs are written into (n, K) arrays (float32 or float64, C or F order) that the caller owns.

Rows are independent and nothing here reduces over rows (GHM's histogram of the row bins is
``_kernels.bin_histogram``), so every result is bit-identical whatever the number of numba threads.

Reference: Lin, Goyal, Girshick, He, Dollar, "Focal Loss for Dense Object Detection", 2017,
arXiv:1708.02002 (the loss is written for K-way softmax there); Li, Liu, Wang, "Gradient Harmonized
Single-stage Detector", 2019, arXiv:1811.05181.
"""

import numpy as np
from numba import njit

from .binary import CHUNK, _bin_of_uniform, _edges_are_uniform, by_gamma
from .constants import HESSIAN_BOUNDED, HESSIAN_EXACT, HESSIAN_FLOOR, HESSIAN_GAUSS_NEWTON
from .math import (
    _exp_nonpositive,
    _true_class_arrays,
    _true_class_log_p,
    _true_class_log_q,
    _true_class_pq,
    bin_of,
    block_function,
    exp_nonpositive_array,
    focal_terms,
    focal_terms_array,
    inlined,
)
from .threads import _named, numpy_twin, run_spans, spans_of, sweep_kernel

__all__ = [
    "CHUNK",
    "HESSIAN_BOUNDED",
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


#: ``edges`` of the kernels that bin nothing (an argument of the shared traversal).
_NO_EDGES = np.empty(0)
#: ``grad_out`` and ``hess_out`` of the kernels without derivatives.
_NO_ROWS = np.empty((0, 0))

# --------------------------------------------------------------------------------------------
# Block sweeps: the gradient kernels' traversal
# --------------------------------------------------------------------------------------------

#: Rows of one block. The gradient kernels go over a block one class at a time, each inner loop
#: running over the block's rows, adjacent in its F-ordered scratch, so the loops compile to SIMD
#: code (the exp being ``_exp_nonpositive``, plain arithmetic); the scratch (3 x 128 x K numbers)
#: stays in the L1 cache from one sweep to the next.
ROW_BLOCK = 128
#: Rows of one parallel iteration (whole blocks); its scratch arrays are allocated once for them.
SWEEP_ROWS = 16 * ROW_BLOCK

# Rows of the float64 scratch array ``work`` (ROW_BLOCK columns): per-row values of a block.
_MO, _S_REST, _INV_S, _P, _Q, _D1, _DY, _W, _D2 = 0, 1, 2, 3, 4, 5, 6, 7, 8
_N_WORK = 9


@inlined
def _n_sweeps(n):
    return (n + SWEEP_ROWS - 1) // SWEEP_ROWS


@njit(cache=True, inline="always")
def _block_scratch(n_classes, out_dtype):
    """One parallel iteration's scratch for its blocks: ``cls``, ``am`` (int64) and ``work`` (the
    per-row values, see ``_MO`` ...), then the margins (float64) and the two outputs (the output's
    dtype), each of shape (ROW_BLOCK, K) in F order (a block's rows adjacent for every class).

    Allocated here, though an allocation costs compile time (0.1 to 0.25 s each, cold): the same
    scratch allocated in Python and handed over made the sweeps 2 to 6% slower per call
    (docs/performance.md)."""
    cls = np.empty(ROW_BLOCK, dtype=np.int64)
    am = np.empty(ROW_BLOCK, dtype=np.int64)
    work = np.empty((_N_WORK, ROW_BLOCK))
    xb = np.empty((n_classes, ROW_BLOCK)).T
    gb = np.empty((n_classes, ROW_BLOCK), dtype=out_dtype).T
    hb = np.empty((n_classes, ROW_BLOCK), dtype=out_dtype).T
    return cls, am, work, xb, gb, hb


@inlined
def _load_block(lo, m, x, xb):
    """``xb[b, k] = x[lo + b, k]`` as float64, reading ``x`` in its own memory order."""
    if x.strides[0] <= x.strides[1]:  # F order (or one row): down each column
        for k in range(x.shape[1]):
            for b in range(m):
                xb[b, k] = np.float64(x[lo + b, k])
    else:  # C order: along each row
        for b in range(m):
            for k in range(x.shape[1]):
                xb[b, k] = np.float64(x[lo + b, k])


@inlined
def _store_block(lo, m, gb, hb, grad_out, hess_out):
    """``grad_out[lo + b, k] = gb[b, k]`` (and the Hessian), writing in the outputs' order."""
    if grad_out.strides[0] <= grad_out.strides[1]:
        for k in range(grad_out.shape[1]):
            for b in range(m):
                grad_out[lo + b, k] = gb[b, k]
                hess_out[lo + b, k] = hb[b, k]
    else:
        for b in range(m):
            for k in range(grad_out.shape[1]):
                grad_out[lo + b, k] = gb[b, k]
                hess_out[lo + b, k] = hb[b, k]


@inlined
def _block_max_others(lo, m, y, xb, cls, am, work):
    """``cls``, ``am`` and ``mo`` of rows ``lo .. lo + m - 1`` (see :func:`_block_first_sweep`);
    ``s_rest`` set to 0."""
    for b in range(m):
        cls[b] = int(y[lo + b])
        am[b] = -1
        work[_MO, b] = -np.inf
        work[_S_REST, b] = 0.0
    for k in range(xb.shape[1]):
        for b in range(m):
            v = xb[b, k]
            take = (k != cls[b]) & (v > work[_MO, b])
            work[_MO, b] = v if take else work[_MO, b]
            am[b] = k if take else am[b]


@inlined
def _block_log_sum_exp(lo, m, y, xb, cls, am, work):
    """:func:`_block_first_sweep` without parking the exps (the loss kernels need only
    ``s_rest``)."""
    _block_max_others(lo, m, y, xb, cls, am, work)
    for k in range(xb.shape[1]):
        for b in range(m):
            d = xb[b, k] - work[_MO, b]
            e = _exp_nonpositive(0.0 if d > 0.0 else d)  # min(d, 0.0) (_kernels/math.py)
            work[_S_REST, b] += e if (k != cls[b]) & (k != am[b]) else 0.0


@inlined
def _block_first_sweep(lo, m, y, xb, gb, hb, cls, am, work):
    """First sweep of rows ``lo .. lo + m - 1`` (block row ``b`` is row ``lo + b``: ``y`` is
    indexed by row, the block scratch ``xb``, ``gb``, ``hb`` by ``b``), class by class.

    Leaves ``c`` (the true class) in ``cls``, ``am`` (the first ``k != c`` reaching
    ``mo = max_{k != c} z_k``: the comparisons are strict, so ties keep the first) in ``am``,
    ``mo`` and ``s_rest = sum_{k != c, am} e_k`` in ``work`` (the sum taken in class order), and
    ``e_k = exp(x[i, k] - mo)`` parked in the output blocks, split as ``hi = e_k`` rounded to the
    output's dtype and ``lo = e_k - hi`` rounded again: ``hi + lo`` gives ``e_k`` back exactly for
    float64 outputs and to 2**-48 relative for float32 outputs (absolute 2**-149 once ``e_k`` is
    below float32's normal range, where every result derived from it is itself below float32's
    resolution), so the last sweep reads it instead of calling ``exp`` again. The ``min`` keeps the
    true class's term from overflowing (its parked value is not used). Margins are finite.
    """
    _block_max_others(lo, m, y, xb, cls, am, work)
    for k in range(xb.shape[1]):
        for b in range(m):
            d = xb[b, k] - work[_MO, b]
            e = _exp_nonpositive(0.0 if d > 0.0 else d)  # min(d, 0.0) (_kernels/math.py)
            gb[b, k] = e
            hb[b, k] = e - np.float64(gb[b, k])
            work[_S_REST, b] += e if (k != cls[b]) & (k != am[b]) else 0.0


@inlined
def _true_class_of(b, xb, cls, work):
    """``(c, a, s_rest, e, P, q)`` of block row ``b`` after the first sweep (see
    :func:`_true_class_pq`); leaves ``1 / s``, ``P`` and ``q`` in ``work``."""
    c = cls[b]
    s_rest = work[_S_REST, b]
    a = xb[b, c] - work[_MO, b]
    p, q, e = _true_class_pq(a, s_rest)
    work[_INV_S, b] = 1.0 / (1.0 + s_rest)
    work[_P, b] = p
    work[_Q, b] = q
    return c, a, s_rest, e, p, q


def _ones_if_empty(a, n):
    """``a``, or ``n`` ones when it is empty (no sample or class weights): the kernels take an
    array in every case (a flag tested in the kernels, even outside the loops over rows, kept the
    compiler from vectorising them; measured 2x slower). Made here, not in the kernels: an
    ``np.ones`` in numba code costs about 0.1 s of a cold compilation."""
    return a if a.shape[0] > 0 else np.ones(n)


@inlined
def _parked_share(b, k, am, work, gb, hb):
    """Last sweep: ``(r_k, 1 - r_k)`` of block row ``b`` from the ``e_k`` parked in its outputs.

    ``1 - r_am = s_rest / s`` and ``1 - r_k = (s - e_k) / s`` otherwise (``s - e_k >= 1``: no
    cancellation). Written with selects, not branches, so the loops over the rows stay SIMD.
    """
    e = np.float64(gb[b, k]) + np.float64(hb[b, k])
    s_rest = work[_S_REST, b]
    inv_s = work[_INV_S, b]
    one_minus_r = (s_rest if k == am[b] else (1.0 + s_rest) - e) * inv_s
    return e * inv_s, one_minus_r


@inlined
def _store_floored(b, k, g, h, wi, gb, hb):
    """``gb[b, k] = wi g``, ``hb[b, k] = wi max(h, HESSIAN_FLOOR)``."""
    h = h if h > HESSIAN_FLOOR else HESSIAN_FLOOR
    gb[b, k] = g * wi
    hb[b, k] = h * wi


# Inlined by numba, not by LLVM (math.inlined): as an LLVM-inlined function of its own, its
# general-gamma loop ran 12% slower (docs/performance.md).
@njit(cache=True, inline="always")
def _focal_block(lo, m, gamma, alpha, hessian_mode, y, w, xb, gb, hb, cls, am, work, out):
    """Gradient and diagonal Hessian of rows ``lo .. lo + m - 1`` (see softmax_focal_grad_hess),
    from the margins loaded in ``xb`` into the blocks ``gb``, ``hb``; ``w`` and ``alpha`` hold the
    sample and class weights (ones where there are none)."""
    _block_first_sweep(lo, m, y, xb, gb, hb, cls, am, work)
    for b in range(m):
        c, a, s_rest, e, p, q = _true_class_of(b, xb, cls, work)
        work[_W, b] = w[lo + b]
        # log q only feeds a non-integer gamma's modulating factor; computed anyway, as a
        # condition here would be a branch (a vectorised log1p costs less).
        log_p = _true_class_log_p(a, s_rest, e)
        log_q = _true_class_log_q(a, s_rest, e)
        _, d1, d2, _ = focal_terms(p, q, log_p, log_q, gamma, alpha[c])
        work[_D1, b] = d1
        work[_DY, b] = -d1 * p  # the true class's Gauss-Newton Hessian
        work[_D2, b] = d2
    _diagonal(hessian_mode, m, xb, gb, hb, cls, am, work)


@inlined
def _exact_entry(b, k, r, one_minus_r, cls, work):
    """Exact Hessian entry ``(b, k)`` from the row's focal terms (``FL''`` in ``work[_D2]``)."""
    d2 = work[_D2, b]
    return d2 if k == cls[b] else d2 * r * r - work[_D1, b] * r * one_minus_r


@inlined
def _gauss_newton_entry(b, k, r, one_minus_r, cls, work):
    """Gauss-Newton Hessian entry ``(b, k)`` (the true class's in ``work[_DY]``)."""
    if k == cls[b]:
        return work[_DY, b]
    return -work[_D1, b] * r * (work[_P, b] + work[_Q, b] * one_minus_r)


@inlined
def _store_entry(b, k, r, h, cls, work, gb, hb):
    """Gradient entry ``(b, k)`` and the Hessian entry ``h``, weighted and floored."""
    d1 = work[_D1, b]
    _store_floored(b, k, d1 if k == cls[b] else -r * d1, h, work[_W, b], gb, hb)


@block_function
def _diagonal(hessian_mode, m, xb, gb, hb, cls, am, work):
    """Gradient and Hessian diagonal of a block from its rows' focal terms in ``work``: the exact
    entries, the Gauss-Newton ones, or the larger of the two (HESSIAN_BOUNDED), entry by entry.

    One function for the three policies, the policy a select in the loop (both entries are
    computed, a few multiplications): compiled once, where a function per policy compiled all three
    for every training whichever it used (numba compiles the callees of every branch). Per call 1
    to 3% slower than a loop per policy (docs/performance.md).
    """
    exact = hessian_mode != HESSIAN_GAUSS_NEWTON
    bounded = hessian_mode == HESSIAN_BOUNDED
    for k in range(xb.shape[1]):
        for b in range(m):
            r, one_minus_r = _parked_share(b, k, am, work, gb, hb)
            h = _exact_entry(b, k, r, one_minus_r, cls, work)
            h_gn = _gauss_newton_entry(b, k, r, one_minus_r, cls, work)
            # exact: (h, h); Gauss-Newton: (h_gn, h_gn); bounded: (h, h_gn); then the larger
            hx = h if exact else h_gn
            hg = h_gn if bounded else hx
            h = hx if hx > hg else hg
            _store_entry(b, k, r, h, cls, work, gb, hb)


# The focal gradient blocks, one per common gamma with gamma a literal in it (the kernels one per
# block, chosen by binary.by_gamma: a first call compiles the one it runs), are inlined by numba
# into their sweep kernel: numba links a called function's code into its caller and optimises and
# generates it there again, and a gradient block's types include the output dtype, so in practice
# each block had one caller (float32 outputs from XGBoost, float64 from LightGBM and the public
# methods): called, it was compiled twice (a first 3-class training 0.5 s longer, per call the
# same). The loss and cross-entropy blocks below stay functions compiled on their own and called:
# their types do not depend on the caller's margins, layout or outputs, so the kernels of every
# framework and of the public methods link the same compiled blocks. All use numpy's error model
# (the kernels' too): with Python's, every float division checks for a zero divisor, a branch that
# kept the loops from compiling to SIMD code (measured 2x slower; no divisor here can be 0).


@njit(cache=True, inline="always")
def _focal_block_gamma2(lo, m, gamma, alpha, hessian_mode, y, w, xb, gb, hb, cls, am, work, out):
    _focal_block(lo, m, 2.0, alpha, hessian_mode, y, w, xb, gb, hb, cls, am, work, out)


@njit(cache=True, inline="always")
def _focal_block_gamma1(lo, m, gamma, alpha, hessian_mode, y, w, xb, gb, hb, cls, am, work, out):
    _focal_block(lo, m, 1.0, alpha, hessian_mode, y, w, xb, gb, hb, cls, am, work, out)


@njit(cache=True, inline="always")
def _focal_block_gamma0(lo, m, gamma, alpha, hessian_mode, y, w, xb, gb, hb, cls, am, work, out):
    _focal_block(lo, m, 0.0, alpha, hessian_mode, y, w, xb, gb, hb, cls, am, work, out)


@njit(cache=True, inline="always")
def _focal_block_any_gamma(lo, m, gamma, alpha, hessian_mode, y, w, xb, gb, hb, cls, am, work, out):
    _focal_block(lo, m, gamma, alpha, hessian_mode, y, w, xb, gb, hb, cls, am, work, out)


@block_function
def _ce_block(lo, m, gamma, alpha, hessian_mode, y, w, xb, gb, hb, cls, am, work, out):
    """Softmax cross-entropy gradient ``p - e_y`` and Hessian ``p (1 - p)`` (floored) of rows
    ``lo .. lo + m - 1`` (margins in ``xb``, outputs into ``gb``, ``hb``), times the sample
    weights; leaves each row's ``g = 1 - p_y`` in ``work[_Q]`` (``gamma``, ``alpha``,
    ``hessian_mode`` and ``out``: unused, the blocks' common signature)."""
    _block_first_sweep(lo, m, y, xb, gb, hb, cls, am, work)
    for b in range(m):
        _true_class_of(b, xb, cls, work)
        work[_W, b] = w[lo + b]
    for k in range(xb.shape[1]):
        for b in range(m):
            r, one_minus_r = _parked_share(b, k, am, work, gb, hb)
            p = work[_P, b]
            q = work[_Q, b]
            g = q * r
            h = g * (p + q * one_minus_r)
            _store_floored(
                b, k, -q if k == cls[b] else g, p * q if k == cls[b] else h, work[_W, b], gb, hb
            )


@njit(cache=True, inline="always")
def _for_each_block(
    block,
    finish,
    gamma,
    alpha,
    hessian_mode,
    y,
    x,
    w,
    grad_out,
    hess_out,
    out,
    aux,
    edges,
    start,
    stop,
):
    """The one traversal of every K-class kernel: the rows ``[start, stop)`` (``start`` a multiple
    of SWEEP_ROWS; ``threads.run_spans`` splits the rows between threads), block by block. Each
    block of margins is loaded into F-ordered scratch (in L1), then ``block(lo, m, gamma, alpha,
    hessian_mode, y, w, xb, gb, hb, cls, am, work, out)`` computes it (derivatives into ``gb``,
    ``hb``; a loss into ``out``; per-row values in ``work``) and ``finish(lo, m, work, gb, hb,
    grad_out, hess_out, aux, edges)`` stores what the kernel returns, so the sweeps run over
    adjacent rows whatever the caller's layout (XGBoost hands over C order, LightGBM F order).
    ``w`` and ``alpha`` are arrays (ones where there are none); kernels without derivatives pass
    an empty (0, 0) ``grad_out`` and ``hess_out``."""
    cls, am, work, xb, gb, hb = _block_scratch(x.shape[1], grad_out.dtype)
    for j in range(start // SWEEP_ROWS, _n_sweeps(stop)):
        end = (j + 1) * SWEEP_ROWS
        end = stop if stop < end else end
        for lo in range(j * SWEEP_ROWS, end, ROW_BLOCK):
            m = end - lo if end - lo < ROW_BLOCK else ROW_BLOCK
            _load_block(lo, m, x, xb)
            block(lo, m, gamma, alpha, hessian_mode, y, w, xb, gb, hb, cls, am, work, out)
            finish(lo, m, work, gb, hb, grad_out, hess_out, aux, edges)


@njit(cache=True, inline="always")
def _for_each_ce(finish, y, x, w, grad_out, hess_out, aux, edges, start, stop):
    """:func:`_ce_block` over every row (GHM-C's and OHEM's derivatives), then ``finish``."""
    _for_each_block(
        _ce_block,
        finish,
        0.0,
        _NO_EDGES,
        0,
        y,
        x,
        w,
        grad_out,
        hess_out,
        _NO_EDGES,
        aux,
        edges,
        start,
        stop,
    )


@inlined
def _store(lo, m, work, gb, hb, grad_out, hess_out, aux, edges):
    _store_block(lo, m, gb, hb, grad_out, hess_out)


@inlined
def _norms_only(lo, m, work, gb, hb, grad_out, hess_out, g_out, edges):
    """Each row's ``g = 1 - p_y`` into ``g_out`` (a kernel without derivatives)."""
    for b in range(m):
        g_out[lo + b] = work[_Q, b]


@inlined
def _store_nothing(lo, m, work, gb, hb, grad_out, hess_out, aux, edges):
    pass


@inlined
def _store_norms(lo, m, work, gb, hb, grad_out, hess_out, g_out, edges):
    """The derivatives, and each row's ``g = 1 - p_y`` into ``g_out``."""
    _store_block(lo, m, gb, hb, grad_out, hess_out)
    _norms_only(lo, m, work, gb, hb, grad_out, hess_out, g_out, edges)


@inlined
def _store_bins_uniform(lo, m, work, gb, hb, grad_out, hess_out, bin_out, edges):
    """The derivatives and the bin of each row's ``g`` on the standard edges (``b / bins``, the
    last above 1: ``binary._edges_are_uniform``), without a table look-up."""
    _store_block(lo, m, gb, hb, grad_out, hess_out)
    bins = edges.shape[0] - 1
    for b in range(m):
        bin_out[lo + b] = _bin_of_uniform(work[_Q, b], bins, float(bins))


@inlined
def _store_bins_edges(lo, m, work, gb, hb, grad_out, hess_out, bin_out, edges):
    """The derivatives and the bin of each row's ``g`` (half-open bins ``[edges[b], edges[b +
    1])``, the rule of ``math.bin_of``) on any increasing edges."""
    _store_block(lo, m, gb, hb, grad_out, hess_out)
    bins = edges.shape[0] - 1
    for b in range(m):
        bin_out[lo + b] = bin_of(work[_Q, b], bins, edges)


# --------------------------------------------------------------------------------------------
# Focal loss
# --------------------------------------------------------------------------------------------


@inlined
def _focal_loss_block(lo, m, gamma, alpha, y, w, xb, cls, am, work, out):
    """Focal loss of rows ``lo .. lo + m - 1`` (margins in ``xb``), times the sample weights, into
    ``out[lo + b]``."""
    _block_log_sum_exp(lo, m, y, xb, cls, am, work)
    for b in range(m):
        c, a, s_rest, e, p, q = _true_class_of(b, xb, cls, work)
        log_p = _true_class_log_p(a, s_rest, e)
        log_q = _true_class_log_q(a, s_rest, e)
        fl, _, _, _ = focal_terms(p, q, log_p, log_q, gamma, alpha[c])
        out[lo + b] = fl * w[lo + b]


@block_function
def _focal_loss_block_gamma2(
    lo, m, gamma, alpha, hessian_mode, y, w, xb, gb, hb, cls, am, work, out
):
    _focal_loss_block(lo, m, 2.0, alpha, y, w, xb, cls, am, work, out)


@block_function
def _focal_loss_block_gamma1(
    lo, m, gamma, alpha, hessian_mode, y, w, xb, gb, hb, cls, am, work, out
):
    _focal_loss_block(lo, m, 1.0, alpha, y, w, xb, cls, am, work, out)


@block_function
def _focal_loss_block_gamma0(
    lo, m, gamma, alpha, hessian_mode, y, w, xb, gb, hb, cls, am, work, out
):
    _focal_loss_block(lo, m, 0.0, alpha, y, w, xb, cls, am, work, out)


@block_function
def _focal_loss_block_any_gamma(
    lo, m, gamma, alpha, hessian_mode, y, w, xb, gb, hb, cls, am, work, out
):
    _focal_loss_block(lo, m, gamma, alpha, y, w, xb, cls, am, work, out)


@njit(cache=True, inline="always")
def _focal_loss_sweeps(block, gamma, y, x, w, alpha, out, start, stop):
    """``block`` (one gamma's loss block) over every row."""
    _for_each_block(
        block,
        _store_nothing,
        gamma,
        alpha,
        0,
        y,
        x,
        w,
        _NO_ROWS,
        _NO_ROWS,
        out,
        out,
        _NO_EDGES,
        start,
        stop,
    )


@sweep_kernel
def _softmax_focal_loss_gamma2(y, x, w, gamma, alpha, out, start, stop):
    _focal_loss_sweeps(_focal_loss_block_gamma2, gamma, y, x, w, alpha, out, start, stop)


@sweep_kernel
def _softmax_focal_loss_gamma1(y, x, w, gamma, alpha, out, start, stop):
    _focal_loss_sweeps(_focal_loss_block_gamma1, gamma, y, x, w, alpha, out, start, stop)


@sweep_kernel
def _softmax_focal_loss_gamma0(y, x, w, gamma, alpha, out, start, stop):
    _focal_loss_sweeps(_focal_loss_block_gamma0, gamma, y, x, w, alpha, out, start, stop)


@sweep_kernel
def _softmax_focal_loss_any(y, x, w, gamma, alpha, out, start, stop):
    _focal_loss_sweeps(_focal_loss_block_any_gamma, gamma, y, x, w, alpha, out, start, stop)


_SOFTMAX_FOCAL_LOSS = (
    _softmax_focal_loss_gamma2,
    _softmax_focal_loss_gamma1,
    _softmax_focal_loss_gamma0,
    _softmax_focal_loss_any,
)


def softmax_focal_loss(y, x, w, gamma, alpha, out):
    """Per-row softmax focal loss ``-alpha_y (1 - p_y)^gamma log p_y``, times the sample weight.

    ``alpha`` empty means no class weights (``alpha_y = 1``). Block by block, as the gradient
    kernels (the same pieces of every row, so the same bits as the gradient kernels' loss would be).
    """
    n, n_classes = x.shape
    args = (y, x, _ones_if_empty(w, n), gamma, _ones_if_empty(alpha, n_classes), out)
    run_spans(by_gamma(gamma, _SOFTMAX_FOCAL_LOSS), args, n, SWEEP_ROWS)


@njit(cache=True, inline="always")
def _focal_sweeps(block, gamma, alpha, hessian_mode, y, x, w, grad_out, hess_out, start, stop):
    """``block`` (one gamma's gradient block) over every row."""
    _for_each_block(
        block,
        _store,
        gamma,
        alpha,
        hessian_mode,
        y,
        x,
        w,
        grad_out,
        hess_out,
        _NO_EDGES,
        _NO_EDGES,
        _NO_EDGES,
        start,
        stop,
    )


# fmt: off
@sweep_kernel
def _softmax_focal_grad_hess_gamma2(y, x, w, gamma, alpha, hessian_mode, grad_out, hess_out,
                                    start, stop):
    _focal_sweeps(_focal_block_gamma2, gamma, alpha, hessian_mode, y, x, w, grad_out, hess_out,
                  start, stop)


@sweep_kernel
def _softmax_focal_grad_hess_gamma1(y, x, w, gamma, alpha, hessian_mode, grad_out, hess_out,
                                    start, stop):
    _focal_sweeps(_focal_block_gamma1, gamma, alpha, hessian_mode, y, x, w, grad_out, hess_out,
                  start, stop)


@sweep_kernel
def _softmax_focal_grad_hess_gamma0(y, x, w, gamma, alpha, hessian_mode, grad_out, hess_out,
                                    start, stop):
    _focal_sweeps(_focal_block_gamma0, gamma, alpha, hessian_mode, y, x, w, grad_out, hess_out,
                  start, stop)


@sweep_kernel
def _softmax_focal_grad_hess_any(y, x, w, gamma, alpha, hessian_mode, grad_out, hess_out,
                                 start, stop):
    _focal_sweeps(_focal_block_any_gamma, gamma, alpha, hessian_mode, y, x, w, grad_out,
                  hess_out, start, stop)
# fmt: on


_SOFTMAX_FOCAL_GRAD_HESS = (
    _softmax_focal_grad_hess_gamma2,
    _softmax_focal_grad_hess_gamma1,
    _softmax_focal_grad_hess_gamma0,
    _softmax_focal_grad_hess_any,
)


def softmax_focal_grad_hess(y, x, w, gamma, alpha, hessian_mode, grad_out, hess_out):
    """Weighted gradient and diagonal Hessian of the softmax focal loss, for every row.

    With ``FL(z) = -alpha_y (1 - p_y)^gamma log p_y = FL(t)``, ``t = z_y - LSE_{k != y} z_k``,
    ``FL'``, ``FL''`` its derivatives in ``t`` (see :func:`focal_terms`), ``P = p_y``,
    ``q = 1 - P`` and ``r_k = p_k / q`` (k != y)::

        g_y = FL',                    g_k = -r_k FL'
        h_y = FL'',                   h_k = FL'' r_k^2 - FL' r_k (1 - r_k)     (HESSIAN_EXACT)
        h_y = -FL' P,                 h_k = -FL' r_k (1 - p_k)           (HESSIAN_GAUSS_NEWTON)

    and HESSIAN_BOUNDED takes the larger of the two, entry by entry.

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
    hessian_mode : HESSIAN_EXACT, HESSIAN_GAUSS_NEWTON or HESSIAN_BOUNDED
    grad_out, hess_out : float32/64 (n, K), written
    """
    n, n_classes = x.shape
    w, alpha = _ones_if_empty(w, n), _ones_if_empty(alpha, n_classes)
    kernel = by_gamma(gamma, _SOFTMAX_FOCAL_GRAD_HESS)
    if numpy_twin(n, NUMPY_FOCAL_UPTO, kernel):
        with np.errstate(all="ignore"):
            _focal_grad_hess_numpy(y, x, w, gamma, alpha, hessian_mode, grad_out, hess_out)
        return
    args = (y, x, w, gamma, alpha, hessian_mode, grad_out, hess_out)
    run_spans(kernel, args, n, SWEEP_ROWS)


#: Up to this many rows, while the gamma's kernel is not in the process, the K-class focal
#: gradients are numpy's (:func:`_focal_grad_hess_numpy`, the same bits;
#: :func:`threads.numpy_twin`): a first small K-class training then compiles no gradient kernel
#: (3-6 s), for 0.6-0.9 ms a round against the kernel's 0.03-0.07 ms (docs/performance.md).
NUMPY_FOCAL_UPTO = 512


def _focal_grad_hess_numpy(y, x, w, gamma, alpha, hessian_mode, grad_out, hess_out):
    """:func:`softmax_focal_grad_hess`'s kernels in numpy, the same bits: the same operations on
    whole (n, K) arrays, each select a ``np.where``, the sums over the classes taken in class
    order, the exps parked in the outputs' dtype as the kernels park them."""
    xb = np.asarray(x, dtype=np.float64)
    cls = y.astype(np.int64)[:, None]
    classes = np.arange(x.shape[1])
    # _block_max_others: the largest other margin and its class, the first on ties
    others = np.where(classes == cls, -np.inf, xb)
    am = np.argmax(others, axis=1)[:, None]
    mo = np.take_along_axis(others, am, axis=1)
    # _block_first_sweep: the exps parked as hi + lo in the outputs' dtype, s_rest in class order
    d = xb - mo
    e = exp_nonpositive_array(np.where(d > 0.0, 0.0, d))
    hi = e.astype(grad_out.dtype)
    lo = (e - hi.astype(np.float64)).astype(grad_out.dtype)
    rest = np.where((classes != cls) & (classes != am), e, 0.0)
    s_rest = np.zeros((x.shape[0], 1))
    for k in range(x.shape[1]):
        s_rest = s_rest + rest[:, k : k + 1]
    # _focal_block's rows: the true class's pieces and focal terms
    a = np.take_along_axis(xb, cls, axis=1) - mo
    p, q, e, log_p, log_q = _true_class_arrays(a, s_rest)
    inv_s = 1.0 / (1.0 + s_rest)
    _, d1, d2, _ = focal_terms_array(p, q, log_p, log_q, gamma, alpha[cls])
    # _diagonal: every entry, the Hessian policy a select
    true = classes == cls
    e = hi.astype(np.float64) + lo.astype(np.float64)
    one_minus_r = np.where(classes == am, s_rest, (1.0 + s_rest) - e) * inv_s
    r = e * inv_s
    h = np.where(true, d2, d2 * r * r - d1 * r * one_minus_r)
    h_gn = np.where(true, -d1 * p, -d1 * r * (p + q * one_minus_r))
    hx = h if hessian_mode != HESSIAN_GAUSS_NEWTON else h_gn
    hg = h_gn if hessian_mode == HESSIAN_BOUNDED else hx
    h = np.where(hx > hg, hx, hg)
    g = np.where(true, d1, -r * d1)
    h = np.where(h > HESSIAN_FLOOR, h, HESSIAN_FLOOR)
    grad_out[...] = g * w[:, None]
    hess_out[...] = h * w[:, None]


# --------------------------------------------------------------------------------------------
# GHM-C with K classes: weights on the softmax cross-entropy, g = 1 - p_y
# --------------------------------------------------------------------------------------------


def _weighted_sweeps(kernel):
    """``kernel(y, x, w, ...)`` (a cross-entropy sweep kernel) over every row, on the kernels'
    threads, ones in place of empty sample weights ``w``."""

    def sweeps(y, x, w, *rest):
        args = (y, x, _ones_if_empty(w, x.shape[0]), *rest)
        run_spans(kernel, args, x.shape[0], SWEEP_ROWS)

    return _named(sweeps, kernel)


@sweep_kernel
def _softmax_ce_grad_hess_norm(y, x, w, grad_out, hess_out, g_out, start, stop):
    """Weighted softmax cross-entropy gradient ``w (p - e_y)`` and Hessian
    ``w max(p (1 - p), floor)`` of every row, and its gradient norm ``g = 1 - p_y`` into ``g_out``.

    ``g`` is what GHM-C's density is computed on (for K = 2 it is the binary ``|p - y|`` of the
    margin difference), so the binary density code runs unchanged on ``g_out``.
    """
    _for_each_ce(_store_norms, y, x, w, grad_out, hess_out, g_out, _NO_EDGES, start, stop)


softmax_ce_grad_hess_norm = _weighted_sweeps(_softmax_ce_grad_hess_norm)


@sweep_kernel
def _softmax_ghm_bins_pass_uniform(y, x, w, edges, grad_out, hess_out, bin_out, start, stop):
    """:func:`softmax_ghm_bins_pass` on the standard edges."""
    _for_each_ce(_store_bins_uniform, y, x, w, grad_out, hess_out, bin_out, edges, start, stop)


@sweep_kernel
def _softmax_ghm_bins_pass_edges(y, x, w, edges, grad_out, hess_out, bin_out, start, stop):
    """:func:`softmax_ghm_bins_pass` on any increasing edges."""
    _for_each_ce(_store_bins_edges, y, x, w, grad_out, hess_out, bin_out, edges, start, stop)


_GHM_BINS_UNIFORM = _weighted_sweeps(_softmax_ghm_bins_pass_uniform)
_GHM_BINS_EDGES = _weighted_sweeps(_softmax_ghm_bins_pass_edges)


def softmax_ghm_bins_pass(y, x, w, edges, grad_out, hess_out, bin_out):
    """First GHM pass with binned density, K classes (the row version of ``ghm_bins_pass``).

    Writes the sample-weighted cross-entropy gradient and floored Hessian of every row and the bin
    of each row's ``g = 1 - p_y`` (half-open bins ``[edges[b], edges[b + 1])``). The counts come
    from ``_kernels.bin_histogram``, the package's one histogram kernel (fixed-size chunks summed
    in chunk order: the counts do not depend on the thread count). The standard edges and any
    others each have a kernel, chosen here (a first call compiles the one it runs).
    """
    sweeps = _GHM_BINS_UNIFORM if _edges_are_uniform(edges) else _GHM_BINS_EDGES
    sweeps(y, x, w, edges, grad_out, hess_out, bin_out)


@inlined
def _zero_dropped(lo, m, work, gb, hb, grad_out, hess_out, keep, edges):
    """The derivatives, ``+0.0`` for the rows of the block with ``keep == 0``."""
    _store_block(lo, m, gb, hb, grad_out, hess_out)
    for b in range(m):
        if keep[lo + b] == 0:
            for k in range(grad_out.shape[1]):
                grad_out[lo + b, k] = 0.0
                hess_out[lo + b, k] = 0.0


@sweep_kernel
def _kept_softmax_ce_grad_hess(y, x, w, keep, grad_out, hess_out, start, stop):
    """Weighted softmax cross-entropy gradient and floored Hessian (the kernels of GHM-C's first
    pass) of the rows with ``keep != 0``, ``+0.0`` for the others: OHEM's derivatives."""
    _for_each_ce(_zero_dropped, y, x, w, grad_out, hess_out, keep, _NO_EDGES, start, stop)


kept_softmax_ce_grad_hess = _weighted_sweeps(_kept_softmax_ce_grad_hess)


@block_function
def _ce_loss_block(lo, m, gamma, alpha, hessian_mode, y, w, xb, gb, hb, cls, am, work, out):
    """Unweighted cross-entropy ``-log p_y`` of the block's rows into ``out``; ``g = 1 - p_y`` left
    in ``work[_Q]``."""
    _block_log_sum_exp(lo, m, y, xb, cls, am, work)
    for b in range(m):
        c, a, s_rest, e, p, q = _true_class_of(b, xb, cls, work)
        out[lo + b] = -_true_class_log_p(a, s_rest, e)


@sweep_kernel
def _softmax_ce_loss_and_norm(y, x, ce_out, g_out, start, stop):
    """Unweighted softmax cross-entropy ``-log p_y`` and gradient norm ``g = 1 - p_y`` per row."""
    _for_each_block(
        _ce_loss_block,
        _norms_only,
        0.0,
        _NO_EDGES,
        0,
        y,
        x,
        _NO_EDGES,
        _NO_ROWS,
        _NO_ROWS,
        ce_out,
        g_out,
        _NO_EDGES,
        start,
        stop,
    )


softmax_ce_loss_and_norm = spans_of(_softmax_ce_loss_and_norm, SWEEP_ROWS)


@inlined
def _scale_row(i, factor, grad, hess):
    for k in range(grad.shape[1]):
        grad[i, k] *= factor
        hess[i, k] *= factor


@sweep_kernel
def _scale_rows_by_sample(beta, grad, hess, start, stop):
    """``grad[i, :] *= beta[i]``, ``hess[i, :] *= beta[i]`` in place."""
    for i in range(start, stop):
        _scale_row(i, beta[i], grad, hess)


scale_rows_by_sample = spans_of(_scale_rows_by_sample, SWEEP_ROWS)


@sweep_kernel
def _scale_rows_by_bin(bin_idx, beta, grad, hess, start, stop):
    """``grad[i, :] *= beta[bin_idx[i]]``, ``hess[i, :] *= beta[bin_idx[i]]`` in place."""
    for i in range(start, stop):
        _scale_row(i, beta[bin_idx[i]], grad, hess)


scale_rows_by_bin = spans_of(_scale_rows_by_bin, SWEEP_ROWS, rows=2)
