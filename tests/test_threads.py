"""Reproducibility: the answer does not depend on the number of numba threads, and trainings that
share one loss object at the same time in several Python threads give the models they give alone.
"""

import threading

import numba
import numpy as np
import pytest
from conftest import LOSSES, run_in_threads

from boostloss import FocalLoss, GHMLoss
from boostloss._kernels import binary as _kernels

N_LARGE = 200_000  # several reduction chunks of _kernels.CHUNK samples


def _max_threads():
    return numba.config.NUMBA_NUM_THREADS


needs_two_threads = pytest.mark.skipif(
    _max_threads() < 2, reason="numba was started with a single thread (NUMBA_NUM_THREADS=1)"
)


@pytest.fixture(scope="module")
def large_data():
    assert N_LARGE > 4 * _kernels.CHUNK
    rng = np.random.default_rng(7)
    y = (rng.random(N_LARGE) < 0.1).astype(np.float64)
    x = rng.normal(-1.0, 3.0, N_LARGE)
    # Weights over many orders of magnitude: a change of summation order would show in the last
    # bits.
    w = rng.lognormal(0.0, 2.0, N_LARGE)
    w[rng.random(N_LARGE) < 0.05] = 0.0
    return y, x, w


def run_rounds(loss_name, y, x, w, n_threads):
    """Three boosting-like rounds with the given number of numba threads; every output collected."""
    previous = numba.get_num_threads()
    numba.set_num_threads(n_threads)
    try:
        loss = LOSSES[loss_name]()
        outputs = [loss.loss(y, x, sample_weight=w)]
        margins = x.copy()
        for _ in range(3):
            grad, hess = loss.gradient_hessian(y, margins, sample_weight=w)
            outputs += [grad, hess]
            margins = margins - 0.5 * grad / np.maximum(hess, 1e-3)
        if isinstance(loss, GHMLoss):
            outputs.append(loss.harmonizing_weights(y, x, sample_weight=w))
            if loss.running_counts_ is not None:
                outputs.append(loss.running_counts_.copy())
        return outputs
    finally:
        numba.set_num_threads(previous)


@needs_two_threads
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_bit_identical_with_one_and_two_threads(loss_name, weighted, large_data):
    y, x, w = large_data
    w = w if weighted else None
    one = run_rounds(loss_name, y, x, w, 1)
    two = run_rounds(loss_name, y, x, w, 2)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b, strict=True)
    # float32 margins (what XGBoost and LightGBM pass) too.
    x32 = x.astype(np.float32)
    for a, b in zip(
        run_rounds(loss_name, y, x32, w, 1), run_rounds(loss_name, y, x32, w, 2), strict=True
    ):
        np.testing.assert_array_equal(a, b, strict=True)


@needs_two_threads
def test_histogram_kernel_identical_across_threads(large_data):
    """The chunked GHM histogram itself: counts and total weight equal bit for bit."""
    y, x, w = large_data
    edges = np.arange(31, dtype=np.float64) / 30
    edges[-1] += 1e-6
    results = []
    for n_threads in (1, 2):
        previous = numba.get_num_threads()
        numba.set_num_threads(n_threads)
        try:
            grad, hess = np.empty(N_LARGE), np.empty(N_LARGE)
            idx = np.empty(N_LARGE, dtype=np.int32)
            counts = np.zeros(30)
            _kernels.ghm_bins_pass(y, x, w, edges, grad, hess, idx)
            tot = _kernels.bin_histogram(idx, w, 30, counts)
        finally:
            numba.set_num_threads(previous)
        results.append((tot, counts, idx, grad, hess))
    (tot1, *arrays1), (tot2, *arrays2) = results
    assert tot1 == tot2
    for a, b in zip(arrays1, arrays2, strict=True):
        np.testing.assert_array_equal(a, b, strict=True)
    # The counts are the weighted histogram (up to summation order) and total the weights.
    assert np.isclose(arrays1[0].sum(), w.sum(), rtol=1e-12)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_small_histograms_by_numpy_equal_the_kernel(weighted, large_data, monkeypatch):
    """Up to a size, ``bin_histogram`` is numpy's ``bincount`` (nothing to compile): the counts and
    the total are the kernel's to the bit, on both sides of each size limit."""
    _, _, w_all = large_data
    rng = np.random.default_rng(3)
    limit = _kernels._NUMPY_WEIGHTED_HISTOGRAM_UPTO if weighted else _kernels._NUMPY_HISTOGRAM_UPTO
    assert limit <= _kernels.CHUNK
    for n in (0, 1, 7, 400, limit - 1, limit, limit + 1, _kernels.CHUNK):
        idx = rng.integers(0, 30, n).astype(np.int32)
        w = w_all[:n] if weighted else np.empty(0)
        if weighted and n:
            w = w.copy()
            w[0] = 0.0  # a zero weight first: neither sum may start from it
        by_default = np.zeros(30)
        tot = _kernels.bin_histogram(idx, w, 30, by_default)
        with monkeypatch.context() as m:
            m.setattr(_kernels, "_NUMPY_HISTOGRAM_UPTO", -1)
            m.setattr(_kernels, "_NUMPY_WEIGHTED_HISTOGRAM_UPTO", -1)
            by_kernel = np.zeros(30)
            tot_kernel = _kernels.bin_histogram(idx, w, 30, by_kernel)
        assert by_default.tobytes() == by_kernel.tobytes(), n
        assert repr(tot) == repr(tot_kernel), n
        expected = float(w.sum()) if weighted else float(n)
        assert tot == pytest.approx(expected, rel=1e-12)
        assert by_default.sum() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("weights", ["none", "positive", "with zeros"])
