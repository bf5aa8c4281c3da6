"""Per-call cost of the softmax focal kernel next to numpy, 200k rows x K = 10 (issue 12, item 6).

Contenders, run in alternation within one process (medians after a warm-up):

- boostloss ``softmax_focal_grad_hess`` (gamma 2, per-class alpha, exact and Gauss-Newton Hessian;
  gamma 1.5 exact), called the way an adapter calls it: float32 margins as the framework hands them
  over (C order, and F order for the exact Hessian), float32 output buffers reused across calls;
- ``softmax_ce_grad_hess_norm``, GHM-C's first pass (the softmax cross-entropy in the kernels);
- ``softmax_focal_loss``, the per-row loss behind the metrics (evaluated every round on every
  evaluation set);
- a straightforward vectorised numpy softmax focal loss with exactly the same formulas (stable
  log-sum-exp over the wrong classes, the binary pieces of ``t``), checked against the kernel
  before anything is timed;
- numpy's softmax cross-entropy gradient ``p - onehot, p (1 - p)`` in float32 (what a trivial
  custom objective costs: the floor) and in float64.

Targets (issue 12): focal at least 3x faster than numpy focal, and within 2x of numpy CE.

Run ``python benchmarks/bench_multiclass.py`` (about 30 s); ``--threads N`` sets numba's threads
(default 2), ``--rows``, ``--classes``, ``--repeats`` change the problem.
"""

import argparse

import _common as c
import numba
import numpy as np

from boostloss._kernels import softmax as ks


def numpy_softmax_focal(y, x, gamma, alpha=None, exact=True):
    """Softmax focal gradient and diagonal Hessian in numpy (whole-array passes, same formulas).

    ``t = z_y - LSE_{k != y} z_k``, the binary focal derivatives ``FL'``, ``FL''`` of ``t``, then
    ``g_y = FL'``, ``g_k = -r_k FL'`` and the exact (or Gauss-Newton) diagonal.
    """
    x = x.astype(np.float64)
    n, n_classes = x.shape
    rows = np.arange(n)
    yi = y.astype(np.intp)
    z_y = x[rows, yi]
    others = x.copy()
    others[rows, yi] = -np.inf
    mo = others.max(axis=1)
    e = np.exp(others - mo[:, None])
    s = e.sum(axis=1)
    t = z_y - mo - np.log(s)
    log_p = -np.logaddexp(0.0, -t)
    log_q = -np.logaddexp(0.0, t)
    p = np.exp(log_p)
    q = np.exp(log_q)
    a = 1.0 if alpha is None else alpha[yi]
    am = a * np.exp(gamma * log_q)
    p_log_p = p * log_p
    d1 = am * (gamma * p_log_p - q)
    r = e / s[:, None]
    grad = -r * d1[:, None]
    grad[rows, yi] = d1
    if exact:
        d2 = am * (gamma * p_log_p * (q - gamma * p) + (2.0 * gamma + 1.0) * p * q)
        hess = d2[:, None] * r * r - d1[:, None] * r * (1.0 - r)
        hess[rows, yi] = d2
    else:
        hess = -d1[:, None] * r * (p[:, None] + q[:, None] * (1.0 - r))
        hess[rows, yi] = -d1 * p
    np.maximum(hess, 1e-16, out=hess)
    return grad, hess


def numpy_softmax_ce(y, x, dtype):
    """The floor: ``p = softmax(x)``, ``p - onehot``, ``p (1 - p)`` in ``dtype``."""
    x = x.astype(dtype, copy=False)
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    hess = p * (1.0 - p)
    p[np.arange(x.shape[0]), y.astype(np.intp)] -= 1.0
    return p, hess


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    n, n_classes = args.rows, args.classes
    c.print_machine(
        [f"problem : {n} rows x K = {n_classes}, numba threads {numba.get_num_threads()}"]
    )

    rng = np.random.default_rng(0)
    # Labels with imbalanced priors; margins of a mid-training booster (the true class ahead).
    priors = np.geomspace(1.0, 0.02, n_classes)
    y = rng.choice(n_classes, size=n, p=priors / priors.sum()).astype(np.float64)
    x64 = rng.standard_normal((n, n_classes)) * 1.5 + np.log(priors)
    x64[np.arange(n), y.astype(np.intp)] += 1.5
    x = x64.astype(np.float32)
    x_f = np.asfortranarray(x)
    alpha = np.linspace(0.5, 2.0, n_classes)
    no_w = np.empty(0)
    grad = np.empty((n, n_classes), dtype=np.float32)
    hess = np.empty((n, n_classes), dtype=np.float32)
    g_norm = np.empty(n)
    loss_out = np.empty(n)

    # Equal results before timing: numpy focal and the kernel agree to float32 output precision.
    ks.softmax_focal_grad_hess(y, x, no_w, 2.0, alpha, ks.HESSIAN_EXACT, grad, hess)
    ng, nh = numpy_softmax_focal(y, x, 2.0, alpha)
    err = max(np.abs(grad - ng).max() / np.abs(ng).max(), np.abs(hess - nh).max() / nh.max())
    assert err < 1e-6, err

    def kernel(x_in, gamma, mode):
        return lambda: ks.softmax_focal_grad_hess(y, x_in, no_w, gamma, alpha, mode, grad, hess)

    contenders = {
        "boostloss focal g=2 exact": kernel(x, 2.0, ks.HESSIAN_EXACT),
        "boostloss focal g=2 exact, F order": kernel(x_f, 2.0, ks.HESSIAN_EXACT),
        "boostloss focal g=2 gauss_newton": kernel(x, 2.0, ks.HESSIAN_GAUSS_NEWTON),
        "boostloss focal g=1.5 exact": kernel(x, 1.5, ks.HESSIAN_EXACT),
        "boostloss softmax CE (GHM pass)": lambda: ks.softmax_ce_grad_hess_norm(
            y, x, no_w, grad, hess, g_norm
        ),
        "boostloss focal g=2 loss (a metric)": lambda: ks.softmax_focal_loss(
            y, x, no_w, 2.0, alpha, loss_out
        ),
        "numpy focal g=2 exact": lambda: numpy_softmax_focal(y, x, 2.0, alpha),
        "numpy CE float32": lambda: numpy_softmax_ce(y, x, np.float32),
        "numpy CE float64": lambda: numpy_softmax_ce(y, x, np.float64),
    }
    times = c.alternate(contenders, args.repeats, warmup=2)
    med = {name: c.median(ts) for name, ts in times.items()}
    np_focal = med["numpy focal g=2 exact"]
    np_ce = med["numpy CE float32"]
    rows = [
        [name, c.fmt_time(t), f"{np_focal / t:6.2f}x", f"{t / np_ce:6.2f}"]
        for name, t in med.items()
    ]
    print()
    c.print_table(
        ["contender (median per call)", "time", "speed-up vs numpy focal", "time / numpy CE f32"],
        rows,
    )
    k = med["boostloss focal g=2 exact"]
    print()
    print(
        f"targets: >= 3x faster than numpy focal: {np_focal / k:.2f}x; "
        f"within 2x of numpy CE float32: {k / np_ce:.2f}"
    )


if __name__ == "__main__":
    main()
