"""The report of ``boostloss compare``: fold summaries, the best per metric, the table, the files.

Works on what :func:`~boostloss.compare.cross_validate` returned; trains nothing. Where the files
go (temporary names, the final rename) is the command line's business: the writers here take an
open destination.
"""

from __future__ import annotations

import collections
import csv
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .registry import LOSSES, METRICS, MULTICLASS_METRICS, metrics_of
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
    "tie_lines",
    "tuning_lines",
    "write_document",
]

#: Metric key -> decimals shown in the table (and used to find the best rows as shown).
DECIMALS = {"average_precision": 4, "roc_auc": 4, "log_loss": 4, "brier": 4, "fit_seconds": 2,
            "rarest_ap": 4, "balanced_accuracy": 4, "macro_f1": 4}

#: Every column, binary and multi-class: key -> larger is better.
_LARGER_IS_BETTER = {key: metric.larger_is_better for key, metric in {**METRICS, **MULTICLASS_METRICS}.items()}


def _metric_keys(record):
    """The metric columns present in a record or summary row, in column order."""
    return [key for key in _LARGER_IS_BETTER if key in record or f"{key}_mean" in record]


def _by_configuration(records):
    groups: dict[tuple[str, str], list[Any]] = {}
    for record in records:
        groups.setdefault((record["backend"], record["loss"]), []).append(record)
    return groups


def _blocks(record):
    """Every tie block of a fold's record (older records carry only the largest)."""
    if "tie_blocks" in record:
        return record["tie_blocks"]
    return [record["tie_block"]] if record.get("tie_block") else []


