"""XGBoost adapters: the custom objectives reproduce the built-in ones and a hand-written loop."""

import pickle
import threading

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from scipy.special import expit
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.metrics import average_precision_score

import boostloss.xgboost as blx
from boostloss import FocalLoss, GHMLoss

PARAMS = {"tree_method": "hist", "max_depth": 3, "eta": 0.3, "nthread": 1, "seed": 0}


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(
        n_samples=1500, n_features=8, weights=[0.9], flip_y=0.02, random_state=0
    )
    w = np.random.default_rng(0).uniform(0.2, 2.0, size=y.shape[0])
    return X, y, w


def train_custom(loss, d, rounds=8, params=PARAMS, **kwargs):
    p = dict(params, base_score=blx.base_score(loss, d), disable_default_eval_metric=1)
    return xgb.train(p, d, rounds, obj=blx.objective(loss), **kwargs)


def test_custom_logistic_reproduces_builtin(data):
    X, y, w = data
    logistic = FocalLoss(gamma=0.0, alpha=None)
    d = xgb.DMatrix(X, label=y, weight=w)
    custom = train_custom(logistic, d, rounds=20)
    start = blx.base_score(logistic, d, objective="binary:logistic")
    builtin = xgb.train(dict(PARAMS, objective="binary:logistic", base_score=start), d, 20)
    m_custom = custom.predict(d, output_margin=True)
    m_builtin = builtin.predict(d, output_margin=True)
    np.testing.assert_allclose(m_custom, m_builtin, rtol=0, atol=2e-5)
    assert np.abs(m_custom - blx.base_score(logistic, d)).max() > 1.0  # it did learn


def test_base_score_starts_from_init_score(data):
    X, y, w = data
    focal = FocalLoss(gamma=2.0, alpha=0.25)
    d = xgb.DMatrix(X, label=y, weight=w)
    seen = []
    obj = blx.objective(focal)

    def spy(margins, dtrain):
        seen.append(margins.copy())
        return obj(margins, dtrain)

    xgb.train(dict(PARAMS, base_score=blx.base_score(focal, d)), d, 1, obj=spy)
    assert seen[0].dtype == np.float32
    np.testing.assert_allclose(seen[0], focal.init_score(y, w), atol=1e-6)
    # Without it XGBoost starts from 0.5 on the margin scale: the trap this helper avoids.
    seen.clear()
    xgb.train(PARAMS, d, 1, obj=spy)
    np.testing.assert_allclose(seen[0], 0.5)
    assert blx.base_score(focal, y, w) == pytest.approx(focal.init_score(y, w))
    assert blx.base_score(focal, d, objective="binary:logistic") == pytest.approx(
        expit(focal.init_score(y, w))
    )
    with pytest.raises(ValueError, match="reg:logistic"):
        blx.base_score(focal, d, objective="reg:logistic")


def test_set_base_margin_on_all_matrices(data):
    X, y, _ = data
    focal = FocalLoss()
    dtrain, dvalid = xgb.DMatrix(X[:1000], label=y[:1000]), xgb.DMatrix(X[1000:], label=y[1000:])
    start = blx.set_base_margin(focal, dtrain, dvalid)
    assert start == pytest.approx(focal.init_score(y[:1000]))
    np.testing.assert_allclose(dvalid.get_base_margin(), start, rtol=1e-6)


