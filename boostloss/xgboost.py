"""XGBoost adapters: objectives and evaluation metrics for ``xgb.train`` and ``xgb.XGBClassifier``.

>>> import xgboost as xgb
>>> import boostloss.xgboost as blx
>>> from boostloss import FocalLoss
>>> focal = FocalLoss(gamma=2.0, alpha=0.25)
>>> params = {"tree_method": "hist", "base_score": blx.base_score(focal, dtrain)}  # doctest: +SKIP
>>> booster = xgb.train(params, dtrain, 100, obj=blx.objective(focal),
...                     custom_metric=blx.metric(focal), evals=[(dvalid, "valid")],
...                     early_stopping_rounds=20)                             # doctest: +SKIP

What the adapters take care of:

- Each :func:`objective` call returns a new callable that owns a clone of the loss, its own GHM
  state and its own float32 gradient buffers: one callable belongs to one training (call its
  ``reset()`` before reusing it for another). The same loss object may serve any number of
  trainings, one after the other or at the same time in several threads.
- Labels and weights are read from the ``DMatrix`` and validated once, at the first round, and then
  cached for that ``DMatrix`` (``DMatrix.get_label()`` copies on every call). Several training sets
  (``xgb.cv`` folds) each get their own cache and GHM state.
- Margins arrive as float32; they are checked for NaN/inf every round (one jitted pass) and read
  without a copy. Gradients and Hessians are written into float32 buffers reused across rounds.
- ``xgb.train`` with ``obj=`` and no ``objective`` in ``params`` uses ``reg:squarederror``'s
  intercept (0.5 on the margin scale) unless ``base_score`` or ``base_margin`` is given:
  :func:`base_score` and :func:`set_base_margin` start the training from ``loss.init_score(y)``
  instead.
- K classes (``num_class=K``): XGBoost hands over float32 margins of shape (n, K) and takes (n, K)
  back; the Hessian is multiplied by 2, ``multi:softprob``'s own scale
  (:func:`multiclass_hessian_factor`), and :func:`base_score` with ``n_classes=K`` gives the
  K-vector start (stored in the model).
- The metrics take raw margins (what ``xgb.train`` passes to ``custom_metric`` whenever ``obj`` is
  given) and report the (weighted) mean loss, lower is better, under the name ``loss.name``.
- Inside a distributed training (``xgboost.dask``, ``xgboost.spark``: an active
  ``xgboost.collective`` communicator) the same callables are global: GHM-C's bin counts are summed
  over the workers every round, OHEM selects its negatives from one ranking of all rows, the
  metrics are the weighted means over all workers' rows, and an error on one worker's partition
  is raised on every worker instead of leaving the others waiting (``_frameworks.collective``,
  docs/scaling-out.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._frameworks.adapters import (
    LossCallable,
    PerDatasetCallable,
    _Entry,
    gradient_hessian,
    loss_sums,
    margins_of,
    mean_loss,
    start_of,
    start_rows,
)
from ._frameworks.collective import current_group
from ._typing import AdapterThreads, Float64Array, LossLike
from .losses import Target, _Loss, check_target
from .losses import _validation as v

if TYPE_CHECKING:
    import xgboost as xgb

__all__ = [
    # _adapters.FACTORIES, spelled out: the documentation's generator reads strings only
    "objective",
    "metric",
    "sklearn_objective",
    "sklearn_metric",
    "base_score",
    "set_base_margin",
    "multiclass_hessian_factor",
    "XGBObjective",
    "XGBMetric",
    "XGBSklearnObjective",
    "XGBSklearnMetric",
    "XGBObjectiveFunction",
    "XGBMetricFunction",
    "XGBSklearnObjectiveFunction",
    "XGBSklearnMetricFunction",
]

#: What ``xgb.train(obj=...)`` calls: ``(margins, dtrain) -> (gradient, hessian)``, arrays of the
#: margins' shape (float32 numpy arrays; numba device arrays with ``compute="device"``).
XGBObjectiveFunction: TypeAlias = "Callable[[NDArray[Any], xgb.DMatrix], tuple[Any, Any]]"
#: What ``xgb.train(custom_metric=...)`` calls: ``(margins, dmatrix) -> (name, value)``.
XGBMetricFunction: TypeAlias = "Callable[[NDArray[Any], xgb.DMatrix], tuple[str, float]]"


class XGBSklearnObjectiveFunction(Protocol):
    """What ``xgb.XGBClassifier(objective=...)`` calls: ``(y_true, y_pred, *, sample_weight)``."""

    def __call__(
        self, y_true: ArrayLike, y_pred: ArrayLike, *, sample_weight: ArrayLike | None = None
    ) -> tuple[Any, Any]: ...


class XGBSklearnMetricFunction(Protocol):
    """What ``xgb.XGBClassifier(eval_metric=...)`` calls: ``(y_true, y_pred, *, sample_weight)``."""

    def __call__(
        self, y_true: ArrayLike, y_pred: ArrayLike, *, sample_weight: ArrayLike | None = None
    ) -> float: ...


#: The scale of XGBoost's own softmax Hessian: ``multi:softprob`` uses ``2 p (1 - p)``
#: (src/objective/multiclass_obj.cu), twice the true diagonal.
XGBOOST_MULTICLASS_HESSIAN_FACTOR = 2.0


def multiclass_hessian_factor(n_classes: int) -> float:
    """The factor the K-class objectives put on every loss's Hessian: 2, XGBoost's own scale.

    With it, ``FocalLoss(gamma=0, alpha=None)`` reproduces ``multi:softprob`` (the same trees and
    leaf values from the same start), and a learning rate means what it means for the built-in
    objective. It scales every leaf value by 1/2 compared with the true Newton step.
    """
    return XGBOOST_MULTICLASS_HESSIAN_FACTOR


def _read_dmatrix(dmatrix: xgb.DMatrix) -> Target:
    """The validated labels and weights of a DMatrix (``get_label`` copies: read them once)."""
    w = dmatrix.get_weight()
    return check_target(dmatrix.get_label(), w if w.size else None)


class _RoundMixin:
    """One boosting round, on the host or (``compute="device"``) with the CUDA kernels."""

    loss: _Loss
    n_threads: AdapterThreads
    _compute: str

    def _round(self, entry: _Entry, predt: ArrayLike) -> tuple[Any, Any]:
        if self._compute == "device":
            return _device_gradient_hessian(self.loss, entry, predt)
        return gradient_hessian(self.loss, entry, predt, self.n_threads, multiclass_hessian_factor)

    def _any_round(self, get_entry: Callable[[], _Entry], predt: ArrayLike) -> tuple[Any, Any]:
        """One round, also inside a distributed training (``get_entry`` reads and validates)."""
        group = current_group()
        if group is None:
            return self._round(get_entry(), predt)

        def checked() -> tuple[_Entry, NDArray[Any]]:
            entry = get_entry()
            x = v.check_margins(margins_of(predt, entry.n_samples))
            # Every check that can fail on one worker only runs here, before any collective call.
            entry.target.check_classes(None if x.ndim == 1 else x.shape[1])
            if entry.state is not None and self._compute == "device":
                raise ValueError(
                    "compute='device' cannot sum GHM-C's density over the workers of a "
                    "distributed training; use compute='host' (XGBoost still trains on the GPU)"
                )
            return entry, x

        entry, x = group.run(checked)
        if entry.state is not None:
            entry.state.group = group
        return self._round(entry, x)


def _any_mean_loss(
    loss: _Loss, get_entry: Callable[[], _Entry], predt: ArrayLike, n_threads: AdapterThreads
) -> float:
    """The weighted mean loss of these margins, over all workers inside a distributed training."""
    group = current_group()
    if group is None:
        return mean_loss(loss, get_entry(), predt, n_threads)

    def checked() -> tuple[_Entry, NDArray[Any]]:
        entry = get_entry()
        x = v.check_margins(margins_of(predt, entry.n_samples))
        entry.target.check_classes(None if x.ndim == 1 else x.shape[1])
        return entry, x

    entry, x = group.run(checked)
    if entry.state is not None:
        entry.state.group = group
    total, total_weight = group.sum(loss_sums(loss, entry, x, n_threads, state=entry.state))
    if total_weight <= 0.0:
        return float("nan")
    return float(total / total_weight)


class XGBObjective(_RoundMixin, PerDatasetCallable):
    """Custom objective for ``xgb.train(obj=...)``: ``(margins, dtrain) -> (grad, hess)``.

    Made by :func:`objective`. It owns a clone of the loss, the GHM state and float32 buffers of one
    training: use one per training, or call :meth:`reset` between trainings. Every call is one
    boosting round; GHM recomputes its density from the margins of that round.

    Parameters
    ----------
    loss : FocalLoss, GHMLoss or a registered name (``"focal:gamma=2"``)
        Cloned at construction, so later changes of ``loss`` do not affect this objective.
    compute : {"host", "device", "auto"}, default="host"
        Where the gradients are computed; see :func:`objective`.
    n_threads : "auto", int or None, default="auto"
        Numba threads of the host kernels; see :func:`objective`.
    """

    _display = "boostloss.xgboost.objective"
    _read = staticmethod(_read_dmatrix)

    def __init__(
        self, loss: LossLike, *, compute: str = "host", n_threads: AdapterThreads = "auto"
    ) -> None:
        super().__init__(loss, n_threads=n_threads)
        self._compute = _check_compute(compute)

    def __call__(self, predt: NDArray[Any], dtrain: xgb.DMatrix) -> tuple[Any, Any]:
        return self._any_round(lambda: self._entry(dtrain), predt)


class XGBMetric(PerDatasetCallable):
    """Evaluation metric for ``xgb.train(custom_metric=...)``: ``(margins, dmatrix) -> (name, v)``.

    The value is the weighted mean loss ``sum(w_i l_i) / sum(w_i)`` on raw margins (lower is
    better, so early stopping minimises it). Made by :func:`metric`; stateless across rounds.
    """

    _display = "boostloss.xgboost.metric"
    _read = staticmethod(_read_dmatrix)

    def __call__(self, predt: NDArray[Any], dmatrix: xgb.DMatrix) -> tuple[str, float]:
        return self.__name__, _any_mean_loss(
            self.loss, lambda: self._entry(dmatrix), predt, self.n_threads
        )


class XGBSklearnObjective(_RoundMixin, LossCallable):
    """Objective for ``xgb.XGBClassifier(objective=...)``: ``(y_true, y_pred, *, sample_weight)``.

    Made by :func:`sklearn_objective`. Like :class:`XGBObjective`, it belongs to one training
    (:meth:`reset` starts another); ``sample_weight`` given to ``fit`` reaches it.
    """

    _display = "boostloss.xgboost.sklearn_objective"

    def __init__(
        self, loss: LossLike, *, compute: str = "host", n_threads: AdapterThreads = "auto"
    ) -> None:
        super().__init__(loss, n_threads=n_threads)
        self._compute = _check_compute(compute)

    def __call__(
        self, y_true: ArrayLike, y_pred: ArrayLike, *, sample_weight: ArrayLike | None = None
    ) -> tuple[Any, Any]:
        return self._any_round(lambda: self._cache.get(self.loss, y_true, sample_weight), y_pred)


class XGBSklearnMetric(LossCallable):
    """Metric for ``xgb.XGBClassifier(eval_metric=...)``: ``(y_true, y_pred, *, sample_weight)``.

    Returns the weighted mean loss on raw margins; its ``__name__`` (``loss.name``) names it in
    ``evals_result()``. XGBoost passes raw margins to a callable metric only when the objective is a
    callable too (as with :func:`sklearn_objective`): with a built-in objective it would receive
    probabilities, which this metric would misread as margins.
    """

    _display = "boostloss.xgboost.sklearn_metric"

    def __call__(
        self, y_true: ArrayLike, y_pred: ArrayLike, *, sample_weight: ArrayLike | None = None
    ) -> float:
        return _any_mean_loss(
            self.loss,
            lambda: self._cache.get(self.loss, y_true, sample_weight),
            y_pred,
            self.n_threads,
        )


def objective(
    loss: LossLike, *, compute: str = "host", n_threads: AdapterThreads = "auto"
) -> XGBObjective:
    """A custom objective for ``xgb.train(params, dtrain, obj=objective(loss))``.

    Parameters
    ----------
    loss : FocalLoss or GHMLoss
    compute : {"host", "device", "auto"}, default="host"
        Where the gradients are computed. ``"host"``: the CPU numba kernels, float32 numpy arrays
        (XGBoost uploads them when it trains with ``device="cuda"``). ``"device"``: the CUDA kernels
        of :mod:`boostloss.cuda` (labels, weights and buffers cached on the GPU; the margins, which
        XGBoost hands over on the host, are uploaded each round) returning device arrays, which
        XGBoost reads in place; needs numba's CUDA target and a GPU. ``"auto"`` is exactly
        ``"host"`` (no GPU measurement has shown the device path faster yet).
    n_threads : "auto", int or None, default="auto"
        Numba threads of the host kernels. ``"auto"``: one for a binary model (XGBoost's OpenMP
        workers keep the cores busy between rounds, and a second numba thread competing with them
        made rounds slower), the package's default policy for K classes (a K times longer pass).
        None: the package's default policy (``boostloss._kernels.threads``).

    Returns
    -------
    XGBObjective
        ``(margins, dtrain) -> (grad, hess)`` as float32 arrays. It owns a clone of ``loss`` and the
        state of one training; call :func:`objective` again (or ``reset()``) for the next one.
    """
    return XGBObjective(loss, compute=compute, n_threads=n_threads)


def metric(
    loss: LossLike, name: str | None = None, *, n_threads: AdapterThreads = "auto"
) -> XGBMetric:
    """An evaluation metric for ``xgb.train(..., custom_metric=metric(loss))`` (lower is better).

    ``name`` names it in the evaluation log (default ``loss.name``).
    """
    return XGBMetric(loss, name=name, n_threads=n_threads)


def sklearn_objective(
    loss: LossLike, *, compute: str = "host", n_threads: AdapterThreads = "auto"
) -> XGBSklearnObjective:
    """An objective for ``xgb.XGBClassifier(objective=sklearn_objective(loss))``.

    The callable takes ``(y_true, y_pred, *, sample_weight=None)``, so sample weights passed to
    ``fit`` are honoured. Note that ``xgb.XGBClassifier`` then starts from its own ``base_score``
    (pass ``base_score=scipy.special.expit(loss.init_score(y))``, a probability there) and
    ``predict_proba`` applies the sigmoid; :class:`boostloss.XGBClassifier` does all this for you.
    ``compute`` and ``n_threads`` are as in :func:`objective`.
    """
    return XGBSklearnObjective(loss, compute=compute, n_threads=n_threads)


def sklearn_metric(
    loss: LossLike, name: str | None = None, *, n_threads: AdapterThreads = "auto"
) -> XGBSklearnMetric:
    """An evaluation metric for ``xgb.XGBClassifier(eval_metric=sklearn_metric(loss))``.

    Use it together with a callable objective (XGBoost then passes raw margins to it). ``name``
    names it in ``evals_result()`` (default ``loss.name``).
    """
    return XGBSklearnMetric(loss, name=name, n_threads=n_threads)


def _labels_weights(data: Any, sample_weight: ArrayLike | None) -> Target:
    if hasattr(data, "get_label") and hasattr(data, "get_weight"):
        if sample_weight is not None:
            raise TypeError(
                "pass sample_weight only with label arrays; a DMatrix carries its own weights"
            )
        return _read_dmatrix(data)
    return check_target(data, sample_weight)


def base_score(
    loss: LossLike,
    dtrain: xgb.DMatrix | ArrayLike,
    sample_weight: ArrayLike | None = None,
    *,
    objective: str | None = None,
    n_classes: int | None = None,
) -> float | list[float]:
    """The ``base_score`` parameter that starts ``xgb.train`` from ``loss.init_score(y)``.

    Parameters
    ----------
    loss : FocalLoss or GHMLoss
    dtrain : xgboost.DMatrix or array-like of labels
        The training set (its labels and weights are used) or the labels themselves.
    sample_weight : array-like, optional
        Only with label arrays.
    objective : None or str, default=None
        The ``objective`` in your ``params``. Binary: with none (or any identity-link objective,
        such as ``"reg:squarederror"``) ``base_score`` is on the margin scale and the init score is
        returned as it is; with ``"binary:logistic"`` it is a probability and
        ``sigmoid(init_score)`` is returned. K classes: None, ``"multi:softprob"`` or
        ``"multi:softmax"`` (XGBoost takes a K-class ``base_score`` as margins in every case).
    n_classes : int or None, default=None
        None for a binary model; K (the ``num_class`` of your ``params``) for a K-class model.

    Returns
    -------
    float, or list of K floats with ``n_classes``
        Put it in ``params["base_score"]``: unlike ``base_margin`` it is stored in the model, so
        predictions on new data need nothing extra. XGBoost >= 3.1 stores a vector intercept for
        ``num_class`` models.
    """
    target = _labels_weights(dtrain, sample_weight)
    if n_classes is not None:
        if objective not in (None, "multi:softprob", "multi:softmax"):
            raise ValueError(
                f"objective={objective!r} is not a K-class objective; use None, 'multi:softprob' "
                "or 'multi:softmax' with n_classes"
            )
        return [float(value) for value in start_of(loss, target, n_classes)]
    score = start_of(loss, target)
    if objective is None or objective in (
        "reg:squarederror",
        "reg:linear",
        "reg:pseudohubererror",
        "reg:absoluteerror",
        "binary:logitraw",
    ):
        return float(score)
    if objective == "binary:logistic":
        return float(1.0 / (1.0 + np.exp(-score)))
    raise ValueError(
        f"objective={objective!r} is not supported here; use None (no objective in params, "
        "base_score on the margin scale) or 'binary:logistic' (base_score a probability)"
    )


def set_base_margin(
    loss: LossLike, dtrain: xgb.DMatrix, *others: xgb.DMatrix, n_classes: int | None = None
) -> float | Float64Array:
    """Set ``base_margin = loss.init_score(y_train)`` on the training set and the other DMatrix.

    Parameters
    ----------
    loss : FocalLoss or GHMLoss
    dtrain : xgboost.DMatrix
        Its labels and weights determine the init score.
    *others : xgboost.DMatrix
        Validation / test sets that get the same constant base margin.
    n_classes : int or None, default=None
        K for a K-class model: every row then gets the K margins (``base_margin`` of shape (n, K)).

    Returns
    -------
    float, or ndarray of shape (K,) with ``n_classes``
        The init score. XGBoost does not store ``base_margin`` in the model: every DMatrix you
        predict on later needs ``set_base_margin`` too (or use :func:`base_score`, which is stored).
    """
    score = start_of(loss, _read_dmatrix(dtrain), n_classes)
    for d in (dtrain,) + others:
        d.set_base_margin(start_rows(score, d.num_row(), np.float32))
    return score


# ------------------------------------------------------------------------------------------------
# compute="device": the CUDA kernels of boostloss.cuda behind the same objectives
# ------------------------------------------------------------------------------------------------

_COMPUTES = ("host", "device", "auto")


def _check_compute(compute: str) -> str:
    compute = v.check_choice("compute", compute, _COMPUTES)
    if compute == "auto":
        # Host until measured otherwise: no GPU timing has shown the device path faster yet.
        return "host"
    if compute == "device":
        from . import cuda

        cuda.ensure_available()
    return compute


def _device_gradient_hessian(loss: _Loss, entry: _Entry, predt: ArrayLike) -> tuple[Any, Any]:
    """One round on the GPU; the device buffers live in the training set's cache entry."""
    from . import cuda
    from ._frameworks.adapters import margins_of

    x = margins_of(predt, entry.n_samples)
    if x.ndim != 1:
        raise ValueError(
            f"compute='device' supports binary models only, got margins of shape {x.shape} (a "
            f"{x.shape[1]}-class model); use compute='host' for K classes"
        )
    x = v.check_margins(x)
    work = entry.scratch.get("cuda")
    if work is None:
        w = entry.target.sample_weight
        work = entry.scratch["cuda"] = cuda.DeviceGradients(
            loss, entry.target.y, w if w.shape[0] else None, dtype=np.float32, state=entry.state
        )
    grad, hess = work(x, validate=False)
    if cuda.is_simulator():
        # XGBoost cannot read the simulator's (host) memory as device memory.
        return grad.copy_to_host(), hess.copy_to_host()
    return grad, hess
