"""Losses, adapter callables and estimators survive pickle, cloudpickle and joblib.

A round trip gives an object whose outputs are identical to the original's, GHM's running counts
included; the estimators work in ``GridSearchCV(n_jobs=2)`` (worker processes receive pickles).
"""

import io
import pickle
from copy import deepcopy

import cloudpickle
import joblib
import numpy as np
import pytest
from conftest import LOSSES
from sklearn.base import clone

from boostloss import FocalLoss, GHMLoss, OHEMLoss


def _pickle(obj):
    return pickle.loads(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _pickle_v2(obj):
    return pickle.loads(pickle.dumps(obj, protocol=2))


def _cloudpickle(obj):
    return cloudpickle.loads(cloudpickle.dumps(obj))


def _joblib(obj):
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    buffer.seek(0)
    return joblib.load(buffer)


ROUND_TRIPS = {
    "pickle": _pickle,
    "pickle_protocol2": _pickle_v2,
    "cloudpickle": _cloudpickle,
    "joblib": _joblib,
}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    n = 500
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] + 0.5 * rng.normal(size=n) > 0.8).astype(np.float64)
    margins = rng.normal(-1.0, 2.0, n)
    w = rng.uniform(0.2, 3.0, n)
    return X, y, margins, w


def loss_outputs(loss, y, x, w):
    return [loss.loss(y, x, w), *loss.gradient_hessian(y, x, w), np.array([loss.init_score(y, w)])]


@pytest.mark.parametrize("trip", sorted(ROUND_TRIPS))
@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_loss_round_trip(loss_name, trip, data):
    _, y, x, w = data
    original = LOSSES[loss_name]()
    copy = ROUND_TRIPS[trip](original)
    assert type(copy) is type(original) and copy.get_params() == original.get_params()
    for a, b in zip(
        loss_outputs(copy, y, x, w), loss_outputs(LOSSES[loss_name](), y, x, w), strict=True
    ):
        np.testing.assert_array_equal(a, b, strict=True)


@pytest.mark.parametrize("trip", sorted(ROUND_TRIPS))
def test_ghm_running_counts_survive_round_trip(trip, data):
    """A GHM loss pickled in the middle of a training continues exactly as the original."""
    _, y, x, w = data
    original = GHMLoss(bins=10, momentum=0.75)
    original.gradient_hessian(y, x, w)
    original.gradient_hessian(y, 0.5 * x, w)
    copy = ROUND_TRIPS[trip](original)
    np.testing.assert_array_equal(copy.running_counts_, original.running_counts_)
    for a, b in zip(
        copy.gradient_hessian(y, -x, w), original.gradient_hessian(y, -x, w), strict=True
    ):
        np.testing.assert_array_equal(a, b, strict=True)
    # The two now have separate states.
    copy.reset()
    assert copy.running_counts_ is None and original.running_counts_ is not None


# The state of direct calls (``state_``): one rule for every loss. --------------------------

#: Every kind of loss state: none (focal), GHM-C's running counts (and none for its window
#: density), OHEM's tie keys and selection; binary and K-class margins.
DIRECT_CALLS = {
    "focal": (lambda: FocalLoss(gamma=2.0, alpha=0.25), 1),
    "ghm_bins_momentum": (lambda: GHMLoss(bins=10, momentum=0.75), 1),
    "ghm_window": (lambda: GHMLoss(density="window", epsilon=0.2), 1),
    "ghm_3_classes_momentum": (lambda: GHMLoss(bins=8, momentum=0.5), 3),
    "ohem": (lambda: OHEMLoss(ratio=1.5, random_state=4), 1),
    "ohem_3_classes": (lambda: OHEMLoss(ratio=0.5, negative_class=0), 3),
}

COPIES = dict(ROUND_TRIPS, deepcopy=deepcopy)


def _rounds(y, n_classes, count, seed):
    """``count`` margin arrays for the labels ``y`` (binary, or K-class rows)."""
    rng = np.random.default_rng(seed)
    shape = y.shape if n_classes == 1 else (y.shape[0], n_classes)
    return [rng.normal(-0.5, 2.0, shape) for _ in range(count)]


def _direct_call_data(n_classes, data):
    _, y, _, w = data
    if n_classes > 1:
        y = np.random.default_rng(5).integers(0, n_classes, y.shape[0]).astype(np.float64)
    return y, w


def _outputs_of_rounds(loss, y, w, rounds):
    out = []
    for x in rounds:
        out.extend(loss.gradient_hessian(y, x, w))
        out.append(loss.loss(y, x, w))
    return out


def _assert_all_equal(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v, strict=True)


