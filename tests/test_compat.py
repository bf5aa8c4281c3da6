"""The upstream behaviours that ``boostloss/_compat_lightgbm.py`` and ``_compat_xgboost.py`` work
around. Each test pins the behaviour itself: when one fails after a framework upgrade, the
workaround it names can probably be simplified or dropped.
"""

import warnings

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb

from boostloss import FocalLoss
from boostloss import lightgbm as bll
from boostloss._frameworks import compat_lightgbm as _compat_lightgbm
from boostloss._frameworks import compat_xgboost as _compat_xgboost


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + rng.normal(size=300) > 1.0).astype(int)
    return X, y


def test_unconstructed_dataset_get_weight_raises(data):
    """dataset_weight: get_weight() cannot be asked before construction (hence the _handle test)."""
    X, y = data
    dataset = lgb.Dataset(X, label=y)
    with pytest.raises(Exception, match="before construct"):
        dataset.get_weight()
    assert _compat_lightgbm.dataset_weight(dataset) is None
    weighted = lgb.Dataset(X, label=y, weight=np.full(y.shape[0], 2.0))
    assert _compat_lightgbm.dataset_weight(weighted)[0] == 2.0
    dataset.construct()
    assert _compat_lightgbm.dataset_weight(dataset) is None


def test_callable_objective_without_usable_feature_aborts(data):
    """skip_redundant_objective_reset: without it LightGBM aborts where it could fit a constant."""
    X, y = data
    constant = np.zeros_like(X)
    params = dict(objective=bll.sklearn_objective(FocalLoss()), n_estimators=2, verbose=-1)
    with pytest.raises(lgb.basic.LightGBMError, match="num_features"):
        lgb.LGBMClassifier(**params).fit(constant, y)
    model = lgb.LGBMClassifier(**params).fit(
        constant, y, callbacks=[_compat_lightgbm.skip_redundant_objective_reset]
    )
    assert np.ptp(model.predict(constant, raw_score=True)) == 0.0
    # The private flag the callback sets exists on a Booster.
    assert hasattr(model.booster_, "_Booster__set_objective_to_none")


def test_sklearn_wrapper_keeps_its_booster_and_kwargs_privately(data):
    """set_booster and PARAMETER_STORAGE: where the wrappers keep the booster and **kwargs."""
    X, y = data
    model = lgb.LGBMClassifier(n_estimators=2, verbose=-1, max_bin=63).fit(X, y)
    assert model._Booster is model.booster_
    (storage,) = _compat_lightgbm.PARAMETER_STORAGE
    assert getattr(model, storage) == {"verbose": -1, "max_bin": 63}
    xmodel = xgb.XGBClassifier(n_estimators=2, max_cat_to_onehot=1, some_extra=3)
    (storage,) = _compat_xgboost.PARAMETER_STORAGE
    assert getattr(xmodel, storage) == {"some_extra": 3}


