"""The report of ``boostloss compare``: fold summaries, the best per metric, the table, the files.

Works on what :func:`~boostloss.compare.cross_validate` returned; trains nothing. Where the files
go (temporary names, the final rename) is the command line's business: the writers here take an
open destination.
"""

import collections
import csv
import json
import math

import numpy as np

from .registry import LOSSES, METRICS, absent_reason
from .verdict import LEVEL, TEST_NAME, verdict_sentence, verdicts

__all__ = [
    "DECIMALS",
    "best_per_metric",
    "compare_figure",
    "flag_lines",
    "grid_lines",
    "print_table",
    "results_document",
    "summarize",
    "tuning_lines",
    "write_document",
]

#: Metric key -> decimals shown in the table (and used to find the best rows as shown).
DECIMALS = {"average_precision": 4, "roc_auc": 4, "log_loss": 4, "brier": 4, "fit_seconds": 2}


def summarize(records):
    """Mean and standard deviation over folds of each metric, one row per (backend, loss).

    Returns
    -------
    list of dict
        Keys ``backend``, ``loss``, ``folds`` (resamples: folds x repeats), ``<metric>_mean`` /
        ``<metric>_std`` for every metric of :data:`~boostloss.compare.METRICS`, and, when the
        records carry them, ``rounds_median`` / ``rounds_min`` / ``rounds_max``, ``settings``
        (setting -> number of folds that chose it, most chosen first), ``degenerate_folds`` and
        ``tie_block_folds`` (folds with a miscalibrated tie block); in the order the
        configurations first appear in ``records``.
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
        if "rounds" in group[0]:
            rounds = np.array([r["rounds"] for r in group])
            row.update(rounds_median=float(np.median(rounds)), rounds_min=int(rounds.min()),
                       rounds_max=int(rounds.max()))
        if "setting" in group[0]:
            row["settings"] = dict(collections.Counter(r["setting"] for r in group).most_common())
        if "degenerate" in group[0]:
            row["degenerate_folds"] = sum(r["degenerate"] is not None for r in group)
            row["tie_block_folds"] = sum(_flagged_tie(r) is not None for r in group)
        rows.append(row)
    return rows


def _flagged_tie(record):
    block = record.get("tie_block")
    return block if block is not None and block["miscalibrated"] else None


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


def _rounds_cell(row, config):
    if not config.early_stopping:
        return str(config.rounds)
    low, high, median = row["rounds_min"], row["rounds_max"], row["rounds_median"]
    return f"{median:g} ({low}–{high})" if low != high else str(low)


def _settings_cell(row):
    settings = row.get("settings") or {}
    if not settings or list(settings) == [""]:
        return "–"
    top, count = next(iter(settings.items()))
    return f"{top} ({count}/{row['folds']})"


def _flags_cell(row):
    flags = []
    if row.get("degenerate_folds"):
        flags.append(f"collapsed {row['degenerate_folds']}/{row['folds']}")
    if row.get("tie_block_folds"):
        flags.append(f"tie block {row['tie_block_folds']}/{row['folds']}")
    return ", ".join(flags) or "–"


def _fold_name(record, config):
    again = f" of repeat {record['repeat'] + 1}" if config.repeats > 1 else ""
    return f"{record['fold'] + 1}{again}"


def flag_lines(records, config):
    """One line per configuration with a collapsed fold or a miscalibrated tie block."""
    lines = []
    groups = {}
    for record in records:
        groups.setdefault((record["backend"], record["loss"]), []).append(record)
    for (backend, loss), group in groups.items():
        label = f"{backend} {config.loss_label(loss)}"
        collapsed = [r for r in group if r.get("degenerate")]
        if collapsed:
            folds = ", ".join(_fold_name(r, config) for r in collapsed)
            lines.append(f"! {label} collapsed on fold {folds} of {len(group)}: {collapsed[0]['degenerate']}")
        tied = [r for r in group if _flagged_tie(r) is not None]
        if tied:
            worst = max(tied, key=lambda r: r["tie_block"]["share"])
            block = worst["tie_block"]
            lines.append(
                f"! {label} predicts one probability for a block of rows on {len(tied)} of {len(group)} "
                f"folds: on fold {_fold_name(worst, config)}, {block['rows']} held-out rows "
                f"({block['share']:.0%}) share p = {block['value']:.3g} while {block['positive_rate']:.1%} "
                "of them are positive"
            )
    return lines


def tuning_lines(records, config):
    """With ``--tune``: per tuned configuration, the setting each fold chose."""
    if not config.tune:
        return []
    lines = []
    groups = {}
    for record in records:
        if record.get("setting"):
            groups.setdefault((record["backend"], record["loss"]), []).append(record)
    for (backend, loss), group in groups.items():
        chosen = "; ".join(f"{_fold_name(r, config)}: {r['setting']}" for r in group)
        lines.append(f"{backend} {LOSSES[loss].title} settings by fold: {chosen}")
    return lines


def grid_lines(config):
    """With ``--tune``: the grid of every tuned loss, in words."""
    if not config.tune:
        return []
    lines = []
    for loss in config.losses:
        grid = config.grid(loss)
        if len(grid) > 1:
            words = ", ".join(config.setting_words(loss, settings) for settings in grid)
            lines.append(f"{LOSSES[loss].title} grid ({len(grid)}): {words}")
    return lines


def print_table(console, dataset, config, rows, records=None):
    """Print the dataset and protocol lines, the table of ``rows`` and, given the fold
    ``records``, the flags, the tuning choices and the verdict."""
    from rich.markup import escape
    from rich.table import Table

    n, n_pos = dataset.y.shape[0], dataset.n_positive
    categorical = len(dataset.categorical_columns)
    console.print(
        f"[bold]{escape(dataset.name)}[/bold]: {n} rows, {dataset.X.shape[1]} features"
        f" ({categorical} categorical), {n_pos} positive ({n_pos / n:.2%})"
    )
    for note in getattr(dataset, "notes", ()):
        console.print(escape(f"note: {note}"), soft_wrap=True)
    console.print(escape(config.protocol_words()) + "; mean ± std over folds", soft_wrap=True)
    for line in grid_lines(config):
        console.print(escape(line), soft_wrap=True)
    best = best_per_metric(rows, decimals=DECIMALS)
    table = Table(show_lines=False)
    table.add_column("backend")
    table.add_column("loss")
    for title, larger in METRICS.values():
        arrow = "↑" if larger else "↓"
        table.add_column(f"{title} {arrow}", justify="right")
    table.add_column("rounds", justify="right")
    if config.tune:
        table.add_column("setting (folds)")
    table.add_column("flags")
    for i, row in enumerate(rows):
        cells = [row["backend"], escape(config.loss_label(row["loss"]))]
        for metric in METRICS:
            text = _format(metric, row[f"{metric}_mean"], row[f"{metric}_std"])
            cells.append(f"[bold green]{text} *[/bold green]" if i in best[metric] else f"{text}  ")
        cells.append(_rounds_cell(row, config) if "rounds_min" in row else str(config.rounds))
        if config.tune:
            cells.append(escape(_settings_cell(row)))
        flags = _flags_cell(row)
        cells.append(f"[bold red]{flags}[/bold red]" if flags != "–" else flags)
        table.add_row(*cells)
    console.print(table)
    rounds_note = ("; rounds: median (min–max) over folds, chosen by early stopping"
                   if config.early_stopping else "")
    console.print("* best in its column (fold mean, as shown); ↑ larger is better, ↓ smaller is better"
                  + rounds_note, soft_wrap=True)
    for backend in config.backends:
        for loss in config.losses:
            why = absent_reason(backend, loss)
            if why:
                console.print(escape(f"no {backend} row for {config.loss_label(loss)}: {why}"),
                              soft_wrap=True)
    if records is None:
        return
    for line in flag_lines(records, config) + tuning_lines(records, config):
        console.print(escape(line), soft_wrap=True)
    console.print(f"[bold]Verdict[/bold] ({escape(SELECTION_METRICS_WORDS[config.metric])}, "
                  f"{TEST_NAME}, clearly better: p < {LEVEL:g}):")
    for backend, verdict in verdicts(records, config).items():
        console.print(escape(verdict_sentence(backend, verdict, config)), soft_wrap=True)


SELECTION_METRICS_WORDS = {"ap": "average precision", "logloss": "log loss", "auc": "ROC-AUC"}


def results_document(dataset, config, result, rows):
    """Everything worth keeping, as plain JSON values: the dataset, the config, the protocol, the
    folds, the summary, the flags and the verdict per backend."""
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
        "protocol": {
            "description": config.protocol_words(),
            "final_model": ("refit on the whole training fold with the rounds (and settings) chosen on "
                            "the inner validation split" if config.early_stopping or config.tune
                            else "trained on the whole training fold with the fixed rounds"),
            "tuning_grids": {loss: config.grid(loss) for loss in config.losses} if config.tune else {},
            "verdict_test": TEST_NAME,
        },
        "folds": result.records,
        "summary": rows,
        "flags": flag_lines(result.records, config),
        "verdict": verdicts(result.records, config),
    }


def write_document(handle, document, fmt):
    """Write ``document`` to the open text file ``handle``.

    ``fmt="json"``: the whole document; ``fmt="csv"``: one row per fold, with the dataset's name
    in a first column (nested values, such as the tuned settings, as JSON text).
    """
    if fmt == "json":
        handle.write(json.dumps(document, indent=2) + "\n")
        return
    records = document["folds"]
    writer = csv.DictWriter(handle, fieldnames=["dataset", *records[0].keys()])
    writer.writeheader()
    for record in records:
        flat = {k: json.dumps(v) if isinstance(v, dict) else v for k, v in record.items()}
        writer.writerow({"dataset": document["dataset"]["name"], **flat})


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
        trees = int(estimator.get_params()["n_estimators"])
        try:
            by_round = staged_probabilities(estimator, backend, X_train, plot_rounds(trees))
        except TypeError:
            continue  # the estimator cannot predict with a prefix of its trees
        staged[loss] = (y_train, by_round)
    labels = {loss: config.loss_label(loss) for loss in config.losses}
    return draw_compare_figure(dataset.y, result.oof_proba, staged, backend, labels)