@pytest.mark.parametrize("name", sorted(DIRECT_CALLS))
def test_direct_call_state_is_the_visible_state_attribute(name, data):
    """No hidden training state: besides its parameters a loss holds only ``state_``, None until
    a direct gradient_hessian call makes it with new_state(), None again after reset()."""
    make, n_classes = DIRECT_CALLS[name]
    y, w = _direct_call_data(n_classes, data)
    loss = make()
    assert loss.state_ is None and set(vars(loss)) == set(loss.get_params())
    loss.loss(y, _rounds(y, n_classes, 1, 0)[0], w)  # a loss evaluation starts no training
    assert loss.state_ is None
    loss.gradient_hessian(y, _rounds(y, n_classes, 1, 0)[0], w)
    fresh = make().new_state()
    assert set(vars(loss)) <= set(loss.get_params()) | {"state_"}
    if fresh is None:
        assert loss.state_ is None
    else:
        assert type(loss.state_) is type(fresh)
    assert loss.reset() is loss and loss.state_ is None


@pytest.mark.parametrize("calls", [0, 2], ids=["before_calls", "after_calls"])
@pytest.mark.parametrize("trip", sorted(COPIES))
@pytest.mark.parametrize("name", sorted(DIRECT_CALLS))
def test_copies_continue_the_direct_calls_training(name, trip, calls, data):
    """Pickled (or copied) before or after direct calls, every loss continues exactly as the
    original does, with a state of its own."""
    make, n_classes = DIRECT_CALLS[name]
    y, w = _direct_call_data(n_classes, data)
    history, later = _rounds(y, n_classes, calls, 1), _rounds(y, n_classes, 2, 2)
    original, reference = make(), make()
    _outputs_of_rounds(original, y, w, history)
    _outputs_of_rounds(reference, y, w, history)
    state = original.state_
    copy = COPIES[trip](original)
    assert original.state_ is state  # copying leaves the original alone
    assert type(copy) is type(original) and copy.get_params() == original.get_params()
    assert (copy.state_ is None) == (state is None)
    assert copy.state_ is None or copy.state_ is not original.state_
    expected = _outputs_of_rounds(reference, y, w, later)
    _assert_all_equal(_outputs_of_rounds(copy, y, w, later), expected)
    # The copy's rounds left the original's state alone.
    _assert_all_equal(_outputs_of_rounds(original, y, w, later), expected)
    for attribute in ("running_counts_", "kept_"):
        if hasattr(original, attribute):
            np.testing.assert_array_equal(getattr(copy, attribute), getattr(original, attribute))


@pytest.mark.parametrize("name", sorted(DIRECT_CALLS))
def test_clone_starts_a_new_training(name, data):
    """clone() (and set_params) forget the direct calls' state; the original keeps it."""
    make, n_classes = DIRECT_CALLS[name]
    y, w = _direct_call_data(n_classes, data)
    history, later = _rounds(y, n_classes, 2, 3), _rounds(y, n_classes, 2, 4)
    original, reference = make(), make()
    _outputs_of_rounds(original, y, w, history)
    _outputs_of_rounds(reference, y, w, history)
    copy = clone(original)
    assert copy.state_ is None and copy.get_params() == original.get_params()
    _assert_all_equal(
        _outputs_of_rounds(copy, y, w, later), _outputs_of_rounds(make(), y, w, later)
    )
    _assert_all_equal(
        _outputs_of_rounds(original, y, w, later), _outputs_of_rounds(reference, y, w, later)
    )
    original.set_params(**original.get_params())
    assert original.state_ is None


@pytest.mark.parametrize("trip", sorted(ROUND_TRIPS))
def test_invalid_parameters_survive_round_trip(trip):
    """Unvalidated parameters are stored as given and still raise after a round trip."""
    copy = ROUND_TRIPS[trip](FocalLoss(gamma=-1.0))
    with pytest.raises(ValueError, match=r"gamma must be in .*got -1\.0"):
        copy.gradient_hessian([0, 1], [0.0, 0.0])


# --------------------------------------------------------------------------------------------
# Adapter callables
# --------------------------------------------------------------------------------------------


def _xgb_callables(loss, X, y, w):
    import xgboost as xgb

    import boostloss.xgboost as blx

    dtrain = xgb.DMatrix(X, label=y, weight=w)
    x32 = np.linspace(-3, 3, y.size).astype(np.float32)
    return [
        (blx.objective(loss), lambda f: f(x32, dtrain)),
        (blx.metric(loss), lambda f: f(x32, dtrain)),
        (blx.sklearn_objective(loss), lambda f: f(y, x32, sample_weight=w)),
        (blx.sklearn_metric(loss), lambda f: f(y, x32, sample_weight=w)),
    ]


