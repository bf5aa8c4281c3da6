"""Models trained with boostloss, saved in the framework's own format, predict the same
probabilities when loaded by the plain framework (no boostloss at prediction time)."""

import json
import pickle

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from scipy.special import expit, softmax
from sklearn.datasets import make_classification

import boostloss
import boostloss.lightgbm as bll
import boostloss.xgboost as blx
from boostloss import FocalLoss, GHMLoss
from boostloss._frameworks import compat_xgboost as _compat_xgboost

LOSSES = [
    pytest.param(FocalLoss(gamma=2.0, alpha=0.25, hessian="exact"), id="focal-exact"),
    pytest.param(FocalLoss(gamma=2.0, alpha=0.25, hessian="gauss_newton"), id="focal-gauss_newton"),
    pytest.param(GHMLoss(bins=10), id="ghm-bins"),
    pytest.param(GHMLoss(density="window", epsilon=0.1), id="ghm-window"),
]

LGB_PARAMS = {
    "num_leaves": 7,
    "learning_rate": 0.3,
    "num_threads": 1,
    "verbose": -1,
    "seed": 0,
    "deterministic": True,
    "force_col_wise": True,
    "metric": "None",
}
XGB_PARAMS = {"max_depth": 3, "eta": 0.3, "nthread": 1, "seed": 0, "disable_default_eval_metric": 1}
ATOL = 1e-12


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(
        n_samples=1200, n_features=6, n_informative=3, weights=[0.9], flip_y=0.03, random_state=7
    )
    return X[:900], y[:900], X[900:], y[900:]


def header(path):
    """The header lines of a LightGBM model file (up to the first empty line)."""
    return path.read_text().split("\n\n", 1)[0].split("\n")


# LightGBM >= 4.7 reads Booster.params back from a model string too (before: from a file only);
# make_portable and the estimator's booster_ are Boosters made from a model string.
PARAMS_FROM_STRING = tuple(int(part) for part in lgb.__version__.split(".")[:2]) >= (4, 7)


def loaded_param(booster, name):
    """``booster.params[name]`` where LightGBM loads it from the model string, else None."""
    return booster.params[name] if PARAMS_FROM_STRING else booster.params.get(name)


def parameters(path):
    """The ``[name: value]`` lines of a LightGBM model file's parameters section, as a dict."""
    section = path.read_text().split("\nparameters:\n", 1)[1].split("\nend of parameters", 1)[0]
    pairs = (line[1:-1].partition(":") for line in section.split("\n"))
    return {name: value.strip() for name, _, value in pairs}


# ------------------------------------------------------------------------------------------------
# LightGBM, lgb.train + bll.make_portable
# ------------------------------------------------------------------------------------------------


def lgb_train(loss, X, y, rounds, valid=None, **kwargs):
    train_set = lgb.Dataset(X, label=y, params={"verbose": -1})
    valid_sets = [lgb.Dataset(*valid, params={"verbose": -1})] if valid is not None else []
    start = bll.set_init_score(loss, train_set, *valid_sets)
    params = dict(LGB_PARAMS, objective=bll.objective(loss), **kwargs.pop("params", {}))
    booster = lgb.train(
        params, train_set, rounds, valid_sets=valid_sets, feval=bll.metric(loss), **kwargs
    )
    return booster, start


