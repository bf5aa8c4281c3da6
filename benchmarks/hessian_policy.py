"""Which focal-loss Hessian should be the default? An experiment on the real datasets.

For every dataset in ``../shared/datasets`` (or ``$BOOSTLOSS_DATASETS``) and a few focal settings,
train XGBoost (hist, CPU) with ``FocalLoss(hessian="exact")`` and
``FocalLoss(hessian="gauss_newton")`` on the same stratified folds, from the same starting margin
(``init_score``), and compare out-of-fold average precision and log loss. Prints one row per dataset
and setting, and the mean rank of each policy.

    python benchmarks/hessian_policy.py            # all datasets but the 286k-row one
    python benchmarks/hessian_policy.py --all      # covertype_cottonwood too (subsampled to 60k)
"""

import argparse
import os
import pathlib
import time

import numpy as np
import pandas as pd
import xgboost as xgb
from scipy.special import expit
from sklearn.metrics import average_precision_score, log_loss
from sklearn.model_selection import StratifiedKFold

from boostloss import FocalLoss

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATASETS = pathlib.Path(os.environ.get("BOOSTLOSS_DATASETS", ROOT.parent / "shared" / "datasets"))
SETTINGS = [(2.0, 0.25), (2.0, None), (1.0, None)]
POLICIES = ("exact", "gauss_newton")


def load(name, max_rows=None, seed=0):
    frame = pd.read_csv(DATASETS / name / "data.csv.gz")
    if name == "bank_marketing":
        frame = frame.drop(columns=["duration"]).replace("unknown", np.nan)
    y = frame.pop("y").to_numpy(dtype=float)
    for col in frame.columns:
        if frame[col].dtype == object or str(frame[col].dtype).startswith("str"):
            frame[col] = frame[col].astype("category").cat.codes.replace(-1, np.nan)
    X = frame.to_numpy(dtype=float)
    if max_rows and len(y) > max_rows:
        keep = np.random.default_rng(seed).choice(len(y), max_rows, replace=False)
        X, y = X[keep], y[keep]
    return X, y


def focal_objective(loss):
    def objective(margin, dtrain):
        return loss.gradient_hessian(dtrain.get_label(), margin)

    return objective


def evaluate(X, y, loss, rounds, folds, seed):
    oof = np.empty_like(y)
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y):
        start = loss.init_score(y[train])
        dtrain = xgb.DMatrix(X[train], label=y[train], base_margin=np.full(train.size, start))
        dtest = xgb.DMatrix(X[test], base_margin=np.full(test.size, start))
        params = {
            "tree_method": "hist",
            "max_depth": 4,
            "eta": 0.1,
            "min_child_weight": 1e-3,
            "nthread": 1,
            "seed": seed,
        }
        booster = xgb.train(params, dtrain, rounds, obj=focal_objective(loss))
        oof[test] = expit(booster.predict(dtest, output_margin=True))
    return average_precision_score(y, oof), log_loss(y, np.clip(oof, 1e-15, 1 - 1e-15))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--all", action="store_true", help="include covertype_cottonwood (60k rows)"
    )
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not DATASETS.is_dir():
        raise SystemExit(f"datasets not found at {DATASETS}; set BOOSTLOSS_DATASETS")
    names = sorted(p.name for p in DATASETS.iterdir() if (p / "data.csv.gz").exists())
    if not args.all:
        names = [n for n in names if n != "covertype_cottonwood"]
    print(
        f"XGBoost hist, {args.rounds} rounds, eta 0.1, depth 4, min_child_weight 1e-3, "
        f"{args.folds}-fold out-of-fold scores\n"
    )
    header = f"{'dataset':22s} {'gamma':>5s} {'alpha':>5s} | " + " | ".join(
        f"{'AP ' + p:>16s} {'logloss ' + p:>20s}" for p in POLICIES
    )
    print(header)
    print("-" * len(header))
    wins = dict.fromkeys(POLICIES, 0)
    logloss_wins = dict.fromkeys(POLICIES, 0)
    ranks = {p: [] for p in POLICIES}
    t0 = time.perf_counter()
    for name in names:
        X, y = load(name, max_rows=60_000)
        for gamma, alpha in SETTINGS:
            scores = {
                p: evaluate(
                    X,
                    y,
                    FocalLoss(gamma=gamma, alpha=alpha, hessian=p),
                    args.rounds,
                    args.folds,
                    args.seed,
                )
                for p in POLICIES
            }
            best = max(POLICIES, key=lambda p: scores[p][0])
            wins[best] += 1
            logloss_wins[min(POLICIES, key=lambda p: scores[p][1])] += 1
            order = sorted(POLICIES, key=lambda p: -scores[p][0])
            for p in POLICIES:
                ranks[p].append(order.index(p) + 1)
            cells = " | ".join(f"{scores[p][0]:16.4f} {scores[p][1]:20.4f}" for p in POLICIES)
            print(f"{name:22s} {gamma:5.1f} {str(alpha):>5s} | {cells}", flush=True)
    print()
    for p in POLICIES:
        print(
            f"{p:14s} best AP in {wins[p]:2d} of {sum(wins.values())} cases, "
            f"(mean rank {np.mean(ranks[p]):.2f}), lowest log loss in {logloss_wins[p]:2d}"
        )
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
