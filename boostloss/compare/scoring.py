"""The metrics of ``boostloss compare`` on predicted probabilities, fast enough to run every round.

Early stopping evaluates the selection metric on the validation rows after every boosting round,
so the three metrics here are plain numpy (scikit-learn's versions spend most of their time
validating input). They agree with :func:`sklearn.metrics.average_precision_score`,
:func:`~sklearn.metrics.roc_auc_score` and :func:`~sklearn.metrics.log_loss` (tested).

Every loss is judged on probabilities alike: a custom objective hands the metric raw margins, the
built-in one probabilities, and :class:`Score` turns margins into probabilities first (the sigmoid,
or the softmax of a row of K margins).

On a multi-class task (probabilities of shape (n, K), labels 0..K-1) ``ap`` and ``auc`` are the
one-vs-rest metrics averaged over the classes (macro), and ``logloss`` is the multi-class
cross-entropy; :func:`multiclass_metrics` computes the table's columns with scikit-learn.
"""

import dataclasses

import numpy as np
from scipy.special import expit, softmax

from .registry import SELECTION_METRICS

__all__ = ["Score", "average_precision", "log_loss", "macro", "make_score", "multiclass_log_loss",
           "multiclass_metrics", "roc_auc"]


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


def macro(metric, y_true, proba):
    """``metric`` one-vs-rest per class of ``proba`` (n, K), averaged over the classes present in
    ``y_true`` (a class absent from a small validation split has no AP or ROC-AUC)."""
    y = np.asarray(y_true)
    present = [k for k in range(proba.shape[1]) if np.any(y == k)]
    return float(np.mean([metric(y == k, proba[:, k]) for k in present]))


def multiclass_log_loss(y_true, proba):
    """Mean of ``-log p_y`` over rows, p clipped to [eps, 1 - eps] (float64 eps, as scikit-learn)."""
    eps = np.finfo(np.float64).eps
    proba = np.asarray(proba, dtype=np.float64)
    picked = proba[np.arange(proba.shape[0]), np.asarray(y_true, dtype=np.int64)]
    return float(-np.mean(np.log(np.clip(picked, eps, 1.0 - eps))))


def multiclass_metrics(y_true, proba, rarest):
    """The columns of a multi-class fold, from scikit-learn: macro one-vs-rest AP and ROC-AUC,
    the AP of class ``rarest``, log loss, balanced accuracy and macro F1 of the argmax."""
    from sklearn.metrics import average_precision_score, balanced_accuracy_score, f1_score
    from sklearn.metrics import log_loss as sklearn_log_loss
    from sklearn.metrics import roc_auc_score

    n_classes = proba.shape[1]
    labels = np.arange(n_classes)
    onehot = (np.asarray(y_true)[:, None] == labels).astype(np.int8)
    predicted = np.argmax(proba, axis=1)
    return {
        "average_precision": float(average_precision_score(onehot, proba, average="macro")),
        "rarest_ap": float(average_precision_score(onehot[:, rarest], proba[:, rarest])),
        "roc_auc": float(roc_auc_score(onehot, proba, average="macro")),
        "log_loss": float(sklearn_log_loss(y_true, proba, labels=labels)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, predicted)),
        "macro_f1": float(f1_score(y_true, predicted, labels=labels, average="macro", zero_division=0)),
    }


def _either(binary, multiclass):
    def metric(y_true, proba):
        proba = np.asarray(proba)
        return multiclass(y_true, proba) if proba.ndim == 2 else binary(y_true, proba)

    return metric


_FUNCTIONS = {
    "ap": _either(average_precision, lambda y, p: macro(average_precision, y, p)),
    "auc": _either(roc_auc, lambda y, p: macro(roc_auc, y, p)),
    "logloss": _either(log_loss, multiclass_log_loss),
}


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
        """The metric of probabilities ``proba``: shape (n,) binary, (n, K) multi-class."""
        return _FUNCTIONS[self.name](y_true, proba)

    def better(self, candidate, incumbent):
        """Whether ``candidate`` is strictly better than ``incumbent`` (None: nothing yet)."""
        if incumbent is None:
            return True
        return candidate > incumbent if self.maximize else candidate < incumbent

    def of_predictions(self, y_true, prediction, margins):
        """The metric of a backend's predictions: raw margins when ``margins``, else probabilities."""
        prediction = np.asarray(prediction, dtype=np.float64)
        if margins:
            prediction = softmax(prediction, axis=1) if prediction.ndim == 2 else expit(prediction)
        proba = prediction
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
