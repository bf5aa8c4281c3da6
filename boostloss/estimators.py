"""Drop-in scikit-learn estimators: the frameworks' classifiers with a ``loss=`` parameter.

:class:`XGBClassifier` and :class:`LGBMClassifier` subclass ``xgboost.XGBClassifier`` and
``lightgbm.LGBMClassifier``: every framework parameter, ``fit`` argument and attribute still works.
With ``loss=None`` they train the framework's built-in objective; with a loss (a
:class:`~boostloss.FocalLoss` / :class:`~boostloss.GHMLoss` object or a registered name such as
``"focal:gamma=2,alpha=0.25"``) they train that loss and

- start from ``loss.init_score(y, sample_weight)`` (stored in the model for XGBoost as
  ``base_score``; kept as ``init_score_`` and added back at prediction for LightGBM),
- return ``loss.predict_proba(margin)`` from ``predict_proba``: for focal loss the class
  posterior (the inverse of the focal risk's minimiser, ``alpha`` undone; a focal model's sigmoid is
  not a probability), for GHM-C and OHEM the sigmoid / softmax of the margin (a score: calibrate it
  with ``CalibratedClassifierCV``), and from ``predict`` the argmax of those probabilities as the
  original labels (any values, strings too); the margins stay available (``output_margin=True``,
  ``raw_score=True``),
- evaluate ``eval_set`` with the loss's own metric (weighted mean loss, lower is better) unless
  ``eval_metric`` says otherwise, so early stopping watches the loss being optimised (for GHM-C,
  whose density-weighted loss is not comparable across rounds, the cross-entropy it re-weights,
  named ``logloss``),
- make a fresh objective (clone of the loss, new GHM state, new buffers) for every ``fit``.

How ``fit`` works: it builds the framework's parameters locally (the objective and metric callables,
the start) and fits a plain framework estimator made from them, then takes over its fitted
attributes; the estimator's own parameters are never modified, as in XGBoost's own ``fit``.
They survive ``clone``, pickle and joblib, and ``GridSearchCV(clf, {"loss__gamma": [...]})`` or
``{"loss": ["focal", "ghm"]}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeGuard

import lightgbm as lgb
import numpy as np
import xgboost as xgb
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets

from . import lightgbm as _bll
from . import xgboost as _blx
from ._frameworks import compat_lightgbm as _compat_lightgbm
from ._frameworks import compat_xgboost as _compat_xgboost
from ._frameworks.lgb_portable import make_portable
from ._typing import FloatArray, IterationRange, LossLike, MatrixLike
from .losses import make_loss
from .losses._posterior import ATTRIBUTE as _POSTERIOR_ATTRIBUTE
from .losses._posterior import apply_decision_map, apply_posterior_map, loss_posterior_map

if TYPE_CHECKING:
    import os

    from typing_extensions import Self

__all__ = ["XGBClassifier", "LGBMClassifier"]


def _is_loss_key(key):
    return key == "loss" or key.startswith("loss__")


def _split_loss_params(estimator, params):
    """Apply the ``loss`` and ``loss__*`` keys of ``set_params`` as sklearn; return the rest."""
    rest = {k: val for k, val in params.items() if not _is_loss_key(k)}
    if "loss" in params:
        estimator.loss = params["loss"]
    nested = {k[len("loss__") :]: val for k, val in params.items() if k.startswith("loss__")}
    if nested:
        if estimator.loss is None or isinstance(estimator.loss, str):
            raise ValueError(
                f"cannot set {sorted('loss__' + k for k in nested)}: loss is {estimator.loss!r}; "
                "set loss to a FocalLoss or GHMLoss object first (e.g. {'loss': [FocalLoss()], "
                "'loss__gamma': [...]}), or put the parameters in the name ('focal:gamma=1')"
            )
        estimator.loss.set_params(**nested)
    return rest


def _encode_labels(y, loss):
    """Labels encoded to 0..K-1 with their original values; a loss needs at least two."""
    check_classification_targets(y)
    encoder = LabelEncoder().fit(y)
    n_classes = encoder.classes_.shape[0]
    if loss is not None and n_classes < 2:
        # "one class": the wording scikit-learn's estimator checks look for.
        raise ValueError(
            f"y must have at least 2 classes to train loss={loss!r}, got one class: "
            f"{list(encoder.classes_[:5])}"
        )
    return encoder, encoder.transform(y)


def _default_metric(adapters, loss):
    """The ``eval_set`` metric when the user names none: ``loss.evaluation_loss()`` (the loss
    itself, or for GHM-C and OHEM the cross-entropy, as ``logloss`` on the raw margins)."""
    return adapters.sklearn_metric(*loss.evaluation_loss())


def _xgboost_loss_params(params, loss, base_score):
    """XGBoost's estimator ``params`` set to train ``loss`` from ``base_score`` (in place).

    ``base_score`` and ``eval_metric`` are only filled in where the user left them at None.
    """
    params["objective"] = _blx.sklearn_objective(loss)
    if params.get("base_score") is None:
        params["base_score"] = base_score
    if params.get("eval_metric") is None:
        params["eval_metric"] = _default_metric(_blx, loss)
        params["disable_default_eval_metric"] = True
    return params


def _init_score(loss, y_enc, sample_weight, n_classes):
    """The start: a float for two classes (the binary model), K margins for K >= 3 classes."""
    if sample_weight is not None and not np.any(np.asarray(sample_weight, dtype=np.float64) > 0):
        raise ValueError(
            "sample_weight has no positive entry (all zero weights): there is nothing to fit"
        )
    if n_classes > 2:
        return loss.init_score(y_enc, sample_weight, n_classes=n_classes)
    return float(loss.init_score(y_enc, sample_weight))


def _fit_plain(estimator, plain_class, params, copy_fitted_state, X, y, **fit_kwargs):
    """Fit ``plain_class(**params)`` and give ``estimator`` the fitted state it made, with the
    framework's ``copy_fitted_state(source, dest)`` (``_compat_xgboost``, ``_compat_lightgbm``)."""
    plain = plain_class(**params)
    plain.fit(X, y, **fit_kwargs)
    copy_fitted_state(plain, estimator)
    return estimator


