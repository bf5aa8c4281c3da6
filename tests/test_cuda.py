"""CUDA kernels against the CPU losses, and compiled for real devices.

The ``cuda`` tests run on numba's CUDA simulator (tests/conftest.py turns it on when there is no
``nvidia-smi``), with a few hundred samples, some with a GPU's launch shape; the ``gpu`` tests need
a real device and skip otherwise. The compile test (``test_kernels_compile_for_real_devices``)
needs numba-cuda and its toolchain (``pip install -e ".[dev]"``), not a GPU: it skips without
them, and fails instead when ``BOOSTLOSS_REQUIRE_CUDA_TOOLCHAIN=1``.
"""

import builtins
import dis
import json
import os
import pathlib
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import boostloss
from boostloss import FocalLoss, GHMLoss
from boostloss._kernels import cuda_build as build
from boostloss._kernels import math as _kernels

bc = pytest.importorskip("boostloss.cuda")

N = 257  # not a multiple of any launch shape: the tail of the last block is exercised


def _data(n=N, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.float64)
    x = rng.normal(0.0, 3.0, n)
    x[:6] = [-40.0, 40.0, -700.0, 700.0, 0.0, 1e-9]  # saturated and central margins
    w = rng.uniform(0.0, 3.0, n)
    w[::11] = 0.0  # zero weights are not counted in GHM's density
    return y, x, w


def _assert_close(actual, expected, rtol):
    actual = np.asarray(actual)
    # float32 keeps relative precision only down to its smallest normal number
    atol = float(np.finfo(actual.dtype).tiny) if actual.dtype == np.float32 else 1e-300
    np.testing.assert_allclose(actual.astype(np.float64), expected, rtol=rtol, atol=atol)


needs_cuda = pytest.mark.skipif(not bc.is_available(), reason="no CUDA device and no simulator")


@pytest.mark.cuda
@needs_cuda
class TestFocal:
    @pytest.mark.parametrize("hessian", ["gauss_newton", "exact"])
    @pytest.mark.parametrize("gamma", [0.0, 2.0, 0.7])
    @pytest.mark.parametrize("alpha", [None, 0.25])
    @pytest.mark.parametrize("weighted", [False, True])
    def test_matches_cpu(self, hessian, gamma, alpha, weighted):
        y, x, w = _data()
        w = w if weighted else None
        loss = FocalLoss(gamma=gamma, alpha=alpha, hessian=hessian)
        grad, hess = bc.gradient_hessian(loss, y, x, w)
        grad_cpu, hess_cpu = loss.gradient_hessian(y, x, w)
        assert isinstance(grad, np.ndarray) and grad.dtype == np.float64
        _assert_close(grad, grad_cpu, 1e-6)
        _assert_close(hess, hess_cpu, 1e-6)

    def test_float32_margins_and_outputs(self):
        y, x, w = _data(seed=1)
        x32 = x.astype(np.float32)
        loss = FocalLoss(gamma=2.0, alpha=0.25)
        out = (np.empty(N, np.float32), np.empty(N, np.float32))
        grad, hess = bc.gradient_hessian(loss, y, x32, w, out=out)
        assert grad is out[0] and hess is out[1]
        grad_cpu, hess_cpu = loss.gradient_hessian(y, x32, w)
        # float32 storage; the positive-weight Hessians are >= 1e-16 * w and representable
        _assert_close(grad, grad_cpu, 1e-5)
        _assert_close(hess[w > 0], hess_cpu[w > 0], 1e-5)

    def test_device_arrays_in_and_out(self):
        from numba import cuda

        y, x, w = _data(seed=2)
        loss = FocalLoss(gamma=2.0, alpha=0.25, hessian="exact")
        grad, hess = bc.gradient_hessian(
            loss, cuda.to_device(y.astype(np.int32)), cuda.to_device(x), cuda.to_device(w)
        )
        assert not isinstance(grad, np.ndarray)  # stays on the device
        grad_cpu, hess_cpu = loss.gradient_hessian(y, x, w)
        _assert_close(grad.copy_to_host(), grad_cpu, 1e-6)
        _assert_close(hess.copy_to_host(), hess_cpu, 1e-6)

    def test_device_out_float32(self):
        from numba import cuda

        y, x, _ = _data(seed=3)
        loss = FocalLoss(gamma=1.5, alpha=None)
        out = (cuda.device_array(N, np.float32), cuda.device_array(N, np.float32))
        got = bc.gradient_hessian(loss, y, x, out=out)
        assert got is out
        grad_cpu, hess_cpu = loss.gradient_hessian(y, x)
        _assert_close(out[0].copy_to_host(), grad_cpu, 1e-5)
        _assert_close(out[1].copy_to_host(), hess_cpu, 1e-5)

    def test_logistic_special_case(self):
        # gamma=0, alpha=None is the logistic loss: p - y and p (1 - p), independent of the kernels
        y, x, _ = _data(seed=4)
        x = np.clip(x, -30, 30)
        grad, hess = bc.gradient_hessian(FocalLoss(gamma=0.0, alpha=None), y, x)
        # p - y and p (1 - p) written without cancellation
        grad_ref = np.where(y == 1.0, -1.0 / (1.0 + np.exp(x)), 1.0 / (1.0 + np.exp(-x)))
        e = np.exp(-np.abs(x))
        _assert_close(grad, grad_ref, 1e-9)
        _assert_close(hess, np.maximum(e / (1.0 + e) ** 2, 1e-16), 1e-9)

    def test_empty(self):
        grad, hess = bc.gradient_hessian(FocalLoss(), np.empty(0), np.empty(0))
        assert grad.shape == hess.shape == (0,)


