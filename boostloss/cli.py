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
import os
import pathlib
import sys

from . import compare as cmp
from .compare.config import CompareConfig
from .compare.registry import BACKENDS, LOSSES, absent_reason

__all__ = ["main"]

_OUTPUT_SUFFIXES = (".json", ".csv")
_PLOT_SUFFIXES = (".png", ".pdf", ".svg")
_ALL_BACKENDS = "both"
_DEFAULTS = CompareConfig()


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
    unknown = [n for n in names if n not in LOSSES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown loss {unknown[0] if unknown else text!r}; choose among "
            f"{', '.join(LOSSES)} (comma-separated)"
        )
    return tuple(dict.fromkeys(names))


def _names(text):
    return [part.strip() for part in text.split(",") if part.strip()]


class _Backends(argparse.Action):
    """``--backend NAME`` stores the tuple ``(NAME,)``; ``--backend both`` stores every backend."""

    def __call__(self, parser, namespace, value, option_string=None):
        setattr(namespace, self.dest, tuple(BACKENDS) if value == _ALL_BACKENDS else (value,))


def _in_words(words):
    """``"a, b, c and d"``."""
    words = list(words)
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _build_parser():
    parser = _Parser(prog="boostloss", description="Focal loss and GHM-C for gradient-boosted trees.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = commands.add_parser(
        "compare",
        help=f"cross-validate {_in_words(spec.title for spec in LOSSES.values())} side by side",
        description=(
            f"Stratified k-fold cross-validation of {_in_words(s.summary for s in LOSSES.values())} "
            f"on {_in_words(b.title for b in BACKENDS.values())}: average precision, ROC-AUC, log "
            "loss and Brier score of the predicted probabilities, and fit time. Without DATA: a "
            "built-in imbalanced dataset (breast cancer, malignant made rare)."
        ),
    )
    _add_data_options(p.add_argument_group("data"))
    _add_comparison_options(p.add_argument_group("comparison"))
    out = p.add_argument_group("output")
    out.add_argument("--output", metavar="FILE", help="write every fold's results: .json or .csv")
    out.add_argument("--plot", metavar="FILE",
                     help="precision-recall curves and gradient-norm histograms (.png, .pdf, .svg)")
    out.add_argument("--quiet", action="store_true", help="no progress display")
    return parser


def _add_data_options(data):
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


def _add_comparison_options(run):
    # Option names are the CompareConfig field names (dest), so the config is vars(args) filtered.
    d = _DEFAULTS
    run.add_argument("--backend", dest="backends", choices=(*BACKENDS, _ALL_BACKENDS), action=_Backends,
                     default=d.backends, help=f"boosting library (default: {_ALL_BACKENDS})")
    run.add_argument("--losses", type=_losses, default=d.losses, metavar="LIST",
                     help=f"comma-separated subset of {','.join(LOSSES)} (default: all)")
    run.add_argument("--folds", type=_positive_int, default=d.folds,
                     help=f"stratified folds, >= 2 (default: {d.folds})")
    run.add_argument("--rounds", type=_positive_int, default=d.rounds,
                     help=f"boosting rounds (default: {d.rounds})")
    run.add_argument("--learning-rate", type=_positive_float, default=d.learning_rate,
                     help=f"(default: {d.learning_rate:g})")
    run.add_argument("--seed", type=int, default=d.seed,
                     help=f"seed of the fold split and the models (default: {d.seed})")
    run.add_argument("--gamma", type=_gamma, default=d.gamma, help=f"focal loss gamma (default: {d.gamma:g})")
    run.add_argument("--alpha", type=_alpha, default=d.alpha,
                     help=f"focal loss weight of the positive class, or 'none' (default: {d.alpha:g})")
    run.add_argument("--bins", type=_positive_int, default=d.bins, help=f"GHM-C bins (default: {d.bins})")
    run.add_argument("--n-jobs", type=_positive_int, default=d.n_jobs,
                     help=f"the estimators' n_jobs: threads per model (default: {d.n_jobs}, the fastest "
                          "on small data and busy machines)")


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


def _temporary_name(path):
    target = pathlib.Path(path)
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")


def _write_output(path, document):
    """Write the results to a temporary file next to ``path``; return its name."""
    from .compare.report import write_document

    fmt = pathlib.Path(path).suffix.lower().lstrip(".")
    tmp = _temporary_name(path)
    with tmp.open("w", newline="" if fmt == "csv" else None, encoding="utf-8") as handle:
        write_document(handle, document, fmt)
    return tmp


def _write_plot(path, dataset, config, result):
    """Draw the figure into a temporary file next to ``path``; return its name."""
    from .compare.report import compare_figure

    fig = compare_figure(dataset, config, result)
    tmp = _temporary_name(path)
    fig.savefig(tmp, format=pathlib.Path(path).suffix.lower().lstrip("."), dpi=110)
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


def _load_dataset(args):
    from .compare.data import load_default_dataset, load_table

    if args.data is None:
        return load_default_dataset()
    return load_table(
        args.data,
        args.target,
        positive=args.positive,
        drop=args.drop,
        na_values=args.na_values,
        max_rows=args.max_rows,
        seed=args.seed,
    )


def _compare(args):
    from rich.console import Console

    from .compare import protocol, report

    _validate_args(args)
    dataset = _load_dataset(args)
    config = CompareConfig.from_options(vars(args))
    protocol.check_folds(dataset, config.folds)
    total = config.folds * sum(not absent_reason(backend, loss)
                               for backend in config.backends for loss in config.losses)
    with _progress(total, args.quiet) as step:
        result = protocol.cross_validate(dataset, config, on_fit=step, keep_first_fold=bool(args.plot))
    rows = report.summarize(result.records)

    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    report.print_table(console, dataset, config, rows)

    pending = []
    try:
        if args.output:
            document = report.results_document(dataset, config, result, rows)
            pending.append((_write_output(args.output, document), args.output))
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
