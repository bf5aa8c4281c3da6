"""LightGBM adapters: objectives and evaluation metrics for ``lgb.train`` and ``lgb.LGBMClassifier``.

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

- Each :func:`objective` call returns a new callable that owns a clone of the loss, its own GHM state
  and its own float32 gradient buffers: one callable belongs to one training (``reset()`` starts
  another). Labels and weights are validated once per ``Dataset`` and cached.
- With a callable objective LightGBM skips ``boost_from_average`` (the first margin is 0) and does
  not store ``init_score`` in the model: :func:`set_init_score` sets ``init_score`` on the training and
  validation sets, and :func:`predict_proba` adds it back at prediction.
- The default ``binary_logloss`` metric would read raw scores as probabilities: pass
  ``"metric": "None"`` and ``feval=metric(loss)`` (raw margins in, weighted mean loss out, lower is
  better).
"""

import numpy as np
from scipy.special import expit

from . import _validation as v
from ._adapters import (LossCallable, PerDatasetCallable, fresh_loss, gradient_hessian,
                        mean_loss)
from ._compat_lightgbm import dataset_weight
from .losses import check_target

__all__ = [
    "objective",
    "metric",
    "sklearn_objective",
    "sklearn_metric",
    "set_init_score",
    "predict_proba",
    "make_portable",
    "LGBMObjective",
    "LGBMMetric",
    "LGBMSklearnObjective",
    "LGBMSklearnMetric",
]


def _read_dataset(dataset):
    label = dataset.get_label()
    if label is None:
        raise ValueError("the LightGBM Dataset has no label; boostloss objectives need 0/1 labels")
    weight = dataset_weight(dataset)
    return check_target(label, None if weight is None or len(weight) == 0 else weight)


class LGBMObjective(PerDatasetCallable):
    """Custom objective for ``lgb.train({"objective": ...})``: ``(preds, train_set) -> (grad, hess)``.

    Made by :func:`objective`. It owns a clone of the loss, the GHM state and the float32 buffers of
    one training: use one per training, or call :meth:`reset` between trainings. Every call is one
    boosting round; GHM recomputes its density from the margins of that round.
    """

    _display = "boostloss.lightgbm.objective"
    _read = staticmethod(_read_dataset)

    def __call__(self, preds, train_set):
        return gradient_hessian(self.loss, self._entry(train_set), preds, self.n_threads)


class LGBMMetric(PerDatasetCallable):
    """Metric for ``lgb.train(feval=...)``: ``(preds, dataset) -> (name, value, False)``.

    The weighted mean loss on raw margins; ``False`` tells LightGBM lower is better. LightGBM passes
    raw margins to ``feval`` when the objective is a callable; with a built-in objective it would pass
    probabilities, which this metric would misread.
    """

    _display = "boostloss.lightgbm.metric"
    _read = staticmethod(_read_dataset)

    def __call__(self, preds, dataset):
        value = mean_loss(self.loss, self._entry(dataset), preds, self.n_threads)
        return self.__name__, value, False


class LGBMSklearnObjective(LossCallable):
    """Objective for ``lgb.LGBMClassifier(objective=...)``: ``(y_true, y_pred, weight)``.

    LightGBM chooses the call by counting parameters; with three it passes the sample weights
    (None when there are none). Belongs to one training; :meth:`reset` starts another.
    """

    _display = "boostloss.lightgbm.sklearn_objective"

    def __call__(self, y_true, y_pred, weight):
        entry = self._cache.get(self.loss, y_true, weight)
        return gradient_hessian(self.loss, entry, y_pred, self.n_threads)


class LGBMSklearnMetric(LossCallable):
    """Metric for ``lgb.LGBMClassifier.fit(eval_metric=...)``: ``(y_true, y_pred, weight)``.

    Returns ``(loss.name, weighted mean loss, False)``; expects raw margins (a callable objective).
    """

    _display = "boostloss.lightgbm.sklearn_metric"

    def __call__(self, y_true, y_pred, weight):
        entry = self._cache.get(self.loss, y_true, weight)
        return self.__name__, mean_loss(self.loss, entry, y_pred, self.n_threads), False


def objective(loss, *, n_threads=1):
    """A custom objective for ``lgb.train({"objective": objective(loss), "metric": "None"}, ...)``.

    Parameters
    ----------
    loss : FocalLoss, GHMLoss or a registered name (``"focal:gamma=2"``)
    n_threads : int or None, default=1
        Numba threads of the kernels. 1: LightGBM's OpenMP workers keep the cores busy between
        rounds. None: the package's default policy (``boostloss._threads``).

    Returns
    -------
    LGBMObjective
        ``(preds, train_set) -> (grad, hess)`` as float32 arrays. It owns a clone of ``loss`` and the
        state of one training; call :func:`objective` again (or ``reset()``) for the next one.
    """
    return LGBMObjective(loss, n_threads=n_threads)


def metric(loss, name=None, *, n_threads=1):
    """An evaluation metric for ``lgb.train(..., feval=metric(loss))`` (lower is better).

    ``name`` names it in the evaluation log (default ``loss.name``).
    """
    return LGBMMetric(loss, name=name, n_threads=n_threads)


def sklearn_objective(loss, *, n_threads=1):
    """An objective for ``lgb.LGBMClassifier(objective=sklearn_objective(loss))``.

    ``lgb.LGBMClassifier`` then starts from 0 and ``predict_proba`` returns raw scores;
    :class:`boostloss.LGBMClassifier` handles the init score and the probabilities for you.
    """
    return LGBMSklearnObjective(loss, n_threads=n_threads)


def sklearn_metric(loss, name=None, *, n_threads=1):
    """An evaluation metric for ``lgb.LGBMClassifier.fit(eval_metric=sklearn_metric(loss))``.

    ``name`` names it in ``evals_result_`` (default ``loss.name``).
    """
    return LGBMSklearnMetric(loss, name=name, n_threads=n_threads)


def set_init_score(loss, train_set, *valid_sets):
    """Set ``init_score = loss.init_score(y_train)`` on the training set and the validation sets.

    Parameters
    ----------
    loss : FocalLoss or GHMLoss
    train_set : lightgbm.Dataset
        Its labels (and weights) determine the init score.
    *valid_sets : lightgbm.Dataset
        Validation sets: they need the same start, or their metrics are computed from margin 0.

    Returns
    -------
    float
        The init score. LightGBM does not store it in the model: add it to
        ``booster.predict(X, raw_score=True)`` (see :func:`predict_proba`).
    """
    score = float(fresh_loss(loss).init_score(_read_dataset(train_set)))
    for d in (train_set,) + valid_sets:
        label = d.get_label()
        if label is None:
            raise ValueError("a validation Dataset has no label; init_score needs its length")
        d.set_init_score(np.full(len(label), score, dtype=np.float64))
    return score


def predict_proba(booster, X, init_score=0.0, **kwargs):
    """Probabilities of the positive class from a booster trained with a boostloss objective.

    Computes ``sigmoid(booster.predict(X, raw_score=True, **kwargs) + init_score)``.

    Parameters
    ----------
    booster : lightgbm.Booster
    X : array-like
    init_score : float, default=0.0
        The value returned by :func:`set_init_score`.

    Returns
    -------
    ndarray of shape (n,)
    """
    v.check_real("init_score", init_score)
    return expit(booster.predict(X, raw_score=True, **kwargs) + float(init_score))


def make_portable(booster, init_score):
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
    from ._lgb_portable import make_portable as _make_portable

    return _make_portable(booster, init_score)
