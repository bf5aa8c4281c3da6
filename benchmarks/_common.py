"""Shared helpers of the benchmark scripts: machine description, timing, data, tables.

Timing follows one rule everywhere: every contender is warmed up once, then the contenders are
run in turn (round-robin, so that a burst of load on the machine hits all of them alike) and the
median of each contender's times is reported, with ratios computed from those medians.
"""

import os
import pathlib
import platform
import statistics
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def datasets_dir():
    return pathlib.Path(os.environ.get("BOOSTLOSS_DATASETS", ROOT.parent / "shared" / "datasets"))


def cpu_model():
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average():
    try:
        return " ".join(f"{load:.2f}" for load in os.getloadavg())
    except OSError:
        return "n/a"


def print_machine(extra=None):
    """One header block: CPU, cores, load, library versions (a pasted output describes itself)."""
    import numba

    print(f"machine : {cpu_model()}, {os.cpu_count()} logical CPUs, load average {load_average()}")
    print(
        f"python  : {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}"
    )
    for line in extra or ():
        print(line)


def alternate(contenders, repeats, warmup=1, budget_s=None):
    """Time ``contenders`` (name -> zero-argument callable) in alternation.

    Each is called ``warmup`` times first, then ``repeats`` rounds call each once in turn. Stops
    early (after at least 3 rounds) once ``budget_s`` seconds are spent. Returns name -> list of
    seconds.
    """
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in contenders}
    start = time.perf_counter()
    for r in range(repeats):
        for name, fn in contenders.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        if budget_s is not None and r >= 2 and time.perf_counter() - start > budget_s:
            break
    return times


def median(values):
    return statistics.median(values)


def fmt_time(seconds):
    if seconds >= 1.0:
        return f"{seconds:8.2f} s "
    if seconds >= 1e-3:
        return f"{seconds * 1e3:8.2f} ms"
    return f"{seconds * 1e6:8.1f} us"


def print_table(header, rows):
    """Plain fixed-width table; ``rows`` are lists of strings."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = "  ".join(
        str(h).ljust(w) if i == 0 else str(h).rjust(w)
        for i, (h, w) in enumerate(zip(header, widths, strict=True))
    )
    print(line)
    print("-" * len(line))
    for r in rows:
        print(
            "  ".join(
                str(c).ljust(w) if i == 0 else str(c).rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )


def synthetic_classification(n_rows, n_features, positive_rate=0.03, seed=0):
    """Fast make_classification-like data: a few informative Gaussian directions, a rare class.

    The label comes from a logistic model on 5 informative features plus noise, with the intercept
    set so that about ``positive_rate`` of the rows are positive. float32 features, float64 labels.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, n_features), dtype=np.float32)
    n_inf = min(5, n_features)
    coef = np.linspace(1.5, 0.5, n_inf)
    score = X[:, :n_inf].astype(np.float64) @ coef
    score += 0.5 * np.sin(3.0 * X[:, 0]) * X[:, min(1, n_features - 1)]
    # Intercept from the quantile that leaves positive_rate of the noisy scores above 0.
    noisy = score + rng.logistic(size=n_rows)
    intercept = -np.quantile(noisy, 1.0 - positive_rate)
    y = (noisy + intercept > 0.0).astype(np.float64)
    return X, y


def synthetic_margins(n_rows, positive_rate=0.03, seed=0):
    """Labels and float32 margins that look like a mid-training booster's predictions."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n_rows) < positive_rate).astype(np.float64)
    prior = np.log(positive_rate / (1.0 - positive_rate))
    x = prior + 2.5 * (y - positive_rate) * 2.0 + rng.standard_normal(n_rows) * 1.5
    return y, x.astype(np.float32)


def load_csv_dataset(name):
    """Numeric features (float32) and labels (float64) of a shared dataset, or None if absent."""
    path = datasets_dir() / name / "data.csv.gz"
    if not path.is_file():
        return None
    import pandas as pd

    frame = pd.read_csv(path)
    y = frame.pop("y").to_numpy(dtype=np.float64)
    X = frame.select_dtypes("number").to_numpy(dtype=np.float32)
    return X, y
