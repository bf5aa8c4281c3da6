"""Distributed training on a Dask cluster: boostloss objectives over XGBoost's built-in objective.

Usage::

    python benchmarks/bench_distributed.py                       # 2 workers, 2M rows x 20
    python benchmarks/bench_distributed.py --rows 200000 --rounds 10 --repeats 1   # a quick check

One LocalCluster of ``--workers`` worker processes (one thread each), the data generated on the
workers (each holds its own partitions). In the same cluster, in turn: ``binary:logistic``, focal
and GHM-C through ``xgb.dask.train(obj=blx.objective(loss))``. Reported: the median training time
of each and its ratio to ``binary:logistic`` (goal: <= 1.2), and the cost of the collective step per
round (the reductions that make GHM-C's density global and the error check), measured on the
workers inside the same communicator: GHM-C's objective round with and without the collective.
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import fmt_time, median, print_machine, print_table  # noqa: E402


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

    import boostloss.xgboost as blx

    class TimedObjective(xgb.callback.TrainingCallback):
        def __init__(self):
            super().__init__()
            self.objective = blx.objective(loss)
            self.local = blx.objective(loss)
            self.with_collective = []
            self.without = []

        def __call__(self, predt, dtrain):
            t0 = time.perf_counter()
            out = self.objective(predt, dtrain)
            t1 = time.perf_counter()
            # The same round with this worker's own density (no reduction), discarded.
            entry = self.local._entry(dtrain)
            self.local.loss.gradient_hessian(entry.target, predt, gradient_out=entry.grad,
                                             hessian_out=entry.hess, n_threads=1)
            t2 = time.perf_counter()
            self.with_collective.append(t1 - t0)
            self.without.append(t2 - t1)
            return out

        def after_training(self, model):
            model.set_attr(with_collective=repr(median(self.with_collective)),
                           without=repr(median(self.without)))
            return model

    return TimedObjective()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import dask
    import dask.array as da
    import xgboost as xgb
    import xgboost.dask  # noqa: F401
    from distributed import Client, LocalCluster

    import boostloss.xgboost as blx
    from boostloss import FocalLoss, GHMLoss

    print_machine([f"setup   : {args.workers} Dask workers x 1 thread, {args.rows} rows x "
                   f"{args.features}, {args.rounds} rounds, depth 6"])
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        n_blocks = 2 * args.workers
        block_rows = args.rows // n_blocks
        blocks = [da.from_delayed(dask.delayed(_make_block)(block_rows, args.features, seed),
                                  shape=(block_rows, args.features + 1), dtype=np.float32)
                  for seed in range(n_blocks)]
        data = da.concatenate(blocks).persist()
        X, y = data[:, :-1], data[:, -1]
        dtrain = xgb.dask.DaskDMatrix(client, X, y)
        params = {"tree_method": "hist", "max_depth": 6, "eta": 0.1, "nthread": 1}

        focal, ghm = FocalLoss(gamma=2.0, alpha=0.25), GHMLoss(bins=10)
        contenders = {
            "binary:logistic": lambda: xgb.dask.train(
                client, dict(params, objective="binary:logistic"), dtrain, args.rounds),
            "focal": lambda: xgb.dask.train(client, params, dtrain, args.rounds,
                                            obj=blx.objective(focal)),
            "ghm": lambda: xgb.dask.train(client, params, dtrain, args.rounds,
                                          obj=blx.objective(ghm)),
        }
        times = {name: [] for name in contenders}
        for name, run in contenders.items():  # warm-up: numba kernels compiled on the workers
            run()
        for _ in range(args.repeats):
            for name, run in contenders.items():
                t0 = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t0)
        base = median(times["binary:logistic"])
        rows = [(name, fmt_time(median(t)), f"{median(t) / base:.2f}")
                for name, t in times.items()]
        print_table(("objective", "training time (median)", "ratio to binary:logistic"), rows)

        timed = _timed_objective(ghm)
        booster = xgb.dask.train(client, params, dtrain, args.rounds, obj=timed,
                                 callbacks=[timed])["booster"]
        with_c = float(booster.attr("with_collective"))
        without = float(booster.attr("without"))
        print(f"GHM objective round (median, worker of rank 0): {fmt_time(with_c)} with the "
              f"collective, {fmt_time(without)} with its own density only: the collective step "
              f"costs {fmt_time(max(with_c - without, 0.0))} per round")


if __name__ == "__main__":
    main()
