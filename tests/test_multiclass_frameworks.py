"""K-class losses in XGBoost and LightGBM: the adapters, the Hessian factors, the starts and the
estimators.

With gamma = 0 and alpha None the custom objective must reproduce the built-in softmax model
(``multi:softprob`` / ``multiclass``) from the same start: predictions within 1e-5 after 20
rounds (measured: about 1e-7 for XGBoost, 1e-8 for LightGBM).
"""

import pickle
import warnings

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from scipy.special import softmax
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV

import boostloss.lightgbm as bll
import boostloss.xgboost as blx
from boostloss import FocalLoss, GHMLoss, LGBMClassifier, XGBClassifier
from boostloss._frameworks import compat_xgboost as _compat_xgboost

K = 4
CE = FocalLoss(gamma=0.0, alpha=None)
LOSSES = [
    pytest.param(FocalLoss(gamma=2.0, alpha=None), id="focal"),
    pytest.param(
        FocalLoss(gamma=1.0, alpha=[1.0, 2.0, 4.0, 8.0], hessian="gauss_newton"),
        id="focal-alpha-gn",
    ),
    pytest.param(GHMLoss(bins=10, momentum=0.5), id="ghm-bins"),
    pytest.param(GHMLoss(density="window"), id="ghm-window"),
]
XGB_PARAMS = dict(tree_method="hist", max_depth=4, eta=0.3, nthread=1, seed=0)
LGB_PARAMS = dict(
    num_leaves=15,
    learning_rate=0.3,
    verbose=-1,
    num_threads=1,
    seed=0,
    deterministic=True,
    force_col_wise=True,
    metric="None",
)


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(
        n_samples=1500,
        n_features=8,
        n_informative=5,
        n_classes=K,
        weights=[0.6, 0.25, 0.1, 0.05],
        flip_y=0.02,
        random_state=0,
    )
    w = np.random.default_rng(0).uniform(0.5, 2.0, size=y.size)
    return X, y, w


# ------------------------------------------------------------------------------------------------
# xgb.train / lgb.train
# ------------------------------------------------------------------------------------------------


def xgb_start(loss, dtrain):
    """The K-class start as params: base_score (XGBoost >= 3.1), or before set as base_margin."""
    if _compat_xgboost.takes_vector_base_score():
        start = blx.base_score(loss, dtrain, n_classes=K)
        assert len(start) == K
        return {"base_score": start}
    blx.set_base_margin(loss, dtrain, n_classes=K)
    return {}


def test_xgb_custom_softmax_reproduces_multi_softprob(data):
    X, y, w = data
    dtrain = xgb.DMatrix(X, label=y, weight=w)
    params = dict(XGB_PARAMS, num_class=K, **xgb_start(CE, dtrain))
    custom = xgb.train(params, dtrain, 20, obj=blx.objective(CE))
    builtin = xgb.train(dict(params, objective="multi:softprob"), dtrain, 20)
    proba = softmax(custom.predict(dtrain, output_margin=True), axis=1)
    np.testing.assert_allclose(proba, builtin.predict(dtrain), atol=1e-5)
    # Without the factor 2 the leaves are twice as large: not the built-in model.
    assert blx.multiclass_hessian_factor(K) == 2.0


def test_lgb_custom_softmax_reproduces_multiclass(data):
    X, y, w = data
    train_set = lgb.Dataset(X, label=y, weight=w, free_raw_data=False)
    start = bll.set_init_score(CE, train_set, n_classes=K)
    assert start.shape == (K,)
    custom = lgb.train(dict(LGB_PARAMS, num_class=K, objective=bll.objective(CE)), train_set, 20)
    builtin_set = lgb.Dataset(X, label=y, weight=w, init_score=np.tile(start, (y.size, 1)))
    builtin = lgb.train(dict(LGB_PARAMS, num_class=K, objective="multiclass"), builtin_set, 20)
    expected = softmax(builtin.predict(X, raw_score=True) + start, axis=1)
    np.testing.assert_allclose(bll.predict_proba(custom, X, start), expected, atol=1e-5)
    assert bll.multiclass_hessian_factor(K) == pytest.approx(K / (K - 1))


