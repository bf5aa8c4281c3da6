"""Every script under examples/ runs to completion."""

import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script):
    # One numba thread: the examples train on a few thousand rows, where launching parallel
    # kernels every round costs more than it saves on a busy 2-core runner.
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=300, env=env, cwd=script.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip(), "the example printed nothing"


def test_all_integrations_have_an_example():
    names = {p.name for p in EXAMPLES}
    assert {"xgb_train.py", "xgb_classifier.py", "lgb_train.py", "lgb_classifier.py",
            "pipeline_grid_search.py"} <= names
