"""LightGBM adapters: the custom logistic reproduces ``binary``; GHM state per training; metrics."""

import inspect
import pickle

import lightgbm as lgb
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification

import boostloss.lightgbm as bll
from boostloss import FocalLoss, GHMLoss

PARAMS = {
    "num_leaves": 7,
    "learning_rate": 0.3,
    "num_threads": 1,
    "verbose": -1,
    "seed": 0,
    "deterministic": True,
    "force_col_wise": True,
}


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(
        n_samples=1500, n_features=8, weights=[0.9], flip_y=0.02, random_state=1
    )
    w = np.random.default_rng(0).uniform(0.2, 2.0, size=y.shape[0])
    return X, y, w


def train_custom(loss, X, y, w=None, rounds=8, **kwargs):
    d = lgb.Dataset(X, label=y, weight=w, params={"verbose": -1})
    start = bll.set_init_score(loss, d)
    booster = lgb.train(
        dict(PARAMS, objective=bll.objective(loss), metric="None"), d, rounds, **kwargs
    )
    return booster, start


def test_custom_logistic_reproduces_builtin(data):
    X, y, w = data
    logistic = FocalLoss(gamma=0.0, alpha=None)
    booster, start = train_custom(logistic, X, y, w, rounds=20)
    builtin = lgb.train(
        dict(PARAMS, objective="binary"),
        lgb.Dataset(X, label=y, weight=w, params={"verbose": -1}),
        20,
    )
    np.testing.assert_allclose(
        bll.predict_proba(booster, X, start), builtin.predict(X), rtol=1e-6, atol=1e-9
    )
    assert start == pytest.approx(logistic.init_score(y, w))


