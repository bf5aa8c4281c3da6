"""How many numba threads the loss kernels use: one policy, applied in one place.

Every public method of a loss takes ``n_threads``:

- ``None`` (the default): one thread below :data:`PARALLEL_MIN_ROWS` rows, where waking numba's
  thread pool costs more than it saves (tens of microseconds idle, milliseconds on a busy machine),
  and numba's current thread count (``numba.get_num_threads()``) above.
- an integer ``k >= 1``: at most ``k`` threads (and never more than numba started with).

The XGBoost and LightGBM adapters take ``n_threads="auto"`` unless told otherwise
(:func:`round_threads`): one thread for a binary model's margins (one per sample), since between
rounds the frameworks keep their OpenMP workers spinning and a second numba thread competing with
them made rounds slower; the default policy above for a K-class model's n x K margins, whose pass
is K times longer (docs/performance.md has the timings). Results never depend on the thread
count: the kernels' reductions run over fixed-size chunks summed in a fixed order.

The count is numba's (``numba.set_num_threads``, thread-local); the binary and K-class kernels
are serial numba loops that release the GIL, run on that many row ranges by :func:`run_rows` /
:func:`run_spans` (OHEM's selection passes: on ranges of its fixed-size chunks).
"""

from __future__ import annotations

import contextlib
import numbers
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Literal

#: Below this many rows the kernels run on the calling thread only.
PARALLEL_MIN_ROWS = 1 << 15


def check_n_threads(n_threads: object) -> int | None:
    """``n_threads`` as given, after checking it is None or a positive integer."""
    if n_threads is None:
        return None
    if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(
            f"n_threads must be None or a positive integer, got {n_threads!r} of type "
            f"{type(n_threads).__name__}"
        )
    if n_threads < 1:
        raise ValueError(f"n_threads must be None or >= 1, got {n_threads!r}")
    return int(n_threads)


#: The adapters' default ``n_threads`` (see :func:`round_threads`).
AUTO: Final = "auto"


def check_adapter_threads(n_threads: object) -> int | Literal["auto"] | None:
    """An adapter's ``n_threads``: ``"auto"``, None or a positive integer."""
    if isinstance(n_threads, str):
        if n_threads == AUTO:
            return AUTO
        raise TypeError(f'n_threads must be "auto", None or a positive integer, got {n_threads!r}')
    return check_n_threads(n_threads)


def round_threads(n_threads: int | Literal["auto"] | None, ndim: int) -> int | None:
    """The ``n_threads`` of one framework round on margins of ``ndim`` dimensions: ``"auto"`` is 1
    for a binary model (ndim 1) and None (the default policy) for a K-class model (ndim 2)."""
    if n_threads == AUTO:
        return 1 if ndim == 1 else None
    return n_threads


@contextlib.contextmanager
def kernel_threads(n_rows: int, n_threads: int | None = None) -> Iterator[None]:
    """Run the kernels of this block on the number of threads the policy above gives.

    ``numba.set_num_threads`` is local to the calling thread, so concurrent trainings in other
    threads are not affected.
    """
    import numba

    current = numba.get_num_threads()
    if n_threads is None:
        wanted = 1 if n_rows < PARALLEL_MIN_ROWS else current
    else:
        wanted = min(n_threads, numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
    if wanted == current:
        yield
        return
    numba.set_num_threads(wanted)
    try:
        yield
    finally:
        numba.set_num_threads(current)


# --------------------------------------------------------------------------------------------
# Row kernels on threads: a serial numba loop per range of rows
#
# A ``parallel=True`` kernel costs numba's parfor passes and a second compilation of its body
# (the gufunc) on every cold start; for a loop whose rows are independent, the same SIMD code
# compiled serially (``nogil``) and run on contiguous row ranges from a small thread pool gives the
# same numbers at the same speed for half the compile time (docs/performance.md).
# --------------------------------------------------------------------------------------------


def row_kernel(function: Callable[..., Any]) -> Any:
    """``function`` compiled as a row kernel (run by :func:`run_rows` or :func:`run_spans`): it
    releases the GIL; numpy's error model, as numba's parallel loops use (a division by zero gives
    inf, no check); and no reference counting (``_nrt``: a row kernel allocates nothing, and the
    counts numba adds when an array is handed to an inlined helper are atomic calls inside the
    loop, which keep it from compiling to SIMD code: 10x slower)."""
    from numba import njit

    options = {"cache": True, "nogil": True, "error_model": "numpy", "_nrt": False}
    return njit(**options)(function)  # type: ignore[call-overload]


def sweep_kernel(function: Callable[..., Any]) -> Any:
    """``function`` compiled as a K-class kernel (run by :func:`run_spans`, on row ranges): it
    releases the GIL, numpy's error model (no check of divisors); it allocates its scratch."""
    from numba import njit

    return njit(cache=True, nogil=True, error_model="numpy")(function)


#: Rows of a thread's range are a multiple of this (no two threads write one cache line).
_ALIGN = 64

_pool: ThreadPoolExecutor | None = None
_pool_key = (-1, 0)  # (process id, workers) of _pool
_pool_lock = threading.Lock()


def _executor(workers: int) -> ThreadPoolExecutor:
    """The package's thread pool (rebuilt in a forked child, whose copy has no threads)."""
    global _pool, _pool_key
    with _pool_lock:
        if _pool is None or _pool_key[0] != os.getpid() or _pool_key[1] < workers:
            if _pool is not None and _pool_key[0] == os.getpid():
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="boostloss")
            _pool_key = (os.getpid(), workers)
        return _pool


