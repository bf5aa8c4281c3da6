"""The upstream behaviours that ``boostloss/_compat_lightgbm.py`` and ``_compat_xgboost.py`` work
around. Each test pins the behaviour itself: when one fails after a framework upgrade, the
workaround it names can probably be simplified or dropped.
"""

import warnings

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb

from boostloss import FocalLoss, _compat_lightgbm, _compat_xgboost
from boostloss import lightgbm as bll


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
        constant, y, callbacks=[_compat_lightgbm.skip_redundant_objective_reset])
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
        booster = xgb.train(params, xgb.DMatrix(X, label=y), 0)  # no tree: the margins are the start
        margins = booster.predict(xgb.DMatrix(X[:1]), output_margin=True)
        np.testing.assert_allclose(margins[0], params["base_score"], rtol=1e-6)
    else:
        with pytest.raises(xgb.core.XGBoostError, match="base_score"):
            xgb.train(params, xgb.DMatrix(X, label=y), 1)
