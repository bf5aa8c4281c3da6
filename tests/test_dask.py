"""Training on a Dask cluster: GHM-C's density, the metrics and the start are global.

One LocalCluster of two worker processes for the module. The partitions are pinned to the workers
and deliberately skewed (worker 1 has no positive at all), and the features are small integers, so
that XGBoost's sketch cuts are the same as in one process and any difference comes from the loss.
"""

import os
import pickle

import numpy as np
import pytest
import xgboost as xgb

# The dask extra (in `dev`) brings them; the floors environment runs without it.
da = pytest.importorskip(
    "dask.array", reason="Dask is not installed (pip install 'focal-ghm-boost[dask]')"
)
distributed = pytest.importorskip("distributed", reason="Dask's distributed is not installed")
pytest.importorskip("xgboost.dask", reason="xgboost.dask needs dask.dataframe")
Client, LocalCluster = distributed.Client, distributed.LocalCluster

import boostloss.dask as bld
import boostloss.xgboost as blx
from boostloss import FocalLoss, GHMLoss, OHEMLoss
from boostloss.dask import DaskLGBMClassifier, DaskXGBClassifier

PARAMS = {"tree_method": "hist", "max_depth": 3, "eta": 0.3, "max_bin": 16}
ROUNDS = 12


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as c,
    ):
        yield c


def _workers(client):
    return sorted(client.scheduler_info()["workers"])


def _pinned(client, pieces):
    """One dask array whose i-th block lives on worker i."""
    blocks = []
    for piece, worker in zip(pieces, _workers(client), strict=True):
        future = client.submit(lambda a: a, piece, workers=[worker], pure=False)
        blocks.append(da.from_delayed(future, shape=piece.shape, dtype=piece.dtype))
    return da.concatenate(blocks)


def _skewed(n0=1500, n1=1000, seed=0):
    """Worker 0: both classes; worker 1: negatives only. Integer features, integer weights."""
    rng = np.random.default_rng(seed)
    X = [rng.integers(0, 8, (n, 5)).astype(np.float32) for n in (n0, n1)]
    y0 = (X[0][:, 0] - 0.5 * X[0][:, 1] + rng.normal(size=n0) > 2.0).astype(np.float32)
    y = [y0, np.zeros(n1, dtype=np.float32)]
    w = [rng.integers(1, 4, n).astype(np.float32) for n in (n0, n1)]
    return X, y, w


def _train_both(client, loss, X, y, w, params=PARAMS):
    """(distributed margins, single-process margins, distributed history, single history)."""
    start = loss.init_score(np.concatenate(y), np.concatenate(w))
    params = dict(params, base_score=start)
    dtrain = xgb.dask.DaskDMatrix(
        client, _pinned(client, X), _pinned(client, y), weight=_pinned(client, w)
    )
    out = xgb.dask.train(
        client,
        params,
        dtrain,
        ROUNDS,
        obj=blx.objective(loss),
        custom_metric=blx.metric(loss),
        evals=[(dtrain, "train")],
        verbose_eval=False,
    )
    X_all = np.concatenate(X)
    d_all = xgb.DMatrix(X_all, np.concatenate(y), weight=np.concatenate(w))
    history = {}
    single = xgb.train(
        params,
        d_all,
        ROUNDS,
        obj=blx.objective(loss),
        custom_metric=blx.metric(loss),
        evals=[(d_all, "train")],
        evals_result=history,
        verbose_eval=False,
    )
    grid = xgb.DMatrix(X_all)
    return (
        out["booster"].predict(grid, output_margin=True),
        single.predict(grid, output_margin=True),
        out["history"]["train"][loss.name],
        history["train"][loss.name],
    )