def test_lightgbm_predict_reads_loss_as_an_objective_alias(data):
    """LGBMClassifier predicts through a plain estimator: LightGBM's predict re-reads get_params(),
    where ``loss`` is an alias of ``objective``."""
    X, y = data

    class WithLoss(lgb.LGBMClassifier):
        def __init__(self, *, loss=None, **kwargs):
            super().__init__(**kwargs)
            self.loss = loss

        def get_params(self, deep=True):  # as boostloss's, for LightGBM < 4.6
            params = super().get_params(deep=deep)
            for name in _compat_lightgbm.estimator_param_names():
                params.setdefault(name, getattr(self, name))
            return params

    model = WithLoss(n_estimators=2, verbose=-1).fit(X, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.predict(X)
    assert any("Found 'loss' in params" in str(w.message) for w in caught)


def _lightgbm_version():
    return tuple(int(part) for part in lgb.__version__.split(".")[:2])


def test_subclass_get_params_walks_parents_from_lightgbm_4_6():
    """estimator_param_names: before 4.6 a subclass's get_params lost LightGBM's parameters."""

    class Sub(lgb.LGBMClassifier):
        def __init__(self, *, loss=None, **kwargs):
            super().__init__(**kwargs)
            self.loss = loss

    params = Sub(n_estimators=7).get_params()
    assert ("num_leaves" in params) == (_lightgbm_version() >= (4, 6))
    assert "num_leaves" in _compat_lightgbm.estimator_param_names()


def test_fit_takes_eval_xy_from_lightgbm_4_7():
    assert _compat_lightgbm.fit_takes_eval_xy() == (_lightgbm_version() >= (4, 7))


def _xgboost_version():
    return tuple(int(part) for part in xgb.__version__.split(".")[:2])


def test_vector_base_score_from_xgboost_3_1(data):
    """takes_vector_base_score: before 3.1 a K-class start cannot be stored as base_score."""
    X, _ = data
    y = np.arange(X.shape[0]) % 3
    params = {"objective": "multi:softprob", "num_class": 3, "base_score": [0.5, -1.0, 0.25]}
    assert _compat_xgboost.takes_vector_base_score() == (_xgboost_version() >= (3, 1))
    if _compat_xgboost.takes_vector_base_score():
        booster = xgb.train(
            params, xgb.DMatrix(X, label=y), 0
        )  # no tree: the margins are the start
        margins = booster.predict(xgb.DMatrix(X[:1]), output_margin=True)
        np.testing.assert_allclose(margins[0], params["base_score"], rtol=1e-6)
    else:
        with pytest.raises(xgb.core.XGBoostError, match="base_score"):
            xgb.train(params, xgb.DMatrix(X, label=y), 1)


@pytest.mark.parametrize("framework", ["xgboost", "lightgbm"])
def test_fitted_state_lives_in_the_instance_dict(framework, data):
    """copy_fitted_state: the wrappers keep their fitted state as instance attributes, private
    ones included, so copying them gives another estimator the model."""
    X, y = data
    if framework == "xgboost":
        compat, plain = _compat_xgboost, xgb.XGBClassifier(n_estimators=3, max_depth=2)
    else:
        compat, plain = _compat_lightgbm, lgb.LGBMClassifier(n_estimators=3, verbose=-1)
    plain.fit(X, y)
    assert "_Booster" in vars(plain)  # what get_booster() / booster_ read
    copy = compat.copy_fitted_state(plain, type(plain)(**plain.get_params()))
    np.testing.assert_array_equal(copy.predict_proba(X), plain.predict_proba(X), strict=True)
    assert (
        compat.copy_fitted_state(plain, type(plain)(), skip=("_Booster",)).__dict__.get("_Booster")
        is None
    )
    if framework == "xgboost":  # loaded_booster: the Booster, None before fit
        assert compat.loaded_booster(plain) is plain.get_booster()
        assert compat.loaded_booster(type(plain)()) is None


def test_sklearn_reads_tags_from_more_tags_before_1_6(data):
    """MultiLabelTag: scikit-learn < 1.6 reads the private _more_tags() (which XGBModel defines),
    1.6 the public __sklearn_tags__."""
    import sklearn

    from boostloss import XGBClassifier

    assert isinstance(xgb.XGBClassifier()._more_tags(), dict)
    assert xgb.XGBClassifier()._more_tags()["multilabel"] is True
    with_loss, without = XGBClassifier(loss="focal"), XGBClassifier()
    assert with_loss._more_tags()["multilabel"] is False and without._more_tags()["multilabel"]
    sklearn_version = tuple(int(part) for part in sklearn.__version__.split(".")[:2])
    if sklearn_version < (1, 6):
        assert with_loss._get_tags()["multilabel"] is False and without._get_tags()["multilabel"]
    else:
        from sklearn.utils import get_tags

        assert not hasattr(sklearn.base.BaseEstimator, "_get_tags")
        assert get_tags(with_loss).classifier_tags.multi_label is False
        assert get_tags(without).classifier_tags.multi_label is True


def _distributed():
    pytest.importorskip("dask", reason="the Dask compat needs dask (not installed at the floors)")
    pytest.importorskip("distributed", reason="the Dask compat needs dask.distributed")


def test_xgboost_dask_keeps_its_client_privately():
    """DASK_CLIENT_STORAGE / dask_client: the client given to an xgboost.dask estimator is kept
    in the private _client (the public property resolves None to the default client)."""
    _distributed()
    import types

    import xgboost.dask as xgb_dask

    estimator = xgb_dask.DaskXGBClassifier(n_estimators=2)
    assert _compat_xgboost.dask_client(estimator) is None
    client = types.SimpleNamespace(asynchronous=False)  # what the setter reads of a client
    estimator.client = client
    assert vars(estimator)[_compat_xgboost.DASK_CLIENT_STORAGE] is client
    assert _compat_xgboost.dask_client(estimator) is client
    assert _compat_xgboost.DASK_CLIENT_STORAGE not in estimator.__getstate__()


def test_lightgbm_dask_to_local_goes_through_a_private_hook():
    """DaskEstimatorExtension / dask_to_local: to_local() calls the private _lgb_dask_to_local,
    which would give the local model the subclass's own parameters (loss) as LightGBM params."""
    _distributed()
    import inspect

    assert list(inspect.signature(lgb.DaskLGBMClassifier._lgb_dask_to_local).parameters) == [
        "self",
        "model_factory",
    ]

    class Plain(lgb.DaskLGBMClassifier):
        def __init__(self, *, loss=None, **kwargs):
            super().__init__(**kwargs)
            self.loss = loss

    class Extended(_compat_lightgbm.DaskEstimatorExtension, Plain):
        extension_params = ("loss",)

    assert isinstance(vars(Plain(loss=FocalLoss()).to_local())["loss"], FocalLoss)  # upstream
    extended = Extended(loss=FocalLoss())
    extended.fitted_marker_ = 7  # fitted state: copied by _lgb_dask_copy_extra_params
    local = extended.to_local()
    assert type(local) is lgb.LGBMClassifier and local.fitted_marker_ == 7
    assert "loss" not in local.get_params() and "loss" not in vars(local)
    assert "client" not in local.get_params()


def _spark():
    pytest.importorskip(
        "pyspark", reason="the Spark compat needs pyspark (not installed at the floors)"
    )
    from xgboost.spark import SparkXGBClassifier

    return SparkXGBClassifier


def test_spark_params_are_declared_with_private_helpers():
    """spark_param / set_spark_default: pyspark declares class-level Params with the private
    Params._dummy() and sets defaults with the private _setDefault."""
    _spark()
    from pyspark.ml.param import Params, TypeConverters

    class WithLoss(Params):
        loss = _compat_xgboost.spark_param("loss", "a loss spec", TypeConverters.toString)

        def __init__(self):
            super().__init__()
            _compat_xgboost.set_spark_default(self, loss=None)

    params = WithLoss()
    assert params.loss.parent == params.uid and params.getOrDefault("loss") is None
    params.set(params.loss, "focal")
    assert params.getOrDefault(params.loss) == "focal"
    assert "a loss spec" in params.explainParam("loss")


def test_spark_estimator_hooks_are_private():
    """SparkEstimatorExtension: pyspark's fit() calls the private _fit(dataset), and xgboost.spark
    turns every Param, a subclass's too, into an XGBoost parameter in _gen_xgb_params_dict."""
    import inspect

    SparkXGBClassifier = _spark()
    from pyspark.ml.param import TypeConverters

    assert list(inspect.signature(SparkXGBClassifier._fit).parameters) == ["self", "dataset"]
    assert list(inspect.signature(SparkXGBClassifier._gen_xgb_params_dict).parameters) == [
        "self",
        "gen_xgb_sklearn_estimator_param",
    ]

    def declare(*bases):
        class WithLoss(*bases):
            loss = _compat_xgboost.spark_param("loss", "a loss spec", TypeConverters.toString)
            extension_params = ("loss",)

            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.set(self.loss, "focal")

            def _boostloss_fit(self, dataset):
                return ("boostloss", dataset)

        return WithLoss

    assert declare(SparkXGBClassifier)()._gen_xgb_params_dict()["loss"] == "focal"  # upstream
    extended = declare(_compat_xgboost.SparkEstimatorExtension, SparkXGBClassifier)(n_estimators=3)
    assert "loss" not in extended._gen_xgb_params_dict()
    params = extended._gen_xgb_params_dict(gen_xgb_sklearn_estimator_param=True)
    assert "loss" not in params and params["n_estimators"] == 3
    assert extended.fit("the dataset") == ("boostloss", "the dataset")
