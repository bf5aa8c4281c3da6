"""Numba kernels of :func:`boostloss.losses._posterior.posterior_from_margin` for gamma > 0.

The inputs are validated float64 margins (1-D, or C-contiguous (n, K)); the outputs are float64
arrays that the caller allocates. Each kernel returns the number of non-finite margins it met (their
rows are left unspecified), so validation costs no extra pass.

Only the package's straight-line exp and log1p (``_kernels/binary.py``: fdlibm's algorithms
without libm calls) are used, and the per-sample math has selects rather than branches, so the
loops over samples compile to SIMD code.

Binary. MATH.md's map ``logit q = (gamma - 1) x + log(e^x + gamma softplus(x)) - log(e^-x + gamma
softplus(-x))`` is odd in x; for ``a = |x|``, ``u = e^-a``, ``l = log1p(u)`` it is
``sign(x) [(1 + gamma) a - log R]`` with

    R = (u + gamma l) / (u + gamma (a + l) u^2)

(in [1, 1 + gamma]; R = 1 + gamma once u < 2^-1000; below a = 2^-26 the logit is its linear term
``[(1 + gamma) - gamma (2 log 2 - 1) / (1 + gamma log 2)] a``, so that rounding R cannot make the
map step back near 0)

so the probability of the class the margin points to is ``1 / (1 + V)`` with
``V = R exp(-(1 + gamma) a - sign(x) shift)`` (``shift`` the class-weight correction): no log at
all, one exp of a non-positive argument (``1 / V`` when the argument is positive), nothing
overflows.

K classes: with ``t_k = z_k - LSE_{j != k} z_j`` (the binary margin toward class k), ``u = e^-|t|``,
``l = log1p(u)``::

    log w(t) = (gamma - 1) softplus(t) - log(e^-t + gamma softplus(-t))
             = gamma t + (gamma - 1) l - log1p(gamma l / u)           (t >= 0)
             = t + (gamma - 1) l - log1p(gamma (|t| + l) u)           (t < 0)

and ``q = softmax_k(log w(t_k) - log class_weight_k)``.
"""

import numpy as np

from .math import (
    _exp_nonpositive,
    _log1p_nonnegative,
    _log1p_unit,
    exp_nonpositive_array,
    inlined,
    log1p_nonnegative_array,
    log1p_unit_array,
)
from .threads import numpy_twin, row_kernel, rows_of, run_spans

#: Below this ``u = e^-|x|`` the ratio R of the binary map is 1 + gamma to the last bit (and
#: ``u`` may be subnormal).
_U_TINY = 2.0**-1000
#: Below this |x| the binary map's logit is its linear term ``L'(0) x`` (relative error below
#: x^2, under an ulp), exactly monotone where R's rounding would be as large as R - 1.
_LINEAR_BELOW = 2.0**-26
_LN2 = 0.6931471805599453
#: Rows per block of the K-class kernel (its scratch stays in the L1 cache).
ROW_BLOCK = 128


@inlined
def _softplus_parts(a):
    """``(u, l) = (e^-a, log1p(e^-a))`` for ``a >= 0``."""
    u = _exp_nonpositive(-a)
    big = 1.0 + u
    return u, _log1p_unit(u, big, 1.0 / big)


