"""The drop-in estimators: scikit-learn compatibility, probabilities, labels, weights, search."""

import inspect
import pickle
import warnings

import joblib
import lightgbm as lgb
import numpy as np
import pytest
import sklearn.utils
import xgboost as xgb
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from boostloss import FocalLoss, GHMLoss, LGBMClassifier, XGBClassifier

SMALL_XGB = dict(n_estimators=5, max_depth=3, n_jobs=1, random_state=0)
SMALL_LGB = dict(n_estimators=5, num_leaves=7, n_jobs=1, random_state=0, verbose=-1)


def make(cls, loss, **kwargs):
    return cls(loss=loss, **(SMALL_XGB if cls is XGBClassifier else SMALL_LGB), **kwargs)


# Checks that cannot pass, with the reason (also listed in the README). None at present: the
# multi-class checks run with the loss (softmax), and LightGBM's abort on a training set without
# a usable feature is worked around.
EXPECTED_FAILED = {}

# No verbose=-1 for the checks: LightGBM keeps it as an attribute outside its __init__ signature,
# which check_no_attributes_set_in_init reports (lightgbm.LGBMClassifier(verbose=-1) fails it too).
# alpha=None: the checks train on 3 classes too, where a float alpha (binary only) is an error.
CHECKED = [
    make(XGBClassifier, FocalLoss(alpha=None)),
    LGBMClassifier(
        loss=FocalLoss(alpha=None), n_estimators=5, num_leaves=7, n_jobs=1, random_state=0
    ),
]


def _tags(estimator):
    """(multi-class, multi-label) as scikit-learn's checks read them (``_more_tags`` before 1.6)."""
    if hasattr(sklearn.utils, "get_tags"):
        tags = sklearn.utils.get_tags(estimator).classifier_tags
        return tags.multi_class, tags.multi_label
    from sklearn.utils._tags import _safe_tags

    return not _safe_tags(estimator, key="binary_only"), _safe_tags(estimator, key="multilabel")


def test_the_checks_run_multi_class_with_a_loss():
    for estimator in CHECKED:
        assert _tags(estimator) == (True, False)
    # Without a loss, XGBoost's multi-label support is kept.
    assert _tags(make(XGBClassifier, None)) == (True, True)


# ``expected_failed_checks`` exists from scikit-learn 1.6 on; before, the test marks them itself.
CHECKS_OPTIONS = (
    {"expected_failed_checks": lambda est: EXPECTED_FAILED}
    if "expected_failed_checks" in inspect.signature(parametrize_with_checks).parameters
    else {}
)

# scikit-learn < 1.6 only: check_classifiers_classes also asked that the prediction on its
# 20-row training set hold both classes (dropped in 1.6, scikit-learn PR 29872). With
# min_child_samples=20 LightGBM can make no split there and predicts the constant start, a tie
# on balanced classes; lightgbm.LGBMClassifier's built-in objective fails the same way.
EXPECTED_FAILED_BEFORE_1_6 = {
    (
        "LGBMClassifier",
        "check_classifiers_classes",
    ): "scikit-learn < 1.6 asks a 20-row training set to be fitted, LightGBM cannot split it",
}


