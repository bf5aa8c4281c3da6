"""The ``boostloss`` command line.

``boostloss compare [DATA --target COLUMN]`` cross-validates the built-in logistic loss, the
class-weighted logistic loss, focal loss and GHM-C on XGBoost and LightGBM, and prints one table of
average precision, ROC-AUC, log loss, Brier score and fit time. Without DATA it runs on a built-in
imbalanced dataset (see :func:`boostloss.compare.load_default_dataset`).

Bad input (missing or unreadable file, unknown target column, target that is not binary, ...)
gives a one-line message on stderr and exit status 2, and leaves no output file behind.
"""

import argparse
import contextlib
import csv
import json
import os
import pathlib
import sys

from . import compare as cmp

__all__ = ["main"]

_OUTPUT_SUFFIXES = (".json", ".csv")
_PLOT_SUFFIXES = (".png", ".pdf", ".svg")


class _UsageError(Exception):
    """A bad option or path, found before any training."""


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors on one line."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(convert, accept, what):
    """An argparse type: ``convert(text)`` that ``accept`` allows, else an error naming ``what``."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_positive_float = _number(float, lambda v: 0.0 < v < float("inf"), "a positive number")
_gamma = _number(float, lambda v: 0.0 <= v < float("inf"), "a number >= 0")


def _alpha(text):
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1) or 'none', got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1) or 'none', got {text!r}")
    return value


def _losses(text):
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in cmp.LOSSES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown loss {unknown[0] if unknown else text!r}; choose among "
            f"{', '.join(cmp.LOSSES)} (comma-separated)"
        )
    return tuple(dict.fromkeys(names))


def _names(text):
    return [part.strip() for part in text.split(",") if part.strip()]


def _build_parser():
    parser = _Parser(prog="boostloss", description="Focal loss and GHM-C for gradient-boosted trees.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = commands.add_parser(
        "compare",
        help="cross-validate logistic, weighted logistic, focal and GHM-C side by side",
        description=(
            "Stratified k-fold cross-validation of the built-in logistic loss, class-weighted "
            "logistic (scale_pos_weight = n_neg / n_pos), focal loss and GHM-C on XGBoost and "
            "LightGBM: average precision, ROC-AUC, log loss and Brier score of the predicted "
            "probabilities, and fit time. Without DATA: a built-in imbalanced dataset (breast "
            "cancer, malignant made rare)."
        ),
    )
    data = p.add_argument_group("data")
    data.add_argument("data", nargs="?", metavar="DATA",
                      help="CSV file (.csv, .csv.gz, ...) or parquet; omit for the built-in dataset")
    data.add_argument("--target", metavar="COLUMN", help="label column of DATA (required with DATA)")
    data.add_argument("--positive", metavar="LABEL",
                      help="value of the target that is the positive class (needed unless it is 0/1)")
    data.add_argument("--drop", metavar="COLS", type=_names, action="extend", default=[],
                      help="comma-separated columns not to use as features (repeatable)")
    data.add_argument("--na-values", metavar="STRINGS", type=_names, action="extend", default=[],
                      help="comma-separated extra strings that mean missing, e.g. 'unknown,?'")
    data.add_argument("--max-rows", metavar="N", type=_positive_int,
                      help="use a stratified random subsample of N rows (seeded by --seed)")
    run = p.add_argument_group("comparison")
    run.add_argument("--backend", choices=("xgboost", "lightgbm", "both"), default="both",
                     help="boosting library (default: both)")
    run.add_argument("--losses", type=_losses, default=tuple(cmp.LOSSES), metavar="LIST",
                     help="comma-separated subset of logistic,weighted,focal,ghm (default: all)")
    run.add_argument("--folds", type=_positive_int, default=5, help="stratified folds, >= 2 (default: 5)")
    run.add_argument("--rounds", type=_positive_int, default=200, help="boosting rounds (default: 200)")
    run.add_argument("--learning-rate", type=_positive_float, default=0.1, help="(default: 0.1)")
    run.add_argument("--seed", type=int, default=0, help="seed of the fold split and the models (default: 0)")
    run.add_argument("--gamma", type=_gamma, default=2.0, help="focal loss gamma (default: 2)")
    run.add_argument("--alpha", type=_alpha, default=0.25,
                     help="focal loss weight of the positive class, or 'none' (default: 0.25)")
    run.add_argument("--bins", type=_positive_int, default=10, help="GHM-C bins (default: 10)")
    run.add_argument("--n-jobs", type=_positive_int, default=1,
                     help="threads per model (default: 1, the fastest on small data and busy machines)")
    out = p.add_argument_group("output")
    out.add_argument("--output", metavar="FILE", help="write every fold's results: .json or .csv")
    out.add_argument("--plot", metavar="FILE",
                     help="precision-recall curves and gradient-norm histograms (.png, .pdf, .svg)")
    out.add_argument("--quiet", action="store_true", help="no progress display")
    return parser


def _check_destination(path, suffixes, option):
    target = pathlib.Path(path)
    suffix = target.suffix.lower()
    if suffix not in suffixes:
        raise _UsageError(f"{option} {path}: the file name must end in {' or '.join(suffixes)}")
    parent = target.parent if str(target.parent) else pathlib.Path(".")
    if not parent.is_dir():
        raise _UsageError(f"{option} {path}: directory {str(parent)!r} does not exist; create it first")
    if target.is_dir():
        raise _UsageError(f"{option} {path} is a directory; give a file name")


def _validate_args(args):
    if args.folds < 2:
        raise _UsageError("--folds must be at least 2")
    if args.data is None and (args.target or args.positive or args.drop or args.na_values):
        raise _UsageError("--target, --positive, --drop and --na-values need a DATA file")
    if args.max_rows is not None and args.max_rows < 2 * args.folds:
        raise _UsageError(f"--max-rows {args.max_rows} is too small for {args.folds} folds")
    if args.output:
        _check_destination(args.output, _OUTPUT_SUFFIXES, "--output")
    if args.plot:
        _check_destination(args.plot, _PLOT_SUFFIXES, "--plot")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise _UsageError("--plot needs matplotlib: pip install 'boostloss[plot]'") from None


def _config(args):
    backends = cmp.BACKENDS if args.backend == "both" else (args.backend,)
    return cmp.CompareConfig(
        backends=tuple(backends),
        losses=tuple(args.losses),
        folds=args.folds,
        rounds=args.rounds,
        learning_rate=args.learning_rate,
        seed=args.seed,
        gamma=args.gamma,
        alpha=args.alpha,
        bins=args.bins,
        n_jobs=args.n_jobs,
    )


_DECIMALS = {"average_precision": 4, "roc_auc": 4, "log_loss": 4, "brier": 4, "fit_seconds": 2}


def _format(metric, mean, std):
    places = _DECIMALS[metric]
    if metric == "fit_seconds":
        return f"{mean:.{places}f}"
    return f"{mean:.{places}f} ± {std:.{places}f}"


def _print_table(console, dataset, config, rows):
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
    best = cmp.best_per_metric(rows, decimals=_DECIMALS)
    table = Table(show_lines=False)
    table.add_column("backend")
    table.add_column("loss")
    for metric, (title, larger) in cmp.METRICS.items():
        arrow = "↑" if larger else "↓"
        table.add_column(f"{title} {arrow}", justify="right")
    for i, row in enumerate(rows):
        cells = [row["backend"], config.loss_label(row["loss"])]
        for metric in cmp.METRICS:
            text = _format(metric, row[f"{metric}_mean"], row[f"{metric}_std"])
            cells.append(f"[bold green]{text} *[/bold green]" if i in best[metric] else f"{text}  ")
        table.add_row(*cells)
    console.print(table)
    console.print("* best in its column (fold mean, as shown); ↑ larger is better, ↓ smaller is better")


def _results_document(dataset, config, result, rows):
    return {
        "dataset": {
            "name": dataset.name,
            "description": dataset.description,
            "rows": int(dataset.y.shape[0]),
            "features": int(dataset.X.shape[1]),
            "categorical_features": dataset.categorical_columns,
            "positives": dataset.n_positive,
        },
        "config": {
            "backends": list(config.backends),
            "losses": list(config.losses),
            "folds": config.folds,
            "rounds": config.rounds,
            "learning_rate": config.learning_rate,
            "seed": config.seed,
            "gamma": config.gamma,
            "alpha": config.alpha,
            "bins": config.bins,
            "n_jobs": config.n_jobs,
        },
        "folds": result.records,
        "summary": rows,
    }


def _write_output(path, document):
    """Write the results to a temporary file next to ``path``; return its name."""
    target = pathlib.Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    if target.suffix.lower() == ".json":
        tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    else:
        records = document["folds"]
        fields = ["dataset", *records[0].keys()]
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            for record in records:
                writer.writerow({"dataset": document["dataset"]["name"], **record})
    return tmp


def _write_plot(path, dataset, config, result):
    from ._compare_plot import draw_compare_figure, plot_rounds

    backend = config.backends[0]
    train = result.first_fold["train_index"]
    X_train, y_train = dataset.X.iloc[train], dataset.y[train]
    staged = {}
    for loss in config.losses:
        estimator = result.first_fold[(backend, loss)]
        try:
            by_round = cmp.staged_gradient_norms(estimator, backend, X_train, plot_rounds(config.rounds))
        except TypeError:
            continue  # the estimator cannot predict with a prefix of its trees
        staged[loss] = (y_train, by_round)
    labels = {loss: config.loss_label(loss) for loss in config.losses}
    fig = draw_compare_figure(dataset.y, result.oof_proba, staged, backend, labels)
    target = pathlib.Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fig.savefig(tmp, format=target.suffix.lower().lstrip("."), dpi=110)
    return tmp


@contextlib.contextmanager
def _progress(total, quiet):
    """Yield a callback ``step(backend, loss, fold)``; a rich progress bar on stderr unless quiet."""
    if quiet:
        yield lambda *_: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda *_: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("training", total=total)

        def step(backend, loss, fold):
            progress.update(task, advance=1, description=f"{backend} {loss} fold {fold + 1}")

        yield step


def _compare(args):
    from rich.console import Console

    _validate_args(args)
    if args.data is None:
        dataset = cmp.load_default_dataset()
    else:
        dataset = cmp.load_table(
            args.data,
            args.target,
            positive=args.positive,
            drop=args.drop,
            na_values=args.na_values,
            max_rows=args.max_rows,
            seed=args.seed,
        )
    config = _config(args)
    cmp.check_folds(dataset, config.folds)
    total = len(config.backends) * len(config.losses) * config.folds
    with _progress(total, args.quiet) as step:
        result = cmp.cross_validate(dataset, config, on_fit=step, keep_first_fold=bool(args.plot))
    rows = cmp.summarize(result.records)

    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    _print_table(console, dataset, config, rows)

    pending = []
    try:
        if args.output:
            pending.append((_write_output(args.output, _results_document(dataset, config, result, rows)), args.output))
        if args.plot:
            pending.append((_write_plot(args.plot, dataset, config, result), args.plot))
        for tmp, final in pending:
            os.replace(tmp, final)
    finally:
        for tmp, _ in pending:
            if tmp.exists():
                tmp.unlink()
    for _, final in pending:
        console.print(f"wrote {final}")
    return 0


def main(argv=None):
    """Run the ``boostloss`` command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        Exit status: 0 on success, 2 for bad input or usage (with a one-line message on stderr).
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed on one line
        return exc.code if isinstance(exc.code, int) else 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return _compare(args)
    except (_UsageError, cmp.DataError) as exc:
        print(f"boostloss compare: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("boostloss compare: interrupted; nothing written", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
