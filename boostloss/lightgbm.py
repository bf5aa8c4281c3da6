"""LightGBM adapters: objectives and evaluation metrics for ``lgb.train``, ``lgb.LGBMClassifier``.

>>> import lightgbm as lgb
>>> import boostloss.lightgbm as bll
>>> from boostloss import FocalLoss
>>> focal = FocalLoss(gamma=2.0, alpha=0.25)
>>> start = bll.set_init_score(focal, train_set, valid_set)                  # doctest: +SKIP
>>> booster = lgb.train({"objective": bll.objective(focal), "metric": "None"}, train_set,
...                     valid_sets=[valid_set], feval=bll.metric(focal),
...                     callbacks=[lgb.early_stopping(20)])                     # doctest: +SKIP
>>> proba = bll.predict_proba(booster, X_test, start)                           # doctest: +SKIP

What the adapters take care of (and what they cannot do for you):

- Each :func:`objective` call returns a new callable that owns a clone of the loss, its own GHM
  state and its own float32 gradient buffers: one callable belongs to one training (``reset()``
  starts another). Labels and weights are validated once per ``Dataset`` and cached.
- With a callable objective LightGBM skips ``boost_from_average`` (the first margin is 0) and does
  not store ``init_score`` in the model: :func:`set_init_score` sets ``init_score`` on the training
  and validation sets, and :func:`predict_proba` adds it back at prediction.
- K classes (``num_class=K``): LightGBM >= 4.0 hands over margins of shape (n, K) (F order) and
  takes (n, K) back (the buffers are F-ordered, so it reads them without a copy); the Hessian is
  multiplied by K / (K - 1), ``multiclass``'s own scale (:func:`multiclass_hessian_factor`), and
  :func:`set_init_score` with ``n_classes=K`` sets the (n, K) start.
- The default ``binary_logloss`` metric would read raw scores as probabilities: pass
  ``"metric": "None"`` and ``feval=metric(loss)`` (raw margins in, weighted mean loss out, lower is
  better).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, softmax

from ._frameworks.adapters import (
    LossCallable,
    PerDatasetCallable,
    gradient_hessian,
    mean_loss,
    start_of,
    start_rows,
)
from ._frameworks.compat_lightgbm import dataset_weight
from ._typing import AdapterThreads, Float32Array, Float64Array, LossLike, MatrixLike
from .losses import Target, check_target
from .losses import _validation as v

if TYPE_CHECKING:
    import lightgbm as lgb

__all__ = [
    # _adapters.FACTORIES, spelled out: the documentation's generator reads strings only
    "objective",
    "metric",
    "sklearn_objective",
    "sklearn_metric",
    "set_init_score",
    "predict_proba",
    "make_portable",
    "multiclass_hessian_factor",
    "LGBMObjective",
    "LGBMMetric",
    "LGBMSklearnObjective",
    "LGBMSklearnMetric",
    "LGBMObjectiveFunction",
    "LGBMMetricFunction",
    "LGBMSklearnObjectiveFunction",
    "LGBMSklearnMetricFunction",
]

#: What ``lgb.train({"objective": ...})`` calls: ``(preds, train_set) -> (gradient, hessian)``.
LGBMObjectiveFunction: TypeAlias = (
    "Callable[[NDArray[Any], lgb.Dataset], tuple[Float32Array, Float32Array]]"
)
#: What ``lgb.train(feval=...)`` calls: ``(preds, dataset) -> (name, value, is_higher_better)``.
LGBMMetricFunction: TypeAlias = "Callable[[NDArray[Any], lgb.Dataset], tuple[str, float, bool]]"
#: What ``lgb.LGBMClassifier(objective=...)`` calls: ``(y_true, y_pred, weight)``.
LGBMSklearnObjectiveFunction: TypeAlias = (
    "Callable[[ArrayLike | None, NDArray[Any], ArrayLike | None],"
    " tuple[Float32Array, Float32Array]]"
)
#: What ``lgb.LGBMClassifier.fit(eval_metric=...)`` calls: ``(y_true, y_pred, weight)``.
LGBMSklearnMetricFunction: TypeAlias = (
    "Callable[[ArrayLike | None, NDArray[Any], ArrayLike | None], tuple[str, float, bool]]"
)


def multiclass_hessian_factor(n_classes: int) -> float:
    """The factor the K-class objectives put on every loss's Hessian: ``K / (K - 1)``.

    LightGBM's ``multiclass`` objective uses ``K / (K - 1) p (1 - p)``
    (src/objective/multiclass_objective.hpp); with the same factor, ``FocalLoss(gamma=0,
    alpha=None)`` reproduces it (the same trees and leaf values from the same start) and a learning
    rate means what it means for the built-in objective.
    """
    return n_classes / (n_classes - 1.0)


def _read_dataset(dataset: lgb.Dataset) -> Target:
    label = dataset.get_label()
    if label is None:
        raise ValueError("the LightGBM Dataset has no label; boostloss objectives need 0/1 labels")
    weight = dataset_weight(dataset)
    return check_target(
        label,  # type: ignore[arg-type]  # a list, ndarray or pandas Series
        None if weight is None or len(weight) == 0 else weight,
    )


class LGBMObjective(PerDatasetCallable):
    """Custom objective for ``lgb.train({"objective": ...})``: ``(preds, train_set) -> (g, h)``.

    Made by :func:`objective`. It owns a clone of the loss, the GHM state and the float32 buffers of
    one training: use one per training, or call :meth:`reset` between trainings. Every call is one
    boosting round; GHM recomputes its density from the margins of that round.
    """

    _display = "boostloss.lightgbm.objective"
    _read = staticmethod(_read_dataset)

    def __call__(
        self, preds: NDArray[Any], train_set: lgb.Dataset
    ) -> tuple[Float32Array, Float32Array]:
        return gradient_hessian(
            self.loss, self._entry(train_set), preds, self.n_threads, multiclass_hessian_factor
        )


class LGBMMetric(PerDatasetCallable):
    """Metric for ``lgb.train(feval=...)``: ``(preds, dataset) -> (name, value, False)``.

    The weighted mean loss on raw margins; ``False`` tells LightGBM lower is better. LightGBM passes
    raw margins to ``feval`` when the objective is a callable; with a built-in objective it would
    pass probabilities, which this metric would misread.
    """

    _display = "boostloss.lightgbm.metric"
    _read = staticmethod(_read_dataset)

    def __call__(self, preds: NDArray[Any], dataset: lgb.Dataset) -> tuple[str, float, bool]:
        value = mean_loss(self.loss, self._entry(dataset), preds, self.n_threads)
        return self.__name__, value, False


class LGBMSklearnObjective(LossCallable):
    """Objective for ``lgb.LGBMClassifier(objective=...)``: ``(y_true, y_pred, weight)``.

    LightGBM chooses the call by counting parameters; with three it passes the sample weights
    (None when there are none). Belongs to one training; :meth:`reset` starts another.
    """

    _display = "boostloss.lightgbm.sklearn_objective"

    def __call__(
        self, y_true: ArrayLike | None, y_pred: NDArray[Any], weight: ArrayLike | None
    ) -> tuple[Float32Array, Float32Array]:
        entry = self._cache.get(self.loss, y_true, weight)
        return gradient_hessian(self.loss, entry, y_pred, self.n_threads, multiclass_hessian_factor)


class LGBMSklearnMetric(LossCallable):
    """Metric for ``lgb.LGBMClassifier.fit(eval_metric=...)``: ``(y_true, y_pred, weight)``.

    Returns ``(loss.name, weighted mean loss, False)``; expects raw margins (a callable objective).
    """

    _display = "boostloss.lightgbm.sklearn_metric"

    def __call__(
        self, y_true: ArrayLike | None, y_pred: NDArray[Any], weight: ArrayLike | None
    ) -> tuple[str, float, bool]:
        entry = self._cache.get(self.loss, y_true, weight)
        return self.__name__, mean_loss(self.loss, entry, y_pred, self.n_threads), False


def objective(loss: LossLike, *, n_threads: AdapterThreads = "auto") -> LGBMObjective:
    """A custom objective for ``lgb.train({"objective": objective(loss), "metric": "None"}, ...)``.

    Parameters
    ----------
    loss : FocalLoss, GHMLoss or a registered name (``"focal:gamma=2"``)
    n_threads : "auto", int or None, default="auto"
        Numba threads of the kernels. ``"auto"``: one for a binary model (LightGBM's OpenMP
        workers keep the cores busy between rounds), the package's default policy for K classes
        (a K times longer pass; docs/performance.md). None: the package's default policy.

    Returns
    -------
    LGBMObjective
        ``(preds, train_set) -> (grad, hess)`` as float32 arrays. It owns a clone of ``loss`` and
        the state of one training; call :func:`objective` again (or ``reset()``) for the next one.
    """
    return LGBMObjective(loss, n_threads=n_threads)


def metric(
    loss: LossLike, name: str | None = None, *, n_threads: AdapterThreads = "auto"
) -> LGBMMetric:
    """An evaluation metric for ``lgb.train(..., feval=metric(loss))`` (lower is better).

    ``name`` names it in the evaluation log (default ``loss.name``).
    """
    return LGBMMetric(loss, name=name, n_threads=n_threads)


def sklearn_objective(
    loss: LossLike, *, n_threads: AdapterThreads = "auto"
) -> LGBMSklearnObjective:
    """An objective for ``lgb.LGBMClassifier(objective=sklearn_objective(loss))``.

    ``lgb.LGBMClassifier`` then starts from 0 and ``predict_proba`` returns raw scores;
    :class:`boostloss.LGBMClassifier` handles the init score and the probabilities for you.
    """
    return LGBMSklearnObjective(loss, n_threads=n_threads)


def sklearn_metric(
    loss: LossLike, name: str | None = None, *, n_threads: AdapterThreads = "auto"
) -> LGBMSklearnMetric:
    """An evaluation metric for ``lgb.LGBMClassifier.fit(eval_metric=sklearn_metric(loss))``.

    ``name`` names it in ``evals_result_`` (default ``loss.name``).
    """
    return LGBMSklearnMetric(loss, name=name, n_threads=n_threads)


def set_init_score(
    loss: LossLike, train_set: lgb.Dataset, *valid_sets: lgb.Dataset, n_classes: int | None = None
) -> float | Float64Array:
    """Set ``init_score = loss.init_score(y_train)`` on the training set and the validation sets.

    Parameters
    ----------
    loss : FocalLoss or GHMLoss
    train_set : lightgbm.Dataset
        Its labels (and weights) determine the init score.
    *valid_sets : lightgbm.Dataset
        Validation sets: they need the same start, or their metrics are computed from margin 0.
    n_classes : int or None, default=None
        K (the ``num_class`` of your params) for a K-class model: every row then starts from the
        K margins (``init_score`` of shape (n, K)).

    Returns
    -------
    float, or ndarray of shape (K,) with ``n_classes``
        The init score. LightGBM does not store it in the model: add it to
        ``booster.predict(X, raw_score=True)`` (see :func:`predict_proba`) or fold it into the
        model with :func:`make_portable`.
    """
    score = start_of(loss, _read_dataset(train_set), n_classes)
    for d in (train_set,) + valid_sets:
        label = d.get_label()
        if label is None:
            raise ValueError("a validation Dataset has no label; init_score needs its length")
        d.set_init_score(start_rows(score, len(label), np.float64))
    return score


def predict_proba(
    booster: lgb.Booster, X: MatrixLike, init_score: float | ArrayLike = 0.0, **kwargs: Any
) -> Float64Array:
    """Probabilities from a booster trained with a boostloss objective.

    Binary: ``sigmoid(booster.predict(X, raw_score=True, **kwargs) + init_score)``, the
    probability of the positive class. K classes: ``softmax(raw + init_score)`` over the classes.

    Parameters
    ----------
    booster : lightgbm.Booster
    X : array-like
    init_score : float or array-like of shape (K,), default=0.0
        The value returned by :func:`set_init_score`.

    Returns
    -------
    ndarray of shape (n,), or (n, K) for a K-class booster
    """
    if np.ndim(init_score) == 0:
        v.check_real("init_score", init_score)
    k = booster.num_model_per_iteration()
    raw: Any = booster.predict(X, raw_score=True, **kwargs)
    if k == 1:
        v.check_real("init_score", init_score)
        return expit(raw + float(init_score))  # type: ignore[arg-type]  # a number: checked
    start = np.asarray(init_score, dtype=np.float64)
    if start.shape not in ((), (k,)) or not np.all(np.isfinite(start)):
        raise ValueError(
            f"init_score={init_score!r} does not fit a booster with {k} classes: expected the "
            f"{k} margins returned by set_init_score (or 0.0)"
        )
    return softmax(raw + start, axis=1)


def make_portable(booster: lgb.Booster, init_score: float | ArrayLike) -> lgb.Booster:
    """A copy of ``booster`` that predicts the boostloss probabilities in plain LightGBM.

    A booster trained with a boostloss objective predicts raw margins without the start, and its
    saved model has no objective. The copy stores both: ``init_score`` is added to every leaf of
    the first iteration (as LightGBM does with ``boost_from_average`` for its built-in
    objectives) and the model carries ``objective=binary sigmoid:1`` (``multiclass num_class:K``
    for K trees per iteration). Then ``lgb.Booster(model_file=...).predict(X)`` returns the
    probabilities and ``predict(X, raw_score=True)`` the margins including the start, with
    LightGBM alone (any binding, the CLI).

    Parameters
    ----------
    booster : lightgbm.Booster
        Trained with :func:`objective` after :func:`set_init_score`; it is not modified.
    init_score : float or array-like of shape (K,)
        The value returned by :func:`set_init_score` (K margins for a K-class model). Pass 0.0
        for a booster continued (``init_model=``) from a portable model: its first trees already
        hold the start.

    Returns
    -------
    lightgbm.Booster
        Keeps ``best_iteration`` (``save_model`` and ``predict`` still use it) and every tree.
        ``predict(X, start_iteration=i)`` with ``i > 0`` leaves out the first iteration, and with
        it the start. ``predict(X, pred_contrib=True)`` puts the start in the expected-value
        column. Continued training (``lgb.train({"objective": objective(loss), ...}, train_set,
        init_model=portable)``) starts from the portable model's margins, so do not call
        :func:`set_init_score` on ``train_set`` then; make the continued booster portable with
        ``init_score=0.0``.

    Examples
    --------
    >>> start = set_init_score(focal, train_set)                     # doctest: +SKIP
    >>> booster = lgb.train({"objective": objective(focal), "metric": "None"},
    ...                     train_set)                                  # doctest: +SKIP
    >>> make_portable(booster, start).save_model("model.txt")        # doctest: +SKIP
    >>> lgb.Booster(model_file="model.txt").predict(X)  # probabilities  # doctest: +SKIP
    """
    from ._frameworks.lgb_portable import make_portable as _make_portable

    return _make_portable(booster, init_score)
