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
from .scoring import ECE_BINS
from .verdict import LEVEL, TEST_NAME, verdict_sentence, verdicts

__all__ = [
    "DECIMALS",
    "best_per_metric",
    "compare_figure",
    "flag_codes",
    "flag_legend",
    "flag_lines",
    "grid_lines",
    "print_table",
    "results_tables",
    "results_document",
    "summarize",
    "tie_lines",
    "tuning_lines",
    "write_document",
]

#: Metric key -> decimals shown in the table (and used to find the best rows as shown).
DECIMALS = {
    "average_precision": 4,
    "roc_auc": 4,
    "log_loss": 4,
    "brier": 4,
    "ece": 4,
    "fit_seconds": 2,
    "rarest_ap": 4,
    "balanced_accuracy": 4,
    "macro_f1": 4,
}

#: Every column, binary and multi-class: key -> larger is better.
_LARGER_IS_BETTER = {
    key: metric.larger_is_better for key, metric in {**METRICS, **MULTICLASS_METRICS}.items()
}


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
        Keys ``backend``, ``loss``, ``folds`` (resamples: folds x repeats), ``probability``
        (``"posterior"``, or ``"score"`` for a loss whose probabilities are not the class
        posterior: GHM-C, OHEM), ``<metric>_mean`` /
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
        if loss in LOSSES:
            row["probability"] = "posterior" if LOSSES[loss].posterior else "score"
        for metric in _metric_keys(group[0]):
            values = np.array([r[metric] for r in group], dtype=float)
            row[f"{metric}_mean"] = float(values.mean())
            row[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        if "rounds" in group[0]:
            rounds = np.array([r["rounds"] for r in group])
            row.update(
                rounds_median=float(np.median(rounds)),
                rounds_min=int(rounds.min()),
                rounds_max=int(rounds.max()),
            )
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
    """``30% of rows at p = 0.465, 0.4% positive`` (K classes: that class's probability, share)."""
    which = "" if "class" not in block else f" of class {block['class']}"
    observed = "positive" if "class" not in block else "of that class"
    return (
        f"{block['share']:.0%} of rows at p{which} = {block['value']:.3g}, "
        f"{block['positive_rate']:.1%} {observed}"
    )


def best_per_metric(
    rows: Sequence[Mapping[str, Any]], decimals: Mapping[str, int] | None = None
) -> dict[str, set[int]]:
    """Indices of the best rows (by fold mean) per metric of :data:`~boostloss.compare.METRICS`.

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
        best[metric] = {
            i for i, m in enumerate(means) if math.isclose(m, target, rel_tol=1e-12, abs_tol=0.0)
        }
    return best


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


#: The codes of the flags column -> what they mean (a legend under the table lists the ones used).
FLAG_CODES = {
    "C": "Cn: collapsed on n folds (one value for every row, or chance ranking; line below)",
    "T": (
        "Tn: on n folds >= 5% of the rows share one probability, off their observed rate "
        "(line below)"
    ),
    "S": (
        "S: a score, not the class posterior (no closed-form map): {columns} judge it "
        "uncalibrated; CalibratedClassifierCV calibrates it (docs/compare.md)"
    ),
}


def flag_codes(row):
    """The flags of a summary row as short codes (:data:`FLAG_CODES`): ``C2`` collapsed on 2
    folds, ``T3`` a miscalibrated tie block on 3 folds, ``S`` a score rather than a posterior."""
    codes = []
    if row.get("degenerate_folds"):
        codes.append(f"C{row['degenerate_folds']}")
    if row.get("tie_block_folds"):
        codes.append(f"T{row['tie_block_folds']}")
    if row.get("probability") == "score" or (
        row.get("loss") in LOSSES and not LOSSES[row["loss"]].posterior
    ):
        codes.append("S")
    return codes


def flag_legend(rows):
    """One line explaining the flag codes that ``rows`` use (empty when none is used)."""
    used = {code[0] for row in rows for code in flag_codes(row)}
    columns = "log loss, Brier and ECE" if "brier_mean" in rows[0] else "log loss and ECE"
    return "; ".join(
        text.format(columns=columns) for code, text in FLAG_CODES.items() if code in used
    )


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
            lines.append(
                f"! {label} collapsed on fold {folds} of {len(group)}: {collapsed[0]['degenerate']}"
            )
        tied = [r for r in group if _flagged_tie(r) is not None]
        if tied:
            worst = max(tied, key=lambda r: r["tie_block"]["share"])
            block = worst["tie_block"]
            which, observed = "", "of them are positive"
            if "class" in block:
                which, observed = f" of class {block['class']}", "of them are of that class"
            lines.append(
                f"! {label} predicts one probability for a block of rows on {len(tied)} of "
                f"{len(group)} folds: on fold {_fold_name(worst, config)}, {block['rows']} "
                "held-out rows "
                f"({block['share']:.0%}) share p{which} = {block['value']:.3g} while "
                f"{block['positive_rate']:.1%} {observed}"
            )
    return lines


def tie_lines(records, config):
    """One line per configuration whose tie blocks are all within the Wilson interval of their
    observed rate (the miscalibrated ones are in :func:`flag_lines`): the largest block. For the
    JSON's ``tie_notes`` only; the printed report leaves out what needs no attention."""
    lines = []
    for (backend, loss), group in _by_configuration(records).items():
        largest = _largest_block(group)
        if largest is None or any(_flagged_tie(r) for r in group):
            continue
        folds = sum(bool(_blocks(r)) for r in group)
        record, block = largest
        lines.append(
            f"{backend} {config.loss_label(loss)} has a tie block on {folds} of {len(group)} "
            "folds, "
            f"its probability within the observed rate: on fold {_fold_name(record, config)}, "
            f"{block['rows']} held-out rows ({_block_words(block)})"
        )
    return lines


def _tie_document(records):
    """``"backend/loss" -> every tie block, with repeat and fold`` (the JSON's ``tie_blocks``)."""
    out = {}
    for (backend, loss), group in _by_configuration(records).items():
        blocks = [
            {"repeat": r.get("repeat", 0), "fold": r["fold"], **b}
            for r in group
            for b in _blocks(r)
        ]
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


def _metric_cell(metric, mean, std, best, stacked):
    """A metric's cell: ``mean ± std`` (``stacked``: the spread on a second line), ``*`` if best."""
    places = DECIMALS[metric]
    mark = "*" if best else " "
    if metric == "fit_seconds":
        text = f"{mean:.{places}f}{mark}"
    elif stacked:
        text = f"{mean:.{places}f}{mark}\n±{std:.{places}f} "
    else:
        text = f"{mean:.{places}f} ± {std:.{places}f}{mark}"
    return f"[bold green]{text}[/bold green]" if best else text


def _header(title, larger, stacked):
    """A metric's column title with its arrow; ``stacked``: on lines as narrow as the cells."""
    arrow = "↑" if larger else "↓"
    if not stacked or len(title) + 2 <= _STACKED_CELL_WIDTH:
        return f"{title} {arrow}"
    if len(title) <= _STACKED_CELL_WIDTH:
        return f"{title}\n{arrow}"
    return f"{title} {arrow}".replace(" ", "\n", title.count(" "))


def _build_table(config, rows, stacked, gap=2, metrics=None, tail=True):
    """The table of ``rows``: one line per configuration, or (``stacked``, to fit a narrow
    console) two, with the spreads and the rounds' ranges on the second line and each backend's
    name above its rows instead of a backend column; ``gap`` (1 or 2) spaces between columns
    (1: a narrower loss column too);
    the metric columns ``metrics`` (None: all), and (``tail``) the rounds, settings and flags.
    Only the loss and settings columns wrap (at spaces) when the console is narrower still."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    best = best_per_metric(rows, decimals=DECIMALS)
    columns = metrics_of(config.multiclass)
    metrics = list(columns) if metrics is None else metrics
    labels = [escape(config.loss_label(row["loss"])) for row in rows]
    longest_word = max(len(word) for label in labels for word in label.split())
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, gap - 1),
        collapse_padding=True,
        header_style="bold",
    )
    if not stacked:
        table.add_column("backend", no_wrap=True)
    loss_width = _STACKED_LOSS_WIDTH if gap > 1 else _COMPACT_LOSS_WIDTH
    table.add_column(
        "loss",
        overflow="fold",
        min_width=longest_word,
        max_width=max(loss_width, longest_word) if stacked else None,
    )
    for metric in metrics:
        title, larger = columns[metric]
        table.add_column(_header(title, larger, stacked), justify="right", no_wrap=True)
    if tail:
        table.add_column("rounds", justify="right", no_wrap=True)
        if config.tune:
            table.add_column(
                "setting (folds)",
                overflow="fold",
                max_width=_STACKED_LOSS_WIDTH if stacked else None,
            )
        table.add_column("flags", no_wrap=True)
    backend = None
    for i, row in enumerate(rows):
        if stacked and row["backend"] != backend:
            backend = row["backend"]
            table.add_row(f"[bold]{escape(backend)}[/bold]")
        cells = [] if stacked else [row["backend"]]
        cells.append(labels[i])
        for metric in metrics:
            cells.append(
                _metric_cell(
                    metric, row[f"{metric}_mean"], row[f"{metric}_std"], i in best[metric], stacked
                )
            )
        if tail:
            rounds = _rounds_cell(row, config) if "rounds_min" in row else str(config.rounds)
            cells.append(rounds.replace(" (", "\n(") if stacked else rounds)
            if config.tune:
                cells.append(escape(_settings_cell(row)))
            codes = flag_codes(row)
            alarming = any(code[0] in "CT" for code in codes)
            text = " ".join(codes) or "–"
            cells.append(f"[bold red]{text}[/bold red]" if alarming else text)
        table.add_row(*cells)
    return table


_UNBOUNDED = 1_000_000

#: Width of the loss column of the stacked table (longer labels fold onto more lines), and with
#: one space between columns.
_STACKED_LOSS_WIDTH = 15
_COMPACT_LOSS_WIDTH = 12
#: Width of a metric's cells in the stacked table (``±0.0793`` and a mark).
_STACKED_CELL_WIDTH = 8


def results_tables(console, config, rows):
    """The table of ``rows`` as wide as ``console`` allows, as a list of tables to print.

    One line per configuration where it fits; else two (each metric's spread under its mean);
    else two with one space between columns; else the metric columns split over two tables
    (the loss labels wrap at spaces, and rich cuts what even that cannot fit).
    """
    from rich.measure import Measurement

    unbounded = console.options.update(max_width=_UNBOUNDED)  # the width it wants, not the clamp

    def fits(table):
        return Measurement.get(console, unbounded, table).maximum <= console.width

    for stacked, gap in ((False, 2), (True, 2), (True, 1)):
        table = _build_table(config, rows, stacked, gap)
        if fits(table):
            return [table]
    metrics = list(metrics_of(config.multiclass))
    half = (len(metrics) + 1) // 2
    gap = 2 if fits(_build_table(config, rows, True, 2, metrics[half:])) else 1
    return [
        _build_table(config, rows, True, gap, metrics[:half], tail=False),
        _build_table(config, rows, True, gap, metrics[half:]),
    ]


def print_table(console, dataset, config, rows, records=None):
    """Print the dataset and protocol lines, the table of ``rows`` and, given the fold
    ``records``, the flags, the tuning choices and the verdict, wrapped to the console's width.

    Under the table: what the marks mean, the flag codes used (:data:`FLAG_CODES`), and one
    line per collapsed fold or tie block off its observed rate (:func:`flag_lines`); tie blocks
    whose probability fits their rate are in the JSON only.
    """
    from rich.markup import escape

    console.print(f"[bold]{escape(dataset.name)}[/bold]: {escape(_dataset_words(dataset))}")
    for note in getattr(dataset, "notes", ()):
        console.print(escape(f"note: {note}"))
    console.print(escape(config.protocol_words()) + "; mean ± std over folds")
    for line in grid_lines(config):
        console.print(escape(line))
    for table in results_tables(console, config, rows):
        console.print(table)
    rounds_note = (
        "; rounds: median (min–max) over folds, chosen by early stopping"
        if config.early_stopping
        else ""
    )
    console.print(
        "* best in its column (as shown); ↑ larger, ↓ smaller is better; log loss, "
        + ("ECE" if config.multiclass else "Brier, ECE")
        + f" ({ECE_BINS} bins) of the posterior (weighted rows: class weights undone)"
        + rounds_note
    )
    if config.multiclass:
        console.print(escape(_multiclass_note(dataset)))
    legend = flag_legend(rows)
    if legend:
        console.print(escape(f"flags: {legend}"))
    for line in config.absent_lines():
        console.print(escape(line))
    if records is None:
        return
    for line in flag_lines(records, config) + tuning_lines(records, config):
        console.print(escape(line))
    metric_words = ("macro " if config.multiclass else "") + SELECTION_METRICS_WORDS[config.metric]
    console.print(
        f"[bold]Verdict[/bold] ({escape(metric_words)}, "
        f"{TEST_NAME}, clearly better: p < {LEVEL:g}):"
    )
    for backend, verdict in verdicts(records, config).items():
        console.print(escape(verdict_sentence(backend, verdict, config)))


SELECTION_METRICS_WORDS = {"ap": "average precision", "logloss": "log loss", "auc": "ROC-AUC"}


def _dataset_words(dataset):
    """``400 rows, 30 features (0 categorical), 43 positive (10.75%)``; multi-class: the classes."""
    n = dataset.y.shape[0]
    head = (
        f"{n} rows, {dataset.X.shape[1]} features "
        f"({len(dataset.categorical_columns)} categorical), "
    )
    if dataset.n_classes == 2:
        return head + f"{dataset.n_positive} positive ({dataset.n_positive / n:.2%})"
    counts = ", ".join(
        f"{label} {count}"
        for label, count in zip(dataset.classes, dataset.class_counts, strict=True)
    )
    return head + f"{dataset.n_classes} classes ({counts})"


def _multiclass_note(dataset):
    rarest = dataset.rarest_class
    return (
        f"{dataset.n_classes} classes: macro = one-vs-rest averaged over the classes; AP rarest = "
        f"AP of class {dataset.classes[rarest]!r} ({dataset.class_counts[rarest]} rows); balanced "
        "accuracy and macro F1 of the most probable class"
    )


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
        document["classes"] = {
            label: int(c) for label, c in zip(dataset.classes, dataset.class_counts, strict=True)
        }
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
            "final_model": (
                "refit on the whole training fold with the rounds (and settings) chosen on "
                "the inner validation split"
                if config.early_stopping or config.tune
                else "trained on the whole training fold with the fixed rounds"
            ),
            "tuning_grids": {loss: config.grid(loss) for loss in config.losses}
            if config.tune
            else {},
            "verdict_test": TEST_NAME,
            "calibration": {
                "ece_bins": ECE_BINS,
                "ece": (
                    "expected calibration error: sum over equal-width bins of the share of rows "
                    "times |mean predicted probability - observed rate|; "
                    + (
                        "the top label's probability against its accuracy"
                        if config.multiclass
                        else "the positive class's posterior against the positive rate"
                    )
                ),
                "posterior": (
                    "log loss, Brier and ECE judge the class posterior from the margins: "
                    "FocalLoss.predict_proba for focal, the class weights undone for "
                    "the weighted logistic rows, the probabilities themselves for the "
                    "built-in objectives; GHM-C's and OHEM's are a score (summary "
                    "'probability')"
                ),
            },
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
    """The figure of ``--plot`` (see :func:`boostloss.compare.plot.draw_compare_figure`):
    precision-recall curves and reliability diagrams per backend, gradient-norm histograms.

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
            by_round = staged_probabilities(
                estimator, backend, X_train, plot_rounds(trees), multiclass=config.multiclass
            )
        except TypeError:
            continue  # the estimator cannot predict with a prefix of its trees
        staged[loss] = (y_train, by_round)
    labels = {loss: config.loss_label(loss) for loss in config.losses}
    rarest = None
    if config.multiclass:
        rarest = (dataset.rarest_class, dataset.classes[dataset.rarest_class])
    scores = {loss for loss in config.losses if not LOSSES[loss].posterior}
    return draw_compare_figure(
        dataset.y,
        result.oof_proba,
        staged,
        backend,
        labels,
        rarest=rarest,
        oof_posterior=getattr(result, "oof_posterior", None) or None,
        scores=scores,
    )
