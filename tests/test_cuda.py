"""CUDA kernels against the CPU losses.

The ``cuda`` tests run on numba's CUDA simulator (tests/conftest.py turns it on when there is no
``nvidia-smi``), with a few hundred samples; the ``gpu`` tests need a real device and skip otherwise.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from boostloss import FocalLoss, GHMLoss
from boostloss import _kernels
from boostloss.losses import GHMState

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
        grad, hess = bc.gradient_hessian(loss, cuda.to_device(y.astype(np.int32)),
                                         cuda.to_device(x), cuda.to_device(w))
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
        # gamma=0, alpha=None is the logistic loss: p - y and p (1 - p), independently of the kernels
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
        grad, hess = bc.gradient_hessian(loss, y, x, w, state=GHMState())
        grad_cpu, hess_cpu = GHMLoss(bins=bins).gradient_hessian(y, x, w)
        _assert_close(grad, grad_cpu, 1e-6)
        _assert_close(hess, hess_cpu, 1e-6)

    def test_momentum_over_rounds(self):
        y, x, w = _data(seed=6)
        cpu, gpu = GHMLoss(bins=10, momentum=0.75), GHMLoss(bins=10, momentum=0.75)
        work = bc.DeviceGradients(gpu, y, w, state=gpu._state())
        rng = np.random.default_rng(0)
        for _ in range(3):
            x = x + rng.normal(0.0, 0.5, x.shape[0])  # margins move between rounds
            grad, hess = work(x)
            grad_cpu, hess_cpu = cpu.gradient_hessian(y, x, w)
            _assert_close(grad.copy_to_host(), grad_cpu, 1e-6)
            _assert_close(hess.copy_to_host(), hess_cpu, 1e-6)
        np.testing.assert_allclose(gpu.running_counts_, cpu.running_counts_, rtol=1e-12)

    def test_default_state_is_the_losss_own(self):
        y, x, _ = _data(seed=7)
        loss = GHMLoss(momentum=0.5)
        bc.gradient_hessian(loss, y, x)
        assert loss.running_counts_ is not None

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
        first = bc.gradient_hessian(GHMLoss(bins=30), y, x, w, state=GHMState())
        second = bc.gradient_hessian(GHMLoss(bins=30), y, x, w, state=GHMState())
        for a, b in zip(first, second):
            assert np.array_equal(a, b)

    def test_counts_are_exact_sums(self):
        # Integer weights: every order of summation gives the same float, so the device counts (and
        # thus the weights) must equal the CPU's bit for bit.
        y, x, _ = _data(seed=10)
        w = np.random.default_rng(1).integers(0, 4, N).astype(np.float64)
        grad, hess = bc.gradient_hessian(GHMLoss(bins=7), y, x, w, state=GHMState())
        grad_cpu, hess_cpu = GHMLoss(bins=7).gradient_hessian(y, x, w)
        assert np.array_equal(grad, grad_cpu)
        assert np.array_equal(hess, hess_cpu)


@pytest.mark.cuda
@needs_cuda
class TestInputs:
    def test_math_is_compiled_from_the_cpu_source(self):
        funcs = bc.device_functions()
        assert set(funcs) == set(bc.SHARED_MATH)
        assert {"focal_point", "_gradient_norm_parts", "bin_of"} <= set(funcs)
        for name, dev in funcs.items():
            assert dev.py_func.__code__ is getattr(_kernels, name).py_func.__code__

    def test_device_labels_checked(self):
        from numba import cuda

        y, x, _ = _data()
        y[17] = 2.0
        with pytest.raises(ValueError, match=r"2\.0 at index 17"):
            bc.gradient_hessian(FocalLoss(), cuda.to_device(y), x)

    def test_device_margins_checked(self):
        from numba import cuda

        y, x, _ = _data()
        x[5] = np.nan
        with pytest.raises(ValueError, match="index 5: nan"):
            bc.gradient_hessian(FocalLoss(), y, cuda.to_device(x))

    def test_device_weights_checked(self):
        from numba import cuda

        y, x, w = _data()
        w[3] = -1.5
        with pytest.raises(ValueError, match=r"-1\.5 at index 3"):
            bc.gradient_hessian(GHMLoss(), y, x, cuda.to_device(w))

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
            bc.gradient_hessian(FocalLoss(), y, x,
                                out=(np.empty(N, np.int64), np.empty(N, np.int64)))

    def test_buffers_reused_across_rounds(self):
        y, x, w = _data(seed=11)
        loss = FocalLoss()
        work = bc.DeviceGradients(loss, y, w, dtype=np.float32)
        g1, _ = work(x.astype(np.float32))
        g2, _ = work((x + 1.0).astype(np.float32))
        assert g1 is g2  # the object's own buffer, overwritten
        g3, _ = work(np.ascontiguousarray(x + 1.0, dtype=np.float32), validate=False)
        assert np.array_equal(g3.copy_to_host(), g2.copy_to_host())
        _assert_close(g2.copy_to_host(), loss.gradient_hessian(y, (x + 1.0).astype(np.float32),
                                                               w)[0], 1e-5)


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
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------------------------
# Real GPU only
# ---------------------------------------------------------------------------------------------

real_gpu = pytest.mark.skipif(bc.is_simulator() or not bc.is_available(),
                              reason="needs a real CUDA device (simulator on or no device)")


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
    grad, hess = bc.gradient_hessian(loss, _InterfaceOnly(cuda.to_device(y)),
                                     _InterfaceOnly(cuda.to_device(x)),
                                     _InterfaceOnly(cuda.to_device(w)), state=GHMState())
    grad_cpu, hess_cpu = GHMLoss(bins=30).gradient_hessian(y, x, w)
    _assert_close(grad.copy_to_host(), grad_cpu, 1e-6)
    _assert_close(hess.copy_to_host(), hess_cpu, 1e-6)


@pytest.mark.gpu
@real_gpu
@pytest.mark.parametrize("loss", [FocalLoss(gamma=2.0, alpha=0.25), GHMLoss(bins=10)],
                         ids=["focal", "ghm"])
def test_gpu_large_matches_cpu(loss):
    y, x, w = _data(n=1_000_003)
    grad, hess = bc.gradient_hessian(loss, y, x, w, state=GHMState())
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
@pytest.mark.parametrize("loss", [FocalLoss(gamma=2.0, alpha=0.25), GHMLoss(bins=5, momentum=0.5)],
                         ids=["focal", "ghm-momentum"])
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
    params = {"tree_method": "hist", "max_depth": 4, "eta": 0.3, "max_bin": 64,
              "base_score": blx.base_score(loss, dtrain)}
    cpu = xgb.train(dict(params, device="cpu"), dtrain, 10, obj=blx.objective(loss))
    gpu = xgb.train(dict(params, device="cuda"), dtrain, 10,
                    obj=blx.objective(loss, compute=compute))
    p_cpu = cpu.predict(dtrain, output_margin=True)
    p_gpu = gpu.predict(dtrain, output_margin=True)
    # GPU and CPU hist build the same trees up to float32 summation order
    assert np.corrcoef(p_cpu, p_gpu)[0, 1] > 0.999
    np.testing.assert_allclose(p_gpu, p_cpu, atol=0.05)
