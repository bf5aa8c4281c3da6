"""What can go wrong with one fold's predictions: a collapsed model, or a block of tied predictions.

Both are computed on the held-out fold and stored in the fold's record; the report marks them in
the table and says, in one line per configuration, what happened.

- **Degenerate**: the model predicts one value for every row (a constant model), or it ranks no
  better than chance (ROC-AUC <= 0.55 and average precision <= 1.5 x the fold's positive rate).
- **Tie block**: one predicted value shared by at least :data:`TIE_SHARE` of the held-out rows.
  Identical feature rows always share a prediction, and a model with few trees has few distinct
  values, so a block alone is no fault: what matters is whether the shared probability (the
  posterior, see :mod:`~boostloss.compare.protocol`) fits the block's observed positive rate.
  Every block is recorded with that rate; a block is *miscalibrated*, and flagged, when the shared
  probability lies outside the Wilson score interval (z = 3, about 99.7%) of the rate. On a
  multi-class task a block is a probability vector shared by the rows, judged on its most probable
  class (``class``: the predicted probability of that class against the block's observed share of
  it). GHM-C drives a group of identical rows with mixed labels towards p = 0.5 whatever its
  positive rate (see docs/compare.md, "GHM-C and repeated rows").
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .scoring import average_precision, macro, roc_auc

__all__ = ["TIE_SHARE", "degenerate_reason", "tie_block", "tie_blocks", "wilson_interval"]

#: Share of the held-out rows that one predicted value must reach to count as a tie block.
TIE_SHARE = 0.05

#: Width of the Wilson interval a tie block's probability is checked against (standard normal z).
TIE_Z = 3.0

_CHANCE_AUC = 0.55
_CHANCE_AP_RATIO = 1.5


def degenerate_reason(y_true: ArrayLike, proba: ArrayLike) -> str | None:
    """Why the predictions of a fold are degenerate, in a few words, or None when they are not."""
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim == 2:
        if np.max(np.ptp(proba, axis=0)) <= 1e-12:
            return "constant model (the same probabilities for every row)"
        y = np.asarray(y_true)
        prevalence = float(
            np.mean([np.mean(y == k) for k in range(proba.shape[1]) if np.any(y == k)])
        )
        auc, ap = macro(roc_auc, y, proba), macro(average_precision, y, proba)
        if auc <= _CHANCE_AUC and ap <= _CHANCE_AP_RATIO * prevalence:
            return f"ranks at chance (macro ROC-AUC {auc:.2f}, macro AP {ap:.3f})"
        return None
    if np.ptp(proba) <= 1e-12:
        return f"constant model (p = {proba[0]:.3g} for every row)"
    prevalence = float(np.mean(np.asarray(y_true, dtype=np.float64)))
    auc = roc_auc(y_true, proba)
    ap = average_precision(y_true, proba)
    if auc <= _CHANCE_AUC and ap <= _CHANCE_AP_RATIO * prevalence:
        return (
            f"ranks at chance (ROC-AUC {auc:.2f}, AP {ap:.3f} at a positive rate of "
            f"{prevalence:.3f})"
        )
    return None


def tie_blocks(
    y_true: ArrayLike, proba: ArrayLike, min_share: float = TIE_SHARE
) -> list[dict[str, Any]]:
    """Every group of rows sharing one predicted value that holds >= ``min_share`` of them.

    Parameters
    ----------
    y_true : array of shape (n,)
        0/1 labels, or class indices 0..K-1 when ``proba`` has shape (n, K).
    proba : array of shape (n,) or (n, K)

    Returns
    -------
    list of dict
        Largest first, each with ``value`` (the shared probability), ``rows``, ``share`` (of the
        rows), ``positive_rate`` (observed, in the block) and ``miscalibrated`` (``value``
        outside the Wilson interval of ``positive_rate``); multi-class blocks also carry
        ``class``, the most probable class, whose probability and share these are. Empty when
        no value is shared that widely or the model is constant (a degenerate fold, reported as
        such).
    """
    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y_true)
    multiclass = proba.ndim == 2
    values, inverse, counts = np.unique(
        proba, axis=0 if multiclass else None, return_inverse=True, return_counts=True
    )
    if values.shape[0] <= 1:
        return []
    inverse = inverse.reshape(-1)
    blocks: list[dict[str, Any]] = []
    for k in np.argsort(-counts, kind="stable"):
        share = counts[k] / proba.shape[0]
        if share < min_share:
            break
        in_block = inverse == k
        rows = int(counts[k])
        if multiclass:
            predicted = int(np.argmax(values[k]))
            value = float(values[k][predicted])
            positives = int(np.sum(y[in_block] == predicted))
        else:
            value = float(values[k])
            positives = int(np.sum(y[in_block]))
        low, high = wilson_interval(positives, rows)
        block = {
            "value": value,
            "rows": rows,
            "share": float(share),
            "positive_rate": positives / rows,
            "miscalibrated": bool(value < low or value > high),
        }
        if multiclass:
            block["class"] = predicted
        blocks.append(block)
    return blocks


def tie_block(
    y_true: ArrayLike, proba: ArrayLike, min_share: float = TIE_SHARE
) -> dict[str, Any] | None:
    """The largest block of :func:`tie_blocks`, or None."""
    blocks = tie_blocks(y_true, proba, min_share)
    return blocks[0] if blocks else None


def wilson_interval(successes: float, trials: float, z: float = TIE_Z) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (Wilson, 1927)."""
    rate = successes / trials
    z2n = z * z / trials
    centre = (rate + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * np.sqrt(rate * (1.0 - rate) / trials + z2n / (4.0 * trials))
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))
