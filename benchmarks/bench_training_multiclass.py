"""End-to-end training time with K classes: boostloss objectives against the built-in softmax.

XGBoost (``tree_method="hist"``, ``multi:softprob``) and LightGBM (``multiclass``), synthetic data
(numpy: 10 classes of unequal size, 20 features), 100 rounds, 2 threads for everyone (numba's
kernels run on the calling thread, as the adapters do by default). Each repetition trains every
contender once, in turn; the table reports medians and the ratio to the built-in objective. The
"trivial custom" row is numpy's softmax cross-entropy gradient as a custom objective (what any
custom objective costs in the framework itself: the margins handed to Python, the gradients
copied back). Targets (issue 12): custom / built-in <= 1.15 for XGBoost, <= 1.10 for LightGBM.

Run ``python benchmarks/bench_training_multiclass.py`` (several minutes on 2 quiet cores) or
``--quick`` (fewer rows and one repetition). The load average is printed with the results: on a
busy machine the ratios are noisy.
"""

import argparse
import os
import time

import _common as c
import numpy as np

TARGETS = {"XGBoost": 1.15, "LightGBM": 1.10}


def make_data(n_rows, n_classes, seed=0):
    rng = np.random.default_rng(seed)
    n_features = 20
    X = rng.standard_normal((n_rows, n_features)).astype(np.float32)
    prior = 0.5 ** np.arange(n_classes) + 0.02
    centres = rng.standard_normal((n_classes, n_features)) * 0.8
    scores = X @ centres.T + np.log(prior / prior.sum()) + rng.gumbel(size=(n_rows, n_classes))
    return X, np.argmax(scores, axis=1).astype(np.float64)


def numpy_softmax_objective(y):
    labels = y.astype(np.intp)
    rows = np.arange(labels.shape[0])

    def trivial(preds, _data):
        z = preds - preds.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        grad = p.copy()
        grad[rows, labels] -= 1.0
        return grad, p * (1.0 - p)

    return trivial


def contenders(X, y, n_classes, rounds, threads):
    import lightgbm as lgb
    import xgboost as xgb

    import boostloss.lightgbm as bll
    import boostloss.xgboost as blx
    from boostloss import FocalLoss

    focal = FocalLoss(gamma=2.0, alpha=None)
    dtrain = xgb.QuantileDMatrix(X, label=y, max_bin=256, nthread=threads)
    # The same start (margin 0) for every contender; no evaluation: only training is timed.
    params = {
        "tree_method": "hist",
        "max_depth": 6,
        "eta": 0.1,
        "nthread": threads,
        "num_class": n_classes,
        "base_score": [0.0] * n_classes,
        "disable_default_eval_metric": 1,
        "verbosity": 0,
    }
    xgb_runs = {
        "built-in multi:softprob": lambda: xgb.train(
            dict(params, objective="multi:softprob"), dtrain, rounds
        ),
        "trivial custom (numpy softmax CE)": lambda: xgb.train(
            params, dtrain, rounds, obj=numpy_softmax_objective(y)
        ),
        "boostloss focal g=2": lambda: xgb.train(params, dtrain, rounds, obj=blx.objective(focal)),
    }
    dataset = lgb.Dataset(X, label=y, params={"max_bin": 255, "verbose": -1}, free_raw_data=False)
    dataset.construct()
    base = {
        "num_leaves": 31,
        "learning_rate": 0.1,
        "num_threads": threads,
        "verbose": -1,
        "metric": "None",
        "num_class": n_classes,
        "deterministic": True,
        "force_row_wise": True,
        "boost_from_average": False,
    }
    lgb_runs = {
        "built-in multiclass": lambda: lgb.train(
            dict(base, objective="multiclass"), dataset, rounds
        ),
        "trivial custom (numpy softmax CE)": lambda: lgb.train(
            dict(base, objective=numpy_softmax_objective(y)), dataset, rounds
        ),
        "boostloss focal g=2": lambda: lgb.train(
            dict(base, objective=bll.objective(focal)), dataset, rounds
        ),
    }
    return {"XGBoost": xgb_runs, "LightGBM": lgb_runs}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="50k rows, one repetition")
    parser.add_argument(
        "--frameworks",
        default="XGBoost,LightGBM",
        help="comma-separated subset of XGBoost,LightGBM (default both)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.repeats = 50_000, 1
    X, y = make_data(args.rows, args.classes)
    # Compile (or load) the kernels before any clock starts.
    from boostloss import FocalLoss

    FocalLoss(alpha=None).gradient_hessian(y[:100], np.zeros((100, args.classes), np.float32))
    runs = contenders(X, y, args.classes, args.rounds, args.threads)
    print(
        f"{args.rows} rows x {args.classes} classes, {args.rounds} rounds, {args.threads} "
        f"threads, load average before: {os.getloadavg()[0]:.2f}"
    )
    chosen = [name.strip() for name in args.frameworks.split(",")]
    unknown = sorted(set(chosen) - set(runs))
    if unknown:
        parser.error(f"--frameworks: unknown {unknown}; choose from {sorted(runs)}")
    for framework, table in runs.items():
        if framework not in chosen:
            continue
        times = {name: [] for name in table}
        for _ in range(args.repeats):
            for name, train in table.items():
                t0 = time.perf_counter()
                train()
                times[name].append(time.perf_counter() - t0)
        med = {name: c.median(values) for name, values in times.items()}
        builtin = next(iter(med.values()))
        print(f"\n== {framework}: median of {args.repeats} alternating repetitions")
        for name, t in med.items():
            verdict = ""
            if name.startswith("boostloss"):
                bound = TARGETS[framework]
                verdict = ("PASS" if t / builtin <= bound else "FAIL") + f" (<= {bound}x)"
            print(f"  {name:<36s} {t:8.2f} s  {t / builtin:5.2f}x  {verdict}")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