@pytest.mark.parametrize("loss", LOSSES)
def test_lgb_saved_model_predicts_boostloss_probabilities(loss, data, tmp_path):
    X, y, X_test, _ = data
    booster, start = lgb_train(loss, X, y, 15)
    expected = bll.predict_proba(booster, X_test, start)
    raw = booster.predict(X_test, raw_score=True)
    margins = raw + start

    # The bug this guards against: the plain model file lacks the start and the sigmoid.
    booster.save_model(tmp_path / "raw.txt")
    unfixed = lgb.Booster(model_file=tmp_path / "raw.txt").predict(X_test)
    assert np.abs(unfixed - expected).max() > 0.1

    assert parameters(tmp_path / "raw.txt")["objective"] == "custom"

    portable = bll.make_portable(booster, start)
    portable.save_model(tmp_path / "m.txt")
    assert "objective=binary sigmoid:1" in header(tmp_path / "m.txt")
    # The parameters section says so too (Booster.params and converters such as onnxmltools
    # read it); the training's other parameters are kept.
    saved = parameters(tmp_path / "m.txt")
    assert (saved["objective"], saved["num_class"], saved["num_leaves"]) == ("binary", "1", "7")
    plain = lgb.Booster(model_file=tmp_path / "m.txt")
    assert plain.params["objective"] == "binary"
    assert loaded_param(portable, "objective") == ("binary" if PARAMS_FROM_STRING else None)
    np.testing.assert_allclose(plain.predict(X_test), expected, rtol=0, atol=ATOL)
    np.testing.assert_allclose(plain.predict(X_test, raw_score=True), margins, rtol=0, atol=ATOL)
    # The in-memory copy and a pickle of it agree; the trained booster is left as it was.
    np.testing.assert_allclose(portable.predict(X_test), expected, rtol=0, atol=ATOL)
    np.testing.assert_allclose(
        pickle.loads(pickle.dumps(portable)).predict(X_test), expected, rtol=0, atol=ATOL
    )
    np.testing.assert_array_equal(booster.predict(X_test, raw_score=True), raw)


