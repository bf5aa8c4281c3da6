"""Cost of the margin -> class posterior map next to one focal gradient call.

At 1M rows (binary) and 200k rows x 10 classes, all run in alternation within one process (medians
after a warm-up), on numba's default threads:

- ``posterior_from_margin(x, gamma=2, class_weights=(0.75, 0.25))`` (what a focal model's
  ``predict_proba`` costs once the margins are there) and ``FocalLoss(gamma=2, alpha=0.25)
  .predict_proba`` (the same behind the public validation);
- gamma 0 (scipy's sigmoid / softmax, the GHM-C / OHEM / logistic map);
- ``FocalLoss.gradient_hessian`` on the same margins (public call, float64 outputs): one
  boosting round's objective, the yardstick;
- the map in plain numpy as docs/deploying.md writes it (``focal_posterior``).

The first calls (compilation into numba's cache, cold) are timed in fresh subprocesses.

Run ``python benchmarks/bench_posterior.py`` (about 1 minute on 2 cores).
"""

import pathlib
import re
import subprocess
import sys
import tempfile

import _common as c
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from boostloss import FocalLoss, posterior_from_margin  # noqa: E402

COLD = r"""
import time, numpy as np
from boostloss import posterior_from_margin
x = np.array([0.3, -1.0]); z = np.zeros((2, 3))
posterior_from_margin(x)                     # imports numba and the package's kernels module
t0 = time.perf_counter(); posterior_from_margin(x, gamma=2.0); t1 = time.perf_counter()
posterior_from_margin(z, gamma=2.0); t2 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f}")
"""


def documented_map():
    text = (ROOT / "docs" / "deploying.md").read_text(encoding="utf-8")
    block = [
        b
        for b in re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
        if "def focal_posterior" in b
    ][0]
    namespace = {}
    exec(block, namespace)  # noqa: S102
    return namespace["focal_posterior"]


def first_calls():
    """(binary, K-class) seconds of the first call with a cold and with a warm cache."""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(__import__("os").environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
        for state in ("cold", "warm"):
            res = subprocess.run(
                [sys.executable, "-c", COLD], env=env, capture_output=True, text=True, check=True
            )
            out[state] = tuple(float(v) for v in res.stdout.split())
    return out


def main():
    import numba

    c.print_machine([f"numba   : {numba.get_num_threads()} threads"])
    rng = np.random.default_rng(0)
    numpy_map = documented_map()
    cases = []
    n = 1_000_000
    y = (rng.random(n) < 0.05).astype(np.float64)
    x = (rng.normal(size=n) * 2.0 - 3.0 + 3.0 * y).astype(np.float32)
    focal = FocalLoss(gamma=2.0, alpha=0.25)
    cases.append(
        (
            "binary, 1M rows",
            {
                "focal gradient_hessian (public)": lambda: focal.gradient_hessian(y, x),
                "posterior_from_margin, gamma 2": lambda: posterior_from_margin(
                    x, gamma=2.0, class_weights=(0.75, 0.25)
                ),
                "FocalLoss.predict_proba": lambda: focal.predict_proba(x),
                "gamma 0 (scipy expit)": lambda: posterior_from_margin(x),
                "numpy (docs/deploying.md)": lambda: numpy_map(x, 2.0, (0.75, 0.25)),
            },
        )
    )
    m, k = 200_000, 10
    yk = rng.integers(0, k, size=m).astype(np.float64)
    z = (rng.normal(size=(m, k)) * 2.0).astype(np.float32)
    z[np.arange(m), yk.astype(int)] += 2.0
    focal_k = FocalLoss(gamma=2.0)
    cases.append(
        (
            f"{k} classes, {m // 1000}k rows",
            {
                "focal gradient_hessian (public)": lambda: focal_k.gradient_hessian(yk, z),
                "posterior_from_margin, gamma 2": lambda: posterior_from_margin(z, gamma=2.0),
                "FocalLoss.predict_proba": lambda: focal_k.predict_proba(z),
                "gamma 0 (scipy softmax)": lambda: posterior_from_margin(z),
                "numpy (docs/deploying.md)": lambda: numpy_map(z, 2.0),
            },
        )
    )
    for label, contenders in cases:
        times = c.alternate(contenders, repeats=15, budget_s=40)
        med = {name: c.median(t) for name, t in times.items()}
        base = med["focal gradient_hessian (public)"]
        print(f"\n== {label}")
        c.print_table(
            ["call", "median", "/ gradient"],
            [[name, c.fmt_time(t), f"{t / base:.2f}x"] for name, t in med.items()],
        )
    calls = first_calls()
    print("\n== first call (compilation), binary / K classes")
    for state, (binary, multi) in calls.items():
        print(f"  {state} cache: {binary:.2f} s / {multi:.2f} s")
    print(f"\nload average at the end: {c.load_average()}")


if __name__ == "__main__":
    main()
