"""What the XGBoost and LightGBM adapters share: loss checking, per-training caches, margins.

Kept free of both frameworks, so each adapter module imports only its own. The adapters are glue:
they unpack labels, weights and margins from the framework, call the loss's public methods
(``gradient_hessian`` / ``loss`` with a :class:`~boostloss.losses.Target`, the training's state,
reused output buffers and ``n_threads``) and hand the result back.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import clone

from .._kernels.threads import AUTO, check_adapter_threads, round_threads
from .._typing import AdapterThreads, Float32Array, Float64Array, LossLike
from ..losses import Target, _Loss, check_target, make_loss

if TYPE_CHECKING:
    from typing_extensions import Self


#: The factories that every adapter module (``boostloss.xgboost``, ``boostloss.lightgbm``) offers.
FACTORIES = ("objective", "metric", "sklearn_objective", "sklearn_metric")


def fresh_loss(loss: LossLike) -> _Loss:
    """A clone of ``loss`` (a loss object or a registered name, see ``make_loss``)."""
    return clone(make_loss(loss))


@overload
def start_of(loss: LossLike, target: Target, n_classes: None = None) -> float: ...
@overload
def start_of(loss: LossLike, target: Target, n_classes: int) -> Float64Array: ...
@overload
def start_of(loss: LossLike, target: Target, n_classes: int | None) -> float | Float64Array: ...
def start_of(loss: LossLike, target: Target, n_classes: int | None = None) -> float | Float64Array:
    """The constant start of a training: ``loss.init_score`` of a fresh clone, a float for a binary
    model or the K margins (float64 array) with ``n_classes``."""
    if n_classes is None:
        return float(fresh_loss(loss).init_score(target))
    return fresh_loss(loss).init_score(target, n_classes=n_classes)


def start_rows(start: float | ArrayLike, n_rows: int, dtype: Any) -> NDArray[Any]:
    """The start of every row: shape (n_rows,) for a float, (n_rows, K) for K margins."""
    if np.ndim(start) == 0:
        return np.full(n_rows, start, dtype=dtype)
    return np.tile(np.asarray(start, dtype=dtype), (n_rows, 1))


def margins_of(predt: ArrayLike, n: int) -> NDArray[Any]:
    """The margins handed over by a framework: 1-D for a binary model (XGBoost may pass shape
    (n, 1)), (n, K) for a K-class model (kept in the framework's layout, C or F order)."""
    x = np.asarray(predt)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim not in (1, 2):
        raise ValueError(
            f"expected one raw margin per sample (a binary model) or one per class (shape (n, K)), "
            f"got predictions of shape {x.shape}"
        )
    if x.shape[0] != n:
        raise ValueError(f"got {x.shape[0]} rows of margins for a training set of {n} rows")
    return x


def margins_1d(predt: ArrayLike, n: int) -> NDArray[Any]:
    """The margins of a binary model as a 1-D array (XGBoost may pass shape (n, 1))."""
    x = margins_of(predt, n)
    if x.ndim != 1:
        raise ValueError(
            "expected one raw margin per sample (a binary model), got predictions of shape "
            f"{x.shape}"
        )
    return x


class _Entry:
    """What one training set needs across rounds: validated labels/weights, state, buffers."""

    __slots__ = ("target", "state", "scratch", "grad", "hess", "loss_out")

    def __init__(self, loss: _Loss, target: Target) -> None:
        n = target.n_samples
        self.target = target
        self.state: Any = loss.new_state()
        self.scratch: dict[str, Any] = {}
        self.grad = np.empty(n, dtype=np.float32)
        self.hess = np.empty(n, dtype=np.float32)
        self.loss_out = np.empty(n, dtype=np.float64)

    @property
    def n_samples(self) -> int:
        return self.target.n_samples

    def buffers(self, x: NDArray[Any]) -> tuple[Float32Array, Float32Array]:
        """float32 gradient and Hessian buffers shaped like the margins ``x`` (and in their
        layout, so that a framework reading F order gets them without a copy), reused."""
        order: Literal["C", "F"] = (
            "F" if x.ndim == 2 and x.flags.f_contiguous and not x.flags.c_contiguous else "C"
        )
        grad = self.grad
        if grad.shape != x.shape or (x.ndim == 2 and not grad.flags[order + "_CONTIGUOUS"]):  # type: ignore[index]
            self.grad = np.empty(x.shape, dtype=np.float32, order=order)
            self.hess = np.empty(x.shape, dtype=np.float32, order=order)
        return self.grad, self.hess


class _PerDataset:
    """A small cache keyed by the identity of a live DMatrix / Dataset (weak references)."""

    def __init__(self) -> None:
        self._entries: list[tuple[weakref.ref[Any], _Entry]] = []

    def get(self, data: object) -> _Entry | None:
        alive = []
        found = None
        for ref, entry in self._entries:
            obj = ref()
            if obj is None:
                continue
            alive.append((ref, entry))
            if obj is data:
                found = entry
        self._entries = alive
        return found

    def put(self, data: object, entry: _Entry) -> _Entry:
        self._entries.append((weakref.ref(data), entry))
        return entry

    def clear(self) -> None:
        self._entries = []


def loss_sums(
    loss: _Loss,
    entry: _Entry,
    predt: ArrayLike,
    n_threads: AdapterThreads,
    state: object | None = None,
) -> tuple[float, float]:
    """``(sum(w_i l_i), sum(w_i))`` of these margins: a mean's numerator and denominator.

    ``state`` is the entry's loss state when a distributed training sums GHM's counts over workers.
    """
    x = margins_of(predt, entry.n_samples)
    loss.loss(
        entry.target,
        x,
        loss_out=entry.loss_out,
        n_threads=round_threads(n_threads, x.ndim),
        state=state,
    )
    w = entry.target.sample_weight
    total_weight = float(w.sum()) if w.shape[0] else float(entry.n_samples)
    return float(entry.loss_out.sum()), total_weight


def mean_loss(loss: _Loss, entry: _Entry, predt: ArrayLike, n_threads: AdapterThreads) -> float:
    """The weighted mean loss ``sum(w_i l_i) / sum(w_i)`` of these margins (NaN without weight)."""
    total, total_weight = loss_sums(loss, entry, predt, n_threads)
    if total_weight <= 0.0:
        return float("nan")
    return float(total / total_weight)


def gradient_hessian(
    loss: _Loss,
    entry: _Entry,
    predt: ArrayLike,
    n_threads: AdapterThreads,
    multiclass_hessian_factor: Callable[[int], float] | None = None,
) -> tuple[Float32Array, Float32Array]:
    """One boosting round on the host: float32 gradient and Hessian in the entry's buffers.

    With K-class margins the Hessian is multiplied by ``multiclass_hessian_factor(K)``, the
    framework's own scale of the softmax Hessian (see the adapters), for every loss alike.
    """
    x = margins_of(predt, entry.n_samples)
    grad, hess = entry.buffers(x)
    loss.gradient_hessian(
        entry.target,
        x,
        gradient_out=grad,
        hessian_out=hess,
        n_threads=round_threads(n_threads, x.ndim),
        state=entry.state,
    )
    if x.ndim == 2 and multiclass_hessian_factor is not None:
        factor = multiclass_hessian_factor(x.shape[1])
        if factor != 1.0:
            np.multiply(hess, np.float32(factor), out=hess)
    return grad, hess


class _ArrayCache:
    """Validated labels/weights of the scikit-learn callables, reused while the raw arrays repeat.

    XGBoost's scikit-learn wrapper hands over fresh copies of the same labels every round; comparing
    them with the previous raw copy is one vectorised pass and avoids revalidating and converting.
    """

    def __init__(self) -> None:
        self.raw_y: Any = None
        self.raw_w: Any = None
        self.entry: _Entry | None = None

    def get(self, loss: _Loss, y_true: ArrayLike, sample_weight: ArrayLike | None) -> _Entry:
        raw_y = np.asarray(y_true)
        raw_w = None if sample_weight is None else np.asarray(sample_weight)
        if raw_w is not None and raw_w.size == 0:
            raw_w = None
        e = self.entry
        if (
            e is not None
            and raw_y.shape == self.raw_y.shape
            and np.array_equal(raw_y, self.raw_y)
            and (
                (raw_w is None and self.raw_w is None)
                or (
                    raw_w is not None
                    and self.raw_w is not None
                    and raw_w.shape == self.raw_w.shape
                    and np.array_equal(raw_w, self.raw_w)
                )
            )
        ):
            return e
        target = check_target(raw_y, raw_w)
        self.raw_y = raw_y.copy()
        self.raw_w = None if raw_w is None else raw_w.copy()
        self.entry = _Entry(loss, target)
        return self.entry


class LossCallable:
    """What every adapter callable shares: a clone of the loss, a metric name, a per-training cache.

    ``n_threads`` is the loss kernels' thread count (default ``"auto"``: one thread for a binary
    model, the default policy for K classes; see ``boostloss._kernels.threads``).

    ``_new_cache`` makes the cache (:class:`_PerDataset` or :class:`_ArrayCache`); ``_display`` is
    how ``repr`` names the factory that made the callable.
    """

    _new_cache: type[Any] = _ArrayCache
    _display = "boostloss"

    def __init__(
        self, loss: LossLike, name: str | None = None, *, n_threads: AdapterThreads = AUTO
    ) -> None:
        self.loss = fresh_loss(loss)
        self.loss.resolved_params()  # bad parameters fail here, not in the first round
        self.__name__ = self.loss.name if name is None else str(name)
        self.n_threads = check_adapter_threads(n_threads)
        self._cache = type(self)._new_cache()

    def reset(self) -> Self:
        """Forget cached labels, weights and GHM running counts: start a new training."""
        self._cache = type(self)._new_cache()
        return self

    def __repr__(self) -> str:
        return f"{self._display}({self.loss!r})"


class PerDatasetCallable(LossCallable):
    """An ``xgb.train`` / ``lgb.train`` callable: labels and weights read from the DMatrix / Dataset
    (``_read``), once, and cached per training set; the cache is not pickled."""

    _new_cache = _PerDataset

    @staticmethod
    def _read(data: Any, /) -> Target:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _entry(self, data: Any) -> _Entry:
        entry = self._cache.get(data)
        if entry is None:
            entry = self._cache.put(data, _Entry(self.loss, self._read(data)))
        return entry

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = _PerDataset()
        return state