def _plain_view(estimator, plain_class, copy_fitted_state):
    """A plain framework estimator with ``estimator``'s parameters (less ``loss``) and fitted state.

    LightGBM's ``predict`` re-reads ``get_params()``, where ``loss`` is one of its aliases of
    ``objective``: predicting through a plain estimator keeps ``loss`` away from it.
    """
    plain = plain_class(**_framework_params(estimator))
    return copy_fitted_state(estimator, plain, skip=("loss", "init_score_", "posterior_map_"))


def _framework_params(estimator):
    """The estimator's parameters without ``loss`` (the framework does not know it)."""
    return {k: val for k, val in estimator.get_params(deep=False).items() if not _is_loss_key(k)}


def _posterior_of(loss, n_classes):
    """The fitted estimator's ``posterior_map_``: the map of ``loss`` for ``n_classes`` classes."""
    return loss_posterior_map(loss, n_classes)


def _as_tuple(value: Any) -> tuple[Any, ...]:
    """``value`` if a tuple, else the tuple of it alone (``eval_X``, ``eval_y``: one or more)."""
    return value if isinstance(value, tuple) else (value,)


def _maps_margins(posterior_map: Mapping[str, Any] | None) -> TypeGuard[Mapping[str, Any]]:
    """Whether ``predict_proba`` applies a map of its own: not for ``loss=None`` and not where the
    map is the plain sigmoid / softmax (GHM-C, OHEM, focal with gamma 0 and no alpha), which the
    framework computes itself (so that a plain reload of the model gives the same bits)."""
    return posterior_map is not None and (
        posterior_map["gamma"] != 0.0 or posterior_map["class_weights"] is not None
    )


def _labels_of(estimator, proba):
    """``predict``: the class of largest probability, as the labels ``fit`` was given."""
    return estimator.classes_[np.argmax(proba, axis=1)]


