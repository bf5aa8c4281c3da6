"""The ``boostloss`` command line.

``boostloss compare [DATA --target COLUMN]`` cross-validates the built-in logistic loss, the
class-weighted logistic loss, focal loss and GHM-C on XGBoost and LightGBM, each with its own
early-stopped number of rounds (optionally its own tuned settings), prints one table of average
precision, ROC-AUC, log loss, Brier score and expected calibration error (the last three on the
class posterior), fit time and rounds, flags collapsed folds, tie blocks off their observed rate
and scores that are not posteriors, and ends with a verdict per backend. The table fits the
console's width (``COLUMNS``). A target with K >= 3 values (and no ``--positive``) runs a
multi-class comparison: softmax models, macro one-vs-rest AP and ROC-AUC, the AP of the rarest
class, log loss, top-label ECE, balanced accuracy and macro F1. Without DATA it runs on a
built-in imbalanced dataset (see :func:`boostloss.compare.load_default_dataset`).

Bad input (missing or unreadable file, unknown target column, target that is not binary, ...)
gives a one-line message on stderr and exit status 2, and leaves no output file behind. Warnings
of the libraries underneath never reach the user as such: each distinct one becomes one line on
stderr, without source paths.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import NoReturn

from . import DISTRIBUTION, __version__
from . import compare as cmp
from .compare.config import CompareConfig
from .compare.registry import BACKENDS, LOSSES, SELECTION_METRICS

__all__ = ["main"]

_OUTPUT_SUFFIXES = (".json", ".csv")
_PLOT_SUFFIXES = (".png", ".pdf", ".svg")
_ALL_BACKENDS = "both"
_DEFAULTS = CompareConfig()
#: ``--rounds`` without early stopping when not given: the fixed-rounds protocol of earlier
#: versions.
_FIXED_ROUNDS = 200
#: Width of the printed results when stdout is not a terminal and COLUMNS is not set: the table
#: on one line per configuration.
_PIPED_WIDTH = 170
#: ``--alpha`` when not given: the binary default, or none on a multi-class target.
_ALPHA_UNSET = argparse.Namespace(unset=True)  # an object argparse does not parse


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
_fraction = _number(float, lambda v: 0.0 < v < 1.0, "a number in (0, 1)")
_momentum = _number(float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")
_positive_float = _number(float, lambda v: 0.0 < v < float("inf"), "a positive number")
_gamma = _number(float, lambda v: 0.0 <= v < float("inf"), "a number >= 0")


def _alpha(text):
    word = text.strip().lower()
    if word in ("none", "balanced"):
        return None if word == "none" else word
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(
            "expected a number in (0, 1) or 'none' ('balanced' too on a multi-class target), "
            f"got {text!r}"
        )
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


class _Version(argparse.Action):
    """``--version``: ``boostloss 0.1.0 (focal-ghm-boost) from /path/to/boostloss (Python 3.x.y)``,
    the release and which copy of the package runs, on one line (argparse's own action wraps it)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> NoReturn:
        import platform

        where = pathlib.Path(__file__).resolve().parent
        print(
            f"boostloss {__version__} ({DISTRIBUTION}) from {where} "
            f"(Python {platform.python_version()})"
        )
        parser.exit(0)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="boostloss",
        description="Focal loss and GHM-C for gradient-boosted trees.",
        epilog=f"The {DISTRIBUTION} distribution: pip install {DISTRIBUTION}",
    )
    parser.add_argument(
        "--version",
        action=_Version,
        nargs=0,
        help="print the release and where the package is installed, and exit",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = commands.add_parser(
        "compare",
        help=f"cross-validate {_in_words(spec.title for spec in LOSSES.values())} side by side",
        description=(
            "Stratified k-fold cross-validation of "
            f"{_in_words(s.summary for s in LOSSES.values())} "
            f"on {_in_words(b.title for b in BACKENDS.values())}: average precision and ROC-AUC of "
            "the predicted probabilities, log loss, Brier score and expected calibration error "
            "(15 bins) of the class posterior, fit time and rounds, then a "
            "verdict per backend (the best loss, and whether it is clearly better than plain "
            "logistic by a corrected resampled t-test). By default each configuration picks its "
            "rounds by early stopping on an inner validation split of the training fold and is "
            "refit on the whole training fold. A target with 3 or more values and no --positive "
            "is a multi-class comparison (softmax logistic, balanced class weights, focal, GHM-C; "
            "macro one-vs-rest AP and ROC-AUC, AP of the rarest class, log loss, top-label ECE, "
            "balanced accuracy, macro F1). Without DATA: a built-in imbalanced dataset "
            "(breast cancer, malignant made rare)."
        ),
    )
    _add_data_options(p.add_argument_group("data"))
    _add_comparison_options(p.add_argument_group("comparison"))
    out = p.add_argument_group("output")
    out.add_argument("--output", metavar="FILE", help="write every fold's results: .json or .csv")
    out.add_argument(
        "--plot",
        metavar="FILE",
        help="precision-recall curves, reliability diagrams and gradient-norm histograms "
        "(.png, .pdf, .svg)",
    )
    out.add_argument("--quiet", action="store_true", help="no progress display")
    return parser


def _add_data_options(data):
    data.add_argument(
        "data",
        nargs="?",
        metavar="DATA",
        help="CSV file (.csv, .csv.gz, ...) or parquet; omit for the built-in dataset",
    )
    data.add_argument(
        "--target", metavar="COLUMN", help="label column of DATA (required with DATA)"
    )
    data.add_argument(
        "--positive",
        metavar="LABEL",
        help="value of the target that is the positive class (needed for two values "
        "other than 0/1; with 3 or more values: that class against the rest, "
        "instead of a multi-class comparison)",
    )
    data.add_argument(
        "--merge-rare",
        metavar="N",
        type=_positive_int,
        help="multi-class: merge the classes with fewer than N rows into one class "
        "(e.g. classes too small for the folds)",
    )
    data.add_argument(
        "--drop",
        metavar="COLS",
        type=_names,
        action="extend",
        default=[],
        help="comma-separated columns not to use as features (repeatable)",
    )
    data.add_argument(
        "--na-values",
        metavar="STRINGS",
        type=_names,
        action="extend",
        default=[],
        help="comma-separated extra strings that mean missing, e.g. 'unknown,?'",
    )
    data.add_argument(
        "--max-rows",
        metavar="N",
        type=_positive_int,
        help="use a stratified random subsample of N rows (seeded by --seed)",
    )


def _add_comparison_options(run):
    # Option names are the CompareConfig field names (dest), so the config is vars(args) filtered.
    d = _DEFAULTS
    run.add_argument(
        "--backend",
        dest="backends",
        choices=(*BACKENDS, _ALL_BACKENDS),
        action=_Backends,
        default=d.backends,
        help=f"boosting library (default: {_ALL_BACKENDS})",
    )
    run.add_argument(
        "--losses",
        type=_losses,
        default=d.losses,
        metavar="LIST",
        help=f"comma-separated subset of {','.join(LOSSES)} (default: all)",
    )
    run.add_argument(
        "--folds",
        type=_positive_int,
        default=d.folds,
        help=f"stratified folds, >= 2 (default: {d.folds})",
    )
    run.add_argument(
        "--repeats",
        type=_positive_int,
        default=d.repeats,
        help="repeated stratified k-fold: repetitions, each with its own shuffle "
        f"(default: {d.repeats})",
    )
    run.add_argument(
        "--metric",
        choices=tuple(SELECTION_METRICS),
        default=d.metric,
        help="what early stopping, tuning and the verdict judge, on probabilities "
        f"(default: {d.metric})",
    )
    run.add_argument(
        "--rounds",
        type=_positive_int,
        default=None,
        help=f"most boosting rounds with early stopping (default: {d.rounds}); the rounds "
        f"of every model with --no-early-stopping (default: {_FIXED_ROUNDS})",
    )
    run.add_argument(
        "--no-early-stopping",
        dest="early_stopping",
        action="store_false",
        help="train every model for --rounds rounds (the fixed-rounds protocol)",
    )
    run.add_argument(
        "--patience",
        type=_positive_int,
        default=d.patience,
        help=f"early stopping: rounds without improvement before stopping (default: {d.patience})",
    )
    run.add_argument(
        "--validation-fraction",
        type=_fraction,
        default=d.validation_fraction,
        help="share of each training fold held out for early stopping and tuning "
        f"(default: {d.validation_fraction:g})",
    )
    run.add_argument(
        "--tune",
        action="store_true",
        help="choose each loss's settings from a small grid on the inner validation split",
    )
    run.add_argument(
        "--learning-rate",
        type=_positive_float,
        default=d.learning_rate,
        help=f"(default: {d.learning_rate:g})",
    )
    run.add_argument(
        "--seed",
        type=int,
        default=d.seed,
        help=f"seed of the fold split and the models (default: {d.seed})",
    )
    run.add_argument(
        "--gamma", type=_gamma, default=d.gamma, help=f"focal loss gamma (default: {d.gamma:g})"
    )
    run.add_argument(
        "--alpha",
        type=_alpha,
        default=_ALPHA_UNSET,
        help=f"focal loss weight of the positive class, or 'none' (default: {d.alpha:g}); "
        "multi-class: 'none' (the default) or 'balanced' (per-class weights "
        "n / (K n_k) of the training fold)",
    )
    run.add_argument(
        "--bins", type=_positive_int, default=d.bins, help=f"GHM-C bins (default: {d.bins})"
    )
    run.add_argument(
        "--momentum",
        type=_momentum,
        default=d.momentum,
        help=f"GHM-C momentum of the bin counts (default: {d.momentum:g})",
    )
    run.add_argument(
        "--ohem-ratio",
        type=_positive_float,
        default=d.ohem_ratio,
        help=f"OHEM: hard negatives per positive (default: {d.ohem_ratio:g})",
    )
    run.add_argument(
        "--jobs",
        type=_positive_int,
        default=d.jobs,
        help=f"configurations trained at once, one worker process each (default: {d.jobs}); "
        "the same results, in less time where cores are free",
    )
    run.add_argument(
        "--n-jobs",
        type=_positive_int,
        default=d.n_jobs,
        help=f"the estimators' n_jobs: threads per model (default: {d.n_jobs}, the fastest "
        "on small data and busy machines)",
    )


def _check_destination(path, suffixes, option):
    target = pathlib.Path(path)
    suffix = target.suffix.lower()
    if suffix not in suffixes:
        raise _UsageError(f"{option} {path}: the file name must end in {' or '.join(suffixes)}")
    parent = target.parent if str(target.parent) else pathlib.Path(".")
    if not parent.is_dir():
        raise _UsageError(
            f"{option} {path}: directory {str(parent)!r} does not exist; create it first"
        )
    if target.is_dir():
        raise _UsageError(f"{option} {path} is a directory; give a file name")


def _validate_args(args):
    if args.folds < 2:
        raise _UsageError("--folds must be at least 2")
    if args.data is None and (
        args.target or args.positive or args.drop or args.na_values or args.merge_rare
    ):
        raise _UsageError(
            "--target, --positive, --drop, --na-values and --merge-rare need a DATA file"
        )
    if args.merge_rare is not None and args.positive is not None:
        raise _UsageError("--merge-rare is for a multi-class target; --positive makes it binary")
    if args.max_rows is not None and args.max_rows < 2 * args.folds:
        raise _UsageError(f"--max-rows {args.max_rows} is too small for {args.folds} folds")
    if args.output:
        _check_destination(args.output, _OUTPUT_SUFFIXES, "--output")
    if args.plot:
        _check_destination(args.plot, _PLOT_SUFFIXES, "--plot")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise _UsageError(
                f"--plot needs matplotlib: pip install '{DISTRIBUTION}[plot]'"
            ) from None


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


class CompileWatch:
    """numba compilations in progress, from numba's event API (``numba:compile`` fires on a cache
    miss only, nested compilations inside it): how long the outermost one has been running."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.depth = 0
        self.since = 0.0
        self.clock = clock

    def on_start(self, event: object) -> None:
        if self.depth == 0:
            self.since = self.clock()
        self.depth += 1

    def on_end(self, event: object) -> None:
        self.depth -= 1

    def note(self, description: str) -> str:
        """``description``, or after a second of compiling, a line saying so."""
        if self.depth > 0 and self.clock() - self.since > 1.0:
            return (
                f"compiling numba kernels ({self.clock() - self.since:.0f} s; "
                "first run on this machine only, cached after)"
            )
        return description


@contextlib.contextmanager
def _progress(total, quiet):
    """Yield a callback ``step(description)``; a rich progress bar on stderr unless quiet. While
    a first call compiles kernels for more than a second, the bar's text says so."""
    if quiet:
        yield lambda *_: None
        return
    from numba.core import event
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text

    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda *_: None
        return
    watch = CompileWatch()

    class Listener(event.Listener):
        def on_start(self, ev):
            watch.on_start(ev)

        def on_end(self, ev):
            watch.on_end(ev)

    class Description(ProgressColumn):
        def render(self, task):
            return Text(watch.note(task.description))

    columns = (Description(), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with (
        event.install_listener("numba:compile", Listener()),
        Progress(*columns, console=console, transient=True) as progress,
    ):
        task = progress.add_task("training", total=total)

        def step(description):
            progress.update(task, advance=1, description=description)

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
        merge_rare=args.merge_rare,
    )


def config_from_args(args: argparse.Namespace) -> CompareConfig:
    """The :class:`CompareConfig` of parsed arguments (``--rounds`` defaults to the protocol's)."""
    options = dict(vars(args))
    if options.get("alpha") is _ALPHA_UNSET:
        options.pop("alpha")
    if options.get("rounds") is None:
        options.pop("rounds", None)
        if not options.get("early_stopping", True):
            options["rounds"] = _FIXED_ROUNDS
    return CompareConfig.from_options(options)


def _config_for(config, dataset, alpha):
    """``config`` for the classes of ``dataset``; refuses a focal alpha that does not fit them."""
    if dataset.n_classes > 2 and alpha is not _ALPHA_UNSET and isinstance(alpha, float):
        raise _UsageError(
            f"--alpha {alpha:g} is a binary weight; with {dataset.n_classes} classes "
            "pass --alpha none or --alpha balanced"
        )
    if dataset.n_classes == 2 and alpha == "balanced":
        raise _UsageError(
            "--alpha balanced is for a multi-class target; a binary one takes a "
            "number in (0, 1) or none"
        )
    return config.for_dataset(dataset)


def _library_of(warning):
    """The top-level package a warning comes from (its category's module, else its file's)."""
    module = type(warning.message).__module__.split(".")[0]
    if module not in ("builtins", "warnings"):
        return module
    parts = pathlib.Path(warning.filename).parts
    if "site-packages" in parts and parts.index("site-packages") + 1 < len(parts):
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    return "python"


@contextlib.contextmanager
def _warnings_as_notes(stream):
    """Collect the warnings raised inside; then write each distinct one as one line on ``stream``.

    Libraries underneath (pandas, scikit-learn, XGBoost, LightGBM) warn with their own source
    paths and line numbers; the user gets what was said, by whom and how often, nothing more.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            seen: dict[tuple[str, str], int] = {}
            for warning in caught:
                text = str(warning.message).strip().splitlines()
                key = (_library_of(warning), text[0] if text else warning.category.__name__)
                seen[key] = seen.get(key, 0) + 1
            for (library, text), count in seen.items():  # type: ignore[assignment]
                times = f" ({count} times)" if count > 1 else ""
                print(f"boostloss compare: note: {library} warned{times}: {text}", file=stream)


def _compare(args):
    _validate_args(args)
    with _warnings_as_notes(sys.stderr):
        return _run(args)


def _run(args):
    from rich.console import Console

    from .compare import protocol, report

    dataset = _load_dataset(args)
    config = _config_for(config_from_args(args), dataset, getattr(args, "alpha", _ALPHA_UNSET))
    protocol.check_folds(dataset, config.folds)
    with _progress(protocol.planned_fits(config), args.quiet) as step:
        result = protocol.cross_validate(
            dataset, config, on_fit=step, keep_first_fold=bool(args.plot)
        )
    rows = report.summarize(result.records)

    console = Console()  # a terminal's width, or COLUMNS
    if not console.is_terminal and not os.environ.get("COLUMNS", "").isdigit():
        console = Console(width=_PIPED_WIDTH)
    report.print_table(console, dataset, config, rows, result.records)

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


def main(argv: Sequence[str] | None = None) -> int:
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
