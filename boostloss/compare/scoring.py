"""The metrics of ``boostloss compare`` on predicted probabilities, fast enough to run every round.

Early stopping evaluates the selection metric on the validation rows after every boosting round,
so the three metrics here are plain numpy (scikit-learn's versions spend most of their time
validating input). They agree with :func:`sklearn.metrics.average_precision_score`,
:func:`~sklearn.metrics.roc_auc_score` and :func:`~sklearn.metrics.log_loss` (tested).

Every loss is judged on probabilities alike: a custom objective hands the metric raw margins, the
built-in one probabilities, and :class:`Score` turns margins into probabilities first.
"""

import dataclasses

import numpy as np
from scipy.special import expit

from .registry import SELECTION_METRICS

__all__ = ["Score", "average_precision", "log_loss", "make_score", "roc_auc"]


def average_precision(y_true, proba):
    """Average precision: sum over thresholds of (R_k - R_{k-1}) P_k, tied scores one threshold."""
    y = np.asarray(y_true, dtype=np.float64)
    order = np.argsort(-np.asarray(proba, dtype=np.float64), kind="mergesort")
    scores = np.asarray(proba, dtype=np.float64)[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), scores.shape[0] - 1]
    true_positives = np.cumsum(y[order])[last_of_tie]
    if true_positives[-1] == 0:
        return 0.0
    precision = true_positives / (last_of_tie + 1)
    recall = true_positives / true_positives[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def roc_auc(y_true, proba):
    """ROC-AUC as the Mann-Whitney statistic (ties count one half)."""
    from scipy.stats import rankdata

    y = np.asarray(y_true) == 1
    n_pos = int(y.sum())
    n_neg = y.shape[0] - n_pos
    if n_pos == 0 or n_neg == 0:
        return 0.5
    ranks = rankdata(np.asarray(proba, dtype=np.float64))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(y_true, proba):
    """Mean cross-entropy of probabilities clipped to [eps, 1 - eps] (float64 eps, as scikit-learn)."""
    eps = np.finfo(np.float64).eps
    p = np.clip(np.asarray(proba, dtype=np.float64), eps, 1.0 - eps)
    y = np.asarray(y_true, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log1p(-p)))


_FUNCTIONS = {"ap": average_precision, "auc": roc_auc, "logloss": log_loss}


@dataclasses.dataclass(frozen=True)
class Score:
    """One selection metric, with the callables the backends' early stopping takes.

    Attributes
    ----------
    name : str
        The ``--metric`` choice: ``"ap"``, ``"logloss"`` or ``"auc"``.
    key : str
        Its key in :data:`~boostloss.compare.METRICS` (``"average_precision"``, ...).
    maximize : bool
        Whether larger is better.
    """

    name: str
    key: str
    maximize: bool

    def __call__(self, y_true, proba):
        """The metric of probabilities ``proba``."""
        return _FUNCTIONS[self.name](y_true, proba)

    def better(self, candidate, incumbent):
        """Whether ``candidate`` is strictly better than ``incumbent`` (None: nothing yet)."""
        if incumbent is None:
            return True
        return candidate > incumbent if self.maximize else candidate < incumbent

    def of_predictions(self, y_true, prediction, margins):
        """The metric of a backend's predictions: raw margins when ``margins``, else probabilities."""
        proba = expit(np.asarray(prediction, dtype=np.float64)) if margins else prediction
        return self(y_true, proba)

    def sklearn_metric(self, margins):
        """``metric(y_true, prediction) -> float`` named after the score (XGBoost's ``eval_metric``)."""

        def metric(y_true, prediction):
            return self.of_predictions(y_true, prediction, margins)

        metric.__name__ = self.name
        return metric

    def lightgbm_metric(self, margins):
        """``metric(y_true, prediction) -> (name, value, larger_is_better)`` (LightGBM's ``eval_metric``)."""

        def metric(y_true, prediction):
            return self.name, self.of_predictions(y_true, prediction, margins), self.maximize

        return metric


def make_score(name):
    """The :class:`Score` of a ``--metric`` choice."""
    from .registry import METRICS

    if name not in SELECTION_METRICS:
        raise ValueError(f"unknown metric {name!r}; expected one of {tuple(SELECTION_METRICS)}")
    key = SELECTION_METRICS[name]
    return Score(name=name, key=key, maximize=METRICS[key].larger_is_better)