@pytest.mark.parametrize(
    "loss",
    [GHMLoss(bins=10), GHMLoss(bins=7, momentum=0.6), FocalLoss(gamma=2.0, alpha=0.25)],
    ids=repr,
)
def test_distributed_training_equals_one_process(client, loss):
    X, y, w = _skewed()
    dist, single, dist_metric, single_metric = _train_both(client, loss, X, y, w)
    np.testing.assert_allclose(dist, single, rtol=0, atol=1e-6)
    # The metric is the global weighted mean, not the average of the workers' means.
    np.testing.assert_allclose(dist_metric, single_metric, rtol=1e-6)


class _PerPartitionGHM:
    """What a GHM objective without the collective computes: each worker's own density."""

    def __init__(self):
        self.loss = GHMLoss(bins=10)

    def __call__(self, predt, dtrain):
        w = dtrain.get_weight()
        g, h = self.loss.gradient_hessian(
            dtrain.get_label(), predt, w if w.size else None, state=self.loss.new_state()
        )
        return g.astype(np.float32), h.astype(np.float32)


def test_per_partition_density_trains_another_model(client):
    # Proves that the equality above comes from the summed counts: with each worker's own
    # density the model is far from the one-process model.
    X, y, w = _skewed()
    loss = GHMLoss(bins=10)
    start = loss.init_score(np.concatenate(y), np.concatenate(w))
    dtrain = xgb.dask.DaskDMatrix(
        client, _pinned(client, X), _pinned(client, y), weight=_pinned(client, w)
    )
    local = xgb.dask.train(
        client, dict(PARAMS, base_score=start), dtrain, ROUNDS, obj=_PerPartitionGHM()
    )["booster"]
    _, single, _, _ = _train_both(client, loss, X, y, w)
    margins = local.predict(xgb.DMatrix(np.concatenate(X)), output_margin=True)
    assert np.abs(margins - single).max() > 0.5


def test_empty_partition(client):
    X, y, w = _skewed()
    X[1], y[1], w[1] = X[1][:0], y[1][:0], w[1][:0]
    for loss in (GHMLoss(bins=10, momentum=0.3), FocalLoss()):
        dist, single, dist_metric, single_metric = _train_both(client, loss, X, y, w)
        np.testing.assert_allclose(dist, single, rtol=0, atol=1e-6)
        np.testing.assert_allclose(dist_metric, single_metric, rtol=1e-6)


@pytest.mark.parametrize("loss", [GHMLoss(), FocalLoss(gamma=1.0, alpha=0.7)], ids=repr)
def test_global_start_equals_init_score_of_all_rows(client, loss):
    X, y, w = _skewed()
    expected = loss.init_score(np.concatenate(y), np.concatenate(w))
    got = bld.init_score(loss, _pinned(client, y), _pinned(client, w))
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert bld.base_score(
        loss, _pinned(client, y), _pinned(client, w), objective="binary:logistic"
    ) == pytest.approx(1.0 / (1.0 + np.exp(-expected)), rel=1e-12)


def test_window_density_is_refused(client):
    X, y, w = _skewed(300, 200)
    dtrain = xgb.dask.DaskDMatrix(client, _pinned(client, X), _pinned(client, y))
    refused = "cannot be trained on several workers.*use density='bins'"
    with pytest.raises(ValueError, match=refused):
        xgb.dask.train(client, PARAMS, dtrain, 3, obj=blx.objective(GHMLoss(density="window")))
    clf = DaskXGBClassifier(loss=GHMLoss(density="window"), n_estimators=3)
    clf.client = client
    with pytest.raises(ValueError, match=refused):
        clf.fit(_pinned(client, X), _pinned(client, y))


def _string_labels(y):
    return np.where(np.concatenate(y) == 1.0, "fraud", "ok")


