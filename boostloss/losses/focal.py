"""The focal loss: :class:`FocalLoss` and its resolved :class:`FocalParams`."""

from __future__ import annotations

import dataclasses
import numbers
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import ArrayLike

from .._kernels.cache import kernels
from .._kernels.constants import HESSIAN_BOUNDED, HESSIAN_EXACT, HESSIAN_GAUSS_NEWTON
from .._typing import Float64Array
from . import _validation as v
from ._multiclass import softmax_focal_best_constant
from ._posterior import posterior_from_margin

if TYPE_CHECKING:
    pass
from ._base import _NO_ALPHA, _Loss

_HESSIANS = {
    "exact": HESSIAN_EXACT,
    "gauss_newton": HESSIAN_GAUSS_NEWTON,
    "bounded": HESSIAN_BOUNDED,
}


def _check_class_alpha(alpha):
    """Per-class weights: a 1-D sequence of at least 2 finite numbers >= 0, as a tuple of floats."""
    arr = np.asarray(alpha)
    if arr.ndim != 1 or arr.shape[0] < 2 or arr.dtype.kind not in "iuf":
        raise ValueError(
            "alpha must be None, a float in [0, 1] (binary: positives alpha, negatives 1 - alpha) "
            f"or a sequence of one weight >= 0 per class, got {alpha!r}"
        )
    values = arr.astype(np.float64)
    bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0.0)))
    if bad.size:
        k = int(bad[0])
        raise ValueError(
            f"alpha must hold finite class weights >= 0, got {values[k].item()!r} for class {k} "
            f"(alpha={alpha!r})"
        )
    return tuple(float(a) for a in values)


@dataclasses.dataclass(frozen=True)
class FocalParams:
    """Resolved parameters of a :class:`FocalLoss` (``hessian`` is the kernels' integer mode).

    ``class_alpha`` holds the per-class weights when ``alpha`` is a sequence (None otherwise); for
    a binary model they are ``alpha_neg = class_alpha[0]``, ``alpha_pos = class_alpha[1]``.
    ``auto`` is ``alpha="auto"``: ``alpha_pos = 0.25`` for a binary model (and K = 2), no class
    weighting for K >= 3 classes. ``hessian_auto`` is ``hessian="auto"``: ``hessian`` holds
    HESSIAN_EXACT (a binary model and K = 2), :meth:`softmax_hessian` gives HESSIAN_BOUNDED for
    K >= 3 classes.
    """

    gamma: float
    alpha_pos: float
    alpha_neg: float
    hessian: int
    class_alpha: tuple[float, ...] | None = None
    auto: bool = False
    hessian_auto: bool = False

    def softmax_hessian(self, n_classes: int) -> int:
        """The kernels' Hessian mode for K classes (``hessian="auto"``: bounded for K >= 3)."""
        return HESSIAN_BOUNDED if self.hessian_auto and n_classes > 2 else self.hessian

    def binary_alpha(self) -> tuple[float, float]:
        """``(alpha_pos, alpha_neg)`` of a binary model (one margin per sample)."""
        if self.class_alpha is not None and len(self.class_alpha) != 2:
            raise ValueError(
                f"alpha={list(self.class_alpha)!r} has {len(self.class_alpha)} class weights, but "
                "the margins are 1-D (a binary model: 2 classes); pass margins of shape (n, "
                f"{len(self.class_alpha)}) or 2 weights [class 0, class 1]"
            )
        return self.alpha_pos, self.alpha_neg

    def softmax_alpha(self, n_classes: int) -> Float64Array:
        """The kernels' per-class weights for K classes: float64 (K,), or empty for none."""
        if self.class_alpha is not None:
            if len(self.class_alpha) != n_classes:
                raise ValueError(
                    f"alpha={list(self.class_alpha)!r} has {len(self.class_alpha)} class "
                    f"weights, but the margins have {n_classes} columns (classes); pass one "
                    "weight per class"
                )
            return np.array(self.class_alpha, dtype=np.float64)
        if (self.alpha_pos == 1.0 and self.alpha_neg == 1.0) or (self.auto and n_classes > 2):
            return _NO_ALPHA
        if n_classes != 2:
            raise ValueError(
                f"alpha={self.alpha_pos!r} is a binary weight (positives alpha, negatives 1 - "
                f"alpha) and the margins have {n_classes} classes: pass alpha=None or one weight "
                f"per class (a sequence of {n_classes} weights >= 0), or leave the default "
                "alpha='auto' (0.25 for two classes, no class weighting for more)"
            )
        # Two classes: the binary alpha on the margin difference z_1 - z_0.
        return np.array([self.alpha_neg, self.alpha_pos], dtype=np.float64)


