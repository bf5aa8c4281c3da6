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

Two sets of probabilities per model: what its ``predict_proba`` returns ranks the rows (AP,
ROC-AUC, and on K classes the argmax columns), and the *posterior* is what log loss, Brier score
and the expected calibration error (:func:`expected_calibration_error`) judge. They are the same
array except for the class-weighted logistic rows, whose posterior undoes the class weights
(the prior-odds correction, computed from the margins); for binary targets the correction is
monotone, so AP and ROC-AUC are the same on either.
"""

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.special import expit, softmax

from .registry import SELECTION_METRICS

__all__ = [
    "ECE_BINS",
    "Score",
    "average_precision",
    "binary_metrics",
    "calibration_bins",
    "expected_calibration_error",
    "log_loss",
    "macro",
    "make_score",
    "multiclass_log_loss",
    "multiclass_metrics",
    "roc_auc",
]

#: Equal-width bins of the expected calibration error and of the reliability diagram.
ECE_BINS = 15


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
    """Mean cross-entropy of probabilities clipped to [eps, 1 - eps] (float64 eps, as sklearn)."""
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
    """Mean of ``-log p_y`` over rows, p clipped to [eps, 1 - eps] (float64 eps, as sklearn)."""
    eps = np.finfo(np.float64).eps
    proba = np.asarray(proba, dtype=np.float64)
    picked = proba[np.arange(proba.shape[0]), np.asarray(y_true, dtype=np.int64)]
    return float(-np.mean(np.log(np.clip(picked, eps, 1.0 - eps))))


def _calibration_pairs(y_true, proba):
    """(predicted probability, 0/1 outcome) per row: the positive class's probability and label
    for a binary task (shape (n,)); the top label's probability and whether it is the true class
    for K classes (shape (n, K))."""
    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y_true)
    if proba.ndim == 2:
        top = np.argmax(proba, axis=1)
        return proba[np.arange(proba.shape[0]), top], (top == y).astype(np.float64)
    return proba, y.astype(np.float64)


def calibration_bins(y_true, proba, bins=ECE_BINS):
    """The reliability table of ``proba``: per non-empty equal-width bin, the mean predicted
    probability, the observed rate and the number of rows.

    Row i falls in bin ``min(floor(bins * p_i), bins - 1)`` (bin m holds m / bins <= p < (m + 1) /
    bins, and p = 1 the last). ``p`` is the positive class's probability (shape (n,)), or on K
    classes the top label's probability with "observed" the share of rows whose top label is the
    true class (shape (n, K); Guo, Pleiss, Sun and Weinberger, ICML 2017).

    Returns
    -------
    (predicted, observed, counts) : three arrays of the non-empty bins, in bin order
    """
    p, outcome = _calibration_pairs(y_true, proba)
    index = np.minimum(np.floor(p * bins).astype(np.int64), bins - 1)
    counts = np.bincount(index, minlength=bins)
    predicted = np.bincount(index, weights=p, minlength=bins)
    observed = np.bincount(index, weights=outcome, minlength=bins)
    full = counts > 0
    return predicted[full] / counts[full], observed[full] / counts[full], counts[full]


def expected_calibration_error(y_true, proba, bins=ECE_BINS):
    """Expected calibration error over ``bins`` equal-width bins (see :func:`calibration_bins`):

        ECE = sum over bins b of (n_b / n) |mean p in b - observed rate in b|.

    Binary (``proba`` of shape (n,)): the positive class's probability against the positive rate;
    K classes (shape (n, K)): the top label's probability against its accuracy. 0 for a perfectly
    calibrated model (up to binning), at most 1.
    """
    predicted, observed, counts = calibration_bins(y_true, proba, bins)
    return float(np.sum(counts * np.abs(predicted - observed)) / np.sum(counts))


def binary_metrics(y_true, proba, posterior=None):
    """The columns of a binary fold, from scikit-learn: AP and ROC-AUC of ``proba`` (the positive
    class's probability as the model gives it), log loss, Brier score and ECE of ``posterior``
    (None: ``proba``)."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
    from sklearn.metrics import log_loss as sklearn_log_loss

    proba = np.clip(np.asarray(proba, dtype=np.float64), 0.0, 1.0)
    posterior = (
        proba if posterior is None else np.clip(np.asarray(posterior, dtype=np.float64), 0.0, 1.0)
    )
    return {
        "average_precision": float(average_precision_score(y_true, proba)),
        "roc_auc": float(roc_auc_score(y_true, proba)),
        "log_loss": float(sklearn_log_loss(y_true, posterior, labels=[0, 1])),
        "brier": float(brier_score_loss(y_true, posterior)),
        "ece": expected_calibration_error(y_true, posterior),
    }


def multiclass_metrics(y_true, proba, rarest, posterior=None):
    """The columns of a multi-class fold, from scikit-learn: macro one-vs-rest AP and ROC-AUC,
    the AP of class ``rarest``, balanced accuracy and macro F1 of the argmax of ``proba`` (as the
    model gives them); log loss and top-label ECE of ``posterior`` (None: ``proba``)."""
    from sklearn.metrics import (
        average_precision_score,
        balanced_accuracy_score,
        f1_score,
        roc_auc_score,
    )
    from sklearn.metrics import log_loss as sklearn_log_loss

    posterior = proba if posterior is None else posterior
    n_classes = proba.shape[1]
    labels = np.arange(n_classes)
    onehot = (np.asarray(y_true)[:, None] == labels).astype(np.int8)
    predicted = np.argmax(proba, axis=1)
    return {
        "average_precision": float(average_precision_score(onehot, proba, average="macro")),
        "rarest_ap": float(average_precision_score(onehot[:, rarest], proba[:, rarest])),
        "roc_auc": float(roc_auc_score(onehot, proba, average="macro")),
        "log_loss": float(sklearn_log_loss(y_true, posterior, labels=labels)),
        "ece": expected_calibration_error(y_true, posterior),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, predicted)),
        "macro_f1": float(
            f1_score(y_true, predicted, labels=labels, average="macro", zero_division=0)
        ),
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
    to_posterior : callable or None
        ``to_posterior(prediction) -> posterior`` (shape (n,) or (n, K)) of what the backend
        hands the metric: a boostloss loss's margins (its ``predict_proba``), or a
        class-weighted built-in model's probabilities (the class-weight correction). Used by
        ``logloss`` only, see :meth:`for_model`; None: the sigmoid / softmax of margins, and
        probabilities as they are.
    """

    name: str
    key: str
    maximize: bool
    to_posterior: Callable[[Any], Any] | None = dataclasses.field(
        default=None, compare=False, repr=False
    )

    def __call__(self, y_true, proba):
        """The metric of probabilities ``proba``: shape (n,) binary, (n, K) multi-class."""
        return _FUNCTIONS[self.name](y_true, proba)

    def better(self, candidate, incumbent):
        """Whether ``candidate`` is strictly better than ``incumbent`` (None: nothing yet)."""
        if incumbent is None:
            return True
        return candidate > incumbent if self.maximize else candidate < incumbent

    @property
    def judges_posterior(self):
        """Whether the metric judges the posterior (log loss) rather than the ranking."""
        return self.name == "logloss"

    def of_model(self, y_true, proba, posterior):
        """The metric of one model's predictions: ``posterior`` for log loss, else ``proba``."""
        return self(y_true, posterior if self.judges_posterior else proba)

    def for_model(self, loss=None, class_weights=None):
        """This score for one model trained with ``loss`` (a boostloss loss, whose metric sees
        margins, or None for a built-in objective, whose metric sees probabilities) and
        ``class_weights`` (None, or the per-class training weights of a built-in objective:
        ``(1, scale_pos_weight)`` binary, K weights multi-class): log loss then judges the
        posterior (``loss.predict_proba`` of the margins, or the class-weight corrected
        probabilities); the ranking metrics are unchanged."""
        if not self.judges_posterior:
            return self
        if loss is not None and hasattr(loss, "predict_proba"):
            return dataclasses.replace(self, to_posterior=functools.partial(_loss_posterior, loss))
        if class_weights is not None:
            weights = tuple(float(w) for w in class_weights)
            return dataclasses.replace(
                self, to_posterior=functools.partial(_weighted_posterior, class_weights=weights)
            )
        return self

    def of_predictions(self, y_true, prediction, margins):
        """The metric of a backend's predictions: margins when ``margins``, else probabilities."""
        prediction = np.asarray(prediction, dtype=np.float64)
        if self.judges_posterior and self.to_posterior is not None:
            proba = self.to_posterior(prediction)
        elif margins:
            proba = softmax(prediction, axis=1) if prediction.ndim == 2 else expit(prediction)
        else:
            proba = prediction
        return self(y_true, proba)

    def sklearn_metric(self, margins):
        """``metric(y_true, prediction) -> float``, named after the score (XGBoost's
        ``eval_metric``)."""

        def metric(y_true, prediction):
            return self.of_predictions(y_true, prediction, margins)

        metric.__name__ = self.name
        return metric

    def lightgbm_metric(self, margins):
        """``metric(y_true, prediction) -> (name, value, larger_is_better)`` (LightGBM's
        ``eval_metric``)."""

        def metric(y_true, prediction):
            return self.name, self.of_predictions(y_true, prediction, margins), self.maximize

        return metric


