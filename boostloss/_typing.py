"""Type aliases of the public signatures (used in annotations; importing this runs no kernel).

The aliases of the callables handed to the frameworks live in their adapter modules
(:mod:`boostloss.xgboost`, :mod:`boostloss.lightgbm`), as LightGBM keeps its own in ``sklearn.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from .losses import Target, _Loss

__all__ = [
    "AdapterThreads",
    "Float32Array",
    "Float64Array",
    "FloatArray",
    "IterationRange",
    "LabelsLike",
    "LossLike",
    "MatrixLike",
    "DeviceArrayLike",
    "T",
]

#: A float64 array (what the losses return unless given output buffers).
Float64Array = NDArray[np.float64]
#: A float32 array (the gradients and Hessians handed to the frameworks).
Float32Array = NDArray[np.float32]
#: A float32 or float64 array (output buffers, and what is written into them).
FloatArray = NDArray[np.floating[Any]]
#: Labels: anything ``numpy.asarray`` reads as a 1-D array, or a validated ``Target``.
LabelsLike: TypeAlias = "ArrayLike | Target"
#: A loss object or its registered name with optional parameters (``"focal:gamma=2"``).
LossLike: TypeAlias = "_Loss | str"
#: The adapters' ``n_threads``: ``"auto"``, None (the default policy) or a positive integer.
AdapterThreads: TypeAlias = int | Literal["auto"] | None
#: Features as the frameworks take them (numpy, pandas, scipy.sparse, Dask collections, ...).
MatrixLike: TypeAlias = Any
#: A host array-like, a numba device array or any object with ``__cuda_array_interface__``.
DeviceArrayLike: TypeAlias = Any
#: XGBoost's ``iteration_range``: ``(begin, end)`` boosting rounds.
IterationRange: TypeAlias = "tuple[int | np.integer[Any], int | np.integer[Any]]"

T = TypeVar("T")
