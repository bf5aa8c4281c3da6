"""Per-call cost of the boostloss objectives next to numpy, at 1e4 .. 1e7 rows.

Contenders, all run in alternation within one process (medians after a warm-up):

- boostloss focal (gamma 2 and gamma 1.5 with the exact Hessian, the default; gamma 2 also with the
  Gauss-Newton Hessian), alpha 0.25, and GHM-C (binned density with 10 bins, window density with
  epsilon 0.1),
  called the way the XGBoost / LightGBM adapters call them: float32 margins as the framework hands
  them over, float32 gradient / Hessian buffers reused across calls, no validation;
- the same losses through the public ``gradient_hessian`` (validation, float64 outputs allocated);
- a straightforward numpy implementation of each loss (several whole-array passes), checked to agree
  with boostloss before anything is timed, so that the comparison is between equal results;
- numpy's logistic gradient ``p = 1/(1+exp(-x)); g = p - y; h = p*(1-p)`` in float32 (margins and
  labels as XGBoost hands them over): the floor, what a trivial custom objective costs; and the
  same in float64 for reference (boostloss computes in float64).

Run ``python benchmarks/bench_objective.py`` (about 3 minutes on 2 cores) or with ``--quick``
(about 30 s, no 1e7 rows). ``--threads N`` sets numba's thread count.
"""

import argparse
import sys
import time

import _common as c
import numpy as np

# ---------------------------------------------------------------------------------------------
# Straightforward numpy implementations (what one writes without kernels)
# ---------------------------------------------------------------------------------------------


def numpy_focal(y, x, gamma, alpha, exact=False):
    """Focal loss gradient and Hessian in numpy, stable (log space, margin toward the class)."""
    x = x.astype(np.float64)
    s = 2.0 * y - 1.0
    a = np.where(y > 0.5, alpha, 1.0 - alpha)
    z = s * x
    log_pt = -np.logaddexp(0.0, -z)
    pt = np.exp(log_pt)
    log_q = log_pt - z
    q = np.exp(log_q)
    m = np.exp(gamma * log_q)
    am = a * m
    pt_log_pt = pt * log_pt
    grad = s * am * (gamma * pt_log_pt - q)
    if exact:
        hess = am * (gamma * pt_log_pt * (q - gamma * pt) + (2.0 * gamma + 1.0) * pt * q)
    else:
        hess = am * pt * q
    np.maximum(hess, 1e-16, out=hess)
    return grad, hess


def _numpy_ce_parts(y, x):
    x = x.astype(np.float64)
    with np.errstate(over="ignore"):
        p = 1.0 / (1.0 + np.exp(-x))
    diff = p - y
    hess = np.maximum(p * (1.0 - p), 1e-16)
    return diff, hess, np.abs(diff)


def numpy_ghm_bins(y, x, bins=10):
    """GHM-C with the binned density (edges as in the paper's code), vectorised with bincount."""
    diff, hess, g = _numpy_ce_parts(y, x)
    edges = np.arange(bins + 1, dtype=np.float64) / bins
    edges[-1] += 1e-6
    b = np.searchsorted(edges, g, side="right") - 1
    counts = np.bincount(b, minlength=bins).astype(np.float64)
    nonempty = counts > 0
    beta = np.zeros(bins)
    beta[nonempty] = g.shape[0] / counts[nonempty] / np.count_nonzero(nonempty)
    wb = beta[b]
    return diff * wb, hess * wb


def numpy_ghm_window(y, x, epsilon=0.1):
    """GHM-C with the sliding-window density: one sort, two binary searches per sample."""
    diff, hess, g = _numpy_ce_parts(y, x)
    n = g.shape[0]
    half = 0.5 * epsilon
    sorted_g = np.sort(g)
    count = (
        np.searchsorted(sorted_g, g + half, side="left")
        - np.searchsorted(sorted_g, g - half, side="right")
    ).astype(np.float64)
    length = np.minimum(g + half, 1.0) - np.maximum(g - half, 0.0)
    beta = n * length / count
    beta *= n / beta.sum()
    return diff * beta, hess * beta


def numpy_logistic(y32, x32):
    """The floor: numpy's logistic gradient and Hessian, float32 like the framework's margins."""
    with np.errstate(over="ignore"):
        p = 1.0 / (1.0 + np.exp(-x32))
    return p - y32, p * (1.0 - p)


