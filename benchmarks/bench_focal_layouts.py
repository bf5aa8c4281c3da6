"""Feasibility study: compile time and per-call time of other layouts of the binary focal kernel.

Compares, for ``focal_grad_hess`` (today: one ``parallel=True`` kernel with four inlined prange
loops, one per gamma in {2, 1, 0} and a general one, compiled once per margin/output dtype):

* ``current``        the package kernel;
* ``pool``           a serial ``nogil`` kernel over rows ``[lo, hi)`` with the same four gamma
  loops, one chunk per numba thread run by a Python ``ThreadPoolExecutor``;
* ``pool-g``         the same with one small kernel per gamma, picked in Python (runtime dispatch:
  a first call compiles only its gamma's loop);
* ``par-g``          one ``prange`` kernel per gamma (runtime dispatch, numba's thread pool);
* ``f64-convert``    float32 margins converted to float64 once, the float64 specialisation
  run into float64 buffers and cast to the float32 outputs (one compiled dtype instead of two);
* the general-gamma loop without the modulating factor's gamma tests (``*-nb``), against gamma 2
  and a straightforward numpy focal implementation.

Compile times: each kernel's first call in a fresh subprocess with an empty ``NUMBA_CACHE_DIR``
(first call minus second call). Per-call times: medians of alternating calls at 1M rows, 2 numba
threads. Every variant is checked bit for bit (``np.array_equal``) against the package kernel.
Run ``python benchmarks/bench_focal_layouts.py`` (2-4 minutes on 2 cores).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import _common as c
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, str(c.ROOT))
PARALLEL_MIN_ROWS = 1 << 15

COMPILE_CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[3])
import numpy as np
import _proto_focal as P
name, dtype = sys.argv[1], sys.argv[2]
gamma = float(sys.argv[4])
fn = getattr(P.K, name) if name in ("focal_grad_hess", "focal_loss") else getattr(P, name)
n = 1000
rng = np.random.default_rng(0)
y = (rng.random(n) < 0.3).astype(np.float64)
x = rng.normal(size=n).astype(dtype)
w = np.empty(0)
g = np.empty(n, dtype); h = np.empty(n, dtype)
extra = () if name.startswith(("focal_grad_hess", "focal_par")) else (0, n)
times = []
for _ in range(2):
    t = time.perf_counter()
    fn(y, x, w, gamma, 0.25, 0.75, 0, g, h, *extra)
    times.append(time.perf_counter() - t)
print(json.dumps(times))
"""


