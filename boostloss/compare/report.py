"""The report of ``boostloss compare``: fold summaries, the best per metric, the table, the files.

Works on what :func:`~boostloss.compare.cross_validate` returned; trains nothing. Where the files
go (temporary names, the final rename) is the command line's business: the writers here take an
open destination.
"""

import csv
import json
import math

import numpy as np

from .registry import METRICS, absent_reason

__all__ = [
    "DECIMALS",
    "best_per_metric",
    "compare_figure",
    "print_table",
    "results_document",
    "summarize",
    "write_document",
]

#: Metric key -> decimals shown in the table (and used to find the best rows as shown).
DECIMALS = {"average_precision": 4, "roc_auc": 4, "log_loss": 4, "brier": 4, "fit_seconds": 2}


def summarize(records):
    """Mean and standard deviation over folds of each metric, one row per (backend, loss).

    Returns
    -------
    list of dict
        Keys ``backend``, ``loss``, ``folds``, and ``<metric>_mean`` / ``<metric>_std`` for every
        metric of :data:`~boostloss.compare.METRICS`; in the order the configurations first
        appear in ``records``.
    """
    groups = {}
    for record in records:
        groups.setdefault((record["backend"], record["loss"]), []).append(record)
    rows = []
    for (backend, loss), group in groups.items():
        row = {"backend": backend, "loss": loss, "folds": len(group)}
        for metric in METRICS:
            values = np.array([r[metric] for r in group], dtype=float)
            row[f"{metric}_mean"] = float(values.mean())
            row[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        rows.append(row)
    return rows


def best_per_metric(rows, decimals=None):
    """Indices of the best rows (by the fold mean) for each metric of :data:`~boostloss.compare.METRICS`.

    Parameters
    ----------
    rows : list of dict
        As returned by :func:`summarize`.
    decimals : dict, optional
        ``metric -> number of decimals``: compare the means rounded as they are shown, so that
        every row that looks best is marked.

    Returns
    -------
    dict
        ``metric -> set of row indices``; every tied row is included.
    """
    decimals = decimals or {}
    best = {}
    for metric, (_, larger_is_better) in METRICS.items():
        means = np.array([row[f"{metric}_mean"] for row in rows])
        if metric in decimals:
            means = np.round(means, decimals[metric])
        target = means.max() if larger_is_better else means.min()
        best[metric] = {i for i, m in enumerate(means) if math.isclose(m, target, rel_tol=1e-12, abs_tol=0.0)}
    return best


def _format(metric, mean, std):
    places = DECIMALS[metric]
    if metric == "fit_seconds":
        return f"{mean:.{places}f}"
    return f"{mean:.{places}f} ± {std:.{places}f}"


def print_table(console, dataset, config, rows):
    """Print the dataset line, the protocol line and the table of ``rows`` on a rich console."""
    from rich.table import Table

    n, n_pos = dataset.y.shape[0], dataset.n_positive
    categorical = len(dataset.categorical_columns)
    console.print(
        f"[bold]{dataset.name}[/bold]: {n} rows, {dataset.X.shape[1]} features"
        f" ({categorical} categorical), {n_pos} positive ({n_pos / n:.2%})"
    )
    console.print(
        f"{config.folds}-fold stratified CV, {config.rounds} rounds, learning rate "
        f"{config.learning_rate:g}, seed {config.seed}; mean ± std over folds"
    )
    best = best_per_metric(rows, decimals=DECIMALS)
    table = Table(show_lines=False)
    table.add_column("backend")
    table.add_column("loss")
    for title, larger in METRICS.values():
        arrow = "↑" if larger else "↓"
        table.add_column(f"{title} {arrow}", justify="right")
    for i, row in enumerate(rows):
        cells = [row["backend"], config.loss_label(row["loss"])]
        for metric in METRICS:
            text = _format(metric, row[f"{metric}_mean"], row[f"{metric}_std"])
            cells.append(f"[bold green]{text} *[/bold green]" if i in best[metric] else f"{text}  ")
        table.add_row(*cells)
    console.print(table)
    console.print("* best in its column (fold mean, as shown); ↑ larger is better, ↓ smaller is better")
    for backend in config.backends:
        for loss in config.losses:
            why = absent_reason(backend, loss)
            if why:
                console.print(f"no {backend} row for {config.loss_label(loss)}: {why}")


def results_document(dataset, config, result, rows):
    """Everything worth keeping, as plain JSON values: the dataset, the config, folds and summary."""
    return {
        "dataset": {
            "name": dataset.name,
            "description": dataset.description,
            "rows": int(dataset.y.shape[0]),
            "features": int(dataset.X.shape[1]),
            "categorical_features": dataset.categorical_columns,
            "positives": dataset.n_positive,
        },
        "config": config.as_dict(),
        "folds": result.records,
        "summary": rows,
    }


def write_document(handle, document, fmt):
    """Write ``document`` to the open text file ``handle``.

    ``fmt="json"``: the whole document; ``fmt="csv"``: one row per fold, with the dataset's name
    in a first column.
    """
    if fmt == "json":
        handle.write(json.dumps(document, indent=2) + "\n")
        return
    records = document["folds"]
    writer = csv.DictWriter(handle, fieldnames=["dataset", *records[0].keys()])
    writer.writeheader()
    for record in records:
        writer.writerow({"dataset": document["dataset"]["name"], **record})


def compare_figure(dataset, config, result):
    """The figure of ``--plot`` (see :func:`boostloss.compare.plot.draw_compare_figure`).

    The gradient-norm histograms come from the first backend of ``config``, on the rows of the
    first fold's training set; ``result`` must come from ``cross_validate(...,
    keep_first_fold=True)``.
    """
    from .plot import draw_compare_figure, plot_rounds
    from .protocol import staged_probabilities

    backend = config.backends[0]
    train = result.first_fold["train_index"]
    X_train, y_train = dataset.X.iloc[train], dataset.y[train]
    staged = {}
    for loss in config.losses:
        estimator = result.first_fold.get((backend, loss))
        if estimator is None:
            continue  # no row for this backend (see LossSpec.absent)
        try:
            by_round = staged_probabilities(estimator, backend, X_train, plot_rounds(config.rounds))
        except TypeError:
            continue  # the estimator cannot predict with a prefix of its trees
        staged[loss] = (y_train, by_round)
    labels = {loss: config.loss_label(loss) for loss in config.losses}
    return draw_compare_figure(dataset.y, result.oof_proba, staged, backend, labels)
