"""OHEMLoss through the public API: the kept set, derivatives of kept and dropped rows, invariances,
determinism, bad input, the start, the adapters and estimators of both frameworks, pickling and the
registry name. The selection kernels themselves are tested in test_ohem_select.py.
"""

import math
import pickle

import numpy as np
import pytest
from scipy.special import expit
from sklearn.base import clone

import boostloss
from boostloss import HESSIAN_FLOOR, LOSSES, OHEMLoss, make_loss
from boostloss._kernels import select as ks
from boostloss.losses import check_target
from boostloss.losses.ohem import OHEMParams, OHEMState


def make_data(seed, n=4000, pos_rate=0.1, few_values=False):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < pos_rate).astype(np.float64)
    if few_values:  # a round of a few leaves: many exact ties
        x = rng.choice(np.array([-3.0, -1.25, -0.5, 0.0, 0.75]), n)
    else:
        x = rng.normal(-2.0, 1.5, n)
    return y, x


def full_sort_keep(y, x, w, ratio, random_state):
    """Kept rows by a full sort of the negatives: margin descending, then tie key, then row."""
    keys = ks.tie_keys(y.shape[0], random_state)
    negative = y == 0
    if w is not None:
        negative &= w > 0
    rows = np.flatnonzero(negative)
    order = rows[np.lexsort((rows, keys[rows], -(x[rows].astype(np.float64) + 0.0)))]
    keep = y == 1
    if w is None:
        k = min(len(order), math.ceil(ratio * int(keep.sum())))
    else:
        target = ratio * w[y == 1].sum()
        k = min(int(np.searchsorted(np.cumsum(w[order]), target, side="left")) + 1, len(order))
    keep[order[:k]] = True
    return keep


def cross_entropy_derivatives(y, x):
    p = expit(x.astype(np.float64))
    return p - y, np.maximum(p * (1.0 - p), HESSIAN_FLOOR)


