"""What ``boostloss compare`` can compare: the backends, the losses and the metrics, each listed once.

The command line (its choices, defaults and help) and the protocol (which estimator to build, with
which loss) both read these dicts; a new loss or backend is one entry here. Nothing heavy is
imported at module level, so ``boostloss --help`` stays fast: each builder imports what it needs.
"""

from typing import Callable, NamedTuple

__all__ = ["Backend", "LossSpec", "Metric", "BACKENDS", "LOSSES", "METRICS", "absent_reason"]


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
    """

    title: str
    estimator: Callable
    first_trees: Callable
    errors: Callable


class LossSpec(NamedTuple):
    """A loss that compare trains on every backend.

    Attributes
    ----------
    title : str
        Short name in tables and messages.
    summary : str
        The phrase that describes it in ``--help``.
    build : callable
        ``build(config) -> loss``: the boostloss loss object with the parameters of ``config``
        (a :class:`~boostloss.compare.CompareConfig`), or None for the backend's built-in
        logistic objective.
    label : callable or None
        ``label(config) -> str``: the table label, with the parameters that ``config`` sets;
        None: the title.
    class_weighted : bool
        Train with ``scale_pos_weight = n_negative / n_positive`` of the training labels.
    params : callable or None
        ``params(backend) -> dict``: further estimator parameters of this loss on ``backend``
        (GOSS: LightGBM's ``data_sample_strategy``); None: none.
    absent : callable or None
        ``absent(backend) -> str or None``: why this loss has no row for ``backend`` (the report
        says it under the table), None where it has one; None: a row on every backend.
    """

    title: str
    summary: str
    build: Callable
    label: Callable | None = None
    class_weighted: bool = False
    params: Callable | None = None
    absent: Callable | None = None


class Metric(NamedTuple):
    """A column of the table: its title, and whether larger values are better."""

    title: str
    larger_is_better: bool


def _xgboost_estimator(loss, params):
    from ..estimators import XGBClassifier

    return XGBClassifier(loss=loss, enable_categorical=True, **params)


def _xgboost_errors():
    from xgboost.core import XGBoostError

    return (XGBoostError,)


def _lightgbm_estimator(loss, params):
    from ..estimators import LGBMClassifier

    return LGBMClassifier(loss=loss, verbose=-1, **params)


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
    ),
    "lightgbm": Backend(
        title="LightGBM",
        estimator=_lightgbm_estimator,
        first_trees=lambda k: {"num_iteration": int(k)},
        errors=_lightgbm_errors,
    ),
}


def _focal_loss(config):
    from ..losses import FocalLoss

    return FocalLoss(gamma=config.gamma, alpha=config.alpha)


def _focal_label(config):
    alpha = "none" if config.alpha is None else f"{config.alpha:g}"
    return f"focal (gamma={config.gamma:g}, alpha={alpha})"


def _ghm_loss(config):
    from ..losses import GHMLoss

    return GHMLoss(bins=config.bins)


def _ohem_loss(config):
    from ..ohem import OHEMLoss

    return OHEMLoss(ratio=3.0, random_state=config.seed)


def _builtin(config):
    return None


def _goss_params(backend):
    return {"data_sample_strategy": "goss"} if backend == "lightgbm" else {}


def _goss_absent(backend):
    if backend == "xgboost":
        return ("XGBoost's gradient-based sampling (sampling_method='gradient_based') needs "
                "device='cuda'; compare trains on the CPU")
    return None


#: Loss key (as ``--losses`` takes it) -> :class:`LossSpec`, in table order.
LOSSES = {
    "logistic": LossSpec(
        title="logistic",
        summary="the built-in logistic loss",
        build=_builtin,
    ),
    "weighted": LossSpec(
        title="weighted logistic",
        summary="class-weighted logistic (scale_pos_weight = n_neg / n_pos)",
        build=_builtin,
        class_weighted=True,
    ),
    "focal": LossSpec(title="focal", summary="focal loss", build=_focal_loss, label=_focal_label),
    "ghm": LossSpec(
        title="GHM-C",
        summary="GHM-C",
        build=_ghm_loss,
        label=lambda config: f"GHM-C ({config.bins} bins)",
    ),
    "ohem": LossSpec(
        title="OHEM",
        summary="OHEM (all positives and the 3x as many hardest negatives per round)",
        build=_ohem_loss,
        label=lambda config: "OHEM (ratio 3)",
    ),
    "goss": LossSpec(
        title="GOSS",
        summary="the built-in logistic loss with LightGBM's GOSS sampling",
        build=_builtin,
        label=lambda config: "logistic + GOSS",
        params=_goss_params,
        absent=_goss_absent,
    ),
}

#: Metric key -> :class:`Metric` (indexable as ``(title, larger_is_better)``), in column order.
METRICS = {
    "average_precision": Metric("AP", True),
    "roc_auc": Metric("ROC-AUC", True),
    "log_loss": Metric("log loss", False),
    "brier": Metric("Brier", False),
    "fit_seconds": Metric("fit s", False),
}



def absent_reason(backend, loss):
    """Why ``loss`` has no row for ``backend`` (see :attr:`LossSpec.absent`), or None."""
    spec = LOSSES[loss]
    return None if spec.absent is None else spec.absent(backend)
