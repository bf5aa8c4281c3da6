"""Focal loss's log loss before and after the posterior map, against the logistic model's.

On every real dataset (binary in ``$BOOSTLOSS_DATASETS``, default ``../shared/datasets``;
multi-class in ``$BOOSTLOSS_DATASETS_MULTICLASS``, default ``../shared/datasets-multiclass``),
stratified 3-fold cross-validation: boostloss's ``XGBClassifier`` and ``LGBMClassifier`` with
``loss=None`` (the frameworks' logistic / softmax objective) and with focal loss
(``FocalLoss(gamma=2, alpha=0.25)`` binary, ``FocalLoss(gamma=2)`` for K classes: no class
weighting), learning rate 0.05, every other parameter the frameworks' default, 300 rounds; the
same models are read at 50 rounds (``iteration_range`` / ``num_iteration``) and at 300. The
out-of-fold predictions of the three folds are pooled, then per (dataset, backend, rounds):

- logistic: the log loss of the logistic model's ``predict_proba``;
- focal before: the log loss of the sigmoid / softmax of the focal model's margin (what
  ``predict_proba`` returned before it mapped margins to the posterior);
- focal after: the log loss of ``predict_proba`` (the posterior), and after / logistic;
- average precision of the margin (its sigmoid / softmax) and of the posterior: binary, the same
  to the last digit (the map is monotone); K classes, the macro one-vs-rest average precision,
  which may move (the map keeps each row's order of classes, not the order of rows within a class).

Datasets above ``--max-rows`` rows (default 12,000) are replaced by a stratified random subsample
(seed 0; the table says which); ``bank_marketing`` without ``duration`` (it leaks the label).
Multi-class classes with fewer than 10 rows are merged. About 2 minutes on 2 cores.

Usage::

    python benchmarks/posterior_real_data.py                     # every dataset
    python benchmarks/posterior_real_data.py --datasets mammography,ecoli
    python benchmarks/posterior_real_data.py --docs   # also rewrite docs/losses.md's block
"""

import argparse
import os
import pathlib
import sys
import time
import warnings

import numpy as np
from scipy.special import expit, softmax
from sklearn.metrics import average_precision_score, log_loss
from sklearn.model_selection import StratifiedKFold

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from boostloss import FocalLoss, LGBMClassifier, XGBClassifier  # noqa: E402
from boostloss import compare as cmp  # noqa: E402

BINARY = [
    "mammography",
    "abalone_19",
    "yeast_me2",
    "letter_img",
    "coil_2000",
    "bank_marketing",
    "covertype_cottonwood",
]
#: Per-dataset options of boostloss.compare.load_table (as benchmarks/real_data.py reads them).
OPTIONS = {"bank_marketing": {"drop": ["duration"], "na_values": ["unknown"]}}
MULTICLASS = ["ecoli", "yeast", "thyroid", "shuttle"]
ROUNDS = (50, 300)
LEARNING_RATE = 0.05
PAGE = ROOT / "docs" / "losses.md"
START, END = "<!-- posterior-real-data:start -->", "<!-- posterior-real-data:end -->"


def data_dir(kind):
    if kind == "binary":
        return pathlib.Path(
            os.environ.get("BOOSTLOSS_DATASETS", ROOT.parent / "shared" / "datasets")
        )
    return pathlib.Path(
        os.environ.get(
            "BOOSTLOSS_DATASETS_MULTICLASS", ROOT.parent / "shared" / "datasets-multiclass"
        )
    )


def load(name, kind, max_rows):
    path = data_dir(kind) / name / "data.csv.gz"
    options = {"merge_rare": 10} if kind == "multiclass" else dict(OPTIONS.get(name, {}))
    full = cmp.load_table(path, "y", **options)
    note = ""
    if full.y.shape[0] > max_rows:
        note = f"subsample {max_rows:,} of {full.y.shape[0]:,}"
        full = cmp.load_table(path, "y", max_rows=max_rows, seed=0, **options)
    return full, note


def make(backend, loss):
    if backend == "xgboost":
        return XGBClassifier(
            loss=loss,
            n_estimators=ROUNDS[-1],
            learning_rate=LEARNING_RATE,
            enable_categorical=True,
            tree_method="hist",
            n_jobs=2,
            random_state=0,
        )
    return LGBMClassifier(
        loss=loss,
        n_estimators=ROUNDS[-1],
        learning_rate=LEARNING_RATE,
        n_jobs=2,
        random_state=0,
        verbose=-1,
    )


def predictions(clf, X, rounds):
    """(probabilities, margins) of ``clf`` on ``X`` using its first ``rounds`` rounds."""
    if isinstance(clf, XGBClassifier):
        limit = dict(iteration_range=(0, rounds))
        return clf.predict_proba(X, **limit), clf.predict(X, output_margin=True, **limit)
    return (
        clf.predict_proba(X, num_iteration=rounds),
        clf.predict(X, raw_score=True, num_iteration=rounds),
    )


