"""Distributed training on a Dask cluster: boostloss objectives over XGBoost's built-in objective.

Usage::

    python benchmarks/bench_distributed.py                       # 2 workers, 2M rows x 20 (~10 min)
    python benchmarks/bench_distributed.py --rows 200000 --rounds 10 --repeats 1   # a quick check
    python benchmarks/bench_distributed.py --first-round --rows 40000 --rounds 20   # cold workers

One LocalCluster of ``--workers`` worker processes (one thread each), the data generated on the
workers (each holds its own partitions). In the same cluster, in turn: ``binary:logistic``, focal
and GHM-C through ``xgb.dask.train(obj=blx.objective(loss))``. Reported: the median training time
of each and its ratio to ``binary:logistic`` (goal: <= 1.2), both for the whole call and for the
boosting alone (the workers' DMatrix building, the same for all, excluded), and the cost of the
collective step per round (the reductions that make GHM-C's density global and the error check),
measured on the workers inside the same communicator: GHM-C's objective round with and without
the collective. The load average is printed before and after (the machine may be shared).

``--first-round``: what a worker with an empty numba cache pays in its first boosting round. Each
run starts a new LocalCluster whose workers get a new, empty ``NUMBA_CACHE_DIR`` and trains focal
loss (objective and metric, ``xgb.dask.train``); reported per run: the first round, the median of
the later rounds, and the time of ``client.run(boostloss.warm_up, focal)`` where it is called before
training. The runs: ``binary:logistic`` (XGBoost's own first-round cost), focal on a cold cache,
focal on a cold cache after the warm-up (for both frameworks, the default, and for XGBoost only),
and focal on the cache a warm-up filled (a new worker process on a machine warmed before).
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import fmt_time, load_average, median, print_machine, print_table


def _make_block(n_rows, n_features, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features)).astype(np.float32)
    logit = X[:, 0] - 0.7 * X[:, 1] + 0.5 * X[:, 2] * X[:, 3] - 3.5
    y = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    return np.column_stack([X, y])


def _timed_objective(loss):
    """The GHM objective, also timing on each worker its rounds with and without the collective.

    It is its own training callback: after training it stores the medians in the booster's
    attributes, which come back to the client with the model.
    """
    import xgboost as xgb
    from xgboost import collective

    import boostloss.xgboost as blx

    class TimedObjective(xgb.callback.TrainingCallback):
        def __init__(self):
            super().__init__()
            self.objective = blx.objective(loss)
            self.local = blx.objective(loss)
            self.with_collective = []
            self.without = []
            self.calls = []

        def __call__(self, predt, dtrain):
            t0 = time.perf_counter()
            out = self.objective(predt, dtrain)
            t1 = time.perf_counter()
            # The same round with this worker's own density (no reduction), discarded.
            entry = self.local._entry(dtrain)
            self.local.loss.gradient_hessian(
                entry.target, predt, gradient_out=entry.grad, hessian_out=entry.hess, n_threads=1
            )
            t2 = time.perf_counter()
            # The round's two collective calls again (the error check, the bin counts), alone.
            collective.allreduce(np.zeros(1, dtype=np.int64), collective.Op.MAX)
            collective.allreduce(np.zeros(loss.bins + 1), collective.Op.SUM)
            t3 = time.perf_counter()
            self.with_collective.append(t1 - t0)
            self.without.append(t2 - t1)
            self.calls.append(t3 - t2)
            return out

        def after_training(self, model):
            model.set_attr(
                with_collective=repr(median(self.with_collective)),
                without=repr(median(self.without)),
                calls=repr(median(self.calls)),
            )
            return model

    return TimedObjective()


def _warm_up(*losses):
    """One objective call per loss on a few rows, outside any training (compiles the kernels)."""
    import xgboost as xgb

    import boostloss.xgboost as blx

    block = _make_block(256, 4, 0)
    dmatrix = xgb.DMatrix(block[:, :-1], block[:, -1])
    for loss in losses:
        blx.objective(loss)(np.zeros(256, dtype=np.float32), dmatrix)


def _boost_timer():
    """A training callback that stores the boosting time (after the DMatrix is built) in the
    booster's attributes, measured on the worker that returns the model."""
    import xgboost as xgb

    class BoostTimer(xgb.callback.TrainingCallback):
        def before_training(self, model):
            self.start = time.perf_counter()
            return model

        def after_training(self, model):
            model.set_attr(boost_seconds=repr(time.perf_counter() - self.start))
            return model

    return BoostTimer()


