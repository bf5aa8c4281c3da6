"""The public losses: :class:`FocalLoss` and :class:`GHMLoss`, and the protocol every caller uses.

Design
------
Three layers, as in scikit-learn's ``sklearn/_loss``:

1. ``_kernels.py``: numba functions, the per-sample math and the loops over samples. They assume
   valid input and write into buffers they are given.
2. This module: the loss classes. They own the parameters (scikit-learn style, validated at first
   use and resolved into a frozen :class:`FocalParams` / :class:`GHMParams`), validate inputs,
   allocate outputs, pick the number of threads (``_threads``) and compute the best constant.
3. The callers: the XGBoost / LightGBM adapters, the CUDA path, the estimators, compare and the
   benchmarks. They use only the public, keyword-only methods below, in scikit-learn's names::

       target = check_target(y_true, sample_weight)          # validated once per training
       state = loss.new_state()                              # what one training owns
       loss.gradient_hessian(target, raw_prediction, gradient_out=g, hessian_out=h,
                             n_threads=1, state=state)      # every boosting round
       loss.loss(target, raw_prediction, loss_out=buf)       # metrics
       loss.init_score(y_true, sample_weight)                # the start

Every method takes labels ``y_true`` (0/1 with 1-D margins; 0..K-1 with margins of shape (n, K), a
softmax model) or a :class:`Target`, margins ``raw_prediction`` (float32 or float64, read without a
copy; (n, K) in C or F order; the K-class kernels are in ``_kernels_softmax.py``) and optional
``sample_weight``, and returns float64 arrays unless given output buffers (float32 or float64).
GHM-C's running average is a :class:`GHMState` that the caller owns and passes in; nothing here
keeps module-level state.
"""

from __future__ import annotations

import dataclasses
import numbers
import re
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import brentq
from sklearn.base import BaseEstimator

from . import _validation as v
from ._constants import HESSIAN_BOUNDED, HESSIAN_EXACT, HESSIAN_GAUSS_NEWTON
from ._multiclass import softmax_focal_best_constant
from ._numba_cache import kernels
from ._posterior import posterior_from_margin
from ._threads import check_n_threads, kernel_threads
from ._typing import Float64Array, FloatArray, LabelsLike, LossLike, T

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "FocalLoss",
    "GHMLoss",
    "FocalParams",
    "GHMParams",
    "GHMState",
    "Target",
    "check_target",
    "LOSSES",
    "make_loss",
]

_HESSIANS = {
    "exact": HESSIAN_EXACT,
    "gauss_newton": HESSIAN_GAUSS_NEWTON,
    "bounded": HESSIAN_BOUNDED,
}
_NO_ALPHA = np.empty(0, dtype=np.float64)
_SOFTMAX = "._kernels_softmax"


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


_DENSITIES = ("bins", "window")


@dataclasses.dataclass(frozen=True, eq=False)
class Target:
    """Validated labels and weights of one data set, made by :func:`check_target`.

    Pass it as ``y_true`` (with ``sample_weight=None``) to skip revalidating the same labels every
    boosting round. ``y`` is float64; ``sample_weight`` float64, empty meaning "all ones";
    ``label_bound`` the largest label when every label is a class index (an integer >= 0), else
    inf. Whether the labels fit the model is checked against the margins they are used with
    (:meth:`check_classes`): 0/1 for one margin per sample, 0..K-1 for margins of shape (n, K).
    """

    y: Float64Array
    sample_weight: Float64Array
    label_bound: float = 1.0

    @property
    def n_samples(self) -> int:
        return self.y.shape[0]

    @property
    def weighted(self) -> bool:
        return self.sample_weight.shape[0] > 0

    def check_classes(self, n_classes: int | None = None) -> None:
        """Raise unless the labels are 0/1 (``n_classes`` None: a binary model) or 0..K-1."""
        v.check_label_values(self.y, self.label_bound, n_classes)


def check_target(y_true: LabelsLike, sample_weight: ArrayLike | None = None) -> Target:
    """Validate labels (real numbers, 1-D) and non-negative weights once; returns a :class:`Target`.

    The label values are checked where the number of classes is known, against the margins (see
    :meth:`Target.check_classes`); this pass records the one number that check needs.
    """
    if isinstance(y_true, Target):
        if sample_weight is not None:
            raise TypeError("pass sample_weight=None with a Target: the Target carries its weights")
        return y_true
    y = v.read_labels(y_true)
    return Target(y, v.check_weights(sample_weight, y.shape[0]), v.label_bound(y))


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


@dataclasses.dataclass(frozen=True)
class GHMParams:
    """Resolved parameters of a :class:`GHMLoss`."""

    bins: int
    momentum: float
    density: str
    epsilon: float

    @property
    def edges(self) -> Float64Array:
        """Bin edges ``b / bins``, the last one raised by 1e-6 (the paper's code)."""
        edges = np.arange(self.bins + 1, dtype=np.float64) / self.bins
        edges[-1] += 1e-6
        return edges


