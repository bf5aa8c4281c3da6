"""CUDA kernels for the focal and GHM-C losses (numba.cuda), and the per-training device buffers.

Importing this module needs nothing beyond boostloss itself: ``numba.cuda`` is imported, and the
kernels compiled, on first use. Every function that computes raises :class:`CudaUnavailableError`
when there is neither a CUDA device nor numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, set
before numba is first imported).

One source of math
------------------
The per-sample functions of :mod:`boostloss._kernels` (:data:`SHARED_MATH`: ``_logistic_parts``,
``_modulating_factor``, ``focal_point``, ``_gradient_norm_parts``, ``bin_of`` and their helpers)
are compiled a second time, for the CUDA target, from the very same Python source: each one's ``py_func`` is re-bound to a namespace where
its callees are their CUDA versions and handed to ``numba.cuda.jit(device=True)``. Only the loops
over samples (and the reductions) are written here. All arithmetic is float64, as on the CPU;
outputs may be float32 or float64.

Determinism
-----------
The GHM bin counts are the only reduction. They are never accumulated with atomics: each thread
sums its own samples, in a fixed order, into a private histogram; each block reduces its threads'
histograms with a fixed-shape tree into one row of partial counts; one last kernel reduces the rows
with a fixed-shape tree. The launch shape depends on the number of samples only, so the same input
gives bit-identical counts (and gradients) on every call. The counts are exact float64 sums; they
differ from the CPU's chunked sums by rounding only.

GHM's window density is computed on the host: the gradient norms ``g`` go down (8 bytes a sample),
the CPU kernel ``window_beta`` sorts them, and the weights go back up. The binned density runs on
the device entirely, except for the ``bins``-sized counts that the host turns into weights with
:meth:`boostloss.GHMLoss._bin_betas` (which also updates the momentum state).

Arrays
------
Inputs may be host arrays (numpy, lists: validated like the CPU losses and uploaded), numba device
arrays, or any object with ``__cuda_array_interface__`` (CuPy, PyTorch), used without a copy.
Kernels run on numba's default stream, and every public call synchronises before it returns.
"""

import functools
import math
import types

import numpy as np

from . import _kernels
from . import _validation as v
from .losses import FocalLoss, GHMLoss, GHMState

__all__ = [
    "CudaUnavailableError",
    "DeviceGradients",
    "device_functions",
    "ensure_available",
    "gradient_hessian",
    "is_available",
    "is_simulator",
]

def _per_sample_functions():
    """Names of the per-sample functions of :mod:`boostloss._kernels`: its ``inline="always"`` ones.

    The kernels' loops are ``parallel``; the per-sample math (``_logistic_parts``, ``focal_point``,
    ``bin_of``, the exp/log1p helpers, ...) is what is inlined into them, and all of it is plain
    scalar arithmetic that numba can also compile for CUDA.
    """
    names = []
    for name, obj in vars(_kernels).items():
        options = getattr(obj, "targetoptions", None)
        if options is not None and options.get("inline") == "always" and hasattr(obj, "py_func"):
            names.append(name)
    return tuple(names)


#: The per-sample functions of :mod:`boostloss._kernels` that are compiled for CUDA too.
SHARED_MATH = _per_sample_functions()


class CudaUnavailableError(RuntimeError):
    """Raised when a CUDA computation is asked for and there is no device (and no simulator)."""


def is_simulator():
    """True when numba's CUDA simulator is on (``NUMBA_ENABLE_CUDASIM=1`` before numba's import)."""
    from numba import config

    return bool(config.ENABLE_CUDASIM)


def is_available():
    """True when a CUDA device (or numba's CUDA simulator) can run the kernels."""
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # no numba.cuda, no driver, a broken toolkit: not available
        return False


def ensure_available():
    """Raise :class:`CudaUnavailableError`, saying what to do, unless the kernels can run."""
    _cuda()


