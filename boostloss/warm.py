"""Compile the kernels of a training before it starts: :func:`warm_up`.

The numba kernels are compiled at their first call on a machine (then loaded from numba's on-disk
cache, seconds less). A Dask or Spark worker with an empty cache pays that compilation inside its
first boosting round; ``client.run(boostloss.warm_up, loss)`` pays it before (docs/scaling-out.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from ._frameworks.adapters import _Entry, gradient_hessian, mean_loss, start_of
from ._kernels.cache import kernels
from ._kernels.threads import AUTO
from ._typing import LossLike
from .losses import FocalLoss, _Loss, check_target, make_loss
from .losses._validation import WIDEN_UPTO, compile_finiteness_check

__all__ = ["warm_up"]

#: Rows of the warm-up's data: a few, enough for every class and for OHEM's kept negatives.
_ROWS = 24

#: The margins each framework hands over, as ``(dtype, order of K-class margins)``: XGBoost float32
#: (K classes: an (n, K) C-ordered array), LightGBM float64 (K classes: F-ordered). The adapters
#: write the gradients into float32 buffers of the margins' layout and the metric into float64;
#: both frameworks predict C-ordered margins of their dtype.
_LAYOUTS = {"xgboost": (np.float32, "C"), "lightgbm": (np.float64, "F")}
FRAMEWORKS = tuple(_LAYOUTS)


def _check_frameworks(frameworks: object) -> tuple[str, ...]:
    names = (frameworks,) if isinstance(frameworks, str) else frameworks
    allowed = ", ".join(repr(f) for f in FRAMEWORKS)
    if not isinstance(names, Iterable):
        raise TypeError(
            f"frameworks must be a framework's name ({allowed}) or a sequence of them, got "
            f"{frameworks!r} of type {type(frameworks).__name__}"
        )
    chosen = tuple(names)
    bad = [f for f in chosen if not isinstance(f, str) or f not in FRAMEWORKS]
    if bad or not chosen:
        raise ValueError(
            f"frameworks must name one or more of {allowed}, got {frameworks!r}"
            + (f" ({bad[0]!r} is not one)" if bad else " (none)")
        )
    return tuple(dict.fromkeys(chosen))


def _check_n_classes(n_classes: object) -> int | None:
    if n_classes is None:
        return None
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)):
        raise TypeError(
            f"n_classes must be None (a binary model) or an integer >= 3, got {n_classes!r} of "
            f"type {type(n_classes).__name__}"
        )
    if n_classes < 3:
        raise ValueError(
            f"n_classes must be None (a binary model: two classes, one margin per row) or an "
            f"integer >= 3 (K-class softmax margins), got {n_classes!r}"
        )
    return int(n_classes)


def _margins(
    n_classes: int | None, dtype: Any, order: Any, rows: int = _ROWS
) -> np.ndarray[Any, Any]:
    spread = np.linspace(-3.0, 3.0, rows)
    if n_classes is None:
        return spread.astype(dtype)
    columns = [np.roll(spread, 5 * k) for k in range(n_classes)]
    return np.array(np.column_stack(columns), dtype=dtype, order=order)


def _softmax_numpy_limit() -> int:
    """Rows up to which a K-class model's focal gradients are numpy's (no kernel compiled)."""
    return int(kernels("softmax").NUMPY_FOCAL_UPTO)


def _compile_for_rows(
    loss: _Loss, n_rows: int | None, n_classes: int | None, frameworks: tuple[str, ...]
) -> None:
    """The kernels that a training of ``n_rows`` rows (None: any number) reaches and a few rows do
    not: below a size numpy does some of the work (nothing to compile for a small training), so a
    warm-up on a few rows would leave them to the first large round. The margins' finiteness check
    (per margin dtype), the loss's own (GHM-C's bin histogram, OHEM's radix select), the binary
    kernels of float32 margins (widened to float64 up to a few thousand), the K-class focal
    gradient kernels (numpy's up to a few hundred rows) and the focal posterior map's kernel
    (predictions on as many rows)."""
    margins = None if n_rows is None else n_rows * (n_classes or 1)
    for framework in frameworks:
        compile_finiteness_check(_LAYOUTS[framework][0], margins)
    loss._compile_for_samples(n_rows)
    # Rounds just above the sizes up to which numpy does the work: a binary model's float32
    # margins (widened to float64 below), a K-class model's focal gradients.
    limit = WIDEN_UPTO if n_classes is None else _softmax_numpy_limit()
    if n_rows is None or n_rows > limit:
        n = limit + 1
        target = check_target((np.arange(n) % (n_classes or 2)).astype(np.float64))
        evaluation, _ = loss.evaluation_loss()
        for framework in frameworks:
            dtype, order = _LAYOUTS[framework]
            if n_classes is None and dtype != np.float32:
                continue
            x = _margins(n_classes, dtype, order, rows=n)
            gradient_hessian(loss, _Entry(loss, target), x, AUTO)
            for metric in {id(loss): loss, id(evaluation): evaluation}.values():
                mean_loss(metric, _Entry(metric, target), x, AUTO)
    gamma, _ = loss._posterior_map(n_classes or 2)
    if gamma > 0.0:  # the focal map's kernel, for predictions on as many rows
        kernels("posterior").compile_posterior(n_classes or 2, n_rows)


def _train_like(
    loss: _Loss, y: np.ndarray[Any, Any], n_classes: int | None, frameworks: tuple[str, ...]
) -> None:
    """What a training with ``loss`` calls, on a few rows: the start, then in each framework's
    layout a round, the metric and the probabilities of its predictions; then what only larger
    trainings reach (:func:`_compile_for_rows`)."""
    target = check_target(y)
    start_of(loss, target, n_classes)
    evaluation, _ = loss.evaluation_loss()
    for framework in frameworks:
        dtype, order = _LAYOUTS[framework]
        x = _margins(n_classes, dtype, order)
        # The adapters' own round and metric (a clone of the loss, a training's state and
        # buffers), so the kernels compiled are those of the adapters' arguments.
        gradient_hessian(loss, _Entry(loss, target), x, AUTO)
        for metric in {id(loss): loss, id(evaluation): evaluation}.values():
            mean_loss(metric, _Entry(metric, target), x, AUTO)
        loss.predict_proba(_margins(n_classes, dtype, "C"))
    _compile_for_rows(loss, None, n_classes, frameworks)


def warm_up(
    *losses: LossLike,
    n_classes: int | None = None,
    frameworks: str | Iterable[str] = FRAMEWORKS,
) -> float:
    """Compile (or load from numba's cache) the kernels a training with these losses needs.

    A numba kernel is compiled at its first call on a machine, for the types it is called with,
    and kept in numba's on-disk cache (one per machine, see ``NUMBA_CACHE_DIR``) for the next
    processes. Call this before a training whose first round must not wait for the compilation:
    on every Dask worker (``client.run(boostloss.warm_up, loss)``), on every Spark executor, or in
    a service's start-up. It calls the losses' methods on a few rows the way the XGBoost and
    LightGBM adapters and the estimators do: the start (``init_score``), a round of gradients
    (margins float32 for XGBoost, float64 for LightGBM, gradients into float32 buffers), the
    metric (the loss, and the one of ``loss.evaluation_loss()``) and ``predict_proba`` of the
    margins each framework predicts; then the kernels that only large inputs reach (below a few
    hundred to a few thousand rows numpy does their work: the margins' finiteness check, GHM-C's
    bin histogram and window density, OHEM's radix select, float32 binary margins, the K-class
    focal gradients, the posterior map). With the kernels in the process, small inputs use them
    too (numpy's twins run only while a kernel is not compiled).

    Parameters
    ----------
    *losses : FocalLoss, GHMLoss, OHEMLoss or a registered name (``"focal:gamma=2"``)
        The losses of the coming trainings (the kernels depend on the loss and on its parameters:
        a focal loss's gamma 2, 1, 0 and any other gamma each have their own). Default: one
        ``FocalLoss()``.
    n_classes : int >= 3 or None, default=None
        None: binary models (one margin per row). K: K-class softmax models (``num_class=K``);
        call once more with None to warm both.
    frameworks : "xgboost", "lightgbm" or a sequence of them, default=both
        The frameworks whose margin types to compile for (XGBoost float32, LightGBM float64:
        each its own machine code). Naming only the one that trains halves the time.

    Returns
    -------
    float
        The seconds spent (a few on a cold cache, well under one when the kernels are cached or
        already loaded in this process).

    Raises
    ------
    TypeError
        A loss that is neither a loss object nor a string; ``n_classes`` not an integer;
        ``frameworks`` neither a string nor a sequence.
    ValueError
        An unknown loss name or bad loss parameters (as the training would raise them, e.g. a
        binary float ``alpha`` with ``n_classes``); ``n_classes`` below 3; an unknown framework.

    Examples
    --------
    >>> import boostloss
    >>> seconds = boostloss.warm_up("focal:gamma=2", "ghm:bins=10")  # doctest: +SKIP
    >>> client.run(boostloss.warm_up, boostloss.FocalLoss(), frameworks="xgboost")  # doctest: +SKIP
    """
    started = time.perf_counter()
    k = _check_n_classes(n_classes)
    chosen_frameworks = _check_frameworks(frameworks)
    chosen = [make_loss(loss) for loss in losses] if losses else [FocalLoss()]
    for loss in chosen:
        loss.resolved_params()  # bad parameters fail before any compilation
    classes = 2 if k is None else k
    y = (np.arange(_ROWS) % classes).astype(np.float64)
    for loss in chosen:
        _train_like(loss.__sklearn_clone__(), y, k, chosen_frameworks)
    return time.perf_counter() - started