@pytest.mark.parametrize("norms", ["spread", "ties", "ends"])
def test_small_window_densities_by_numpy_equal_the_kernel(weights, norms):
    """Up to a size (while the kernel is not compiled), the window density is numpy's (a stable
    sort, ``searchsorted`` for the window's ends, serial sums): the weights and the total are the
    kernel's to the bit."""
    rng = np.random.default_rng(len(weights) * 7 + len(norms))
    for n in (0, 1, 2, 7, 400, 4096):
        g = {
            "spread": rng.random(n),
            "ties": np.round(rng.random(n) * 20) / 20,  # many equal norms, on window ends
            "ends": rng.choice([0.0, 5e-324, 0.25, 0.5, 1.0 - 2.0**-53, 1.0], size=n),
        }[norms]
        w = {
            "none": np.empty(0),
            "positive": rng.random(n) + 0.01,
            "with zeros": rng.integers(0, 3, n) * rng.random(n),
        }[weights]
        for epsilon in (1e-9, 0.05, 0.5, 2.0):
            small = np.full(n, np.nan)
            kernel = np.full(n, np.nan)
            tot = _kernels._window_beta_numpy(g, w, epsilon, small)
            tot_kernel = _kernels._window_beta(g, w, epsilon, kernel)
            assert small.tobytes() == kernel.tobytes(), (n, epsilon)
            assert repr(tot) == repr(tot_kernel), (n, epsilon)


# --------------------------------------------------------------------------------------------
# Trainings in threads sharing one loss object
# --------------------------------------------------------------------------------------------

SHARED_LOSSES = {
    "focal": lambda: FocalLoss(gamma=2.0, alpha=0.25),
    "ghm_momentum": lambda: GHMLoss(bins=10, momentum=0.75),
}


@pytest.fixture(scope="module")
def small_problem():
    rng = np.random.default_rng(3)
    n = 3000
    X = rng.normal(size=(n, 6))
    logit = 1.5 * X[:, 0] - X[:, 1] + 0.5 * X[:, 2] * X[:, 3] - 2.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    w = rng.uniform(0.5, 2.0, n)
    return X, y, w


def run_concurrently(jobs):
    """Run callables at once in threads (released together); return their results in order."""
    barrier = threading.Barrier(len(jobs))
    results = [None] * len(jobs)

    def work(i):
        barrier.wait()
        results[i] = jobs[i]()

    run_in_threads(work, len(jobs))
    return results


def _xgb_job(loss, X, y, w, seed):
    import xgboost as xgb

    import boostloss.xgboost as blx

    def job():
        dtrain = xgb.DMatrix(X, label=y, weight=w)
        params = {
            "tree_method": "hist",
            "max_depth": 3,
            "eta": 0.3,
            "nthread": 1,
            "seed": seed,
            "subsample": 0.8,
            "base_score": 0.0,
        }
        booster = xgb.train(params, dtrain, 15, obj=blx.objective(loss))
        return booster.predict(dtrain, output_margin=True), bytes(booster.save_raw("json"))

    return job


def _lgb_job(loss, X, y, w, seed):
    import lightgbm as lgb

    import boostloss.lightgbm as bll

    def job():
        train = lgb.Dataset(X, label=y, weight=w, free_raw_data=False)
        params = {
            "objective": bll.objective(loss),
            "metric": "None",
            "num_leaves": 7,
            "learning_rate": 0.3,
            "num_threads": 1,
            "seed": seed,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "deterministic": True,
            "verbose": -1,
        }
        booster = lgb.train(params, train, 15)
        return booster.predict(X, raw_score=True), booster.model_to_string()

    return job


def _estimator_job(kind, loss, X, y, w, seed):
    import boostloss

    def job():
        if kind == "xgb":
            clf = boostloss.XGBClassifier(
                loss=loss, n_estimators=15, max_depth=3, n_jobs=1, random_state=seed, subsample=0.8
            )
        else:
            clf = boostloss.LGBMClassifier(
                loss=loss,
                n_estimators=15,
                num_leaves=7,
                n_jobs=1,
                random_state=seed,
                subsample=0.8,
                subsample_freq=1,
                deterministic=True,
                verbose=-1,
            )
        clf.fit(X, y, sample_weight=w)
        return clf.predict_proba(X)[:, 1], None

    return job


JOB_FACTORIES = {
    "xgb_train": _xgb_job,
    "lgb_train": _lgb_job,
    "XGBClassifier": lambda loss, X, y, w, seed: _estimator_job("xgb", loss, X, y, w, seed),
    "LGBMClassifier": lambda loss, X, y, w, seed: _estimator_job("lgb", loss, X, y, w, seed),
}


