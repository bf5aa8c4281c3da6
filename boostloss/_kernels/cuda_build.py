"""The CUDA build: kernel sources, launch constants, and how they become device code.

Design
------
The per-sample math is written once, in :mod:`boostloss._kernels`, and compiled twice: by
``numba.njit`` for the CPU, and from the same Python source for CUDA here. The functions shared
that way are named in :data:`boostloss._kernels.math.DEVICE_FUNCTIONS`.

The kernels below are plain Python functions, never called as such. :func:`namespace` builds the
globals they are compiled with: everything in :mod:`boostloss._kernels`, with each name of
``DEVICE_FUNCTIONS`` replaced by its CUDA version (its ``py_func`` re-bound to the namespace and
handed to ``numba.cuda.jit(device=True, inline="always")``), plus ``cuda``, ``float64``,
``_tree_sum`` and the launch constants ``THREADS``, ``PER_THREAD``, ``LOCAL_BINS``, ``BIN_GROUP``,
``SHARED_CELLS``. Module-level names of the same spelling are here for readers and linters (the
ones set to None exist only in the namespace). numba resolves a kernel's globals when it compiles
it, so every callee is then its CUDA version.

Device functions are inlined at numba IR level, so a kernel compiles without compiling any device
function on its own, which numba-cuda would do for the current device: that is how
:func:`compile_ptx` targets an explicit compute capability on a machine without a GPU.

A GPU launches ``THREADS`` (256) threads a block. numba's simulator runs each GPU thread as a Python
thread, so :mod:`boostloss.cuda` gives it fewer by default, and the tests also run it with
``THREADS``: a GPU's shared-memory layout and reduction tree. :func:`launch_signatures` lists every
kernel with every signature launched on a GPU; the tests compile each to PTX for real
architectures and assemble it with ptxas.
"""

import functools
import math
import types
from typing import Any

import numpy as np

from .cache import kernels

#: Threads per block of every launch on a GPU (a power of two: the reduction tree halves it).
THREADS = 256
#: Samples per thread of the histogram pass: a block bins THREADS * PER_THREAD samples.
PER_THREAD = 16
#: float64 cells of shared memory the histogram pass uses per block (32 KiB).
SHARED_FLOAT64 = 4096
#: Sizes of a thread's private histogram (float64 counts in local memory): a GHM loss with ``bins``
#: bins uses the smallest size >= bins. Each size is a separately compiled histogram kernel.
LOCAL_BIN_SIZES = (16, 64, 256)
#: The most bins the CUDA kernels support: the private histogram costs 8 bytes a bin per thread.
MAX_BINS = LOCAL_BIN_SIZES[-1]
#: Dtypes of margins and of outputs that the kernels are compiled for. Labels and weights are
#: validated on the host and uploaded as float64 (once per training).
MARGIN_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
OUTPUT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Bound by namespace() only: numba.cuda and numba's float64 (imported at the first build),
# the per-build constants of the histogram pass, and the CUDA versions of the DEVICE_FUNCTIONS
# that the kernels call (boostloss._kernels is imported lazily, at the first build).
cuda = float64 = None  # type: Any
LOCAL_BINS = BIN_GROUP = SHARED_CELLS = None  # type: Any
_focal_grad_hess_store = _ghm_bins_sample = bin_of = _scale_one = None  # type: Any
_POW2_LOW = _POW2_HIGH = None  # type: Any


def local_bins_for(bins):
    """Size of the private histogram for ``bins`` bins (``bins <= MAX_BINS``)."""
    return next(size for size in LOCAL_BIN_SIZES if size >= bins)


# ------------------------------------------------------------------------------------------------
# Kernel sources (compiled by kernel() / compile_ptx() in namespace(), never called as Python)
# ------------------------------------------------------------------------------------------------


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


def _focal_kernel(y, x, w, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out):
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    weighted = w.shape[0] > 0
    while i < x.shape[0]:
        _focal_grad_hess_store(
            i, y, x, w, weighted, gamma, alpha_pos, alpha_neg, hessian_mode, grad_out, hess_out
        )
        i += stride


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
            g = _ghm_bins_sample(i, y, x, w, weighted, grad_out, hess_out)
            b = bin_of(g, bins, edges)
            bin_out[i] = b
            wi = w[i] if weighted else 1.0
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
        _scale_one(i, beta[bin_idx[i]], grad, hess)
        i += stride


def _ghm_norm_kernel(y, x, w, grad_out, hess_out, g_out):
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    weighted = w.shape[0] > 0
    while i < x.shape[0]:
        g_out[i] = _ghm_bins_sample(i, y, x, w, weighted, grad_out, hess_out)
        i += stride


def _scale_by_sample_kernel(beta, grad, hess):
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    while i < grad.shape[0]:
        _scale_one(i, beta[i], grad, hess)
        i += stride


def _first_nonfinite_kernel(x, first_out):
    # atomic.min of an index is order-independent: the first offender, deterministically.
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    while i < x.shape[0]:
        if not math.isfinite(x[i]):
            cuda.atomic.min(first_out, 0, i)
        i += stride