@pytest.mark.cuda
@needs_cuda
class TestGHM:
    @pytest.mark.parametrize("weighted", [False, True])
    @pytest.mark.parametrize("bins", [10, 3])
    def test_bins_matches_cpu(self, weighted, bins):
        y, x, w = _data(seed=5)
        w = w if weighted else None
        loss = GHMLoss(bins=bins)
        grad, hess = bc.gradient_hessian(loss, y, x, w)
        grad_cpu, hess_cpu = GHMLoss(bins=bins).gradient_hessian(y, x, w)
        _assert_close(grad, grad_cpu, 1e-6)
        _assert_close(hess, hess_cpu, 1e-6)

    def test_momentum_over_rounds(self):
        y, x, w = _data(seed=6)
        cpu, gpu = GHMLoss(bins=10, momentum=0.75), GHMLoss(bins=10, momentum=0.75)
        state = gpu.new_state()
        work = bc.DeviceGradients(gpu, y, w, state=state)
        rng = np.random.default_rng(0)
        for _ in range(3):
            x = x + rng.normal(0.0, 0.5, x.shape[0])  # margins move between rounds
            grad, hess = work(x)
            grad_cpu, hess_cpu = cpu.gradient_hessian(y, x, w)
            _assert_close(grad.copy_to_host(), grad_cpu, 1e-6)
            _assert_close(hess.copy_to_host(), hess_cpu, 1e-6)
        np.testing.assert_allclose(state.running_counts, cpu.running_counts_, rtol=1e-12)

    def test_state_is_the_callers(self):
        # Momentum carries over through the state passed in, and only through it.
        y, x, _ = _data(seed=7)
        loss = GHMLoss(momentum=0.5)
        fresh = [bc.gradient_hessian(loss, y, x)[0] for _ in range(2)]
        assert np.array_equal(fresh[0], fresh[1])
        state = loss.new_state()
        rounds = [bc.gradient_hessian(loss, y, x, state=state)[0] for _ in range(2)]
        assert np.array_equal(rounds[0], fresh[0])
        assert not np.array_equal(rounds[1], rounds[0])
        assert state.running_counts is not None

    @pytest.mark.parametrize("weighted", [False, True])
    def test_window_matches_cpu(self, weighted):
        y, x, w = _data(seed=8)
        w = w if weighted else None
        loss = GHMLoss(density="window", epsilon=0.2)
        grad, hess = bc.gradient_hessian(loss, y, x, w)
        grad_cpu, hess_cpu = loss.gradient_hessian(y, x, w)
        _assert_close(grad, grad_cpu, 1e-6)
        _assert_close(hess, hess_cpu, 1e-6)

    def test_deterministic(self):
        y, x, w = _data(seed=9)
        first = bc.gradient_hessian(GHMLoss(bins=30), y, x, w)
        second = bc.gradient_hessian(GHMLoss(bins=30), y, x, w)
        for a, b in zip(first, second, strict=True):
            assert np.array_equal(a, b)

    def test_counts_are_exact_sums(self):
        # Integer weights: every order of summation gives the same float, so the device counts (and
        # thus the weights) must equal the CPU's bit for bit.
        y, x, _ = _data(seed=10)
        w = np.random.default_rng(1).integers(0, 4, N).astype(np.float64)
        grad, hess = bc.gradient_hessian(GHMLoss(bins=7), y, x, w)
        grad_cpu, hess_cpu = GHMLoss(bins=7).gradient_hessian(y, x, w)
        assert np.array_equal(grad, grad_cpu)
        assert np.array_equal(hess, hess_cpu)


