"""Start-up costs: ``import boostloss``, and the first call of every kernel, cold and warm cache.

numba compiles a kernel on its first call and, with ``cache=True``, stores the machine code on disk;
later processes load it instead. Each measurement runs in a fresh subprocess with
``NUMBA_CACHE_DIR`` pointing to a new temporary directory: the first subprocess sees a cold cache
(it compiles and writes), the second the same directory, warm (it loads). Every phase is timed
inside the subprocess.

Run ``python benchmarks/bench_startup.py`` (about 1-2 minutes: compiling is the slow part) or with
``--quick`` (fewer first calls: focal and GHM bins through the adapters' path only).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import _common as c

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
t_numpy = time.perf_counter()
import boostloss
from boostloss import FocalLoss, GHMLoss
t_import = time.perf_counter()
quick = sys.argv[1] == "1"
y = np.array([0.0, 1.0, 0.0, 1.0] * 25)
x32 = np.linspace(-3, 3, 100).astype(np.float32)
calls = [("focal gradient (float32 in, float32 out: adapters)", FocalLoss(), "adapter"),
         ("ghm bins gradient (float32 in, float32 out: adapters)", GHMLoss(), "adapter")]
if not quick:
    calls += [("ghm window gradient (float32 in, float32 out: adapters)", GHMLoss(density="window"),
               "adapter"),
              ("focal gradient_hessian (public, float64)", FocalLoss(), "public"),
              ("focal loss (public)", FocalLoss(), "loss"),
              ("ghm bins gradient_hessian (public, float64)", GHMLoss(), "public")]
out = {"import numpy": t_numpy - t0, "import boostloss": t_import - t_numpy}
for name, loss, path in calls:
    t = time.perf_counter()
    if path == "adapter":
        g = np.empty(100, np.float32); h = np.empty(100, np.float32)
        loss.gradient_hessian(y, x32, gradient_out=g, hessian_out=h, state=loss.new_state())
    elif path == "public":
        loss.gradient_hessian(y, x32.astype(np.float64))
    else:
        loss.loss(y, x32.astype(np.float64))
    out[name] = time.perf_counter() - t
out["total"] = time.perf_counter() - t0
print(json.dumps(out))
"""


def run_child(cache_dir, quick):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, "1" if quick else "0"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - t
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process wall time (interpreter start included)"] = wall
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer first calls")
    args = parser.parse_args(argv)
    c.print_machine()
    with tempfile.TemporaryDirectory(prefix="boostloss-numba-cache-") as cache_dir:
        cold = run_child(cache_dir, args.quick)
        warm = run_child(cache_dir, args.quick)
        n_files = sum(len(files) for _, _, files in os.walk(cache_dir))
    print(f"\n== start-up, fresh NUMBA_CACHE_DIR ({n_files} cache files written by the cold run)")
    rows = [
        [name, c.fmt_time(cold[name]), c.fmt_time(warm[name]), f"{cold[name] / warm[name]:.0f}x"]
        for name in cold
    ]
    c.print_table(["phase", "cold cache", "warm cache", "cold/warm"], rows)
    print(f"\nload average at the end: {c.load_average()}")


if __name__ == "__main__":
    main()