def _over_ranges(n: int, align: int, call: Callable[[int, int], Any]) -> Any:
    """``call(start, stop)`` on one range of the ``n`` rows per thread of numba's current thread
    count (see :func:`kernel_threads`), ``start`` a multiple of ``align``; the first range runs on
    the calling thread. Integer results (counts) are summed; otherwise returns None."""
    import numba

    threads = min(numba.get_num_threads(), -(-n // align))
    if threads <= 1:
        return call(0, n)
    step = -(-n // threads)
    step += -step % align
    pool = _executor(threads - 1)
    futures = [pool.submit(call, lo, min(n, lo + step)) for lo in range(step, n, step)]
    results = [call(0, min(n, step))] + [f.result() for f in futures]
    return sum(results) if results[0] is not None else None


def run_rows(
    kernel: Callable[..., Any], args: Sequence[Any], rows: Sequence[int], align: int = _ALIGN
) -> Any:
    """``kernel(*args)`` with the arrays at positions ``rows`` split into row ranges (see
    :func:`_over_ranges`); ``args[rows[0]]`` gives the number of rows, and an empty array among
    ``rows`` (no sample weights) is passed whole."""
    n = args[rows[0]].shape[0]

    def call(start: int, stop: int) -> Any:
        if stop - start == n:
            return kernel(*args)
        part = list(args)
        for r in rows:
            if args[r].shape[0]:
                part[r] = args[r][start:stop]
        return kernel(*part)

    return _over_ranges(n, align, call)


def run_spans(
    kernel: Callable[..., Any],
    args: Sequence[Any],
    n: int,
    align: int,
    scratch: Callable[[], tuple[Any, ...]] | None = None,
) -> Any:
    """``kernel(*args, start, stop)`` over row ranges ``[start, stop)`` of ``n`` rows (see
    :func:`_over_ranges`), for kernels that keep whole arrays, e.g. an F-ordered (n, K) one, whose
    row slices would be a third layout to compile.

    ``scratch``, when given, makes each range's work arrays, a tuple handed to the kernel as one
    argument: ``kernel(*args, scratch(), start, stop)``. Allocated here rather than in the kernel:
    every ``np.empty`` in numba code is typed and lowered like a function of its own, 0.1 to 0.25 s
    of a cold compilation each (docs/performance.md), against microseconds here."""
    if scratch is None:
        return _over_ranges(n, align, lambda start, stop: kernel(*args, start, stop))
    make = scratch
    return _over_ranges(n, align, lambda start, stop: kernel(*args, make(), start, stop))


def numpy_twin(n: int, limit: int, kernel: Any) -> bool:
    """Whether a call on ``n`` rows runs numpy's twin of ``kernel`` (the same bits) rather than
    the kernel: at most ``limit`` rows, and the kernel not yet compiled or loaded in this process.

    A twin spares a small first training or prediction the kernel's compilation (seconds on a cold
    cache), but costs a few hundred numpy calls per call (0.1 to 1 ms, docs/performance.md); once
    the kernel is in the process (a larger input, or :func:`boostloss.warm_up`) it is the faster
    of the two at every size.
    """
    return n <= limit and not kernel.signatures


def _named(call: Callable[..., Any], kernel: Callable[..., Any]) -> Callable[..., Any]:
    call.__name__ = call.__qualname__ = kernel.__name__.lstrip("_")
    call.__doc__ = kernel.__doc__
    return call


def spans_of(kernel: Callable[..., Any], align: int, rows: int = 1) -> Callable[..., Any]:
    """``kernel`` run by :func:`run_spans` on the rows of its argument at position ``rows``."""
    return _named(lambda *args: run_spans(kernel, args, args[rows].shape[0], align), kernel)


def rows_of(kernel: Callable[..., Any], *rows: int) -> Callable[..., Any]:
    """``kernel`` run by :func:`run_rows`, the arrays at positions ``rows`` split by rows."""
    return _named(lambda *args: run_rows(kernel, args, rows), kernel)
