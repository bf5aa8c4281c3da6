"""What ``boostloss compare`` can compare: the backends, losses and metrics, each listed once.

The command line (its choices, defaults and help) and the protocol (which estimator to build, with
which loss, how to early-stop it, which settings ``--tune`` tries) both read these dicts; a new
loss or backend is one entry here. Nothing heavy is
imported at module level, so ``boostloss --help`` stays fast: each builder imports what it needs.
"""

from collections.abc import Callable
from typing import NamedTuple

__all__ = [
    "Backend",
    "LossSpec",
    "Metric",
    "BACKENDS",
    "LOSSES",
    "METRICS",
    "MULTICLASS_METRICS",
    "SELECTION_METRICS",
    "absent_reason",
    "balanced_class_weights",
    "metrics_of",
]


class Backend(NamedTuple):
    """A boosting library that compare trains.

    Attributes
    ----------
    title : str
        The library's name as written in prose (help texts).
    estimator : callable
        ``estimator(loss, params) -> unfitted classifier``: ``loss`` is a boostloss loss or None
        (the library's built-in logistic objective); ``params`` are the shared keyword arguments
        (``n_estimators``, ``learning_rate``, ``random_state``, ``n_jobs``, maybe
        ``scale_pos_weight``).
    first_trees : callable
        ``first_trees(k) -> dict``: the ``predict_proba`` keyword arguments that use only the
        first ``k`` trees.
    errors : callable
        ``errors() -> tuple of exception types`` the library raises for data it cannot train on.
    margins : callable
        ``margins(estimator, X, **first_trees) -> ndarray``: the fitted estimator's raw margins,
        shape (n,) binary or (n, K) (the class-weight correction of compare's weighted rows
        starts from them).
    fit_early_stopped : callable
        ``fit_early_stopped(estimator, X, y, X_valid, y_valid, score, patience, sample_weight)
        -> int``: fit ``estimator`` (whose ``n_estimators`` is the ceiling) on ``X, y`` (with
        ``sample_weight``, None for none), stopping when
        ``score`` on the validation rows has not improved for ``patience`` rounds; return the
        best number of rounds. ``score`` is a :class:`~boostloss.compare.scoring.Score`.
    """

    title: str
    estimator: Callable
    first_trees: Callable
    errors: Callable
    fit_early_stopped: Callable
    margins: Callable


class LossSpec(NamedTuple):
    """A loss that compare trains on every backend.

    Attributes
    ----------
    title : str
        Short name in tables and messages.
    summary : str
        The phrase that describes it in ``--help``.
    build : callable
        ``build(config, y_train) -> loss``: the boostloss loss object with the parameters of
        ``config`` (a :class:`~boostloss.compare.CompareConfig`) for the training labels
        ``y_train`` (0/1, or 0..K-1 on a multi-class task), or None for the backend's built-in
        logistic (softmax) objective.
    label : callable or None
        ``label(config) -> str``: the table label, with the parameters that ``config`` sets;
        None: the title.
    class_weighted : bool
        Train with ``scale_pos_weight = (n_negative / n_positive) ** config.pos_weight_power`` of
        the training labels; on a multi-class task with the per-row weights
        :func:`balanced_class_weights` ``** config.pos_weight_power`` (``sample_weight``).
    grid : tuple of dict
        What ``--tune`` tries: each dict replaces fields of the config (e.g. ``{"gamma": 1.0,
        "alpha": None}``), in the order tried (ties keep the first). Empty: nothing to tune.
    multiclass_grid : tuple of dict or None
        The grid on a multi-class task; None: the same as ``grid``.
    binary_only : str or None
        Why the loss has no row on a multi-class task (the report says it under the table);
        None: it has one.
    describe : callable or None
        ``describe(settings) -> str``: one grid point in words for tables and progress; None:
        ``name=value`` pairs.
    params : callable or None
        ``params(backend) -> dict``: further estimator parameters of this loss on ``backend``
        (GOSS: LightGBM's ``data_sample_strategy``); None: none.
    absent : callable or None
        ``absent(backend) -> str or None``: why this loss has no row for ``backend`` (the report
        says it under the table), None where it has one; None: a row on every backend.
    posterior : bool
        Whether the model's probabilities estimate the class posterior (after the class-weight
        correction where ``class_weighted``), so that log loss, Brier score and ECE judge it;
        False: they are a score (GHM-C, OHEM: sample weights that depend on the data leave no
        closed-form map to the posterior), which the report says under the table.
    """

    title: str
    summary: str
    build: Callable
    label: Callable | None = None
    class_weighted: bool = False
    grid: tuple = ()
    describe: Callable | None = None
    params: Callable | None = None
    absent: Callable | None = None
    multiclass_grid: tuple | None = None
    binary_only: str | None = None
    posterior: bool = True


