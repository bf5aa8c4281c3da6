"""Multi-class helpers in plain Python: the best constant margin vector of the softmax focal loss.

Over a constant margin vector ``c`` (every sample gets ``p = softmax(c)``) the weighted total of the
softmax focal loss is ``sum_j N_j FL(p_j)`` with ``N_j = alpha_j W_j`` (``W_j`` the total sample
weight of class j). The gradient of a class-j sample is ``w(p_j) (p - e_j)`` with the focal weight

    w(P) = -FL'(t) / (alpha q) = q^(gamma - 1) (q - gamma P log P),     q = 1 - P,

so the total gradient vanishes iff ``p_k sum_j N_j w(p_j) = N_k w(p_k)`` for every k, i.e.
``P_k / w(P_k) = lambda N_k`` with one common ``lambda``. ``phi(P) = P / w(P)`` increases from 0
(docs/math.md), so each ``P_k = phi^{-1}(lambda N_k)`` is a monotone 1-D root, and ``lambda`` is the
root of ``sum_k P_k(lambda) = 1``, monotone too: a nested pair of 1-D roots. For gamma = 0,
``w = 1`` and ``P_k = N_k / sum_j N_j``: the log class priors.

Everything is solved in log space, on the margin ``t_k = logit(P_k)``, so that classes with tiny or
dominant weight keep full relative precision.
"""

import math

import numpy as np
from scipy.optimize import brentq
from scipy.special import logsumexp

__all__ = ["softmax_focal_best_constant"]

#: The inner roots are searched for ``t`` in this range: P from about 1e-435 to 1 - 1e-435.
_T_RANGE = 1000.0


def _log_parts(t):
    """``(log P, log q)`` of ``P = sigmoid(t)`` without cancellation, for any finite ``t``."""
    if t >= 0.0:
        log_p = -math.log1p(math.exp(-t))
        return log_p, log_p - t
    log_q = -math.log1p(math.exp(t))
    return log_q + t, log_q


def _log_phi(t, gamma):
    """``log(P / w(P))`` at ``P = sigmoid(t)``: increasing in ``t``."""
    log_p, log_q = _log_parts(t)
    p = math.exp(log_p)
    if t < 0.0:
        # q >= 1/2; q - gamma P log P: two non-negative terms, no cancellation.
        log_bracket = math.log(math.exp(log_q) - gamma * p * log_p)
    else:
        # q may underflow: q - gamma P log P = q (1 + gamma P (-log P) / q), and with
        # u = exp(-t), -log P / q = log1p(u) (1 + u) / u, which tends to 1 as u -> 0.
        u = math.exp(-t)
        ratio = math.log1p(u) * (1.0 + u) / u if u > 0.0 else 1.0
        log_bracket = log_q + math.log1p(gamma * p * ratio)
    log_w = (gamma - 1.0) * log_q + log_bracket
    return log_p - log_w


def _class_margin(log_target, gamma):
    """``t`` with ``log phi(sigmoid(t)) = log_target`` (clamped to the search range)."""
    lo, hi = -_T_RANGE, _T_RANGE
    f_lo = _log_phi(lo, gamma) - log_target
    if f_lo >= 0.0:
        return lo
    f_hi = _log_phi(hi, gamma) - log_target
    if f_hi <= 0.0:
        return hi
    return brentq(
        lambda t: _log_phi(t, gamma) - log_target,
        lo,
        hi,
        xtol=1e-300,
        rtol=4.0 * np.finfo(float).eps,
        maxiter=500,
    )


def _class_log_probs(log_lambda, log_n, gamma):
    return np.array([_log_parts(_class_margin(log_lambda + ln, gamma))[0] for ln in log_n])


def _check_positive_per_class(name, values, why=""):
    """Raise ValueError quoting the first class whose value is not finite and > 0."""
    bad = ~(np.isfinite(values) & (values > 0.0))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} must be finite and > 0, got {float(values[k])!r} for class {k}{why}"
        )


def softmax_focal_best_constant(class_weights, gamma, alpha=None):
    """The constant margin vector minimising the weighted softmax focal loss.

    Parameters
    ----------
    class_weights : array-like of shape (K,)
        Total sample weight of each class (the class counts when unweighted), all > 0.
    gamma : float >= 0
        Focusing parameter.
    alpha : None or array-like of shape (K,)
        Per-class weights, all > 0; None for no class weighting.

    Returns
    -------
    ndarray of shape (K,), float64
        ``c_k = log P_k - mean_j log P_j``: normalised to **mean 0** (equivalently sum 0), where
        ``P = softmax(c)`` is the stationary point ``P_k / w(P_k) = lambda alpha_k W_k`` (see the
        module docstring). With gamma = 0 these are the log class priors (centred).

    Raises
    ------
    ValueError
        On a class weight or alpha that is not finite and positive (the best margin of a class
        with no weight is -inf), fewer than 2 classes, lengths that differ, or a bad gamma.
    """
    weights = np.asarray(class_weights, dtype=np.float64)
    if weights.ndim != 1 or weights.shape[0] < 2:
        raise ValueError(
            "class_weights must be a 1-D array of at least 2 class totals, got shape "
            f"{weights.shape}"
        )
    _check_positive_per_class(
        "class_weights", weights, ": a class with no weight has a best constant margin of -inf"
    )
    gamma = float(gamma)
    if not (math.isfinite(gamma) and gamma >= 0.0):
        raise ValueError(f"gamma must be a finite number >= 0, got {gamma!r}")
    if alpha is None:
        totals = weights
    else:
        alpha = np.asarray(alpha, dtype=np.float64)
        if alpha.shape != weights.shape:
            raise ValueError(
                f"alpha must have one weight per class ({weights.shape[0]}), got shape "
                f"{alpha.shape}"
            )
        _check_positive_per_class("alpha", alpha)
        totals = alpha * weights
    log_n = np.log(totals)
    if gamma == 0.0:
        log_p = log_n - (np.log(totals.sum()))
        return log_p - log_p.mean()

    def excess(log_lambda):
        # log of sum_k P_k(lambda), increasing in lambda, 0 at the root.
        return float(logsumexp(_class_log_probs(log_lambda, log_n, gamma)))

    # phi(P) ~ P for small P, so lambda ~ 1 / sum(N) is the scale; widen until the sign changes.
    centre = -math.log(totals.sum())
    lo, hi = centre - 1.0, centre + 1.0
    while excess(lo) > 0.0:
        lo -= 2.0 * (hi - lo)
    while excess(hi) < 0.0:
        hi += 2.0 * (hi - lo)
    log_lambda = brentq(excess, lo, hi, xtol=1e-15, rtol=4.0 * np.finfo(float).eps, maxiter=500)
    log_p = _class_log_probs(log_lambda, log_n, gamma)
    return log_p - log_p.mean()