@inlined
def _binary_pair(x, gamma, shift):
    """``(1 - q, q)`` of the margin ``x`` of a binary focal model, ``shift = log(w_0 / w_1)``."""
    a = abs(x)
    u, l1 = _softplus_parts(a)
    tiny = u < _U_TINY
    linear = a < _LINEAR_BELOW
    num = 1.0 + gamma if tiny else (1.0 if linear else u + gamma * l1)
    den = 1.0 if (tiny or linear) else u + gamma * ((a + l1) * u) * u
    slope = (
        (1.0 + gamma) - gamma * (2.0 * _LN2 - 1.0) / (1.0 + gamma * _LN2)
        if linear
        else (1.0 + gamma)
    )
    toward_positive = x >= 0.0
    arg = -slope * a - (shift if toward_positive else -shift)
    e = _exp_nonpositive(-abs(arg))
    low = arg <= 0.0
    # V = R e^arg (low) or 1 / V = e^-arg / R: w <= 1 + gamma either way
    w = e * ((num if low else den) / (den if low else num))
    # 1 / (1 + w) and w / (1 + w) = 1 / (1 + 1 / w): each a chain of correctly rounded monotone
    # steps, so the probabilities never step back as w moves (w below 2^-1000: w itself)
    inv = 1.0 / (1.0 + w)
    small = w if w < _U_TINY else 1.0 / (1.0 + 1.0 / w)
    toward = inv if low else small
    away = small if low else inv
    if toward_positive:
        return away, toward
    return toward, away


@row_kernel
def _binary_posterior(x, gamma, shift, q0_out, q1_out):
    """``q0_out[i], q1_out[i] = 1 - q_i, q_i``; returns the number of non-finite margins."""
    bad = 0
    for i in range(x.shape[0]):
        xi = x[i]
        finite = xi - xi == 0.0
        bad += 0 if finite else 1
        q0, q1 = _binary_pair(xi if finite else 0.0, gamma, shift)
        q0_out[i] = q0
        q1_out[i] = q1
    return bad


_binary_posterior_rows = rows_of(_binary_posterior, 0, 3, 4)


def _binary_posterior_numpy(x, gamma, shift, q0_out, q1_out):
    """:func:`_binary_posterior` in numpy: :func:`_binary_pair`'s operations on the whole array,
    each select a ``np.where``; the same bits."""
    finite = np.isfinite(x)
    bad = x.shape[0] - int(np.count_nonzero(finite))
    x = np.where(finite, x, 0.0)
    a = np.abs(x)
    u, l1 = _softplus_parts_array(a)
    tiny = u < _U_TINY
    linear = a < _LINEAR_BELOW
    num = np.where(tiny, 1.0 + gamma, np.where(linear, 1.0, u + gamma * l1))
    den = np.where(tiny | linear, 1.0, u + gamma * ((a + l1) * u) * u)
    slope = np.where(
        linear, (1.0 + gamma) - gamma * (2.0 * _LN2 - 1.0) / (1.0 + gamma * _LN2), 1.0 + gamma
    )
    toward_positive = x >= 0.0
    arg = -slope * a - np.where(toward_positive, shift, -shift)
    e = exp_nonpositive_array(-np.abs(arg))
    low = arg <= 0.0
    w = e * (np.where(low, num, den) / np.where(low, den, num))
    inv = 1.0 / (1.0 + w)
    small = np.where(w < _U_TINY, w, 1.0 / (1.0 + 1.0 / w))
    toward = np.where(low, inv, small)
    away = np.where(low, small, inv)
    q0_out[:] = np.where(toward_positive, away, toward)
    q1_out[:] = np.where(toward_positive, toward, away)
    return bad


def _softplus_parts_array(a):
    u = exp_nonpositive_array(-a)
    big = 1.0 + u
    return u, log1p_unit_array(u, big, 1.0 / big)


#: Up to this many rows, while its kernel is not in the process, the posterior map runs in numpy
#: (the kernels' twins, the same bits; :func:`threads.numpy_twin`): a first prediction on a few
#: hundred rows then compiles nothing (the K-class kernel is 1-3 s of compiling, the binary one
#: 0.3-0.6 s), for 0.3-1.5 ms a call (docs/performance.md).
NUMPY_POSTERIOR_UPTO = 1024


def binary_posterior(x, gamma, shift, q0_out, q1_out):
    """``q0_out[i], q1_out[i] = 1 - q_i, q_i`` of the margins ``x`` (see :func:`_binary_pair`);
    returns the number of non-finite margins."""
    if numpy_twin(x.shape[0], NUMPY_POSTERIOR_UPTO, _binary_posterior):
        with np.errstate(all="ignore"):
            return _binary_posterior_numpy(x, gamma, shift, q0_out, q1_out)
    return _binary_posterior_rows(x, gamma, shift, q0_out, q1_out)