def _loss_posterior(loss, margins):
    """The posterior of margins of a model trained with ``loss`` (its ``predict_proba``): shape
    (n,) (the positive class) for 1-D margins, (n, K) for (n, K)."""
    posterior = loss.predict_proba(margins)
    return posterior[:, 1] if np.ndim(margins) == 1 else posterior


def _weighted_posterior(proba, class_weights):
    """The posterior of a class-weighted model's probabilities (shape (n,) binary, (n, K)):
    :func:`boostloss.losses._posterior.posterior_from_margin` of their logit / log (margins up to a
    per-row constant, which the softmax ignores)."""
    from ..losses._posterior import posterior_from_margin

    # Finite margins: a probability of exactly 0 or 1 (float32 predictions) is clipped first.
    proba = np.clip(np.asarray(proba, dtype=np.float64), _TINY, _BELOW_ONE)
    if proba.ndim == 1:
        return posterior_from_margin(np.log(proba) - np.log1p(-proba), class_weights=class_weights)[
            :, 1
        ]
    return posterior_from_margin(np.log(proba), class_weights=class_weights)


_TINY = np.finfo(np.float64).tiny
_BELOW_ONE = np.nextafter(1.0, 0.0)


def make_score(name):
    """The :class:`Score` of a ``--metric`` choice."""
    from .registry import METRICS

    if name not in SELECTION_METRICS:
        raise ValueError(f"unknown metric {name!r}; expected one of {tuple(SELECTION_METRICS)}")
    key = SELECTION_METRICS[name]
    return Score(name=name, key=key, maximize=METRICS[key].larger_is_better)