class GHMState:
    """What one GHM training owns across rounds: the running bin counts and reusable work arrays.

    Made by :meth:`GHMLoss.new_state`; pass it to every :meth:`GHMLoss.gradient_hessian` call of
    that training. ``running_counts`` is None before the first round with ``momentum > 0``.

    ``group`` is None, or, in a training spread over several workers, the workers (an object whose
    ``sum`` takes a float64 array and returns its element-wise sum over all workers; every worker
    calls it at the same point with an array of the same length; OHEM's state takes the same
    ``group``). The binned density then counts the samples of every worker: each round's ``bins``
    counts and total weight are summed with ``group.sum`` right after they are counted, so the
    weights, and the running average of ``momentum``, are the same on every worker and equal to
    those of one process holding all the data. The adapters of :mod:`boostloss.xgboost` set it
    inside an XGBoost collective (``xgboost.dask``, ``xgboost.spark``).
    """

    __slots__ = ("running_counts", "group", "_work")

    def __init__(self) -> None:
        self.running_counts: Float64Array | None = None
        self.group: Any = None
        self._work: dict[Hashable, Any] = {}

    def reset(self) -> None:
        """Forget the running counts (the work arrays are kept: they hold no information)."""
        self.running_counts = None

    def work(self, key: Hashable, make: Callable[[], T]) -> T:
        """The work array(s) stored under ``key``, made by ``make()`` when absent."""
        arrays = self._work.get(key)
        if arrays is None:
            arrays = self._work[key] = make()
        return arrays


def _class_totals(target, n_classes):
    """Total sample weight of each class 0..K-1 (the counts when unweighted); all must be > 0."""
    labels = target.y.astype(np.intp)
    weights = target.sample_weight if target.weighted else None
    totals = np.bincount(labels, weights=weights, minlength=n_classes).astype(np.float64)
    empty = np.flatnonzero(~(totals > 0.0))
    if empty.size:
        raise ValueError(
            f"init_score needs every class with positive total weight, got weight "
            f"{float(totals[empty[0]])!r} for class {int(empty[0])} (of {n_classes} classes; "
            f"{empty.size} such class(es)): the best constant margin of a class without weight "
            "is -inf"
        )
    return totals


def _outputs(n, *named_buffers, n_classes=None):
    shape = n if n_classes is None else (n, n_classes)
    return tuple(
        np.empty(shape, dtype=np.float64) if buf is None else v.check_out(name, buf, n, n_classes)
        for name, buf in named_buffers
    )