@parametrize_with_checks(CHECKED, **CHECKS_OPTIONS)
def test_sklearn_compatible(estimator, check):
    name = getattr(check, "func", check).__name__
    if not CHECKS_OPTIONS and name in EXPECTED_FAILED:
        pytest.xfail(EXPECTED_FAILED[name])
    reason = (
        None if CHECKS_OPTIONS else EXPECTED_FAILED_BEFORE_1_6.get((type(estimator).__name__, name))
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if reason is None:
            check(estimator)
            return
        with pytest.raises(AssertionError):
            check(estimator)
    pytest.xfail(reason)


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(
        n_samples=1200, n_features=8, weights=[0.92], flip_y=0.01, random_state=3
    )
    return X, y


CLASSES = [XGBClassifier, LGBMClassifier]


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("loss", [FocalLoss(), GHMLoss(momentum=0.5)])
def test_probabilities_labels_and_init_score(cls, loss, data):
    X, y = data
    labels = np.where(y == 1, "fraud", "ok")
    clf = make(cls, loss)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "returning raw scores" warning
        clf.fit(X, labels)
        proba = clf.predict_proba(X)
    assert proba.shape == (y.shape[0], 2)
    assert np.all((proba > 0) & (proba < 1))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert list(clf.classes_) == ["fraud", "ok"]
    pred = clf.predict(X)
    assert set(pred) <= {"fraud", "ok"}
    np.testing.assert_array_equal(pred, clf.classes_[np.argmax(proba, axis=1)])
    # "fraud" sorts first, so the loss's positive class is "ok" (encoded 1).
    assert clf.init_score_ == pytest.approx(clone(loss).init_score((labels == "ok").astype(int)))
    if cls is XGBClassifier:
        margin = clf.predict(X, output_margin=True)
    else:
        margin = clf.predict(X, raw_score=True)
    # predict_proba is the loss's map of the margins: the posterior for focal loss, the sigmoid
    # (a score) for GHM-C.
    sigmoid = 1.0 / (1.0 + np.exp(-margin.astype(np.float64)))
    if isinstance(loss, GHMLoss):  # the sigmoid, the framework's own (XGBoost's in float32)
        np.testing.assert_allclose(proba[:, 1], sigmoid, rtol=1e-6)
    else:
        np.testing.assert_array_equal(proba, clone(loss).predict_proba(margin))
        assert np.max(np.abs(proba[:, 1] - sigmoid)) > 0.05


@pytest.mark.parametrize(
    "cls, native", [(XGBClassifier, xgb.XGBClassifier), (LGBMClassifier, lgb.LGBMClassifier)]
)
def test_loss_none_is_the_framework_estimator(cls, native, data):
    X, y = data
    ours = make(cls, None).fit(X, y).predict_proba(X)
    params = dict(SMALL_XGB if cls is XGBClassifier else SMALL_LGB)
    theirs = native(**params).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("cls", CLASSES)
def test_custom_logistic_matches_builtin_estimator(cls, data):
    X, y = data
    w = np.random.default_rng(0).uniform(0.5, 2.0, size=y.shape[0])
    logistic = make(cls, FocalLoss(gamma=0.0, alpha=None)).fit(X, y, sample_weight=w)
    if cls is XGBClassifier:
        start = 1.0 / (1.0 + np.exp(-logistic.init_score_))
        builtin = make(cls, None, base_score=start).fit(X, y, sample_weight=w)
    else:
        builtin = make(cls, None).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(logistic.predict_proba(X), builtin.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize("cls", CLASSES)
def test_sample_weight_is_honoured(cls, data):
    X, y = data
    w = np.where(y == 1, 5.0, 1.0)
    focal = FocalLoss()
    weighted = make(cls, focal).fit(X, y, sample_weight=w)
    assert weighted.init_score_ == pytest.approx(focal.init_score(y, w))
    assert not np.allclose(weighted.predict_proba(X), make(cls, focal).fit(X, y).predict_proba(X))


@pytest.mark.parametrize("cls", CLASSES)
def test_early_stopping_uses_the_loss_metric(cls, data):
    X, y = data
    Xtr, ytr, Xva, yva = X[:800], y[:800], X[800:], y[800:]
    if cls is XGBClassifier:
        clf = cls(
            loss=FocalLoss(),
            n_estimators=300,
            learning_rate=0.8,
            max_depth=6,
            n_jobs=1,
            early_stopping_rounds=5,
        )
        clf.fit(Xtr, ytr, eval_set=[(Xva, yva)], verbose=False)
        curve = clf.evals_result()["validation_0"]["focal"]
        best = clf.best_iteration
    else:
        clf = cls(
            loss=FocalLoss(),
            n_estimators=300,
            learning_rate=0.8,
            n_jobs=1,
            verbose=-1,
            min_child_samples=2,
        )
        clf.fit(Xtr, ytr, eval_X=Xva, eval_y=yva, callbacks=[lgb.early_stopping(5, verbose=False)])
        curve = clf.evals_result_["valid_0"]["focal"]
        assert list(clf.evals_result_["valid_0"]) == ["focal"]  # binary_logloss is disabled
        best = clf.best_iteration_ - 1
    assert best == int(np.argmin(curve)) and len(curve) == best + 6 < 300
    # The first evaluation is the loss at the starting margin: the validation set starts there too.
    start = np.full(yva.shape[0], clf.init_score_)
    assert curve[0] < FocalLoss().loss(yva, start).mean()


@pytest.mark.parametrize("cls", CLASSES)
def test_clone_pickle_joblib(cls, data, tmp_path):
    X, y = data
    clf = make(cls, GHMLoss(momentum=0.5)).fit(X, y)
    expected = clf.predict_proba(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X), expected)
    joblib.dump(clf, tmp_path / "model.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "model.joblib").predict_proba(X), expected)
    fresh = clone(clf)
    assert fresh.loss is not clf.loss and fresh.loss.get_params() == clf.loss.get_params()
    np.testing.assert_array_equal(fresh.fit(X, y).predict_proba(X), expected)
    np.testing.assert_array_equal(clf.fit(X, y).predict_proba(X), expected)  # refit: no state


@pytest.mark.parametrize("cls", CLASSES)
def test_grid_search_over_loss_params_in_a_pipeline(cls, data):
    X, y = data
    pipe = make_pipeline(StandardScaler(), make(cls, FocalLoss()))
    name = pipe.steps[-1][0]
    params = pipe.get_params()
    assert f"{name}__loss__gamma" in params and f"{name}__n_estimators" in params
    search = GridSearchCV(
        pipe, {f"{name}__loss__gamma": [0.0, 2.0]}, cv=2, scoring="average_precision"
    )
    search.fit(X, y)
    gammas = [p[f"{name}__loss__gamma"] for p in search.cv_results_["params"]]
    assert gammas == [0.0, 2.0]
    assert search.best_estimator_[-1].loss.gamma in (0.0, 2.0)
    direct = GridSearchCV(make(cls, FocalLoss()), {"loss__gamma": [1.0]}, cv=2).fit(X, y)
    assert direct.best_estimator_.loss.gamma == 1.0


@pytest.mark.parametrize("cls", CLASSES)
def test_set_params_and_errors(cls, data):
    X, y = data
    clf = make(cls, FocalLoss())
    clf.set_params(loss__gamma=0.5, n_estimators=3)
    assert clf.loss.gamma == 0.5 and clf.get_params()["n_estimators"] == 3
    with pytest.raises(ValueError, match="loss is None"):
        make(cls, None).set_params(loss__gamma=1.0)
    with pytest.raises(ValueError, match=r"alpha=0\.5 is a binary weight.*3 classes"):
        make(cls, FocalLoss(alpha=0.5)).fit(X, np.arange(y.shape[0]) % 3)
    with pytest.raises(ValueError, match="gamma"):
        make(cls, FocalLoss(gamma=-2.0)).fit(X, y)
    multi = make(cls, None).fit(X, np.arange(y.shape[0]) % 3)
    assert multi.predict_proba(X).shape == (y.shape[0], 3)


@pytest.mark.parametrize("cls", CLASSES)
def test_ghm_early_stopping_watches_the_cross_entropy(cls, data):
    # GHM-C's own loss grows as the classes separate (the density re-weighting), so the default
    # eval metric of a GHM model is the cross-entropy on margins, named "logloss".
    X, y = data
    Xtr, ytr, Xva, yva = X[:800], y[:800], X[800:], y[800:]
    clf = cls(loss=GHMLoss(), n_estimators=200, learning_rate=0.1, n_jobs=1)
    if cls is XGBClassifier:
        clf.set_params(early_stopping_rounds=10)
        clf.fit(Xtr, ytr, eval_set=[(Xva, yva)], verbose=False)
        curve = clf.evals_result()["validation_0"]["logloss"]
        best = clf.best_iteration
    else:
        clf.fit(Xtr, ytr, eval_X=Xva, eval_y=yva, callbacks=[lgb.early_stopping(10, verbose=False)])
        curve = clf.evals_result_["valid_0"]["logloss"]
        best = clf.best_iteration_ - 1
    p = clf.predict_proba(Xva)[:, 1]
    ce = -np.mean(np.where(yva == 1, np.log(p), np.log1p(-p)))
    assert best >= 5
    assert curve[best] == pytest.approx(min(curve))
    assert curve[best] == pytest.approx(ce, rel=1e-4)


@pytest.mark.parametrize(
    "X",
    [np.ones((40, 3)), np.random.default_rng(0).normal(size=(30, 2))],
    ids=["constant-features", "fewer-than-2-min-child-samples"],
)
def test_lgbm_without_a_usable_feature_is_the_constant_model(X):
    # LightGBM aborts ("num_features() > 0") with a callable objective when no feature can be used;
    # like its built-in objective, the estimator must give the constant model instead.
    y = np.arange(X.shape[0]) % 3 == 0
    clf = make(LGBMClassifier, FocalLoss()).fit(X, y)
    assert clf.init_score_ == pytest.approx(FocalLoss().init_score(y.astype(int)))
    np.testing.assert_allclose(clf.predict(X, raw_score=True), clf.init_score_)
    # the focal best constant's posterior is the observed rate
    np.testing.assert_allclose(clf.predict_proba(X)[:, 1], y.mean(), rtol=1e-9)


@pytest.mark.parametrize("cls", CLASSES)
def test_decision_function_and_errors_follow_sklearn(cls, data):
    X, y = data
    clf = make(cls, FocalLoss()).fit(X, y)
    # The margins, start included: XGBoost's output_margin; LightGBM's decision_function (which
    # boostloss defines for LightGBM < 4.7 too) and raw_score.
    if cls is XGBClassifier:
        margin = clf.predict(X, output_margin=True)
    else:
        margin = clf.predict(X, raw_score=True)
    proba = clf.predict_proba(X)
    np.testing.assert_array_equal(proba, FocalLoss().predict_proba(margin))
    np.testing.assert_array_equal(clf.predict(X), (proba[:, 1] > 0.5).astype(int))
    if cls is LGBMClassifier:
        # decision_function: the posterior log-odds, whose sign is predict (sklearn's contract)
        decision = clf.decision_function(X)
        np.testing.assert_allclose(
            decision, np.log(proba[:, 1] / proba[:, 0]), rtol=1e-12, atol=1e-12
        )
        np.testing.assert_array_equal(clf.predict(X), (decision > 0).astype(int))
    with pytest.raises(ValueError, match="one class"):
        make(cls, FocalLoss()).fit(X, np.zeros(y.shape[0]))