@pytest.mark.parametrize("loss", [GHMLoss(bins=10), FocalLoss()], ids=repr)
def test_dask_xgb_classifier(client, loss):
    X, y, w = _skewed()
    labels = _string_labels(y)
    dX = _pinned(client, X)
    dy = da.from_array(labels, chunks=(X[0].shape[0],)).rechunk(dX.chunks[0])
    clf = DaskXGBClassifier(
        loss=loss, n_estimators=ROUNDS, max_depth=3, max_bin=16, early_stopping_rounds=3
    )
    clf.client = client
    clf.fit(dX, dy, eval_set=[(dX, dy)], verbose=False)
    all_X = np.concatenate(X)
    # Sorted classes, the second is the positive one (as in scikit-learn): "ok".
    assert list(clf.classes_) == ["fraud", "ok"]
    start = loss.init_score((labels == "ok").astype(float))
    assert clf.init_score_ == pytest.approx(start, rel=1e-12, abs=1e-12)
    proba = clf.predict_proba(dX).compute()
    margins = clf.get_booster().predict(xgb.DMatrix(all_X), output_margin=True)
    # loss.predict_proba of the margins: the focal posterior, GHM-C's sigmoid.
    np.testing.assert_allclose(proba[:, 1], loss.predict_proba(margins)[:, 1], rtol=1e-5)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    predicted = clf.predict(dX).compute()
    assert set(predicted) <= {"fraud", "ok"}
    np.testing.assert_array_equal(
        predicted, np.where(proba[:, 1] > proba[:, 0], clf.classes_[1], clf.classes_[0])
    )
    # The single-process estimator on the same rows gives the same model.
    from boostloss import XGBClassifier

    local = XGBClassifier(
        loss=loss, n_estimators=ROUNDS, max_depth=3, max_bin=16, early_stopping_rounds=3
    ).fit(all_X, labels, eval_set=[(all_X, labels)], verbose=False)
    assert clf.best_iteration == local.best_iteration
    np.testing.assert_allclose(proba, local.predict_proba(all_X), atol=1e-6)
    restored = pickle.loads(pickle.dumps(clf))
    restored.client = client
    np.testing.assert_allclose(restored.predict_proba(dX).compute(), proba)


def test_dask_lgbm_classifier_focal(client):
    X, y, w = _skewed()
    labels = _string_labels(y)
    dX = _pinned(client, X)
    dy = da.from_array(labels, chunks=(X[0].shape[0],)).rechunk(dX.chunks[0])
    loss = FocalLoss(gamma=2.0, alpha=0.25)
    clf = DaskLGBMClassifier(loss=loss, n_estimators=8, num_leaves=7, client=client)
    clf.fit(dX, dy)
    assert clf.init_score_ == pytest.approx(
        loss.init_score((labels == "ok").astype(float)), rel=1e-12, abs=1e-12
    )
    proba = clf.predict_proba(dX).compute()
    local = clf.to_local()
    margins = local.predict(np.concatenate(X), raw_score=True)
    # The focal posterior of the margins; to_local() is the plain LightGBM model, whose
    # probabilities are the sigmoid of the same margins (as a plain reload's).
    np.testing.assert_allclose(proba, loss.predict_proba(margins), rtol=1e-6)
    np.testing.assert_allclose(
        local.predict_proba(np.concatenate(X))[:, 1], 1.0 / (1.0 + np.exp(-margins)), rtol=1e-6
    )
    predicted = clf.predict(dX).compute()
    np.testing.assert_array_equal(predicted, np.where(proba[:, 1] > proba[:, 0], "ok", "fraud"))
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(restored.predict_proba(dX).compute(), proba)
    np.testing.assert_allclose(
        restored.to_local().predict(np.concatenate(X), raw_score=True), margins
    )


def test_dask_lgbm_classifier_refuses_what_cannot_be_global(client):
    X, y, _ = _skewed(300, 200)
    dX, dy = _pinned(client, X), _pinned(client, y)
    with pytest.raises(ValueError, match="GHM-C's density must count the rows of every worker"):
        DaskLGBMClassifier(loss=GHMLoss(), client=client).fit(dX, dy)
    with pytest.raises(ValueError, match="eval_set is not supported"):
        DaskLGBMClassifier(loss=FocalLoss(), client=client).fit(dX, dy, eval_set=[(dX, dy)])


