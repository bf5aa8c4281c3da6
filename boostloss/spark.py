"""Training a boostloss loss with XGBoost on Spark, with a model that saves and loads.

>>> from boostloss.spark import SparkXGBClassifier
>>> clf = SparkXGBClassifier(loss="ghm:bins=10", features_col="features", label_col="label",
...                          num_workers=2, n_estimators=100)                  # doctest: +SKIP
>>> model = clf.fit(train_df)                                                  # doctest: +SKIP
>>> model.save("model")                                                        # doctest: +SKIP
>>> SparkXGBClassifierModel.load("model").transform(test_df)                   # doctest: +SKIP

Why a subclass: ``xgboost.spark.SparkXGBClassifier(objective=callable)`` is refused ("Only string
type 'objective' param is allowed", dmlc/xgboost#10420), and a callable passed as the ``obj``
keyword reaches ``xgboost.train`` on the workers but stays in the estimator's and the model's
parameters, so ``save`` fails (a callable is not JSON). Here the loss is a string parameter
(``"focal:gamma=2,alpha=0.25"``, see :func:`boostloss.make_loss`), saved and loaded with the
estimator; ``fit`` makes the objective from it on a copy of the estimator, and the fitted model
keeps no callable: it is a plain ``SparkXGBClassifierModel`` (booster objective
``binary:logistic``), which saves, loads and predicts the probabilities without boostloss.

Global: the start (class weight totals, one Spark aggregation on the driver, as ``base_score``),
GHM-C's density and the metrics (XGBoost's collective, as with Dask: ``_frameworks.collective``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from pyspark.ml.param import TypeConverters
from pyspark.sql import functions as F
from scipy.special import expit
from xgboost.spark import SparkXGBClassifier as _SparkXGBClassifier
from xgboost.spark import SparkXGBClassifierModel

from . import xgboost as _blx
from ._frameworks import compat_xgboost as _compat_xgboost
from ._frameworks.distributed_start import binary_start
from ._typing import LossLike
from .losses import make_loss

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from .losses import _Loss

__all__ = ["SparkXGBClassifier", "SparkXGBClassifierModel", "loss_spec"]

_CALLABLE_KEYS = ("obj", "custom_metric")


def loss_spec(loss: LossLike | None) -> str | None:
    """The registered-name spec of a loss (``"focal:gamma=2.0,alpha=0.25,hessian=exact"``).

    ``make_loss(loss_spec(loss))`` gives a loss with the same parameters; strings pass through.
    """
    if loss is None or isinstance(loss, str):
        return loss
    loss = make_loss(loss)
    params = ",".join(
        f"{k}={'none' if v is None else v}" for k, v in sorted(loss.get_params().items())
    )
    return f"{loss.name}:{params}"


class SparkXGBClassifier(_compat_xgboost.SparkEstimatorExtension, _SparkXGBClassifier):
    """``xgboost.spark.SparkXGBClassifier`` with a ``loss`` parameter.

    Parameters
    ----------
    loss : str, FocalLoss, GHMLoss or None
        Stored as its spec string (:func:`loss_spec`), so the estimator saves and loads. None: the
        built-in ``binary:logistic``.
    **kwargs
        Every ``xgboost.spark.SparkXGBClassifier`` parameter. Labels must be 0/1 (as there).

    Notes
    -----
    ``fit`` sums the weights of each label on the cluster, starts from
    ``sigmoid(loss.init_score)`` (``base_score``), trains with :func:`boostloss.xgboost.objective`
    (and, with ``validation_indicator_col``, the loss's global metric for early stopping; GHM-C and
    OHEM are evaluated with ``logloss`` on margins as in :class:`boostloss.XGBClassifier`), and
    returns a plain ``SparkXGBClassifierModel``.
    """

    loss = _compat_xgboost.spark_param(
        "loss", "boostloss loss spec, e.g. 'focal:gamma=2'", TypeConverters.toString
    )
    extension_params = ("loss",)

    def __init__(self, *, loss: LossLike | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _compat_xgboost.set_spark_default(self, loss=None)
        if loss is not None:
            self.set(self.loss, loss_spec(loss))

    def setParams(self, **kwargs: Any) -> None:  # noqa: N802 - pyspark's name
        if "loss" in kwargs:
            value = kwargs.pop("loss")
            if value is not None:
                self.set(self.loss, loss_spec(value))
        return super().setParams(**kwargs)

    def _boostloss_fit(self, dataset: DataFrame) -> SparkXGBClassifierModel:
        spec = self.getOrDefault("loss")
        if spec is None:
            return self._xgboost_fit(dataset)
        loss = make_loss(spec)
        start = _global_start(self, loss, dataset)
        trainer = self.copy()
        extra = dict(trainer.getOrDefault(trainer.arbitrary_params_dict))  # type: ignore[arg-type]
        extra["obj"] = _blx.objective(loss)
        if trainer.isDefined(trainer.validationIndicatorCol) and trainer.getOrDefault(
            trainer.validationIndicatorCol
        ):
            extra["custom_metric"] = _blx.metric(*loss.evaluation_loss())
            extra.setdefault("disable_default_eval_metric", True)
        trainer.set(trainer.arbitrary_params_dict, extra)
        if trainer.getOrDefault("base_score") is None:
            trainer.set(trainer.getParam("base_score"), float(expit(start)))
        model = trainer._xgboost_fit(dataset)
        kept = {
            k: v
            for k, v in model.getOrDefault(model.arbitrary_params_dict).items()
            if k not in _CALLABLE_KEYS
        }
        model.set(model.arbitrary_params_dict, kept)
        return model


def _global_start(estimator: SparkXGBClassifier, loss: _Loss, dataset: DataFrame) -> float:
    """``loss.init_score`` of the whole DataFrame from one aggregation of weights per label."""
    label = F.col(estimator.getOrDefault(estimator.labelCol)).cast("double")
    weight_col = (
        estimator.getOrDefault(estimator.weightCol)
        if estimator.isDefined(estimator.weightCol)
        else None
    )
    weight = F.lit(1.0) if not weight_col else F.col(weight_col).cast("double")
    rows = (
        dataset.select(label.alias("y"), weight.alias("w"))
        .groupBy("y")
        .agg(
            F.sum("w").alias("total"),
            F.min("w").alias("low"),
            F.sum(F.when(F.isnan("w") | F.col("w").isNull(), 1).otherwise(0)).alias("bad"),
        )
        .collect()
    )
    lows = [row["low"] for row in rows if row["low"] is not None]  # None: only null weights
    low = min(lows) if lows else None
    if any(row["bad"] for row in rows) or (low is not None and not 0.0 <= low < np.inf):
        raise ValueError(
            f"the weight column must be finite and non-negative, got a minimum of {low!r}"
            + (" and NaN / null values" if any(row["bad"] for row in rows) else "")
        )
    totals = {
        row["y"]: row["total"] for row in sorted(rows, key=lambda row: (row["y"] is None, row["y"]))
    }
    return binary_start(loss, totals, "the label column")
