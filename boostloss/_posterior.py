"""From a focal model's margin to the class posterior: the inverse of the focal risk's minimiser.

A model trained with focal loss converges to the minimiser of the focal risk, which is a strictly
increasing function of the class posterior but not the posterior itself (focal loss is
classification-calibrated, not a proper scoring rule). :func:`posterior_from_margin` inverts that
function in closed form (Charoenphakdee, Vongkulbhisal, Chairatanakul and Sugiyama, CVPR 2021, "On
Focal Loss for Class-Posterior Probability Estimation: A Theoretical Perspective"; Komisarenko and
Kull, ECAI 2024, for K classes), in margin space so that it is exact and finite for every finite
margin. MATH.md's section "From a focal model's margin to the class posterior" derives it.

Binary (x the margin)::

    logit q = (gamma - 1) x + log(e^x + gamma softplus(x)) - log(e^-x + gamma softplus(-x))
              + log(w_0 / w_1)

K classes (t_k = z_k - LSE_{j != k} z_j, the binary margin toward class k)::

    log w_focal(t) = (gamma - 1) softplus(t) - log(e^-t + gamma softplus(-t))
    q = softmax_k(log w_focal(t_k) - log w_k)

``class_weights`` are the per-class training weights ``w`` (a focal ``alpha``: ``(1 - alpha,
alpha)``; a class-weighted logistic with positive weight ``s``: ``(1, s)``), undone by the
prior-odds correction. ``gamma = 0`` without weights is the plain sigmoid / softmax.
"""

import numbers

import numpy as np
from scipy.special import expit, softmax

__all__ = ["posterior_from_margin"]


def _check_gamma(gamma):
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not (
            np.isfinite(gamma) and gamma >= 0.0):
        raise ValueError(f"gamma must be a finite real number >= 0, got {gamma!r}")
    return float(gamma)


def _check_margins(raw_prediction):
    arr = np.asarray(raw_prediction)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"raw_prediction must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim not in (1, 2) or (arr.ndim == 2 and arr.shape[1] < 2):
        raise ValueError(
            "raw_prediction must be 1-D (one margin per sample: a binary model) or of shape (n, K) "
            f"with K >= 2 columns (one margin per class), got shape {arr.shape}"
        )
    x = np.asarray(arr, dtype=np.float64)
    finite = np.isfinite(x)
    if not finite.all():
        bad = np.argwhere(~finite)
        first = tuple(int(i) for i in bad[0])
        where = f"index {first[0]}" if x.ndim == 1 else f"row {first[0]}, column {first[1]}"
        raise ValueError(
            f"raw_prediction contains {bad.shape[0]} non-finite value(s) (first at {where}: "
            f"{float(x[first])!r}); margins must be finite (a diverged model or a bad base margin?)"
        )
    return x


def _check_class_weights(class_weights, n_classes):
    """None, or the logs of ``n_classes`` finite weights > 0 (float64)."""
    if class_weights is None:
        return None
    arr = np.asarray(class_weights)
    if arr.ndim != 1 or arr.dtype == object or arr.dtype.kind not in "biuf":
        raise ValueError(
            f"class_weights must be None or a sequence of {n_classes} weights > 0, got "
            f"{class_weights!r}"
        )
    if arr.shape[0] != n_classes:
        raise ValueError(
            f"class_weights has {arr.shape[0]} weights, but the margins are for {n_classes} classes "
            f"(binary: (w_negative, w_positive)), got {class_weights!r}"
        )
    weights = arr.astype(np.float64)
    bad = np.flatnonzero(~(np.isfinite(weights) & (weights > 0.0)))
    if bad.size:
        k = int(bad[0])
        raise ValueError(
            f"class_weights must be finite and > 0 (a class trained with weight 0 has no posterior), "
            f"got {weights[k].item()!r} for class {k} (class_weights={class_weights!r})"
        )
    return np.log(weights)


