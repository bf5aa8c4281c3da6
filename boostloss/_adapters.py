"""What the XGBoost and LightGBM adapters share: loss checking, per-training caches, margins.

Kept free of both frameworks, so each adapter module imports only its own.
"""

import weakref

import numpy as np
from sklearn.base import clone

from . import _validation as v
from .losses import GHMState


def _check_loss(loss):
    if not (hasattr(loss, "_grad_hess_unchecked") and hasattr(loss, "_params")):
        raise TypeError(
            f"loss must be a boostloss loss (FocalLoss or GHMLoss), got {loss!r} of type "
            f"{type(loss).__name__}"
        )
    fresh = clone(loss)
    return fresh, fresh._params()


def _margins_1d(predt, n):
    """The float32/float64 margins of a binary model as a contiguous 1-D view, checked finite."""
    x = np.asarray(predt)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 1:
        raise ValueError(
            f"expected one raw margin per sample (a binary model), got predictions of shape {x.shape}; "
            "boostloss losses are binary: multi-class and multi-target models are not supported"
        )
    if x.dtype != np.float32 and x.dtype != np.float64:
        x = x.astype(np.float64)
    x = np.ascontiguousarray(x)
    if x.shape[0] != n:
        raise ValueError(f"got {x.shape[0]} margins for a training set of {n} rows")
    v.check_finite_margins(x)
    return x


class _Entry:
    """What one training set needs across rounds: validated labels/weights, state, buffers."""

    __slots__ = ("y", "w", "state", "scratch", "grad", "hess", "loss_out")

    def __init__(self, y, w):
        self.y = y
        self.w = w
        self.state = GHMState()
        self.scratch = {}
        self.grad = np.empty(y.shape[0], dtype=np.float32)
        self.hess = np.empty(y.shape[0], dtype=np.float32)
        self.loss_out = None


class _PerDataset:
    """A small cache keyed by the identity of a live DMatrix / Dataset (weak references)."""

    def __init__(self):
        self._entries = []

    def get(self, data):
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

    def put(self, data, entry):
        self._entries.append((weakref.ref(data), entry))
        return entry

    def clear(self):
        self._entries = []


def _mean_loss(loss, params, entry, x):
    n = entry.y.shape[0]
    if entry.loss_out is None:
        entry.loss_out = np.empty(n, dtype=np.float64)
    loss._loss_unchecked(params, entry.y, x, entry.w, entry.loss_out)
    total_weight = float(entry.w.sum()) if entry.w.shape[0] else float(n)
    if total_weight <= 0.0:
        return float("nan")
    return float(entry.loss_out.sum() / total_weight)


class _ArrayCache:
    """Validated labels/weights of the scikit-learn callables, reused while the raw arrays repeat.

    XGBoost's scikit-learn wrapper hands over fresh copies of the same labels every round; comparing
    them with the previous raw copy is one vectorised pass and avoids revalidating and converting.
    """

    def __init__(self):
        self.raw_y = None
        self.raw_w = None
        self.entry = None

    def get(self, y_true, sample_weight):
        raw_y = np.asarray(y_true)
        raw_w = None if sample_weight is None else np.asarray(sample_weight)
        if raw_w is not None and raw_w.size == 0:
            raw_w = None
        e = self.entry
        if (e is not None and raw_y.shape == self.raw_y.shape and np.array_equal(raw_y, self.raw_y)
                and ((raw_w is None and self.raw_w is None)
                     or (raw_w is not None and self.raw_w is not None
                         and raw_w.shape == self.raw_w.shape and np.array_equal(raw_w, self.raw_w)))):
            return e
        y = v.check_labels(raw_y)
        w = v.check_weights(raw_w, y.shape[0])
        self.raw_y = raw_y.copy()
        self.raw_w = None if raw_w is None else raw_w.copy()
        self.entry = _Entry(y, w)
        return self.entry


class LossCallable:
    """What every adapter callable shares: a clone of the loss, a metric name, a per-training cache.

    ``_new_cache`` makes the cache (:class:`_PerDataset` or :class:`_ArrayCache`); ``_display`` is
    how ``repr`` names the factory that made the callable.
    """

    _new_cache = _ArrayCache
    _display = "boostloss"

    def __init__(self, loss, name=None):
        self.loss, self._params = _check_loss(loss)
        self.__name__ = self.loss.name if name is None else str(name)
        self._cache = type(self)._new_cache()

    def reset(self):
        """Forget cached labels, weights and GHM running counts: start a new training."""
        self._cache = type(self)._new_cache()
        return self

    def __repr__(self):
        return f"{self._display}({self.loss!r})"


class PerDatasetCallable(LossCallable):
    """An ``xgb.train`` / ``lgb.train`` callable: labels and weights read from the DMatrix / Dataset
    (``_read``), once, and cached per training set; the cache is not pickled."""

    _new_cache = _PerDataset

    @staticmethod
    def _read(data):  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def _entry(self, data):
        entry = self._cache.get(data)
        if entry is None:
            entry = self._cache.put(data, _Entry(*self._read(data)))
        return entry

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = _PerDataset()
        return state