@pytest.mark.cuda
@needs_cuda
class TestInputs:
    def test_math_is_compiled_from_the_cpu_source(self):
        funcs = bc.device_functions()
        assert set(funcs) == set(_kernels.DEVICE_FUNCTIONS)
        assert {"focal_point", "_gradient_norm_parts", "bin_of"} <= set(funcs)
        for name, dev in funcs.items():
            assert dev.py_func.__code__ is getattr(_kernels, name).py_func.__code__

    def test_device_labels_checked_like_host_ones(self):
        from numba import cuda

        y, x, _ = _data()
        y[17] = 2.0
        with pytest.raises(ValueError) as on_device:
            bc.gradient_hessian(FocalLoss(), cuda.to_device(y), x)
        with pytest.raises(ValueError) as on_host:
            FocalLoss().gradient_hessian(y, x)
        assert str(on_device.value) == str(on_host.value)
        assert "other value(s): 2" in str(on_device.value)

    def test_device_margins_checked_like_host_ones(self):
        from numba import cuda

        y, x, _ = _data()
        x[5] = np.nan
        x[9] = np.inf
        with pytest.raises(ValueError) as on_device:
            bc.gradient_hessian(FocalLoss(), y, cuda.to_device(x))
        with pytest.raises(ValueError) as on_host:
            FocalLoss().gradient_hessian(y, x)
        assert str(on_device.value) == str(on_host.value)
        assert "index 5: nan" in str(on_device.value)
        with pytest.raises(ValueError, match="same length"):
            bc.gradient_hessian(FocalLoss(), y, cuda.to_device(x[:-1]))

    def test_device_margins_layout(self):
        from numba import cuda

        y, x, _ = _data()
        with pytest.raises(TypeError, match="float32 or float64.*int64"):
            bc.gradient_hessian(FocalLoss(), y, cuda.to_device(x.astype(np.int64)))
        strided = cuda.to_device(np.repeat(x, 2))[::2]
        with pytest.raises(TypeError, match="not contiguous"):
            bc.gradient_hessian(FocalLoss(), y, strided)

    def test_device_weights_checked_like_host_ones(self):
        from numba import cuda

        y, x, w = _data()
        w[3] = -1.5
        with pytest.raises(ValueError) as on_device:
            bc.gradient_hessian(GHMLoss(), y, x, cuda.to_device(w))
        with pytest.raises(ValueError) as on_host:
            GHMLoss().gradient_hessian(y, x, w)
        assert str(on_device.value) == str(on_host.value)
        assert "-1.5" in str(on_device.value)

    def test_bins_bound(self):
        y, x, _ = _data()
        with pytest.raises(ValueError, match=r"bins=257.*bins <= 256"):
            bc.DeviceGradients(GHMLoss(bins=257), y)
        bc.DeviceGradients(GHMLoss(bins=10_000, density="window"), y)  # no histogram: no bound
        assert bc.MAX_BINS == 256 == build.LOCAL_BIN_SIZES[-1]
        assert [build.local_bins_for(b) for b in (1, 16, 17, 64, 65, 256)] == [
            16,
            16,
            64,
            64,
            256,
            256,
        ]

    def test_host_inputs_checked_like_the_cpu(self):
        y, x, _ = _data()
        with pytest.raises(ValueError, match="same length"):
            bc.gradient_hessian(FocalLoss(), y, x[:-1])
        y[0] = 0.5
        with pytest.raises(ValueError, match="0.5"):
            bc.gradient_hessian(FocalLoss(), y, x)

    def test_bad_loss_and_out(self):
        y, x, _ = _data()
        with pytest.raises(TypeError, match="'logistic'"):
            bc.gradient_hessian("logistic", y, x)
        with pytest.raises(ValueError, match=r"shape \(257,\)"):
            bc.gradient_hessian(FocalLoss(), y, x, out=(np.empty(3), np.empty(3)))
        with pytest.raises(TypeError, match="int64"):
            bc.gradient_hessian(
                FocalLoss(), y, x, out=(np.empty(N, np.int64), np.empty(N, np.int64))
            )
        with pytest.raises(TypeError, match="same dtype"):
            bc.gradient_hessian(
                FocalLoss(), y, x, out=(np.empty(N, np.float32), np.empty(N, np.float64))
            )

    def test_device_out_checked_like_host_out(self):
        from numba import cuda

        y, x, _ = _data()
        strided = cuda.device_array(2 * N)[::2]
        with pytest.raises(ValueError, match="gradient_out must be a writeable, C-contiguous"):
            bc.gradient_hessian(FocalLoss(), y, x, out=(strided, cuda.device_array(N)))
        with pytest.raises(TypeError, match="hessian_out must be a float32 or float64.*int64"):
            bc.gradient_hessian(
                FocalLoss(), y, x, out=(cuda.device_array(N), cuda.device_array(N, np.int64))
            )
        with pytest.raises(ValueError, match=r"shape \(257,\) like y_true"):
            bc.DeviceGradients(FocalLoss(), y)(x, out=(cuda.device_array(3), cuda.device_array(3)))

    def test_buffers_reused_across_rounds(self):
        y, x, w = _data(seed=11)
        loss = FocalLoss()
        work = bc.DeviceGradients(loss, y, w, dtype=np.float32)
        g1, _ = work(x.astype(np.float32))
        g2, _ = work((x + 1.0).astype(np.float32))
        assert g1 is g2  # the object's own buffer, overwritten
        g3, _ = work(np.ascontiguousarray(x + 1.0, dtype=np.float32), validate=False)
        assert np.array_equal(g3.copy_to_host(), g2.copy_to_host())
        _assert_close(
            g2.copy_to_host(), loss.gradient_hessian(y, (x + 1.0).astype(np.float32), w)[0], 1e-5
        )