def test_objective_matches_loss_and_is_float32(data):
    X, y, w = data
    d = xgb.DMatrix(X, label=y, weight=w)
    margins = np.random.default_rng(1).normal(size=y.shape[0]).astype(np.float32)
    for loss in (FocalLoss(gamma=2.0, alpha=0.25, hessian="exact"), GHMLoss(bins=7)):
        obj = blx.objective(loss)
        grad, hess = obj(margins, d)
        assert grad.dtype == np.float32 and hess.dtype == np.float32
        g_ref, h_ref = clone(loss).gradient_hessian(y, margins.astype(np.float64), w)
        np.testing.assert_allclose(grad, g_ref, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(hess, h_ref, rtol=1e-5, atol=1e-7)
        grad2, _ = obj(margins, d)
        assert grad2 is grad  # the buffers are reused across rounds


def test_ghm_objective_matches_manual_boost_loop(data):
    X, y, w = data
    ghm = GHMLoss(bins=10, momentum=0.75)
    d = xgb.DMatrix(X, label=y, weight=w)
    params = dict(PARAMS, base_score=0.0)
    trained = xgb.train(params, d, 12, obj=blx.objective(ghm))

    reference = GHMLoss(bins=10, momentum=0.75)  # its own running counts, one training
    booster = xgb.Booster(params, [d])
    for i in range(12):
        margins = booster.predict(d, output_margin=True, training=True)
        grad, hess = reference.gradient_hessian(y, margins, w)
        booster.boost(d, i, grad=grad.astype(np.float32), hess=hess.astype(np.float32))
    np.testing.assert_allclose(
        trained.predict(d, output_margin=True),
        booster.predict(d, output_margin=True),
        rtol=0,
        atol=1e-6,
    )


def test_same_loss_for_sequential_and_concurrent_trainings(data):
    X, y, w = data
    d = xgb.DMatrix(X, label=y, weight=w)
    shared = GHMLoss(bins=10, momentum=0.5)
    expected = train_custom(GHMLoss(bins=10, momentum=0.5), d).predict(d, output_margin=True)
    for _ in range(2):
        got = train_custom(shared, d).predict(d, output_margin=True)
        np.testing.assert_array_equal(got, expected)
    results = [None, None]

    def run(k):
        results[k] = train_custom(shared, xgb.DMatrix(X, label=y, weight=w)).predict(
            d, output_margin=True
        )

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r, expected)
    assert shared.running_counts_ is None  # the user's object was never touched


def test_reset_starts_a_new_training(data):
    X, y, _ = data
    d = xgb.DMatrix(X, label=y)
    obj = blx.objective(GHMLoss(momentum=0.5))
    params = dict(PARAMS, base_score=0.0)
    first = xgb.train(params, d, 8, obj=obj).predict(d, output_margin=True)
    carried = xgb.train(params, d, 8, obj=obj).predict(d, output_margin=True)
    assert not np.array_equal(first, carried)  # the running counts carried over
    again = xgb.train(params, d, 8, obj=obj.reset()).predict(d, output_margin=True)
    np.testing.assert_array_equal(first, again)


def test_metric_is_weighted_mean_loss_and_early_stopping_minimises_it(data):
    X, y, w = data
    focal = FocalLoss()
    dtrain = xgb.DMatrix(X[:1000], label=y[:1000], weight=w[:1000])
    dvalid = xgb.DMatrix(X[1000:], label=y[1000:], weight=w[1000:])
    m = np.random.default_rng(2).normal(size=500).astype(np.float32)
    name, value = blx.metric(focal)(m, dvalid)
    assert name == "focal"
    w32 = w[1000:].astype(np.float32).astype(np.float64)  # a DMatrix stores float32 weights
    expected = focal.loss(y[1000:], m, w32).sum() / w32.sum()
    assert value == pytest.approx(expected, rel=1e-12)

    history = {}
    booster = train_custom(
        focal,
        dtrain,
        rounds=300,
        params=dict(PARAMS, eta=0.8, max_depth=6),
        custom_metric=blx.metric(focal),
        evals=[(dvalid, "valid")],
        early_stopping_rounds=5,
        evals_result=history,
        verbose_eval=False,
    )
    curve = history["valid"]["focal"]
    assert list(history["valid"]) == ["focal"]
    assert booster.best_iteration == int(np.argmin(curve))
    assert len(curve) == booster.best_iteration + 6 < 300