# ------------------------------------------------------------------------------------------------
# OHEM: the hardest negatives of all rows, selected over the workers
# ------------------------------------------------------------------------------------------------


class _CheckedOHEM:
    """The OHEM objective, checking every round on every worker that the negatives kept by all
    workers together (summed here with the collective) number the global k."""

    def __init__(self, loss, k):
        self.objective = blx.objective(loss)
        self.k = k

    def __call__(self, predt, dtrain):
        from xgboost import collective

        grad, hess = self.objective(predt, dtrain)
        state = self.objective._entry(dtrain).state
        negative = dtrain.get_label() == 0.0
        mine = np.array([np.count_nonzero(state.kept & negative)], dtype=np.float64)
        total = collective.allreduce(mine, collective.Op.SUM)[0]
        if not (state.n_kept_negatives == self.k == total):
            raise AssertionError(f"kept {state.n_kept_negatives} / {total}, expected {self.k}")
        return grad, hess


def _ohem_both(client, loss, X, y, margins, params=PARAMS, rounds=ROUNDS, k=None):
    """Distributed and single-process OHEM from the non-constant start ``margins`` (no ties)."""
    dtrain = xgb.dask.DaskDMatrix(
        client, _pinned(client, X), _pinned(client, y), base_margin=_pinned(client, margins)
    )
    obj = blx.objective(loss) if k is None else _CheckedOHEM(loss, k)
    out = xgb.dask.train(
        client,
        params,
        dtrain,
        rounds,
        obj=obj,
        custom_metric=blx.metric(loss),
        evals=[(dtrain, "train")],
        verbose_eval=False,
    )
    d_all = xgb.DMatrix(np.concatenate(X), np.concatenate(y), base_margin=np.concatenate(margins))
    history = {}
    single = xgb.train(
        params,
        d_all,
        rounds,
        obj=blx.objective(loss),
        custom_metric=blx.metric(loss),
        evals=[(d_all, "train")],
        evals_result=history,
        verbose_eval=False,
    )
    grid = xgb.DMatrix(np.concatenate(X))
    np.testing.assert_allclose(
        out["booster"].predict(grid, output_margin=True),
        single.predict(grid, output_margin=True),
        rtol=0,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        out["history"]["train"][loss.name], history["train"][loss.name], rtol=1e-6
    )
    return out["booster"], single


def _distinct_margins(y, seed=5, n_classes=None):
    rng = np.random.default_rng(seed)
    shape = (lambda n: n) if n_classes is None else (lambda n: (n, n_classes))
    return [rng.normal(-1.0, 1.0, shape(part.shape[0])).astype(np.float32) for part in y]


@pytest.mark.timeout(240)
def test_distributed_ohem_equals_one_process(client):
    # Worker 1 has no positive: a per-worker selection would keep none of its negatives.
    X, y, _ = _skewed()
    loss = OHEMLoss(ratio=2.0)
    n_pos = int(np.concatenate(y).sum())
    _ohem_both(client, loss, X, y, _distinct_margins(y), k=2 * n_pos)


@pytest.mark.timeout(240)
def test_distributed_ohem_empty_partition(client):
    X, y, _ = _skewed()
    X[1], y[1] = X[1][:0], y[1][:0]
    _ohem_both(client, OHEMLoss(ratio=1.5), X, y, _distinct_margins(y))


@pytest.mark.timeout(240)
def test_distributed_multiclass_ohem_equals_one_process(client):
    X, y, _ = _skewed()
    rng = np.random.default_rng(2)
    y = [
        np.where(part == 1.0, rng.integers(1, 3, part.shape[0]), 0).astype(np.float32) for part in y
    ]
    params = dict(PARAMS, num_class=3)
    _ohem_both(
        client,
        OHEMLoss(ratio=2.0, negative_class=0),
        X,
        y,
        _distinct_margins(y, n_classes=3),
        params=params,
        rounds=6,
    )


