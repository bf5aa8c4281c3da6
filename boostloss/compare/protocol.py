"""The protocol of ``boostloss compare``: folds, one estimator per (backend, loss), cross-validation.

Every configuration (a loss on a backend) is trained on the same stratified folds; metrics are
computed on the held-out fold from the probabilities the estimators return. Which estimator and
which loss a configuration means comes from :mod:`boostloss.compare.registry`.
"""

import contextlib
import dataclasses
import time

import numpy as np

from .data import DataError, first_line
from .registry import BACKENDS, LOSSES, absent_reason

__all__ = ["CompareResult", "check_folds", "cross_validate", "make_estimator", "staged_probabilities"]


@dataclasses.dataclass
class CompareResult:
    """Everything one comparison produced.

    Attributes
    ----------
    records : list of dict
        One per (backend, loss, fold): the metrics of the held-out fold, the fit time, sizes.
    oof_proba : dict
        ``(backend, loss) -> ndarray`` of out-of-fold probabilities of the positive class
        (every row is predicted by the one model that did not see it).
    first_fold : dict
        ``(backend, loss) -> estimator`` trained on the first fold, and ``"train_index"``: the
        rows it was trained on (for the gradient-norm plot).
    """

    records: list
    oof_proba: dict
    first_fold: dict


def make_estimator(backend, loss, config, y_train):
    """A fresh, unfitted estimator for one configuration.

    ``"logistic"`` is the backend's built-in logistic objective; ``"weighted"`` is the same with
    ``scale_pos_weight = n_negative / n_positive`` of the training labels (what LightGBM's
    ``is_unbalance`` computes); ``"focal"`` and ``"ghm"`` are :class:`~boostloss.FocalLoss` and
    :class:`~boostloss.GHMLoss`. Every other parameter is the backend's default.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {tuple(BACKENDS)}")
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {tuple(LOSSES)}")
    spec = LOSSES[loss]
    params = {
        "n_estimators": config.rounds,
        "learning_rate": config.learning_rate,
        "random_state": config.seed,
        "n_jobs": config.n_jobs,
    }
    if spec.class_weighted:
        n_pos = int(np.sum(y_train))
        params["scale_pos_weight"] = (len(y_train) - n_pos) / n_pos
    if spec.params is not None:
        params.update(spec.params(backend))
    return BACKENDS[backend].estimator(spec.build(config), params)


def _positive_proba(estimator, X, **kwargs):
    proba = np.asarray(estimator.predict_proba(X, **kwargs))
    return proba[:, 1] if proba.ndim == 2 else proba


def _fold_metrics(y_true, proba):
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    proba = np.clip(proba, 0.0, 1.0)
    return {
        "average_precision": float(average_precision_score(y_true, proba)),
        "roc_auc": float(roc_auc_score(y_true, proba)),
        "log_loss": float(log_loss(y_true, proba, labels=[0, 1])),
        "brier": float(brier_score_loss(y_true, proba)),
    }


def check_folds(dataset, folds):
    """Raise :class:`DataError` when a class has fewer rows than there are folds."""
    n_pos = dataset.n_positive
    n_neg = dataset.y.shape[0] - n_pos
    if min(n_pos, n_neg) < folds:
        which = "positive" if n_pos < n_neg else "negative"
        raise DataError(
            f"only {min(n_pos, n_neg)} {which} rows for {folds} folds; every fold needs one; "
            "lower --folds or use more data"
        )


def _warm_up(dataset, config):
    # One tiny training per custom loss and backend loads (or, on a fresh install, compiles) the
    # numba kernels that the real trainings use, with the same dtypes, so that the first fold's
    # fit time measures training, not compilation.
    # Failures are left to the real trainings, which report them.
    positives = np.flatnonzero(dataset.y == 1)[:40]
    negatives = np.flatnonzero(dataset.y == 0)[:80]
    rows = np.concatenate([positives, negatives])
    X, y = dataset.X.iloc[rows], dataset.y[rows]
    tiny = dataclasses.replace(config, rounds=2)
    for backend in config.backends:
        for loss in config.losses:
            if LOSSES[loss].build(config) is not None and not absent_reason(backend, loss):
                with contextlib.suppress(Exception):
                    make_estimator(backend, loss, tiny, y).fit(X, y)


def _fit_fold(dataset, config, backend, loss, fold, train, test):
    """Train one configuration on one fold; return its record, held-out probabilities and model."""
    X, y = dataset.X, dataset.y
    estimator = make_estimator(backend, loss, config, y[train])
    start = time.perf_counter()
    try:
        estimator.fit(X.iloc[train], y[train])
    except BACKENDS[backend].errors() as exc:
        raise DataError(
            f"{backend} could not train the {LOSSES[loss].title} loss on fold {fold + 1} "
            f"({first_line(exc)}); check that the features vary and that there are enough rows"
        ) from None
    fit_seconds = time.perf_counter() - start
    proba = _positive_proba(estimator, X.iloc[test])
    record = {"backend": backend, "loss": loss, "fold": fold}
    record.update(_fold_metrics(y[test], proba))
    record.update(
        fit_seconds=fit_seconds,
        n_train=int(len(train)),
        n_test=int(len(test)),
        n_positive_test=int(y[test].sum()),
    )
    return record, proba, estimator


def cross_validate(dataset, config, on_fit=None, keep_first_fold=False):
    """Stratified k-fold cross-validation of every (backend, loss) of ``config``.

    Parameters
    ----------
    dataset : Dataset
    config : CompareConfig
    on_fit : callable, optional
        Called as ``on_fit(backend, loss, fold)`` after each fit (for progress displays).
    keep_first_fold : bool
        Keep the estimators trained on the first fold (for :func:`staged_probabilities`).

    Returns
    -------
    CompareResult
    """
    from sklearn.model_selection import StratifiedKFold

    check_folds(dataset, config.folds)
    _warm_up(dataset, config)
    y = dataset.y
    splitter = StratifiedKFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
    splits = list(splitter.split(np.zeros(len(y)), y))
    records = []
    oof = {}
    first_fold = {"train_index": splits[0][0]} if keep_first_fold else {}
    for backend in config.backends:
        for loss in config.losses:
            if absent_reason(backend, loss):
                continue  # no row: the report says why
            out = np.full(len(y), np.nan)
            for fold, (train, test) in enumerate(splits):
                record, proba, estimator = _fit_fold(dataset, config, backend, loss, fold, train, test)
                out[test] = proba
                records.append(record)
                if keep_first_fold and fold == 0:
                    first_fold[(backend, loss)] = estimator
                if on_fit is not None:
                    on_fit(backend, loss, fold)
            oof[(backend, loss)] = out
    return CompareResult(records=records, oof_proba=oof, first_fold=first_fold)


def staged_probabilities(estimator, backend, X, rounds):
    """Probabilities of the positive class after each of ``rounds`` boosting rounds.

    Parameters
    ----------
    estimator : fitted boostloss estimator
    backend : str
        A key of :data:`~boostloss.compare.BACKENDS`: says how to predict with the first trees.
    X : DataFrame
        Rows to predict (the training rows, to see what the loss saw).
    rounds : sequence of int
        Numbers of trees to use, each >= 1.

    Returns
    -------
    dict
        ``round -> probabilities of the positive class`` using the first ``round`` trees.
    """
    first_trees = BACKENDS[backend].first_trees
    return {k: _positive_proba(estimator, X, **first_trees(k)) for k in rounds}