def test_sklearn_objective_and_metric_honour_weights(data):
    X, y, w = data
    focal = FocalLoss(gamma=1.5, alpha=0.4)
    start = blx.base_score(focal, y, w, objective="binary:logistic")
    clf = xgb.XGBClassifier(
        objective=blx.sklearn_objective(focal),
        n_estimators=10,
        max_depth=3,
        learning_rate=0.3,
        n_jobs=1,
        random_state=0,
        base_score=start,
        eval_metric=blx.sklearn_metric(focal),
    )
    clf.fit(X, y, sample_weight=w, eval_set=[(X, y)], sample_weight_eval_set=[w], verbose=False)
    d = xgb.DMatrix(X, label=y, weight=w)
    booster = xgb.train(
        dict(PARAMS, objective="binary:logistic", base_score=start), d, 10, obj=blx.objective(focal)
    )
    np.testing.assert_allclose(
        clf.predict(X, output_margin=True), booster.predict(d, output_margin=True), atol=1e-5
    )
    first = clf.evals_result()["validation_0"]["focal"][0]
    m0 = booster.predict(d, output_margin=True, iteration_range=(0, 1))
    assert first == pytest.approx(focal.loss(y, m0, w).sum() / w.sum(), rel=1e-5)
    # Without weights the cached labels are re-read.
    unweighted = clone(clf).fit(X, y)
    assert not np.allclose(
        unweighted.predict(X, output_margin=True), clf.predict(X, output_margin=True)
    )


def test_bad_input_is_rejected(data):
    X, y, _ = data
    with pytest.raises(TypeError, match="boostloss loss object or a name"):
        blx.objective(42)
    with pytest.raises(ValueError, match="unknown loss 'fokal'.*'focal', 'ghm'"):
        blx.objective("fokal")
    assert blx.objective("focal:gamma=1").loss.get_params() == FocalLoss(gamma=1).get_params()
    d_bad = xgb.DMatrix(X, label=np.where(y == 1, 2, 0))
    with pytest.raises(ValueError, match="only 0 and 1"):
        blx.objective(FocalLoss())(np.zeros(y.shape[0], np.float32), d_bad)
    d = xgb.DMatrix(X, label=y)
    margins = np.zeros(y.shape[0], np.float32)
    margins[3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        blx.objective(FocalLoss())(margins, d)
    with pytest.raises(ValueError, match="binary"):  # a float alpha is a binary weight
        blx.objective(FocalLoss(alpha=0.25))(np.zeros((y.shape[0], 3), np.float32), d)
    with pytest.raises(ValueError, match="gamma"):
        blx.objective(FocalLoss(gamma=-1.0))


def test_objective_pickles_without_training_state(data):
    X, y, _ = data
    d = xgb.DMatrix(X, label=y)
    obj = blx.objective(GHMLoss(momentum=0.5))
    obj(np.zeros(y.shape[0], np.float32), d)
    restored = pickle.loads(pickle.dumps(obj))
    assert restored.loss.get_params() == obj.loss.get_params()
    g1, _ = restored(np.zeros(y.shape[0], np.float32), d)
    g2, _ = blx.objective(GHMLoss(momentum=0.5))(np.zeros(y.shape[0], np.float32), d)
    np.testing.assert_array_equal(g1, g2)


def test_focal_on_mammography(datasets_dir):
    df = pd.read_csv(datasets_dir / "mammography" / "data.csv.gz")
    y = df.pop("y").to_numpy()
    X = df.to_numpy(dtype=np.float64)
    rng = np.random.default_rng(0)
    test = rng.random(y.shape[0]) < 0.3
    focal = FocalLoss(gamma=2.0, alpha=0.25)
    dtrain = xgb.DMatrix(X[~test], label=y[~test])
    booster = train_custom(focal, dtrain, rounds=150, params=dict(PARAMS, eta=0.1, max_depth=4))
    scores = booster.predict(xgb.DMatrix(X[test]), output_margin=True)
    ap = average_precision_score(y[test], scores)
    assert ap > 10 * y.mean(), (ap, y.mean())