def _cuda():
    try:
        from numba import cuda
    except ImportError as exc:  # pragma: no cover - numba always ships a cuda module today
        raise CudaUnavailableError(
            "numba.cuda cannot be imported; install boostloss[cuda] (numba-cuda, CuPy)"
        ) from exc
    try:
        ok = cuda.is_available()
    except Exception as exc:  # pragma: no cover - depends on the driver
        raise CudaUnavailableError(f"numba.cuda cannot use the CUDA driver: {exc}") from exc
    if not ok:
        raise CudaUnavailableError(
            "no CUDA device is available (numba.cuda.is_available() is False): run on a machine "
            "with an NVIDIA GPU, its driver and boostloss[cuda] installed, or set "
            "NUMBA_ENABLE_CUDASIM=1 before numba is imported to use numba's CUDA simulator"
        )
    return cuda


# ------------------------------------------------------------------------------------------
# Kernels. Plain functions here, compiled by _compiled() in a namespace that holds `cuda`, the
# CUDA versions of the shared math and the launch constants.
# ------------------------------------------------------------------------------------------


def _focal_kernel(y, x, w, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out):
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    n = x.shape[0]
    weighted = w.shape[0] > 0
    while i < n:
        _, g, h = focal_point(float64(x[i]), float64(y[i]), gamma, alpha_pos, alpha_neg,
                              hessian_mode)
        if weighted:
            wi = float64(w[i])
            g *= wi
            h *= wi
        grad_out[i] = g
        hess_out[i] = h
        i += stride


def _tree_sum(shared, t, value):
    """Sum ``value`` over the threads of a block, in a fixed order; every thread gets the sum."""
    shared[t] = value
    cuda.syncthreads()
    s = THREADS // 2
    while s > 0:
        if t < s:
            shared[t] += shared[t + s]
        cuda.syncthreads()
        s //= 2
    total = shared[0]
    cuda.syncthreads()
    return total


def _ghm_bins_kernel(y, x, w, edges, grad_out, hess_out, bin_out, partial_out):
    # Block b owns samples [b * THREADS * PER_THREAD, (b + 1) * THREADS * PER_THREAD); thread t
    # takes every THREADS-th of them (coalesced), in order, into its private histogram.
    t = cuda.threadIdx.x
    block = cuda.blockIdx.x
    n = x.shape[0]
    bins = edges.shape[0] - 1
    weighted = w.shape[0] > 0
    local = cuda.local.array(LOCAL_BINS, float64)
    for b in range(bins):
        local[b] = 0.0
    start = block * THREADS * PER_THREAD + t
    for k in range(PER_THREAD):
        i = start + k * THREADS
        if i < n:
            diff, hess, g, _ = _gradient_norm_parts(float64(x[i]), float64(y[i]))
            if not hess > HESSIAN_FLOOR:
                hess = HESSIAN_FLOOR
            b = bin_of(g, bins, edges)
            bin_out[i] = b
            wi = 1.0
            if weighted:
                wi = float64(w[i])
            grad_out[i] = wi * diff
            hess_out[i] = wi * hess
            if wi > 0.0:
                local[b] += wi
    # The block's histograms go to shared memory BIN_GROUP bins at a time; thread j then sums bin
    # b0 + j over the threads in order.
    shared = cuda.shared.array(SHARED_CELLS, float64)
    for b0 in range(0, bins, BIN_GROUP):
        for j in range(BIN_GROUP):
            if b0 + j < bins:
                shared[t * BIN_GROUP + j] = local[b0 + j]
        cuda.syncthreads()
        if t < BIN_GROUP and b0 + t < bins:
            total = 0.0
            for r in range(THREADS):
                total += shared[r * BIN_GROUP + t]
            partial_out[block, b0 + t] = total
        cuda.syncthreads()


