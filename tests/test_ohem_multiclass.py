"""Multi-class OHEM: a background class plays the negatives.

The kept set against a full sort of the background rows by -log p_background (ties included),
derivatives (softmax cross-entropy on kept rows, exact 0 elsewhere), the binary model with the
background class 1, the start against a numeric minimiser, bad input, determinism across threads,
and training through xgb.train / lgb.train and the estimators with string labels.
"""

import math
import pickle

import numba
import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit, log_softmax, softmax

from boostloss import HESSIAN_FLOOR, LGBMClassifier, OHEMLoss, XGBClassifier
from boostloss._frameworks import compat_xgboost as _compat_xgboost
from boostloss._kernels import select as ks


def make_data(seed, n=3000, k_classes=4, background=0, ties=False):
    rng = np.random.default_rng(seed)
    p = np.full(k_classes, 0.15 / (k_classes - 1))
    p[background] = 0.85
    y = rng.choice(k_classes, n, p=p).astype(np.float64)
    x = rng.normal(0.0, 1.5, (n, k_classes))
    if ties:  # a few leaves' worth of distinct rows
        x = np.round(x, 0)
        x[: n // 4] = 0.0
    return y, x


def full_sort_keep(y, x, w, background, ratio, random_state):
    """Kept rows by a full sort of the background rows by -log p_bg, tie key, row.

    The sort ranks the loss the selection computes (``softmax_negative_loss``), checked here
    against scipy's to 1e-13: near-ties (a permutation of the other classes' margins sums the
    same exps in another order) may round apart by an ulp, and a libm other than the kernels'
    (numpy 1.24's own exp and log) may order such a pair the other way.
    """
    keys = ks.tie_keys(y.shape[0], random_state)
    loss = np.empty(y.shape[0])
    ks.softmax_negative_loss(x, background, loss)
    np.testing.assert_allclose(loss, -log_softmax(x, axis=1)[:, background], rtol=1e-13, atol=1e-15)
    negative = y == background
    if w is not None:
        negative &= w > 0
    rows = np.flatnonzero(negative)
    order = rows[np.lexsort((rows, keys[rows], -loss[rows]))]
    keep = y != background
    if w is None:
        k = min(len(order), math.ceil(ratio * int(keep.sum())))
    else:
        target = ratio * w[y != background].sum()
        k = min(int(np.searchsorted(np.cumsum(w[order]), target, side="left")) + 1, len(order))
    keep[order[:k]] = True
    return keep


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("background", [0, 2])
def test_kept_set_and_derivatives(ties, weighted, background):
    y, x = make_data(background + 10 * ties, background=background, ties=ties)
    w = np.random.default_rng(1).integers(0, 4, y.shape[0]) / 2.0 if weighted else None
    loss = OHEMLoss(ratio=2.5, random_state=3, negative_class=background)
    grad, hess = loss.gradient_hessian(y, x, w)
    kept = loss.kept_
    np.testing.assert_array_equal(kept, full_sort_keep(y, x, w, background, 2.5, 3))
    # Approximately equal losses would not do: the ranking must use the computed loss exactly.
    p = softmax(x, axis=1)
    onehot = np.eye(x.shape[1])[y.astype(int)]
    wi = np.ones(y.shape[0]) if w is None else w
    np.testing.assert_allclose(
        grad[kept], (wi[:, None] * (p - onehot))[kept], rtol=1e-10, atol=1e-14
    )
    np.testing.assert_allclose(
        hess[kept],
        (wi[:, None] * np.maximum(p * (1 - p), HESSIAN_FLOOR))[kept],
        rtol=1e-10,
        atol=1e-14,
    )
    assert (grad[~kept] == 0.0).all() and (hess[~kept] == 0.0).all()
    per_row = loss.loss(y, x, w)
    ce = -(log_softmax(x, axis=1) * onehot).sum(axis=1) * wi
    np.testing.assert_allclose(per_row, np.where(kept, ce, 0.0), rtol=1e-10, atol=1e-14)


def test_binary_model_with_background_class_one_flips_the_ranking():
    rng = np.random.default_rng(4)
    n = 2000
    y = (rng.random(n) < 0.8).astype(np.float64)  # class 1 is the crowd
    x = rng.normal(1.0, 1.5, n)
    loss = OHEMLoss(ratio=2.0, negative_class=1)
    grad, _ = loss.gradient_hessian(y, x)
    # The hardest class-1 rows have the lowest margins; the same as class 0 on -x.
    flipped = OHEMLoss(ratio=2.0)
    flipped.gradient_hessian(1.0 - y, -x)
    np.testing.assert_array_equal(loss.kept_, flipped.kept_)
    assert loss.kept_[y == 0].all()
    np.testing.assert_allclose(grad[loss.kept_], (expit(x) - y)[loss.kept_], rtol=1e-12)
    start = loss.init_score(y)
    n0, n1 = int((y == 0).sum()), int((y == 1).sum())
    assert start == pytest.approx(math.log(min(n1, 2 * n0) / n0), rel=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_init_score_is_the_kept_set_minimiser(weighted):
    y, _ = make_data(5, n=1500, k_classes=3, background=1)
    w = np.random.default_rng(6).lognormal(0, 0.7, y.shape[0]) if weighted else None
    loss = OHEMLoss(ratio=3.0, random_state=2, negative_class=1)
    start = loss.init_score(y, w, n_classes=3)
    assert start.shape == (3,) and abs(start.mean()) < 1e-12
    # The first round at that start keeps the rows of a constant start, and its total gradient
    # over them is 0: the start is the cross-entropy minimiser over the kept set.
    x0 = np.tile(start, (y.shape[0], 1))
    grad, _ = loss.gradient_hessian(y, x0, w)
    np.testing.assert_allclose(grad.sum(axis=0), 0.0, atol=1e-9 * y.shape[0])
    kept = loss.kept_
    wi = np.ones(y.shape[0]) if w is None else w
    onehot = np.eye(3)[y.astype(int)]

    def total(c):
        return -(wi[kept, None] * onehot[kept] * log_softmax(c)[None, :]).sum()

    numeric = minimize(total, np.zeros(3), method="BFGS", options={"gtol": 1e-10}).x
    np.testing.assert_allclose(start, numeric - numeric.mean(), atol=1e-5)
    # Exactly: the log of the kept class weights, centred.
    kept_totals = np.bincount(y[kept].astype(int), weights=wi[kept], minlength=3)
    np.testing.assert_allclose(
        start, np.log(kept_totals) - np.log(kept_totals).mean(), rtol=1e-12, atol=1e-12
    )
    if not weighted:
        n_other = int((y != 1).sum())
        assert kept_totals[1] == math.ceil(3.0 * n_other)


def test_bad_input():
    y, x = make_data(7, n=200, k_classes=3)
    with pytest.raises(ValueError, match="out of range for 3 classes"):
        OHEMLoss(negative_class=3).gradient_hessian(y, x)
    with pytest.raises(ValueError, match="need negative_class"):
        OHEMLoss().gradient_hessian(y, x)
    with pytest.raises(ValueError, match="'bg'.*class indices"):
        OHEMLoss(negative_class="bg").gradient_hessian(y, x)
    with pytest.raises(ValueError, match="not a class of a binary model"):
        OHEMLoss(negative_class=2).gradient_hessian((y > 0).astype(float), x[:, 0])
    with pytest.raises(ValueError, match="no positive rows"):
        OHEMLoss(negative_class=1).gradient_hessian(np.ones(200), x)
    with pytest.raises(ValueError, match="no positive rows"):
        OHEMLoss(negative_class=1).init_score(np.ones(200), n_classes=3)
    with pytest.raises(ValueError, match="not a label of y"):
        OHEMLoss(negative_class="bg").for_classes(["cat", "dog", "fish"])
    with pytest.raises(ValueError, match="class 2"):  # a class absent from y: its start is -inf
        OHEMLoss(negative_class=0).init_score(np.array([0.0, 1.0, 0.0, 1.0]), n_classes=3)
    assert OHEMLoss(negative_class="dog").for_classes(["cat", "dog"]).negative_class == 1
    assert OHEMLoss(negative_class=2).for_classes([0, 1, 2]).negative_class == 2
    assert OHEMLoss(negative_class=1).for_classes([1.0, 5.0]).negative_class == 0


def test_deterministic_across_threads():
    y, x = make_data(8, n=120_000, ties=True)
    x = x.astype(np.float32)
    w = np.random.default_rng(9).random(y.shape[0])
    results = []
    for threads in (1, 2, 1):
        loss = OHEMLoss(negative_class=0)
        g, h = loss.gradient_hessian(
            y, x, w, n_threads=min(threads, numba.config.NUMBA_NUM_THREADS)
        )
        results.append((g, h, loss.kept_.copy()))
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def data():
    from sklearn.datasets import make_classification

    X, y = make_classification(
        1800,
        8,
        n_informative=6,
        n_classes=3,
        n_clusters_per_class=1,
        weights=[0.8, 0.1, 0.1],
        random_state=0,
    )
    return X, y


def test_xgboost_train_num_class(data):
    import xgboost as xgb

    import boostloss.xgboost as blx

    X, y = data
    loss = OHEMLoss(ratio=2.0, negative_class=0)
    dtrain = xgb.DMatrix(X, y)
    params = {"tree_method": "hist", "num_class": 3, "nthread": 1, "min_child_weight": 0}
    if _compat_xgboost.takes_vector_base_score():
        params["base_score"] = blx.base_score(loss, dtrain, n_classes=3)
    else:  # XGBoost < 3.1 keeps one float base_score: the K-class start goes in as base_margin
        blx.set_base_margin(loss, dtrain, n_classes=3)
    obj = blx.objective(loss)
    booster = xgb.train(params, dtrain, 10, obj=obj)
    state = obj._cache.get(dtrain).state
    n_fg = int((y != 0).sum())
    assert state.rounds == 10 and state.n_kept_negatives == 2 * n_fg
    assert state.kept.sum() == 3 * n_fg
    proba = softmax(booster.predict(dtrain, output_margin=True), axis=1)
    assert (proba.argmax(axis=1) == y).mean() > 0.8


def test_lightgbm_train_num_class(data):
    import lightgbm as lgb

    import boostloss.lightgbm as bll

    X, y = data
    loss = OHEMLoss(ratio=2.0, negative_class=0)
    start = loss.init_score(y, n_classes=3)
    train = lgb.Dataset(X, y, init_score=np.tile(start, (len(y), 1)))
    booster = lgb.train(
        {
            "objective": bll.objective(loss),
            "num_class": 3,
            "metric": "None",
            "verbose": -1,
            "lambda_l2": 0.0,
            "min_data_in_leaf": 5,
            "num_threads": 1,
        },
        train,
        10,
    )
    margins = booster.predict(X, raw_score=True) + start
    assert np.isfinite(margins).all()
    assert (margins.argmax(axis=1) == y).mean() > 0.8


@pytest.mark.parametrize("kind", ["xgboost", "lightgbm"])
def test_estimators_with_a_string_background_class(kind, data):
    X, y = data
    labels = np.array(["bg", "cat", "dog"])[y]
    loss = OHEMLoss(ratio=2.0, negative_class="bg")
    if kind == "xgboost":
        clf = XGBClassifier(
            loss=loss, n_estimators=30, min_child_weight=0, n_jobs=1, early_stopping_rounds=4
        )
        clf.fit(X[:1200], labels[:1200], eval_set=[(X[1200:], labels[1200:])], verbose=False)
        history = clf.evals_result()["validation_0"]
    else:
        clf = LGBMClassifier(loss=loss, n_estimators=30, reg_lambda=0.0, verbose=-1, n_jobs=1)
        clf.fit(X[:1200], labels[:1200], eval_X=(X[1200:],), eval_y=(labels[1200:],))
        history = clf.evals_result_["valid_0"]
    assert list(history) == ["logloss"]  # plain multi-class cross-entropy of all rows
    assert loss.negative_class == "bg"  # the estimator's loss is not modified
    expected = OHEMLoss(ratio=2.0, negative_class=0).init_score(y[:1200], n_classes=3)
    np.testing.assert_allclose(clf.init_score_, expected, rtol=1e-12, atol=1e-12)
    proba = clf.predict_proba(X[1200:])
    assert proba.shape == (600, 3) and np.allclose(proba.sum(axis=1), 1.0)
    assert set(clf.predict(X[1200:])) <= {"bg", "cat", "dog"}
    assert (clf.predict(X[1200:]) == labels[1200:]).mean() > 0.8
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X[1200:]), proba)
    with pytest.raises(ValueError, match="not a label of y"):
        type(clf)(loss=OHEMLoss(negative_class="background"), n_estimators=2).fit(X, labels)