def link(margin):
    return (
        np.column_stack([expit(-margin), expit(margin)])
        if margin.ndim == 1
        else softmax(margin, axis=1)
    )


def average_precision(y, proba):
    if proba.shape[1] == 2:
        return average_precision_score(y, proba[:, 1])
    return float(
        np.mean([average_precision_score(y == k, proba[:, k]) for k in range(proba.shape[1])])
    )


def run(name, kind, max_rows):
    dataset, note = load(name, kind, max_rows)
    X, y = dataset.X, np.asarray(dataset.y, dtype=np.int64)
    n_classes = int(y.max()) + 1
    focal = FocalLoss(gamma=2.0, alpha=0.25) if n_classes == 2 else FocalLoss(gamma=2.0)
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))
    rows = []
    for backend in ("xgboost", "lightgbm"):
        pooled = {
            (which, r): np.empty((y.shape[0], n_classes))
            for which in ("logistic", "before", "after")
            for r in ROUNDS
        }
        margins = dict.fromkeys(ROUNDS)
        for train, test in folds:
            logistic = make(backend, None).fit(X.iloc[train], y[train])
            model = make(backend, focal).fit(X.iloc[train], y[train])
            for r in ROUNDS:
                pooled["logistic", r][test] = predictions(logistic, X.iloc[test], r)[0]
                after, margin = predictions(model, X.iloc[test], r)
                pooled["after", r][test] = after
                pooled["before", r][test] = link(margin)
                if margins[r] is None:
                    margins[r] = np.empty((y.shape[0],) + margin.shape[1:])
                margins[r][test] = margin
        for r in ROUNDS:
            losses = {
                which: log_loss(y, pooled[which, r], labels=np.arange(n_classes))
                for which in ("logistic", "before", "after")
            }
            rows.append(
                dict(
                    dataset=name,
                    note=note,
                    kind=kind,
                    backend=backend,
                    rounds=r,
                    logistic=losses["logistic"],
                    before=losses["before"],
                    after=losses["after"],
                    ratio=losses["after"] / losses["logistic"],
                    ap_margin=(
                        average_precision_score(y, margins[r])
                        if n_classes == 2
                        else average_precision(y, pooled["before", r])
                    ),
                    ap_posterior=average_precision(y, pooled["after", r]),
                )
            )
    return rows


def table(rows):
    head = (
        "| dataset | backend | rounds | logistic | focal before | focal after | after / logistic "
        "| AP margin | AP posterior |"
    )
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        name = row["dataset"] + (f" ({row['note']})" if row["note"] else "")
        lines.append(
            f"| {name} | {row['backend']} | {row['rounds']} | {row['logistic']:.4f} | "
            f"{row['before']:.4f} | {row['after']:.4f} | {row['ratio']:.3f} | "
            f"{row['ap_margin']:.4f} | {row['ap_posterior']:.4f} |"
        )
    return "\n".join(lines)


def summary(rows):
    lines = []
    for kind in ("binary", "multiclass"):
        part = [r for r in rows if r["kind"] == kind]
        if not part:
            continue
        within = sum(r["ratio"] <= 1.05 for r in part)
        worst = max(part, key=lambda r: r["ratio"])
        before = max(r["before"] / r["logistic"] for r in part)
        same_ap = sum(r["ap_margin"] == r["ap_posterior"] for r in part)
        moved = max(abs(r["ap_margin"] - r["ap_posterior"]) for r in part)
        lines.append(
            f"{kind}: focal's log loss after the map is within 5% of logistic's in {within} of "
            f"{len(part)} cells (worst {worst['ratio']:.3f}: {worst['dataset']}, "
            f"{worst['backend']}, {worst['rounds']} rounds); before, up to {before:.2f}x; "
            f"average precision identical in {same_ap} of {len(part)} "
            f"(largest difference {moved:.1e})"
        )
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", help="comma-separated names (default: all)")
    parser.add_argument("--max-rows", type=int, default=12_000)
    parser.add_argument("--docs", action="store_true", help=f"rewrite the block of {PAGE.name}")
    args = parser.parse_args(argv)
    wanted = None if args.datasets is None else set(args.datasets.split(","))
    rows = []
    started = time.perf_counter()
    for kind, names in (("binary", BINARY), ("multiclass", MULTICLASS)):
        for name in names:
            if wanted is not None and name not in wanted:
                continue
            if not (data_dir(kind) / name / "data.csv.gz").exists():
                print(f"skipped {name}: not in {data_dir(kind)}")
                continue
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                rows.extend(run(name, kind, args.max_rows))
            print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
    text = table(rows)
    print(text)
    for line in summary(rows):
        print(line)
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.docs:
        page = PAGE.read_text(encoding="utf-8")
        head, _, rest = page.partition(START)
        _, _, tail = rest.partition(END)
        block = "\n".join([START, text, "", *[f"- {line}" for line in summary(rows)], END])
        PAGE.write_text(head + block + tail, encoding="utf-8")


if __name__ == "__main__":
    main()