def _sum_rows_kernel(partial, counts_out):
    # One block per bin: thread t sums rows t, t + THREADS, ... in order, then a fixed tree.
    t = cuda.threadIdx.x
    b = cuda.blockIdx.x
    acc = 0.0
    r = t
    while r < partial.shape[0]:
        acc += partial[r, b]
        r += THREADS
    shared = cuda.shared.array(THREADS, float64)
    total = _tree_sum(shared, t, acc)
    if t == 0:
        counts_out[b] = total


def _scale_by_bin_kernel(bin_idx, beta, grad, hess):
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    while i < grad.shape[0]:
        bb = beta[bin_idx[i]]
        grad[i] *= bb
        hess[i] *= bb
        i += stride


def _ghm_norm_kernel(y, x, w, grad_out, hess_out, g_out):
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    n = x.shape[0]
    weighted = w.shape[0] > 0
    while i < n:
        diff, hess, g, _ = _gradient_norm_parts(float64(x[i]), float64(y[i]))
        if not hess > HESSIAN_FLOOR:
            hess = HESSIAN_FLOOR
        wi = 1.0
        if weighted:
            wi = float64(w[i])
        g_out[i] = g
        grad_out[i] = wi * diff
        hess_out[i] = wi * hess
        i += stride


def _scale_by_sample_kernel(beta, grad, hess):
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    while i < grad.shape[0]:
        grad[i] *= beta[i]
        hess[i] *= beta[i]
        i += stride


def _first_bad_kernel(values, kind, first_out):
    # kind 0: labels outside {0, 1}; 1: non-finite margins; 2: negative or non-finite weights.
    # atomic.min of an index is order-independent, so the first offender is found deterministically.
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    while i < values.shape[0]:
        val = float64(values[i])
        if kind == 0:
            bad = not (val == 0.0 or val == 1.0)
        elif kind == 1:
            bad = not math.isfinite(val)
        else:
            bad = not (math.isfinite(val) and val >= 0.0)
        if bad:
            cuda.atomic.min(first_out, 0, i)
        i += stride


#: float64 cells of shared memory the histogram pass uses per block (32 KiB).
SHARED_FLOAT64 = 4096

_KERNELS = ("_focal_kernel", "_ghm_bins_kernel", "_sum_rows_kernel", "_scale_by_bin_kernel",
            "_ghm_norm_kernel", "_scale_by_sample_kernel", "_first_bad_kernel")


def _launch_shape():
    """``(threads per block, samples per thread of the histogram pass)``.

    Powers of two, fixed per backend: the GHM counts' summation order depends on them and on the
    number of samples only. The simulator runs each thread as a Python thread, so it gets few.
    """
    return (8, 16) if is_simulator() else (256, 16)


def _rebind(func, namespace):
    out = types.FunctionType(func.__code__, namespace, func.__name__, func.__defaults__,
                             func.__closure__)
    out.__doc__ = func.__doc__
    out.__qualname__ = func.__qualname__
    return out