@inlined
def _focal_weight_parts(t, u, l1, gamma):
    """``(s, d)`` with ``log w(t) = s - log1p(d)``, given ``u = e^-|t|`` and ``l1 = log1p(u)``:
    ``s = gamma t + (gamma - 1) l1``, ``d = gamma l1 / u`` for t >= 0; ``s = t + (gamma - 1) l1``,
    ``d = gamma (|t| + l1) u`` for t < 0 (``d`` in [0, 1.3 gamma], capped at 1e300)."""
    positive = t >= 0.0
    ratio = l1 / (u if u > 0.0 else 1.0) if u > 0.0 else 1.0
    d = gamma * ratio if positive else gamma * ((l1 - t) * u)
    linear = gamma * t if positive else t
    return linear + (gamma - 1.0) * l1, min(d, 1e300)


# The scratch comes from the caller (threads.run_spans): an allocation compiled into the kernel
# costs more to compile than a loop.
@row_kernel
def _softmax_posterior(z, gamma, log_weights, out, scratch, start, stop):
    """``out[i] = softmax_k(log w(t_ik) - log_weights_k)`` for the rows ``start .. stop - 1``
    (no weights when ``log_weights`` is empty), C-contiguous float64 ``z`` and ``out``, block by
    block of ROW_BLOCK rows on the ``scratch`` arrays (:func:`_posterior_scratch`): the transposed
    ``zt``, ``et`` (K, ROW_BLOCK), ``top``, ``second`` (ROW_BLOCK,) and ``row`` (6, ROW_BLOCK)
    (per-row values); returns the number of rows with a non-finite margin.

    Per row, with ``m1`` the largest margin (class ``top``), ``m2`` the second largest (class
    ``second``), ``E_j = e^{z_j - m2}``, ``c = e^{m2 - m1}`` and ``R = sum_{j != top, second} E_j``:
    ``LSE_{j != top} = m2 + log1p(R)`` and, for ``k != top``, ``LSE_{j != k} = m1 + log1p(c S_k)``
    with ``S_k = R + 1 - E_k`` (``R`` for ``k = second``): no sum of exps is subtracted from itself,
    and ``e^{t_k} = c E_k / (1 + c S_k)`` needs no exp of its own. With ``log w = s - log1p(d)``
    (:func:`_focal_weight_parts`), ``q_k`` is proportional to ``e^{s_k - max s} / (1 + d_k)``: no
    log for the weights, and ``1 / (1 + d_k)`` lies in [1 / (1 + 1.3 gamma), 1], so the sum cannot
    overflow or vanish.

    One kernel, not a block function called by a kernel: a block function's code is compiled
    again inside every kernel that links it (docs/performance.md).
    """
    zt, et, top, second, row = scratch
    n_classes = z.shape[1]
    weighted = log_weights.shape[0] > 0
    t_bound = 1e300 / (1.0 + gamma)
    m1 = row[0]
    m2 = row[1]
    rest = row[2]
    c = row[3]
    t_top = row[4]
    fmax = row[5]
    bad = 0
    for lo in range(start, stop, ROW_BLOCK):
        m = min(ROW_BLOCK, stop - lo)
        for b in range(m):
            m1[b] = -np.inf
            m2[b] = -np.inf
            rest[b] = 0.0
            fmax[b] = -np.inf
            top[b] = 0
            second[b] = 0
        for b in range(m):
            for k in range(n_classes):
                zt[k, b] = z[lo + b, k]
        for b in range(m):
            check = 0.0
            for k in range(n_classes):
                check += zt[k, b] - zt[k, b]
            if check != 0.0:
                bad += 1
                for k in range(n_classes):
                    zt[k, b] = 0.0
        for k in range(n_classes):
            for b in range(m):
                v = zt[k, b]
                bigger = v > m1[b]
                top[b] = k if bigger else top[b]
                m1[b] = v if bigger else m1[b]
        for k in range(n_classes):
            for b in range(m):
                v = zt[k, b] if k != top[b] else -np.inf
                bigger = v > m2[b]
                second[b] = k if bigger else second[b]
                m2[b] = v if bigger else m2[b]
        for k in range(n_classes):
            for b in range(m):
                e = _exp_nonpositive(min(zt[k, b] - m2[b], 0.0))
                et[k, b] = e
                rest[b] += e if (k != top[b] and k != second[b]) else 0.0
        for b in range(m):
            c[b] = _exp_nonpositive(m2[b] - m1[b])
            t_top[b] = (m1[b] - m2[b]) - _log1p_nonnegative(rest[b])
        for k in range(n_classes):
            log_wk = log_weights[k] if weighted else 0.0
            for b in range(m):
                is_top = k == top[b]
                e = et[k, b]
                s_k = rest[b] if k == second[b] else (rest[b] - e) + 1.0
                cs = c[b] * s_k
                t_other = (zt[k, b] - m1[b]) - _log1p_nonnegative(cs)
                u_other = c[b] * e / (1.0 + cs)
                # the top class: e^{-t} = c (1 + R); t < 0 only near a tie, where c >= 1 / K
                ec = c[b] * (1.0 + rest[b])
                u_top = min(ec, 1.0) if t_top[b] >= 0.0 else 1.0 / ec
                # |t| beyond 1e300 / (1 + gamma) (margins apart by more than the float range) gives
                # probabilities of exactly 0 or 1 either way; the bound keeps log w finite
                t = min(max(t_top[b] if is_top else t_other, -t_bound), t_bound)
                u = u_top if is_top else u_other
                big = 1.0 + u
                l1 = _log1p_unit(u, big, 1.0 / big)
                f, d = _focal_weight_parts(t, u, l1, gamma)
                f -= log_wk
                et[k, b] = f
                zt[k, b] = 1.0 / (1.0 + d)
                fmax[b] = max(fmax[b], f)
        for b in range(m):
            rest[b] = 0.0
        for k in range(n_classes):
            for b in range(m):
                e = _exp_nonpositive(et[k, b] - fmax[b]) * zt[k, b]
                et[k, b] = e
                rest[b] += e
        for b in range(m):
            inv = 1.0 / rest[b]
            for k in range(n_classes):
                out[lo + b, k] = et[k, b] * inv
    return bad