# ---------------------------------------------------------------------------------------------


def make_contenders(y, x32, with_public=True):
    """name -> (callable, group). Groups tie a boostloss contender to its numpy counterpart."""
    from boostloss import FocalLoss, GHMLoss
    from boostloss.losses import check_target

    n = y.shape[0]
    y32 = y.astype(np.float32)
    losses = {
        "focal g=2": FocalLoss(gamma=2.0, alpha=0.25, hessian="exact"),
        "focal g=1.5": FocalLoss(gamma=1.5, alpha=0.25, hessian="exact"),
        "focal g=2 gauss_newton": FocalLoss(gamma=2.0, alpha=0.25, hessian="gauss_newton"),
        "ghm bins": GHMLoss(bins=10),
        "ghm window": GHMLoss(density="window", epsilon=0.1),
    }
    references = {
        "focal g=2": lambda: numpy_focal(y, x32, 2.0, 0.25, exact=True),
        "focal g=1.5": lambda: numpy_focal(y, x32, 1.5, 0.25, exact=True),
        "focal g=2 gauss_newton": lambda: numpy_focal(y, x32, 2.0, 0.25, exact=False),
        "ghm bins": lambda: numpy_ghm_bins(y, x32, 10),
        "ghm window": lambda: numpy_ghm_window(y, x32, 0.1),
    }
    contenders = {}
    for name, loss in losses.items():
        target = check_target(y)  # validated once, as the adapters do
        state = loss.new_state()
        grad = np.empty(n, dtype=np.float32)
        hess = np.empty(n, dtype=np.float32)

        def adapter_path(loss=loss, target=target, state=state, grad=grad, hess=hess):
            loss.gradient_hessian(target, x32, gradient_out=grad, hessian_out=hess, state=state)

        contenders[f"boostloss {name}"] = adapter_path
        if with_public:
            contenders[f"boostloss {name} (public)"] = lambda loss=loss: loss.gradient_hessian(
                y, x32
            )
        contenders[f"numpy {name}"] = references[name]
    contenders["numpy logistic (floor)"] = lambda: numpy_logistic(y32, x32)
    contenders["numpy logistic float64"] = lambda: numpy_logistic(y, x32.astype(np.float64))
    return contenders, losses, references


def check_agreement(y, x32, losses, references):
    """The numpy references must give boostloss's numbers (float64 public path) before timing."""
    worst = 0.0
    for name, loss in losses.items():
        g_b, h_b = loss.gradient_hessian(y, x32)
        g_r, h_r = references[name]()
        for ours, theirs in ((g_b, g_r), (h_b, h_r)):
            err = float(np.max(np.abs(ours - theirs)) / max(np.max(np.abs(theirs)), 1e-300))
            worst = max(worst, err)
            if not err < 1e-9:
                sys.exit(
                    f"numpy reference of {name!r} disagrees with boostloss: "
                    f"max rel. error {err:.3g}"
                )
    return worst


def run_case(label, y, x32, repeats, budget_s, with_public=True):
    contenders, losses, references = make_contenders(y, x32, with_public)
    worst = check_agreement(y, x32, losses, references)
    times = c.alternate(contenders, repeats=repeats, warmup=2, budget_s=budget_s)
    med = {k: c.median(v) for k, v in times.items()}
    n = y.shape[0]
    floor = med["numpy logistic (floor)"]
    print(
        f"\n== {label}: {n:,} rows, {y.mean():.2%} positives, "
        f"{len(times['numpy logistic (floor)'])} alternating rounds, numpy refs agree to "
        f"{worst:.1e} (max rel.)"
    )
    rows = []
    for name in ("focal g=2", "focal g=1.5", "focal g=2 gauss_newton", "ghm bins", "ghm window"):
        ours = med[f"boostloss {name}"]
        ref = med[f"numpy {name}"]
        public = med.get(f"boostloss {name} (public)")
        rows.append(
            [
                name,
                c.fmt_time(ours),
                f"{ours / n * 1e9:.2f}",
                c.fmt_time(public) if public is not None else "-",
                c.fmt_time(ref),
                f"{ref / ours:.1f}x",
                f"{ours / floor:.2f}x",
                f"{ours / med['boostloss focal g=2']:.2f}x",
            ]
        )
    rows.append(
        [
            "numpy logistic (floor)",
            c.fmt_time(floor),
            f"{floor / n * 1e9:.2f}",
            "-",
            "-",
            "-",
            "1.00x",
            "-",
        ]
    )
    f64 = med["numpy logistic float64"]
    rows.append(
        [
            "numpy logistic float64",
            c.fmt_time(f64),
            f"{f64 / n * 1e9:.2f}",
            "-",
            "-",
            "-",
            f"{f64 / floor:.2f}x",
            "-",
        ]
    )
    c.print_table(
        [
            "loss",
            "boostloss",
            "ns/row",
            "public API",
            "numpy",
            "numpy/ours",
            "ours/floor",
            "ours/focal2",
        ],
        rows,
    )
    return med