def compile_time(name, dtype, gamma=2.0):
    with tempfile.TemporaryDirectory(prefix="boostloss-numba-cache-") as cache_dir:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
        proc = subprocess.run(
            [sys.executable, "-c", COMPILE_CHILD, name, dtype, HERE, str(gamma)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            cwd=str(c.ROOT),
        )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    first, second = json.loads(proc.stdout.strip().splitlines()[-1])
    return first - second


class Pool:
    """One chunk of rows per thread: the last chunk on the calling thread, the others in a pool."""

    def __init__(self, n_threads):
        self.n_threads = n_threads
        self.executor = ThreadPoolExecutor(max_workers=max(n_threads - 1, 1))

    def run(self, kernel, y, x, w, gamma, a_pos, a_neg, mode, g, h):
        n = x.shape[0]
        if n < PARALLEL_MIN_ROWS or self.n_threads == 1:
            kernel(y, x, w, gamma, a_pos, a_neg, mode, g, h, 0, n)
            return
        bounds = [n * t // self.n_threads for t in range(self.n_threads + 1)]
        futures = [
            self.executor.submit(
                kernel, y, x, w, gamma, a_pos, a_neg, mode, g, h, bounds[t], bounds[t + 1]
            )
            for t in range(self.n_threads - 1)
        ]
        kernel(y, x, w, gamma, a_pos, a_neg, mode, g, h, bounds[-2], bounds[-1])
        for f in futures:
            f.result()


def compile_table():
    cases = [
        ("current, float32 margins + outputs", "focal_grad_hess", "float32", 2.0),
        ("current, float64", "focal_grad_hess", "float64", 2.0),
        ("pool (4 gamma loops), float32", "focal_range", "float32", 2.0),
        ("pool-g: gamma-2 kernel only, float32", "focal_range_g2", "float32", 2.0),
        ("pool-g: gamma-2 kernel only, float64", "focal_range_g2", "float64", 2.0),
        ("pool-g: general kernel as today, float32", "focal_range_general", "float32", 1.5),
        (
            "pool-g: general kernel, no gamma tests, float32",
            "focal_range_general_nb",
            "float32",
            1.5,
        ),
        ("par-g: prange gamma-2 kernel, float32", "focal_par_g2", "float32", 2.0),
        ("par-g: prange general, no gamma tests, float32", "focal_par_general_nb", "float32", 1.5),
        ("par-g: prange gamma-2 kernel, float64", "focal_par_g2", "float64", 2.0),
        (
            "par-g: prange general, bitcast 2**k, float32",
            "focal_par_general_bitcast",
            "float32",
            1.5,
        ),
    ]
    rows, out = [], {}
    for label, name, dtype, gamma in cases:
        load = c.load_average().split()[0]
        t = compile_time(name, dtype, gamma)
        out[label] = t
        rows.append([label, f"{t:6.2f} s", load])
        print(f"  {label}: {t:.2f} s (load {load})", flush=True)
    print("\n== compile time of one kernel's first call, fresh NUMBA_CACHE_DIR")
    c.print_table(["kernel", "compile", "load (1 min)"], rows)
    return out


def percall_table(n_rows, repeats, budget_s):
    import numba

    sys.path.insert(0, HERE)
    import _proto_focal as P
    from bench_objective import numpy_focal

    threads = numba.get_num_threads()
    pool = Pool(threads)
    y, x32 = c.synthetic_margins(n_rows)  # bench_objective.py's margins
    x64 = x32.astype(np.float64)
    w = np.empty(0)
    bufs = {}

    def buf(key, dtype):
        if key not in bufs:
            bufs[key] = (np.empty(n_rows, dtype), np.empty(n_rows, dtype))
        return bufs[key]

    cur = P.K.focal_grad_hess
    exact = 0

    def current(gamma, x, key):
        g, h = buf(key, x.dtype)
        return lambda: cur(y, x, w, gamma, 0.25, 0.75, exact, g, h)

    def converted(gamma, key):
        g, h = buf(key, np.float32)
        g64, h64 = buf(key + "64", np.float64)

        def run():
            xx = x32.astype(np.float64)
            cur(y, xx, w, gamma, 0.25, 0.75, exact, g64, h64)
            np.copyto(g, g64, casting="same_kind")
            np.copyto(h, h64, casting="same_kind")

        return run

    def margins64(gamma, key):
        g, h = buf(key, np.float32)
        return lambda: cur(y, x32.astype(np.float64), w, gamma, 0.25, 0.75, exact, g, h)

    def pooled(kernel, gamma, x, key):
        g, h = buf(key, x.dtype)
        return lambda: pool.run(kernel, y, x, w, gamma, 0.25, 0.75, exact, g, h)

    def par(kernel, gamma, x, key):
        g, h = buf(key, x.dtype)
        return lambda: kernel(y, x, w, gamma, 0.25, 0.75, exact, g, h)

    groups = {
        "gamma 2, float32 margins and outputs (adapters)": (
            2.0,
            {
                "current": current(2.0, x32, "cur32"),
                "f64-convert (current f64 kernel + casts)": converted(2.0, "conv"),
                "f64 margins only (x.astype, float32 outputs)": margins64(2.0, "m64"),
                "pool-g (gamma-2 kernel)": pooled(P.focal_range_g2, 2.0, x32, "poolg32"),
                "par-g (prange gamma-2 kernel)": par(P.focal_par_g2, 2.0, x32, "parg32"),
                "numpy focal": lambda: numpy_focal(y, x32, 2.0, 0.25, exact=True),
            },
        ),
        "gamma 2, float64 (public path)": (
            2.0,
            {
                "current": current(2.0, x64, "cur64"),
                "pool-g (gamma-2 kernel)": pooled(P.focal_range_g2, 2.0, x64, "poolg64"),
            },
        ),
    }
    for gamma in (0.5, 1.5):
        groups[f"gamma {gamma}, float32 margins and outputs"] = (
            gamma,
            {
                "current": current(gamma, x32, f"cur32-{gamma}"),
                "current gamma 2 (same call, gamma 2)": current(2.0, x32, "cur32-2"),
                "pool-g (general, no gamma tests)": pooled(
                    P.focal_range_general_nb, gamma, x32, f"poolnb{gamma}"
                ),
                "par-g (prange general, no gamma tests)": par(
                    P.focal_par_general_nb, gamma, x32, f"parnb{gamma}"
                ),
                "par-g (prange general, bitcast 2**k)": par(
                    P.focal_par_general_bitcast, gamma, x32, f"parbc{gamma}"
                ),
                "numpy focal": lambda gamma=gamma: numpy_focal(y, x32, gamma, 0.25, exact=True),
            },
        )
    results = {}
    for title, (_gamma, contenders) in groups.items():
        for fn in contenders.values():
            fn()
        load0 = c.load_average()
        times = c.alternate(contenders, repeats, warmup=1, budget_s=budget_s)
        med = {k: c.median(v) for k, v in times.items()}
        best = {k: min(v) for k, v in times.items()}
        results[title] = med
        base, base_min = med["current"], best["current"]
        print(f"\n== {title}: {n_rows} rows, {threads} threads, load {load0} -> {c.load_average()}")
        rows = [
            [
                name,
                f"{1e3 * t:8.2f} ms",
                f"{t / base:5.2f}x",
                f"{1e3 * best[name]:8.2f} ms",
                f"{best[name] / base_min:5.2f}x",
            ]
            for name, t in med.items()
        ]
        c.print_table(["variant", "median", "/ current", "min", "/ current"], rows)
    check_bits(P, pool, y, x32, x64, w)
    return results


def check_bits(P, pool, y, x32, x64, w):
    """np.array_equal of every variant against the package kernel, both dtypes, several gammas."""
    cur = P.K.focal_grad_hess
    bad = []
    edge = np.array([-800.0, -40.0, -1e-30, 0.0, 1e-30, 40.0, 800.0] * 2)
    y = np.concatenate([y[:200_000], np.repeat([0.0, 1.0], 7)])
    x32 = np.concatenate([x32[:200_000], edge.astype(np.float32)])
    x64 = np.concatenate([x64[:200_000], edge])
    for gamma in (0.0, 0.5, 1.0, 1.5, 2.0, 3.0):
        for mode in (0, 1):
            for x in (x32, x64):
                n = x.shape[0]
                ref = (np.empty(n, x.dtype), np.empty(n, x.dtype))
                cur(y, x, w, gamma, 0.25, 0.75, mode, *ref)
                outs = {}
                for name, kernel in (
                    ("pool", P.focal_range),
                    ("pool-g", P.RANGE_BY_GAMMA.get(gamma, P.focal_range_general)),
                    ("pool-g nb", P.RANGE_BY_GAMMA.get(gamma, P.focal_range_general_nb)),
                ):
                    o = (np.empty(n, x.dtype), np.empty(n, x.dtype))
                    pool.run(kernel, y, x, w, gamma, 0.25, 0.75, mode, *o)
                    outs[name] = o
                if gamma == 2.0:
                    o = (np.empty(n, x.dtype), np.empty(n, x.dtype))
                    P.focal_par_g2(y, x, w, gamma, 0.25, 0.75, mode, *o)
                    outs["par-g"] = o
                elif gamma not in (0.0, 1.0):
                    for name, kernel in (
                        ("par-g nb", P.focal_par_general_nb),
                        ("par-g bitcast", P.focal_par_general_bitcast),
                    ):
                        o = (np.empty(n, x.dtype), np.empty(n, x.dtype))
                        kernel(y, x, w, gamma, 0.25, 0.75, mode, *o)
                        outs[name] = o
                if x.dtype == np.float32:
                    o = (np.empty(n, np.float32), np.empty(n, np.float32))
                    cur(y, x32.astype(np.float64), w, gamma, 0.25, 0.75, mode, *o)
                    outs["f64 margins only"] = o
                    g64, h64 = np.empty(n), np.empty(n)
                    cur(y, x32.astype(np.float64), w, gamma, 0.25, 0.75, mode, g64, h64)
                    outs["f64-convert"] = (g64.astype(np.float32), h64.astype(np.float32))
                for name, (g, h) in outs.items():
                    if not (np.array_equal(g, ref[0]) and np.array_equal(h, ref[1])):
                        bad.append((name, gamma, mode, str(x.dtype)))
    if bad:
        print(f"\nNOT bit-identical: {bad}")
    else:
        print(
            "\nbit-identical to the package kernel (np.array_equal, gradient and Hessian): every "
            "variant, gamma in {0, 0.5, 1, 1.5, 2, 3}, exact and Gauss-Newton, float32 and float64"
        )


E2E_PATCH = r"""
import sys
sys.path.insert(0, {here!r})
import _proto_focal
_proto_focal.install()
"""


def end_to_end(scenarios):
    """bench_compile.py's first trainings, cold and warm, with today's kernel and with the
    per-gamma dispatch installed in its place (process wall times, same load window)."""
    import bench_compile as bc

    rows = []
    for scenario in scenarios:
        for label, prefix in (("current", ""), ("per-gamma", E2E_PATCH.format(here=HERE))):
            load = c.load_average().split()[0]
            walls = []
            with tempfile.TemporaryDirectory(prefix="boostloss-numba-cache-") as cache_dir:
                env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
                for _ in range(2):
                    t = time.perf_counter()
                    subprocess.run(
                        [sys.executable, "-c", prefix + bc.CHILD, scenario],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                        cwd=str(c.ROOT),
                    )
                    walls.append(time.perf_counter() - t)
            cold, warm = walls
            rows.append(
                [scenario, label, f"{cold:6.2f} s", f"{warm:6.2f} s", f"{cold - warm:6.2f} s", load]
            )
            print(
                f"  {scenario} {label}: cold {cold:.2f} s, warm {warm:.2f} s (load {load})",
                flush=True,
            )
    print("\n== first trainings, focal_grad_hess replaced by the per-gamma dispatch")
    c.print_table(["scenario", "kernel", "cold", "warm", "cold - warm", "load (1 min)"], rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per timing group")
    parser.add_argument("--no-compile", action="store_true", help="per-call times only")
    parser.add_argument("--threads", type=int, help="numba threads (default: numba's)")
    parser.add_argument(
        "--end-to-end",
        action="store_true",
        help="only: first trainings (bench_compile.py's) cold and warm, today's kernel against "
        "the per-gamma dispatch",
    )
    args = parser.parse_args(argv)
    c.print_machine()
    t0 = time.perf_counter()
    if args.end_to_end:
        end_to_end(["xgb-focal", "lgb-focal", "first-use"])
        return
    if args.threads:
        import numba

        numba.set_num_threads(args.threads)
    if not args.no_compile:
        compile_table()
    percall_table(args.rows, args.repeats, args.budget)
    print(f"\n{time.perf_counter() - t0:.0f} s; load average at the end: {c.load_average()}")


if __name__ == "__main__":
    main()