def _posterior_scratch(n_classes):
    """One range's scratch of :func:`_softmax_posterior`."""
    return lambda: (
        np.empty((n_classes, ROW_BLOCK)),
        np.empty((n_classes, ROW_BLOCK)),
        np.empty(ROW_BLOCK, dtype=np.int64),
        np.empty(ROW_BLOCK, dtype=np.int64),
        np.empty((6, ROW_BLOCK)),
    )


def _softmax_posterior_numpy(z, gamma, log_weights, out):
    """:func:`_softmax_posterior` in numpy: its loops over the rows of a block are whole-column
    operations (the classes in the same order), each select a ``np.where``; the same bits."""
    n_classes = z.shape[1]
    weighted = log_weights.shape[0] > 0
    t_bound = 1e300 / (1.0 + gamma)
    zt = np.array(z.T, order="C")
    finite = np.isfinite(zt).all(axis=0)
    bad = z.shape[0] - int(np.count_nonzero(finite))
    if bad:
        zt[:, ~finite] = 0.0
    m1 = np.full(z.shape[0], -np.inf)
    top = np.zeros(z.shape[0], dtype=np.int64)
    for k in range(n_classes):
        bigger = zt[k] > m1
        top = np.where(bigger, k, top)
        m1 = np.where(bigger, zt[k], m1)
    m2 = np.full(z.shape[0], -np.inf)
    second = np.zeros(z.shape[0], dtype=np.int64)
    for k in range(n_classes):
        v = np.where(k != top, zt[k], -np.inf)
        bigger = v > m2
        second = np.where(bigger, k, second)
        m2 = np.where(bigger, v, m2)
    et = np.empty_like(zt)
    rest = np.zeros(z.shape[0])
    for k in range(n_classes):
        d = zt[k] - m2
        e = exp_nonpositive_array(np.where(d > 0.0, 0.0, d))
        et[k] = e
        rest = rest + np.where((k != top) & (k != second), e, 0.0)
    c = exp_nonpositive_array(m2 - m1)
    t_top = (m1 - m2) - log1p_nonnegative_array(rest)
    ec = c * (1.0 + rest)
    u_top = np.where(t_top >= 0.0, np.where(ec > 1.0, 1.0, ec), 1.0 / ec)
    fmax = np.full(z.shape[0], -np.inf)
    for k in range(n_classes):
        log_wk = log_weights[k] if weighted else 0.0
        is_top = k == top
        e = et[k]
        s_k = np.where(k == second, rest, (rest - e) + 1.0)
        cs = c * s_k
        t_other = (zt[k] - m1) - log1p_nonnegative_array(cs)
        u_other = c * e / (1.0 + cs)
        t = np.where(is_top, t_top, t_other)
        t = np.where(-t_bound > t, -t_bound, t)
        t = np.where(t_bound < t, t_bound, t)
        u = np.where(is_top, u_top, u_other)
        big = 1.0 + u
        l1 = log1p_unit_array(u, big, 1.0 / big)
        positive = t >= 0.0
        ratio = np.where(u > 0.0, l1 / np.where(u > 0.0, u, 1.0), 1.0)
        d = np.where(positive, gamma * ratio, gamma * ((l1 - t) * u))
        f = np.where(positive, gamma * t, t) + (gamma - 1.0) * l1
        f = f - log_wk
        et[k] = f
        zt[k] = 1.0 / (1.0 + np.where(d > 1e300, 1e300, d))
        fmax = np.where(f > fmax, f, fmax)
    rest = np.zeros(z.shape[0])
    for k in range(n_classes):
        e = exp_nonpositive_array(et[k] - fmax) * zt[k]
        et[k] = e
        rest = rest + e
    inv = 1.0 / rest
    for k in range(n_classes):
        out[:, k] = et[k] * inv
    return bad


