"""The protocol every caller uses: :class:`Target`, :func:`check_target` and the base class
:class:`_Loss` of every loss (public methods, validation, outputs, the constant minimiser)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import brentq
from sklearn.base import BaseEstimator

from .._kernels.threads import check_n_threads, kernel_threads
from .._typing import Float64Array, FloatArray, LabelsLike
from . import _validation as v
from ._posterior import posterior_from_margin

if TYPE_CHECKING:
    from typing_extensions import Self

    from .ghm import GHMParams

_NO_ALPHA = np.empty(0, dtype=np.float64)


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


def weight_by_class(target, n_classes):
    """Total sample weight of each class 0..K-1 (the counts when unweighted), float64."""
    weights = target.sample_weight if target.weighted else None
    totals = np.bincount(target.y.astype(np.intp), weights=weights, minlength=n_classes)
    return totals.astype(np.float64)


def _class_totals(target, n_classes):
    """:func:`weight_by_class`, all of which must be > 0."""
    totals = weight_by_class(target, n_classes)
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
    #: XGBoost adapters do, ``_frameworks.collective``), and the loss of a row moves with the other
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
        raise NotImplementedError(  # pragma: no cover - GHM-C and OHEM override it
            f"{type(self).__name__} has a cross-row statistic: it must name its evaluation loss"
        )

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
        kernels' integer, see ``boostloss._kernels.constants``); the others return None.

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
            Numba threads (see ``boostloss._kernels.threads`` for the default policy).
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
        return target, v.widened(x)

    def _check_state(self, state):
        if state is not None:
            raise TypeError(f"{type(self).__name__} keeps no training state; got state={state!r}")
        return None

    def _compile_for_samples(self, n_samples):
        """Compile (or load) the kernels that a training of ``n_samples`` samples (None: any
        number) reaches and a few samples do not: where numpy does the work of small inputs
        (:func:`boostloss.warm_up`). None for most losses."""

    def _constant_total(self, params, s, w1, w0):
        """The loss total of a constant margin ``s`` over class totals ``w1``, ``w0``."""
        out = np.empty(2)
        self._loss_kernels(params, np.array([1.0, 0.0]), np.array([s, s]), np.array([w1, w0]), out)
        return float(out.sum())

    def _constant_total_and_slope(self, params, s, w1, w0):
        y2 = np.array([1.0, 0.0])
        w2 = np.array([w1, w0])
        x2 = np.array([s, s])
        grad = np.empty(2)
        hess = np.empty(2)
        self._grad_hess_kernels(params, y2, x2, w2, grad, hess, None)
        return self._constant_total(params, s, w1, w0), float(grad.sum())

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
