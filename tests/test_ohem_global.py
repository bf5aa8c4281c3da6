"""OHEM's selection over several workers, in one process: a fake ``xgboost.collective`` whose
workers are threads.

The workers' selection must be that of one process holding the rows of all workers, concatenated
in rank order, ties included (each worker's tie keys are that draw's keys of its rows), with the
same number of collective calls on every worker, empty partitions and partitions without
positives or without negatives included. The real cluster is tested in test_dask.py.
"""

import enum
import threading

import numpy as np
import pytest
from conftest import run_in_threads
from test_ohem_select import brute_force_keep

from boostloss import OHEMLoss
from boostloss._frameworks.collective import WorkerGroup
from boostloss._kernels import select as ks


class _Op(enum.IntEnum):
    MAX = 0
    MIN = 1
    SUM = 2


class _Shared:
    """What the fake workers share. A worker runs only while it holds ``lock`` (released while
    it waits in a collective call), so numba's kernels never run in two threads at once."""

    def __init__(self, world_size):
        self.world_size = world_size
        self.barrier = threading.Barrier(world_size, timeout=60)
        self.lock = threading.Lock()
        self.slots = [None] * world_size
        self.calls = [0] * world_size


class _FakeCollective:
    """The part of ``xgboost.collective`` that ``WorkerGroup`` uses, for one worker thread."""

    Op = _Op

    def __init__(self, shared, rank):
        self.shared, self.rank = shared, rank

    def get_rank(self):
        return self.rank

    def get_world_size(self):
        return self.shared.world_size

    def allreduce(self, data, op):
        shared = self.shared
        shared.calls[self.rank] += 1
        shared.slots[self.rank] = np.array(data).ravel()
        shared.lock.release()
        try:
            shared.barrier.wait()
            table = np.stack(shared.slots)
            out = {
                _Op.SUM: lambda t: t.sum(axis=0),
                _Op.MIN: lambda t: t.min(axis=0),
                _Op.MAX: lambda t: t.max(axis=0),
            }[op](table).astype(data.dtype)
            shared.barrier.wait()
        finally:
            shared.lock.acquire()
        return out


def run_workers(pieces, work):
    """``work(group, piece)`` on one thread per piece; returns the results and the call counts."""
    shared = _Shared(len(pieces))
    results = [None] * len(pieces)

    def worker(rank):
        with shared.lock:
            results[rank] = work(WorkerGroup(_FakeCollective(shared, rank)), pieces[rank])

    run_in_threads(worker, len(pieces), on_error=shared.barrier.abort)
    return results, shared.calls


def split(arrays, sizes):
    cuts = np.cumsum(sizes)[:-1]
    return list(
        zip(*[np.split(a, cuts) if a.shape[0] else [a] * len(sizes) for a in arrays], strict=True)
    )


def _data(rng, n, margins, weighted, n_classes=None):
    y = (rng.random(n) < 0.15).astype(np.float64)
    if margins == "continuous":
        x = rng.normal(-2.0, 1.5, n)
    elif margins == "few_values":
        x = rng.choice(np.array([-3.0, -1.25, -0.5, 0.0, 0.75]), n)
    else:
        x = np.full(n, -1.5)
    w = rng.integers(0, 5, n) / 2.0 if weighted else np.empty(0)
    return y, x, w


SIZES = {"skewed": [700, 2500, 300], "empty": [2000, 0, 1500], "one": [3500]}


