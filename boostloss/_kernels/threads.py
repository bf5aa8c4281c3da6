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
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator
from typing import Final, Literal

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
