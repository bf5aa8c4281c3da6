"""XGBoost GPU hist with boostloss objectives: training time next to the built-in logistic, and the
per-round cost of the host kernels next to the CUDA kernels.

Needs a CUDA machine: an NVIDIA GPU and driver, xgboost built with CUDA (the PyPI wheels are),
CuPy, and numba's CUDA target (``pip install -e ".[cuda]"``). Without them it stops at once and
says what is missing. Run::

    python benchmarks/gpu.py                    # 10M rows x 50 features (fewer if it does not fit)
    python benchmarks/gpu.py --rows 1000000     # smaller
    python benchmarks/gpu.py --quick            # 1M rows, 20 rounds, one repeat: a smoke run

Two tables, all contenders measured in alternation (round-robin after a warm-up, medians):

1. Training time of ``xgb.train`` with ``device="cuda", tree_method="hist"`` for ``--rounds`` trees:
   the built-in ``binary:logistic`` (the reference, ratio 1.00) next to focal loss and GHM-C
   (binned) as custom objectives, each with the gradients computed by the host numba kernels
   (``compute="host"``) and by the CUDA kernels (``compute="device"``). The goal for a custom
   objective is a ratio <= 1.3.
2. One objective call (one boosting round's gradients) at the training size: host kernels (float32
   margins in, float32 numpy out, as XGBoost hands them over); CUDA kernels including the margins'
   upload and returning device arrays; CUDA kernels on margins already on the device.

Before timing, the script checks that host and device paths give the same gradients and that a
short training with each gives the same model predictions (to float32 rounding).
"""

import argparse
import os
import platform
import shutil
import statistics
import sys
import time

import numpy as np


def fail(message):
    print(f"benchmarks/gpu.py: {message}", file=sys.stderr)
    raise SystemExit(2)


