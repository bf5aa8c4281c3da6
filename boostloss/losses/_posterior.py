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

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit, log_softmax, softmax

from .._kernels.cache import kernels
from .._kernels.threads import kernel_threads
from .._typing import Float64Array

if TYPE_CHECKING:
    from ._base import _Loss

__all__ = ["posterior_from_margin"]

_NO_WEIGHTS = np.empty(0, dtype=np.float64)


def _check_gamma(gamma: object) -> float:
    if (
        isinstance(gamma, bool)
        or not isinstance(gamma, numbers.Real)
        or not (np.isfinite(float(gamma)) and float(gamma) >= 0.0)
    ):
        raise ValueError(f"gamma must be a finite real number >= 0, got {gamma!r}")
    return float(gamma)


def _check_margins(raw_prediction: ArrayLike) -> Float64Array:
    """float64 margins, 1-D or C-contiguous (n, K) (a copy only when not already so)."""
    arr = np.asarray(raw_prediction)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"raw_prediction must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim not in (1, 2) or (arr.ndim == 2 and arr.shape[1] < 2):
        raise ValueError(
            "raw_prediction must be 1-D (one margin per sample: a binary model) or of shape (n, K) "
            f"with K >= 2 columns (one margin per class), got shape {arr.shape}"
        )
    return np.ascontiguousarray(arr, dtype=np.float64)


def _raise_nonfinite(x: Float64Array) -> NoReturn:
    bad = np.argwhere(~np.isfinite(x))
    first = tuple(int(i) for i in bad[0])
    where = f"index {first[0]}" if x.ndim == 1 else f"row {first[0]}, column {first[1]}"
    raise ValueError(
        f"raw_prediction contains {bad.shape[0]} non-finite value(s) (first at {where}: "
        f"{float(x[first])!r}); margins must be finite (a diverged model or a bad base margin?)"
    )


def _check_class_weights(class_weights: ArrayLike | None, n_classes: int) -> Float64Array | None:
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
            f"class_weights has {arr.shape[0]} weights, but the margins are for {n_classes} "
            f"classes (binary: (w_negative, w_positive)), got {class_weights!r}"
        )
    weights = arr.astype(np.float64)
    bad = np.flatnonzero(~(np.isfinite(weights) & (weights > 0.0)))
    if bad.size:
        k = int(bad[0])
        raise ValueError(
            "class_weights must be finite and > 0 (a class trained with weight 0 has no "
            f"posterior), got {weights[k].item()!r} for class {k} (class_weights={class_weights!r})"
        )
    return np.log(weights)