class FocalLoss(_Loss):
    r"""Binary focal loss on raw margins (Lin et al., 2017, arXiv:1708.02002).

    .. math::

        FL(x, y) = -\alpha_t (1 - p_t)^\gamma \log p_t, \qquad
        p_t = \begin{cases} \sigma(x) & y = 1 \\ 1 - \sigma(x) & y = 0 \end{cases}

    with :math:`\alpha_t = \alpha` for positives and :math:`1 - \alpha` for negatives (1 for both
    when ``alpha=None``). With :math:`z = s x` (:math:`s = \pm 1` toward the true class),
    :math:`q = 1 - p_t` and :math:`m = q^\gamma`:

    .. math::

        \frac{\partial FL}{\partial x} = s\,\alpha_t m (\gamma p_t \log p_t - q), \qquad
        \frac{\partial^2 FL}{\partial x^2} = \alpha_t m \left(\gamma p_t \log p_t (q - \gamma p_t)
                                               + (2\gamma + 1) p_t q\right).

    ``gamma=0, alpha=None`` is the logistic loss exactly (gradient ``p - y``, Hessian
    ``p (1 - p)``); ``gamma=0`` with ``alpha`` is the alpha-balanced cross-entropy.

    Parameters
    ----------
    gamma : float, default=2.0
        Focusing parameter, >= 0. The paper's best setting on detection is 2.
    alpha : "auto", float in [0, 1], sequence of K weights >= 0, or None, default="auto"
        Weight of the positive class (negatives get ``1 - alpha``); None for no class weighting.
        ``"auto"`` (the default) is 0.25 for a binary model (the paper's setting together with
        gamma=2) and None (no class weighting) for K >= 3 classes, so ``FocalLoss()`` trains on
        any number of classes. For K classes (margins of shape (n, K)) pass one weight per class
        or None: a float is binary only (an error with K >= 3, ``[1 - alpha, alpha]`` with K = 2).
        Two weights with 1-D margins are ``[class 0, class 1]``.
    hessian : {"auto", "exact", "gauss_newton", "bounded"}, default="auto"
        Second-derivative policy. The exact second derivative is negative for confidently wrong
        samples (down to about -0.047 alpha_t for gamma=2), which boosting cannot use:

        - ``"exact"``: the true second derivative, floored at ``boostloss.HESSIAN_FLOOR`` (1e-16).
        - ``"gauss_newton"``: ``alpha_t (1 - p_t)^gamma p (1 - p)``, the Hessian of the
          cross-entropy weighted by the focal modulating factor held constant. Always positive and
          equal to the exact Hessian at gamma=0.
        - ``"bounded"``: the larger of the two, entry by entry. For K classes every entry of a
          row switches together: exact where ``log p_y (1 - gamma p_y) + 2 (1 - p_y) >= 0``
          (``p_y`` from about 0.104 at gamma=2, from ``e^-2`` at gamma=1), Gauss-Newton below,
          where the exact curvature is smaller, near zero or negative.
        - ``"auto"`` (default): ``"exact"`` for a binary model (and K = 2), ``"bounded"`` for
          K >= 3 classes.

        Binary: on the real datasets the exact Hessian ranks better and the Gauss-Newton one is
        better calibrated (``benchmarks/hessian_policy.py``, docs/losses.md); ranking is what
        focal loss is for, so ``"exact"`` is the binary default. K classes: every row of a rare
        class starts confidently wrong, where the exact diagonal is floored at 1e-16, and a
        LightGBM leaf of such rows (no L2 penalty by default) takes a step of up to 1e16 times its
        gradient; the bounded Hessian keeps those rows at about the cross-entropy's curvature
        (docs/multiclass.md, "The Hessian policy").

        Every policy is floored at 1e-16, so the Hessian is strictly positive for any finite margin.

    Notes
    -----
    K classes (docs/multiclass.md): ``FL = -alpha_y (1 - p_y)^gamma log p_y`` with
    ``p = softmax(z)``, the binary focal loss of ``t = z_y - LSE_{k != y} z_k``. The gradient is
    ``w (p - e_y)`` with the focal weight ``w = -FL'(t) / (1 - p_y)``; ``"exact"`` is the true
    diagonal of the Hessian (floored), ``"gauss_newton"`` the diagonal ``w p_k (1 - p_k)`` of its
    positive part (for K = 2 this is ``-FL' p_t``, not the binary policy above; equal at gamma=0),
    ``"bounded"`` the larger of the two, entry by entry (the default for K >= 3).
    :meth:`init_score` with ``n_classes=K`` is the exact best constant vector.
    """

    name = "focal"

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | Literal["auto"] | ArrayLike | None = "auto",
        hessian: str = "auto",
    ) -> None:
        self.gamma = gamma
        self.alpha = alpha
        self.hessian = hessian

    def predict_proba(self, raw_prediction: ArrayLike) -> Float64Array:
        r"""The class posterior from the margins of a model trained with this loss.

        A model trained with focal loss converges to the minimiser of the focal risk, not to the
        class probability (for a rare class it sits far above it: at gamma=2 a true rate of 0.01
        gives a sigmoid of 0.154). The minimiser is a strictly increasing function of the
        posterior, inverted here in closed form (Charoenphakdee, Vongkulbhisal, Chairatanakul,
        Sugiyama, CVPR 2021; Komisarenko and Kull, ECAI 2024, for K classes), in margin space, so
        it is exact and finite for every finite margin:

        .. math::

            \operatorname{logit} q = (\gamma - 1) x + \log(e^x + \gamma \log(1 + e^x))
                - \log(e^{-x} + \gamma \log(1 + e^{-x})) + \log\frac{1 - \alpha}{\alpha}.

        For K classes, with :math:`t_k = z_k - \mathrm{LSE}_{j \ne k} z_j`:
        :math:`q = \mathrm{softmax}_k(\log w(t_k) - \log \alpha_k)`,
        :math:`\log w(t) = (\gamma - 1)\,\mathrm{softplus}(t) - \log(e^{-t} + \gamma\,
        \mathrm{softplus}(-t))`. ``alpha`` is undone as a prior-odds (class weight) correction.
        The map is monotone (it changes no ranking) and does not depend on ``hessian``;
        ``gamma=0, alpha=None`` is the plain sigmoid / softmax (scipy's, to the last bit), and
        K = 2 margins give the binary map of ``z_1 - z_0``. See
        :func:`boostloss.posterior_from_margin` (the same map for any gamma and class weights, e.g.
        a class-weighted logistic model).

        Parameters
        ----------
        raw_prediction : array-like of shape (n,) or (n, K)
            Margins, float32 or float64, finite.

        Returns
        -------
        ndarray of shape (n, 2) or (n, K), float64
            Rows sum to 1 (to rounding); binary columns ``[1 - q, q]``.

        Raises
        ------
        ValueError
            Non-finite margins; a binary float ``alpha`` with K >= 3 columns; ``alpha`` giving a
            class weight 0 (no posterior for it).
        """
        x = v.check_margins(raw_prediction)
        if x.ndim == 1:
            self.resolved_params().binary_alpha()  # a sequence of K != 2 weights is an error here
        gamma, weights = self._posterior_map(2 if x.ndim == 1 else x.shape[1])
        return posterior_from_margin(x, gamma=gamma, class_weights=weights)

    _posterior_is_exact = True

    def _posterior_map(self, n_classes: int) -> tuple[float, Float64Array | None]:
        params = self.resolved_params()
        return params.gamma, _focal_class_weights(self, params, n_classes)

    def resolved_params(self) -> FocalParams:
        """The validated parameters, as a :class:`FocalParams`."""
        gamma = v.check_real("gamma", self.gamma, low=0.0)
        class_alpha = None
        auto = isinstance(self.alpha, str) and self.alpha == "auto"
        if self.alpha is None:
            a_pos = a_neg = 1.0
        elif auto:
            a_pos, a_neg = 0.25, 0.75
        elif isinstance(self.alpha, str):
            raise TypeError(
                f"alpha must be a real number, got {self.alpha!r} of type str (the one string "
                "allowed is 'auto', the default; or None, or one weight per class)"
            )
        elif isinstance(self.alpha, (str, bytes, numbers.Number)) or np.ndim(self.alpha) == 0:
            a_pos = v.check_real("alpha", self.alpha, low=0.0, high=1.0)
            a_neg = 1.0 - a_pos
        else:
            class_alpha = _check_class_alpha(self.alpha)
            a_pos, a_neg = (
                (class_alpha[1], class_alpha[0])
                if len(class_alpha) == 2
                else (float("nan"), float("nan"))
            )
        hessian = v.check_choice("hessian", self.hessian, ("auto", *_HESSIANS))
        mode = HESSIAN_EXACT if hessian == "auto" else _HESSIANS[hessian]
        return FocalParams(gamma, a_pos, a_neg, mode, class_alpha, auto, hessian == "auto")

    def binary_focal_terms(self) -> tuple[float, float, float, int]:
        """``(gamma, alpha_pos, alpha_neg, hessian_mode)``: the binary focal kernels' arguments."""
        params = self.resolved_params()
        return (params.gamma, *params.binary_alpha(), params.hessian)

    @staticmethod
    def _constant_total_and_slope(params, s, w1, w0):
        # One scalar kernel rather than the array kernels on two rows: the same numbers, without
        # compiling a float64 specialisation of each array kernel for the start alone.
        total, slope = kernels().focal_constant_total_and_slope(
            float(s), float(w1), float(w0), params.gamma, *params.binary_alpha()
        )
        return float(total), float(slope)

    @staticmethod
    def _loss_kernels(params, y, x, w, out, state=None):
        a_pos, a_neg = params.binary_alpha()
        kernels().focal_loss(y, x, w, params.gamma, a_pos, a_neg, out)

    @staticmethod
    def _grad_hess_kernels(params, y, x, w, grad, hess, state):
        a_pos, a_neg = params.binary_alpha()
        kernels().focal_grad_hess(y, x, w, params.gamma, a_pos, a_neg, params.hessian, grad, hess)

    @staticmethod
    def _softmax_loss_kernels(params, y, x, w, out, state=None):
        alpha = params.softmax_alpha(x.shape[1])
        kernels("softmax").softmax_focal_loss(y, x, w, params.gamma, alpha, out)

    @staticmethod
    def _softmax_grad_hess_kernels(params, y, x, w, grad, hess, state):
        alpha = params.softmax_alpha(x.shape[1])
        kernels("softmax").softmax_focal_grad_hess(
            y, x, w, params.gamma, alpha, params.softmax_hessian(x.shape[1]), grad, hess
        )

    @staticmethod
    def _softmax_constant(params, class_totals):
        # The stationary point of the total over a constant vector: P_k / w(P_k) = lambda N_k
        # (docs/math.md, boostloss._multiclass), solved to machine precision in log space.
        alpha = params.softmax_alpha(class_totals.shape[0])
        if alpha.shape[0]:
            zero = np.flatnonzero(alpha == 0.0)
            if zero.size:
                raise ValueError(
                    f"init_score needs every class with positive weight, got alpha="
                    f"{list(params.class_alpha or alpha)!r} (0 for class {int(zero[0])}): the best "
                    "constant margin of that class is -inf"
                )
        return softmax_focal_best_constant(
            class_totals, params.gamma, alpha if alpha.shape[0] else None
        )


def _focal_class_weights(loss, params, n_classes):
    """The per-class training weights of ``alpha`` for the posterior map (None: all equal)."""
    if n_classes == 2 and (params.class_alpha is None or len(params.class_alpha) == 2):
        weights = (
            (params.alpha_neg, params.alpha_pos)
            if params.class_alpha is None
            else (params.class_alpha)
        )
    else:
        weights = params.softmax_alpha(n_classes)
        if not weights.shape[0]:
            return None
    weights = np.asarray(weights, dtype=np.float64)
    zero = np.flatnonzero(weights == 0.0)
    if zero.size:
        raise ValueError(
            f"alpha={loss.alpha!r} gives class {int(zero[0])} weight 0: a model trained with it "
            "learnt nothing about that class, so it has no class posterior; use weights > 0"
        )
    return None if np.all(weights == weights[0]) else weights
