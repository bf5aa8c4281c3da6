"""boostloss: focal loss and GHM-C as exact, fast objectives for gradient-boosted trees.

>>> from boostloss import FocalLoss, GHMLoss
>>> focal = FocalLoss(gamma=2.0, alpha=0.25)
>>> grad, hess = focal.gradient_hessian([0, 1], [0.3, -1.2])

The layers (each uses only the public names of the one below; see ``losses.py``'s Design block)::

    boostloss compare (cli.py, compare/)     the main job: cross-validated comparison of losses
      -> XGBClassifier, LGBMClassifier      drop-in scikit-learn estimators (estimators.py)
        -> boostloss.xgboost / .lightgbm     objectives and metrics for the frameworks
          -> FocalLoss, GHMLoss, OHEMLoss    parameters, validation, init_score (losses.py, ohem.py)
            -> numba kernels                 per-sample math and loops (_kernels.py; cuda.py
                                             compiles the same math for GPUs)

``import boostloss`` imports no kernel and writes no file: the numba kernels are imported (and
their on-disk cache located) at the first computation.

The package is distributed as ``focal-ghm-boost`` (``pip install focal-ghm-boost``); it is imported
as ``boostloss`` and its command is ``boostloss``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._kernels.constants import HESSIAN_FLOOR
from .losses import LOSSES, FocalLoss, GHMLoss, OHEMLoss, make_loss
from .losses._posterior import posterior_from_margin

if TYPE_CHECKING:  # loaded on first use at run time (see __getattr__)
    from .estimators import LGBMClassifier, XGBClassifier
    from .warm import warm_up

#: The release, the only place it is written: the build reads it (pyproject.toml's dynamic version)
#: and ``boostloss --version`` prints it.
__version__ = "0.1.0"

#: The name the package index knows this package by.
DISTRIBUTION = "focal-ghm-boost"

__all__ = [
    "FocalLoss",
    "GHMLoss",
    "OHEMLoss",
    "HESSIAN_FLOOR",
    "LOSSES",
    "make_loss",
    "XGBClassifier",
    "LGBMClassifier",
    "posterior_from_margin",
    "warm_up",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # The estimators import xgboost / lightgbm: load them only when asked for, so that
    # `import boostloss` stays fast.
    if name in ("XGBClassifier", "LGBMClassifier"):
        from . import estimators

        return getattr(estimators, name)
    if name == "warm_up":
        from .warm import warm_up

        return warm_up
    raise AttributeError(f"module 'boostloss' has no attribute {name!r}")
