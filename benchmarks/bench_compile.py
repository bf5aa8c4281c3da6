"""Compile time on a cold cache: which kernels a first training compiles, and what each costs.

Every scenario runs in a fresh subprocess with ``NUMBA_CACHE_DIR`` pointing to a new temporary
directory (cold: numba compiles and writes its cache), then in a second subprocess with the same
directory (warm: numba loads). Inside the subprocess a listener on numba's ``"numba:compile"``
events (``numba.core.event``) records every compilation: the dispatcher's name, the signature and
the duration. A kernel that calls another (not inlined) ``@njit`` function compiles it inside its
own compilation, so the events nest: *inclusive* is a compilation's whole duration, *exclusive* the
part not spent in nested compilations; the exclusive times add up to the total compile time with
nothing counted twice. Writing the cache files happens after the event, so it is not included.

Scenarios (400 rows x 5 features, 5 boosting rounds, fit then predict_proba):

* ``xgb-focal``  ``boostloss.XGBClassifier(loss=FocalLoss())``, binary
* ``lgb-focal``  ``boostloss.LGBMClassifier(loss=FocalLoss())``, binary
* ``lgb-ghm``    ``boostloss.LGBMClassifier(loss=GHMLoss())``, binary
* ``xgb-focal-3`` ``boostloss.XGBClassifier(loss=FocalLoss())``, 3 classes
* ``first-use``  the four above in one process (issue 23's first-use script)

Run ``python benchmarks/bench_compile.py`` (about 2-3 minutes on 2 cores), ``--scenario NAME``
(repeatable) for some of them, ``--top N`` for longer kernel lists, ``--json PATH`` to keep the raw
records.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import _common as c

SCENARIOS = ("xgb-focal", "lgb-focal", "lgb-ghm", "xgb-focal-3", "first-use")

CHILD = r"""
import json, sys, threading, time
t0 = time.perf_counter()
from numba.core import event as ev

records = []          # (name, signature, inclusive s, exclusive s, depth)
_stack = threading.local()


class CompileListener(ev.Listener):
    def on_start(self, event):
        st = getattr(_stack, "s", None)
        if st is None:
            st = _stack.s = []
        st.append([time.perf_counter(), 0.0])

    def on_end(self, event):
        st = _stack.s
        start, nested = st.pop()
        dur = time.perf_counter() - start
        if st:
            st[-1][1] += dur
        d = event.data["dispatcher"]
        fn = getattr(d, "py_func", None)
        mod = getattr(fn, "__module__", "?")
        name = (mod.rsplit(".", 1)[-1] + "." + getattr(fn, "__qualname__", str(d)))
        sig = "(" + ", ".join(str(a) for a in event.data["args"]) + ")"
        records.append((name, sig, dur, dur - nested, len(st)))


ev.register("numba:compile", CompileListener())

import numpy as np
import boostloss
from boostloss import FocalLoss, GHMLoss
t_import = time.perf_counter()


def data(classes):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    if classes == 2:
        y = (X[:, 0] + 0.5 * rng.normal(size=400) > 0.3).astype(int)
    else:
        y = np.digitize(X[:, 0] + 0.5 * rng.normal(size=400), [-0.4, 0.4])
    return X, y


def train(kind):
    if kind == "xgb-focal":
        X, y = data(2)
        m = boostloss.XGBClassifier(loss=FocalLoss(), n_estimators=5, n_jobs=2)
    elif kind == "lgb-focal":
        X, y = data(2)
        m = boostloss.LGBMClassifier(loss=FocalLoss(), n_estimators=5, n_jobs=2, verbose=-1)
    elif kind == "lgb-ghm":
        X, y = data(2)
        m = boostloss.LGBMClassifier(loss=GHMLoss(), n_estimators=5, n_jobs=2, verbose=-1)
    elif kind == "xgb-focal-3":
        X, y = data(3)
        m = boostloss.XGBClassifier(loss=FocalLoss(), n_estimators=5, n_jobs=2)
    else:
        raise ValueError(kind)
    m.fit(X, y)
    m.predict_proba(X)


scenario = sys.argv[1]
first_use = ["xgb-focal", "lgb-ghm", "lgb-focal", "xgb-focal-3"]
steps = first_use if scenario == "first-use" else [scenario]
phases = {"import boostloss": t_import - t0}
for kind in steps:
    t = time.perf_counter()
    train(kind)
    phases[kind] = time.perf_counter() - t