KERNELS = {
    f.__name__: f
    for f in (
        _focal_kernel,
        _ghm_bins_kernel,
        _sum_rows_kernel,
        _scale_by_bin_kernel,
        _ghm_norm_kernel,
        _scale_by_sample_kernel,
        _first_nonfinite_kernel,
    )
}
#: The kernels whose code depends on LOCAL_BINS.
BINNED_KERNELS = ("_ghm_bins_kernel",)


# ------------------------------------------------------------------------------------------------
# Code generation
# ------------------------------------------------------------------------------------------------


def _rebind(func, globals_):
    out = types.FunctionType(
        func.__code__, globals_, func.__name__, func.__defaults__, func.__closure__
    )
    out.__doc__ = func.__doc__
    out.__qualname__ = func.__qualname__
    return out


@functools.cache
def namespace(cuda_module, threads=THREADS, local_bins=None):
    """The globals of the kernel sources for one build (see the module's Design notes)."""
    from numba import float64 as numba_float64

    cpu = kernels("math")
    ns = dict(vars(cpu))
    bin_group = 1
    if local_bins is not None:
        bin_group = max(1, min(local_bins, SHARED_FLOAT64 // threads, threads))
    ns.update(
        cuda=cuda_module,
        math=math,
        float64=numba_float64,
        THREADS=threads,
        PER_THREAD=PER_THREAD,
        LOCAL_BINS=local_bins,
        BIN_GROUP=bin_group,
        SHARED_CELLS=threads * bin_group,
    )
    device = functools.partial(cuda_module.jit, device=True, inline="always")
    for name in cpu.DEVICE_FUNCTIONS:
        ns[name] = device(_rebind(getattr(cpu, name).py_func, ns))
    ns["_tree_sum"] = device(_rebind(_tree_sum, ns))
    ns["_pow2_factors"] = device(_rebind(_pow2_factors_table, ns))
    return ns


def _pow2_factors_table(k):
    """The CUDA version of ``math._pow2_factors`` (no bitcast intrinsic there): the same two
    factors, read from the module's tables."""
    return _POW2_LOW[k & 31], _POW2_HIGH[(k >> 5) + 34]


def kernel_source(cuda_module, name, threads=THREADS, local_bins=None):
    """Kernel ``name``'s Python source function, bound to its build's namespace."""
    return _rebind(KERNELS[name], namespace(cuda_module, threads, local_bins))


@functools.cache
def kernel(cuda_module, name, threads=THREADS, local_bins=None):
    """Kernel ``name`` as a ``numba.cuda.jit`` dispatcher (compiled at its first launch)."""
    return cuda_module.jit(kernel_source(cuda_module, name, threads, local_bins))


def launch_signatures():
    """Every ``(kernel name, local_bins, argument types)`` that :mod:`boostloss.cuda` launches
    (with ``THREADS`` threads a block).

    Labels, weights, edges, GHM weights and counts are float64; bin indices int32; margins and
    outputs as in :data:`MARGIN_DTYPES` and :data:`OUTPUT_DTYPES` (gradient and Hessian share one
    dtype); scalar parameters are Python floats and ints.
    """
    from numba import from_dtype
    from numba.core import types as nt

    def arr(dtype, ndim=1):
        return nt.Array(from_dtype(np.dtype(dtype)), ndim, "C")

    f64 = arr(np.float64)
    out: list[tuple[str, int | None, tuple[Any, ...]]] = []
    for xd in MARGIN_DTYPES:
        x = arr(xd)
        out.append(("_first_nonfinite_kernel", None, (x, arr(np.int64))))
        for od in OUTPUT_DTYPES:
            o = arr(od)
            out.append(
                (
                    "_focal_kernel",
                    None,
                    (f64, x, f64, nt.float64, nt.float64, nt.float64, nt.int64, o, o),
                )
            )
            out.append(("_ghm_norm_kernel", None, (f64, x, f64, o, o, f64)))
            for size in LOCAL_BIN_SIZES:
                out.append(
                    (
                        "_ghm_bins_kernel",
                        size,
                        (f64, x, f64, f64, o, o, arr(np.int32), arr(np.float64, 2)),
                    )
                )
    for od in OUTPUT_DTYPES:
        o = arr(od)
        out.append(("_scale_by_bin_kernel", None, (arr(np.int32), f64, o, o)))
        out.append(("_scale_by_sample_kernel", None, (f64, o, o)))
    out.append(("_sum_rows_kernel", None, (arr(np.float64, 2), f64)))
    return out


def compile_ptx(cc, signatures=None):
    """PTX of every launched kernel and signature for compute capability ``cc`` (e.g. ``(7, 5)``).

    Needs numba-cuda and its toolchain (NVVM), not a GPU. Returns a list of
    ``(kernel name, local_bins, argument types, ptx)``.
    """
    from numba import cuda as cuda_module

    result = []
    for name, size, argtypes in launch_signatures() if signatures is None else signatures:
        source = kernel_source(cuda_module, name, THREADS, size)
        ptx, _ = cuda_module.compile_ptx(source, argtypes, cc=cc)
        result.append((name, size, argtypes, ptx))
    return result