@pytest.mark.parametrize("loss_name", sorted(SHARED_LOSSES))
@pytest.mark.parametrize(
    "framework",
    [
        pytest.param(name, marks=pytest.mark.slow) if name.endswith("Classifier") else name
        for name in sorted(JOB_FACTORIES)
    ],
)
def test_concurrent_trainings_sharing_a_loss_match_sequential(framework, loss_name, small_problem):
    X, y, w = small_problem
    make_job = JOB_FACTORIES[framework]
    # Two different trainings (different rows, weights and seeds), so crossed state would show.
    half = X.shape[0] // 2
    specs = [(X, y, w, 0), (X[:half], y[:half], None, 1)]

    sequential = [make_job(SHARED_LOSSES[loss_name](), *spec)() for spec in specs]
    shared = SHARED_LOSSES[loss_name]()
    concurrent = run_concurrently([make_job(shared, *spec) for spec in specs] * 2)
    again = [make_job(shared, *spec)() for spec in specs]  # the shared object, reused afterwards

    for got_list in (concurrent[:2], concurrent[2:], again):
        for (pred, model), (pred_ref, model_ref) in zip(got_list, sequential, strict=True):
            np.testing.assert_array_equal(pred, pred_ref)
            assert model == model_ref
    # The shared loss itself kept no training state.
    if isinstance(shared, GHMLoss):
        assert shared.running_counts_ is None


def test_adapters_thread_policy_by_margin_shape():
    """``n_threads="auto"`` (the adapters' default): one thread for a binary model's margins,
    the default policy (None) for K-class margins; an explicit value is kept; a bad one is refused
    with the value quoted."""
    import boostloss.lightgbm as bll
    import boostloss.xgboost as blx
    from boostloss._kernels import threads as _threads

    assert _threads.round_threads("auto", 1) == 1
    assert _threads.round_threads("auto", 2) is None
    assert _threads.round_threads(3, 2) == 3 and _threads.round_threads(None, 1) is None
    for factory in (blx.objective, blx.metric, bll.objective, bll.metric):
        assert factory("focal").n_threads == "auto"
        assert factory("focal", n_threads=1).n_threads == 1
    with pytest.raises(TypeError, match="'fast'"):
        bll.objective("focal", n_threads="fast")
    with pytest.raises(ValueError, match="0"):
        blx.objective("focal", n_threads=0)


def test_row_ranges_split_whole_and_summed():
    """``run_rows`` / ``run_spans``: the rows split into one aligned range per thread, an empty
    array (no weights) passed whole, integer results summed; one range on one thread."""
    from boostloss._kernels import threads as _threads

    calls = []

    def rows_kernel(a, w, out):
        calls.append((a.shape[0], w.shape[0]))
        out[:] = 2.0 * a
        return a.shape[0]

    def spans_kernel(a, out, start, stop):
        calls.append((start, stop))
        out[start:stop] = 3.0 * a[start:stop]
        return stop - start

    a, out = np.arange(1000.0), np.empty(1000)
    two = min(2, numba.config.NUMBA_NUM_THREADS)
    with _threads.kernel_threads(1000, two):
        assert _threads.run_rows(rows_kernel, (a, np.empty(0), out), (0, 1, 2)) == 1000
        np.testing.assert_array_equal(out, 2.0 * a)
        expected = [(512, 0), (488, 0)] if two == 2 else [(1000, 0)]
        assert sorted(calls, reverse=True) == expected
        calls.clear()
        assert _threads.run_spans(spans_kernel, (a, out), 1000, 128) == 1000
        np.testing.assert_array_equal(out, 3.0 * a)
        assert sorted(calls) == ([(0, 512), (512, 1000)] if two == 2 else [(0, 1000)])
    calls.clear()
    with _threads.kernel_threads(1000, 1):
        _threads.run_spans(spans_kernel, (a, out), 1000, 128)
    assert calls == [(0, 1000)]


def test_thread_pool_rebuilt_in_a_forked_child(monkeypatch):
    """A forked child inherits the pool object without its threads: a new one is made there."""
    from boostloss._kernels import threads as _threads

    pool = _threads._executor(1)
    assert _threads._executor(1) is pool
    monkeypatch.setattr(_threads, "_pool_key", (-1, 1))  # as seen from another process
    fresh = _threads._executor(1)
    assert fresh is not pool and fresh.submit(lambda: 7).result() == 7


def test_numpy_twin_for_small_inputs_while_the_kernel_is_not_compiled():
    from boostloss._kernels.threads import numpy_twin

    class Kernel:
        def __init__(self, *signatures):
            self.signatures = list(signatures)

    assert numpy_twin(0, 10, Kernel()) and numpy_twin(10, 10, Kernel())
    assert not numpy_twin(11, 10, Kernel())  # above the limit: the kernel
    assert not numpy_twin(5, 10, Kernel("(float64[::1],)"))  # in the process: the faster