def softmax_posterior(z, gamma, log_weights, out):
    """:func:`_softmax_posterior` over every row, on the kernels' threads (or numpy's twin, see
    :data:`NUMPY_POSTERIOR_UPTO`)."""
    if numpy_twin(z.shape[0], NUMPY_POSTERIOR_UPTO, _softmax_posterior):
        with np.errstate(all="ignore"):
            return _softmax_posterior_numpy(z, gamma, log_weights, out)
    args = (z, gamma, log_weights, out)
    scratch = _posterior_scratch(z.shape[1])
    return run_spans(_softmax_posterior, args, z.shape[0], ROW_BLOCK, scratch)


def compile_posterior(n_classes, n_rows=None):
    """Compile (or load) the posterior kernel of ``n_classes`` classes (2: the binary map) when
    ``n_rows`` rows (None: any number) reach it, for a warm-up ahead of a large prediction."""
    if n_rows is not None and n_rows <= NUMPY_POSTERIOR_UPTO:
        return
    if n_classes == 2:
        columns = np.empty((2, 1))
        _binary_posterior(np.zeros(1), 2.0, 0.0, columns[0], columns[1])
    else:
        z = np.zeros((1, n_classes))
        scratch = _posterior_scratch(n_classes)()
        _softmax_posterior(z, 2.0, np.empty(0), np.empty_like(z), scratch, 0, 1)
