"""Constants shared by the kernels and the Python layers (no numba import: importing is cheap)."""

import functools

import numpy as np

#: Every Hessian is floored at this value before the sample weight multiplies it (XGBoost's built-in
#: logistic objective uses the same floor). Boosting needs a strictly positive Hessian.
HESSIAN_FLOOR = 1e-16

#: Hessian policies of the focal loss, as passed to the kernels.
HESSIAN_EXACT = 0
HESSIAN_GAUSS_NEWTON = 1
#: The exact second derivative, bounded below by the Gauss-Newton one (the larger of the two).
HESSIAN_BOUNDED = 2


@functools.lru_cache(maxsize=64)
def standard_edges(bins: int) -> np.ndarray:
    """GHM-C's bin edges ``b / bins``, the last one raised by 1e-6 (the paper's code): one
    read-only array per number of bins, so that the kernels recognise them by identity
    (``binary._edges_are_uniform``)."""
    edges = np.arange(bins + 1, dtype=np.float64) / bins
    edges[-1] += 1e-6
    edges.flags.writeable = False
    return edges