def posterior_from_margin(
    raw_prediction: ArrayLike, *, gamma: float = 0.0, class_weights: ArrayLike | None = None
) -> Float64Array:
    """Class posterior of a model trained with focal loss (gamma) and class weights, from margins.

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
    if gamma == 0.0:
        # The plain link, the very function (scipy's) the frameworks' probabilities are checked
        # against: the same bits.
        if not np.isfinite(x).all():
            _raise_nonfinite(x)
        if x.ndim == 2:
            return softmax(x if log_w is None else x - log_w, axis=1)
        logit = x if log_w is None else x + (log_w[0] - log_w[1])
        columns = np.empty((2, x.shape[0]))
        expit(logit, out=columns[1])
        np.negative(logit, out=columns[0])
        expit(columns[0], out=columns[0])
        return columns.T
    posterior = kernels("posterior")
    with kernel_threads(x.shape[0]):
        if x.ndim == 1:
            shift = 0.0 if log_w is None else float(log_w[0] - log_w[1])
            columns = np.empty((2, x.shape[0]))
            bad = posterior.binary_posterior(x, gamma, shift, columns[0], columns[1])
            out = columns.T
        else:
            out = np.empty(x.shape)
            bad = posterior.softmax_posterior(
                x, gamma, _NO_WEIGHTS if log_w is None else log_w, out
            )
    if bad:
        _raise_nonfinite(x)
    return out


#: The XGBoost booster attribute (and the estimators' ``posterior_map_``) naming the map.
ATTRIBUTE = "boostloss_posterior"


def loss_posterior_map(loss: _Loss, n_classes: int) -> dict[str, Any]:
    """The map from margins to probabilities of a model of ``n_classes`` classes trained with
    ``loss``, as a JSON-able dict: ``loss`` (its name), ``gamma`` and ``class_weights`` (the
    arguments of :func:`posterior_from_margin`), and ``posterior``: True when the result is the
    class posterior (focal loss), False when it is a score (GHM-C, OHEM: the sigmoid / softmax)."""
    gamma, weights = loss._posterior_map(n_classes)
    return {
        "loss": loss.name,
        "gamma": float(gamma),
        "class_weights": None if weights is None else [float(w) for w in weights],
        "posterior": bool(loss._posterior_is_exact),
    }


def apply_posterior_map(
    raw_prediction: ArrayLike, posterior_map: Mapping[str, Any]
) -> Float64Array:
    """:func:`posterior_from_margin` with the arguments of a :func:`loss_posterior_map` dict."""
    return posterior_from_margin(
        raw_prediction, gamma=posterior_map["gamma"], class_weights=posterior_map["class_weights"]
    )


def _binary_logit(x: Float64Array, gamma: float) -> Float64Array:
    """logit q of the binary map (no class weights), odd in x, in numpy, exact for any margin.

    With a = |x|, u = e^-a, l = log1p(u): L(a) = (1 + gamma) a + log1p((P - Q) / (1 + Q)),
    P = gamma (a + l) u, Q = gamma l / u, where P - Q = gamma (a u^2 + l expm1(-2a)) / u is formed
    without cancelling (u = 0: P - Q = -gamma).
    """
    a = np.abs(x)
    u = np.exp(-a)
    l1 = np.log1p(u)
    positive = u > 0.0
    safe_u = np.where(positive, u, 1.0)
    ratio = np.where(positive, l1 / safe_u, 1.0)
    diff = np.where(positive, (a * u * u + l1 * np.expm1(-2.0 * a)) / safe_u, -1.0)
    return np.copysign((1.0 + gamma) * a + np.log1p(gamma * diff / (1.0 + gamma * ratio)), x)


def _log_focal_weights(z: Float64Array, gamma: float) -> Float64Array:
    """log w(t_k) for every class of the (n, K) margins z (numpy), t_k = z_k - LSE_{j != k} z_j,
    each log-sum-exp formed as log1p of a sum of exps >= 0 (no cancellation)."""
    n = z.shape[0]
    rows = np.arange(n)
    top = np.argmax(z, axis=1)
    m = z[rows, top]
    e = np.exp(z - m[:, None])
    e[rows, top] = 0.0
    others = e.sum(axis=1)
    t = z - m[:, None] - np.log1p(np.maximum(others[:, None] - e, 0.0))
    masked = z.copy()
    masked[rows, top] = -np.inf
    m2 = masked.max(axis=1)
    t[rows, top] = m - m2 - np.log(np.exp(masked - m2[:, None]).sum(axis=1))
    a = np.abs(t)
    u = np.exp(-a)
    l1 = np.log1p(u)
    positive = u > 0.0
    ratio = np.where(positive, l1 / np.where(positive, u, 1.0), 1.0)
    ahead = gamma * t + (gamma - 1.0) * l1 - np.log1p(gamma * ratio)
    behind = t + (gamma - 1.0) * l1 - np.log1p(gamma * (a + l1) * u)
    return np.where(t >= 0.0, ahead, behind)


def decision_from_margin(
    raw_prediction: ArrayLike, *, gamma: float = 0.0, class_weights: ArrayLike | None = None
) -> Float64Array:
    """The log-odds of :func:`posterior_from_margin` (binary, shape (n,)) or its log (K classes,
    shape (n, K)): what ``decision_function`` returns, so that its sign (binary) or argmax agrees
    with the posterior's. The margin itself when the map is the identity (gamma 0, no weights).
    Exact and finite for every finite margin (numpy).
    """
    gamma = _check_gamma(gamma)
    x = _check_margins(raw_prediction)
    if not np.isfinite(x).all():
        _raise_nonfinite(x)
    log_w = _check_class_weights(class_weights, 2 if x.ndim == 1 else x.shape[1])
    if gamma == 0.0 and log_w is None:
        return x
    if x.ndim == 1:
        logit = _binary_logit(x, gamma) if gamma else x
        return logit if log_w is None else logit + (log_w[0] - log_w[1])
    scores = _log_focal_weights(x, gamma) if gamma else x
    if log_w is not None:
        scores = scores - log_w
    return log_softmax(scores, axis=1)


def apply_decision_map(raw_prediction: ArrayLike, posterior_map: Mapping[str, Any]) -> Float64Array:
    """:func:`decision_from_margin` with the arguments of a :func:`loss_posterior_map` dict."""
    return decision_from_margin(
        raw_prediction, gamma=posterior_map["gamma"], class_weights=posterior_map["class_weights"]
    )
