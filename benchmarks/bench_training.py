"""End-to-end training time: boostloss objectives against the frameworks' built-in logistic loss.

XGBoost (``tree_method="hist"`` on CPU) and LightGBM, 1M rows x 20 features (synthetic, ~3%
positives, generated with numpy), a fixed number of rounds, 2 threads for everyone (numba too). Each
repetition trains every contender once, in turn; the table reports medians and the ratio to the
built-in objective. The "trivial custom" row is numpy's logistic gradient as a custom objective
(labels cached, float32): what any custom objective costs in the framework itself (the margins
handed to Python, the gradients copied back), so the difference between it and the boostloss rows
is what the kernels cost.

Run ``python benchmarks/bench_training.py`` (about 4 minutes on 2 quiet cores) or ``--quick``
(about 1 minute: fewer rounds).
"""

import argparse
import time

import _common as c
import numpy as np


class Timed:
    """Wraps an objective and adds up the seconds spent inside it (its share of the training)."""

    seconds = {}

    def __init__(self, name, fn):
        self.name, self.fn = name, fn
        self.__name__ = getattr(fn, "__name__", name)

    def __call__(self, *args):
        t0 = time.perf_counter()
        out = self.fn(*args)
        self.seconds.setdefault(self.name, []).append(time.perf_counter() - t0)
        return out


def numpy_logistic_objective(y32):
    def trivial(preds, _data):
        with np.errstate(over="ignore"):
            p = 1.0 / (1.0 + np.exp(-preds))
        return p - y32, p * (1.0 - p)

    return trivial


def losses():
    from boostloss import FocalLoss, GHMLoss

    return {
        "focal g=2": FocalLoss(gamma=2.0, alpha=0.25),
        "ghm bins": GHMLoss(bins=10),
        "ghm window": GHMLoss(density="window", epsilon=0.1),
    }


def xgboost_contenders(X, y, rounds, threads, kernel_threads=1):
    import xgboost as xgb

    import boostloss.xgboost as blx

    dtrain = xgb.QuantileDMatrix(X, label=y, max_bin=256, nthread=threads)
    # base_score 0.5 with binary:logistic is margin 0 for every contender (a custom obj then
    # replaces the gradient only); no evaluation, so only training is timed.
    params = {
        "tree_method": "hist",
        "max_depth": 6,
        "eta": 0.1,
        "nthread": threads,
        "objective": "binary:logistic",
        "base_score": 0.5,
        "disable_default_eval_metric": 1,
        "verbosity": 0,
    }
    y32 = y.astype(np.float32)
    contenders = {"built-in binary:logistic": lambda: xgb.train(params, dtrain, rounds)}
    name = "trivial custom (numpy logistic)"
    contenders[name] = lambda name=name: xgb.train(
        params, dtrain, rounds, obj=Timed(("XGBoost", name), numpy_logistic_objective(y32))
    )
    for name, loss in losses().items():
        # A fresh objective per training: each owns its state (GHM) and buffers.
        name = f"boostloss {name}"
        contenders[name] = lambda loss=loss, name=name: xgb.train(
            params,
            dtrain,
            rounds,
            obj=Timed(("XGBoost", name), blx.objective(loss, n_threads=kernel_threads)),
        )
    return contenders


def lightgbm_contenders(X, y, rounds, threads, kernel_threads=1):
    import lightgbm as lgb

    import boostloss.lightgbm as bll

    dataset = lgb.Dataset(X, label=y, params={"max_bin": 255, "verbose": -1}, free_raw_data=False)
    dataset.construct()
    base = {
        "num_leaves": 31,
        "learning_rate": 0.1,
        "num_threads": threads,
        "verbose": -1,
        "metric": "None",
        "max_bin": 255,
        "deterministic": True,
        "force_row_wise": True,
    }
    y32 = y.astype(np.float32)
    contenders = {
        "built-in binary": lambda: lgb.train({**base, "objective": "binary"}, dataset, rounds)
    }
    name = "trivial custom (numpy logistic)"
    contenders[name] = lambda name=name: lgb.train(
        {**base, "objective": Timed(("LightGBM", name), numpy_logistic_objective(y32))},
        dataset,
        rounds,
    )
    for name, loss in losses().items():
        name = f"boostloss {name}"
        contenders[name] = lambda loss=loss, name=name: lgb.train(
            {
                **base,
                "objective": Timed(
                    ("LightGBM", name), bll.objective(loss, n_threads=kernel_threads)
                ),
            },
            dataset,
            rounds,
        )
    return contenders