class Metric(NamedTuple):
    """A column of the table: its title, and whether larger values are better."""

    title: str
    larger_is_better: bool


def _xgboost_estimator(loss, params):
    from ..estimators import XGBClassifier

    # No default metric: the early-stopping score is the only thing evaluated.
    return XGBClassifier(
        loss=loss, enable_categorical=True, disable_default_eval_metric=True, **params
    )


def _xgboost_fit_early_stopped(
    estimator, X, y, X_valid, y_valid, score, patience, sample_weight=None
):
    import xgboost as xgb

    # XGBoost hands a custom metric raw margins when the objective is a callable (a boostloss
    # loss) and probabilities for its built-in objective.
    metric = score.sklearn_metric(margins=estimator.get_params()["loss"] is not None)
    stopper = xgb.callback.EarlyStopping(
        rounds=patience,
        metric_name=metric.__name__,
        data_name="validation_0",
        maximize=score.maximize,
        save_best=False,
    )
    estimator.set_params(eval_metric=metric, callbacks=[stopper])
    estimator.fit(X, y, sample_weight=sample_weight, eval_set=[(X_valid, y_valid)], verbose=False)
    return int(estimator.best_iteration) + 1


def _xgboost_errors():
    from xgboost.core import XGBoostError

    return (XGBoostError,)


def _lightgbm_estimator(loss, params):
    from ..estimators import LGBMClassifier

    # metric="None": no built-in metric next to the early-stopping score.
    return LGBMClassifier(loss=loss, verbose=-1, metric="None", **params)


def _lightgbm_fit_early_stopped(
    estimator, X, y, X_valid, y_valid, score, patience, sample_weight=None
):
    import lightgbm as lgb

    # LightGBM hands a custom metric raw scores (start included) when the objective is a callable
    # and probabilities for its built-in objective.
    metric = score.lightgbm_metric(margins=estimator.get_params()["loss"] is not None)
    estimator.fit(
        X,
        y,
        sample_weight=sample_weight,
        eval_X=X_valid,
        eval_y=y_valid,
        eval_metric=metric,
        callbacks=[lgb.early_stopping(patience, first_metric_only=True, verbose=False)],
    )
    return max(int(estimator.best_iteration_), 1)


def _lightgbm_errors():
    from lightgbm.basic import LightGBMError

    return (LightGBMError,)


#: Backend name -> :class:`Backend`, in table order.
BACKENDS = {
    "xgboost": Backend(
        title="XGBoost",
        estimator=_xgboost_estimator,
        first_trees=lambda k: {"iteration_range": (0, int(k))},
        errors=_xgboost_errors,
        fit_early_stopped=_xgboost_fit_early_stopped,
        margins=lambda estimator, X, **kwargs: estimator.predict(X, output_margin=True, **kwargs),
    ),
    "lightgbm": Backend(
        title="LightGBM",
        estimator=_lightgbm_estimator,
        first_trees=lambda k: {"num_iteration": int(k)},
        errors=_lightgbm_errors,
        fit_early_stopped=_lightgbm_fit_early_stopped,
        margins=lambda estimator, X, **kwargs: estimator.predict(X, raw_score=True, **kwargs),
    ),
}


