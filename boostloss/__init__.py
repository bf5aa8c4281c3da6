"""boostloss: focal loss and GHM-C as exact, fast objectives for gradient-boosted trees.

>>> from boostloss import FocalLoss, GHMLoss
>>> focal = FocalLoss(gamma=2.0, alpha=0.25)
>>> grad, hess = focal.gradient_hessian([0, 1], [0.3, -1.2])

Adapters live in :mod:`boostloss.xgboost` and :mod:`boostloss.lightgbm`; drop-in estimators are
:class:`boostloss.XGBClassifier` and :class:`boostloss.LGBMClassifier`.
"""

import os as _os

from . import _numba_cache

# The kernels are compiled with cache=True; give numba a writable cache directory even when the
# install directory and the user's cache are both read-only.
with _numba_cache.writable_cache(_os.path.dirname(__file__)):
    from ._kernels import HESSIAN_FLOOR
    from .losses import FocalLoss, GHMLoss

__version__ = "0.1.0"

__all__ = ["FocalLoss", "GHMLoss", "HESSIAN_FLOOR", "XGBClassifier", "LGBMClassifier", "__version__"]


def __getattr__(name):
    # The estimators import xgboost / lightgbm: load them only when asked for, so that
    # `import boostloss` stays fast.
    if name in ("XGBClassifier", "LGBMClassifier"):
        from . import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module 'boostloss' has no attribute {name!r}")