@pytest.mark.parametrize("loss", LOSSES)
def test_xgb_and_lgb_train_any_loss_with_its_metric(loss, data):
    X, y, w = data
    dtrain = xgb.DMatrix(X, label=y, weight=w)
    params = dict(XGB_PARAMS, num_class=K, disable_default_eval_metric=1, **xgb_start(loss, dtrain))
    log = {}
    booster = xgb.train(
        params,
        dtrain,
        10,
        obj=blx.objective(loss),
        evals=[(dtrain, "train")],
        custom_metric=blx.metric(loss),
        evals_result=log,
        verbose_eval=False,
    )
    margins = booster.predict(dtrain, output_margin=True)
    assert margins.shape == (y.size, K)
    expected = loss.loss(y, margins, w).sum() / w.sum()
    assert log["train"][loss.name][-1] == pytest.approx(expected, rel=1e-5)

    train_set = lgb.Dataset(X, label=y, weight=w)
    start = bll.set_init_score(loss, train_set, n_classes=K)
    log = {}
    booster = lgb.train(
        dict(LGB_PARAMS, num_class=K, objective=bll.objective(loss)),
        train_set,
        10,
        valid_sets=[train_set],
        valid_names=["train"],
        feval=bll.metric(loss),
        callbacks=[lgb.record_evaluation(log)],
    )
    margins = booster.predict(X, raw_score=True) + start
    expected = loss.loss(y, margins, w).sum() / w.sum()
    assert log["train"][loss.name][-1] == pytest.approx(expected, rel=1e-5)
    proba = bll.predict_proba(booster, X, start)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)


def test_xgb_base_margin_helper(data):
    X, y, _ = data
    dtrain, dtest = xgb.DMatrix(X, label=y), xgb.DMatrix(X[:7])
    start = blx.set_base_margin(CE, dtrain, dtest, n_classes=K)
    np.testing.assert_allclose(
        dtest.get_base_margin().reshape(7, K), np.tile(start, (7, 1)), rtol=1e-6
    )
    priors = np.bincount(y) / y.size
    np.testing.assert_allclose(start, np.log(priors) - np.log(priors).mean(), rtol=1e-12)
    with pytest.raises(ValueError, match="not a K-class objective"):
        blx.base_score(CE, dtrain, objective="binary:logistic", n_classes=K)


def test_device_compute_is_binary_only(data, monkeypatch):
    from boostloss import cuda

    monkeypatch.setattr(cuda, "ensure_available", lambda: None)
    X, y, _ = data
    obj = blx.objective(FocalLoss(alpha=None), compute="device")
    with pytest.raises(
        ValueError, match=r"compute='device' supports binary models only.*\(1500, 4\)"
    ):
        obj(np.zeros((y.size, K), dtype=np.float32), xgb.DMatrix(X, label=y))


def test_lgb_predict_proba_checks_the_start(data):
    X, y, _ = data
    train_set = lgb.Dataset(X, label=y)
    start = bll.set_init_score(CE, train_set, n_classes=K)
    booster = lgb.train(dict(LGB_PARAMS, num_class=K, objective=bll.objective(CE)), train_set, 2)
    with pytest.raises(ValueError, match=r"does not fit a booster with 4 classes"):
        bll.predict_proba(booster, X, start[:3])


# ------------------------------------------------------------------------------------------------
# Estimators
# ------------------------------------------------------------------------------------------------

CLASSES = [XGBClassifier, LGBMClassifier]
SMALL = {
    XGBClassifier: dict(n_estimators=8, max_depth=3, n_jobs=1, random_state=0),
    LGBMClassifier: dict(n_estimators=8, num_leaves=7, n_jobs=1, random_state=0, verbose=-1),
}


def make(cls, loss, **kwargs):
    return cls(loss=loss, **SMALL[cls], **kwargs)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("loss", LOSSES)
