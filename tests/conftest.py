import os
import shutil

# The CUDA tests run on numba's CUDA simulator unless a real GPU is present (or the caller chose).
if "NUMBA_ENABLE_CUDASIM" not in os.environ and shutil.which("nvidia-smi") is None:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATASETS = pathlib.Path(os.environ.get("BOOSTLOSS_DATASETS", ROOT.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def datasets_dir():
    if not DATASETS.is_dir():
        pytest.skip(f"real datasets not found at {DATASETS} (set BOOSTLOSS_DATASETS)")
    return DATASETS