@functools.lru_cache(maxsize=None)
def _compiled(local_bins):
    """The CUDA kernels, compiled lazily; ``local_bins`` sizes the private histogram of a thread."""
    cuda = _cuda()
    from numba import float64

    threads, per_thread = _launch_shape()
    namespace = dict(vars(_kernels))
    bin_group = max(1, min(local_bins, SHARED_FLOAT64 // threads, threads))
    namespace.update(cuda=cuda, math=math, float64=float64, THREADS=threads,
                     PER_THREAD=per_thread, LOCAL_BINS=local_bins, BIN_GROUP=bin_group,
                     SHARED_CELLS=threads * bin_group)
    # numba resolves globals when a kernel first compiles, so by then every callee in the namespace
    # is its CUDA version.
    for name in SHARED_MATH:
        namespace[name] = cuda.jit(device=True)(_rebind(getattr(_kernels, name).py_func, namespace))
    namespace["_tree_sum"] = cuda.jit(device=True)(_rebind(_tree_sum, namespace))
    kernels = {name: cuda.jit(_rebind(globals()[name], namespace)) for name in _KERNELS}
    return types.SimpleNamespace(cuda=cuda, threads=threads, per_thread=per_thread,
                                 namespace=namespace, **kernels)


def device_functions():
    """The CUDA device versions of :data:`SHARED_MATH`, by name, compiled from the CPU source.

    For further kernels with the same per-sample math (e.g. ``focal_point``).
    """
    namespace = _compiled(1).namespace
    return {name: namespace[name] for name in SHARED_MATH}


def _blocks(n, threads):
    """Blocks of an element-wise (grid-stride) launch; the simulator gets few, a GPU plenty."""
    cap = 2 if is_simulator() else 4096
    return max(1, min((n + threads - 1) // threads, cap))


# ------------------------------------------------------------------------------------------
# Arrays
# ------------------------------------------------------------------------------------------


def _is_numba_device_array(obj):
    return bool(getattr(obj, "__cuda_ndarray__", False))  # numba's device arrays, simulated or not


def _is_device(cuda, obj):
    return _is_numba_device_array(obj) or (
        hasattr(obj, "__cuda_array_interface__") and not isinstance(obj, np.ndarray))


def _as_device_array(cuda, obj):
    if _is_numba_device_array(obj):
        return obj
    return cuda.as_cuda_array(obj)  # zero-copy view of CuPy, PyTorch, ...


def _check_device_1d(name, arr, n, kinds):
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be 1-D with one entry per sample, got shape {tuple(arr.shape)}")
    if np.dtype(arr.dtype).kind not in kinds:
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(
            f"{name} has {arr.shape[0]} entries but y_true has {n}; they must have the same length")


_CHECKS = {
    0: ("y_true", "y_true must contain only 0 and 1 (binary labels; map other classes to 0/1 "
                  "first), got {value!r} at index {index}"),
    1: ("raw_prediction", "raw_prediction contains a non-finite value (first at index {index}: "
                          "{value!r}); margins must be finite (a diverged model or a bad base "
                          "margin?)"),
    2: ("sample_weight", "sample_weight must be finite and >= 0, got {value!r} at index {index}"),
}


def _check_device_values(k, arr, kind):
    """Raise ValueError quoting the first offending entry of a device array (one kernel pass)."""
    n = arr.shape[0]
    if n == 0:
        return
    cuda = k.cuda
    first = cuda.to_device(np.array([n], dtype=np.int64))
    k._first_bad_kernel[_blocks(n, k.threads), k.threads](arr, kind, first)
    index = int(first.copy_to_host()[0])
    if index < n:
        value = arr[index:index + 1].copy_to_host()[0].item()
        raise ValueError(_CHECKS[kind][1].format(value=value, index=index))


def _check_out(out, n):
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(f"out must be a tuple (gradient, hessian) of arrays, got {out!r}")
    for name, arr in zip(("gradient", "hessian"), out):
        dtype = np.dtype(arr.dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"out {name} must be float32 or float64, got dtype {dtype}")
        if tuple(arr.shape) != (n,):
            raise ValueError(f"out {name} must have shape ({n},), got {tuple(arr.shape)}")


# ------------------------------------------------------------------------------------------
# Public API
# ------------------------------------------------------------------------------------------


class DeviceGradients:
    """Gradients and Hessians of one training run on the GPU, with everything cached that can be.

    Labels and weights are validated and uploaded once; the output buffers, the GHM bin indices and
    partial counts are allocated once; each call then costs the margins' upload (when they are host
    arrays, as XGBoost passes them) and two to four kernel launches.

    Parameters
    ----------
    loss : FocalLoss or GHMLoss
        Its parameters are read (and validated) once, here.
    y_true : array-like or device array of shape (n,)
        0/1 labels (bool, integer or float).
    sample_weight : array-like or device array of shape (n,), optional
        Non-negative finite weights.
    dtype : {numpy.float32, numpy.float64}, default=numpy.float64
        Dtype of the returned gradient and Hessian (the arithmetic is float64 either way).
    state : GHMState, optional
        Momentum state of a GHM training. Default: a fresh one owned by this object.

    Notes
    -----
    The returned arrays are numba device arrays (``__cuda_array_interface__``: XGBoost, CuPy and
    PyTorch take them without a copy). They are the object's buffers, overwritten by the next call.
    """

    def __init__(self, loss, y_true, sample_weight=None, *, dtype=np.float64, state=None):
        if not isinstance(loss, (FocalLoss, GHMLoss)):
            raise TypeError(
                f"loss must be a boostloss FocalLoss or GHMLoss, got {loss!r} of type "
                f"{type(loss).__name__}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        if state is not None and not isinstance(state, GHMState):
            raise TypeError(f"state must be a GHMState or None, got {state!r}")
        self.loss = loss
        self.params = loss._params()
        self.dtype = dtype
        self.state = GHMState() if state is None else state
        self._window = isinstance(loss, GHMLoss) and self.params[2] == "window"
        bins = self.params[0] if isinstance(loss, GHMLoss) else 1
        k = self._k = _compiled(bins)
        cuda = k.cuda

        if _is_device(cuda, y_true):
            y = _as_device_array(cuda, y_true)
            _check_device_1d("y_true", y, None, "biuf")
            _check_device_values(k, y, 0)
        else:
            y = cuda.to_device(v.check_labels(y_true))
        n = self.n = y.shape[0]
        self._y = y

        self._w_host = v.check_weights(None, n)
        if sample_weight is None:
            w = cuda.to_device(self._w_host)
        elif _is_device(cuda, sample_weight):
            w = _as_device_array(cuda, sample_weight)
            _check_device_1d("sample_weight", w, n, "iuf")
            _check_device_values(k, w, 2)
            if self._window:
                self._w_host = np.ascontiguousarray(w.copy_to_host(), dtype=np.float64)
        else:
            self._w_host = v.check_weights(sample_weight, n)
            w = cuda.to_device(self._w_host)
        self._w = w

        self._grad = cuda.device_array(n, dtype=dtype)
        self._hess = cuda.device_array(n, dtype=dtype)
        self._x = None
        if isinstance(loss, GHMLoss):
            self._edges = cuda.to_device(self.params[4])
            if self._window:
                self._g = cuda.device_array(n, dtype=np.float64)
                self._g_host = np.empty(n)
                self._beta_host = np.empty(n)
                self._beta = cuda.device_array(n, dtype=np.float64)
            else:
                chunk = k.threads * k.per_thread
                self._bin = cuda.device_array(n, dtype=np.int32)
                self._partial = cuda.device_array((max(1, (n + chunk - 1) // chunk), bins))
                self._counts = cuda.device_array(bins)

    def _margins(self, raw_prediction, validate):
        cuda = self._k.cuda
        if not validate and isinstance(raw_prediction, np.ndarray):
            x = raw_prediction
        elif _is_device(cuda, raw_prediction):
            x = _as_device_array(cuda, raw_prediction)
            _check_device_1d("raw_prediction", x, self.n, "f")
            if np.dtype(x.dtype) not in (np.float32, np.float64):
                raise TypeError(f"raw_prediction must be float32 or float64, got dtype {x.dtype}")
            if validate:
                _check_device_values(self._k, x, 1)
            return x
        else:
            x = v.check_margins(raw_prediction, n=self.n)
        # One device buffer per margin dtype, reused every round.
        if self._x is None or self._x.dtype != x.dtype:
            self._x = cuda.device_array(self.n, dtype=x.dtype)
        self._x.copy_to_device(x)
        return self._x

    def __call__(self, raw_prediction, out=None, *, validate=True):
        """Gradient and Hessian (device arrays) of the loss at these margins.

        Parameters
        ----------
        raw_prediction : array-like or device array of shape (n,)
            Raw margins, float32 or float64.
        out : tuple of two device arrays, optional
            Where to write gradient and Hessian (float32 or float64, shape (n,)) instead of the
            object's own buffers.
        validate : bool, default=True
            False skips the check that the margins are finite, for callers that have made it (the
            XGBoost adapter); host margins must then be a contiguous float32 or float64 array of
            shape (n,).

        Returns
        -------
        (gradient, hessian) : tuple of device arrays
        """
        x = self._margins(raw_prediction, validate)
        if out is None:
            grad, hess = self._grad, self._hess
        else:
            _check_out(out, self.n)
            grad, hess = (_as_device_array(self._k.cuda, a) for a in out)
        if self.n:
            self._compute(x, grad, hess)
        self._k.cuda.synchronize()
        return grad, hess

    def _compute(self, x, grad, hess):
        k = self._k
        n, threads = self.n, k.threads
        blocks = _blocks(n, threads)
        if isinstance(self.loss, FocalLoss):
            gamma, a_pos, a_neg, mode = self.params
            k._focal_kernel[blocks, threads](self._y, x, self._w, gamma, a_pos, a_neg, mode,
                                             grad, hess)
            return
        bins, momentum, _, epsilon, _ = self.params
        if self._window:
            k._ghm_norm_kernel[blocks, threads](self._y, x, self._w, grad, hess, self._g)
            self._g.copy_to_host(self._g_host)
            _kernels.window_beta(self._g_host, self._w_host, epsilon, self._beta_host)
            self._beta.copy_to_device(self._beta_host)
            k._scale_by_sample_kernel[blocks, threads](self._beta, grad, hess)
            return
        rows = self._partial.shape[0]
        k._ghm_bins_kernel[rows, threads](self._y, x, self._w, self._edges, grad, hess,
                                          self._bin, self._partial)
        k._sum_rows_kernel[bins, threads](self._partial, self._counts)
        counts = self._counts.copy_to_host()
        beta = GHMLoss._bin_betas(counts, float(math.fsum(counts)), momentum, self.state)
        k._scale_by_bin_kernel[blocks, threads](self._bin, k.cuda.to_device(beta), grad, hess)


def gradient_hessian(loss, y_true, raw_prediction, sample_weight=None, *, state=None, out=None):
    """Gradient and Hessian of a boostloss loss computed by the CUDA kernels.

    The same numbers as ``loss.gradient_hessian`` (to rounding: 1e-12 relative or better in
    float64), from the same per-sample source compiled for CUDA.

    Parameters
    ----------
    loss : FocalLoss or GHMLoss
    y_true, raw_prediction, sample_weight : arrays of shape (n,)
        Host arrays (validated like the CPU losses, then uploaded), numba device arrays or objects
        with ``__cuda_array_interface__`` (CuPy, PyTorch; validated on the device, used in place).
    state : GHMState, optional
        Momentum state of a GHM training; default: the loss's own state, as
        ``loss.gradient_hessian`` uses.
    out : tuple (gradient, hessian), optional
        Output arrays, float32 or float64 of shape (n,): device arrays, or numpy arrays that the
        result is copied into.

    Returns
    -------
    (gradient, hessian)
        ``out`` when given; else numpy float64 arrays when ``raw_prediction`` is a host array, and
        float64 numba device arrays when it is a device array.

    Raises
    ------
    CudaUnavailableError
        Without a CUDA device and without numba's simulator.
    """
    cuda = _cuda()
    if state is None and isinstance(loss, GHMLoss):
        state = loss._state()
    work = DeviceGradients(loss, y_true, sample_weight, state=state)
    if out is not None:
        _check_out(out, work.n)
    host_out = out is not None and all(isinstance(a, np.ndarray) for a in out)
    device_out = out if (out is not None and not host_out) else None
    grad, hess = work(raw_prediction, out=device_out)
    if host_out:
        for dst, src in zip(out, (grad, hess)):
            dst[...] = src.copy_to_host()
    if out is not None:
        return out
    if _is_device(cuda, raw_prediction):
        return grad, hess
    return grad.copy_to_host(), hess.copy_to_host()
