"""The engine of ``boostloss compare``: data, protocol and report, importable on their own.

The command-line layer (:mod:`boostloss.cli`) parses arguments, shows progress and writes files;
nothing here prints except to a console it is handed, so benchmarks and notebooks can call it too::

    from boostloss.compare import (CompareConfig, load_default_dataset, cross_validate,
                                   summarize, verdicts)
    config = CompareConfig(folds=3, tune=True)
    result = cross_validate(load_default_dataset(), config)
    rows = summarize(result.records)
    verdict = verdicts(result.records, config)

One job per module, data flowing down the list::

    registry     BACKENDS, LOSSES (with their --tune grids), METRICS, MULTICLASS_METRICS: what can
                 be compared (one list)
    config       CompareConfig: backends and losses, folds and repeats, early stopping, tuning,
                 parameters
    data         the built-in dataset, CSV / parquet reading, the target (binary or K classes)
                 -> Dataset
    scoring      AP, ROC-AUC, log loss on probabilities (macro one-vs-rest for K classes), fast
                 enough for every boosting round; the table's columns, the expected calibration
                 error
    protocol     folds, inner split, early stopping, tuning, refit, cross-validation
                 -> CompareResult
    diagnostics  collapsed folds and tie blocks of one fold's predictions
    verdict      paired differences, the corrected resampled t-test, one sentence per backend
    report       summaries, best per metric, the table, flags, the JSON / CSV document, the figure
    plot         the matplotlib figure itself

The names below load their module on first use, so that ``boostloss --help`` imports neither
pandas nor the boosting libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below, for type checkers (at run time they load on first use)
    from .config import CompareConfig  # noqa: F401
    from .data import DataError, Dataset, load_default_dataset, load_table, read_table  # noqa: F401
    from .protocol import (  # noqa: F401
        CompareResult,
        check_folds,
        cross_validate,
        make_estimator,
        planned_fits,
        staged_probabilities,
    )
    from .registry import BACKENDS, LOSSES, METRICS  # noqa: F401
    from .report import best_per_metric, summarize  # noqa: F401
    from .verdict import verdicts  # noqa: F401

_EXPORTS = {
    "registry": ("BACKENDS", "LOSSES", "METRICS"),
    "config": ("CompareConfig",),
    "data": ("DataError", "Dataset", "load_default_dataset", "load_table", "read_table"),
    "protocol": (
        "CompareResult",
        "check_folds",
        "cross_validate",
        "make_estimator",
        "planned_fits",
        "staged_probabilities",
    ),
    "report": ("best_per_metric", "summarize"),
    "verdict": ("verdicts",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'boostloss.compare' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