@pytest.mark.parametrize("sizes", list(SIZES), ids=str)
@pytest.mark.parametrize("margins", ["continuous", "few_values", "constant"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_global_selection_equals_one_process(sizes, margins, weighted):
    rng = np.random.default_rng(len(margins) + 7 * weighted)
    sizes = SIZES[sizes]
    n = sum(sizes)
    y, x, w = _data(rng, n, margins, weighted)
    y[n - sizes[-1] :] = 0.0  # the last worker has no positive
    ratio = 2.5
    keys = ks.tie_keys(n, 11)
    expected = brute_force_keep(y, x, w, ratio, keys)
    n_expected = int(((expected == 1) & (y == 0)).sum())

    def work(group, piece):
        yp, xp, wp = piece
        offset = int(group.before(np.array([yp.shape[0]]))[0])
        keep = np.full(yp.shape[0], 7, dtype=np.uint8)
        n_kept, w_kept = ks.ohem_select(
            yp, xp, wp, ratio, ks.tie_keys(yp.shape[0], 11, offset), keep, group
        )
        return keep, n_kept, w_kept

    results, calls = run_workers(split((y, x, w), sizes), work)
    np.testing.assert_array_equal(np.concatenate([r[0] for r in results]), expected)
    # Every worker reports the global numbers and made the same number of collective calls.
    assert {r[1] for r in results} == {n_expected}
    kept_weight = w[(expected == 1) & (y == 0)].sum() if weighted else float(n_expected)
    for r in results:
        assert r[2] == pytest.approx(kept_weight, rel=1e-12)
    assert len(set(calls)) == 1
    if sizes == SIZES["skewed"]:
        # Each worker selecting from its own rows (no group) keeps another set.
        local = []
        for yp, xp, wp, kp in split((y, x, w, keys), sizes):
            keep = np.empty(yp.shape[0], dtype=np.uint8)
            ks.ohem_select(yp, xp, wp, ratio, kp, keep)
            local.append(keep)
        assert not np.array_equal(np.concatenate(local), expected)


def test_tie_keys_of_a_worker_are_those_of_one_draw():
    keys = ks.tie_keys(1000, 5)
    np.testing.assert_array_equal(ks.tie_keys(300, 5, 700), keys[700:])
    np.testing.assert_array_equal(ks.tie_keys(0, 5, 1000), keys[:0])


def test_repeated_tie_keys_across_workers_are_broken_by_rank_then_row():
    # Equal scores and equal tie keys on several workers: the (rank, row) order decides, as the
    # row order decides in one process.
    sizes = [40, 0, 60]
    n = sum(sizes)
    y = np.zeros(n)
    y[:10] = 1.0
    x = np.zeros(n)
    keys = np.full(n, 3, dtype=np.uint64)
    for w in (np.empty(0), np.full(n, 0.5)):
        expected = brute_force_keep(y, x, w, 4.5, keys)

        def work(group, piece):
            keep = np.empty(piece[0].shape[0], dtype=np.uint8)
            return keep, ks.ohem_select(*piece[:3], 4.5, piece[3], keep, group)

        results, calls = run_workers(split((y, x, w, keys), sizes), work)
        np.testing.assert_array_equal(np.concatenate([r[0] for r in results]), expected)
        assert {r[1][0] for r in results} == {45}
        assert len(set(calls)) == 1


@pytest.mark.parametrize("weighted", [False, True])
def test_global_multiclass_selection_and_loss(weighted):
    rng = np.random.default_rng(3)
    sizes = [900, 0, 1600]
    n, k_classes, background = sum(sizes), 4, 2
    y = rng.choice(k_classes, n, p=[0.05, 0.05, 0.85, 0.05]).astype(np.float64)
    x = np.round(rng.normal(0, 1.0, (n, k_classes)), 1)
    w = rng.integers(1, 4, n).astype(np.float64) if weighted else np.empty(0)
    loss = OHEMLoss(ratio=2.0, random_state=4, negative_class=background)
    state = loss.new_state()
    grad, hess = loss.gradient_hessian(y, x, w if weighted else None, state=state)

    def work(group, piece):
        yp, xp, wp = piece
        worker_state = loss.new_state()
        worker_state.group = group
        g, h = loss.gradient_hessian(yp, xp, wp if weighted else None, state=worker_state)
        return g, h, worker_state.n_kept_negatives, worker_state.kept.copy()

    results, calls = run_workers(split((y, x, w), sizes), work)
    np.testing.assert_array_equal(np.concatenate([r[3] for r in results]), state.kept)
    np.testing.assert_array_equal(np.concatenate([r[0] for r in results]), grad)
    np.testing.assert_array_equal(np.concatenate([r[1] for r in results]), hess)
    assert {r[2] for r in results} == {state.n_kept_negatives}
    assert len(set(calls)) == 1


def test_no_positive_anywhere_raises_on_every_worker():
    y = np.zeros(300)
    x = np.zeros(300)

    def work(group, piece):
        state = OHEMLoss().new_state()
        state.group = group
        with pytest.raises(ValueError, match="no positive rows"):
            OHEMLoss().gradient_hessian(piece[0], piece[1], state=state)
        return True

    results, _ = run_workers(split((y, x), [100, 200]), work)
    assert results == [True, True]