class _Loss(BaseEstimator):
    """What both losses share: the public methods, validation and the constant minimiser.

    Margins of shape (n,) are a binary model (labels 0/1); margins of shape (n, K), K >= 2, a
    K-class softmax model (labels 0..K-1). Each subclass has the kernels of both.

    Callers (estimators, Dask, Spark, CUDA) never ask which loss they hold; they ask the loss:
    :meth:`for_classes`, :attr:`cross_row_statistic`, :meth:`evaluation_loss`,
    :meth:`start_from_class_totals`, :meth:`gradient_density`, :meth:`binary_focal_terms`.

    Attributes
    ----------
    state_ : object or None
        The state of the :meth:`gradient_hessian` calls given no ``state`` (a loss with a
        per-training state: GHM-C's running counts, OHEM's tie keys and last selection). Made by
        :meth:`new_state` at the first such call and used by every later one, so direct calls
        continue one training; kept by pickling and copying (a copy continues that training);
        forgotten by :meth:`reset`, :meth:`set_params` and ``clone``. None before the first such
        call, and always for a loss without state (:class:`FocalLoss`). A training through the
        adapters or the estimators never touches it: each gets a state of its own.
    """

    #: Name used by the metrics of the adapters and by :func:`make_loss`.
    name = "loss"

    state_: object | None = None

    #: None for a per-sample loss (the derivatives of a row depend on that row alone). Otherwise
    #: a clause saying what every round computes from all the rows together (GHM-C's density,
    #: OHEM's selection): a training spread over workers must make it global each round (the
    #: XGBoost adapters do, ``boostloss._collective``), and the loss of a row moves with the other
    #: rows (see :meth:`evaluation_loss`).
    cross_row_statistic: str | None = None

    def resolved_params(self) -> Any:  # pragma: no cover - every subclass defines it
        """The validated parameters as a frozen dataclass (raises on bad values)."""
        raise NotImplementedError

    def new_state(self) -> object | None:
        """A fresh per-training state to pass to :meth:`gradient_hessian` (None: no state)."""
        return None

    def for_classes(self, classes: ArrayLike) -> Self:
        """This loss for a model whose class ``i`` is the label ``classes[i]``.

        The estimators encode the labels of ``y`` to 0..K-1 and train the loss returned here. A
        loss whose parameters name a class by its label (:class:`OHEMLoss`'s ``negative_class``)
        returns a copy that names it by its index; the others return themselves.

        Parameters
        ----------
        classes : array-like of shape (K,)
            The labels in the order of the class indices (the estimators' sorted ``classes_``).

        Returns
        -------
        loss : the same type as this loss
        """
        return self

    def evaluation_loss(self) -> tuple[_Loss, str | None]:
        """The loss, and the metric's name, that evaluate a model trained with this loss.

        What the estimators evaluate ``eval_set`` with (and early-stop on) when the user names no
        metric. A per-sample loss evaluates itself. A loss with a :attr:`cross_row_statistic`
        does not: its value at a row moves with the other rows (GHM-C's density weights grow as
        the model separates the classes; OHEM's kept set moves with the margins), so early
        stopping on it stops after a round or two. It is evaluated with the cross-entropy that it
        re-weights or selects from, named ``logloss``.

        Returns
        -------
        (loss, name) : tuple
            ``name`` None means the metric is named after the loss (:attr:`name`).
        """
        if self.cross_row_statistic is None:
            return self, None
        return FocalLoss(gamma=0.0, alpha=None), "logloss"

    def start_from_class_totals(self, class_totals: ArrayLike) -> float | Float64Array:
        """:meth:`init_score` from the total weight of each class alone (a distributed start).

        Dask and Spark sum the weight of each class on the cluster and start from this, the
        :meth:`init_score` of one process holding all the rows (exactly for the losses whose
        best constant depends on the class totals only; :class:`OHEMLoss` overrides it).

        Parameters
        ----------
        class_totals : array-like of shape (K,)
            The total sample weight of classes 0..K-1 (their counts when unweighted). Two totals
            are the binary model.

        Returns
        -------
        float, or ndarray of shape (K,) for K >= 3 totals

        Raises
        ------
        ValueError
            Fewer than two totals, or a class without (positive) weight.
        """
        totals = np.asarray(class_totals, dtype=np.float64)
        if totals.ndim != 1 or totals.shape[0] < 2:
            raise ValueError(
                f"class_totals must hold the weight total of each class (at least 2 classes), "
                f"got {class_totals!r}"
            )
        if totals.shape[0] == 2:
            return float(self.init_score(np.array([1.0, 0.0]), np.array([totals[1], totals[0]])))
        n_classes = totals.shape[0]
        return self.init_score(np.arange(n_classes, dtype=np.float64), totals, n_classes=n_classes)

    def gradient_density(self) -> GHMParams | None:
        """The gradient density that re-weights this loss's cross-entropy every round, or None.

        For kernels that compute the loss outside this class (:mod:`boostloss.cuda`).
        :class:`GHMLoss` returns its resolved :class:`GHMParams` (``density="bins"`` with its
        ``bins`` and ``edges``, or ``"window"`` with its ``epsilon``), and turns a round's bin
        counts into weights with :meth:`GHMLoss.weights_from_counts`; the other losses return
        None.
        """
        return None

    def binary_focal_terms(self) -> tuple[float, float, float, int] | None:
        """The binary focal kernels' arguments when this loss is a per-sample focal loss, or None.

        For kernels that compute the loss outside this class (:mod:`boostloss.cuda`). A loss
        whose derivatives at a binary model's margin are those of the focal loss returns
        ``(gamma, alpha_pos, alpha_neg, hessian_mode)`` (validated; ``hessian_mode`` the
        kernels' integer, see ``boostloss._constants``); the others return None.

        Raises
        ------
        ValueError
            Bad parameters, or class weights for more than two classes.
        """
        return None

    def loss(
        self,
        y_true: LabelsLike,
        raw_prediction: ArrayLike,
        sample_weight: ArrayLike | None = None,
        *,
        loss_out: FloatArray | None = None,
        n_threads: int | None = None,
        state: object | None = None,
    ) -> FloatArray:
        """Per-sample loss, multiplied by ``sample_weight`` when given.

        Parameters
        ----------
        y_true : array-like of shape (n,) or Target
            Labels: 0 or 1 (bool, int or float) with 1-D margins; class indices 0..K-1 with
            margins of shape (n, K). Or a :class:`Target`.
        raw_prediction : array-like of shape (n,) or (n, K)
            Raw margins (log-odds; one per class for K classes, softmax link), float32 or float64,
            C or F order.
        sample_weight : array-like of shape (n,), optional
            Non-negative weights.
        loss_out : ndarray of shape (n,), float32 or float64, optional
            Written in place and returned.
        n_threads : int, optional
            Numba threads (see ``boostloss._threads`` for the default policy).
        state : object from :meth:`new_state`, optional
            Only its ``group`` is used (GHM-C's density over all workers, see
            :class:`GHMState`); the running counts are neither read nor updated.

        Returns
        -------
        ndarray of shape (n,), float64 unless ``loss_out`` is given
        """
        target, x = self._inputs(y_true, raw_prediction, sample_weight)
        params = self.resolved_params()
        if state is not None:
            state = self._check_state(state)
        (out,) = _outputs(target.n_samples, ("loss_out", loss_out))
        with kernel_threads(target.n_samples, check_n_threads(n_threads)):
            if x.ndim == 1:
                self._loss_kernels(params, target.y, x, target.sample_weight, out, state)
            else:
                self._softmax_loss_kernels(params, target.y, x, target.sample_weight, out, state)
        return out

    def gradient_hessian(
        self,
        y_true: LabelsLike,
        raw_prediction: ArrayLike,
        sample_weight: ArrayLike | None = None,
        *,
        gradient_out: FloatArray | None = None,
        hessian_out: FloatArray | None = None,
        n_threads: int | None = None,
        state: object | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        """First and second derivatives of the loss with respect to the raw margin(s).

        Parameters
        ----------
        y_true, raw_prediction, sample_weight, n_threads
            As in :meth:`loss`.
        gradient_out, hessian_out : ndarray of shape (n,) or (n, K), float32 or float64, optional
            Written in place and returned (a training reuses them across rounds). (n, K) buffers
            may be C- or F-contiguous.
        state : object from :meth:`new_state`, optional
            The state of the training this call is a round of (GHM-C's running counts).

        Returns
        -------
        (gradient, hessian) : tuple of ndarrays of the margins' shape
            Both multiplied by ``sample_weight`` when given. For K classes the Hessian is the
            diagonal (what both frameworks use). The Hessian is strictly positive (before
            weighting) for every finite margin.
        """
        target, x = self._inputs(y_true, raw_prediction, sample_weight)
        params = self.resolved_params()
        state = self._check_state(state)
        n_classes = None if x.ndim == 1 else x.shape[1]
        grad, hess = _outputs(
            target.n_samples,
            ("gradient_out", gradient_out),
            ("hessian_out", hessian_out),
            n_classes=n_classes,
        )
        with kernel_threads(target.n_samples, check_n_threads(n_threads)):
            if x.ndim == 1:
                self._grad_hess_kernels(
                    params, target.y, x, target.sample_weight, grad, hess, state
                )
            else:
                self._softmax_grad_hess_kernels(
                    params, target.y, x, target.sample_weight, grad, hess, state
                )
        return grad, hess

    def init_score(
        self,
        y_true: LabelsLike,
        sample_weight: ArrayLike | None = None,
        *,
        n_classes: int | None = None,
    ) -> float | Float64Array:
        """The constant raw margin that minimises the (weighted) total loss.

        Parameters
        ----------
        y_true : array-like of shape (n,) or Target
            0/1 labels, or class indices 0..K-1 with ``n_classes=K``.
        sample_weight : array-like of shape (n,), optional
        n_classes : int >= 2 or None, default=None
            None: a binary model (one margin per sample). K: a K-class softmax model; the start
            is then a vector of K margins.

        Returns
        -------
        float, or ndarray of shape (K,) with ``n_classes``
            Binary: for the logistic loss (focal with gamma=0, alpha=None) this is the prior
            log-odds ``log(W1 / W0)`` of the positive and negative weight totals. K classes: the
            margins, centred to mean 0 (softmax ignores a common shift), see the subclasses.

        Raises
        ------
        ValueError
            If a class has no (positive) weight: the minimiser is then at infinity.
        """
        target = check_target(y_true, sample_weight)
        params = self.resolved_params()
        if n_classes is not None:
            n_classes = v.check_int("n_classes", n_classes, 2)
            target.check_classes(n_classes)
            totals = _class_totals(target, n_classes)
            with kernel_threads(2):
                return self._softmax_constant(params, totals)
        target.check_classes(None)
        y, w = target.y, target.sample_weight
        if target.weighted:
            w1 = float(w[y == 1.0].sum())
            w0 = float(w[y == 0.0].sum())
        else:
            w1 = float(np.count_nonzero(y == 1.0))
            w0 = float(y.shape[0] - w1)
        if not (w1 > 0.0 and w0 > 0.0):
            raise ValueError(
                "init_score needs both classes with positive total weight, got weight "
                f"{w1!r} for class 1 and {w0!r} for class 0: the best constant margin is infinite"
            )
        with kernel_threads(2):
            return self._constant_minimiser(params, w1, w0)

    def predict_proba(self, raw_prediction: ArrayLike) -> Float64Array:
        """Class probabilities from raw margins: the sigmoid / softmax of the margin.

        This loss's weights depend on the data (no closed-form link between its minimiser and
        the class posterior), so these probabilities are a **score**, not a posterior: they rank
        the samples like the margin but are not calibrated. To calibrate, fit scikit-learn's
        ``CalibratedClassifierCV`` around the estimator (isotonic or sigmoid, on held-out folds):
        ``CalibratedClassifierCV(boostloss.XGBClassifier(loss=...), method="isotonic", cv=3)``.

        Parameters
        ----------
        raw_prediction : array-like of shape (n,) or (n, K)
            Margins (log-odds; one per class for K classes), float32 or float64, finite.

        Returns
        -------
        ndarray of shape (n, 2) or (n, K), float64
            Rows sum to 1 (to rounding). 1-D margins: columns ``[sigmoid(-x), sigmoid(x)]``, each
            scipy's ``expit`` to the last bit; (n, K): scipy's ``softmax`` of the rows.
        """
        x = v.check_margins(raw_prediction)
        gamma, weights = self._posterior_map(2 if x.ndim == 1 else x.shape[1])
        return posterior_from_margin(x, gamma=gamma, class_weights=weights)

    #: Whether :meth:`predict_proba` is the class posterior (focal: a closed-form inverse of the
    #: risk minimiser) rather than a score (GHM-C, OHEM: data-dependent weights).
    _posterior_is_exact = False

    def _posterior_map(self, n_classes: int) -> tuple[float, Float64Array | None]:
        """``(gamma, class_weights)`` of :func:`boostloss.posterior_from_margin` for a model of
        ``n_classes`` classes trained with this loss (validates the parameters)."""
        self.resolved_params()
        return 0.0, None

    def __sklearn_clone__(self) -> Self:
        # A clone is a fresh loss: same parameters, no training state.
        return type(self)(**self.get_params())

    def reset(self) -> Self:
        """Forget :attr:`state_`, the state of the calls given no ``state``: the next one starts
        a new training."""
        self.state_ = None
        return self

    def set_params(self, **params: Any) -> Self:
        super().set_params(**params)
        return self.reset()

    def _state_or_own(self, state, state_class):
        """``state`` checked to be a ``state_class``, or (None) :attr:`state_`, made on first
        use."""
        if state is None:
            if self.state_ is None:
                self.state_ = state_class()
            return self.state_
        if not isinstance(state, state_class):
            raise TypeError(
                f"state must be a {state_class.__name__} made by "
                f"{type(self).__name__}.new_state(), "
                f"got {state!r} of type {type(state).__name__}"
            )
        return state

    # -- internals ------------------------------------------------------------------------

    @staticmethod
    def _inputs(y_true, raw_prediction, sample_weight):
        target = check_target(y_true, sample_weight)
        x = v.check_margins(raw_prediction, n=target.n_samples)
        target.check_classes(None if x.ndim == 1 else x.shape[1])
        return target, x

    def _check_state(self, state):
        if state is not None:
            raise TypeError(f"{type(self).__name__} keeps no training state; got state={state!r}")
        return None

    def _constant_total_and_slope(self, params, s, w1, w0):
        y2 = np.array([1.0, 0.0])
        w2 = np.array([w1, w0])
        x2 = np.array([s, s])
        out = np.empty(2)
        self._loss_kernels(params, y2, x2, w2, out)
        grad = np.empty(2)
        hess = np.empty(2)
        self._grad_hess_kernels(params, y2, x2, w2, grad, hess, None)
        return float(out.sum()), float(grad.sum())

    @staticmethod
    def _bracket(w1, w0):
        prior = np.log(w1) - np.log(w0)
        half_width = max(40.0, 2.0 * abs(prior) + 10.0)
        return np.linspace(-half_width, half_width, 1601)

    def _constant_minimiser(self, params, w1, w0):
        # A grid finds the basin of the global minimum (the focal total over a constant need not
        # be convex everywhere), then the root of the slope inside it is found to machine
        # precision. The bracket covers the prior log-odds with a wide margin.
        grid = self._bracket(w1, w0)
        totals = np.array([self._constant_total_and_slope(params, s, w1, w0)[0] for s in grid])
        k = int(np.argmin(totals))
        lo = grid[max(k - 1, 0)]
        hi = grid[min(k + 1, grid.size - 1)]
        f_lo = self._constant_total_and_slope(params, lo, w1, w0)[1]
        f_hi = self._constant_total_and_slope(params, hi, w1, w0)[1]
        if f_lo < 0.0 < f_hi:
            return float(
                brentq(
                    lambda s: self._constant_total_and_slope(params, s, w1, w0)[1],
                    lo,
                    hi,
                    xtol=1e-14,
                    rtol=4 * np.finfo(float).eps,
                    maxiter=200,
                )
            )
        return float(grid[k])


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
        kernels(_SOFTMAX).softmax_focal_loss(y, x, w, params.gamma, alpha, out)

    @staticmethod
    def _softmax_grad_hess_kernels(params, y, x, w, grad, hess, state):
        alpha = params.softmax_alpha(x.shape[1])
        kernels(_SOFTMAX).softmax_focal_grad_hess(
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


def _ghm_passes(ndim):
    """GHM-C's kernels for 1-D margins (``ndim`` 1) or (n, K) rows: the binned first pass
    (derivatives and bins), the scaling by bin, the window's first pass (derivatives and ``g``) and
    the scaling by sample."""
    if ndim == 1:
        k = kernels()
        return k.ghm_bins_pass, k.scale_by_bin, k.ghm_norm_pass, k.scale_by_sample
    k = kernels(_SOFTMAX)
    return (
        k.softmax_ghm_bins_pass,
        k.scale_rows_by_bin,
        k.softmax_ce_grad_hess_norm,
        k.scale_rows_by_sample,
    )


class GHMLoss(_Loss):
    r"""GHM-C: cross-entropy reweighted by the inverse gradient density (Li, Liu, Wang, 2019,
    "Gradient Harmonized Single-stage Detector", arXiv:1811.05181).

    The gradient norm of a sample is :math:`g = |p - y|` with :math:`p = \sigma(x)`. Crowded values
    of ``g`` (the many easy samples near 0, and the crowd of outliers near 1) are down-weighted:

    .. math::

        L_{GHM-C} = \sum_i \beta_i\, CE_i, \qquad
        \frac{\partial L}{\partial x_i} = \beta_i (p_i - y_i), \qquad
        \frac{\partial^2 L}{\partial x_i^2} = \beta_i p_i (1 - p_i),

    the weights :math:`\beta_i` being constants of the round, recomputed from the current margins at
    every call of :meth:`gradient_hessian` (every boosting round).

    ``density="bins"`` (the paper's unit-region approximation, as its official code and
    mmdetection's GHMC compute it): edges ``linspace(0, 1, bins + 1)`` with the last edge raised by
    1e-6, half-open bins; ``beta = tot / count_b / n`` with ``n`` the number of non-empty bins, so
    the weights of an unweighted call with momentum 0 sum to the number of samples.

    K classes (margins of shape (n, K), labels 0..K-1): ``g = 1 - p_y`` with ``p = softmax(z)``
    (the binary ``|p - y|`` for K = 2), the same density, and the weights multiply the softmax
    cross-entropy's gradient ``p - e_y`` and Hessian ``p (1 - p)``. :meth:`init_score` with
    ``n_classes=K`` returns the log class priors (centred), the cross-entropy's best constant.

    ``density="window"``: the paper's sliding-window density
    :math:`GD(g) = \frac{1}{l_\epsilon(g)} \sum_k \delta_\epsilon(g_k, g)` with the window
    :math:`(g - \epsilon/2, g + \epsilon/2)` and its length inside [0, 1],
    :math:`l_\epsilon(g) = \min(g + \epsilon/2, 1) - \max(g - \epsilon/2, 0)`;
    :math:`\beta_i = N / GD(g_i)`, rescaled by one constant so the weights sum to N as with bins.
    Computed exactly in O(n): one radix sort of the gradient norms, then one sweep.

    Sample weights: bin counts, window counts and ``tot`` are sums of sample weights (samples of
    weight 0 are not counted), and each sample's gradient and Hessian are then also multiplied by
    its own weight.

    Parameters
    ----------
    bins : int, default=10
        Number of bins M of the binned density (>= 1).
    momentum : float in [0, 1), default=0.0
        With ``momentum > 0`` the bin counts are an exponential moving average across calls:
        ``acc_b <- momentum * acc_b + (1 - momentum) * count_b`` for the non-empty bins of the
        round. As in the paper's code the average starts from zero, so the first round's weights are
        those of momentum 0 divided by ``1 - momentum`` (a uniform scale of gradient and Hessian).
        Only with ``density="bins"``. :meth:`reset` starts a new average.
    density : {"bins", "window"}, default="bins"
    epsilon : float in (0, 1], default=0.1
        Window width of ``density="window"``.

    Notes
    -----
    :meth:`loss`, :meth:`init_score` and :meth:`harmonizing_weights` compute the weights from the
    margins they are given alone and never touch a running average. :meth:`gradient_hessian` uses
    the ``state`` it is given (see :meth:`new_state`), or, without one, a state that this object
    keeps for direct calls (:attr:`state_`, its :attr:`running_counts_`; :meth:`reset`). The
    Hessian ``p (1 - p)`` is floored at 1e-16 before the weights multiply it.
    """

    name = "ghm"
    state_: GHMState | None
    cross_row_statistic = "GHM-C's density must count the rows of every worker each round"

    def __init__(
        self, bins: int = 10, momentum: float = 0.0, density: str = "bins", epsilon: float = 0.1
    ) -> None:
        self.bins = bins
        self.momentum = momentum
        self.density = density
        self.epsilon = epsilon

    def resolved_params(self) -> GHMParams:
        """The validated parameters, as a :class:`GHMParams`."""
        bins = v.check_int("bins", self.bins, 1)
        momentum = v.check_real("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        density = v.check_choice("density", self.density, _DENSITIES)
        epsilon = v.check_real("epsilon", self.epsilon, low=0.0, high=1.0, low_open=True)
        if density == "window" and momentum != 0.0:
            raise ValueError(
                f"momentum={self.momentum!r} needs density='bins': the moving average is over bin "
                "counts; use momentum=0.0 with density='window'"
            )
        return GHMParams(bins, momentum, density, epsilon)

    def new_state(self) -> GHMState:
        """A fresh :class:`GHMState` for one training."""
        return GHMState()

    @property
    def running_counts_(self) -> Float64Array | None:
        """The moving-average bin counts of direct calls after the last one (None before): the
        running counts of :attr:`state_`."""
        return None if self.state_ is None else self.state_.running_counts

    def gradient_density(self) -> GHMParams:
        """The resolved :class:`GHMParams`: the density that re-weights the cross-entropy."""
        return self.resolved_params()

    def weights_from_counts(
        self, counts: ArrayLike, total: float, *, state: GHMState | None = None
    ) -> Float64Array:
        """Per-bin harmonising weights ``beta_b = total / density_b / n_nonempty``.

        ``counts`` are the (weighted) bin counts of one round and ``total`` the weight of the valid
        samples. With ``momentum > 0`` and a ``state``, the density is the state's running average,
        updated here for the non-empty bins; without a state the round's counts are used as they
        are. Empty bins get weight 0.
        """
        momentum = self.resolved_params().momentum
        counts = np.asarray(counts, dtype=np.float64)
        nonempty = counts > 0.0
        n_nonempty = int(np.count_nonzero(nonempty))
        density = counts
        if momentum > 0.0 and state is not None:
            if state.running_counts is None or state.running_counts.shape != counts.shape:
                state.running_counts = np.zeros_like(counts)
            acc = state.running_counts
            acc[nonempty] = momentum * acc[nonempty] + (1.0 - momentum) * counts[nonempty]
            density = acc
        beta = np.zeros_like(counts)
        if n_nonempty:
            beta[nonempty] = total / density[nonempty] / n_nonempty
        return beta

    def harmonizing_weights(
        self,
        y_true: LabelsLike,
        raw_prediction: ArrayLike,
        sample_weight: ArrayLike | None = None,
        *,
        n_threads: int | None = None,
    ) -> Float64Array:
        """The harmonising weights beta_i of these margins (stateless: momentum is not applied).

        Samples with zero weight are not counted and get beta 0. Unweighted, the betas sum to n.
        """
        target, x = self._inputs(y_true, raw_prediction, sample_weight)
        params = self.resolved_params()
        with kernel_threads(target.n_samples, check_n_threads(n_threads)):
            ce = np.empty(target.n_samples)
            return self._sample_betas(params, target.y, x, target.sample_weight, ce)

    def _check_state(self, state):
        return self._state_or_own(state, GHMState)

    def _sample_betas(self, params, y, x, w, ce_out, state=None):
        """Per-sample weights of these margins (no momentum); ``ce_out`` gets the cross-entropy.

        With a ``state`` whose ``group`` is set, the bin counts are summed over the workers.
        """
        group = _group_of(params, state)
        k = kernels()
        n = y.shape[0]
        g = np.empty(n)
        if x.ndim == 1:
            k.cross_entropy_and_norm(y, x, ce_out, g)
        else:
            kernels(_SOFTMAX).softmax_ce_loss_and_norm(y, x, ce_out, g)
        beta = np.empty(n)
        if params.density == "bins":
            idx = np.empty(n, dtype=np.int32)
            k.assign_bins(g, params.edges, idx)
            counts = np.zeros(params.bins)
            tot = k.bin_histogram(idx, w, params.bins, counts)
            if group is not None:
                counts, tot = _summed_counts(group, counts, tot)
            np.take(self.weights_from_counts(counts, tot), idx, out=beta)
            if w.shape[0]:
                beta[w == 0.0] = 0.0
        else:
            k.window_beta(g, w, params.epsilon, beta)
        return beta

    def _loss_kernels(self, params, y, x, w, out, state=None):
        beta = self._sample_betas(params, y, x, w, out, state)
        # A tiny loss times its weight may underflow to 0, and a loss near the float64 maximum
        # may round to inf: both are the correctly rounded values, not errors.
        with np.errstate(under="ignore", over="ignore"):
            out *= beta
            if w.shape[0]:
                out *= w

    def _grad_hess_kernels(self, params, y, x, w, grad, hess, state):
        # One density code for both layouts, on g = |p - y| (binary) or g = 1 - p_y (K classes);
        # the weights multiply the cross-entropy's gradient and Hessian (softmax: p - e_y and
        # p (1 - p) of each row).
        _group_of(params, state)  # refuses the window density on several workers
        first_pass, scale_by_bin, norm_pass, scale_by_sample = _ghm_passes(x.ndim)
        if params.density == "bins":
            idx = self._bins_work(y.shape[0], state)
            first_pass(y, x, w, params.edges, grad, hess, idx)
            scale_by_bin(idx, self._bin_weights(params, idx, w, state), grad, hess)
        else:
            work = self._window_work(y.shape[0], state)
            g, beta = work[0], work[1]
            norm_pass(y, x, w, grad, hess, g)
            kernels().window_beta_into(g, w, params.epsilon, beta, *work[2:])
            scale_by_sample(beta, grad, hess)

    _softmax_grad_hess_kernels = _grad_hess_kernels

    @staticmethod
    def _bins_work(n, state):
        if state is None:
            return np.empty(n, dtype=np.int32)
        return state.work(("bins", n), lambda: np.empty(n, dtype=np.int32))

    @staticmethod
    def _window_work(n, state):
        def make():
            return (
                (np.empty(n), np.empty(n))
                + tuple(np.empty(n, dtype=np.int64) for _ in range(4))
                + (np.empty(n + 1),)
            )

        return make() if state is None else state.work(("window", n), make)

    def _bin_weights(self, params, idx, w, state):
        """Per-bin weights of one round: counts summed over the workers when distributed."""
        group = _group_of(params, state)
        counts = np.zeros(params.bins)
        tot = kernels().bin_histogram(idx, w, params.bins, counts)
        if group is not None:
            counts, tot = _summed_counts(group, counts, tot)
        return self.weights_from_counts(counts, tot, state=state)

    def _softmax_loss_kernels(self, params, y, x, w, out, state=None):
        self._loss_kernels(params, y, x, w, out, state)

    @staticmethod
    def _softmax_constant(params, class_totals):
        # Over a constant vector every sample of class j has the same g_j = 1 - p_j, so the
        # harmonising weights are one constant per class, which jumps as the g_j change bins:
        # the total is piecewise smooth in K - 1 dimensions. The start is the minimiser of the
        # cross-entropy that GHM-C re-weights (the log class priors, centred), a choice that
        # needs no search and that the first round's density then corrects.
        return softmax_focal_best_constant(class_totals, 0.0)

    def _constant_minimiser(self, params, w1, w0):
        # Over a constant margin the harmonising weights change whenever the two classes' g move
        # into other bins (or windows), so the total is only piecewise smooth and its infimum can
        # sit at a jump. A zooming grid search keeps the best point actually evaluated, so the
        # returned margin's total is never above any point tried; 12 zooms reach ~1e-13.
        def total(s):
            return self._constant_total_and_slope(params, s, w1, w0)[0]

        grid = self._bracket(w1, w0)
        values = np.array([total(s) for s in grid])
        k = int(np.argmin(values))
        best_s, best_v = grid[k], values[k]
        step = grid[1] - grid[0]
        for _ in range(12):
            grid = np.linspace(best_s - 2.0 * step, best_s + 2.0 * step, 81)
            values = np.array([total(s) for s in grid])
            k = int(np.argmin(values))
            if values[k] < best_v:
                best_s, best_v = grid[k], values[k]
            step = grid[1] - grid[0]
        return float(best_s)


def _group_of(params, state):
    """The state's workers (None in one process); the window density cannot use them."""
    group = None if state is None else state.group
    if group is not None and params.density != "bins":
        # Each sample's window counts the gradient norms of all samples near its own: exact over
        # several workers it needs every norm of every worker each round (an all-gather of n
        # numbers), which is what distributing the data avoids.
        raise ValueError(
            f"GHMLoss(density={params.density!r}) cannot be trained on several workers: its "
            "sliding-window density needs the gradient norms of every sample on every worker each "
            "round; use density='bins' (its counts are summed over the workers), with more bins "
            "for a finer density"
        )
    return group


def _summed_counts(group, counts, tot):
    """The bin counts and total weight summed over the workers: one reduction of bins + 1 values."""
    summed = np.asarray(group.sum(np.append(counts, tot)), dtype=np.float64)
    if summed.shape != (counts.shape[0] + 1,):
        raise RuntimeError(
            f"the sum over the workers of GHMState.group returned shape {summed.shape}; expected "
            f"({counts.shape[0] + 1},): the bin counts and the total weight"
        )
    return np.ascontiguousarray(summed[:-1]), float(summed[-1])


# ------------------------------------------------------------------------------------------------
# Losses by name
# ------------------------------------------------------------------------------------------------

#: The registered losses, by the names that ``make_loss`` and ``boostloss compare --losses`` use.
LOSSES: dict[str, type[_Loss]] = {"focal": FocalLoss, "ghm": GHMLoss}

_SPEC = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*(?::(.*))?$")


def _parse_value(text):
    """A parameter value of a loss spec: None, an int, a float, or a string as written."""
    text = text.strip()
    if text.lower() in ("none", "null"):
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def make_loss(spec: LossLike) -> _Loss:
    """A loss from a loss object or a name with optional parameters, CatBoost style.

    ``make_loss("focal")``, ``make_loss("focal:gamma=2,alpha=0.25")``,
    ``make_loss("ghm:bins=30,momentum=0.75")``; ``;`` separates parameters too. Values are read as
    int, float, ``none`` or a string (``hessian=gauss_newton``). A loss object is returned as it is.
    Parameters are validated as usual, at first use.

    Raises
    ------
    TypeError
        ``spec`` is neither a loss nor a string.
    ValueError
        An unknown name or parameter, or a malformed spec; the message lists what is allowed.
    """
    if isinstance(spec, _Loss):
        return spec
    names = ", ".join(repr(n) for n in LOSSES)
    if not isinstance(spec, str):
        raise TypeError(
            f"loss must be a boostloss loss object or a name ({names}, optionally with parameters "
            f"such as 'focal:gamma=2,alpha=0.25'), got {spec!r} of type {type(spec).__name__}"
        )
    match = _SPEC.match(spec)
    if match is None or match.group(1).lower() not in LOSSES:
        raise ValueError(f"unknown loss {spec!r}: the registered losses are {names}")
    cls = LOSSES[match.group(1).lower()]
    params = {}
    for item in re.split(r"[,;]", match.group(2) or ""):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(
                f"malformed parameter {item.strip()!r} in loss {spec!r}: write name=value"
            )
        params[key] = _parse_value(value)
    allowed = sorted(cls().get_params())
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)} for loss {cls.name!r} in {spec!r}; "
            f"allowed: {', '.join(allowed)}"
        )
    return cls(**params)


# OHEM lives in its own module (it subclasses _BinaryLoss, defined above).
from .ohem import OHEMLoss  # noqa: E402

LOSSES["ohem"] = OHEMLoss
