"""Training on a Dask cluster: the global start and drop-in distributed estimators.

>>> import xgboost as xgb
>>> import boostloss.dask as bld
>>> import boostloss.xgboost as blx
>>> from boostloss import GHMLoss
>>> ghm = GHMLoss(bins=10)
>>> params = {"tree_method": "hist", "base_score": bld.base_score(ghm, y)}   # doctest: +SKIP
>>> dtrain = xgb.dask.DaskDMatrix(client, X, y)                             # doctest: +SKIP
>>> out = xgb.dask.train(client, params, dtrain, 100, obj=blx.objective(ghm),
...                      custom_metric=blx.metric(ghm), evals=[(dtrain, "train")])  # doctest: +SKIP

What is global (the same as one process holding all the rows) and how:

- ``xgb.dask.train(..., obj=blx.objective(loss), custom_metric=blx.metric(loss))`` needs nothing
  from this module: inside XGBoost's collective the adapters sum GHM-C's bin counts over the workers
  every round and report metrics as global weighted means (``boostloss._frameworks.collective``).
- The start: ``init_score`` depends only on the two class weight totals, which :func:`init_score`
  and :func:`base_score` compute from the Dask collections in one pass (and validate on the way).
- :class:`DaskXGBClassifier`: ``xgboost.dask.DaskXGBClassifier`` with ``loss=``: global start,
  real probabilities, the original labels, early stopping on the global metric.
- :class:`DaskLGBMClassifier`: ``lightgbm.DaskLGBMClassifier`` with ``loss=`` for per-sample losses
  (focal). LightGBM exposes no collective to Python, so GHM-C (whose density must be global) and a
  Python metric over ``eval_set`` (evaluated on each worker's rows only) are refused with an error
  that says what to use instead. See docs/scaling-out.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import dask
import dask.array as da
import dask.dataframe as dd
import lightgbm as lgb
import numpy as np
import xgboost.dask as xgb_dask
from numpy.typing import ArrayLike
from scipy.special import expit

from . import lightgbm as _bll
from ._frameworks import compat_lightgbm as _compat_lightgbm
from ._frameworks import compat_xgboost as _compat_xgboost
from ._frameworks.distributed_start import binary_start, start_from_totals
from ._frameworks.lgb_portable import make_portable
from ._typing import IterationRange, LossLike
from .estimators import (
    _fit_plain,
    _framework_params,
    _is_loss_key,
    _maps_margins,
    _split_loss_params,
    _xgboost_loss_params,
)
from .losses import make_loss
from .losses._posterior import ATTRIBUTE as _POSTERIOR_ATTRIBUTE
from .losses._posterior import apply_posterior_map, loss_posterior_map
from .losses._validation import describe_values

if TYPE_CHECKING:
    import xgboost as xgb
    from typing_extensions import Self

__all__ = ["init_score", "base_score", "DaskXGBClassifier", "DaskLGBMClassifier"]


# ------------------------------------------------------------------------------------------------
# The global start: class weight totals in one pass over the partitions
# ------------------------------------------------------------------------------------------------


def _block_summary(y, w):
    """Per-block label values, their weight sums, and the weight checks, as plain numbers."""
    y = np.asarray(y).ravel()
    values, inverse = np.unique(y, return_inverse=True)
    if w is None:
        sums = np.bincount(inverse.ravel(), minlength=values.shape[0]).astype(np.float64)
        bad_w = np.empty(0)
    else:
        w = np.asarray(w, dtype=np.float64).ravel()
        if w.shape[0] != y.shape[0]:
            raise ValueError(f"a partition has {y.shape[0]} labels but {w.shape[0]} weights")
        bad = ~(np.isfinite(w) & (w >= 0.0))
        bad_w = np.unique(w[bad])[:5]
        sums = np.bincount(
            inverse.ravel(),
            weights=np.where(bad, 0.0, w),  # type: ignore[assignment]
            minlength=values.shape[0],
        )
    return list(values), sums, bad_w


def _blocks(collection):
    if isinstance(collection, (da.Array, dd.Series, dd.DataFrame)):
        return list(np.ravel(collection.to_delayed()))
    return [np.asarray(collection)]


def _aligned(y, sample_weight):
    if isinstance(y, da.Array) and isinstance(sample_weight, da.Array):
        sample_weight = sample_weight.rechunk(y.chunks)
    return sample_weight


def class_weight_totals(
    y: da.Array | dd.Series | ArrayLike,
    sample_weight: da.Array | dd.Series | ArrayLike | None = None,
) -> dict[Any, float]:
    """The weight total of every label value in ``y`` (Dask array / Series, or array-like).

    One pass over the partitions, computed on the cluster; only a few numbers per partition come
    back. Returns a dict ``{label: total}`` in sorted label order.

    Raises
    ------
    ValueError
        A weight is negative, NaN or infinite (the message quotes it), or the partitions of
        ``y`` and ``sample_weight`` do not line up.
    """
    sample_weight = _aligned(y, sample_weight)
    y_blocks = _blocks(y)
    w_blocks = [None] * len(y_blocks) if sample_weight is None else _blocks(sample_weight)
    if len(w_blocks) != len(y_blocks):
        raise ValueError(
            f"y has {len(y_blocks)} partitions but sample_weight has {len(w_blocks)}; give them "
            "the same partitions (chunks)"
        )
    summaries = dask.compute(
        *[dask.delayed(_block_summary)(yb, wb) for yb, wb in zip(y_blocks, w_blocks, strict=True)]
    )
    totals: dict[Any, float] = {}
    bad = []
    for values, sums, bad_w in summaries:
        bad.extend(bad_w.tolist())
        for value, s in zip(values, sums, strict=True):
            key = value.item() if isinstance(value, np.generic) else value
            totals[key] = totals.get(key, 0.0) + float(s)
    if bad:
        raise ValueError(
            "sample_weight must be finite and non-negative, got "
            f"{describe_values(np.array(bad[:5]))}"
        )
    return dict(sorted(totals.items()))


def _binary_totals(totals, loss):
    labels = list(totals)
    if len(labels) != 2:
        got = "one class" if len(labels) == 1 else f"{len(labels)} classes"
        raise ValueError(
            f"Only binary classification is supported with loss={loss!r}: y must have exactly 2 "
            f"classes, got {got}: {labels[:5]}"
        )
    return labels, totals[labels[1]], totals[labels[0]]


def init_score(
    loss: LossLike,
    y: da.Array | dd.Series | ArrayLike,
    sample_weight: da.Array | dd.Series | ArrayLike | None = None,
) -> float:
    """``loss.init_score`` of all the rows of Dask collections, without gathering them.

    Parameters
    ----------
    loss : FocalLoss, GHMLoss or a registered name
    y : dask Array or Series of 0/1 labels (a numpy array works too)
    sample_weight : dask Array or Series, optional
        Partitioned like ``y``.

    Returns
    -------
    float
        Equal (to rounding of the weight sums) to ``loss.init_score`` of the concatenated data.
    """
    return binary_start(loss, class_weight_totals(y, sample_weight), "y_true")


def base_score(
    loss: LossLike,
    y: da.Array | dd.Series | ArrayLike,
    sample_weight: da.Array | dd.Series | ArrayLike | None = None,
    *,
    objective: str | None = None,
) -> float:
    """The ``base_score`` that starts ``xgb.dask.train`` from the global ``init_score``.

    As :func:`boostloss.xgboost.base_score`: on the margin scale with no ``objective`` in the
    params, a probability with ``objective="binary:logistic"``.
    """
    score = init_score(loss, y, sample_weight)
    if objective is None:
        return score
    if objective == "binary:logistic":
        return float(expit(score))
    raise ValueError(
        f"objective={objective!r} is not supported here; use None or 'binary:logistic'"
    )


def _encode(y, positive):
    """0/1 labels (float32): 1 where ``y == positive``, partitioned as ``y``."""

    def encode_block(block):
        return (np.asarray(block) == positive).astype(np.float32)

    if isinstance(y, da.Array):
        return y.map_blocks(encode_block, dtype=np.float32)  # type: ignore[call-arg, arg-type]
    if isinstance(y, dd.Series):
        return y.map_partitions(
            lambda s: (s == positive).astype(np.float32), meta=(y.name, np.float32)
        )
    return encode_block(y)


def _constant_like(y, value):
    if isinstance(y, da.Array):
        return y.map_blocks(
            lambda b: np.full(np.shape(b), value, dtype=np.float64),  # type: ignore[call-arg, arg-type]
            dtype=np.float64,
        )
    if isinstance(y, dd.Series):
        return y.map_partitions(
            lambda s: s.astype(np.float64) * 0.0 + value, meta=(y.name, np.float64)
        )
    return np.full(np.shape(y), value, dtype=np.float64)


class _LossParams:
    """``loss`` next to the framework's parameters (set_params, get_xgb_params)."""

    def set_params(self, **params: Any) -> Self:
        rest = _split_loss_params(self, params)
        return super().set_params(**rest) if rest else self  # type: ignore[misc]