def test_dask_xgb_classifier_ohem(client):
    X, y, _ = _skewed()
    labels = _string_labels(y)
    dX = _pinned(client, X)
    dy = da.from_array(labels, chunks=(X[0].shape[0],)).rechunk(dX.chunks[0])
    clf = DaskXGBClassifier(
        loss=OHEMLoss(ratio=3.0, negative_class="ok"), n_estimators=5, max_depth=3, max_bin=16
    )
    clf.client = client
    clf.fit(dX, dy)
    # "ok" is class 1 of ["fraud", "ok"]: the negatives are the "ok" rows, the start the log
    # of the kept weights, min(n_ok, 3 n_fraud) "ok" rows against all "fraud" rows.
    n_fraud, n_ok = int((labels == "fraud").sum()), int((labels == "ok").sum())
    assert clf.init_score_ == pytest.approx(np.log(min(n_ok, 3 * n_fraud) / n_fraud), rel=1e-12)
    proba = clf.predict_proba(dX).compute()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert set(clf.predict(dX).compute()) <= {"fraud", "ok"}


def test_dask_lgbm_classifier_refuses_ohem(client):
    X, y, _ = _skewed(300, 200)
    with pytest.raises(ValueError, match="OHEM selects the hardest negatives of all rows"):
        DaskLGBMClassifier(loss=OHEMLoss(), client=client).fit(
            _pinned(client, X), _pinned(client, y)
        )


# ------------------------------------------------------------------------------------------------
# Faults: bounded time, the boostloss message on the client
# ------------------------------------------------------------------------------------------------


def _bad_on_one_worker(kind, rank, n0=300, n1=200):
    """Skewed data whose partition on worker ``rank`` only holds a label 2 or a weight -1."""
    X, y, w = _skewed(n0, n1)
    bad = {"label": y, "weight": w}[kind]
    bad[rank] = bad[rank].copy()
    bad[rank][7] = 2.0 if kind == "label" else -1.0
    return X, y, w


# The bad partition sits on either worker: the error must reach the client whichever worker
# raises first and whichever waits in a collective call. The timeouts bound the time (a hang
# fails the test); nothing here asserts a duration.


@pytest.mark.timeout(120)
@pytest.mark.parametrize("rank", [0, 1])
@pytest.mark.parametrize("loss", [GHMLoss(), FocalLoss()], ids=repr)
def test_bad_label_on_one_partition_only(client, loss, rank):
    X, y, w = _bad_on_one_worker("label", rank)
    dtrain = xgb.dask.DaskDMatrix(
        client, _pinned(client, X), _pinned(client, y), weight=_pinned(client, w)
    )
    with pytest.raises(
        ValueError, match="y_true must contain only 0 and 1.*got 1 other value.*: 2"
    ):
        xgb.dask.train(
            client,
            PARAMS,
            dtrain,
            5,
            obj=blx.objective(loss),
            custom_metric=blx.metric(loss),
            evals=[(dtrain, "train")],
        )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("rank", [0, 1])
def test_negative_weight_on_one_partition_only_natural_call(client, rank):
    # Without the global start (see the test above for the documented call), XGBoost refuses the
    # weight itself while the worker builds its DMatrix (inside the communicator, before any
    # boostloss code runs on the workers). The client raises the first failed task's error: that
    # worker's own message or, in a race inside xgb.dask.train, its peer's failed allreduce (in
    # XGBoost's first collective call of round 1, before the objective); either way the training
    # ends and the other worker is released.
    X, y, w = _bad_on_one_worker("weight", rank)
    dtrain = xgb.dask.DaskDMatrix(
        client, _pinned(client, X), _pinned(client, y), weight=_pinned(client, w)
    )
    with pytest.raises(xgb.core.XGBoostError, match="Weights must be positive|Ring allreduce"):
        xgb.dask.train(
            client,
            PARAMS,
            dtrain,
            5,
            obj=blx.objective(GHMLoss()),
            custom_metric=blx.metric(GHMLoss()),
            evals=[(dtrain, "train")],
        )
    # Both workers are free again: the next training runs.
    good = xgb.dask.DaskDMatrix(client, _pinned(client, X), _pinned(client, y))
    assert xgb.dask.train(client, PARAMS, good, 2, obj=blx.objective(GHMLoss()))["booster"]