def test_objective_starts_from_init_score_and_matches_loss(data):
    X, y, w = data
    focal = FocalLoss(gamma=2.0, alpha=0.25)
    obj = bll.objective(focal)
    seen = []

    def spy(preds, train_set):
        seen.append(preds.copy())
        grad, hess = obj(preds, train_set)
        assert grad.dtype == np.float32 and hess.dtype == np.float32
        g_ref, h_ref = focal.gradient_hessian(y, preds, w)
        np.testing.assert_allclose(grad, g_ref, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(hess, h_ref, rtol=1e-6, atol=1e-9)
        return grad, hess

    d = lgb.Dataset(X, label=y, weight=w, params={"verbose": -1})
    bll.set_init_score(focal, d)
    lgb.train(dict(PARAMS, objective=spy, metric="None"), d, 3)
    np.testing.assert_allclose(seen[0], focal.init_score(y, w))
    # Without init_score the callable objective starts from 0 (boost_from_average is skipped).
    seen.clear()
    lgb.train(
        dict(PARAMS, objective=spy, metric="None"),
        lgb.Dataset(X, label=y, weight=w, params={"verbose": -1}),
        1,
    )
    np.testing.assert_array_equal(seen[0], 0.0)


def test_ghm_objective_matches_manual_loop(data):
    X, y, _ = data
    ghm = GHMLoss(bins=10, momentum=0.75)
    booster, _ = train_custom(ghm, X, y, rounds=10)

    reference = GHMLoss(bins=10, momentum=0.75)
    d = lgb.Dataset(X, label=y, params={"verbose": -1})
    bll.set_init_score(ghm, d)
    state = {"calls": 0}

    def manual(preds, train_set):
        state["calls"] += 1
        grad, hess = reference.gradient_hessian(y, preds)
        return grad.astype(np.float32), hess.astype(np.float32)

    manual_booster = lgb.train(dict(PARAMS, objective=manual, metric="None"), d, 10)
    assert state["calls"] == 10
    # The adapter scales float32 buffers in place, the manual loop rounds float64 results once:
    # the models agree to float32 rounding.
    np.testing.assert_allclose(
        booster.predict(X, raw_score=True), manual_booster.predict(X, raw_score=True), atol=1e-6
    )


def test_same_loss_for_two_trainings_gives_same_models(data):
    X, y, w = data
    shared = GHMLoss(momentum=0.5)
    expected = train_custom(GHMLoss(momentum=0.5), X, y, w)[0].predict(X, raw_score=True)
    for _ in range(2):
        got = train_custom(shared, X, y, w)[0].predict(X, raw_score=True)
        np.testing.assert_array_equal(got, expected)


def test_metric_and_early_stopping(data):
    X, y, w = data
    focal = FocalLoss()
    dtrain = lgb.Dataset(X[:1000], label=y[:1000], weight=w[:1000], params={"verbose": -1})
    dvalid = lgb.Dataset(X[1000:], label=y[1000:], weight=w[1000:], reference=dtrain)
    start = bll.set_init_score(focal, dtrain, dvalid)
    history = {}
    booster = lgb.train(
        dict(
            PARAMS,
            objective=bll.objective(focal),
            metric="None",
            learning_rate=0.8,
            num_leaves=31,
            min_child_samples=2,
        ),
        dtrain,
        300,
        valid_sets=[dvalid],
        feval=bll.metric(focal),
        callbacks=[lgb.early_stopping(5, verbose=False), lgb.record_evaluation(history)],
    )
    curve = history["valid_0"]["focal"]
    assert booster.best_iteration == int(np.argmin(curve)) + 1 < 300
    assert len(curve) == booster.best_iteration + 5
    margins = booster.predict(X[1000:], raw_score=True, num_iteration=1) + start
    assert curve[0] == pytest.approx(
        focal.loss(y[1000:], margins, w[1000:]).sum() / w[1000:].sum(), rel=1e-6
    )  # float32 weights
    name, value, higher_better = bll.metric(focal)(margins, dvalid)
    assert (name, higher_better) == ("focal", False) and value == pytest.approx(curve[0])


def test_sklearn_objective_and_metric_honour_weights(data):
    X, y, w = data
    focal = FocalLoss(gamma=1.5, alpha=0.4)
    start = focal.init_score(y, w)
    clf = lgb.LGBMClassifier(
        objective=bll.sklearn_objective(focal),
        n_estimators=8,
        num_leaves=7,
        learning_rate=0.3,
        n_jobs=1,
        random_state=0,
        verbose=-1,
        deterministic=True,
        force_col_wise=True,
    )
    # LightGBM 4.7 added eval_X/eval_y and deprecated eval_set; before 4.7 only eval_set exists.
    if "eval_X" in inspect.signature(lgb.LGBMClassifier.fit).parameters:
        evals = dict(eval_X=X, eval_y=y)
    else:
        evals = dict(eval_set=[(X, y)])
    clf.fit(
        X,
        y,
        sample_weight=w,
        init_score=np.full(y.shape[0], start),
        **evals,
        eval_sample_weight=[w],
        eval_init_score=[np.full(y.shape[0], start)],
        eval_metric=bll.sklearn_metric(focal),
    )
    assert [len(curves["focal"]) for curves in clf.evals_result_.values()] == [8]
    booster, _ = train_custom(focal, X, y, w)
    np.testing.assert_allclose(
        clf.predict(X, raw_score=True), booster.predict(X, raw_score=True), atol=1e-9
    )
    unweighted = clone(clf).fit(X, y, init_score=np.full(y.shape[0], start))
    assert not np.allclose(unweighted.predict(X, raw_score=True), clf.predict(X, raw_score=True))


def test_bad_input_is_rejected(data):
    X, y, _ = data
    with pytest.raises(TypeError, match="boostloss loss object or a name"):
        bll.objective(None)
    with pytest.raises(ValueError, match="unknown loss 'fokal'.*'focal', 'ghm'"):
        bll.objective("fokal")
    assert bll.objective("ghm:bins=30").loss.get_params() == GHMLoss(bins=30).get_params()
    d = lgb.Dataset(X, label=y, params={"verbose": -1}).construct()
    preds = np.zeros(y.shape[0])
    preds[0] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        bll.objective(FocalLoss())(preds, d)
    with pytest.raises(ValueError, match="only 0 and 1"):
        bll.sklearn_objective(FocalLoss())(np.full(3, 0.5), np.zeros(3), None)
    with pytest.raises(ValueError, match="init_score"):
        bll.predict_proba(None, X, float("nan"))


def test_objective_pickles(data):
    X, y, _ = data
    obj = bll.objective(GHMLoss(momentum=0.5))
    d = lgb.Dataset(X, label=y, params={"verbose": -1}).construct()
    obj(np.zeros(y.shape[0]), d)
    restored = pickle.loads(pickle.dumps(obj))
    g1, _ = restored(np.zeros(y.shape[0]), d)
    g2, _ = bll.objective(GHMLoss(momentum=0.5))(np.zeros(y.shape[0]), d)
    np.testing.assert_array_equal(g1, g2)