def balanced_class_weights(y, power=1.0):
    """Per-class weights ``(n / (K * n_k)) ** power`` of integer labels ``y`` in 0..K-1
    (scikit-learn's "balanced" weights: with ``power`` 1 every class carries the same total)."""
    import numpy as np

    counts = np.bincount(np.asarray(y, dtype=np.int64))
    return (counts.sum() / (counts.shape[0] * counts)) ** power


def _word(value):
    """A setting in words: none for None, numbers as ``:g``."""
    if value is None:
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _words(template):
    """``words(settings) -> str``: ``template`` filled with the settings in words; ``settings`` is
    a grid point (dict) or a :class:`~boostloss.compare.CompareConfig`."""

    def words(settings):
        fields = settings if isinstance(settings, dict) else vars(settings)
        return template.format(**{name: _word(value) for name, value in fields.items()})

    return words


def _loss(module, name, **parameters):
    """``build(config, y_train)`` of the boostloss loss ``module.name``; ``parameters`` maps its
    arguments to config fields. A focal ``alpha`` of ``"balanced"`` (multi-class only) becomes
    per-class weights :func:`balanced_class_weights` of the training labels."""

    def build(config, y_train):
        import importlib

        values = {arg: getattr(config, field) for arg, field in parameters.items()}
        if values.get("alpha") == "balanced":
            values["alpha"] = [float(w) for w in balanced_class_weights(y_train)]
        return getattr(importlib.import_module(module, __package__), name)(**values)

    return build


def _ghm_label(config):
    momentum = f", momentum {config.momentum:g}" if config.momentum else ""
    return f"GHM-C ({config.bins} bins{momentum})"


def _weighted_label(config):
    return "weighted logistic" + ("" if config.pos_weight_power == 1.0 else " (sqrt ratio)")


def _describe_weight(settings):
    power = settings["pos_weight_power"]
    return {1.0: "spw=ratio", 0.5: "spw=sqrt(ratio)"}.get(power, f"spw=ratio^{power:g}")


def _builtin(config, y_train):
    return None


def _goss_params(backend):
    return {"data_sample_strategy": "goss"} if backend == "lightgbm" else {}


def _goss_absent(backend):
    if backend == "xgboost":
        return (
            "XGBoost's gradient-based sampling (sampling_method='gradient_based') needs "
            "device='cuda'; compare trains on the CPU"
        )
    return None


def _grid(**axes):
    """Every combination of the axes' values, the last axis varying fastest."""
    import itertools

    names = list(axes)
    return tuple(
        dict(zip(names, values, strict=True)) for values in itertools.product(*axes.values())
    )


