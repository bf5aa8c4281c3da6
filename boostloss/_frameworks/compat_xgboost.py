"""Every place where boostloss relies on XGBoost behaviour that is not public API, in one module.

Each item says which upstream behaviour it works around; ``tests/test_compat.py`` fails when
upstream changes that behaviour, so we know to revisit (or drop) the workaround.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, cast

from .._typing import T

#: Where ``xgboost.XGBModel`` keeps the parameters passed through ``**kwargs`` (not a fitted
#: attribute). Upstream: ``XGBModel.__init__`` stores them in the ``kwargs`` attribute.
PARAMETER_STORAGE = ("kwargs",)


def _version() -> tuple[int, ...]:
    import xgboost as xgb

    return tuple(int(part) for part in xgb.__version__.split(".")[:2])


def takes_vector_base_score() -> bool:
    """Whether ``base_score`` may be a K-vector of margins for a ``num_class=K`` model.

    Upstream: XGBoost >= 3.1 stores a vector intercept for multi-output models; before,
    ``base_score`` is one float ("Invalid Parameter format for base_score expect float"), added to
    every class's margin, so it cannot hold a K-class start. There the start goes in as
    ``base_margin`` instead (rows of the K margins), in ``fit`` and at prediction.
    """
    return _version() >= (3, 1)


def copy_fitted_state(source: Any, dest: T, *, skip: Iterable[str] = ()) -> T:
    """Give ``dest`` the fitted state of ``source``, both XGBoost scikit-learn estimators.

    Every instance attribute of ``source`` except its parameters (``get_params(deep=False)``),
    :data:`PARAMETER_STORAGE` and the names in ``skip``. Upstream: ``xgboost.XGBModel`` keeps its
    fitted state as plain instance attributes, private ones included (the Booster in
    ``_Booster``, read by ``get_booster()``; ``n_classes_``; ``best_iteration`` ...), and offers
    no public way to hand it to another estimator. boostloss fits a plain estimator and gives its
    state to the estimator with ``loss=`` (and back, to predict through a plain one).
    """
    skip = set(source.get_params(deep=False)) | set(PARAMETER_STORAGE) | set(skip)
    for key, value in vars(source).items():
        if key not in skip:
            setattr(dest, key, value)
    return dest


def loaded_booster(estimator: Any) -> Any:
    """The Booster of an XGBoost scikit-learn estimator, None when it has none (unfitted), without
    raising as ``get_booster()`` does. Upstream: ``XGBModel`` keeps it in the private
    ``_Booster`` instance attribute (set by ``fit`` and ``load_model``), see
    :func:`copy_fitted_state`."""
    return vars(estimator).get("_Booster")


#: Where ``xgboost.dask``'s estimators keep the Dask client they were given (a fitted state
#: copy must not carry it). Upstream: ``DaskScikitLearnBase`` stores it in the private
#: ``_client``; its public ``client`` property returns the default client when that is None.
DASK_CLIENT_STORAGE = "_client"


def dask_client(estimator: Any) -> Any:
    """The Dask client given to an ``xgboost.dask`` estimator, None when none was given (so that
    a copy also uses the default client). Upstream: see :data:`DASK_CLIENT_STORAGE`."""
    return vars(estimator).get(DASK_CLIENT_STORAGE)


class MultiLabelTag:
    """Mixin for a subclass of an XGBoost classifier: its ``multi_label`` tag, in both of
    scikit-learn's forms, from the subclass's ``_multi_label_tag()`` (True by default: as
    XGBoost's).

    Upstream: scikit-learn >= 1.6 reads the public ``__sklearn_tags__``; scikit-learn < 1.6
    reads the private ``_more_tags()`` (a dict, which ``xgboost.XGBModel`` defines) instead. Its
    estimator checks (``check_estimator_tags_renamed``) want a class that defines ``_more_tags``
    to define ``__sklearn_tags__`` too.
    """

    def _multi_label_tag(self) -> bool:
        return True

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()  # type: ignore[misc]  # the XGBoost class's
        if not self._multi_label_tag():
            tags.classifier_tags.multi_label = False
        return tags

    def _more_tags(self) -> dict[str, Any]:
        tags = super()._more_tags()  # type: ignore[misc]  # the XGBoost class's
        if not self._multi_label_tag():
            tags["multilabel"] = False
        return tags


def spark_param(name: str, doc: str, type_converter: Callable[[Any], Any]) -> Any:
    """A ``pyspark.ml.param.Param`` declared on an estimator class (a class attribute).

    Upstream: pyspark declares its own Params at class level with the private placeholder parent
    ``Params._dummy()``; each instance then owns a copy (``Params._copy_params``).
    """
    from pyspark.ml.param import Param, Params

    return Param(Params._dummy(), name, doc, typeConverter=type_converter)


def set_spark_default(instance: T, **defaults: Any) -> T:
    """Set default values of a pyspark estimator's Params.

    Upstream: pyspark has no public setter of defaults; its own classes (and ``xgboost.spark``'s)
    call the private ``Params._setDefault(**defaults)``.
    """
    cast(Any, instance)._setDefault(**defaults)
    return instance


class SparkEstimatorExtension:
    """Mixin for a subclass of ``xgboost.spark.SparkXGBClassifier`` with Params and a training
    step of its own; put it before that class among the bases.

    Upstream:

    - ``xgboost.spark``'s private ``_SparkXGBParams._gen_xgb_params_dict`` turns every Param of
      the estimator, a subclass's too, into an XGBoost parameter; the mixin drops the names in
      ``extension_params`` from it.
    - ``pyspark.ml.Estimator.fit`` calls the private ``_fit(dataset)`` (on a copy holding the
      params given to ``fit``), which ``xgboost.spark`` implements. The mixin's ``_fit`` calls
      the subclass's ``_boostloss_fit(dataset)``; :meth:`_xgboost_fit` is ``xgboost.spark``'s own
      training of this estimator (or of a prepared copy of it).
    """

    #: The Params of the subclass that are not XGBoost parameters.
    extension_params: tuple[str, ...] = ()

    def _gen_xgb_params_dict(self, gen_xgb_sklearn_estimator_param: bool = False) -> dict[str, Any]:
        params: dict[str, Any] = super()._gen_xgb_params_dict(  # type: ignore[misc]
            gen_xgb_sklearn_estimator_param
        )
        for name in self.extension_params:
            params.pop(name, None)
        return params

    def _fit(self, dataset: Any) -> Any:
        return self._boostloss_fit(dataset)

    def _boostloss_fit(self, dataset: Any) -> Any:
        return self._xgboost_fit(dataset)

    def _xgboost_fit(self, dataset: Any) -> Any:
        return super()._fit(dataset)  # type: ignore[misc]  # xgboost.spark's
