"""The collective step of a training spread over workers (``xgboost.dask``, ``xgboost.spark``).

Inside such a training, XGBoost runs ``xgboost.train`` once per worker on that worker's rows, in a
communicator (``xgboost.collective``) that every worker has joined. The boostloss objectives and
metrics stay the same per-worker callables; what must be global is summed over the workers here:

- GHM-C's bin counts and total weight, every round (``GHMState.group``, bins + 1 numbers);
- OHEM's selection, every round (``OHEMState.group``): the class counts and weights, the range of
  the candidates' ranking keys and each radix level's bucket counts (and weights), so that the
  kept negatives are those of one ranking of all rows (``_kernels_select``, "Over several
  workers");
- a metric's weighted loss sum and weight sum (2 numbers), so it is the global weighted mean;
- whether any worker failed (1 number) before each of these steps.

A collective call blocks until every worker makes it. A worker that raised (bad labels on its
partition only, say) and left the training would leave the others waiting in their next call, so
each step first runs the work that may fail on every worker, then agrees on whether one of them
failed; if one did, its exception is sent to all of them and every worker raises it. Every worker
makes the same sequence of calls whatever its data, an empty partition included.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._typing import T

__all__ = ["WorkerGroup", "current_group"]


def current_group() -> WorkerGroup | None:
    """The :class:`WorkerGroup` of the XGBoost training this process is in, or None.

    None when xgboost was never imported here or no communicator is active (one process).
    """
    collective = sys.modules.get("xgboost.collective")
    if collective is None or not collective.is_distributed():
        return None
    return WorkerGroup(collective)


class WorkerGroup:
    """The workers of one distributed XGBoost training, seen from one of them."""

    __slots__ = ("_collective",)

    def __init__(self, collective: Any) -> None:
        self._collective = collective

    @property
    def rank(self) -> int:
        return int(self._collective.get_rank())

    @property
    def world_size(self) -> int:
        return int(self._collective.get_world_size())

    def sum(self, values: ArrayLike) -> NDArray[np.float64]:
        """Element-wise sum over the workers of a float64 array (every worker passes one)."""
        values = np.ascontiguousarray(values, dtype=np.float64)
        return self._collective.allreduce(values, self._collective.Op.SUM)

    def span(self, low: int, high: int) -> tuple[np.int64, np.int64]:
        """``(min of low, max of high)`` over the workers, int64 (one reduction)."""
        # ~high reverses the order without overflow, so one MIN gives both.
        pair = np.array([low, ~np.int64(high)], dtype=np.int64)
        out = self._collective.allreduce(pair, self._collective.Op.MIN)
        return np.int64(out[0]), ~np.int64(out[1])

    def before(self, values: ArrayLike) -> NDArray[np.float64]:
        """The element-wise sum of ``values`` over the workers of lower rank (one reduction)."""
        values = np.asarray(values, dtype=np.float64)
        table = np.zeros((self.world_size, values.shape[0]))
        table[self.rank] = values
        return self.sum(table.ravel()).reshape(table.shape)[: self.rank].sum(axis=0)

    def run(self, work: Callable[[], T]) -> T:
        """``work()`` on every worker; if it raised on any worker, raise that error on all of them.

        Costs one reduction of one number (two more calls when something failed).
        """
        try:
            result, failure = work(), None
        except Exception as exc:  # noqa: BLE001 - re-raised below, on every worker
            result, failure = None, exc
        self.raise_any(failure)
        return result  # type: ignore[return-value]  # work() returned: raise_any did not raise

    def raise_any(self, failure: BaseException | None) -> None:
        """Agree on whether a worker failed; if one did, every worker raises its exception."""
        collective = self._collective
        rank = self.rank
        flag = np.array([0 if failure is None else rank + 1], dtype=np.int64)
        root = int(collective.allreduce(flag, collective.Op.MAX)[0]) - 1
        if root < 0:
            return
        payload = _portable(failure) if rank == root else None  # type: ignore[arg-type]
        received = collective.broadcast(payload, root)
        if rank == root:
            raise failure  # type: ignore[misc]  # the root is a worker that failed
        raise _with_note(received, f"raised on worker {root} of the distributed training")


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a RuntimeError with its type and message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any unpicklable exception is replaced
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _with_note(exc: BaseException, note: str) -> BaseException:
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    return exc
