"""Gradients and Hessians of the focal and GHM-C losses on an NVIDIA GPU (numba.cuda).

Design
------
Three parts, each in its own place:

1. **The device build** (:mod:`_kernels.cuda_build`): the kernels (loops over samples and the
   reductions) and how they are compiled. The per-sample math is not written there: the functions
   named in :data:`_kernels.math.DEVICE_FUNCTIONS` are compiled for CUDA from their CPU source.
   Every kernel and launch signature is listed there, and the test suite compiles and assembles
   each one for real architectures (no GPU needed).
2. **Device-side validation** (this module, section "Inputs"): labels and weights, validated once
   per training, go through ``losses/_validation.py`` on the host (device arrays are copied back
   for that) and are uploaded as float64. Margins on the device, checked every round, get one
   kernel pass that finds the first non-finite value; only when something is wrong are they copied
   back, so the error is the host check's own message.
3. **:class:`DeviceGradients`**: one training's device buffers and the launches of one round.

Importing this module needs nothing beyond boostloss itself: ``numba.cuda`` is imported, and the
kernels compiled, on first use. Every function that computes raises :class:`CudaUnavailableError`
when there is neither a CUDA device nor numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, set
before numba is first imported). The simulator runs each GPU thread as a Python thread: it gets
:data:`SIMULATOR_THREADS` threads a block and few blocks by default; the test suite also runs it
with a GPU's launch shape (``_cuda_build.THREADS``, the same shared-memory layout and reduction
trees).

Determinism
-----------
The GHM bin counts are the only reduction. They are never accumulated with atomics: each thread
sums its own samples, in a fixed order, into a private histogram; each block reduces its threads'
histograms into one row of partial counts in a fixed order; one last kernel reduces the rows with a
fixed-shape tree. The launch shape depends on the number of samples only, so the same input gives
bit-identical counts (and gradients) on every call. The counts are exact float64 sums; they differ
from the CPU's chunked sums by rounding only. The private histogram bounds ``bins`` on the device
to :data:`MAX_BINS` (256).

GHM's window density is computed on the host: the gradient norms ``g`` go down (8 bytes a sample),
the CPU kernel ``window_beta`` sorts them, and the weights go back up. The binned density runs on
the device entirely, except for the ``bins``-sized counts that the host turns into weights with
:meth:`boostloss.GHMLoss.weights_from_counts` (which also updates the momentum state).

Arrays
------
Inputs may be host arrays (numpy, lists), numba device arrays, or any object with
``__cuda_array_interface__`` (CuPy, PyTorch). Device margins must be C-contiguous float32 or
float64 and are used in place. Kernels run on numba's default stream, and every public call
synchronises before it returns.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from ._kernels import cuda_build as build
from ._kernels.cache import kernels
from ._typing import DeviceArrayLike
from .losses import GHMParams, _Loss
from .losses import _validation as v

__all__ = [
    "MAX_BINS",
    "SIMULATOR_THREADS",
    "CudaUnavailableError",
    "DeviceGradients",
    "device_functions",
    "ensure_available",
    "gradient_hessian",
    "is_available",
    "is_simulator",
]

#: The most GHM bins the CUDA kernels support (each GPU thread keeps a private histogram).
MAX_BINS = build.MAX_BINS


class CudaUnavailableError(RuntimeError):
    """Raised when a CUDA computation is asked for and there is no device (and no simulator)."""


def is_simulator() -> bool:
    """True when numba's CUDA simulator is on (``NUMBA_ENABLE_CUDASIM=1`` before numba's import)."""
    from numba import config

    return bool(config.ENABLE_CUDASIM)  # type: ignore[attr-defined]


def is_available() -> bool:
    """True when a CUDA device (or numba's CUDA simulator) can run the kernels."""
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # no numba.cuda, no driver, a broken toolkit: not available
        return False


def ensure_available() -> None:
    """Raise :class:`CudaUnavailableError`, saying what to do, unless the kernels can run."""
    _cuda()


def _cuda():
    try:
        from numba import cuda
    except ImportError as exc:  # pragma: no cover - numba always ships a cuda module today
        raise CudaUnavailableError(
            "numba.cuda cannot be imported; install focal-ghm-boost[cuda] (numba-cuda, CuPy)"
        ) from exc
    try:
        ok = cuda.is_available()
    except Exception as exc:  # pragma: no cover - depends on the driver
        raise CudaUnavailableError(f"numba.cuda cannot use the CUDA driver: {exc}") from exc
    if not ok:
        raise CudaUnavailableError(
            "no CUDA device is available (numba.cuda.is_available() is False): run on a machine "
            "with an NVIDIA GPU, its driver and focal-ghm-boost[cuda] installed, or set "
            "NUMBA_ENABLE_CUDASIM=1 before numba is imported to use numba's CUDA simulator"
        )
    return cuda


def device_functions() -> dict[str, Any]:
    """The CUDA device versions of :data:`_kernels.math.DEVICE_FUNCTIONS`, by name, compiled
    from the CPU source.

    For further kernels with the same per-sample math (e.g. ``focal_point``).
    """
    namespace = build.namespace(_cuda())
    return {name: namespace[name] for name in kernels("math").DEVICE_FUNCTIONS}


#: Threads per block in numba's simulator (a GPU gets ``_cuda_build.THREADS``, 256).
SIMULATOR_THREADS = 8


def _threads_per_block():
    return SIMULATOR_THREADS if is_simulator() else build.THREADS


def _launch(cuda, name, blocks, threads, *args, local_bins=None):
    """Launch kernel ``name``, built for ``threads`` threads a block, on ``blocks`` blocks."""
    build.kernel(cuda, name, threads, local_bins)[blocks, threads](*args)


def _blocks(n, threads):
    """Blocks of an element-wise (grid-stride) launch; the simulator gets few, a GPU plenty."""
    cap = 2 if is_simulator() else 4096
    return max(1, min((n + threads - 1) // threads, cap))


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------


def _is_device(obj):
    if getattr(obj, "__cuda_ndarray__", False):  # numba's device arrays, simulated or not
        return True
    return hasattr(obj, "__cuda_array_interface__") and not isinstance(obj, np.ndarray)


def _as_device_array(cuda, obj):
    if getattr(obj, "__cuda_ndarray__", False):
        return obj
    return cuda.as_cuda_array(obj)  # zero-copy view of CuPy, PyTorch, ...


def _host(cuda, obj):
    """A host array of ``obj``'s values (a copy for device arrays, ``obj`` itself otherwise)."""
    return _as_device_array(cuda, obj).copy_to_host() if _is_device(obj) else obj


def _first_nonfinite(cuda, x, threads):
    """Index of the first NaN or infinite entry of device margins ``x``; ``x.shape[0]`` if none."""
    n = x.shape[0]
    first = cuda.to_device(np.array([n], dtype=np.int64))
    _launch(cuda, "_first_nonfinite_kernel", _blocks(n, threads), threads, x, first)
    return int(first.copy_to_host()[0])


def _device_margins(cuda, x, n, validate, threads):
    """Device margins ``x`` checked for use in place; a bad array fails like a host one would."""
    usable = x.ndim == 1 and np.dtype(x.dtype) in build.MARGIN_DTYPES and x.is_c_contiguous()
    if (
        usable
        and x.shape[0] == n
        and not (validate and n and _first_nonfinite(cuda, x, threads) < n)
    ):
        return x
    if x.is_c_contiguous():
        v.check_margins(x.copy_to_host(), n=n)  # the host rules, and their messages
    raise TypeError(
        "raw_prediction on the device must be a C-contiguous 1-D float32 or float64 array, got "
        f"dtype {x.dtype} and shape {tuple(x.shape)}"
        + ("" if x.is_c_contiguous() else " (not contiguous)")
        + "; convert it (e.g. cupy.ascontiguousarray(x, dtype=cupy.float32)) or pass a host array"
    )


def _layout(arr):
    """A numpy array with ``arr``'s dtype, shape and strides over no data of its own, so the host
    checks of :mod:`boostloss.losses._validation` can judge a device array's layout (never read)."""
    return np.lib.stride_tricks.as_strided(np.empty(1, dtype=arr.dtype), arr.shape, arr.strides)


def _check_out(cuda, out, n):
    """``out`` as two arrays (host or device) of one float dtype, shape (n,), C-contiguous."""
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(f"out must be a tuple (gradient, hessian) of arrays, got {out!r}")
    arrays = tuple(a if isinstance(a, np.ndarray) else _as_device_array(cuda, a) for a in out)
    for name, arr in zip(("gradient_out", "hessian_out"), arrays, strict=True):
        v.check_out(name, arr if isinstance(arr, np.ndarray) else _layout(arr), n)
    if arrays[0].dtype != arrays[1].dtype:
        raise TypeError(
            f"out gradient and hessian must have the same dtype, got {arrays[0].dtype} and "
            f"{arrays[1].dtype}"
        )
    return arrays


def _check_bins(bins):
    if bins > MAX_BINS:
        raise ValueError(
            f"GHMLoss(bins={bins}) cannot run on the CUDA kernels: they support bins <= "
            f"{MAX_BINS} (each GPU thread keeps a private histogram of bins float64 counts in "
            "local memory); use fewer bins, density='window', or the host kernels "
            "(compute='host')"
        )


# ------------------------------------------------------------------------------------------------
# DeviceGradients
# ------------------------------------------------------------------------------------------------


class DeviceGradients:
    """Gradients and Hessians of one training run on the GPU, with everything cached that can be.

    Labels and weights are validated and uploaded once; the output buffers, the GHM bin indices and
    partial counts are allocated once; each call then costs the margins' upload (when they are host
    arrays, as XGBoost passes them) and two to four kernel launches.

    Parameters
    ----------
    loss : FocalLoss or GHMLoss
        Its parameters are read (and validated) once, here: its ``gradient_density()`` (GHM-C), or
        else its ``binary_focal_terms()``. A GHM loss needs ``bins <= MAX_BINS`` (256) with
        ``density="bins"``.
    y_true : array-like or device array of shape (n,)
        0/1 labels (bool, integer or float).
    sample_weight : array-like or device array of shape (n,), optional
        Non-negative finite weights.
    dtype : {numpy.float32, numpy.float64}, default=numpy.float64
        Dtype of the returned gradient and Hessian (the arithmetic is float64 either way).
    state : optional
        The training's state, as ``loss.new_state()`` makes it (GHM's momentum). Default: a new
        one owned by this object.

    Notes
    -----
    The returned arrays are numba device arrays (``__cuda_array_interface__``: XGBoost, CuPy and
    PyTorch take them without a copy). They are the object's buffers, overwritten by the next call.
    """

    def __init__(
        self,
        loss: _Loss,
        y_true: DeviceArrayLike,
        sample_weight: DeviceArrayLike | None = None,
        *,
        dtype: DTypeLike = np.float64,
        state: object | None = None,
    ) -> None:
        density, focal = _device_terms(loss)
        dtype = np.dtype(dtype)
        if dtype not in build.OUTPUT_DTYPES:
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        self.loss = loss
        self.dtype = dtype
        self.state: Any = _checked_state(loss, state)
        # GHM-C's density, or the focal kernels' arguments: each read only when it is not None.
        self._density: Any = density
        self._focal_terms: Any = focal
        self._binned = density is not None and density.density == "bins"
        self._window = density is not None and not self._binned
        if density is not None and self._binned:
            _check_bins(density.bins)
        cuda = self._cuda = _cuda()
        self._threads = _threads_per_block()

        y = v.check_labels(_host(cuda, y_true))
        n = self.n = y.shape[0]
        self._w_host = v.check_weights(
            None if sample_weight is None else _host(cuda, sample_weight), n
        )
        self._y = cuda.to_device(y)
        self._w = cuda.to_device(self._w_host)
        self._grad = cuda.device_array(n, dtype=dtype)
        self._hess = cuda.device_array(n, dtype=dtype)
        self._x: Any = None
        if self._window:
            self._g = cuda.device_array(n, dtype=np.float64)
            self._g_host = np.empty(n)
            self._beta_host = np.empty(n)
            self._beta = cuda.device_array(n, dtype=np.float64)
        elif density is not None and self._binned:
            bins = density.bins
            chunk = self._threads * build.PER_THREAD
            self._local_bins = build.local_bins_for(bins)
            self._edges = cuda.to_device(density.edges)
            self._bin = cuda.device_array(n, dtype=np.int32)
            self._partial = cuda.device_array((max(1, (n + chunk - 1) // chunk), bins))
            self._counts = cuda.device_array(bins)

    def _margins(self, raw_prediction, validate):
        cuda = self._cuda
        if _is_device(raw_prediction):
            return _device_margins(
                cuda, _as_device_array(cuda, raw_prediction), self.n, validate, self._threads
            )
        if validate or not isinstance(raw_prediction, np.ndarray):
            x = v.check_margins(raw_prediction, n=self.n)
        else:
            x = raw_prediction
        # One device buffer per margin dtype, reused every round.
        if self._x is None or self._x.dtype != x.dtype:
            self._x = cuda.device_array(self.n, dtype=x.dtype)
        self._x.copy_to_device(x)
        return self._x

    def __call__(
        self,
        raw_prediction: DeviceArrayLike,
        out: tuple[Any, Any] | None = None,
        *,
        validate: bool = True,
    ) -> tuple[Any, Any]:
        """Gradient and Hessian (device arrays) of the loss at these margins.

        Parameters
        ----------
        raw_prediction : array-like or device array of shape (n,)
            Raw margins, float32 or float64.
        out : tuple of two device arrays, optional
            Where to write gradient and Hessian (both float32 or both float64, shape (n,),
            C-contiguous) instead of the object's own buffers.
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
            grad, hess = _check_out(self._cuda, out, self.n)
        if self.n:
            self._compute(x, grad, hess)
        self._cuda.synchronize()
        return grad, hess

    def _compute(self, x, grad, hess):
        cuda, threads = self._cuda, self._threads
        blocks = _blocks(self.n, threads)
        if self._binned:
            self._binned_density(x, grad, hess)
        elif self._window:
            _launch(
                cuda, "_ghm_norm_kernel", blocks, threads, self._y, x, self._w, grad, hess, self._g
            )
            self._g.copy_to_host(self._g_host)
            kernels().window_beta(
                self._g_host, self._w_host, self._density.epsilon, self._beta_host
            )
            self._beta.copy_to_device(self._beta_host)
            _launch(cuda, "_scale_by_sample_kernel", blocks, threads, self._beta, grad, hess)
        else:
            _launch(
                cuda,
                "_focal_kernel",
                blocks,
                threads,
                self._y,
                x,
                self._w,
                *self._focal_terms,
                grad,
                hess,
            )

    def _binned_density(self, x, grad, hess):
        cuda, threads = self._cuda, self._threads
        _launch(
            cuda,
            "_ghm_bins_kernel",
            self._partial.shape[0],
            threads,
            self._y,
            x,
            self._w,
            self._edges,
            grad,
            hess,
            self._bin,
            self._partial,
            local_bins=self._local_bins,
        )
        _launch(cuda, "_sum_rows_kernel", self._density.bins, threads, self._partial, self._counts)
        counts = self._counts.copy_to_host()
        beta = self.loss.weights_from_counts(counts, math.fsum(counts), state=self.state)
        _launch(
            cuda,
            "_scale_by_bin_kernel",
            _blocks(self.n, threads),
            threads,
            self._bin,
            cuda.to_device(beta),
            grad,
            hess,
        )


def _device_terms(loss: object) -> tuple[GHMParams | None, tuple[float, float, float, int] | None]:
    """``(gradient_density, binary_focal_terms)`` of ``loss``, one of them None: what the kernels
    compute (GHM-C's density on the cross-entropy, or a per-sample focal loss)."""
    if isinstance(loss, _Loss):
        density = loss.gradient_density()
        focal = None if density is not None else loss.binary_focal_terms()
        if density is not None or focal is not None:
            return density, focal
    raise TypeError(
        f"loss must be a boostloss FocalLoss or GHMLoss, got {loss!r} of type "
        f"{type(loss).__name__}: the CUDA kernels compute a per-sample focal loss or GHM-C's "
        "density; use the host kernels (compute='host') for the others"
    )


def _checked_state(loss: _Loss, state: object | None) -> object | None:
    """``state``, checked to be of the type ``loss.new_state()`` makes (any, for a loss without
    state), or a new one."""
    fresh = loss.new_state()
    if state is None:
        return fresh
    if fresh is not None and type(state) is not type(fresh):
        raise TypeError(
            f"state must be a {type(fresh).__name__} made by {type(loss).__name__}.new_state(), "
            f"got {state!r} of type {type(state).__name__}"
        )
    return state


def gradient_hessian(
    loss: _Loss,
    y_true: DeviceArrayLike,
    raw_prediction: DeviceArrayLike,
    sample_weight: DeviceArrayLike | None = None,
    *,
    state: object | None = None,
    out: tuple[Any, Any] | None = None,
) -> tuple[Any, Any]:
    """Gradient and Hessian of a boostloss loss computed by the CUDA kernels.

    The same numbers as ``loss.gradient_hessian`` (to rounding: 1e-12 relative or better in
    float64), from the same per-sample source compiled for CUDA.

    Parameters
    ----------
    loss : FocalLoss or GHMLoss
        GHM with ``density="bins"`` needs ``bins <= MAX_BINS`` (256).
    y_true, raw_prediction, sample_weight : arrays of shape (n,)
        Host arrays (validated like the CPU losses, then uploaded), numba device arrays or objects
        with ``__cuda_array_interface__`` (CuPy, PyTorch). Device margins are used in place.
    state : optional
        The training's state from ``loss.new_state()`` (GHM's momentum). Default: a new one, so
        nothing carries over between calls; pass the same state to every round of a training.
    out : tuple (gradient, hessian), optional
        Output arrays, both float32 or both float64, of shape (n,): device arrays, or numpy arrays
        that the result is copied into.

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
    work = DeviceGradients(loss, y_true, sample_weight, state=state)
    if out is not None:
        _check_out(work._cuda, out, work.n)
    host_out = out is not None and all(isinstance(a, np.ndarray) for a in out)
    grad, hess = work(raw_prediction, out=None if host_out else out)
    if host_out:
        for dst, src in zip(out, (grad, hess), strict=True):  # type: ignore[arg-type]  # host_out: not None
            dst[...] = src.copy_to_host()
    if out is not None:
        return out
    if _is_device(raw_prediction):
        return grad, hess
    return grad.copy_to_host(), hess.copy_to_host()