def test_import_needs_no_device():
    # Without a device and without the simulator: importing works, computing says why it cannot.
    code = (
        "import boostloss.cuda as bc, numpy as np\n"
        "from boostloss import FocalLoss\n"
        "assert not bc.is_available()\n"
        "try:\n"
        "    bc.gradient_hessian(FocalLoss(), np.zeros(2), np.zeros(2))\n"
        "except bc.CudaUnavailableError as exc:\n"
        "    assert 'NUMBA_ENABLE_CUDASIM' in str(exc)\n"
        "else:\n"
        "    raise SystemExit('no error')\n"
    )
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0", CUDA_VISIBLE_DEVICES="")
    if not bc.is_simulator() and bc.is_available():
        pytest.skip("a real CUDA device is present")
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------------------------
# Real GPU only
# ---------------------------------------------------------------------------------------------

real_gpu = pytest.mark.skipif(
    bc.is_simulator() or not bc.is_available(),
    reason="needs a real CUDA device (simulator on or no device)",
)


class _InterfaceOnly:
    """An array known to the kernels only through ``__cuda_array_interface__`` (as CuPy is)."""

    def __init__(self, device_array):
        self._keep = device_array
        self.__cuda_array_interface__ = device_array.__cuda_array_interface__


@pytest.mark.gpu
@real_gpu
def test_gpu_cuda_array_interface_inputs():
    from numba import cuda

    y, x, w = _data(n=100_003)
    loss = GHMLoss(bins=30)
    grad, hess = bc.gradient_hessian(
        loss,
        _InterfaceOnly(cuda.to_device(y)),
        _InterfaceOnly(cuda.to_device(x)),
        _InterfaceOnly(cuda.to_device(w)),
    )
    grad_cpu, hess_cpu = GHMLoss(bins=30).gradient_hessian(y, x, w)
    _assert_close(grad.copy_to_host(), grad_cpu, 1e-6)
    _assert_close(hess.copy_to_host(), hess_cpu, 1e-6)