def _binary_logit(x, gamma):
    """logit q of the binary map, odd in x, evaluated on a = |x| without cancellation.

    With u = e^-a, l = log1p(u):  L(a) = (1 + gamma) a + log1p((P - Q) / (1 + Q)), where
    P = gamma (a + l) u and Q = gamma l / u, and P - Q = gamma (a u^2 + l expm1(-2a)) / u is formed
    without cancelling (u = 0: P - Q = -gamma).
    """
    a = np.abs(x)
    u = np.exp(-a)
    l1 = np.log1p(u)
    positive = u > 0.0
    safe_u = np.where(positive, u, 1.0)
    ratio = np.where(positive, l1 / safe_u, 1.0)
    diff = np.where(positive, (a * u * u + l1 * np.expm1(-2.0 * a)) / safe_u, -1.0)
    big = (1.0 + gamma) * a + np.log1p(gamma * diff / (1.0 + gamma * ratio))
    return np.copysign(big, x)


def _log_focal_weight(t, gamma):
    """log w_focal(t) = (gamma - 1) softplus(t) - log(e^-t + gamma softplus(-t)), stably."""
    a = np.abs(t)
    u = np.exp(-a)
    l1 = np.log1p(u)
    positive = u > 0.0
    ratio = np.where(positive, l1 / np.where(positive, u, 1.0), 1.0)
    pos = gamma * t + (gamma - 1.0) * l1 - np.log1p(gamma * ratio)
    neg = t + (gamma - 1.0) * l1 - np.log1p(gamma * (a + l1) * u)
    return np.where(t >= 0.0, pos, neg)


def _margin_toward_each_class(z):
    """t_k = z_k - LSE_{j != k} z_j for every k, each log-sum-exp at least log 1 (no cancellation)."""
    n, k = z.shape
    rows = np.arange(n)
    top = np.argmax(z, axis=1)
    m = z[rows, top]
    e = np.exp(z - m[:, None])
    e[rows, top] = 0.0
    others = e.sum(axis=1)  # sum over j != top of e^{z_j - m}
    # k != top: LSE_{j != k} = m + log(1 + others - e_k)
    t = z - m[:, None] - np.log1p(others[:, None] - e)
    # k == top: LSE_{j != top} = m2 + log(sum_{j != top} e^{z_j - m2}), the sum >= 1
    masked = z.copy()
    masked[rows, top] = -np.inf
    m2 = masked.max(axis=1)
    s2 = np.exp(masked - m2[:, None]).sum(axis=1)
    t[rows, top] = m - m2 - np.log(s2)
    return t


def posterior_from_margin(raw_prediction, *, gamma=0.0, class_weights=None):
    """Class posterior of a model trained with focal loss (gamma) and class weights, from its margin.

    Parameters
    ----------
    raw_prediction : array-like of shape (n,) or (n, K)
        Margins: one log-odds per sample (a binary model) or one margin per class (a softmax
        model), float32 or float64. Must be finite.
    gamma : float >= 0, default=0.0
        The focal loss's gamma (0: the logistic / softmax cross-entropy).
    class_weights : sequence of 2 or K floats > 0, optional
        The per-class training weights, undone by the prior-odds correction: binary
        ``(w_negative, w_positive)`` (a focal ``alpha`` is ``(1 - alpha, alpha)``), K classes one
        per class.

    Returns
    -------
    ndarray of shape (n, 2) or (n, K), float64
        Rows sum to 1. Binary: columns ``[sigmoid(-logit q), sigmoid(logit q)]``.
        ``gamma=0`` without weights: the plain sigmoid / softmax of the margin.
    """
    gamma = _check_gamma(gamma)
    x = _check_margins(raw_prediction)
    n_classes = 2 if x.ndim == 1 else x.shape[1]
    log_w = _check_class_weights(class_weights, n_classes)
    if x.ndim == 1:
        logit = x if gamma == 0.0 else _binary_logit(x, gamma)
        if log_w is not None:
            logit = logit + (log_w[0] - log_w[1])
        out = np.empty((x.shape[0], 2))
        out[:, 1] = expit(logit)
        out[:, 0] = expit(-logit)
        return out
    if gamma == 0.0:
        scores = x if log_w is None else x - log_w
    else:
        scores = _log_focal_weight(_margin_toward_each_class(x), gamma)
        if log_w is not None:
            scores = scores - log_w
    return softmax(scores, axis=1)