class XGBClassifier(_compat_xgboost.MultiLabelTag, xgb.XGBClassifier):
    """``xgboost.XGBClassifier`` that trains a boostloss loss.

    Parameters
    ----------
    loss : FocalLoss, GHMLoss, str or None, default=None
        The loss to train, or its registered name with optional parameters
        (``"focal:gamma=2,alpha=0.25"``, see :func:`boostloss.make_loss`). None: XGBoost's built-in
        ``objective`` (``binary:logistic`` by default; multi-class works then too). With a loss,
        ``objective`` is ignored; y may have 2 classes (the binary model) or K >= 3 (a softmax
        model: ``multi:softprob``, a K-vector ``base_score`` and the loss's softmax form).
    **kwargs
        Every ``xgboost.XGBClassifier`` parameter (``n_estimators``, ``learning_rate``,
        ``early_stopping_rounds``, ``eval_metric``, ``device``, ...).

    Notes
    -----
    With a loss, ``base_score`` left at None becomes ``sigmoid(loss.init_score(y, sample_weight))``
    (stored in the model, so the booster predicts on its own), and ``eval_metric`` left at None
    becomes the loss's metric (``logloss`` on margins for GHM-C; XGBoost's default ``logloss`` on
    probabilities is then disabled). ``base_margin`` passed to ``fit`` overrides the start for those
    rows, as in XGBoost. K classes on XGBoost < 3.1 (one float ``base_score`` only): the start is
    passed as ``base_margin`` in ``fit``, ``predict`` and ``predict_proba`` instead, so the saved
    booster alone predicts without it (on XGBoost >= 3.1 it is stored in the model).

    Focal Hessians carry the modulating factor ``(1 - p_t)^gamma``, so ``min_child_weight`` (default
    1) means fewer samples per leaf than it does for the logistic loss. Scaling the default by the
    ratio of total Hessians at the start did not help on the real datasets (docs/frameworks.md), so
    the framework defaults are kept; tune ``min_child_weight`` like any parameter.

    ``predict_proba`` returns ``loss.predict_proba`` of the margins (float64): for focal loss the
    class posterior, not XGBoost's sigmoid of the margin (see :meth:`predict_proba`). The map is
    also stored in the booster, as the attribute ``boostloss_posterior`` (JSON: ``gamma``,
    ``class_weights``), which ``save_model`` keeps and plain XGBoost ignores (docs/deploying.md).

    Attributes
    ----------
    init_score_ : float, ndarray of shape (K,) or None
        The starting margin(s) (None with ``loss=None``).
    posterior_map_ : dict or None
        How ``predict_proba`` maps margins to probabilities: ``{"loss", "gamma", "class_weights",
        "posterior"}`` (``posterior`` False: a score, the sigmoid / softmax); None with
        ``loss=None`` (XGBoost's own probabilities).
    """

    def __init__(
        self,
        *,
        loss: LossLike | None = None,
        objective: str | Callable[..., Any] | None = "binary:logistic",
        **kwargs: Any,
    ) -> None:
        super().__init__(objective=objective, **kwargs)
        self.loss = loss

    def set_params(self, **params: Any) -> Self:
        rest = _split_loss_params(self, params)
        return super().set_params(**rest) if rest else self

    def get_xgb_params(self) -> dict[str, Any]:
        return {k: val for k, val in super().get_xgb_params().items() if not _is_loss_key(k)}

    def _multi_label_tag(self) -> bool:
        # The scikit-learn tag, in both of its forms (_compat_xgboost.MultiLabelTag).
        return self.loss is None

    @property
    def classes_(self) -> NDArray[Any]:
        encoder = self.__dict__.get("label_encoder_")
        return np.arange(self.n_classes_) if encoder is None else encoder.classes_

    def fit(
        self,
        X: MatrixLike,
        y: ArrayLike,
        *,
        sample_weight: ArrayLike | None = None,
        base_margin: ArrayLike | None = None,
        eval_set: Sequence[tuple[MatrixLike, ArrayLike]] | None = None,
        verbose: bool | int | None = True,
        xgb_model: xgb.Booster | str | xgb.XGBModel | None = None,
        sample_weight_eval_set: Sequence[ArrayLike] | None = None,
        base_margin_eval_set: Sequence[ArrayLike] | None = None,
        feature_weights: ArrayLike | None = None,
    ) -> Self:
        """Fit the booster; see ``xgboost.XGBClassifier.fit`` for the arguments.

        Labels may be any two values (any number with ``loss=None``); ``eval_set`` labels are
        encoded the same way.
        """
        loss = None if self.loss is None else make_loss(self.loss)
        params = _framework_params(self)
        self._start_rows = self.posterior_map_ = None
        kwargs = dict(
            sample_weight=sample_weight,
            base_margin=base_margin,
            verbose=verbose,
            xgb_model=xgb_model,
            sample_weight_eval_set=sample_weight_eval_set,
            base_margin_eval_set=base_margin_eval_set,
            feature_weights=feature_weights,
        )
        y_arr = np.asarray(y)
        if loss is None and y_arr.ndim == 2 and y_arr.shape[1] > 1:  # multi-label: as XGBoost does
            self.init_score_ = self.label_encoder_ = None
            return _fit_plain(
                self,
                xgb.XGBClassifier,
                params,
                _compat_xgboost.copy_fitted_state,
                X,
                y,
                eval_set=eval_set,
                **kwargs,
            )
        encoder, y_enc = _encode_labels(y, loss)
        if eval_set is not None:
            eval_set = [(ex, encoder.transform(ey)) for ex, ey in eval_set]
        start = None
        if loss is not None:
            loss = loss.for_classes(encoder.classes_)
            n_classes = encoder.classes_.shape[0]
            start = _init_score(loss, y_enc, sample_weight, n_classes)
            if (
                n_classes > 2
                and params.get("base_score") is None
                and not _compat_xgboost.takes_vector_base_score()
            ):
                # XGBoost < 3.1 keeps one float intercept: the K margins start every row as
                # base_margin, here and in predict / predict_proba (see _compat_xgboost).
                self._start_rows = np.asarray(start, dtype=np.float64)
                params["base_score"] = 0.0
                kwargs["base_margin"] = _start_margin(self._start_rows, X, base_margin)
                if eval_set is not None and base_margin_eval_set is None:
                    kwargs["base_margin_eval_set"] = [
                        _start_margin(self._start_rows, ex, None) for ex, _ in eval_set
                    ]
            # Binary: XGBoost's binary:logistic reads base_score as a probability. K classes:
            # multi:softprob (which XGBoost sets for a callable objective) stores the K margins
            # as they are (a vector intercept, XGBoost >= 3.1).
            _xgboost_loss_params(
                params,
                loss,
                [float(value) for value in start] if n_classes > 2 else float(expit(start)),
            )
        _fit_plain(
            self,
            xgb.XGBClassifier,
            params,
            _compat_xgboost.copy_fitted_state,
            X,
            y_enc,
            eval_set=eval_set,
            **kwargs,
        )
        self.init_score_ = start
        self.label_encoder_ = encoder
        if loss is not None:
            self.posterior_map_ = _posterior_of(loss, encoder.classes_.shape[0])
            self.get_booster().set_attr(**{_POSTERIOR_ATTRIBUTE: json.dumps(self.posterior_map_)})
        return self

    def load_model(self, fname: Any) -> None:
        """Load a model (see ``xgboost.XGBClassifier.load_model``), and the map from margins to
        probabilities it stores (``posterior_map_``; None for a model without one)."""
        super().load_model(fname)
        stored = self.get_booster().attr(_POSTERIOR_ATTRIBUTE)
        self.posterior_map_ = None if stored is None else json.loads(stored)

    def _posterior_map(self) -> dict[str, Any] | None:
        """``posterior_map_``, or the one the booster stores when the attribute is missing."""
        if "posterior_map_" in self.__dict__:
            return self.posterior_map_
        booster = _compat_xgboost.loaded_booster(self)
        stored = None if booster is None else booster.attr(_POSTERIOR_ATTRIBUTE)
        return None if stored is None else json.loads(stored)

    def predict(
        self,
        X: MatrixLike,
        *,
        output_margin: bool = False,
        validate_features: bool = True,
        base_margin: ArrayLike | None = None,
        iteration_range: IterationRange | None = None,
    ) -> NDArray[Any]:
        """Predicted labels (the values ``y`` had in ``fit``): with a loss the class of largest
        :meth:`predict_proba`; raw margins with ``output_margin=True``."""
        if not output_margin and _maps_margins(self._posterior_map()):
            return _labels_of(
                self,
                self.predict_proba(
                    X,
                    validate_features=validate_features,
                    base_margin=base_margin,
                    iteration_range=iteration_range,
                ),
            )
        base_margin = _start_margin(self.__dict__.get("_start_rows"), X, base_margin)
        out = super().predict(
            X,
            output_margin=output_margin,
            validate_features=validate_features,
            base_margin=base_margin,
            iteration_range=iteration_range,
        )
        encoder = self.__dict__.get("label_encoder_")
        if output_margin or encoder is None:
            return out
        return encoder.classes_[np.asarray(out, dtype=np.intp)]

    def predict_proba(
        self,
        X: MatrixLike,
        validate_features: bool = True,
        base_margin: ArrayLike | None = None,
        iteration_range: IterationRange | None = None,
    ) -> FloatArray:
        """Class probabilities, (n, 2) or (n, K).

        With a loss: ``loss.predict_proba`` of the margins, i.e. for focal loss the class posterior
        recovered from the margin (``FocalLoss.predict_proba``, float64: the focal minimiser is not
        the probability; ``alpha`` is undone), for GHM-C and OHEM the sigmoid / softmax of the
        margin, a score (calibrate it with scikit-learn's ``CalibratedClassifierCV``). Where the
        map is the sigmoid / softmax (GHM-C, OHEM, focal with gamma=0 and no alpha) XGBoost
        computes it, as a plain reload of the model does (float32). Class weights given to XGBoost
        (``scale_pos_weight``, sample weights) are not undone. With ``loss=None``:
        ``xgboost.XGBClassifier.predict_proba``.
        """
        base_margin = _start_margin(self.__dict__.get("_start_rows"), X, base_margin)
        posterior_map = self._posterior_map()
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
        return apply_posterior_map(margin, posterior_map)