# ------------------------------------------------------------------------------------------------
# XGBoost
# ------------------------------------------------------------------------------------------------


class DaskXGBClassifier(_LossParams, xgb_dask.DaskXGBClassifier):
    """``xgboost.dask.DaskXGBClassifier`` that trains a boostloss loss, globally.

    Parameters
    ----------
    loss : FocalLoss, GHMLoss, str or None, default=None
        The loss (or its registered name). None: XGBoost's built-in objective.
    **kwargs
        Every ``xgboost.dask.DaskXGBClassifier`` parameter (``client`` is set as an attribute,
        as there).

    Notes
    -----
    With a loss, ``fit`` computes the class weight totals on the cluster (one pass, validating the
    weights), starts from ``sigmoid(loss.init_score)`` as ``base_score`` (stored in the model),
    trains on labels encoded to 0/1 (any two values are allowed; ``predict`` returns them) and
    evaluates ``eval_set`` with the loss's global metric (``logloss`` on margins for GHM-C), so
    ``early_stopping_rounds`` watches the same number on every worker. GHM-C's density is summed
    over the workers every round. ``predict_proba`` returns the probabilities.
    """

    def __init__(
        self,
        *,
        loss: LossLike | None = None,
        objective: Any = "binary:logistic",
        coll_cfg: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(objective=objective, coll_cfg=coll_cfg, **kwargs)
        self.loss = loss

    def get_xgb_params(self) -> dict[str, Any]:
        return {k: val for k, val in super().get_xgb_params().items() if not _is_loss_key(k)}

    def fit(
        self,
        X: da.Array | dd.DataFrame,
        y: da.Array | dd.DataFrame | dd.Series,
        *,
        sample_weight: da.Array | dd.DataFrame | dd.Series | None = None,
        base_margin: da.Array | dd.DataFrame | dd.Series | None = None,
        eval_set: Sequence[tuple[Any, Any]] | None = None,
        verbose: bool | int | None = True,
        xgb_model: xgb.Booster | str | xgb.XGBModel | None = None,
        sample_weight_eval_set: Sequence[Any] | None = None,
        base_margin_eval_set: Sequence[Any] | None = None,
        feature_weights: Any = None,
    ) -> Self:
        """Fit on Dask collections; see ``xgboost.dask.DaskXGBClassifier.fit``."""
        kwargs = dict(
            sample_weight=sample_weight,
            base_margin=base_margin,
            verbose=verbose,
            xgb_model=xgb_model,
            sample_weight_eval_set=sample_weight_eval_set,
            base_margin_eval_set=base_margin_eval_set,
            feature_weights=feature_weights,
        )
        if self.loss is None:
            self.init_score_ = self.posterior_map_ = None
            return super().fit(X, y, eval_set=eval_set, **kwargs)
        loss = make_loss(self.loss)
        labels, w1, w0 = _binary_totals(class_weight_totals(y, sample_weight), loss)
        loss = loss.for_classes(labels)
        start = start_from_totals(loss, w1, w0)
        params = _xgboost_loss_params(_framework_params(self), loss, float(expit(start)))
        if eval_set is not None:
            eval_set = [(ex, _encode(ey, labels[1])) for ex, ey in eval_set]
        plain = xgb_dask.DaskXGBClassifier
        _fit_plain(
            self,
            _with_client(plain, self),
            params,
            _copy_fitted_state_less_client,
            X,
            _encode(y, labels[1]),
            eval_set=eval_set,
            **kwargs,
        )
        self.classes_ = np.array(labels)
        self.init_score_ = start
        self.posterior_map_ = loss_posterior_map(loss, 2)
        self.get_booster().set_attr(**{_POSTERIOR_ATTRIBUTE: json.dumps(self.posterior_map_)})
        return self

    def predict_proba(  # type: ignore[override]  # Dask collections, as upstream
        self,
        X: da.Array | dd.DataFrame,
        validate_features: bool = True,
        base_margin: Any = None,
        iteration_range: IterationRange | None = None,
    ) -> da.Array:
        """Class probabilities (n, 2): with a loss ``loss.predict_proba`` of the margins (focal:
        the class posterior; GHM-C, OHEM: the sigmoid, a score), as
        :meth:`boostloss.XGBClassifier.predict_proba`."""
        posterior_map = self.__dict__.get("posterior_map_")
        if not _maps_margins(posterior_map):
            return super().predict_proba(
                X,
                validate_features=validate_features,
                base_margin=base_margin,
                iteration_range=iteration_range,
            )
        margin = super().predict(
            X,
            output_margin=True,
            validate_features=validate_features,
            base_margin=base_margin,
            iteration_range=iteration_range,
        )
        return _posterior_blocks(margin, posterior_map)

    def predict(
        self,
        X: da.Array | dd.DataFrame,
        output_margin: bool = False,
        validate_features: bool = True,
        base_margin: Any = None,
        iteration_range: IterationRange | None = None,
    ) -> da.Array:
        """Predicted labels (the values ``y`` had in ``fit``; with a loss the class of largest
        :meth:`predict_proba`), or margins with ``output_margin=True``."""
        posterior_map = self.__dict__.get("posterior_map_")
        if not output_margin and _maps_margins(posterior_map):
            proba = self.predict_proba(
                X,
                validate_features=validate_features,
                base_margin=base_margin,
                iteration_range=iteration_range,
            )
            return _labels_of_blocks(proba, self.classes_)
        out = super().predict(
            X,
            output_margin=output_margin,
            validate_features=validate_features,
            base_margin=base_margin,
            iteration_range=iteration_range,
        )
        if output_margin or self.__dict__.get("init_score_") is None:
            return out
        classes = self.classes_
        if _maps_margins(self.__dict__.get("posterior_map_")):
            return _labels_of_blocks(
                self.predict_proba(
                    X,
                    validate_features=validate_features,
                    base_margin=base_margin,
                    iteration_range=iteration_range,
                ),
                classes,
            )
        return out.map_blocks(lambda b: classes[np.asarray(b, dtype=np.intp)], dtype=classes.dtype)


def _posterior_blocks(margin: Any, posterior_map: Mapping[str, Any]) -> Any:
    """The posterior map applied to every block of a Dask array of binary margins: (n, 2)."""
    if not isinstance(margin, da.Array):  # a Dask Series, for DataFrame input
        margin = margin.to_dask_array(lengths=True)
    return margin.map_blocks(
        lambda b: apply_posterior_map(b, posterior_map),
        dtype=np.float64,
        new_axis=1,
        chunks=(margin.chunks[0], (2,)),
    )


def _labels_of_blocks(proba: Any, classes: np.ndarray) -> Any:
    """The class of largest probability of every row of a Dask array of probabilities."""
    return proba.map_blocks(
        lambda b: classes[np.argmax(b, axis=1)], dtype=classes.dtype, drop_axis=1
    )


def _with_client(plain_class, estimator):
    """``plain_class`` made on the estimator's client (the client is an attribute, not a param)."""

    def make(**params):
        plain = plain_class(**params)
        plain.client = _compat_xgboost.dask_client(estimator)
        return plain

    return make


def _copy_fitted_state_less_client(source, dest):
    """The fitted state of one ``xgboost.dask`` estimator given to another, less its client."""
    return _compat_xgboost.copy_fitted_state(
        source, dest, skip=(_compat_xgboost.DASK_CLIENT_STORAGE,)
    )


# ------------------------------------------------------------------------------------------------
# LightGBM
# ------------------------------------------------------------------------------------------------


class _DaskLGBMWithLoss(_compat_lightgbm.DaskEstimatorExtension, lgb.DaskLGBMClassifier):
    """``lightgbm.DaskLGBMClassifier`` whose ``to_local()`` leaves ``loss`` out (one class, so
    that LightGBM's ``get_params`` finds its parent: see ``DaskEstimatorExtension``)."""

    extension_params = ("loss",)


class DaskLGBMClassifier(_LossParams, _DaskLGBMWithLoss):
    """``lightgbm.DaskLGBMClassifier`` that trains a per-sample boostloss loss (focal).

    Parameters
    ----------
    loss : FocalLoss, str or None, default=None
        The loss (or its registered name). None: LightGBM's built-in objective.
    **kwargs
        Every ``lightgbm.DaskLGBMClassifier`` parameter.

    Notes
    -----
    With a loss, ``fit`` computes the class weight totals on the cluster, sets the global
    ``init_score`` on the training rows, trains on labels encoded to 0/1, and folds the start into
    the model (``booster_`` and ``to_local()`` predict the probabilities and the original labels).

    Refused with a ``ValueError`` before any work, because LightGBM's Dask interface exposes no
    collective to Python (its objective and metrics run on each worker's rows only):

    - ``GHMLoss``: its density must count all rows every round; use :class:`DaskXGBClassifier`.
    - ``eval_set`` (and so early stopping): a Python metric would be each worker's own partial
      mean, and workers stopping at different rounds would leave the others waiting.
    """

    def __init__(self, *, loss: LossLike | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loss = loss

    def fit(  # type: ignore[override]  # the rest of lightgbm's arguments by keyword
        self,
        X: da.Array | dd.DataFrame,
        y: da.Array | dd.DataFrame | dd.Series,
        sample_weight: da.Array | dd.Series | None = None,
        init_score: da.Array | dd.DataFrame | dd.Series | None = None,
        eval_set: list[tuple[Any, Any]] | None = None,
        **kwargs: Any,
    ) -> Self:
        """Fit on Dask collections; see ``lightgbm.DaskLGBMClassifier.fit``."""
        if self.loss is None:
            self.init_score_ = self.posterior_map_ = None
            return super().fit(
                X,
                y,
                sample_weight=sample_weight,
                init_score=init_score,
                eval_set=eval_set,
                **kwargs,
            )
        loss = make_loss(self.loss)
        if loss.cross_row_statistic is not None:
            raise ValueError(
                f"loss={self.loss!r} cannot be trained with LightGBM's Dask interface: "
                f"{loss.cross_row_statistic}, which needs a collective that LightGBM does not "
                "expose to Python objectives (each worker would see its own rows only); use "
                "boostloss.dask.DaskXGBClassifier (there it is global), or a per-sample loss "
                "such as FocalLoss here"
            )
        if eval_set is not None or kwargs.get("eval_X") is not None:
            raise ValueError(
                "eval_set is not supported with a boostloss loss under LightGBM's Dask interface: "
                "a Python metric is evaluated on each worker's rows only (not a global mean), and "
                "early stopping on it could stop the workers at different rounds; use "
                "boostloss.dask.DaskXGBClassifier for a global metric and early stopping"
            )
        labels, w1, w0 = _binary_totals(class_weight_totals(y, sample_weight), loss)
        start = 0.0 if init_score is not None else start_from_totals(loss, w1, w0)
        params = _framework_params(self)
        params.pop("client", None)
        params["objective"] = _bll.sklearn_objective(loss)
        if not any(key in params for key in ("metric", "metrics", "metric_types")):
            params["metric"] = "None"
        plain = lgb.DaskLGBMClassifier(client=self.client, **params)
        plain.fit(
            X,
            _encode(y, labels[1]),
            sample_weight=sample_weight,
            init_score=_constant_like(y, start) if init_score is None else init_score,
            **kwargs,
        )
        _compat_lightgbm.copy_fitted_state(plain, self)
        _compat_lightgbm.set_booster(self, make_portable(self.booster_, start))
        _compat_lightgbm.set_binary_fitted_state(self, labels)
        self.init_score_ = start
        self.posterior_map_ = loss_posterior_map(loss, 2)
        return self

    def predict_proba(  # type: ignore[override]  # Dask collections, as upstream
        self,
        X: da.Array | dd.DataFrame,
        raw_score: bool = False,
        start_iteration: int = 0,
        num_iteration: int | None = None,
        pred_leaf: bool = False,
        pred_contrib: bool = False,
        validate_features: bool = False,
        **kwargs: Any,
    ) -> da.Array:
        """Class probabilities (n, 2): with a loss ``loss.predict_proba`` of the margins (focal:
        the class posterior), as :meth:`boostloss.LGBMClassifier.predict_proba`; ``raw_score``,
        ``pred_leaf``, ``pred_contrib`` and ``loss=None``: LightGBM's own."""
        options = dict(
            start_iteration=start_iteration,
            num_iteration=num_iteration,
            validate_features=validate_features,
            **kwargs,
        )
        posterior_map = self.__dict__.get("posterior_map_")
        if not _maps_margins(posterior_map) or raw_score or pred_leaf or pred_contrib:
            return super().predict_proba(
                X, raw_score=raw_score, pred_leaf=pred_leaf, pred_contrib=pred_contrib, **options
            )
        margin = super().predict(X, raw_score=True, **options)
        return _posterior_blocks(margin, posterior_map)

    def predict(  # type: ignore[override]  # Dask collections, as upstream
        self,
        X: da.Array | dd.DataFrame,
        raw_score: bool = False,
        start_iteration: int = 0,
        num_iteration: int | None = None,
        pred_leaf: bool = False,
        pred_contrib: bool = False,
        validate_features: bool = False,
        **kwargs: Any,
    ) -> da.Array:
        """Predicted labels (with a loss the class of largest :meth:`predict_proba`), or raw
        scores / leaves / contributions when asked for."""
        options = dict(
            start_iteration=start_iteration,
            num_iteration=num_iteration,
            validate_features=validate_features,
            **kwargs,
        )
        posterior_map = self.__dict__.get("posterior_map_")
        if not _maps_margins(posterior_map) or raw_score or pred_leaf or pred_contrib:
            return super().predict(
                X, raw_score=raw_score, pred_leaf=pred_leaf, pred_contrib=pred_contrib, **options
            )
        return _labels_of_blocks(self.predict_proba(X, **options), self.classes_)

    def to_local(self) -> lgb.LGBMClassifier:
        """A plain ``lightgbm.LGBMClassifier`` with this model (start included): its
        ``predict_proba`` is the sigmoid of the margin, as a plain reload's; for a focal model
        :meth:`predict_proba` (``loss.predict_proba`` of the margin) is the class posterior."""
        local = super().to_local()
        if self.__dict__.get("init_score_") is not None:
            local.set_params(objective="binary")  # the model is self-contained and binary
        return local