_START_ERRORS = {
    "label": "y_true must contain only 0 and 1 .*got other value.*: 2",
    "weight": "sample_weight must be finite and non-negative, got -1",
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("rank", [0, 1])
@pytest.mark.parametrize("kind", ["label", "weight"])
def test_documented_natural_call_refuses_bad_data_on_the_client(client, kind, rank):
    # The natural call as docs/scaling-out.md writes it starts from the global start,
    # bld.base_score(loss, y, w): its one pass over the partitions checks every label and weight,
    # so boostloss's message is raised on the client, before XGBoost builds a DMatrix.
    X, y, w = _bad_on_one_worker(kind, rank)
    ghm = GHMLoss()
    y_dask, w_dask = _pinned(client, y), _pinned(client, w)
    with pytest.raises(ValueError, match=_START_ERRORS[kind]):
        params = {**PARAMS, "base_score": bld.base_score(ghm, y_dask, w_dask)}
        dtrain = xgb.dask.DaskDMatrix(client, _pinned(client, X), y_dask, weight=w_dask)
        xgb.dask.train(
            client,
            params,
            dtrain,
            5,
            obj=blx.objective(ghm),
            custom_metric=blx.metric(ghm),
            evals=[(dtrain, "train")],
        )


_DROP_IN_ERRORS = {
    "label": "Only binary classification is supported .* got 3 classes: \\[0.0, 1.0, 2.0\\]",
    "weight": "sample_weight must be finite and non-negative, got -1",
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("rank", [0, 1])
@pytest.mark.parametrize("kind", ["label", "weight"])
@pytest.mark.parametrize("estimator", ["xgboost", "lightgbm"])
def test_drop_ins_refuse_bad_data_on_one_partition_on_the_client(client, estimator, kind, rank):
    # The drop-ins read every partition's labels and weights (one pass for the start) and raise
    # boostloss's message on the client before any training starts.
    X, y, w = _bad_on_one_worker(kind, rank)
    if estimator == "xgboost":
        clf = DaskXGBClassifier(loss=GHMLoss(), n_estimators=3)
        clf.client = client
    else:
        clf = DaskLGBMClassifier(loss=FocalLoss(), n_estimators=3, client=client)
    with pytest.raises(ValueError, match=_DROP_IN_ERRORS[kind]):
        clf.fit(_pinned(client, X), _pinned(client, y), sample_weight=_pinned(client, w))
    assert getattr(clf, "_Booster", None) is None  # nothing was trained


class _DyingObjective:
    """The GHM objective, except that the worker of rank 1 dies at its third round."""

    def __init__(self):
        self.objective = blx.objective(GHMLoss())
        self.rounds = 0

    def __call__(self, predt, dtrain):
        from xgboost import collective

        self.rounds += 1
        if self.rounds == 3 and collective.get_rank() == 1:
            os._exit(1)
        return self.objective(predt, dtrain)


@pytest.mark.timeout(240)
def test_worker_dying_mid_training_ends_with_an_error(client):
    # Last in the module: the cluster's nanny restarts the worker afterwards.
    X, y, w = _skewed(300, 200)
    dtrain = xgb.dask.DaskDMatrix(client, _pinned(client, X), _pinned(client, y))
    with pytest.raises(Exception):  # noqa: B017 - which one depends on Dask and XGBoost's versions
        xgb.dask.train(client, PARAMS, dtrain, 10, obj=_DyingObjective())
