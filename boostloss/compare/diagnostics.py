"""What can go wrong with one fold's predictions: a collapsed model, or a block of tied predictions.

Both are computed on the held-out fold and stored in the fold's record; the report marks them in
the table and says, in one line per configuration, what happened.

- **Degenerate**: the model predicts one value for every row (a constant model), or it ranks no
  better than chance (ROC-AUC <= 0.55 and average precision <= 1.5 x the fold's positive rate).
- **Tie block**: one predicted value shared by at least :data:`TIE_SHARE` of the held-out rows.
  Identical feature rows always share a prediction, and a model with few trees has few distinct
  values, so a block alone is no fault: what matters is whether the shared probability fits the
  block's observed positive rate. A block is *miscalibrated* when the shared probability lies
  outside the Wilson score interval (z = 3, about 99.7%) of that rate; those are the blocks the
  report flags. GHM-C drives a group of identical rows with mixed labels towards p = 0.5 whatever
  its positive rate (see docs/compare.md, "GHM-C and repeated rows").
"""

import numpy as np

from .scoring import average_precision, roc_auc

__all__ = ["TIE_SHARE", "degenerate_reason", "tie_block", "wilson_interval"]

#: Share of the held-out rows that one predicted value must reach to count as a tie block.
TIE_SHARE = 0.05

#: Width of the Wilson interval a tie block's probability is checked against (standard normal z).
TIE_Z = 3.0

_CHANCE_AUC = 0.55
_CHANCE_AP_RATIO = 1.5


def degenerate_reason(y_true, proba):
    """Why the predictions of a fold are degenerate, in a few words, or None when they are not."""
    proba = np.asarray(proba, dtype=np.float64)
    if np.ptp(proba) <= 1e-12:
        return f"constant model (p = {proba[0]:.3g} for every row)"
    prevalence = float(np.mean(y_true))
    auc = roc_auc(y_true, proba)
    ap = average_precision(y_true, proba)
    if auc <= _CHANCE_AUC and ap <= _CHANCE_AP_RATIO * prevalence:
        return f"ranks at chance (ROC-AUC {auc:.2f}, AP {ap:.3f} at a positive rate of {prevalence:.3f})"
    return None


def tie_block(y_true, proba, min_share=TIE_SHARE):
    """The largest group of rows sharing one predicted value, when it holds >= ``min_share`` of them.

    Returns
    -------
    dict or None
        ``value`` (the shared probability), ``rows``, ``share`` (of the rows),
        ``positive_rate`` (observed, in the block) and ``miscalibrated`` (``value`` outside the
        Wilson interval of ``positive_rate``); None when no value is shared that widely or the
        model is constant (a degenerate fold, reported as such).
    """
    proba = np.asarray(proba, dtype=np.float64)
    values, inverse, counts = np.unique(proba, return_inverse=True, return_counts=True)
    if values.shape[0] <= 1:
        return None
    k = int(np.argmax(counts))
    share = counts[k] / proba.shape[0]
    if share < min_share:
        return None
    in_block = inverse.reshape(-1) == k
    positives = int(np.sum(np.asarray(y_true)[in_block]))
    low, high = wilson_interval(positives, int(counts[k]))
    value = float(values[k])
    return {
        "value": value,
        "rows": int(counts[k]),
        "share": float(share),
        "positive_rate": positives / int(counts[k]),
        "miscalibrated": bool(value < low or value > high),
    }


def wilson_interval(successes, trials, z=TIE_Z):
    """Wilson score interval of a binomial proportion (Wilson, 1927)."""
    rate = successes / trials
    z2n = z * z / trials
    centre = (rate + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * np.sqrt(rate * (1.0 - rate) / trials + z2n / (4.0 * trials))
    return max(0.0, centre - half), min(1.0, centre + half)