def check_gpu():
    """Everything this benchmark needs, or a clear reason why it cannot run."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        fail("NUMBA_ENABLE_CUDASIM is set: this benchmark times a real GPU, unset it")
    if shutil.which("nvidia-smi") is None:
        fail("no NVIDIA GPU found (nvidia-smi is not on PATH); run this on a CUDA machine")
    try:
        import cupy
    except ImportError:
        fail("CuPy is not installed: pip install cupy-cuda12x (or pip install -e '.[cuda]')")
    try:
        n_devices = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # driver / runtime mismatch and the like
        fail(f"CuPy cannot reach a CUDA device: {exc}")
    if n_devices < 1:
        fail("CuPy sees no CUDA device")
    import xgboost

    if not xgboost.build_info().get("USE_CUDA", False):
        fail(f"xgboost {xgboost.__version__} is built without CUDA; install a CUDA-enabled wheel")
    import boostloss.cuda as bc

    if not bc.is_available() or bc.is_simulator():
        fail("numba.cuda sees no CUDA device: pip install -e '.[cuda]' (numba-cuda[cu12], CuPy)")
    return cupy


def describe(cupy):
    import numba
    import xgboost

    import boostloss

    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    free, total = cupy.cuda.runtime.memGetInfo()
    print(f"gpu     : {name}, {total / 2**30:.1f} GiB ({free / 2**30:.1f} GiB free)")
    print(f"cpu     : {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs")
    print(
        f"python  : {platform.python_version()}, numpy {np.__version__}, "
        f"numba {numba.__version__}, cupy {cupy.__version__}, xgboost {xgboost.__version__}, "
        f"boostloss {boostloss.__version__}"
    )


def make_data(cupy, rows, features, seed=0):
    """A rare-positive binary problem (about 3% positives) generated on the GPU."""
    rng = cupy.random.RandomState(seed)
    X = rng.standard_normal((rows, features), dtype=cupy.float32)
    coef = cupy.asarray(np.linspace(1.0, -1.0, min(features, 8)), dtype=cupy.float32)
    logit = X[:, : coef.shape[0]] @ coef + 0.5 * X[:, 0] * X[:, 1] - 4.0
    y = (rng.random_sample(rows, dtype=cupy.float32) < 1.0 / (1.0 + cupy.exp(-logit))).astype(
        cupy.float32
    )
    return X, y


def build_dmatrix(cupy, rows, features):
    """The largest training set, starting at ``rows``, that fits (halving on out-of-memory)."""
    import xgboost as xgb

    while True:
        try:
            X, y = make_data(cupy, rows, features)
            dtrain = xgb.QuantileDMatrix(X, label=y, max_bin=256)
            y_host = cupy.asnumpy(y).astype(np.float64)
            del X, y
            cupy.get_default_memory_pool().free_all_blocks()
            return dtrain, y_host, rows
        except (cupy.cuda.memory.OutOfMemoryError, xgb.core.XGBoostError, MemoryError) as exc:
            if "memory" not in str(exc).lower() and not isinstance(exc, MemoryError):
                raise
            cupy.get_default_memory_pool().free_all_blocks()
            if rows <= 100_000:
                raise
            print(f"  {rows:,} rows do not fit ({type(exc).__name__}); trying {rows // 2:,}")
            rows //= 2


def device_objective(loss):
    """The XGBoost objective with the gradients computed by the CUDA kernels."""
    import boostloss.xgboost as blx

    return blx.objective(loss, compute="device")


def alternate(contenders, repeats):
    """Warm each contender up once, then run them in turn ``repeats`` times; medians in seconds."""
    for _, run in contenders:
        run()
    times = {name: [] for name, _ in contenders}
    for _ in range(repeats):
        for name, run in contenders:
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def table(title, medians, reference, unit_scale=1.0, unit="s"):
    print(f"\n{title}")
    ref = medians[reference]
    width = max(len(name) for name in medians)
    for name, t in medians.items():
        print(f"  {name:<{width}}  {t * unit_scale:10.3f} {unit}   {t / ref:6.2f}x")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=100, help="trees per training")
    parser.add_argument("--max-depth", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per contender")
    parser.add_argument("--quick", action="store_true", help="1M rows, 20 rounds, one repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.rounds, args.repeats = min(args.rows, 1_000_000), 20, 1
    return args


def check_paths_agree(cupy, losses, base, dtrain, margins):
    """Host and device paths give the same gradients and (to float32 rounding) the same models."""
    import xgboost as xgb

    import boostloss.xgboost as blx

    for name, loss in losses.items():
        g_host, h_host = blx.objective(loss)(margins, dtrain)
        g_host, h_host = g_host.copy(), h_host.copy()
        g_dev, h_dev = device_objective(loss)(margins, dtrain)
        g_dev, h_dev = cupy.asnumpy(cupy.asarray(g_dev)), cupy.asnumpy(cupy.asarray(h_dev))
        np.testing.assert_allclose(g_dev, g_host, rtol=1e-5, atol=1e-30)
        np.testing.assert_allclose(h_dev, h_host, rtol=1e-5, atol=1e-30)
        check_rounds = 5
        models = []
        for obj in (blx.objective(loss), device_objective(loss)):
            params = dict(base, base_score=blx.base_score(loss, dtrain))
            models.append(xgb.train(params, dtrain, check_rounds, obj=obj))
        p_host, p_dev = (m.predict(dtrain, output_margin=True) for m in models)
        print(
            f"check   : {name}: gradients agree; {check_rounds}-round models differ by at most "
            f"{np.max(np.abs(p_host - p_dev)):.2e} in margin"
        )


def time_training(cupy, losses, base, dtrain, args):
    """Table 1: ``xgb.train`` with the built-in logistic next to the custom objectives."""
    import xgboost as xgb

    import boostloss.xgboost as blx

    def sync():
        cupy.cuda.runtime.deviceSynchronize()

    def train_builtin():
        xgb.train(dict(base, objective="binary:logistic"), dtrain, args.rounds)
        sync()

    def trainer(loss, compute):
        score = blx.base_score(loss, dtrain)

        def run():
            obj = blx.objective(loss) if compute == "host" else device_objective(loss)
            xgb.train(dict(base, base_score=score), dtrain, args.rounds, obj=obj)
            sync()

        return run

    contenders = [("binary:logistic (built-in)", train_builtin)]
    for name, loss in losses.items():
        for compute in ("host", "device"):
            contenders.append((f"{name} (compute={compute})", trainer(loss, compute)))
    medians = alternate(contenders, args.repeats)
    table(
        f"1. training time, {args.rounds} rounds (goal: custom objectives <= 1.3x built-in)",
        medians,
        "binary:logistic (built-in)",
    )


def time_objective_calls(cupy, losses, dtrain, y, margins, args):
    """Table 2: one round's gradients, host kernels next to the CUDA kernels."""
    import boostloss.cuda as bc
    import boostloss.xgboost as blx

    margins_dev = cupy.asarray(margins)
    contenders = []
    for name, loss in losses.items():
        host_obj = blx.objective(loss)
        dev_obj = device_objective(loss)
        work = bc.DeviceGradients(loss, y, dtype=np.float32)
        contenders += [
            (f"{name}: host kernels", lambda o=host_obj: o(margins, dtrain)),
            (f"{name}: device kernels + upload", lambda o=dev_obj: o(margins, dtrain)),
            (f"{name}: device kernels, margins on device", lambda w=work: w(margins_dev)),
        ]
    medians = alternate(contenders, max(5, 3 * args.repeats))
    for name in losses:
        part = {k: t for k, t in medians.items() if k.startswith(name + ":")}
        table(
            f"2. one objective call, {name}, {y.shape[0]:,} rows",
            part,
            f"{name}: host kernels",
            unit_scale=1e3,
            unit="ms",
        )


def main(argv=None):
    args = parse_args(argv)
    cupy = check_gpu()
    from boostloss import FocalLoss, GHMLoss

    describe(cupy)
    print(f"\nbuilding {args.rows:,} x {args.features} on the GPU ...")
    dtrain, y, rows = build_dmatrix(cupy, args.rows, args.features)
    print(
        f"data    : {rows:,} rows x {args.features} features, {y.mean():.2%} positives, "
        f"{args.rounds} rounds, max_depth {args.max_depth}, {args.repeats} timed repeat(s)"
    )

    losses = {"focal": FocalLoss(gamma=2.0, alpha=0.25), "ghm": GHMLoss(bins=10)}
    base = {
        "device": "cuda",
        "tree_method": "hist",
        "max_depth": args.max_depth,
        "eta": 0.1,
        "max_bin": 256,
        "verbosity": 0,
    }
    margins = np.random.default_rng(1).normal(-3.0, 2.0, rows).astype(np.float32)
    check_paths_agree(cupy, losses, base, dtrain, margins)
    time_training(cupy, losses, base, dtrain, args)
    time_objective_calls(cupy, losses, dtrain, y, margins, args)
    print("\ncompute='auto' is 'host' until these numbers say otherwise (see docs/gpu.md).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