def summarize(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over folds of each metric, one row per (backend, loss).

    Returns
    -------
    list of dict
        Keys ``backend``, ``loss``, ``folds`` (resamples: folds x repeats), ``<metric>_mean`` /
        ``<metric>_std`` for every metric the records hold (:data:`~boostloss.compare.METRICS`,
        or the multi-class columns), and, when the records carry them, ``rounds_median`` /
        ``rounds_min`` / ``rounds_max``, ``settings`` (setting -> number of folds that chose it,
        most chosen first), ``degenerate_folds``, ``tie_block_folds`` (folds with a
        miscalibrated tie block) and ``any_tie_block_folds`` (folds with any tie block); in the
        order the configurations first appear in ``records``.
    """
    rows = []
    for (backend, loss), group in _by_configuration(records).items():
        row = {"backend": backend, "loss": loss, "folds": len(group)}
        for metric in _metric_keys(group[0]):
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
            row["any_tie_block_folds"] = sum(bool(_blocks(r)) for r in group)
        rows.append(row)
    return rows


def _flagged_tie(record):
    block = record.get("tie_block")
    return block if block is not None and block["miscalibrated"] else None


def _largest_block(group):
    """(record, block) of the largest tie block over a configuration's folds, or None."""
    found = [(r, b) for r in group for b in _blocks(r)]
    return max(found, key=lambda pair: pair[1]["share"]) if found else None


def _block_words(block):
    """``30% of rows at p = 0.465, 0.4% positive`` (multi-class: the class's probability and share)."""
    which = "" if "class" not in block else f" of class {block['class']}"
    observed = "positive" if "class" not in block else "of that class"
    return (f"{block['share']:.0%} of rows at p{which} = {block['value']:.3g}, "
            f"{block['positive_rate']:.1%} {observed}")


def best_per_metric(rows: Sequence[Mapping[str, Any]],
                    decimals: Mapping[str, int] | None = None) -> dict[str, set[int]]:
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
        ``metric -> set of row indices`` for every metric the rows hold; every tied row is
        included.
    """
    decimals = decimals or {}
    best = {}
    for metric in _metric_keys(rows[0]):
        larger_is_better = _LARGER_IS_BETTER[metric]
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


def _flags_cell(row, group=()):
    """The flags of a table row: collapsed folds, and tie blocks (every one, with the largest's
    share, shared probability and observed rate; "!" when a block is miscalibrated)."""
    flags = []
    if row.get("degenerate_folds"):
        flags.append(f"collapsed {row['degenerate_folds']}/{row['folds']}")
    largest = _largest_block(group)
    tied = row.get("any_tie_block_folds") or row.get("tie_block_folds")
    if tied:
        mark = "!" if row.get("tie_block_folds") else ""
        words = ""
        if largest:
            block = largest[1]
            words = f" ({block['share']:.0%} at {block['value']:.3g}, {block['positive_rate']:.0%} obs.)"
        flags.append(f"tie block{mark} {tied}/{row['folds']}{words}")
    return ", ".join(flags) or "–"


def _fold_name(record, config):
    again = f" of repeat {record['repeat'] + 1}" if config.repeats > 1 else ""
    return f"{record['fold'] + 1}{again}"


def flag_lines(records, config):
    """One line per configuration with a collapsed fold or a miscalibrated tie block."""
    lines = []
    for (backend, loss), group in _by_configuration(records).items():
        label = f"{backend} {config.loss_label(loss)}"
        collapsed = [r for r in group if r.get("degenerate")]
        if collapsed:
            folds = ", ".join(_fold_name(r, config) for r in collapsed)
            lines.append(f"! {label} collapsed on fold {folds} of {len(group)}: {collapsed[0]['degenerate']}")
        tied = [r for r in group if _flagged_tie(r) is not None]
        if tied:
            worst = max(tied, key=lambda r: r["tie_block"]["share"])
            block = worst["tie_block"]
            which, observed = "", "of them are positive"
            if "class" in block:
                which, observed = f" of class {block['class']}", "of them are of that class"
            lines.append(
                f"! {label} predicts one probability for a block of rows on {len(tied)} of {len(group)} "
                f"folds: on fold {_fold_name(worst, config)}, {block['rows']} held-out rows "
                f"({block['share']:.0%}) share p{which} = {block['value']:.3g} while "
                f"{block['positive_rate']:.1%} {observed}"
            )
    return lines


def tie_lines(records, config):
    """One line per configuration whose tie blocks are all within the Wilson interval of their
    observed rate (the miscalibrated ones are in :func:`flag_lines`): the largest block, so the
    user can judge whether it matters."""
    lines = []
    for (backend, loss), group in _by_configuration(records).items():
        largest = _largest_block(group)
        if largest is None or any(_flagged_tie(r) for r in group):
            continue
        folds = sum(bool(_blocks(r)) for r in group)
        record, block = largest
        lines.append(
            f"{backend} {config.loss_label(loss)} has a tie block on {folds} of {len(group)} folds, "
            f"its probability within the observed rate: on fold {_fold_name(record, config)}, "
            f"{block['rows']} held-out rows ({_block_words(block)})"
        )
    return lines


def _tie_document(records):
    """``"backend/loss" -> every tie block, with its repeat and fold`` (the JSON's ``tie_blocks``)."""
    out = {}
    for (backend, loss), group in _by_configuration(records).items():
        blocks = [{"repeat": r.get("repeat", 0), "fold": r["fold"], **b} for r in group for b in _blocks(r)]
        if blocks:
            out[f"{backend}/{loss}"] = blocks
    return out


def tuning_lines(records, config):
    """With ``--tune``: per tuned configuration, the setting each fold chose."""
    if not config.tune:
        return []
    lines = []
    groups: dict[tuple[str, str], list[Any]] = {}
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
    for loss in dict.fromkeys(loss for _, loss in config.configurations()):
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

    console.print(f"[bold]{escape(dataset.name)}[/bold]: {escape(_dataset_words(dataset))}", soft_wrap=True)
    for note in getattr(dataset, "notes", ()):
        console.print(escape(f"note: {note}"), soft_wrap=True)
    console.print(escape(config.protocol_words()) + "; mean ± std over folds", soft_wrap=True)
    for line in grid_lines(config):
        console.print(escape(line), soft_wrap=True)
    best = best_per_metric(rows, decimals=DECIMALS)
    metrics = metrics_of(config.multiclass)
    groups = _by_configuration(records or [])
    table = Table(show_lines=False)
    table.add_column("backend")
    table.add_column("loss")
    for title, larger in metrics.values():
        arrow = "↑" if larger else "↓"
        table.add_column(f"{title} {arrow}", justify="right")
    table.add_column("rounds", justify="right")
    if config.tune:
        table.add_column("setting (folds)")
    table.add_column("flags")
    for i, row in enumerate(rows):
        cells = [row["backend"], escape(config.loss_label(row["loss"]))]
        for metric in metrics:
            text = _format(metric, row[f"{metric}_mean"], row[f"{metric}_std"])
            cells.append(f"[bold green]{text} *[/bold green]" if i in best[metric] else f"{text}  ")
        cells.append(_rounds_cell(row, config) if "rounds_min" in row else str(config.rounds))
        if config.tune:
            cells.append(escape(_settings_cell(row)))
        flags = escape(_flags_cell(row, groups.get((row["backend"], row["loss"]), ())))
        alarming = row.get("degenerate_folds") or row.get("tie_block_folds")
        cells.append(f"[bold red]{flags}[/bold red]" if alarming else flags)
        table.add_row(*cells)
    console.print(table)
    rounds_note = ("; rounds: median (min–max) over folds, chosen by early stopping"
                   if config.early_stopping else "")
    console.print("* best in its column (fold mean, as shown); ↑ larger is better, ↓ smaller is better"
                  + rounds_note, soft_wrap=True)
    if config.multiclass:
        console.print(escape(_multiclass_note(dataset)), soft_wrap=True)
    for line in config.absent_lines():
        console.print(escape(line), soft_wrap=True)
    if records is None:
        return
    for line in flag_lines(records, config) + tie_lines(records, config) + tuning_lines(records, config):
        console.print(escape(line), soft_wrap=True)
    metric_words = ("macro " if config.multiclass else "") + SELECTION_METRICS_WORDS[config.metric]
    console.print(f"[bold]Verdict[/bold] ({escape(metric_words)}, "
                  f"{TEST_NAME}, clearly better: p < {LEVEL:g}):")
    for backend, verdict in verdicts(records, config).items():
        console.print(escape(verdict_sentence(backend, verdict, config)), soft_wrap=True)


SELECTION_METRICS_WORDS = {"ap": "average precision", "logloss": "log loss", "auc": "ROC-AUC"}


def _dataset_words(dataset):
    """``400 rows, 30 features (0 categorical), 43 positive (10.75%)``; multi-class: the classes."""
    n = dataset.y.shape[0]
    head = f"{n} rows, {dataset.X.shape[1]} features ({len(dataset.categorical_columns)} categorical), "
    if dataset.n_classes == 2:
        return head + f"{dataset.n_positive} positive ({dataset.n_positive / n:.2%})"
    counts = ", ".join(f"{label} {count}" for label, count in zip(dataset.classes, dataset.class_counts))
    return head + f"{dataset.n_classes} classes ({counts})"


def _multiclass_note(dataset):
    rarest = dataset.rarest_class
    return (f"{dataset.n_classes} classes: macro = one-vs-rest averaged over the classes; AP rarest = "
            f"AP of class {dataset.classes[rarest]!r} ({dataset.class_counts[rarest]} rows); balanced "
            "accuracy and macro F1 of the most probable class")


def _dataset_document(dataset):
    document = {
        "name": dataset.name,
        "description": dataset.description,
        "rows": int(dataset.y.shape[0]),
        "features": int(dataset.X.shape[1]),
        "categorical_features": dataset.categorical_columns,
    }
    if dataset.n_classes == 2:
        document["positives"] = dataset.n_positive
    else:
        document["classes"] = {label: int(c) for label, c in zip(dataset.classes, dataset.class_counts)}
        document["rarest_class"] = dataset.classes[dataset.rarest_class]
    return document


def results_document(dataset, config, result, rows):
    """Everything worth keeping, as plain JSON values: the dataset, the config, the protocol, the
    folds, the summary, the flags and the verdict per backend."""
    return {
        "dataset": _dataset_document(dataset),
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
        "tie_blocks": _tie_document(result.records),
        "tie_notes": tie_lines(result.records, config),
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
        flat = {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in record.items()}
        writer.writerow({"dataset": document["dataset"]["name"], **flat})


def compare_figure(dataset, config, result):
    """The figure of ``--plot`` (see :func:`boostloss.compare.plot.draw_compare_figure`).

    The gradient-norm histograms come from the first backend of ``config``, on the rows of the
    first fold's training set; ``result`` must come from ``cross_validate(...,
    keep_first_fold=True)``.
    """
    from .plot import draw_compare_figure, plot_rounds
    from .protocol import staged_probabilities

    backend = config.configurations()[0][0] if config.configurations() else config.backends[0]
    train = result.first_fold["train_index"]
    X_train, y_train = dataset.X.iloc[train], dataset.y[train]
    staged = {}
    for loss in config.losses:
        estimator = result.first_fold.get((backend, loss))
        if estimator is None:
            continue  # no row for this backend (see LossSpec.absent)
        trees = int(estimator.get_params()["n_estimators"])
        try:
            by_round = staged_probabilities(estimator, backend, X_train, plot_rounds(trees),
                                            multiclass=config.multiclass)
        except TypeError:
            continue  # the estimator cannot predict with a prefix of its trees
        staged[loss] = (y_train, by_round)
    labels = {loss: config.loss_label(loss) for loss in config.losses}
    rarest = None
    if config.multiclass:
        rarest = (dataset.rarest_class, dataset.classes[dataset.rarest_class])
    return draw_compare_figure(dataset.y, result.oof_proba, staged, backend, labels, rarest=rarest)