def test_estimators_take_k_labels_of_any_type(cls, loss, data):
    X, y, _ = data
    names = np.array(["ant", "bee", "cat", "dog"])
    clf = make(cls, loss)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "returning raw scores" warning
        clf.fit(X, names[y])
        proba = clf.predict_proba(X)
    assert proba.shape == (y.size, K) and np.all((proba > 0) & (proba < 1))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert list(clf.classes_) == list(names)
    np.testing.assert_array_equal(clf.predict(X), names[np.argmax(proba, axis=1)])
    np.testing.assert_allclose(clf.init_score_, clone(loss).init_score(y, n_classes=K), rtol=1e-12)
    margins = (
        clf.predict(X, output_margin=True)
        if cls is XGBClassifier
        else clf.predict(X, raw_score=True)
    )
    # the loss's map of the margins: the softmax for GHM-C (the framework's own, float32 for
    # XGBoost), the class posterior for focal loss
    np.testing.assert_allclose(clone(loss).predict_proba(margins), proba, rtol=1e-5)
    if isinstance(loss, FocalLoss):
        np.testing.assert_array_equal(clone(loss).predict_proba(margins), proba)
    if cls is LGBMClassifier:  # decision_function's argmax is predict
        np.testing.assert_array_equal(
            names[np.argmax(clf.decision_function(X), axis=1)], clf.predict(X)
        )


@pytest.mark.parametrize("cls", CLASSES)
def test_estimator_custom_softmax_matches_builtin(cls, data):
    X, y, w = data
    custom = make(cls, CE).fit(X, y, sample_weight=w)
    if cls is XGBClassifier and not _compat_xgboost.takes_vector_base_score():
        start = np.tile(custom.init_score_, (y.size, 1))  # XGBoost < 3.1: one float base_score
        builtin = make(cls, None).fit(X, y, sample_weight=w, base_margin=start)
        np.testing.assert_allclose(
            custom.predict_proba(X), builtin.predict_proba(X, base_margin=start), atol=1e-5
        )
        return
    if cls is XGBClassifier:
        builtin = make(cls, None, base_score=custom.init_score_.tolist()).fit(X, y, sample_weight=w)
    else:
        start = np.tile(custom.init_score_, (y.size, 1))
        builtin = make(cls, None).fit(X, y, sample_weight=w, init_score=start)
        raw = builtin.predict(X, raw_score=True) + custom.init_score_
        np.testing.assert_allclose(custom.predict_proba(X), softmax(raw, axis=1), atol=1e-5)
        return
    np.testing.assert_allclose(custom.predict_proba(X), builtin.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize("cls", CLASSES)
def test_class_weights_through_sample_weight(cls, data):
    X, y, _ = data
    focal = FocalLoss(alpha=None)
    w = np.array([1.0, 2.0, 5.0, 10.0])[y]
    weighted = make(cls, focal).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(
        weighted.init_score_, focal.init_score(y, w, n_classes=K), rtol=1e-12
    )
    plain = make(cls, focal).fit(X, y)
    # Rare classes weighted up get more probability.
    assert weighted.predict_proba(X)[:, 3].mean() > plain.predict_proba(X)[:, 3].mean()


@pytest.mark.parametrize("cls", CLASSES)
def test_clone_pickle_and_grid_search(cls, data):
    X, y, _ = data
    clf = make(cls, GHMLoss(momentum=0.5)).fit(X, y)
    expected = clf.predict_proba(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X), expected)
    np.testing.assert_array_equal(clone(clf).fit(X, y).predict_proba(X), expected)
    search = GridSearchCV(
        make(cls, FocalLoss(alpha=None)), {"loss__gamma": [0.0, 2.0]}, cv=2, scoring="neg_log_loss"
    ).fit(X, y)
    assert [p["loss__gamma"] for p in search.cv_results_["params"]] == [0.0, 2.0]
    assert search.best_estimator_.predict_proba(X).shape == (y.size, K)


@pytest.mark.parametrize("cls", CLASSES)
def test_estimator_errors_for_k_classes(cls, data):
    X, y, _ = data
    with pytest.raises(ValueError, match=r"alpha=0\.25 is a binary weight.*4 classes"):
        make(cls, FocalLoss(alpha=0.25)).fit(X, y)
    with pytest.raises(ValueError, match=r"alpha=\[1\.0, 2\.0\] has 2 class weights.*4"):
        make(cls, FocalLoss(alpha=[1.0, 2.0])).fit(X, y)
    with pytest.raises(ValueError, match="one class"):
        make(cls, FocalLoss()).fit(X, np.zeros(y.size))