@pytest.mark.gpu
@real_gpu
@pytest.mark.parametrize(
    "loss", [FocalLoss(gamma=2.0, alpha=0.25), GHMLoss(bins=10)], ids=["focal", "ghm"]
)
def test_gpu_large_matches_cpu(loss):
    y, x, w = _data(n=1_000_003)
    grad, hess = bc.gradient_hessian(loss, y, x, w)
    grad_cpu, hess_cpu = loss.gradient_hessian(y, x, w)
    _assert_close(grad, grad_cpu, 1e-6)
    _assert_close(hess, hess_cpu, 1e-6)


# ---------------------------------------------------------------------------------------------
# The XGBoost adapter's compute="device" path (on the simulator: the same training, host copies)
# ---------------------------------------------------------------------------------------------


def _xgb_data(n=128):
    rng = np.random.default_rng(12)
    X = rng.normal(size=(n, 3))
    y = (X[:, 0] + 0.5 * rng.normal(size=n) > 0.8).astype(np.float64)
    w = rng.uniform(0.5, 2.0, n)
    return X, y, w


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize(
    "loss",
    [FocalLoss(gamma=2.0, alpha=0.25), GHMLoss(bins=5, momentum=0.5)],
    ids=["focal", "ghm-momentum"],
)
def test_xgboost_device_matches_host(loss):
    xgb = pytest.importorskip("xgboost")
    import boostloss.xgboost as blx

    X, y, w = _xgb_data()
    dtrain = xgb.DMatrix(X, label=y, weight=w)
    params = {"tree_method": "hist", "max_depth": 2, "eta": 0.3, "base_score": 0.0}
    preds = []
    for compute in ("host", "device"):
        booster = xgb.train(params, dtrain, 2, obj=blx.objective(loss, compute=compute))
        preds.append(booster.predict(dtrain, output_margin=True))
    np.testing.assert_allclose(preds[1], preds[0], rtol=1e-5, atol=1e-6)


@pytest.mark.cuda
@needs_cuda
def test_xgboost_device_objective_caches_its_buffers():
    xgb = pytest.importorskip("xgboost")
    import boostloss.xgboost as blx

    X, y, w = _xgb_data()
    dtrain = xgb.DMatrix(X, label=y, weight=w)
    obj = blx.objective(FocalLoss(), compute="device")
    margins = np.linspace(-2, 2, y.shape[0]).astype(np.float32)
    grad, hess = obj(margins, dtrain)
    work = obj._entry(dtrain).scratch["cuda"]
    obj(margins, dtrain)
    assert obj._entry(dtrain).scratch["cuda"] is work  # labels, weights, buffers uploaded once
    grad_cpu, hess_cpu = FocalLoss().gradient_hessian(y, margins, w)
    _assert_close(np.asarray(grad), grad_cpu, 1e-5)
    _assert_close(np.asarray(hess), hess_cpu, 1e-5)


def test_xgboost_compute_option():
    pytest.importorskip("xgboost")
    import boostloss.xgboost as blx

    assert blx.objective(FocalLoss(), compute="auto")._compute == "host"  # until measured otherwise
    assert blx.objective(FocalLoss())._compute == "host"
    with pytest.raises(ValueError, match="'gpu'"):
        blx.objective(FocalLoss(), compute="gpu")
    with pytest.raises(ValueError, match="'gpu'"):
        blx.sklearn_objective(FocalLoss(), compute="gpu")


@pytest.mark.gpu
@real_gpu
@pytest.mark.parametrize("compute", ["host", "device"])
def test_gpu_xgboost_cuda_training_matches_cpu(compute):
    xgb = pytest.importorskip("xgboost")
    import boostloss.xgboost as blx

    rng = np.random.default_rng(13)
    X = rng.normal(size=(20_000, 10)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(size=20_000) > 1.5).astype(np.float32)
    dtrain = xgb.DMatrix(X, label=y)
    loss = FocalLoss(gamma=2.0, alpha=0.25)
    params = {
        "tree_method": "hist",
        "max_depth": 4,
        "eta": 0.3,
        "max_bin": 64,
        "base_score": blx.base_score(loss, dtrain),
    }
    cpu = xgb.train(dict(params, device="cpu"), dtrain, 10, obj=blx.objective(loss))
    gpu = xgb.train(
        dict(params, device="cuda"), dtrain, 10, obj=blx.objective(loss, compute=compute)
    )
    p_cpu = cpu.predict(dtrain, output_margin=True)
    p_gpu = gpu.predict(dtrain, output_margin=True)
    # GPU and CPU hist build the same trees up to float32 summation order
    assert np.corrcoef(p_cpu, p_gpu)[0, 1] > 0.999
    np.testing.assert_allclose(p_gpu, p_cpu, atol=0.05)