def _lgb_callables(loss, X, y, w):
    import lightgbm as lgb

    import boostloss.lightgbm as bll

    train = lgb.Dataset(X, label=y, weight=w, free_raw_data=False).construct()
    x64 = np.linspace(-3, 3, y.size)
    return [
        (bll.objective(loss), lambda f: f(x64, train)),
        (bll.metric(loss), lambda f: f(x64, train)),
        (bll.sklearn_objective(loss), lambda f: f(y, x64, w)),
        (bll.sklearn_metric(loss), lambda f: f(y, x64, w)),
    ]


def _flatten(result):
    if isinstance(result, tuple):
        return [np.asarray(r) if not isinstance(r, str) else r for r in result]
    return [np.asarray(result)]


def _assert_same(a, b):
    for u, v in zip(_flatten(a), _flatten(b), strict=True):
        if isinstance(u, str):
            assert u == v
        else:
            np.testing.assert_array_equal(u, v, strict=True)


@pytest.mark.parametrize("trip", sorted(ROUND_TRIPS))
@pytest.mark.parametrize("loss_name", ["focal_exact", "ghm_bins_momentum"])
@pytest.mark.parametrize("framework", ["xgboost", "lightgbm"])
def test_adapter_callables_round_trip(framework, loss_name, trip, data):
    X, y, _, w = data
    make = _xgb_callables if framework == "xgboost" else _lgb_callables
    triples = zip(
        make(LOSSES[loss_name](), X, y, w),
        make(LOSSES[loss_name](), X, y, w),
        make(LOSSES[loss_name](), X, y, w),
        strict=True,
    )
    for (fresh, call), (used, _), (reference, _) in triples:
        copy = ROUND_TRIPS[trip](fresh)
        assert copy.__name__ == fresh.__name__ and type(copy) is type(fresh)
        _assert_same(call(copy), call(fresh))
        # In the middle of a training: callables keyed by a DMatrix / Dataset cannot pickle their
        # weak-keyed caches and come back as a fresh callable (GHM state starts anew); those fed
        # label arrays (the scikit-learn ones) carry their state and continue the training.
        call(used)
        call(reference)
        copy = ROUND_TRIPS[trip](used)
        expected = call(reference)
        if "Sklearn" not in type(used).__name__:
            expected = call(type(used)(LOSSES[loss_name]()))
        _assert_same(call(copy), expected)


# --------------------------------------------------------------------------------------------
# Estimators
# --------------------------------------------------------------------------------------------


def _estimator(kind, loss):
    import boostloss

    if kind == "xgb":
        return boostloss.XGBClassifier(loss=loss, n_estimators=8, max_depth=3, n_jobs=1)
    return boostloss.LGBMClassifier(loss=loss, n_estimators=8, num_leaves=7, n_jobs=1, verbose=-1)


@pytest.mark.parametrize("loss_name", ["focal_exact", "ghm_bins_momentum"])
@pytest.mark.parametrize("kind", ["xgb", "lgb"])
def test_estimator_round_trip(kind, loss_name, data):
    X, y, _, w = data
    labels = np.where(y == 1, "yes", "no")  # any label values
    fitted = _estimator(kind, LOSSES[loss_name]()).fit(X, labels, sample_weight=w)
    proba = fitted.predict_proba(X)
    predicted = fitted.predict(X)
    for trip in sorted(ROUND_TRIPS):
        copy = ROUND_TRIPS[trip](fitted)
        np.testing.assert_array_equal(copy.predict_proba(X), proba, strict=True)
        np.testing.assert_array_equal(copy.predict(X), predicted)
        assert copy.get_params()["loss"].get_params() == fitted.get_params()["loss"].get_params()
    # An unpickled (unfitted) estimator fits the same model.
    refit = _pickle(_estimator(kind, LOSSES[loss_name]())).fit(X, labels, sample_weight=w)
    np.testing.assert_array_equal(refit.predict_proba(X), proba, strict=True)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["xgb", "lgb"])
def test_grid_search_with_two_jobs(kind, data):
    from sklearn.model_selection import GridSearchCV

    X, y, _, _ = data
    grid = {"loss__gamma": [0.0, 2.0], "loss__alpha": [None, 0.25]}
    search = GridSearchCV(
        _estimator(kind, FocalLoss()),
        grid,
        cv=2,
        n_jobs=2,
        scoring="neg_log_loss",
        error_score="raise",
    )
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    # The parallel search equals a sequential one, and the refitted best model is usable.
    sequential = GridSearchCV(
        _estimator(kind, FocalLoss()),
        grid,
        cv=2,
        n_jobs=1,
        scoring="neg_log_loss",
        error_score="raise",
    ).fit(X, y)
    np.testing.assert_array_equal(
        search.cv_results_["mean_test_score"], sequential.cv_results_["mean_test_score"]
    )
    proba = search.predict_proba(X)
    assert proba.shape == (X.shape[0], 2) and np.allclose(proba.sum(axis=1), 1.0)