def warm_kernels(y):
    """Load (or compile) the kernels for the adapters' dtypes before any clock starts."""
    n = min(y.shape[0], 1000)
    x = np.zeros(n, dtype=np.float32)
    for loss in losses().values():
        grad = np.empty(n, dtype=np.float32)
        hess = np.empty(n, dtype=np.float32)
        loss.gradient_hessian(y[:n], x, gradient_out=grad, hessian_out=hess, state=loss.new_state())


TARGETS = {
    ("XGBoost", "boostloss focal g=2"): 1.15,
    ("XGBoost", "boostloss ghm bins"): 1.20,
    ("XGBoost", "boostloss ghm window"): 1.20,
    ("LightGBM", "boostloss focal g=2"): 1.05,
}


def report(framework, times, rounds):
    med = {k: c.median(v) for k, v in times.items()}
    builtin = next(iter(med.values()))
    reps = len(next(iter(times.values())))
    print(f"\n== {framework}: {rounds} rounds, median of {reps} alternating repetitions")
    rows = []
    for name, t in med.items():
        bound = TARGETS.get((framework, name))
        verdict = (
            ""
            if bound is None
            else ("PASS" if t / builtin <= bound else "FAIL") + f" (<= {bound}x)"
        )
        inside = Timed.seconds.get((framework, name))
        in_obj = "-" if not inside else f"{c.median(inside) * 1e3:.1f} ms"
        rows.append(
            [
                name,
                c.fmt_time(t),
                f"{t / rounds * 1e3:.1f} ms",
                in_obj,
                f"{t / builtin:.3f}x",
                f"{(t - builtin) / rounds * 1e3:+.1f} ms",
                verdict,
            ]
        )
    c.print_table(
        [
            "objective",
            "training",
            "per round",
            "objective call",
            "/ built-in",
            "extra per round",
            "target",
        ],
        rows,
    )
    print(
        "(objective call: median time inside the custom objective per round, framework overhead "
        "excluded;\n the trees themselves differ between objectives, so 'per round' also moves "
        "with tree shape)"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and repetitions")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--numba-threads",
        type=int,
        default=1,
        help="the adapters' n_threads for the boostloss kernels (default 1, the adapters' default)",
    )
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--only", choices=["xgboost", "lightgbm"], default=None)
    args = parser.parse_args(argv)

    import lightgbm
    import xgboost

    t_start = time.perf_counter()
    c.print_machine(
        [
            f"numba   : n_threads={args.numba_threads} in the adapters; "
            f"xgboost {xgboost.__version__}, lightgbm {lightgbm.__version__}; "
            f"{args.threads} threads for the frameworks"
        ]
    )
    X, y = c.synthetic_classification(args.rows, args.features, positive_rate=0.03, seed=0)
    print(f"data    : {args.rows:,} rows x {args.features} features, {y.mean():.2%} positives")
    repeats = args.repeats or (2 if args.quick else 3)
    warm_kernels(y)

    if args.only in (None, "xgboost"):
        rounds = 10 if args.quick else 30
        times = c.alternate(
            xgboost_contenders(X, y, rounds, args.threads, args.numba_threads),
            repeats=repeats,
            warmup=0,
        )
        report("XGBoost", times, rounds)
    if args.only in (None, "lightgbm"):
        rounds = 30 if args.quick else 100
        times = c.alternate(
            lightgbm_contenders(X, y, rounds, args.threads, args.numba_threads),
            repeats=repeats,
            warmup=0,
        )
        report("LightGBM", times, rounds)
    total = time.perf_counter() - t_start
    print(f"\nload average at the end: {c.load_average()}; total {total:.0f} s")


if __name__ == "__main__":
    main()