# ---------------------------------------------------------------------------------------------
# A GPU's launch shape on the simulator, and the launches the compile test must cover
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def gpu_launch_shape(monkeypatch):
    """The simulator with a GPU's threads per block (shared-memory layout, reduction trees)."""
    monkeypatch.setattr(bc, "SIMULATOR_THREADS", build.THREADS)
    return build.THREADS


@pytest.mark.cuda
@needs_cuda
class TestGpuLaunchShape:
    # Two histogram blocks of THREADS * PER_THREAD samples, the second one partly filled, and
    # more bins than a group of BIN_GROUP: every loop of the block reduction runs.
    n = build.THREADS * build.PER_THREAD + 37
    bins = 20

    def test_shape_is_a_gpus(self, gpu_launch_shape):
        work = bc.DeviceGradients(GHMLoss(bins=self.bins), np.zeros(self.n))
        assert work._threads == 256
        assert work._partial.shape == (2, self.bins)
        ns = build.namespace(work._cuda, work._threads, work._local_bins)
        assert (ns["THREADS"], ns["LOCAL_BINS"], ns["BIN_GROUP"], ns["SHARED_CELLS"]) == (
            256,
            64,
            16,
            4096,
        )

    @pytest.mark.parametrize("weighted", [False, True])
    def test_ghm_bins_matches_cpu(self, gpu_launch_shape, weighted):
        y, x, w = _data(n=self.n, seed=20)
        w = np.floor(w) if weighted else None  # integer weights: exact sums in every order
        grad, hess = bc.gradient_hessian(GHMLoss(bins=self.bins), y, x, w)
        grad_cpu, hess_cpu = GHMLoss(bins=self.bins).gradient_hessian(y, x, w)
        assert np.array_equal(grad, grad_cpu)
        assert np.array_equal(hess, hess_cpu)

    def test_focal_and_window_match_cpu(self, gpu_launch_shape):
        y, x, w = _data(n=self.n, seed=21)
        for loss in (FocalLoss(gamma=2.0, alpha=0.25), GHMLoss(density="window")):
            grad, hess = bc.gradient_hessian(loss, y, x.astype(np.float32), w)
            grad_cpu, hess_cpu = loss.gradient_hessian(y, x.astype(np.float32), w)
            _assert_close(grad, grad_cpu, 1e-12)
            _assert_close(hess, hess_cpu, 1e-12)

    def test_row_sums_are_in_a_fixed_order(self, gpu_launch_shape):
        # More rows than threads: thread t sums rows t, t + THREADS, ... then the tree. The values
        # make any other order give another float.
        from numba import cuda

        rng = np.random.default_rng(22)
        rows, bins = build.THREADS + 45, 3
        partial = rng.normal(size=(rows, bins)) * 10.0 ** rng.integers(-8, 8, (rows, bins))
        counts = cuda.device_array(bins)
        bc._launch(cuda, "_sum_rows_kernel", bins, build.THREADS, cuda.to_device(partial), counts)
        expected = np.zeros(bins)
        for b in range(bins):
            per_thread = [sum(partial[t :: build.THREADS, b], 0.0) for t in range(build.THREADS)]
            s = build.THREADS // 2
            while s:
                per_thread = [per_thread[t] + per_thread[t + s] for t in range(s)]
                s //= 2
            expected[b] = per_thread[0]
        assert np.array_equal(counts.copy_to_host(), expected)


def _numba_type(arg):
    from numba import from_dtype
    from numba.core import types

    if isinstance(arg, bool):
        raise AssertionError("a bool launch argument would be one more signature")
    if isinstance(arg, (int, np.integer)):
        return types.int64
    if isinstance(arg, (float, np.floating)):
        return types.float64
    assert arg.is_c_contiguous(), "a strided launch argument would be one more signature"
    return types.Array(from_dtype(np.dtype(arg.dtype)), arg.ndim, "C")