def _round_timer():
    """A training callback that stores the duration of every boosting round (JSON list, seconds)
    in the booster's attributes, measured on the worker that returns the model."""
    import json

    import xgboost as xgb

    class RoundTimer(xgb.callback.TrainingCallback):
        def before_training(self, model):
            self.last = time.perf_counter()
            self.rounds = []
            return model

        def after_iteration(self, model, epoch, evals_log):
            now = time.perf_counter()
            self.rounds.append(now - self.last)
            self.last = now
            return False

        def after_training(self, model):
            model.set_attr(round_seconds=json.dumps(self.rounds))
            return model

    return RoundTimer()


def first_round(args):
    """Fresh workers, an empty numba cache each run: the first round against the later ones."""
    import json
    import tempfile

    import dask
    import dask.array as da
    import xgboost as xgb
    import xgboost.dask
    from distributed import Client, LocalCluster

    import boostloss
    import boostloss.xgboost as blx
    from boostloss import FocalLoss

    print_machine(
        [
            f"setup   : {args.workers} Dask workers x 1 thread (new ones every run), {args.rows} "
            f"rows x {args.features}, {args.rounds} rounds, depth 6; focal objective and metric"
        ]
    )
    focal = FocalLoss(gamma=2.0, alpha=0.25)
    params = {"tree_method": "hist", "max_depth": 6, "eta": 0.1, "nthread": 1}

    def run(objective, cache_dir, frameworks):
        os.environ["NUMBA_CACHE_DIR"] = cache_dir  # read by the workers at their start
        with (
            LocalCluster(
                n_workers=args.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            n_blocks = 2 * args.workers
            block_rows = args.rows // n_blocks
            blocks = [
                da.from_delayed(
                    dask.delayed(_make_block)(block_rows, args.features, seed),
                    shape=(block_rows, args.features + 1),
                    dtype=np.float32,
                )
                for seed in range(n_blocks)
            ]
            data = da.concatenate(blocks).persist()
            dtrain = xgb.dask.DaskQuantileDMatrix(client, data[:, :-1], data[:, -1])
            warm_seconds = None
            if frameworks:
                t0 = time.perf_counter()
                client.run(boostloss.warm_up, focal, frameworks=frameworks)
                warm_seconds = time.perf_counter() - t0
            if objective == "binary:logistic":
                extra = {"params": dict(params, objective=objective)}
            else:
                extra = {
                    "params": params,
                    "obj": blx.objective(focal),
                    "custom_metric": blx.metric(focal),
                }
            out = xgb.dask.train(
                client,
                dtrain=dtrain,
                num_boost_round=args.rounds,
                evals=[(dtrain, "train")],
                callbacks=[_round_timer()],
                **extra,
            )
            rounds = json.loads(out["booster"].attr("round_seconds"))
        return rounds[0], median(rounds[1:]), warm_seconds

    runs = [
        ("binary:logistic", "binary:logistic", "new", None),
        ("focal, cold cache", "focal", "new", None),
        ("focal, cold, warm_up(both frameworks) first", "focal", "new", ("xgboost", "lightgbm")),
        ("focal, cold, warm_up(xgboost) first", "focal", "new", "xgboost"),
        ("focal, cache filled by that warm-up", "focal", "same", None),
    ]
    results = {name: [] for name, *_ in runs}
    for _ in range(args.repeats):
        cache_dir = None
        for name, objective, cache, frameworks in runs:
            if cache == "new" or cache_dir is None:
                cache_dir = tempfile.mkdtemp(prefix="bench-numba-cache-")
            results[name].append(run(objective, cache_dir, frameworks))
    rows = []
    for name, *_ in runs:
        first, later, warm_seconds = (
            median([r[i] for r in results[name]]) if results[name][0][i] is not None else None
            for i in range(3)
        )
        rows.append(
            (
                name,
                "-" if warm_seconds is None else fmt_time(warm_seconds),
                fmt_time(first),
                fmt_time(later),
                f"{first - later:+.2f} s",
            )
        )
    print_table(
        ("run", "client.run(warm_up)", "round 1", "later rounds (median)", "round 1 extra"),
        rows,
    )
    print(f"medians of {args.repeats} run(s); load average at the end: {load_average()}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--timed-rounds",
        type=int,
        default=10,
        help="rounds of the training that times the collective step",
    )
    parser.add_argument(
        "--first-round",
        action="store_true",
        help="time the first round of new workers with an empty numba cache, with and without "
        "boostloss.warm_up (see the module's docstring)",
    )
    args = parser.parse_args(argv)
    if args.first_round:
        first_round(args)
        return

    import dask
    import dask.array as da
    import xgboost as xgb
    import xgboost.dask
    from distributed import Client, LocalCluster

    import boostloss.xgboost as blx
    from boostloss import FocalLoss, GHMLoss

    print_machine(
        [
            f"setup   : {args.workers} Dask workers x 1 thread, {args.rows} rows x "
            f"{args.features}, {args.rounds} rounds, depth 6"
        ]
    )
    with (
        LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        n_blocks = 2 * args.workers
        block_rows = args.rows // n_blocks
        blocks = [
            da.from_delayed(
                dask.delayed(_make_block)(block_rows, args.features, seed),
                shape=(block_rows, args.features + 1),
                dtype=np.float32,
            )
            for seed in range(n_blocks)
        ]
        data = da.concatenate(blocks).persist()
        X, y = data[:, :-1], data[:, -1]
        # The sketch is made when the matrix is built, so "boosting" below is rounds only.
        dtrain = xgb.dask.DaskQuantileDMatrix(client, X, y)
        params = {"tree_method": "hist", "max_depth": 6, "eta": 0.1, "nthread": 1}

        focal, ghm = FocalLoss(gamma=2.0, alpha=0.25), GHMLoss(bins=10)
        objectives = {"binary:logistic": None, "focal": focal, "ghm": ghm}

        def train(name, rounds):
            loss = objectives[name]
            run_params = dict(params, objective=name) if loss is None else params
            out = xgb.dask.train(
                client,
                run_params,
                dtrain,
                rounds,
                obj=None if loss is None else blx.objective(loss),
                callbacks=[_boost_timer()],
            )
            return float(out["booster"].attr("boost_seconds"))

        client.run(_warm_up, focal, ghm)  # numba kernels compiled (or loaded) on every worker
        total = {name: [] for name in objectives}
        boosting = {name: [] for name in objectives}
        for _ in range(args.repeats):  # in turn, so that a burst of load hits all alike
            for name in objectives:
                t0 = time.perf_counter()
                boosting[name].append(train(name, args.rounds))
                total[name].append(time.perf_counter() - t0)
        base_total = median(total["binary:logistic"])
        base_boost = median(boosting["binary:logistic"])
        rows = [
            (
                name,
                fmt_time(median(total[name])),
                f"{median(total[name]) / base_total:.2f}",
                fmt_time(median(boosting[name]) / args.rounds),
                f"{median(boosting[name]) / base_boost:.2f}",
            )
            for name in objectives
        ]
        print_table(
            (
                "objective",
                "xgb.dask.train (median)",
                "ratio",
                "boosting per round",
                "ratio (boosting only)",
            ),
            rows,
        )
        print(
            "xgb.dask.train: the whole call (the workers build their DMatrix, then boost); "
            "boosting: from before_training to after_training on the worker."
        )

        timed = _timed_objective(ghm)
        booster = xgb.dask.train(
            client, params, dtrain, args.timed_rounds, obj=timed, callbacks=[timed]
        )["booster"]
        with_c, without, calls = (
            float(booster.attr(key)) for key in ("with_collective", "without", "calls")
        )
        print(
            f"GHM-C objective round (median of {args.timed_rounds}, worker of rank 0): "
            f"{fmt_time(with_c).strip()} with the collective, {fmt_time(without).strip()} with "
            f"its own density only (difference {(with_c - without) * 1e3:+.2f} ms); the round's "
            f"two collective calls alone: {fmt_time(calls).strip()}"
        )
    print(f"load average at the end: {load_average()}")


if __name__ == "__main__":
    main()