class LGBMClassifier(lgb.LGBMClassifier):
    """``lightgbm.LGBMClassifier`` that trains a boostloss loss.

    Parameters
    ----------
    loss : FocalLoss, GHMLoss, str or None, default=None
        The loss to train, or its registered name with optional parameters (see
        :func:`boostloss.make_loss`). None: LightGBM's built-in ``objective`` (``binary`` /
        ``multiclass``). With a loss, ``objective`` is ignored; y may have 2 classes (binary) or
        K >= 3 (a softmax model, the start a K-vector folded into the first K trees).
    **kwargs
        Every ``lightgbm.LGBMClassifier`` parameter.

    Notes
    -----
    With a loss, ``fit`` sets ``init_score = loss.init_score(y, sample_weight * class weights)`` on
    the training and validation sets (unless you pass ``init_score`` / ``eval_init_score``: then
    your values are used and ``init_score_`` is 0; or ``init_model``: LightGBM then starts from that
    model's margins, which hold its start, and ``init_score_`` is 0), disables LightGBM's default
    ``binary_logloss`` metric (it would read raw scores as probabilities) and evaluates ``eval_set``
    with the loss's metric (``logloss`` for GHM-C) unless ``eval_metric`` is given. After training,
    the start is folded into the first tree and the model stores LightGBM's binary objective (see
    :func:`boostloss.lightgbm.make_portable`): ``booster_`` alone predicts the probabilities, also
    when saved and loaded by plain LightGBM: the sigmoid / softmax of the margin, which for focal
    loss is not the class posterior. ``predict_proba`` returns ``loss.predict_proba(margin)`` (for
    focal loss the class posterior, see :meth:`predict_proba`; no warning), ``predict`` its argmax,
    ``predict(raw_score=True)`` and ``decision_function`` the margins including the start, and
    ``predict(pred_contrib=True)`` has the start in the expected-value column. When no feature is
    usable (all constant, or none splittable under ``min_child_samples``), the model is the constant
    ``init_score_``, as LightGBM's built-in objective gives its constant model.

    Attributes
    ----------
    init_score_ : float, ndarray of shape (K,) or None
        The starting margin(s), folded into ``booster_`` (None with ``loss=None``).
    posterior_map_ : dict or None
        How ``predict_proba`` maps margins to probabilities: ``{"loss", "gamma", "class_weights",
        "posterior"}`` (``posterior`` False: a score); None with ``loss=None``. A LightGBM model
        file has no place for it: docs/deploying.md gives the map in plain numpy.
    """

    def __init__(self, *, loss: LossLike | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.loss = loss

    def set_params(self, **params: Any) -> Self:
        rest = _split_loss_params(self, params)
        return super().set_params(**rest) if rest else self

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        params = super().get_params(deep=deep)
        for name in _compat_lightgbm.estimator_param_names():
            params.setdefault(name, getattr(self, name))
        return params

    def fit(  # type: ignore[override]  # as lightgbm.LGBMClassifier.fit: no group argument
        self,
        X: MatrixLike,
        y: ArrayLike,
        sample_weight: ArrayLike | None = None,
        init_score: ArrayLike | None = None,
        eval_set: list[tuple[MatrixLike, ArrayLike]] | None = None,
        eval_names: list[str] | None = None,
        eval_sample_weight: list[ArrayLike] | None = None,
        eval_class_weight: list[dict[Any, float] | str] | None = None,
        eval_init_score: list[ArrayLike] | None = None,
        eval_metric: Any = None,
        feature_name: list[str] | str = "auto",
        categorical_feature: list[str] | list[int] | str = "auto",
        callbacks: list[Callable[..., Any]] | None = None,
        init_model: str | os.PathLike[str] | lgb.Booster | lgb.LGBMModel | None = None,
        *,
        eval_X: MatrixLike | tuple[MatrixLike, ...] | None = None,
        eval_y: ArrayLike | tuple[ArrayLike, ...] | None = None,
    ) -> Self:
        """Fit the booster; see ``lightgbm.LGBMClassifier.fit`` for the arguments."""
        loss = None if self.loss is None else make_loss(self.loss)
        params = _framework_params(self)
        kwargs = dict(
            sample_weight=sample_weight,
            init_score=init_score,
            eval_set=eval_set,
            eval_names=eval_names,
            eval_sample_weight=eval_sample_weight,
            eval_class_weight=eval_class_weight,
            eval_init_score=eval_init_score,
            eval_metric=eval_metric,
            feature_name=feature_name,
            categorical_feature=categorical_feature,
            callbacks=callbacks,
            init_model=init_model,
        )
        if (eval_X is not None or eval_y is not None) and not _compat_lightgbm.fit_takes_eval_xy():
            eval_set = kwargs["eval_set"] = list(
                zip(_as_tuple(eval_X), _as_tuple(eval_y), strict=True)
            )
            eval_X = eval_y = None
        if eval_y is not None:
            # LightGBM encodes the labels of eval_set but passes eval_y on as given: encode it
            # the same way as y, so that string or non-0/1 labels evaluate correctly.
            encoder, _ = _encode_labels(y, None)
            eval_y = (
                tuple(encoder.transform(e) for e in eval_y)
                if isinstance(eval_y, tuple)
                else encoder.transform(eval_y)
            )
        if eval_X is not None or eval_y is not None:
            kwargs.update(eval_X=eval_X, eval_y=eval_y)
        self.init_score_ = self.posterior_map_ = None
        if loss is None:
            return _fit_plain(
                self, lgb.LGBMClassifier, params, _compat_lightgbm.copy_fitted_state, X, y, **kwargs
            )

        encoder, y_enc = _encode_labels(y, loss)
        loss = loss.for_classes(encoder.classes_)
        n_classes = encoder.classes_.shape[0]
        weight = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if self.class_weight is not None:
            class_w = compute_sample_weight(self.class_weight, y)
            weight = class_w if weight is None else weight * class_w
        start = _init_score(loss, y_enc, weight, n_classes)
        if init_model is not None or init_score is not None:
            # Your init_score is used as given; with init_model LightGBM starts from that model's
            # margins, which hold its start already.
            start = 0.0 if n_classes == 2 else np.zeros(n_classes)
        else:
            kwargs["init_score"] = _constant_rows(start, y_enc.shape[0])
            if eval_init_score is None:
                eval_labels = _eval_labels(eval_set, eval_y)
                if eval_labels:
                    kwargs["eval_init_score"] = [
                        _constant_rows(start, len(ey)) for ey in eval_labels
                    ]
        if eval_metric is None:
            kwargs["eval_metric"] = _default_metric(_bll, loss)
        kwargs["callbacks"] = list(callbacks or []) + [
            _compat_lightgbm.skip_redundant_objective_reset
        ]
        params["objective"] = _bll.sklearn_objective(loss)
        if not any(key in params for key in ("metric", "metrics", "metric_types")):
            params["metric"] = "None"
        _fit_plain(
            self, lgb.LGBMClassifier, params, _compat_lightgbm.copy_fitted_state, X, y, **kwargs
        )
        # Self-contained: the saved model predicts these probabilities in plain LightGBM.
        _compat_lightgbm.set_booster(self, make_portable(self.booster_, start))
        self.init_score_ = start
        self.posterior_map_ = _posterior_of(loss, n_classes)
        return self

    def _plain(self):
        plain = _plain_view(self, lgb.LGBMClassifier, _compat_lightgbm.copy_fitted_state)
        if self.__dict__.get("init_score_") is not None:
            # The booster is self-contained (start folded in, link stored): predicting is
            # LightGBM's own binary or multiclass prediction.
            plain.set_params(objective="binary" if self.n_classes_ == 2 else "multiclass")
        return plain

    def predict_proba(
        self,
        X: MatrixLike,
        raw_score: bool = False,
        start_iteration: int = 0,
        num_iteration: int | None = None,
        pred_leaf: bool = False,
        pred_contrib: bool = False,
        validate_features: bool = False,
        **kwargs: Any,
    ) -> NDArray[Any]:
        """Class probabilities, (n, 2) or (n, K).

        With a loss: ``loss.predict_proba`` of the margins (start included), i.e. for focal loss
        the class posterior recovered from the margin (``FocalLoss.predict_proba``; ``alpha`` is
        undone), for GHM-C and OHEM the sigmoid / softmax of the margin, a score (calibrate it with
        scikit-learn's ``CalibratedClassifierCV``). ``class_weight`` and sample weights are not
        undone. ``raw_score``, ``pred_leaf``, ``pred_contrib`` and ``loss=None``: LightGBM's own.
        """
        posterior_map = self.__dict__.get("posterior_map_")
        if _maps_margins(posterior_map) and not (raw_score or pred_leaf or pred_contrib):
            margin = self._plain().predict(
                X,
                raw_score=True,
                start_iteration=start_iteration,
                num_iteration=num_iteration,
                validate_features=validate_features,
                **kwargs,
            )
            return apply_posterior_map(margin, posterior_map)
        return self._plain().predict_proba(
            X,
            raw_score=raw_score,
            start_iteration=start_iteration,
            num_iteration=num_iteration,
            pred_leaf=pred_leaf,
            pred_contrib=pred_contrib,
            validate_features=validate_features,
            **kwargs,
        )

    def decision_function(
        self,
        X: MatrixLike,
        *,
        start_iteration: int = 0,
        num_iteration: int | None = None,
        validate_features: bool = False,
        **kwargs: Any,
    ) -> NDArray[Any]:
        """Scores whose sign (binary) or argmax (K classes) is ``predict``.

        With a loss: the log-odds of :meth:`predict_proba` (binary; for K classes its log), which
        is the raw margin (start included) when the map is the sigmoid / softmax (GHM-C, OHEM,
        focal with gamma=0 and no alpha); a focal model's margin itself is
        ``predict(X, raw_score=True)``. ``loss=None``: the raw margins.
        """
        margin = self._plain().predict(
            X,
            raw_score=True,
            start_iteration=start_iteration,
            num_iteration=num_iteration,
            validate_features=validate_features,
            **kwargs,
        )
        posterior_map = self.__dict__.get("posterior_map_")
        return apply_decision_map(margin, posterior_map) if _maps_margins(posterior_map) else margin

    def predict(
        self,
        X: MatrixLike,
        raw_score: bool = False,
        start_iteration: int = 0,
        num_iteration: int | None = None,
        pred_leaf: bool = False,
        pred_contrib: bool = False,
        validate_features: bool = False,
        **kwargs: Any,
    ) -> NDArray[Any]:
        """Predicted labels (the values ``y`` had in ``fit``; with a loss the class of largest
        :meth:`predict_proba`), or raw scores / leaves / contributions when asked for."""
        if _maps_margins(self.__dict__.get("posterior_map_")) and not (
            raw_score or pred_leaf or pred_contrib
        ):
            return _labels_of(
                self,
                self.predict_proba(
                    X,
                    start_iteration=start_iteration,
                    num_iteration=num_iteration,
                    validate_features=validate_features,
                    **kwargs,
                ),
            )
        return self._plain().predict(
            X,
            raw_score=raw_score,
            start_iteration=start_iteration,
            num_iteration=num_iteration,
            pred_leaf=pred_leaf,
            pred_contrib=pred_contrib,
            validate_features=validate_features,
            **kwargs,
        )


def _constant_rows(start, n):
    """``init_score`` of n rows that all start from ``start`` (a float, or K margins: (n, K))."""
    if np.ndim(start) == 0:
        return np.full(n, float(start))
    return np.tile(np.asarray(start, dtype=np.float64), (n, 1))


def _start_margin(start, X, base_margin):
    """``base_margin`` as given, or the K-class start on every row of X (XGBoost < 3.1)."""
    if start is None or base_margin is not None:
        return base_margin
    n_rows = X.shape[0] if hasattr(X, "shape") else len(X)
    return _constant_rows(start, n_rows)


def _eval_labels(eval_set, eval_y):
    if eval_set is not None:
        return [ey for _, ey in ([eval_set] if isinstance(eval_set, tuple) else eval_set)]
    if eval_y is not None:
        return list(eval_y) if isinstance(eval_y, tuple) else [eval_y]
    return []
