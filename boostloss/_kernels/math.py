"""Per-sample math of every loss, written once and compiled for two targets.

Here for the CPU (each function compiled once per argument types and inlined by LLVM into the loops
of :mod:`.binary`, :mod:`.softmax` and :mod:`.posterior`: :func:`inlined`), and from the same
source for CUDA by :mod:`.cuda_build` (the names in :data:`DEVICE_FUNCTIONS`). Scalar arithmetic
and reads and writes of array elements only: no allocation, no libm call in a hot path (the exp and
log1p below are plain arithmetic, so loops over samples compile to SIMD code). Formulas:
docs/math.md.
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .constants import HESSIAN_EXACT, HESSIAN_FLOOR, HESSIAN_GAUSS_NEWTON

# The kernels write ``min`` and ``max`` of two scalars as conditional expressions, the value numba's
# builtins give (``min(a, b)`` is ``b if b < a else a``, ``max(a, b)`` is ``b if b > a else a``):
# numba types each builtin call through a generic overload compiled once per argument types, 0.4 s
# of a first training's compiling for nothing the selects do not do.

#: Options of the functions that only numba code calls (:func:`inlined`, :func:`block_function`).
_CALLED_FROM_NUMBA = {
    "cache": True,
    "error_model": "numpy",
    "no_cpython_wrapper": True,
    "no_cfunc_wrapper": True,
}


def inlined(function):
    """``function`` compiled on its own, once per argument types, and inlined into every caller
    by LLVM (``forceinline``), not by numba: the kernels' helpers (scalar math, a block's loops).

    numba's own inlining (``inline="always"``) copies the callee's IR and runs its front-end
    passes again at every call site, nested helpers included: most of a kernel's compile time
    (docs/performance.md). LLVM's inlining of ``alwaysinline`` functions gives the same machine
    code (the loops still compile to SIMD code) for a fraction of the cost. numpy's error model
    (no divisor checks), as in the kernels that call these functions; no reference counting
    (``_nrt``: a helper allocates nothing, and reference counts on the arrays it is handed would be
    atomic calls inside the caller's loops); no Python or C wrapper (a helper is called from numba
    code only, and the wrappers cost about a second of a first training's compile time).
    """
    options = dict(_CALLED_FROM_NUMBA, forceinline=True, _nrt=False)
    return njit(**options)(function)  # type: ignore[call-overload]


def block_function(function):
    """``function`` compiled on its own and called, not inlined, by the K-class kernels: a block
    of rows' computation that several kernels share (one compilation links into all of them).
    numpy's error model; no Python or C wrapper (called from numba code only)."""
    return njit(**_CALLED_FROM_NUMBA)(function)  # type: ignore[call-overload]


#: The per-sample functions compiled for both targets: here for the CPU, and from the same source
#: for CUDA by _kernels.cuda_build. Each must compile for CUDA too (scalar arithmetic, reads and
#: writes of array elements, no allocation); tests/test_cuda.py compiles them for real devices.
DEVICE_FUNCTIONS = (
    "_exp_nonpositive",
    "_log1p_unit",
    "_log_reduced",
    "_logistic_parts",
    "_modulating_factor",
    "focal_terms",
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


#: Powers of two for the scaling of exp, CUDA's version of :func:`_pow2_factors`:
#: 2**k = _POW2_LOW[k & 31] * _POW2_HIGH[(k >> 5) + 34] for -1088 <= k <= 0.
_POW2_LOW = np.ldexp(1.0, np.arange(32) - 96)
_POW2_HIGH = np.ldexp(1.0, 32 * np.arange(-34, 1) + 96)


@intrinsic
def _float64_from_bits(typingctx, bits):
    """The float64 whose IEEE-754 bit pattern is the int64 ``bits`` (an LLVM bitcast)."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@inlined
def _pow2_factors(k):
    """``2**k`` for -1088 <= k <= 0 as two normal factors, ``2**((k & 31) - 96)`` (2**-96 ..
    2**-65) and ``2**(32 (k >> 5) + 96)`` (2**-992 .. 2**96), built from their bits: no table
    look-up, which would be a gather in SIMD code (the general-gamma path's second exp ran 1.4x
    slower with tables). The CUDA build reads the same factors from ``_POW2_LOW`` and
    ``_POW2_HIGH`` (``cuda_build._pow2_factors_table``)."""
    low = (k & 31) - 96
    bits_low = (low + 1023) << 52
    bits_high = (k - low + 1023) << 52
    # (mypy reads the intrinsic's Python signature, typingctx included)
    return _float64_from_bits(bits_low), _float64_from_bits(bits_high)  # type: ignore[call-arg]


@inlined
def _exp_nonpositive(t):
    """``exp(t)`` for ``t <= 0`` (fdlibm's e_exp.c: t = k ln2 + r, |r| <= ln2 / 2, rational e**r).

    The scaling by 2**k is one exact and one rounding multiplication, so subnormal results are
    rounded once, like libm's; below -745.2 the result is 0.
    """
    t = -750.0 if t < -750.0 else t  # max(t, -750.0): see the note on min and max
    k = int(math.floor(t * _LOG2E + 0.5))  # an int on both targets (CUDA's floor is a float)
    kf = float(k)
    hi = t - kf * _LN2_HI
    lo = kf * _LN2_LO
    r = hi - lo
    rr = r * r
    c = r - rr * (_EXP_P1 + rr * (_EXP_P2 + rr * (_EXP_P3 + rr * (_EXP_P4 + rr * _EXP_P5))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    # The first product is exact (a normal number); the second rounds once, also when subnormal.
    low, high = _pow2_factors(k)
    return (y * low) * high


@inlined
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


@inlined
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


@inlined
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


# numpy twins of the three functions above, on float64 arrays: the same operations in the same
# order, each select a ``np.where`` (a scalar ``min(a, b)`` is ``b if b < a else a``), so the same
# bits (tests/test_posterior.py compares them byte for byte). For inputs so small that compiling
# a kernel costs more than numpy's passes (the posterior map of a few hundred rows). Call them
# under ``np.errstate(all="ignore")``: like the kernels, they may form infinities in a discarded
# side of a select.


def exp_nonpositive_array(t):
    """:func:`_exp_nonpositive` of every element of the float64 array ``t`` (all ``<= 0``)."""
    t = np.where(t < -750.0, -750.0, t)
    kf = np.floor(t * _LOG2E + 0.5)
    k = kf.astype(np.int64)
    hi = t - kf * _LN2_HI
    lo = kf * _LN2_LO
    r = hi - lo
    rr = r * r
    c = r - rr * (_EXP_P1 + rr * (_EXP_P2 + rr * (_EXP_P3 + rr * (_EXP_P4 + rr * _EXP_P5))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    low = (k & 31) - 96
    return (y * np.ldexp(1.0, low)) * np.ldexp(1.0, k - low)


def log1p_unit_array(e, u, inv_u):
    """:func:`_log1p_unit` of float64 arrays."""
    c = (e - (u - 1.0)) * inv_u
    big = u > _SQRT2
    return _log_reduced_array(np.where(big, u * 0.5, u), np.where(big, 1.0, 0.0), c)


def log1p_nonnegative_array(t):
    """:func:`_log1p_nonnegative` of every element of the float64 array ``t`` (all ``>= 0``)."""
    u = 1.0 + t
    c = (t - (u - 1.0)) / u
    # The halving steps stop at the largest dk with u >= 2**dk sqrt(2)/2 (u >= 1, every scaling
    # exact): with u = f 2**e, f in [1/2, 1), that is dk = e when f >= sqrt(2)/2, else e - 1.
    f, e = np.frexp(u)
    low = f < _SQRT2 / 2.0
    m = np.where(low, f * 2.0, f)
    dk = (e - low).astype(np.float64)
    return _log_reduced_array(m, dk, c)


def _true_class_arrays(a, s_rest):
    """:func:`_true_class_pq`, :func:`_true_class_log_p` and :func:`_true_class_log_q` of float64
    arrays: ``(P, q, e, log P, log q)``."""
    s = 1.0 + s_rest
    e = exp_nonpositive_array(-np.abs(a))
    neg = a <= 0.0
    v = s * e
    inv = 1.0 / np.where(neg, s + e, 1.0 + v)
    p = np.where(neg, e, 1.0) * inv
    q = np.where(neg, s, v) * inv
    l1 = log1p_nonnegative_array(np.where(neg, s_rest + e, (1.0 + s_rest) * e))
    log_p = np.where(neg, a - l1, -l1)
    l2 = log1p_nonnegative_array(np.where(neg, e / s, s_rest))
    log_q = np.where(neg, -l2, (l2 - a) - log1p_nonnegative_array(s * e))
    return p, q, e, log_p, log_q


def focal_terms_array(p, q, log_p, log_q, gamma, a):
    """:func:`focal_terms` of float64 arrays (``gamma`` a float)."""
    if gamma == 0.0:
        factor = 1.0
    elif gamma == 2.0:
        factor = q * q
    elif gamma == 1.0:
        factor = q
    else:
        factor = exp_nonpositive_array(gamma * log_q)
    am = a * factor
    p_log_p = p * log_p
    fl = -am * log_p
    d1 = am * (gamma * p_log_p - q)
    d2 = am * (gamma * p_log_p * (q - gamma * p) + (2.0 * gamma + 1.0) * p * q)
    return fl, d1, d2, am


#: :func:`_log_reduced` of float64 arrays: its Python source, plain arithmetic without selects,
#: runs on arrays as it is.
_log_reduced_array = _log_reduced.py_func


@inlined
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


@inlined
def _modulating_factor(q, log_q, gamma):
    """``(1 - p_t) ** gamma`` in log space, with exact fast paths for gamma in {0, 1, 2}."""
    if gamma == 0.0:
        return 1.0
    if gamma == 2.0:
        return q * q
    if gamma == 1.0:
        return q
    return _exp_nonpositive(gamma * log_q)


@inlined
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
    loss, d1, d2, am = focal_terms(p_t, q, log_p_t, log_q, gamma, a)
    # s * d1 rounds as s * a * m * (...) did: s is +-1.
    grad = s * d1
    gauss_newton = am * p_t * q
    if hessian_mode == HESSIAN_EXACT:
        hess = d2
    elif hessian_mode == HESSIAN_GAUSS_NEWTON:
        hess = gauss_newton
    else:  # HESSIAN_BOUNDED: the larger of the two
        hess = d2 if d2 > gauss_newton else gauss_newton
    if not hess > HESSIAN_FLOOR:
        hess = HESSIAN_FLOOR
    return loss, grad, hess


@inlined
def _store_weighted(i, w, weighted, g, h, grad_out, hess_out):
    """``grad_out[i] = w_i g``, ``hess_out[i] = w_i h`` (no multiplication when unweighted)."""
    if weighted:
        g *= w[i]
        h *= w[i]
    grad_out[i] = g
    hess_out[i] = h


@inlined
def _focal_grad_hess_store(
    i, y, x, w, weighted, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out
):
    _, g, h = focal_point(y[i], np.float64(x[i]), gamma, alpha_pos, alpha_neg, hessian_mode)
    _store_weighted(i, w, weighted, g, h, grad_out, hess_out)


@inlined
def _gradient_norm_parts(y, x):
    """Return ``(p - y, p (1 - p), g = |p - y|, CE)`` for one sample."""
    if y > 0.5:
        z = x
    else:
        z = -x
    p_t, q, log_p_t, _ = _logistic_parts(z)
    diff = q if y <= 0.5 else -q
    return diff, p_t * q, q, -log_p_t


@inlined
def bin_of(g, bins, edges):
    """Bin of ``g`` in [0, 1]: half-open ``[edges[b], edges[b+1])``, ``edges[-1] = 1 + 1e-6``."""
    b = int(g * bins)
    b = bins - 1 if bins - 1 < b else b
    # int(g * bins) can be off by one from the edge comparisons after rounding: settle it exactly.
    # Written without branches (edges increase, so at most one side applies) to keep loops SIMD.
    down = g < edges[b]
    up = g >= edges[b + 1]
    return b - np.int64(down) + np.int64(up)


@inlined
def _ghm_bins_sample(i, y, x, w, weighted, grad_out, hess_out):
    """Weighted CE gradient and floored Hessian of sample ``i`` into the outputs; returns ``g``."""
    diff, hess, g, _ = _gradient_norm_parts(y[i], np.float64(x[i]))
    if not hess > HESSIAN_FLOOR:
        hess = HESSIAN_FLOOR
    _store_weighted(i, w, weighted, diff, hess, grad_out, hess_out)
    return g


@inlined
def _scale_one(i, factor, grad, hess):
    grad[i] *= factor
    hess[i] *= factor


# --------------------------------------------------------------------------------------------
# Per-row math of the softmax: the true class against the others
# --------------------------------------------------------------------------------------------


@inlined
def _true_class_pq(a, s_rest):
    """``(P, q, e)`` of the true class from ``a = z_y - mo`` and ``s_rest``, with ``e = exp(-|a|)``.

    ``P = e^a / (e^a + s)`` with ``s = 1 + s_rest``: the binary pieces of ``t = a - log s`` without
    forming ``t`` (whose rounding would cost ``|t|`` ulps in ``q``), from one ``exp``::

        a <= 0:  E = e^a,     P = E / (s + E),  q = s / (s + E)
        a >  0:  v = s e^-a,  P = 1 / (1 + v),  q = v / (1 + v)

    Nothing overflows (``v`` may underflow). Both cases are written with selects, not branches: a
    branch in the loop over a block's rows keeps it from compiling to SIMD code (measured: 3x
    slower). With K = 2 (``s_rest = 0``) ``P`` and ``q`` are computed exactly as the binary kernels
    compute them from the margin difference.
    """
    s = 1.0 + s_rest
    e = _exp_nonpositive(-abs(a))
    neg = a <= 0.0
    v = s * e
    inv = 1.0 / ((s + e) if neg else (1.0 + v))
    return (e if neg else 1.0) * inv, (s if neg else v) * inv, e


@inlined
def _true_class_log_p(a, s_rest, e):
    """``log P`` (see :func:`_true_class_pq`; ``e = exp(-|a|)``)::

    a <= 0:  log P = a - log1p(s_rest + E)
    a >  0:  log P = -log1p(v)
    """
    l1 = _log1p_nonnegative((s_rest + e) if a <= 0.0 else (1.0 + s_rest) * e)
    return (a - l1) if a <= 0.0 else -l1


@inlined
def _true_class_log_q(a, s_rest, e):
    """``log q`` (see :func:`_true_class_pq`; ``e = exp(-|a|)``), without ``log(0)``::

    a <= 0:  log q = -log1p(E / s)
    a >  0:  log q = (log1p(s_rest) - a) - log1p(v)
    """
    s = 1.0 + s_rest
    l2 = _log1p_nonnegative((e / s) if a <= 0.0 else s_rest)
    return -l2 if a <= 0.0 else (l2 - a) - _log1p_nonnegative(s * e)


@inlined
def focal_terms(p, q, log_p, log_q, gamma, a):
    """Binary focal loss of the margin ``t`` and its derivatives in ``t``, from its pieces.

    Returns ``(FL, FL', FL'', a m)`` with ``P = sigmoid(t)``, ``q = 1 - P``, ``m = q ** gamma``
    (the binary focal loss in the margin toward the true class, and the softmax focal loss in the
    true class's margin against the others)::

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
    return fl, d1, d2, am