@pytest.mark.parametrize("loss", LOSSES)
def test_lgb_early_stopping_saves_the_best_iteration(loss, data, tmp_path):
    X, y, X_valid, y_valid = data
    history = {}
    booster, start = lgb_train(
        loss,
        X,
        y,
        300,
        valid=(X_valid, y_valid),
        params={"num_leaves": 31, "min_data_in_leaf": 2, "learning_rate": 0.5},
        callbacks=[lgb.early_stopping(5, verbose=False), lgb.record_evaluation(history)],
    )
    rounds_run = len(history["valid_0"][loss.name])
    assert 0 < booster.best_iteration < rounds_run < 300  # it did stop early

    portable = bll.make_portable(booster, start)
    assert portable.best_iteration == booster.best_iteration
    assert portable.current_iteration() == booster.current_iteration()  # no tree dropped
    portable.save_model(tmp_path / "m.txt")
    plain = lgb.Booster(model_file=tmp_path / "m.txt")
    assert plain.current_iteration() == booster.best_iteration
    expected = bll.predict_proba(booster, X_valid, start)  # predict() uses best_iteration
    np.testing.assert_allclose(plain.predict(X_valid), expected, rtol=0, atol=ATOL)
    np.testing.assert_allclose(portable.predict(X_valid), expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("loss", LOSSES)
def test_lgb_continued_training_from_a_portable_model(loss, data, tmp_path):
    X, y, X_test, _ = data
    booster, start = lgb_train(loss, X, y, 8)
    portable = bll.make_portable(booster, start)
    portable.save_model(tmp_path / "first.txt")

    seen = []
    objective = bll.objective(loss)

    def spy(preds, train_set):
        seen.append(preds.copy())
        return objective(preds, train_set)

    # No set_init_score: LightGBM starts from the init model's margins, which hold the start.
    plain_set = lgb.Dataset(X, label=y, params={"verbose": -1})
    continued = lgb.train(
        dict(LGB_PARAMS, objective=spy), plain_set, 5, init_model=tmp_path / "first.txt"
    )
    np.testing.assert_allclose(seen[0], portable.predict(X, raw_score=True), rtol=0, atol=ATOL)
    assert continued.current_iteration() == 13

    straight, _ = lgb_train(loss, X, y, 13)
    margins = straight.predict(X_test, raw_score=True) + start
    np.testing.assert_allclose(
        continued.predict(X_test, raw_score=True), margins, rtol=0, atol=1e-9
    )

    bll.make_portable(continued, 0.0).save_model(tmp_path / "continued.txt")
    plain = lgb.Booster(model_file=tmp_path / "continued.txt")
    np.testing.assert_allclose(
        plain.predict(X_test), expit(continued.predict(X_test, raw_score=True)), rtol=0, atol=ATOL
    )

    # From the in-memory portable booster too.
    again = lgb.train(
        dict(LGB_PARAMS, objective=bll.objective(loss)),
        lgb.Dataset(X, label=y, params={"verbose": -1}),
        5,
        init_model=portable,
    )
    np.testing.assert_array_equal(
        again.predict(X_test, raw_score=True), continued.predict(X_test, raw_score=True)
    )


def test_lgb_predict_options(data):
    X, y, X_test, _ = data
    booster, start = lgb_train(FocalLoss(), X, y, 10)
    portable = bll.make_portable(booster, start)

    contrib = portable.predict(X_test, pred_contrib=True)
    contrib_raw = booster.predict(X_test, pred_contrib=True)
    np.testing.assert_allclose(contrib[:, :-1], contrib_raw[:, :-1], rtol=0, atol=ATOL)
    np.testing.assert_allclose(contrib[:, -1], contrib_raw[:, -1] + start, rtol=0, atol=ATOL)
    np.testing.assert_allclose(
        contrib.sum(axis=1), portable.predict(X_test, raw_score=True), rtol=0, atol=ATOL
    )

    np.testing.assert_allclose(
        portable.predict(X_test, raw_score=True, num_iteration=3),
        booster.predict(X_test, raw_score=True, num_iteration=3) + start,
        rtol=0,
        atol=ATOL,
    )
    # Starting after the first iteration leaves out the trees that hold the start.
    np.testing.assert_array_equal(
        portable.predict(X_test, raw_score=True, start_iteration=1),
        booster.predict(X_test, raw_score=True, start_iteration=1),
    )


def test_lgb_constant_and_empty_models(data, tmp_path):
    X, y, X_test, _ = data
    focal = FocalLoss()
    # A first tree without a split: LightGBM keeps a single-leaf tree and stops.
    constant, start = lgb_train(focal, X, y, 5, params={"min_gain_to_split": 1e12})
    assert constant.num_trees() == 1
    # No tree at all: a booster that was never updated.
    train_set = lgb.Dataset(X, label=y, params={"verbose": -1})
    empty = lgb.Booster(dict(LGB_PARAMS, objective="none"), train_set)
    assert empty.num_trees() == 0

    for name, booster in (("constant", constant), ("empty", empty)):
        bll.make_portable(booster, start).save_model(tmp_path / f"{name}.txt")
        plain = lgb.Booster(model_file=tmp_path / f"{name}.txt")
        assert plain.num_trees() == 1
        np.testing.assert_allclose(plain.predict(X_test, raw_score=True), start, rtol=0, atol=ATOL)
        np.testing.assert_allclose(plain.predict(X_test), expit(start), rtol=0, atol=ATOL)
        np.testing.assert_allclose(
            plain.predict(X_test, pred_contrib=True)[:, -1], start, rtol=0, atol=ATOL
        )


def softmax_cross_entropy(preds, train_set):
    """Multi-class cross-entropy on raw margins of shape (n, K), written out in numpy."""
    labels = train_set.get_label().astype(int)
    p = softmax(preds, axis=1)
    grad = p.copy()
    grad[np.arange(labels.shape[0]), labels] -= 1.0
    return grad, np.maximum(p * (1.0 - p), 1e-16)


def test_lgb_multiclass_portable(tmp_path):
    X, y = make_classification(
        n_samples=900,
        n_features=6,
        n_informative=4,
        n_classes=3,
        weights=[0.6, 0.3, 0.1],
        random_state=2,
    )
    prior = np.bincount(y) / y.shape[0]
    start = np.log(prior) - np.log(prior).mean()
    train_set = lgb.Dataset(
        X, label=y, init_score=np.tile(start, (y.shape[0], 1)), params={"verbose": -1}
    )
    booster = lgb.train(
        dict(LGB_PARAMS, objective=softmax_cross_entropy, num_class=3), train_set, 10
    )
    assert booster.num_model_per_iteration() == 3
    margins = booster.predict(X, raw_score=True) + start

    bll.make_portable(booster, start).save_model(tmp_path / "m.txt")
    assert "objective=multiclass num_class:3" in header(tmp_path / "m.txt")
    saved = parameters(tmp_path / "m.txt")
    assert (saved["objective"], saved["num_class"]) == ("multiclass", "3")
    plain = lgb.Booster(model_file=tmp_path / "m.txt")
    assert (plain.params["objective"], plain.params["num_class"]) == ("multiclass", 3)
    np.testing.assert_allclose(plain.predict(X, raw_score=True), margins, rtol=0, atol=ATOL)
    np.testing.assert_allclose(plain.predict(X), softmax(margins, axis=1), rtol=0, atol=ATOL)

    with pytest.raises(ValueError, match="3 margins"):
        bll.make_portable(booster, 0.5)

    # Without a tree, each class gets a single-leaf tree holding its start.
    empty = lgb.Booster(
        dict(LGB_PARAMS, objective="none", num_class=3),
        lgb.Dataset(X, label=y, params={"verbose": -1}),
    )
    plain = bll.make_portable(empty, start)
    assert plain.num_trees() == 3
    np.testing.assert_allclose(
        plain.predict(X[:5]), np.tile(softmax(start), (5, 1)), rtol=0, atol=ATOL
    )


def test_lgb_pandas_categorical_survives(tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(
        {
            "amount": rng.normal(size=800),
            "shop": pd.Categorical(rng.choice(["a", "b", "c", "d"], size=800)),
        }
    )
    y = ((frame["shop"].isin(["a", "c"])) & (frame["amount"] > 0.5)).astype(int).to_numpy()
    booster, start = lgb_train(
        FocalLoss(), frame, y, 10, params={"min_data_per_group": 5, "cat_smooth": 1.0}
    )
    assert booster.pandas_categorical is not None
    bll.make_portable(booster, start).save_model(tmp_path / "m.txt")
    plain = lgb.Booster(model_file=tmp_path / "m.txt")
    assert plain.pandas_categorical == booster.pandas_categorical
    np.testing.assert_allclose(
        plain.predict(frame), bll.predict_proba(booster, frame, start), rtol=0, atol=ATOL
    )


def test_plain_lgbm_classifier_loads_through_init_model(data, tmp_path):
    # lgb.LGBMClassifier has no loader for model files. fit(init_model=...) with one round that
    # cannot split keeps the loaded trees and nothing else (LightGBM drops a round without a split).
    X, y, X_test, _ = data
    booster, start = lgb_train(FocalLoss(), X, y, 10)
    bll.make_portable(booster, start).save_model(tmp_path / "m.txt")
    clf = lgb.LGBMClassifier(n_estimators=1, min_split_gain=1e12, verbose=-1)
    clf.fit(X, y, init_model=tmp_path / "m.txt")
    assert clf.booster_.current_iteration() == 10
    np.testing.assert_allclose(
        clf.predict_proba(X_test)[:, 1],
        bll.predict_proba(booster, X_test, start),
        rtol=0,
        atol=ATOL,
    )


def test_make_portable_rejects_what_it_cannot_fix(data):
    X, y, _, _ = data
    booster, start = lgb_train(FocalLoss(), X, y, 3)
    with pytest.raises(TypeError, match="lightgbm.Booster"):
        bll.make_portable("model.txt", start)
    with pytest.raises(ValueError, match="nan"):
        bll.make_portable(booster, float("nan"))
    with pytest.raises(ValueError, match="a float"):
        bll.make_portable(booster, [start, start])
    with pytest.raises(TypeError, match="real number"):
        bll.make_portable(booster, "0.5")
    # Already portable, or trained with a built-in objective: the start would be counted twice.
    with pytest.raises(ValueError, match="already stores objective"):
        bll.make_portable(bll.make_portable(booster, start), start)
    builtin = lgb.train(
        {"objective": "binary", "verbose": -1, "num_threads": 1},
        lgb.Dataset(X, label=y, params={"verbose": -1}),
        2,
    )
    with pytest.raises(ValueError, match="already stores objective"):
        bll.make_portable(builtin, start)
    linear, _ = lgb_train(FocalLoss(), X, y, 2, params={"linear_tree": True})
    with pytest.raises(ValueError, match="linear trees"):
        bll.make_portable(linear, start)


@pytest.mark.parametrize("loss", [FocalLoss(), GHMLoss()], ids=["focal", "ghm"])
def test_lgb_estimator_saved_model_predicts_its_probabilities(loss, data, tmp_path):
    X, y, X_test, _ = data
    clf = boostloss.LGBMClassifier(
        loss=loss, n_estimators=10, num_leaves=7, n_jobs=1, random_state=0, verbose=-1
    ).fit(X, y)
    clf.booster_.save_model(tmp_path / "m.txt")
    assert parameters(tmp_path / "m.txt")["objective"] == "binary"
    assert loaded_param(clf.booster_, "objective") == ("binary" if PARAMS_FROM_STRING else None)
    plain = lgb.Booster(model_file=tmp_path / "m.txt")
    # plain LightGBM serves the sigmoid of the margin; predict_proba is the loss's map of it (the
    # posterior for focal loss, tests/test_posterior.py checks the documented map on the reload)
    margin = clf.predict(X_test, raw_score=True)
    np.testing.assert_allclose(plain.predict(X_test), expit(margin), rtol=0, atol=ATOL)
    np.testing.assert_allclose(plain.predict(X_test, raw_score=True), margin, rtol=0, atol=ATOL)
    np.testing.assert_allclose(clf.predict_proba(X_test), loss.predict_proba(margin), rtol=1e-12)


# ------------------------------------------------------------------------------------------------
# XGBoost: xgb.train with objective="binary:logistic" in params, and the estimator
# ------------------------------------------------------------------------------------------------


def saved_objective(path):
    return json.loads(path.read_text())["learner"]["objective"]["name"]


def saved_base_score(path):
    """The stored base_score, a list (XGBoost 3 stores a vector, one value per output)."""
    value = json.loads(path.read_text())["learner"]["learner_model_param"]["base_score"]
    return [float(x) for x in value.strip("[]").split(",")]


@pytest.mark.parametrize("early_stopping", [False, True], ids=["all-rounds", "early-stopping"])
@pytest.mark.parametrize("loss", LOSSES)
def test_xgb_train_saved_model_predicts_boostloss_probabilities(
    loss, early_stopping, data, tmp_path
):
    X, y, X_valid, y_valid = data
    dtrain = xgb.DMatrix(X, label=y)
    dvalid = xgb.DMatrix(X_valid, label=y_valid)
    # The built-in objective in params gives the saved model its link (a custom obj= does not
    # replace it); base_score is then a probability.
    params = dict(
        XGB_PARAMS,
        objective="binary:logistic",
        base_score=blx.base_score(loss, dtrain, objective="binary:logistic"),
    )
    if early_stopping:
        params.update(max_depth=6, eta=0.8, min_child_weight=0)
    booster = xgb.train(
        params,
        dtrain,
        300 if early_stopping else 15,
        obj=blx.objective(loss),
        custom_metric=blx.metric(loss),
        evals=[(dvalid, "valid")],
        early_stopping_rounds=5 if early_stopping else None,
        verbose_eval=False,
    )
    rounds = booster.num_boosted_rounds()
    best = (0, booster.best_iteration + 1) if early_stopping else (0, rounds)
    if early_stopping:
        assert booster.best_iteration < rounds - 1  # it did stop early

    booster.save_model(tmp_path / "m.json")
    assert saved_objective(tmp_path / "m.json") == "binary:logistic"
    # The start is stored in the model, as the probability sigmoid(init_score).
    stored = saved_base_score(tmp_path / "m.json")
    np.testing.assert_allclose(stored, [expit(loss.init_score(y))], rtol=1e-6)
    dtest = xgb.DMatrix(X_valid)
    margins = booster.predict(dtest, output_margin=True, iteration_range=best)
    expected = booster.predict(dtest, iteration_range=best)
    np.testing.assert_allclose(expected, expit(margins.astype(np.float64)), rtol=0, atol=1e-6)
    plain = xgb.Booster(model_file=tmp_path / "m.json")
    np.testing.assert_array_equal(plain.predict(dtest, iteration_range=best), expected)
    clf = xgb.XGBClassifier()
    clf.load_model(tmp_path / "m.json")
    np.testing.assert_array_equal(clf.predict_proba(X_valid)[:, 1], expected)


@pytest.mark.parametrize("early_stopping", [False, True], ids=["all-rounds", "early-stopping"])
@pytest.mark.parametrize("loss", LOSSES)
def test_xgb_estimator_saved_model_predicts_its_probabilities(loss, early_stopping, data, tmp_path):
    X, y, X_valid, y_valid = data
    kwargs = dict(n_estimators=15, max_depth=3, n_jobs=1, random_state=0)
    fit_kwargs = {}
    if early_stopping:
        kwargs.update(
            n_estimators=300,
            max_depth=6,
            learning_rate=0.8,
            min_child_weight=0,
            early_stopping_rounds=5,
        )
        fit_kwargs = dict(eval_set=[(X_valid, y_valid)], verbose=False)
    clf = boostloss.XGBClassifier(loss=loss, **kwargs).fit(X, y, **fit_kwargs)
    if early_stopping:
        assert clf.best_iteration < clf.get_booster().num_boosted_rounds() - 1
    # XGBoost's own probabilities of the trained estimator: the sigmoid of the margin (for focal
    # loss the estimator's predict_proba is the posterior, its map of the margin)
    expected = xgb.XGBClassifier.predict_proba(clf, X_valid)
    margin = clf.predict(X_valid, output_margin=True)
    np.testing.assert_allclose(
        clf.predict_proba(X_valid),
        loss.predict_proba(margin),
        rtol=0,
        atol=1e-7 if isinstance(loss, GHMLoss) else 0,
    )

    clf.save_model(tmp_path / "m.json")
    assert saved_objective(tmp_path / "m.json") == "binary:logistic"
    plain = xgb.XGBClassifier()
    plain.load_model(tmp_path / "m.json")
    np.testing.assert_array_equal(plain.predict_proba(X_valid), expected)
    np.testing.assert_array_equal(plain.predict(X_valid), (expected[:, 1] > 0.5).astype(int))
    if isinstance(loss, GHMLoss):  # the map is the sigmoid: the same bits as the plain reload
        np.testing.assert_array_equal(clf.predict_proba(X_valid), expected)
        np.testing.assert_array_equal(plain.predict(X_valid), clf.predict(X_valid))
    best = (0, clf.best_iteration + 1) if early_stopping else (0, 0)
    booster = xgb.Booster(model_file=tmp_path / "m.json")
    np.testing.assert_array_equal(
        booster.predict(xgb.DMatrix(X_valid), iteration_range=best), expected[:, 1]
    )


@pytest.mark.parametrize("loss", ["focal", "ghm"])
def test_lgb_estimator_continued_training_matches_one_training(loss, data, tmp_path):
    """init_model= from a self-contained model: the start is not counted twice."""
    X, y, X_test, _ = data
    kwargs = dict(loss=loss, num_leaves=7, n_jobs=1, random_state=0, verbose=-1)
    first = boostloss.LGBMClassifier(n_estimators=6, **kwargs).fit(X, y)
    continued = boostloss.LGBMClassifier(n_estimators=4, **kwargs).fit(
        X, y, init_model=first.booster_
    )
    straight = boostloss.LGBMClassifier(n_estimators=10, **kwargs).fit(X, y)
    np.testing.assert_allclose(
        continued.predict_proba(X_test), straight.predict_proba(X_test), rtol=0, atol=1e-12
    )
    continued.booster_.save_model(tmp_path / "m.txt")
    plain = lgb.Booster(model_file=tmp_path / "m.txt")
    np.testing.assert_allclose(
        plain.predict(X_test), expit(straight.predict(X_test, raw_score=True)), rtol=0, atol=ATOL
    )


# ------------------------------------------------------------------------------------------------
# K classes: the softmax link and the K-vector start stored in the model
# ------------------------------------------------------------------------------------------------

MULTI_LOSSES = [
    pytest.param(FocalLoss(gamma=2.0, alpha=None), id="focal"),
    pytest.param(
        FocalLoss(gamma=1.0, alpha=[1.0, 2.0, 4.0], hessian="gauss_newton"), id="focal-alpha-gn"
    ),
    pytest.param(GHMLoss(bins=10), id="ghm-bins"),
]


@pytest.fixture(scope="module")
def data3():
    X, y = make_classification(
        n_samples=1000,
        n_features=6,
        n_informative=4,
        n_classes=3,
        weights=[0.7, 0.2, 0.1],
        random_state=5,
    )
    return X[:800], y[:800], X[800:], y[800:]


@pytest.mark.parametrize("loss", MULTI_LOSSES)
@pytest.mark.skipif(
    not _compat_xgboost.takes_vector_base_score(),
    reason="a K-class base_score (stored in the model) needs XGBoost >= 3.1",
)
def test_k_class_xgb_train_saved_model_predicts_boostloss_probabilities(loss, data3, tmp_path):
    X, y, X_test, _ = data3
    dtrain = xgb.DMatrix(X, label=y)
    start = blx.base_score(loss, dtrain, objective="multi:softprob", n_classes=3)
    params = dict(XGB_PARAMS, objective="multi:softprob", num_class=3, base_score=start)
    booster = xgb.train(params, dtrain, 10, obj=blx.objective(loss))
    booster.save_model(tmp_path / "m.json")
    assert saved_objective(tmp_path / "m.json") == "multi:softprob"
    np.testing.assert_allclose(saved_base_score(tmp_path / "m.json"), start, rtol=1e-6)
    dtest = xgb.DMatrix(X_test)
    margins = booster.predict(dtest, output_margin=True).astype(np.float64)
    plain = xgb.Booster(model_file=tmp_path / "m.json")
    np.testing.assert_allclose(plain.predict(dtest), softmax(margins, axis=1), rtol=0, atol=1e-6)


@pytest.mark.parametrize("loss", MULTI_LOSSES)
def test_k_class_lgb_train_portable_model(loss, data3, tmp_path):
    X, y, X_test, _ = data3
    train_set = lgb.Dataset(X, label=y, params={"verbose": -1})
    start = bll.set_init_score(loss, train_set, n_classes=3)
    booster = lgb.train(dict(LGB_PARAMS, num_class=3, objective=bll.objective(loss)), train_set, 10)
    expected = bll.predict_proba(booster, X_test, start)
    bll.make_portable(booster, start).save_model(tmp_path / "m.txt")
    assert "objective=multiclass num_class:3" in header(tmp_path / "m.txt")
    plain = lgb.Booster(model_file=tmp_path / "m.txt")
    np.testing.assert_allclose(plain.predict(X_test), expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("loss", MULTI_LOSSES)
def test_k_class_estimators_saved_models_predict_their_probabilities(loss, data3, tmp_path):
    X, y, X_test, _ = data3
    names = np.array(["low", "mid", "high"])[y]
    clf = boostloss.XGBClassifier(
        loss=loss, n_estimators=10, max_depth=3, n_jobs=1, random_state=0
    ).fit(X, names)
    clf.save_model(tmp_path / "m.json")
    assert saved_objective(tmp_path / "m.json") == "multi:softprob"
    plain = xgb.XGBClassifier()
    plain.load_model(tmp_path / "m.json")
    start = None  # XGBoost >= 3.1: the start is stored in the model
    # XGBoost's own probabilities of the trained estimator: the softmax of the margins (for focal
    # loss the estimator's predict_proba is the posterior, its map of the margins)
    own = xgb.XGBClassifier.predict_proba(
        clf,
        X_test,
        base_margin=np.tile(clf.init_score_, (X_test.shape[0], 1))
        if not _compat_xgboost.takes_vector_base_score()
        else None,
    )
    if not _compat_xgboost.takes_vector_base_score():  # before, it is passed as base_margin
        start = np.tile(clf.init_score_, (X_test.shape[0], 1))
        assert not np.allclose(plain.predict_proba(X_test), own)
    np.testing.assert_array_equal(plain.predict_proba(X_test, base_margin=start), own)
    np.testing.assert_allclose(
        clf.predict_proba(X_test),
        loss.predict_proba(clf.predict(X_test, output_margin=True)),
        rtol=0,
        atol=1e-7 if isinstance(loss, GHMLoss) else 0,
    )
    np.testing.assert_array_equal(
        clf.classes_[plain.predict(X_test, base_margin=start)], clf.classes_[own.argmax(axis=1)]
    )

    clf = boostloss.LGBMClassifier(
        loss=loss, n_estimators=10, num_leaves=7, n_jobs=1, random_state=0, verbose=-1
    ).fit(X, names)
    clf.booster_.save_model(tmp_path / "m.txt")
    assert loaded_param(clf.booster_, "objective") == ("multiclass" if PARAMS_FROM_STRING else None)
    saved = parameters(tmp_path / "m.txt")
    assert (saved["objective"], saved["num_class"]) == ("multiclass", "3")
    plain = lgb.Booster(model_file=tmp_path / "m.txt")
    margins = clf.predict(X_test, raw_score=True)
    np.testing.assert_allclose(plain.predict(X_test), softmax(margins, axis=1), rtol=0, atol=ATOL)
    np.testing.assert_allclose(clf.predict_proba(X_test), loss.predict_proba(margins), rtol=1e-12)
    np.testing.assert_array_equal(
        clf.classes_[clf.predict_proba(X_test).argmax(axis=1)], clf.predict(X_test)
    )