def print_targets(med):
    f2 = med["boostloss focal g=2"]
    checks = [
        ("focal g=2 >= 3x faster than numpy focal", med["numpy focal g=2"] / f2, ">=", 3.0),
        (
            "focal g=1.5 >= 3x faster than numpy focal",
            med["numpy focal g=1.5"] / med["boostloss focal g=1.5"],
            ">=",
            3.0,
        ),
        ("focal g=2 within 2x of numpy logistic", f2 / med["numpy logistic (floor)"], "<=", 2.0),
        (
            "focal g=1.5 within 2x of numpy logistic",
            med["boostloss focal g=1.5"] / med["numpy logistic (floor)"],
            "<=",
            2.0,
        ),
        (
            "focal g=2 within 2x of numpy logistic in float64",
            f2 / med["numpy logistic float64"],
            "<=",
            2.0,
        ),
        ("ghm bins within 1.5x of focal g=2", med["boostloss ghm bins"] / f2, "<=", 1.5),
        ("ghm window within 1.5x of focal g=2", med["boostloss ghm window"] / f2, "<=", 1.5),
    ]
    print("\n== targets at 1M rows")
    for text, value, op, bound in checks:
        ok = value >= bound if op == ">=" else value <= bound
        print(f"  {'PASS' if ok else 'FAIL'}  {text}: {value:.2f}x ({op} {bound}x)")


def covertype_margins(X, y):
    """Margins of a plausible model on covertype: a least-squares score mapped to log-odds."""
    Xs = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-12)
    A = np.column_stack([Xs.astype(np.float64), np.ones(X.shape[0])])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    score = A @ coef
    prior = np.log(y.mean() / (1.0 - y.mean()))
    return (prior + 2.0 * (score - score.mean()) / score.std()).astype(np.float32)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="short run: fewer repeats, no 1e7 rows"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="numba threads (default: all cores)"
    )
    parser.add_argument("--sizes", type=str, default=None, help="comma-separated row counts")
    args = parser.parse_args(argv)

    import numba

    if args.threads:
        numba.set_num_threads(args.threads)
    t_start = time.perf_counter()
    c.print_machine([f"numba   : {numba.get_num_threads()} threads"])
    from boostloss._kernels.cache import kernels

    kernels()  # compile / load the kernels before the clock matters

    if args.sizes:
        sizes = [int(float(s)) for s in args.sizes.split(",")]
    else:
        sizes = [10_000, 100_000, 1_000_000] + ([] if args.quick else [10_000_000])
    budget = 4.0 if args.quick else 25.0
    results = {}
    for n in sizes:
        y, x32 = c.synthetic_margins(n, positive_rate=0.03, seed=n)
        repeats = max(5, min(300, int(3e6 / n))) if args.quick else max(7, min(1000, int(3e7 / n)))
        results[n] = run_case("synthetic", y, x32, repeats, budget, with_public=True)
    if 1_000_000 in results:
        print_targets(results[1_000_000])

    data = c.load_csv_dataset("covertype_cottonwood")
    if data is None:
        print(
            f"\n(covertype_cottonwood not found under {c.datasets_dir()}; set BOOSTLOSS_DATASETS)"
        )
    else:
        X, y = data
        x32 = covertype_margins(X, y)
        run_case("covertype_cottonwood", y, x32, 15 if args.quick else 60, budget, with_public=True)
    total = time.perf_counter() - t_start
    print(f"\nload average at the end: {c.load_average()}; total {total:.0f} s")


if __name__ == "__main__":
    main()