@pytest.mark.cuda
@needs_cuda
def test_launches_are_the_compiled_signatures(monkeypatch):
    """Every launch the package makes is one of ``launch_signatures()``, which the compile test
    compiles for real devices; and every listed signature is launched by some call here."""
    from numba import cuda

    launched = set()
    launch = bc._launch

    def recording(cuda_module, name, blocks, threads, *args, local_bins=None):
        launched.add((name, local_bins, tuple(_numba_type(a) for a in args)))
        launch(cuda_module, name, blocks, threads, *args, local_bins=local_bins)

    monkeypatch.setattr(bc, "_launch", recording)
    y, x, w = _data(n=40, seed=23)
    # the fewest bins that take each size of private histogram
    fewest = [1] + [size + 1 for size in build.LOCAL_BIN_SIZES[:-1]]
    losses = [FocalLoss(), GHMLoss(density="window")] + [GHMLoss(bins=b) for b in fewest]
    for loss in losses:
        for xd in build.MARGIN_DTYPES:
            for od in build.OUTPUT_DTYPES:
                labels = cuda.to_device(y.astype(np.int8))  # any label dtype: uploaded as float64
                work = bc.DeviceGradients(loss, labels, w.astype(np.float32), dtype=od)
                work(x.astype(xd))
                if isinstance(loss, FocalLoss):
                    work(cuda.to_device(x.astype(xd)))  # checked on the device
    expected = {(name, size, tuple(sig)) for name, size, sig in build.launch_signatures()}
    assert launched == expected
    assert {name for name, _, _ in expected} == set(build.KERNELS)


def _global_names(func):
    return {ins.argval for ins in dis.get_instructions(func) if ins.opname == "LOAD_GLOBAL"}


@pytest.mark.cuda
@needs_cuda
def test_the_build_namespace_defines_every_name_the_kernels_read():
    from numba import cuda

    ns = build.namespace(cuda, build.THREADS, build.LOCAL_BIN_SIZES[0])
    reached, todo = set(), [build.KERNELS[name] for name in build.KERNELS]
    while todo:
        func = todo.pop()
        for name in _global_names(func) - reached - set(vars(builtins)):
            assert name in ns, f"{func.__name__} reads {name!r}, which the build does not define"
            reached.add(name)
            if name in _kernels.DEVICE_FUNCTIONS or name == "_tree_sum":
                todo.append(getattr(ns[name], "py_func", ns[name]))
    # Every device function is compiled (inlined) into some kernel, so compiling the kernels
    # compiles all of DEVICE_FUNCTIONS; none of them allocates.
    assert set(_kernels.DEVICE_FUNCTIONS) <= reached
    assert "_chunk_histogram" not in _kernels.DEVICE_FUNCTIONS
    for name in _kernels.DEVICE_FUNCTIONS:
        assert "empty" not in _global_names(getattr(_kernels, name).py_func) | set(
            getattr(_kernels, name).py_func.__code__.co_names
        )


# ---------------------------------------------------------------------------------------------
# Compiled for real devices: PTX for two architectures, assembled by ptxas (no GPU needed)
# ---------------------------------------------------------------------------------------------

#: Compute capabilities every launched kernel is compiled and assembled for: Turing and Hopper.
ARCHITECTURES = ((7, 5), (9, 0))
#: The stack frame a kernel may have: its private GHM histogram (8 bytes a bin) and nothing else.
STACK_SLACK_BYTES = 0

