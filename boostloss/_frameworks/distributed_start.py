"""The start of a training spread over workers, from the weight total of each class.

``init_score`` of the binary losses depends on the data only through the two class weight totals,
so Dask (``boostloss.dask``) and Spark (``boostloss.spark``) sum those on the cluster and start
from the same margin as one process holding all the rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..losses._validation import describe_values
from .adapters import fresh_loss

if TYPE_CHECKING:
    from .._typing import LossLike


def binary_start(loss: LossLike, totals: Mapping[Any, float], labels_name: str) -> float:
    """``loss.init_score`` of all the rows, from ``totals = {label: weight total}``.

    Raises
    ------
    ValueError
        A label other than 0 and 1 (the message quotes the first few and names ``labels_name``).
    """
    unknown = [label for label in totals if label not in (0, 1)]
    if unknown:
        raise ValueError(
            f"{labels_name} must contain only 0 and 1 (binary labels; map other classes to 0/1 "
            f"first), got other value(s): {describe_values(np.array(unknown[:5], dtype=object))}"
        )
    return start_from_totals(loss, totals.get(1, 0.0), totals.get(0, 0.0))


def start_from_totals(loss: LossLike, positive_total: float, negative_total: float) -> float:
    """``loss.init_score`` of data whose classes weigh ``positive_total`` and ``negative_total``
    (``start_from_class_totals``; OHEM's depends on its kept negatives, known from the totals to
    within one row)."""
    return float(fresh_loss(loss).start_from_class_totals([negative_total, positive_total]))
