import os
import shutil

# The CUDA tests run on numba's CUDA simulator unless a real GPU is present (or the caller chose).
if "NUMBA_ENABLE_CUDASIM" not in os.environ and shutil.which("nvidia-smi") is None:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import pathlib
import threading

import pytest

from boostloss import FocalLoss, GHMLoss

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATASETS = pathlib.Path(os.environ.get("BOOSTLOSS_DATASETS", ROOT.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def datasets_dir():
    if not DATASETS.is_dir():
        pytest.skip(f"real datasets not found at {DATASETS} (set BOOSTLOSS_DATASETS)")
    return DATASETS


#: The loss settings that the property, invariance, extreme-value, validation, pickling and thread
#: tests run through: both Hessian policies, gamma from 0 to 3.5, alpha None and weighted, both GHM
#: densities, with and without momentum.
LOSSES = {
    "focal_gauss_newton": lambda: FocalLoss(gamma=2.0, alpha=0.25, hessian="gauss_newton"),
    "focal_exact": lambda: FocalLoss(gamma=2.0, alpha=0.25, hessian="exact"),
    "focal_exact_gamma_3.5": lambda: FocalLoss(gamma=3.5, alpha=None, hessian="exact"),
    "focal_gauss_newton_gamma_0.3": lambda: FocalLoss(gamma=0.3, alpha=0.9, hessian="gauss_newton"),
    "focal_exact_gamma_0": lambda: FocalLoss(gamma=0.0, alpha=None, hessian="exact"),
    "focal_exact_gamma_1": lambda: FocalLoss(gamma=1.0, alpha=0.5, hessian="exact"),
    "ghm_bins": lambda: GHMLoss(bins=10),
    "ghm_bins_momentum": lambda: GHMLoss(bins=30, momentum=0.75),
    "ghm_window": lambda: GHMLoss(density="window", epsilon=0.1),
    "ghm_window_narrow": lambda: GHMLoss(density="window", epsilon=1e-6),
}


def run_in_threads(work, n, on_error=None):
    """``work(i)`` for ``i`` in ``range(n)``, each on its own thread; the first exception raised
    in a thread is raised here once all have ended (``on_error()`` runs in the failing thread,
    e.g. to release the others from a barrier)."""
    errors = []

    def guarded(i):
        try:
            work(i)
        except BaseException as exc:  # noqa: BLE001 - raised in the calling thread below
            errors.append(exc)
            if on_error is not None:
                on_error()

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