_COMPILE = r"""
import json, pathlib, shutil, sys

cc = tuple(json.loads(sys.argv[2]))
out = pathlib.Path(sys.argv[1])
try:  # the toolchain: numba-cuda with NVVM and NVRTC, and ptxas
    import importlib.util

    if importlib.util.find_spec("numba_cuda") is None:
        raise RuntimeError("numba-cuda is not installed (numba's bundled numba.cuda compiles "
                           "device functions for the GPU present only)")
    from numba import cuda
    from numba.core import types

    def probe(a):
        a[0] = 1.0

    cuda.compile_ptx(probe, (types.float64[::1],), cc=cc)
    try:
        from cuda.pathfinder import find_nvidia_binary_utility
        ptxas = find_nvidia_binary_utility("ptxas")
    except ImportError:
        ptxas = None
    ptxas = ptxas or shutil.which("ptxas")
    if ptxas is None:
        raise RuntimeError("ptxas not found (pip install nvidia-cuda-nvcc-cu12)")
except Exception as exc:
    print(json.dumps({"missing": f"{type(exc).__name__}: {exc}"}))
    sys.exit(0)

from boostloss._kernels import cuda_build as _cuda_build

records = []
for k, (name, size, sig, ptx) in enumerate(_cuda_build.compile_ptx(cc)):
    path = out / f"{k:02d}-{name}-sm{cc[0]}{cc[1]}.ptx"
    path.write_text(ptx)
    records.append({"kernel": name, "local_bins": size, "path": str(path),
                    "signature": ", ".join(str(t) for t in sig)})
print(json.dumps({"ptxas": ptxas, "numba_cuda": cuda.__file__, "records": records}))
"""


def _compile_for(cc, directory):
    """Compile every launched kernel for ``cc`` in a subprocess without the simulator."""
    env = {k: val for k, val in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    root = str(pathlib.Path(boostloss.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    done = subprocess.run(
        [sys.executable, "-c", _COMPILE, str(directory), json.dumps(cc)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert done.returncode == 0, f"compiling for cc {cc} failed:\n{done.stderr[-6000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def _assemble(ptxas, path, cc):
    """``ptxas -v`` of one PTX file: registers, spills, stack frame and shared memory in bytes."""
    done = subprocess.run(
        [ptxas, f"-arch=sm_{cc[0]}{cc[1]}", "-v", "-o", os.devnull, path],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"ptxas rejected {path}:\n{done.stderr[-4000:]}"
    log = done.stderr

    def biggest(pattern):
        return max((int(m) for m in re.findall(pattern, log)), default=0)

    assert "Used" in log, log
    return {
        "registers": biggest(r"Used (\d+) registers"),
        "spill_bytes": biggest(r"(\d+) bytes spill stores") + biggest(r"(\d+) bytes spill loads"),
        "stack_bytes": biggest(r"(\d+) bytes stack frame"),
        "shared_bytes": biggest(r"(\d+) bytes smem"),
    }


@pytest.mark.cuda
def test_kernels_compile_for_real_devices(tmp_path):
    """Every kernel with every signature the package launches compiles to PTX for Turing (sm_75)
    and Hopper (sm_90), and ptxas assembles it without spills and with a stack frame no larger
    than the thread's private histogram (8 bytes a bin, 0 for the other kernels)."""
    with ThreadPoolExecutor(len(ARCHITECTURES)) as pool:
        results = list(pool.map(_compile_for, ARCHITECTURES, [tmp_path] * len(ARCHITECTURES)))
    missing = [r["missing"] for r in results if "missing" in r]
    if missing:
        reason = f"no CUDA toolchain to compile for real devices: {missing[0]}"
        if os.environ.get("BOOSTLOSS_REQUIRE_CUDA_TOOLCHAIN") == "1":
            pytest.fail(reason + ' (BOOSTLOSS_REQUIRE_CUDA_TOOLCHAIN=1; pip install -e ".[dev]")')
        pytest.skip(reason + ' (pip install -e ".[dev]")')
    lines, problems = [], []
    for cc, result in zip(ARCHITECTURES, results, strict=True):
        assert len(result["records"]) == len(build.launch_signatures())
        for rec in result["records"]:
            info = _assemble(result["ptxas"], rec["path"], cc)
            bound = 8 * (rec["local_bins"] or 0) + STACK_SLACK_BYTES
            lines.append(
                f"sm_{cc[0]}{cc[1]} {rec['kernel']:<24} local_bins {rec['local_bins'] or '-':<4}"
                f" {info['registers']:>3} regs {info['spill_bytes']:>3} B spill "
                f"{info['stack_bytes']:>5} B stack {info['shared_bytes']:>6} B smem  "
                f"({rec['signature']})"
            )
            if info["spill_bytes"] or info["stack_bytes"] > bound:
                problems.append(f"{lines[-1]} (stack bound {bound} B)")
    print("\n".join(lines))
    assert not problems, "\n".join(problems)
