"""The verdict of ``boostloss compare``: per backend, the best loss and whether it beats logistic.

Every loss is trained on the same folds, so a comparison is paired: per (repeat, fold), the
difference between the best loss's held-out metric and the plain logistic loss's. The folds'
training sets overlap, which makes the ordinary paired t-test far too confident; the corrected
resampled t-test of Nadeau and Bengio (2003, "Inference for the Generalization Error", Machine
Learning 52) widens the variance for that:

    t = mean(d) / sqrt((1 / J + n_test / n_train) * var(d)),   J - 1 degrees of freedom,

with d the J paired differences (J = folds x repeats) and var their sample variance. "Clearly
better" means the difference is in the metric's good direction and the two-sided p-value is below
:data:`LEVEL`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from .registry import LOSSES, metrics_of

if TYPE_CHECKING:
    from .._typing import Float64Array
    from .config import CompareConfig

__all__ = [
    "BASELINE",
    "LEVEL",
    "TEST_NAME",
    "corrected_resampled_ttest",
    "paired_differences",
    "verdict_sentence",
    "verdicts",
]

#: The loss every other is tested against.
BASELINE = "logistic"
#: Significance level of "clearly better".
LEVEL = 0.05
TEST_NAME = "Nadeau-Bengio corrected resampled t-test (two-sided)"


def corrected_resampled_ttest(
    differences: ArrayLike, n_train: float, n_test: float
) -> tuple[float, float, float]:
    """Mean, corrected standard error and two-sided p-value of paired differences over resamples.

    Parameters
    ----------
    differences : array of shape (J,)
        Per-resample differences of a metric between two models trained on the same splits.
    n_train, n_test : float
        Training and test rows per resample.

    Returns
    -------
    (mean, standard_error, p_value) : tuple of float
        ``p_value`` is 1 when every difference is 0, and 0 when they are all equal and nonzero.
    """
    from scipy.stats import t as student_t

    d = np.asarray(differences, dtype=np.float64)
    mean = float(d.mean())
    if d.shape[0] < 2:
        return mean, math.nan, math.nan
    variance = float(d.var(ddof=1))
    se = math.sqrt((1.0 / d.shape[0] + n_test / n_train) * variance)
    if se == 0.0:
        return mean, 0.0, 1.0 if mean == 0.0 else 0.0
    p = 2.0 * float(student_t.sf(abs(mean) / se, df=d.shape[0] - 1))
    return mean, se, p


def _per_split(
    records: Sequence[Mapping[str, Any]], backend: str, loss: str, key: str
) -> tuple[list[Mapping[str, Any]], Float64Array]:
    rows = [r for r in records if r["backend"] == backend and r["loss"] == loss]
    rows.sort(key=lambda r: (r.get("repeat", 0), r["fold"]))
    return rows, np.array([r[key] for r in rows], dtype=np.float64)


def paired_differences(
    records: Sequence[Mapping[str, Any]], backend: str, loss: str, baseline: str, key: str
) -> tuple[Float64Array, float, float]:
    """``loss`` minus ``baseline`` on metric ``key`` per (repeat, fold); the mean split sizes."""
    rows, values = _per_split(records, backend, loss, key)
    _, base = _per_split(records, backend, baseline, key)
    if not rows or values.shape != base.shape:
        raise ValueError(
            f"no paired folds of {loss!r} and {baseline!r} on {backend}: {values.shape[0]} and "
            f"{base.shape[0]} results"
        )
    n_train = float(np.mean([r["n_train"] for r in rows]))
    n_test = float(np.mean([r["n_test"] for r in rows]))
    return values - base, n_train, n_test


def verdicts(
    records: Sequence[Mapping[str, Any]], config: CompareConfig
) -> dict[str, dict[str, Any]]:
    """``backend -> verdict`` (plain JSON values) for every backend of ``config``.

    A verdict holds ``metric``, ``larger_is_better``, ``best_loss`` (by the mean over folds; the
    registry's order breaks ties), ``best_mean``, ``baseline`` (None when the logistic loss was not
    compared), ``baseline_mean``, ``mean_difference`` (best minus baseline, in the metric's units),
    ``standard_error``, ``p_value``, ``pairs``, ``test``, ``level`` and ``clearly_better``.
    """
    key = _metric_key(config)
    larger = metrics_of(config.multiclass)[key].larger_is_better
    out = {}
    for backend in config.backends:
        means = {}
        for loss in config.losses:
            _, values = _per_split(records, backend, loss, key)
            if values.size:  # no records: the loss has no row on this backend (e.g. GOSS)
                means[loss] = float(values.mean())
        ordered = [loss for loss in LOSSES if loss in means] + [
            name for name in means if name not in LOSSES
        ]
        best = ordered[0]
        for loss in ordered[1:]:
            if (means[loss] > means[best]) if larger else (means[loss] < means[best]):
                best = loss
        verdict = {
            "metric": config.metric,
            "larger_is_better": larger,
            "best_loss": best,
            "best_label": config.loss_label(best),
            "best_mean": means[best],
            "baseline": BASELINE if BASELINE in means else None,
            "baseline_mean": means.get(BASELINE),
            "mean_difference": None,
            "standard_error": None,
            "p_value": None,
            "pairs": 0,
            "test": TEST_NAME,
            "level": LEVEL,
            "clearly_better": False,
        }
        if BASELINE in means and best != BASELINE:
            diffs, n_train, n_test = paired_differences(records, backend, best, BASELINE, key)
            mean, se, p = corrected_resampled_ttest(diffs, n_train, n_test)
            improves = mean > 0 if larger else mean < 0
            verdict.update(
                mean_difference=mean,
                standard_error=None if math.isnan(se) else se,
                p_value=None if math.isnan(p) else p,
                pairs=int(diffs.shape[0]),
                clearly_better=bool(improves and not math.isnan(p) and p < LEVEL),
            )
        elif best == BASELINE:
            verdict.update(
                mean_difference=0.0, pairs=len(_per_split(records, backend, best, key)[1])
            )
        out[backend] = verdict
    return out


def _metric_key(config: CompareConfig) -> str:
    from .registry import SELECTION_METRICS

    return SELECTION_METRICS[config.metric]


def verdict_sentence(backend: str, verdict: Mapping[str, Any], config: CompareConfig) -> str:
    """The verdict of one backend as one plain sentence."""
    key = _metric_key(config)
    name = metrics_of(config.multiclass)[key].title
    label = verdict["best_label"]
    if verdict["baseline"] is None:
        return (
            f"{backend}: {label} has the best {name} ({verdict['best_mean']:.4f}); add logistic to "
            "--losses to test it against the plain logistic loss."
        )
    if verdict["best_loss"] == BASELINE:
        return (
            f"{backend}: the plain logistic loss has the best {name} ({verdict['best_mean']:.4f}); "
            "no other loss beats it on these folds."
        )
    p = verdict["p_value"]
    p_text = "p not available with one split" if p is None else f"p = {p:.2g}"
    se = verdict["standard_error"]
    se_text = "" if se is None else f" ± {se:.4f}"
    head = (
        f"{backend}: {label} has the best {name}, {verdict['best_mean']:.4f} against "
        f"{verdict['baseline_mean']:.4f} for plain logistic (paired difference "
        f"{verdict['mean_difference']:+.4f}{se_text}, {p_text} over {verdict['pairs']} folds)"
    )
    if verdict["clearly_better"]:
        return f"{head}: clearly better than plain logistic."
    hint = " (--repeats adds paired folds to the test)" if config.repeats == 1 else ""
    return f"{head}: not clearly better than plain logistic{hint}."