phases["total"] = time.perf_counter() - t0
print(json.dumps({"phases": phases, "records": records}))
"""


def run_child(scenario, cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, scenario],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=str(c.ROOT),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"scenario {scenario} failed:\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - t
    return result


def measure(scenario):
    with tempfile.TemporaryDirectory(prefix="boostloss-numba-cache-") as cache_dir:
        load_before = c.load_average()
        cold = run_child(scenario, cache_dir)
        warm = run_child(scenario, cache_dir)
        load_after = c.load_average()
    return {"cold": cold, "warm": warm, "load": (load_before, load_after)}


def by_kernel(records):
    """name -> [number of signatures, inclusive s, exclusive s, signatures]."""
    out = {}
    for name, sig, inc, exc, _depth in records:
        row = out.setdefault(name, [0, 0.0, 0.0, []])
        row[0] += 1
        row[1] += inc
        row[2] += exc
        row[3].append(sig)
    return out


def short_signature(sig):
    """``array(float32, 1d, C)`` -> ``f32[C]``, ``float64`` -> ``f64``: one line per signature."""
    sig = re.sub(r"array\((\w+), (\d)d, (\w)\)", lambda m: f"{m[1]}[{m[2]}d{m[3]}]", sig)
    sig = sig.replace("float", "f").replace("int", "i").replace("[1d", "[")
    return sig if len(sig) <= 90 else sig[:87] + "..."


def fmt(seconds):
    return f"{seconds:6.2f} s"


def report(scenario, res, top):
    cold, warm = res["cold"], res["warm"]
    recs = cold["records"]
    compile_total = sum(r[3] for r in recs)
    print(
        f"\n== {scenario}   (load average {res['load'][0]} before, {res['load'][1]} after; "
        f"{len(recs)} compilations, {compile_total:.2f} s compiling)"
    )
    rows = []
    for phase in cold["phases"]:
        cp, wp = cold["phases"][phase], warm["phases"][phase]
        rows.append([phase, fmt(cp), fmt(wp), fmt(cp - wp)])
    rows.append(
        [
            "process wall time",
            fmt(cold["wall"]),
            fmt(warm["wall"]),
            fmt(cold["wall"] - warm["wall"]),
        ]
    )
    c.print_table(["phase", "cold", "warm", "cold - warm"], rows)
    kernels = by_kernel(recs)
    ordered = sorted(kernels.items(), key=lambda kv: -kv[1][2])
    rows = [
        [name, str(n), fmt(inc), fmt(exc), f"{100 * exc / max(compile_total, 1e-9):4.1f}%"]
        for name, (n, inc, exc, _sigs) in ordered[:top]
    ]
    rest = ordered[top:]
    if rest:
        rows.append(
            [
                f"({len(rest)} others)",
                str(sum(v[0] for _, v in rest)),
                "",
                fmt(sum(v[2] for _, v in rest)),
                f"{100 * sum(v[2] for _, v in rest) / max(compile_total, 1e-9):4.1f}%",
            ]
        )
    c.print_table(["kernel", "signatures", "inclusive", "exclusive", "share"], rows)
    rows = []
    for name, (_n, _inc, _exc, _sigs) in ordered[: min(top, 4)]:
        for rec in recs:
            if rec[0] == name:
                rows.append([name.rsplit(".", 1)[-1], short_signature(rec[1]), fmt(rec[3])])
    print()
    c.print_table(["kernel", "signature", "exclusive"], rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="default: all")
    parser.add_argument("--top", type=int, default=8, help="kernels listed per scenario")
    parser.add_argument("--json", help="write the raw records to this file")
    args = parser.parse_args(argv)
    c.print_machine()
    results = {}
    for scenario in args.scenario or SCENARIOS:
        results[scenario] = measure(scenario)
        report(scenario, results[scenario], args.top)
    print("\n== summary: cold, warm, cold - warm (process wall time)")
    rows = [
        [
            s,
            fmt(r["cold"]["wall"]),
            fmt(r["warm"]["wall"]),
            fmt(r["cold"]["wall"] - r["warm"]["wall"]),
            f"{sum(x[3] for x in r['cold']['records']):6.2f} s",
            str(len(r["cold"]["records"])),
        ]
        for s, r in results.items()
    ]
    c.print_table(["scenario", "cold", "warm", "cold - warm", "compiling", "compilations"], rows)
    print(f"\nload average at the end: {c.load_average()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
