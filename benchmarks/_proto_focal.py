"""Prototype kernels for bench_focal_layouts.py: other layouts of the binary focal kernel.

Not part of the package. Every variant reuses the package's per-sample functions (the logistic
parts, the fdlibm exp, the weighted store), so its results can be compared to the bit with
``focal_grad_hess``; only the loop structure around them differs:

* ``focal_range``: a serial ``nogil`` kernel over rows ``[lo, hi)`` with the same four gamma loops
  as ``for_each_with_gamma`` (one per gamma in {2, 1, 0} with gamma a literal, and a general one);
  a Python thread pool runs one chunk per thread.
* ``focal_range_g2`` / ``_g1`` / ``_g0`` / ``_general``: one loop each, gamma fixed; Python picks
  the kernel at run time, so a first call compiles only the one it needs.
* ``focal_range_general_nb``: the general loop without the modulating factor's gamma tests (the
  factor is ``exp(gamma log q)`` with the log already computed), so the loop has no branch left.
* ``focal_par_g2`` / ``focal_par_general_nb``: the same single loops as ``prange`` kernels.
* ``focal_par_general_bitcast``: the general prange loop whose modulating factor's exp builds
  ``2**k`` from its bits (an LLVM bitcast, CPU only) instead of two table look-ups (gathers in SIMD
  code); the two factors are the tables' own, so the result is the same to the bit.
"""

import importlib
import math

from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic


def _package_module(attribute):
    """The package module defining ``attribute``: ``boostloss._kernels`` today, or one of the
    modules of a ``boostloss._kernels`` subpackage."""
    for name in ("boostloss._kernels", "boostloss._kernels.binary", "boostloss._kernels.math"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        if attribute in vars(mod) and getattr(vars(mod)[attribute], "__module__", name) == name:
            return mod
        if attribute in vars(mod) and not callable(vars(mod)[attribute]):
            return mod
    raise ImportError(f"boostloss's kernel {attribute!r} not found")


K = _package_module("focal_grad_hess")  # the binary kernels
M = _package_module("_exp_nonpositive")  # the per-sample functions and the exp's constants
_logistic_parts = M._logistic_parts
_exp_nonpositive = M._exp_nonpositive
_store_weighted = M._store_weighted
_focal_grad_hess_store = M._focal_grad_hess_store
HESSIAN_EXACT = K.HESSIAN_EXACT
HESSIAN_FLOOR = K.HESSIAN_FLOOR


@njit(cache=True, nogil=True)
def focal_range(y, x, w, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out, lo, hi):
    weighted = w.shape[0] > 0
    if gamma == 2.0:
        for i in range(lo, hi):
            _focal_grad_hess_store(
                i, y, x, w, weighted, 2.0, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out
            )
    elif gamma == 1.0:
        for i in range(lo, hi):
            _focal_grad_hess_store(
                i, y, x, w, weighted, 1.0, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out
            )
    elif gamma == 0.0:
        for i in range(lo, hi):
            _focal_grad_hess_store(
                i, y, x, w, weighted, 0.0, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out
            )
    else:
        for i in range(lo, hi):
            _focal_grad_hess_store(
                i, y, x, w, weighted, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out
            )


@njit(cache=True, nogil=True)
def focal_range_g2(y, x, w, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out, lo, hi):
    weighted = w.shape[0] > 0
    for i in range(lo, hi):
        _focal_grad_hess_store(
            i, y, x, w, weighted, 2.0, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out
        )


@njit(cache=True, nogil=True)
def focal_range_g1(y, x, w, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out, lo, hi):
    weighted = w.shape[0] > 0
    for i in range(lo, hi):
        _focal_grad_hess_store(
            i, y, x, w, weighted, 1.0, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out
        )


@njit(cache=True, nogil=True)
def focal_range_g0(y, x, w, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out, lo, hi):
    weighted = w.shape[0] > 0
    for i in range(lo, hi):
        _focal_grad_hess_store(
            i, y, x, w, weighted, 0.0, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out
        )


@njit(cache=True, nogil=True)
def focal_range_general(
    y, x, w, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out, lo, hi
):
    """Today's general loop alone (the modulating factor still tests gamma per sample)."""
    weighted = w.shape[0] > 0
    for i in range(lo, hi):
        _focal_grad_hess_store(
            i, y, x, w, weighted, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out
        )


@njit(cache=True, inline="always")
def _focal_general_nb(i, y, x, w, weighted, gamma, alpha_pos, alpha_neg, hessian_mode, g_o, h_o):
    """``focal_point``'s arithmetic, same order, with ``m = exp(gamma log q)`` unconditionally
    (for gamma not in {0, 1, 2} that is what ``_modulating_factor`` returns: same bits)."""
    xi = float(x[i])
    if y[i] > 0.5:
        z = xi
        s = 1.0
        a = alpha_pos
    else:
        z = -xi
        s = -1.0
        a = alpha_neg
    p_t, q, log_p_t, log_q = _logistic_parts(z)
    m = _exp_nonpositive(gamma * log_q)
    pt_log_pt = p_t * log_p_t
    am = a * m
    grad = s * am * (gamma * pt_log_pt - q)
    if hessian_mode == HESSIAN_EXACT:
        hess = am * (gamma * pt_log_pt * (q - gamma * p_t) + (2.0 * gamma + 1.0) * p_t * q)
    else:
        hess = am * p_t * q
    if not hess > HESSIAN_FLOOR:
        hess = HESSIAN_FLOOR
    _store_weighted(i, w, weighted, grad, hess, g_o, h_o)


@njit(cache=True, nogil=True)
def focal_range_general_nb(
    y, x, w, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out, lo, hi
):
    weighted = w.shape[0] > 0
    for i in range(lo, hi):
        _focal_general_nb(
            i, y, x, w, weighted, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out
        )


@njit(cache=True, parallel=True)
def focal_par_g2(y, x, w, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out):
    weighted = w.shape[0] > 0
    for i in prange(x.shape[0]):
        _focal_grad_hess_store(
            i, y, x, w, weighted, 2.0, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out
        )


@njit(cache=True, parallel=True)
def focal_par_g1(y, x, w, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out):
    weighted = w.shape[0] > 0
    for i in prange(x.shape[0]):
        _focal_grad_hess_store(
            i, y, x, w, weighted, 1.0, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out
        )


@njit(cache=True, parallel=True)
def focal_par_g0(y, x, w, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out):
    weighted = w.shape[0] > 0
    for i in prange(x.shape[0]):
        _focal_grad_hess_store(
            i, y, x, w, weighted, 0.0, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out
        )


@njit(cache=True, parallel=True)
def focal_par_general_nb(y, x, w, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out):
    weighted = w.shape[0] > 0
    for i in prange(x.shape[0]):
        _focal_general_nb(
            i, y, x, w, weighted, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out
        )


@intrinsic
def _bits_to_float64(typingctx, bits):
    """The float64 whose IEEE bit pattern is the int64 ``bits`` (CPU only)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@njit(cache=True, inline="always")
def _exp_nonpositive_bitcast(t):
    """``_exp_nonpositive`` with ``2**k = 2**k1 * 2**k2`` built from bits: the same two normal
    factors as the tables ``_POW2_LOW[k & 31]`` and ``_POW2_HIGH[(k >> 5) + 34]``."""
    t = max(t, -750.0)
    k = int(math.floor(t * M._LOG2E + 0.5))
    kf = float(k)
    hi = t - kf * M._LN2_HI
    lo = kf * M._LN2_LO
    r = hi - lo
    rr = r * r
    c = r - rr * (
        M._EXP_P1 + rr * (M._EXP_P2 + rr * (M._EXP_P3 + rr * (M._EXP_P4 + rr * M._EXP_P5)))
    )
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    k1 = (k & 31) - 96
    k2 = k - k1
    return (y * _bits_to_float64((k1 + 1023) << 52)) * _bits_to_float64((k2 + 1023) << 52)


@njit(cache=True, parallel=True)
def focal_par_general_bitcast(
    y, x, w, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out
):
    weighted = w.shape[0] > 0
    for i in prange(x.shape[0]):
        xi = float(x[i])
        if y[i] > 0.5:
            z = xi
            s = 1.0
            a = alpha_pos
        else:
            z = -xi
            s = -1.0
            a = alpha_neg
        p_t, q, log_p_t, log_q = _logistic_parts(z)
        m = _exp_nonpositive_bitcast(gamma * log_q)
        pt_log_pt = p_t * log_p_t
        am = a * m
        grad = s * am * (gamma * pt_log_pt - q)
        if hessian_mode == HESSIAN_EXACT:
            hess = am * (gamma * pt_log_pt * (q - gamma * p_t) + (2.0 * gamma + 1.0) * p_t * q)
        else:
            hess = am * p_t * q
        if not hess > HESSIAN_FLOOR:
            hess = HESSIAN_FLOOR
        _store_weighted(i, w, weighted, grad, hess, grad_out, hess_out)


RANGE_BY_GAMMA = {2.0: focal_range_g2, 1.0: focal_range_g1, 0.0: focal_range_g0}
PAR_BY_GAMMA = {2.0: focal_par_g2, 1.0: focal_par_g1, 0.0: focal_par_g0}


def focal_grad_hess_by_gamma(
    y, x, w, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out
):
    """``focal_grad_hess`` as runtime dispatch: the prange kernel of this gamma (same results)."""
    kernel = PAR_BY_GAMMA.get(float(gamma), focal_par_general_nb)
    kernel(y, x, w, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out)


def install():
    """Replace the package's ``focal_grad_hess`` by :func:`focal_grad_hess_by_gamma` (this process
    only: the end-to-end estimate of bench_focal_layouts.py)."""
    K.focal_grad_hess = focal_grad_hess_by_gamma