# ---------------------------------------------------------------------------------------------
# The kept set and the derivatives
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("few_values", [False, True])
@pytest.mark.parametrize("ratio", [0.5, 3.0, 7.25])
def test_kept_set_equals_full_sort(ratio, few_values):
    y, x = make_data(1, few_values=few_values)
    loss = OHEMLoss(ratio=ratio, random_state=5)
    grad, hess = loss.gradient_hessian(y, x)
    expected = full_sort_keep(y, x, None, ratio, 5)
    np.testing.assert_array_equal(loss.kept_, expected)
    n_pos = int(y.sum())
    assert int(expected[y == 0].sum()) == min(int((y == 0).sum()), math.ceil(ratio * n_pos))
    g, h = cross_entropy_derivatives(y, x)
    np.testing.assert_allclose(grad[expected], g[expected], rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(hess[expected], h[expected], rtol=1e-13, atol=1e-300)
    # Dropped rows: exactly +0.0, not merely small.
    assert np.all(grad[~expected] == 0.0) and np.all(hess[~expected] == 0.0)
    assert not np.signbit(grad[~expected]).any()


def test_weighted_kept_set_and_weights_multiply():
    y, x = make_data(2)
    rng = np.random.default_rng(3)
    w = rng.integers(0, 9, y.shape[0]) / 4.0  # exact partial sums: one answer to the prefix rule
    loss = OHEMLoss(ratio=2.0, random_state=1)
    grad, hess = loss.gradient_hessian(y, x, w)
    kept = loss.kept_.copy()
    np.testing.assert_array_equal(kept, full_sort_keep(y, x, w, 2.0, 1))
    g, h = cross_entropy_derivatives(y, x)
    np.testing.assert_allclose(grad, np.where(kept, w * g, 0.0), rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(hess, np.where(kept, w * h, 0.0), rtol=1e-13, atol=1e-300)
    assert not kept[(y == 0) & (w == 0)].any()  # zero-weight negatives are never kept
    assert kept[y == 1].all()  # every positive, whatever its weight


def test_constant_weight_scales_derivatives_not_the_selection():
    y, x = make_data(4, few_values=True)
    loss = OHEMLoss()
    g1, h1 = loss.gradient_hessian(y, x)
    kept = loss.kept_.copy()
    g3, h3 = loss.gradient_hessian(y, x, np.full(y.shape[0], 3.0))
    np.testing.assert_array_equal(loss.kept_, kept)
    np.testing.assert_allclose(g3, 3.0 * g1, rtol=1e-15)
    np.testing.assert_allclose(h3, 3.0 * h1, rtol=1e-15)


def test_hardest_negatives_are_the_highest_margins():
    y = np.array([1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    x = np.array([0.0, -5.0, 4.0, -1.0, 2.0, 3.0])
    loss = OHEMLoss(ratio=3.0)
    grad, _ = loss.gradient_hessian(y, x)
    np.testing.assert_array_equal(loss.kept_, [True, False, True, False, True, True])
    assert grad[1] == 0.0 and grad[3] == 0.0 and grad[2] > 0.9


def test_ties_follow_the_seed_not_the_row_order():
    n = 2000
    y = np.zeros(n)
    y[:20] = 1.0
    x = np.zeros(n)
    kept = {}
    for seed in (0, 1):
        loss = OHEMLoss(ratio=3.0, random_state=seed)
        loss.gradient_hessian(y, x)
        kept[seed] = loss.kept_.copy()
        assert kept[seed][20:].sum() == 60
        assert not kept[seed][20:80].all()  # not the first negatives
    assert not np.array_equal(kept[0], kept[1])


def test_loss_is_cross_entropy_of_the_kept_rows():
    y, x = make_data(5)
    w = np.random.default_rng(6).uniform(0.5, 2.0, y.shape[0])
    loss = OHEMLoss(ratio=3.0, random_state=2)
    values = loss.loss(y, x, w)
    loss.gradient_hessian(y, x, w)
    kept = loss.kept_
    ce = w * (np.logaddexp(0.0, x) - y * x)
    np.testing.assert_allclose(values[kept], ce[kept], rtol=1e-12)
    assert np.all(values[~kept] == 0.0)
    state = loss.new_state()
    loss.gradient_hessian(y, x + 1.0, w, state=state)
    before = state.kept.copy()
    np.testing.assert_array_equal(loss.loss(y, x, w, state=state), values)
    np.testing.assert_array_equal(state.kept, before)  # loss() leaves the selection alone


# ---------------------------------------------------------------------------------------------
# Invariances and determinism
# ---------------------------------------------------------------------------------------------


def test_dtype_and_layout_do_not_change_the_answer():
    y, x = make_data(7, few_values=True)
    loss = OHEMLoss()
    g64, h64 = loss.gradient_hessian(y, x)
    kept = loss.kept_.copy()
    g32, h32 = loss.gradient_hessian(y, x.astype(np.float32))  # these margins are exact in float32
    np.testing.assert_array_equal(loss.kept_, kept)
    np.testing.assert_array_equal(g32, g64)
    np.testing.assert_array_equal(h32, h64)
    strided = np.empty(2 * x.shape[0])
    strided[::2] = x
    gs, hs = loss.gradient_hessian(y[::-1][::-1], strided[::2])
    np.testing.assert_array_equal(gs, g64)
    ro = x.copy()
    ro.flags.writeable = False
    gr, _ = loss.gradient_hessian(y.astype(bool), ro)
    np.testing.assert_array_equal(gr, g64)
    gb = np.empty(x.shape[0], dtype=np.float32)
    hb = np.empty(x.shape[0], dtype=np.float32)
    out = loss.gradient_hessian(y, x, gradient_out=gb, hessian_out=hb)
    assert out[0] is gb and out[1] is hb
    np.testing.assert_array_equal(gb, g64.astype(np.float32))


@pytest.mark.parametrize("weighted", [False, True])
def test_deterministic_across_threads_and_calls(weighted):
    import numba

    y, x = make_data(8, n=150_000)  # several chunks: the parallel passes run
    w = np.random.default_rng(9).lognormal(0.0, 1.0, y.shape[0]) if weighted else None
    loss = OHEMLoss(random_state=4)
    results = []
    for n_threads in (1, min(2, numba.config.NUMBA_NUM_THREADS), None):
        for _ in range(2):
            state = loss.new_state()
            grad, hess = loss.gradient_hessian(y, x, w, n_threads=n_threads, state=state)
            results.append(
                (grad.copy(), hess.copy(), state.kept.copy(), state.kept_negative_weight)
            )
    for grad, hess, kept, w_kept in results[1:]:
        np.testing.assert_array_equal(grad, results[0][0])
        np.testing.assert_array_equal(hess, results[0][1])
        np.testing.assert_array_equal(kept, results[0][2])
        assert w_kept == results[0][3]
    fresh = OHEMLoss(random_state=4)
    np.testing.assert_array_equal(fresh.gradient_hessian(y, x, w)[0], results[0][0])


def test_state_draws_tie_keys_once_per_data(monkeypatch):
    calls = []
    original = ks.tie_keys
    monkeypatch.setattr(ks, "tie_keys", lambda n, seed: calls.append(n) or original(n, seed))
    y, x = make_data(10, n=500)
    loss = OHEMLoss()
    target = check_target(y)
    state = loss.new_state()
    assert isinstance(state, OHEMState) and state.kept is None
    for r in range(4):
        loss.gradient_hessian(target, x + 0.1 * r, state=state)
    assert calls == [500] and state.rounds == 4
    assert state.n_kept_negatives == min(int((y == 0).sum()), math.ceil(3 * y.sum()))
    with pytest.raises(ValueError):
        state.kept[0] = not state.kept[0]  # read-only view


def test_states_are_independent():
    y, x = make_data(11, n=300)
    loss = OHEMLoss()
    a, b = loss.new_state(), loss.new_state()
    loss.gradient_hessian(y, x, state=a)
    assert b.kept is None and loss.kept_ is None
    with pytest.raises(TypeError, match="OHEMState"):
        loss.gradient_hessian(y, x, state=object())


# ---------------------------------------------------------------------------------------------
# The start
# ---------------------------------------------------------------------------------------------


def test_init_score_is_minus_log_ratio_and_the_kept_set_minimiser():
    y = np.zeros(1000)
    y[:50] = 1.0
    for ratio in (1.0, 3.0, 4.0):
        assert OHEMLoss(ratio=ratio).init_score(y) == pytest.approx(-math.log(ratio), abs=1e-15)
    # Not a whole number of negatives: log(n+ / ceil(ratio n+)).
    y_odd = np.zeros(100)
    y_odd[:3] = 1.0  # ceil(2.5 * 3) = 8 negatives
    assert OHEMLoss(ratio=2.5).init_score(y_odd) == pytest.approx(math.log(3 / 8), abs=1e-15)
    # At the start the kept rows' gradients sum to zero (weighted too).
    w = np.random.default_rng(12).uniform(0.1, 3.0, 1000)
    loss = OHEMLoss(ratio=3.0)
    s = loss.init_score(y, w)
    grad, _ = loss.gradient_hessian(y, np.full(1000, s), w)
    assert abs(grad.sum()) < 1e-10 * w.sum()
    kept = loss.kept_
    assert s == pytest.approx(math.log(w[y == 1].sum() / w[kept & (y == 0)].sum()), rel=1e-13)


def test_ratio_above_the_negatives_keeps_all_of_them():
    y = np.array([1.0, 1.0, 0.0, 0.0, 0.0])
    loss = OHEMLoss(ratio=10.0)
    grad, hess = loss.gradient_hessian(y, np.zeros(5))
    assert loss.kept_.all() and np.all(hess > 0)
    assert loss.init_score(y) == pytest.approx(math.log(2 / 3))


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", [0, -1.0, float("nan"), float("inf"), "3"])
def test_bad_ratio(ratio):
    with pytest.raises((ValueError, TypeError), match="ratio"):
        OHEMLoss(ratio=ratio).gradient_hessian([0, 1], [0.0, 0.0])


@pytest.mark.parametrize("seed", [-1, 1.5, None, True])
def test_bad_random_state(seed):
    with pytest.raises(ValueError, match="random_state"):
        OHEMLoss(random_state=seed).resolved_params()


def test_nan_margins():
    with pytest.raises(ValueError, match="nan"):
        OHEMLoss().gradient_hessian([0, 1, 0], [0.0, float("nan"), 1.0])


def test_no_positives_is_a_clear_error():
    y = np.zeros(10)
    with pytest.raises(ValueError, match="no positive rows"):
        OHEMLoss().gradient_hessian(y, np.zeros(10))
    with pytest.raises(ValueError, match="no positive rows"):
        OHEMLoss().init_score(y)
    y[0] = 1.0
    w = np.ones(10)
    w[0] = 0.0
    with pytest.raises(ValueError, match="positives of total weight 0"):
        OHEMLoss().gradient_hessian(y, np.zeros(10), w)
    with pytest.raises(ValueError, match="negatives"):
        OHEMLoss().init_score(np.ones(4))


def test_multi_class_without_negative_class_is_a_clear_error():
    with pytest.raises(ValueError, match="need negative_class"):
        OHEMLoss().gradient_hessian([0, 1, 2], np.zeros((3, 3)))
    with pytest.raises(ValueError, match="need negative_class"):
        OHEMLoss().init_score([0, 1, 2], n_classes=3)
    with pytest.raises(ValueError, match="only 0 and 1"):
        OHEMLoss().gradient_hessian([0, 1, 2], np.zeros(3))


# ---------------------------------------------------------------------------------------------
# Parameters, names, pickling
# ---------------------------------------------------------------------------------------------


def test_params_registry_and_export():
    loss = make_loss("ohem:ratio=2.5,random_state=7")
    assert isinstance(loss, OHEMLoss) and LOSSES["ohem"] is OHEMLoss
    assert boostloss.OHEMLoss is OHEMLoss and "OHEMLoss" in boostloss.__all__
    assert loss.get_params() == {"ratio": 2.5, "random_state": 7, "negative_class": None}
    assert loss.resolved_params() == OHEMParams(2.5, 7)
    assert clone(loss).get_params() == loss.get_params()


def test_pickle_keeps_and_clone_drops_the_direct_call_state():
    # As for every loss (tests/test_pickle.py): a pickle continues the direct calls' training.
    y, x = make_data(13, n=200)
    loss = OHEMLoss(ratio=2.0)
    grad, _ = loss.gradient_hessian(y, x)
    copy = pickle.loads(pickle.dumps(loss))
    np.testing.assert_array_equal(copy.kept_, loss.kept_)
    assert copy.get_params() == loss.get_params() and copy.state_.rounds == 1
    np.testing.assert_array_equal(copy.gradient_hessian(y, x)[0], grad)
    assert clone(loss).kept_ is None
    loss.set_params(ratio=1.0)
    assert loss.kept_ is None


# ---------------------------------------------------------------------------------------------
# Frameworks
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data():
    from sklearn.datasets import make_classification

    X, y = make_classification(1500, 8, n_informative=5, weights=[0.93], random_state=0)
    return X, y


def test_xgboost_train_adapter(data, monkeypatch):
    import xgboost as xgb

    import boostloss.xgboost as blx

    X, y = data
    dtrain = xgb.DMatrix(X, y)
    obj = blx.objective(OHEMLoss())
    params = {
        "tree_method": "hist",
        "min_child_weight": 0,
        "nthread": 1,
        "base_score": blx.base_score(OHEMLoss(), dtrain),
    }
    calls = []
    original = ks.tie_keys
    monkeypatch.setattr(ks, "tie_keys", lambda n, seed: calls.append(n) or original(n, seed))
    booster = xgb.train(params, dtrain, 10, obj=obj)
    assert calls == [len(y)]  # the tie keys are drawn once per training set, not per round
    margins = booster.predict(dtrain, output_margin=True)
    assert np.isfinite(margins).all()
    state = obj._cache.get(dtrain).state
    assert state.rounds == 10 and state.kept.sum() == y.sum() + math.ceil(3 * y.sum())
    # The same loss object twice gives the same model (each training owns its state).
    again = xgb.train(params, dtrain, 10, obj=blx.objective(OHEMLoss()))
    np.testing.assert_array_equal(again.predict(dtrain, output_margin=True), margins)


def test_lightgbm_train_adapter_without_l2(data):
    import lightgbm as lgb

    import boostloss.lightgbm as bll

    X, y = data
    train = lgb.Dataset(X, y)
    start = bll.set_init_score(OHEMLoss(), train)
    assert start == pytest.approx(-math.log(3.0), abs=1e-12)
    booster = lgb.train(
        {
            "objective": bll.objective(OHEMLoss()),
            "metric": "None",
            "verbose": -1,
            "lambda_l2": 0.0,
            "min_data_in_leaf": 5,
            "num_threads": 1,
        },
        train,
        15,
    )
    margins = booster.predict(X, raw_score=True) + start
    assert np.isfinite(margins).all()
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, margins) > 0.85


@pytest.mark.parametrize("kind", ["xgboost", "lightgbm"])
def test_estimators_train_and_early_stop_on_cross_entropy(kind, data):
    from boostloss import LGBMClassifier, XGBClassifier

    X, y = data
    labels = np.where(y == 1, "yes", "no")
    if kind == "xgboost":
        clf = XGBClassifier(
            loss=OHEMLoss(), n_estimators=40, min_child_weight=0, early_stopping_rounds=5, n_jobs=1
        )
        clf.fit(X[:1000], labels[:1000], eval_set=[(X[1000:], labels[1000:])], verbose=False)
        history = clf.evals_result()["validation_0"]
    else:
        clf = LGBMClassifier(
            loss="ohem:ratio=3", n_estimators=40, reg_lambda=0.0, verbose=-1, n_jobs=1
        )
        clf.fit(X[:1000], labels[:1000], eval_X=(X[1000:],), eval_y=(labels[1000:],))
        history = clf.evals_result_["valid_0"]
    assert list(history) == ["logloss"]  # the cross-entropy of all rows, not OHEM's own loss
    proba = clf.predict_proba(X[1000:])
    assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1.0)
    assert clf.init_score_ == pytest.approx(-math.log(3.0), abs=1e-12)
    assert set(clf.predict(X[1000:])) <= {"yes", "no"}
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X[1000:]), proba)