#: Loss key (as ``--losses`` takes it) -> :class:`LossSpec`, in table order.
LOSSES = {
    "logistic": LossSpec(
        title="logistic",
        summary="the built-in logistic loss (softmax for K classes)",
        build=_builtin,
    ),
    "weighted": LossSpec(
        title="weighted logistic",
        summary=(
            "class-weighted logistic (scale_pos_weight = n_neg / n_pos; balanced weights for "
            "K classes)"
        ),
        build=_builtin,
        label=_weighted_label,
        class_weighted=True,
        grid=({"pos_weight_power": 0.5}, {"pos_weight_power": 1.0}),
        describe=_describe_weight,
    ),
    "focal": LossSpec(
        title="focal",
        summary="focal loss",
        build=_loss("..losses", "FocalLoss", gamma="gamma", alpha="alpha"),
        label=_words("focal (gamma={gamma}, alpha={alpha})"),
        grid=_grid(gamma=(0.5, 1.0, 2.0, 3.0), alpha=(None, 0.25, 0.5, 0.75)),
        describe=_words("gamma={gamma} alpha={alpha}"),
        multiclass_grid=_grid(gamma=(0.5, 1.0, 2.0, 3.0), alpha=(None, "balanced")),
    ),
    "ghm": LossSpec(
        title="GHM-C",
        summary="GHM-C",
        build=_loss("..losses", "GHMLoss", bins="bins", momentum="momentum"),
        label=_ghm_label,
        grid=_grid(bins=(5, 10, 30), momentum=(0.0, 0.75)),
        describe=_words("bins={bins} momentum={momentum}"),
        posterior=False,
    ),
    "ohem": LossSpec(
        title="OHEM",
        summary="OHEM (all positives and the 3x as many hardest negatives per round)",
        binary_only="OHEM keeps all positives and the hardest negatives: a binary loss",
        build=_loss("..losses", "OHEMLoss", ratio="ohem_ratio", random_state="seed"),
        label=_words("OHEM (ratio {ohem_ratio})"),
        grid=({"ohem_ratio": 1.0}, {"ohem_ratio": 3.0}, {"ohem_ratio": 10.0}),
        describe=_words("ratio={ohem_ratio}"),
        posterior=False,
    ),
    "goss": LossSpec(
        title="GOSS",
        summary="the built-in logistic loss with LightGBM's GOSS sampling",
        build=_builtin,
        label=lambda config: "logistic + GOSS",
        params=_goss_params,
        absent=_goss_absent,
        binary_only="compare's GOSS row is the binary logistic baseline with GOSS sampling",
    ),
}

#: Metric key -> :class:`Metric` (indexable as ``(title, larger_is_better)``), in column order. AP
#: and ROC-AUC rank the model's probabilities; log loss, Brier score and ECE (expected calibration
#: error, 15 equal-width bins: :func:`~boostloss.compare.scoring.expected_calibration_error`) judge
#: the posterior (class-weight corrected for the weighted rows).
METRICS = {
    "average_precision": Metric("AP", True),
    "roc_auc": Metric("ROC-AUC", True),
    "log_loss": Metric("log loss", False),
    "brier": Metric("Brier", False),
    "ece": Metric("ECE", False),
    "fit_seconds": Metric("fit s", False),
}

#: The columns on a multi-class task (K >= 3): one-vs-rest average precision and ROC-AUC
#: macro-averaged over the classes, the AP of the rarest class (fewest rows in the data), the
#: multi-class log loss and top-label ECE of the posterior, and the balanced accuracy and macro
#: F1 of the argmax prediction.
MULTICLASS_METRICS = {
    "average_precision": Metric("macro AP", True),
    "rarest_ap": Metric("AP rarest", True),
    "roc_auc": Metric("macro AUC", True),
    "log_loss": Metric("log loss", False),
    "ece": Metric("ECE", False),
    "balanced_accuracy": Metric("bal. acc.", True),
    "macro_f1": Metric("macro F1", True),
    "fit_seconds": Metric("fit s", False),
}

#: ``--metric`` choice -> the key of :data:`METRICS` (and of :data:`MULTICLASS_METRICS`) it
#: selects on (early stopping, tuning, verdict).
SELECTION_METRICS = {"ap": "average_precision", "logloss": "log_loss", "auc": "roc_auc"}


def metrics_of(multiclass):
    """The columns of a binary (:data:`METRICS`) or K-class (:data:`MULTICLASS_METRICS`) task."""
    return MULTICLASS_METRICS if multiclass else METRICS


def absent_reason(backend, loss, multiclass=False):
    """Why ``loss`` has no row for ``backend`` (see :attr:`LossSpec.absent` and
    :attr:`LossSpec.binary_only`), or None."""
    spec = LOSSES[loss]
    if multiclass and spec.binary_only is not None:
        return f"binary only ({spec.binary_only})"
    return None if spec.absent is None else spec.absent(backend)
