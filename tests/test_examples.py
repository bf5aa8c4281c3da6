"""Every script under examples/ runs to completion."""

import pathlib
import subprocess
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(script):
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=script.parent,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip(), "the example printed nothing"


def test_all_integrations_have_an_example():
    names = {p.name for p in EXAMPLES}
    assert {
        "xgb_train.py",
        "xgb_classifier.py",
        "lgb_train.py",
        "lgb_classifier.py",
        "pipeline_grid_search.py",
    } <= names