# ---------------------------------------------------------------------------------------------
# compare: the ohem and goss rows
# ---------------------------------------------------------------------------------------------


def test_compare_registry_builds_ohem_and_goss(data):
    from boostloss.compare import CompareConfig, registry
    from boostloss.compare.protocol import make_estimator

    _, y = data
    config = CompareConfig(rounds=3, seed=4)
    ohem = make_estimator("lightgbm", "ohem", config, y)
    assert isinstance(ohem.loss, OHEMLoss) and ohem.loss.get_params()["random_state"] == 4
    goss = make_estimator("lightgbm", "goss", config, y)
    assert goss.loss is None and goss.get_params()["data_sample_strategy"] == "goss"
    assert registry.absent_reason("lightgbm", "goss") is None
    assert "device='cuda'" in registry.absent_reason("xgboost", "goss")
    assert registry.absent_reason("xgboost", "ohem") is None


def test_compare_runs_ohem_and_goss_and_says_why_a_row_is_absent(tmp_path, capsys):
    import json

    from boostloss.cli import main

    out = tmp_path / "results.json"
    argv = [
        "compare",
        "--losses",
        "logistic,ohem,goss",
        "--rounds",
        "3",
        "--folds",
        "2",
        "--quiet",
        "--output",
        str(out),
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "OHEM (ratio 3)" in text and "logistic + GOSS" in text
    assert "no xgboost row for logistic + GOSS" in text and "gradient_based" in text
    rows = {(r["backend"], r["loss"]) for r in json.loads(out.read_text())["summary"]}
    assert rows == {
        ("xgboost", "logistic"),
        ("xgboost", "ohem"),
        ("lightgbm", "logistic"),
        ("lightgbm", "ohem"),
        ("lightgbm", "goss"),
    }
