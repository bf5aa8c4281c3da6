"""GHM-C: :class:`GHMLoss`, its resolved :class:`GHMParams` and per-training :class:`GHMState`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from .._kernels.cache import kernels
from .._kernels.constants import standard_edges
from .._kernels.threads import check_n_threads, kernel_threads
from .._typing import Float64Array, LabelsLike, T
from . import _validation as v
from ._multiclass import softmax_focal_best_constant

if TYPE_CHECKING:
    pass
from ._base import _Loss
from .focal import FocalLoss

_DENSITIES = ("bins", "window")


@dataclasses.dataclass(frozen=True)
class GHMParams:
    """Resolved parameters of a :class:`GHMLoss`."""

    bins: int
    momentum: float
    density: str
    epsilon: float

    @property
    def edges(self) -> Float64Array:
        """Bin edges ``b / bins``, the last one raised by 1e-6 (the paper's code; read-only)."""
        return standard_edges(self.bins)


class GHMState:
    """What one GHM training owns across rounds: the running bin counts and reusable work arrays.

    Made by :meth:`GHMLoss.new_state`; pass it to every :meth:`GHMLoss.gradient_hessian` call of
    that training. ``running_counts`` is None before the first round with ``momentum > 0``.

    ``group`` is None, or, in a training spread over several workers, the workers (an object whose
    ``sum`` takes a float64 array and returns its element-wise sum over all workers; every worker
    calls it at the same point with an array of the same length; OHEM's state takes the same
    ``group``). The binned density then counts the samples of every worker: each round's ``bins``
    counts and total weight are summed with ``group.sum`` right after they are counted, so the
    weights, and the running average of ``momentum``, are the same on every worker and equal to
    those of one process holding all the data. The adapters of :mod:`boostloss.xgboost` set it
    inside an XGBoost collective (``xgboost.dask``, ``xgboost.spark``).
    """

    __slots__ = ("running_counts", "group", "_work")

    def __init__(self) -> None:
        self.running_counts: Float64Array | None = None
        self.group: Any = None
        self._work: dict[Hashable, Any] = {}

    def reset(self) -> None:
        """Forget the running counts (the work arrays are kept: they hold no information)."""
        self.running_counts = None

    def work(self, key: Hashable, make: Callable[[], T]) -> T:
        """The work array(s) stored under ``key``, made by ``make()`` when absent."""
        arrays = self._work.get(key)
        if arrays is None:
            arrays = self._work[key] = make()
        return arrays


def _ghm_passes(ndim):
    """GHM-C's kernels for 1-D margins (``ndim`` 1) or (n, K) rows: the binned first pass
    (derivatives and bins), the scaling by bin, the window's first pass (derivatives and ``g``) and
    the scaling by sample."""
    if ndim == 1:
        k = kernels()
        return k.ghm_bins_pass, k.scale_by_bin, k.ghm_norm_pass, k.scale_by_sample
    k = kernels("softmax")
    return (
        k.softmax_ghm_bins_pass,
        k.scale_rows_by_bin,
        k.softmax_ce_grad_hess_norm,
        k.scale_rows_by_sample,
    )


class GHMLoss(_Loss):
    r"""GHM-C: cross-entropy reweighted by the inverse gradient density (Li, Liu, Wang, 2019,
    "Gradient Harmonized Single-stage Detector", arXiv:1811.05181).

    The gradient norm of a sample is :math:`g = |p - y|` with :math:`p = \sigma(x)`. Crowded values
    of ``g`` (the many easy samples near 0, and the crowd of outliers near 1) are down-weighted:

    .. math::

        L_{GHM-C} = \sum_i \beta_i\, CE_i, \qquad
        \frac{\partial L}{\partial x_i} = \beta_i (p_i - y_i), \qquad
        \frac{\partial^2 L}{\partial x_i^2} = \beta_i p_i (1 - p_i),

    the weights :math:`\beta_i` being constants of the round, recomputed from the current margins at
    every call of :meth:`gradient_hessian` (every boosting round).

    ``density="bins"`` (the paper's unit-region approximation, as its official code and
    mmdetection's GHMC compute it): edges ``linspace(0, 1, bins + 1)`` with the last edge raised by
    1e-6, half-open bins; ``beta = tot / count_b / n`` with ``n`` the number of non-empty bins, so
    the weights of an unweighted call with momentum 0 sum to the number of samples.

    K classes (margins of shape (n, K), labels 0..K-1): ``g = 1 - p_y`` with ``p = softmax(z)``
    (the binary ``|p - y|`` for K = 2), the same density, and the weights multiply the softmax
    cross-entropy's gradient ``p - e_y`` and Hessian ``p (1 - p)``. :meth:`init_score` with
    ``n_classes=K`` returns the log class priors (centred), the cross-entropy's best constant.

    ``density="window"``: the paper's sliding-window density
    :math:`GD(g) = \frac{1}{l_\epsilon(g)} \sum_k \delta_\epsilon(g_k, g)` with the window
    :math:`(g - \epsilon/2, g + \epsilon/2)` and its length inside [0, 1],
    :math:`l_\epsilon(g) = \min(g + \epsilon/2, 1) - \max(g - \epsilon/2, 0)`;
    :math:`\beta_i = N / GD(g_i)`, rescaled by one constant so the weights sum to N as with bins.
    Computed exactly in O(n): one radix sort of the gradient norms, then one sweep.

    Sample weights: bin counts, window counts and ``tot`` are sums of sample weights (samples of
    weight 0 are not counted), and each sample's gradient and Hessian are then also multiplied by
    its own weight.

    Parameters
    ----------
    bins : int, default=10
        Number of bins M of the binned density (>= 1).
    momentum : float in [0, 1), default=0.0
        With ``momentum > 0`` the bin counts are an exponential moving average across calls:
        ``acc_b <- momentum * acc_b + (1 - momentum) * count_b`` for the non-empty bins of the
        round. As in the paper's code the average starts from zero, so the first round's weights are
        those of momentum 0 divided by ``1 - momentum`` (a uniform scale of gradient and Hessian).
        Only with ``density="bins"``. :meth:`reset` starts a new average.
    density : {"bins", "window"}, default="bins"
    epsilon : float in (0, 1], default=0.1
        Window width of ``density="window"``.

    Notes
    -----
    :meth:`loss`, :meth:`init_score` and :meth:`harmonizing_weights` compute the weights from the
    margins they are given alone and never touch a running average. :meth:`gradient_hessian` uses
    the ``state`` it is given (see :meth:`new_state`), or, without one, a state that this object
    keeps for direct calls (:attr:`state_`, its :attr:`running_counts_`; :meth:`reset`). The
    Hessian ``p (1 - p)`` is floored at 1e-16 before the weights multiply it.
    """

    name = "ghm"
    state_: GHMState | None
    cross_row_statistic = "GHM-C's density must count the rows of every worker each round"

    def evaluation_loss(self) -> tuple[_Loss, str | None]:
        """The cross-entropy, named ``logloss`` (see :meth:`_Loss.evaluation_loss`)."""
        return FocalLoss(gamma=0.0, alpha=None), "logloss"

    def __init__(
        self, bins: int = 10, momentum: float = 0.0, density: str = "bins", epsilon: float = 0.1
    ) -> None:
        self.bins = bins
        self.momentum = momentum
        self.density = density
        self.epsilon = epsilon

    def resolved_params(self) -> GHMParams:
        """The validated parameters, as a :class:`GHMParams`."""
        bins = v.check_int("bins", self.bins, 1)
        momentum = v.check_real("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        density = v.check_choice("density", self.density, _DENSITIES)
        epsilon = v.check_real("epsilon", self.epsilon, low=0.0, high=1.0, low_open=True)
        if density == "window" and momentum != 0.0:
            raise ValueError(
                f"momentum={self.momentum!r} needs density='bins': the moving average is over bin "
                "counts; use momentum=0.0 with density='window'"
            )
        return GHMParams(bins, momentum, density, epsilon)

    def new_state(self) -> GHMState:
        """A fresh :class:`GHMState` for one training."""
        return GHMState()

    @property
    def running_counts_(self) -> Float64Array | None:
        """The moving-average bin counts of direct calls after the last one (None before): the
        running counts of :attr:`state_`."""
        return None if self.state_ is None else self.state_.running_counts

    def gradient_density(self) -> GHMParams:
        """The resolved :class:`GHMParams`: the density that re-weights the cross-entropy."""
        return self.resolved_params()

    def weights_from_counts(
        self, counts: ArrayLike, total: float, *, state: GHMState | None = None
    ) -> Float64Array:
        """Per-bin harmonising weights ``beta_b = total / density_b / n_nonempty``.

        ``counts`` are the (weighted) bin counts of one round and ``total`` the weight of the valid
        samples. With ``momentum > 0`` and a ``state``, the density is the state's running average,
        updated here for the non-empty bins; without a state the round's counts are used as they
        are. Empty bins get weight 0.
        """
        momentum = self.resolved_params().momentum
        counts = np.asarray(counts, dtype=np.float64)
        nonempty = counts > 0.0
        n_nonempty = int(np.count_nonzero(nonempty))
        density = counts
        if momentum > 0.0 and state is not None:
            if state.running_counts is None or state.running_counts.shape != counts.shape:
                state.running_counts = np.zeros_like(counts)
            acc = state.running_counts
            acc[nonempty] = momentum * acc[nonempty] + (1.0 - momentum) * counts[nonempty]
            density = acc
        beta = np.zeros_like(counts)
        if n_nonempty:
            beta[nonempty] = total / density[nonempty] / n_nonempty
        return beta

    def harmonizing_weights(
        self,
        y_true: LabelsLike,
        raw_prediction: ArrayLike,
        sample_weight: ArrayLike | None = None,
        *,
        n_threads: int | None = None,
    ) -> Float64Array:
        """The harmonising weights beta_i of these margins (stateless: momentum is not applied).

        Samples with zero weight are not counted and get beta 0. Unweighted, the betas sum to n.
        """
        target, x = self._inputs(y_true, raw_prediction, sample_weight)
        params = self.resolved_params()
        with kernel_threads(target.n_samples, check_n_threads(n_threads)):
            ce = np.empty(target.n_samples)
            return self._sample_betas(params, target.y, x, target.sample_weight, ce)

    def _check_state(self, state):
        return self._state_or_own(state, GHMState)

    def _compile_for_samples(self, n_samples):
        if self.resolved_params().density == "bins":
            kernels().compile_bin_histogram(n_samples)
        else:
            kernels().compile_window_density(n_samples)

    def _sample_betas(self, params, y, x, w, ce_out, state=None):
        """Per-sample weights of these margins (no momentum); ``ce_out`` gets the cross-entropy.

        With a ``state`` whose ``group`` is set, the bin counts are summed over the workers.
        """
        group = _group_of(params, state)
        k = kernels()
        n = y.shape[0]
        g = np.empty(n)
        if x.ndim == 1:
            k.cross_entropy_and_norm(y, x, ce_out, g)
        else:
            kernels("softmax").softmax_ce_loss_and_norm(y, x, ce_out, g)
        beta = np.empty(n)
        if params.density == "bins":
            idx = np.empty(n, dtype=np.int32)
            k.assign_bins(g, params.edges, idx)
            counts = np.zeros(params.bins)
            tot = k.bin_histogram(idx, w, params.bins, counts)
            if group is not None:
                counts, tot = _summed_counts(group, counts, tot)
            np.take(self.weights_from_counts(counts, tot), idx, out=beta)
            if w.shape[0]:
                beta[w == 0.0] = 0.0
        else:
            k.window_beta(g, w, params.epsilon, beta)
        return beta

    def _loss_kernels(self, params, y, x, w, out, state=None):
        beta = self._sample_betas(params, y, x, w, out, state)
        # A tiny loss times its weight may underflow to 0, and a loss near the float64 maximum
        # may round to inf: both are the correctly rounded values, not errors.
        with np.errstate(under="ignore", over="ignore"):
            out *= beta
            if w.shape[0]:
                out *= w

    def _grad_hess_kernels(self, params, y, x, w, grad, hess, state):
        # One density code for both layouts, on g = |p - y| (binary) or g = 1 - p_y (K classes);
        # the weights multiply the cross-entropy's gradient and Hessian (softmax: p - e_y and
        # p (1 - p) of each row).
        _group_of(params, state)  # refuses the window density on several workers
        first_pass, scale_by_bin, norm_pass, scale_by_sample = _ghm_passes(x.ndim)
        if params.density == "bins":
            idx = self._bins_work(y.shape[0], state)
            first_pass(y, x, w, params.edges, grad, hess, idx)
            scale_by_bin(idx, self._bin_weights(params, idx, w, state), grad, hess)
        else:
            work = self._window_work(y.shape[0], state)
            g, beta = work[0], work[1]
            norm_pass(y, x, w, grad, hess, g)
            kernels().window_beta_into(g, w, params.epsilon, beta, *work[2:])
            scale_by_sample(beta, grad, hess)

    _softmax_grad_hess_kernels = _grad_hess_kernels

    @staticmethod
    def _bins_work(n, state):
        if state is None:
            return np.empty(n, dtype=np.int32)
        return state.work(("bins", n), lambda: np.empty(n, dtype=np.int32))

    @staticmethod
    def _window_work(n, state):
        def make():
            return (
                (np.empty(n), np.empty(n))
                + tuple(np.empty(n, dtype=np.int64) for _ in range(4))
                + (np.empty(n + 1),)
            )

        return make() if state is None else state.work(("window", n), make)

    def _bin_weights(self, params, idx, w, state):
        """Per-bin weights of one round: counts summed over the workers when distributed."""
        group = _group_of(params, state)
        counts = np.zeros(params.bins)
        tot = kernels().bin_histogram(idx, w, params.bins, counts)
        if group is not None:
            counts, tot = _summed_counts(group, counts, tot)
        return self.weights_from_counts(counts, tot, state=state)

    def _softmax_loss_kernels(self, params, y, x, w, out, state=None):
        self._loss_kernels(params, y, x, w, out, state)

    @staticmethod
    def _softmax_constant(params, class_totals):
        # Over a constant vector every sample of class j has the same g_j = 1 - p_j, so the
        # harmonising weights are one constant per class, which jumps as the g_j change bins:
        # the total is piecewise smooth in K - 1 dimensions. The start is the minimiser of the
        # cross-entropy that GHM-C re-weights (the log class priors, centred), a choice that
        # needs no search and that the first round's density then corrects.
        return softmax_focal_best_constant(class_totals, 0.0)

    def _constant_minimiser(self, params, w1, w0):
        # Over a constant margin the harmonising weights change whenever the two classes' g move
        # into other bins (or windows), so the total is only piecewise smooth and its infimum can
        # sit at a jump. A zooming grid search keeps the best point actually evaluated, so the
        # returned margin's total is never above any point tried; 12 zooms reach ~1e-13.
        def total(s):
            return self._constant_total(params, s, w1, w0)

        grid = self._bracket(w1, w0)
        values = np.array([total(s) for s in grid])
        k = int(np.argmin(values))
        best_s, best_v = grid[k], values[k]
        step = grid[1] - grid[0]
        for _ in range(12):
            grid = np.linspace(best_s - 2.0 * step, best_s + 2.0 * step, 81)
            values = np.array([total(s) for s in grid])
            k = int(np.argmin(values))
            if values[k] < best_v:
                best_s, best_v = grid[k], values[k]
            step = grid[1] - grid[0]
        return float(best_s)


def _group_of(params, state):
    """The state's workers (None in one process); the window density cannot use them."""
    group = None if state is None else state.group
    if group is not None and params.density != "bins":
        # Each sample's window counts the gradient norms of all samples near its own: exact over
        # several workers it needs every norm of every worker each round (an all-gather of n
        # numbers), which is what distributing the data avoids.
        raise ValueError(
            f"GHMLoss(density={params.density!r}) cannot be trained on several workers: its "
            "sliding-window density needs the gradient norms of every sample on every worker each "
            "round; use density='bins' (its counts are summed over the workers), with more bins "
            "for a finer density"
        )
    return group


def _summed_counts(group, counts, tot):
    """The bin counts and total weight summed over the workers: one reduction of bins + 1 values."""
    summed = np.asarray(group.sum(np.append(counts, tot)), dtype=np.float64)
    if summed.shape != (counts.shape[0] + 1,):
        raise RuntimeError(
            f"the sum over the workers of GHMState.group returned shape {summed.shape}; expected "
            f"({counts.shape[0] + 1},): the bin counts and the total weight"
        )
    return np.ascontiguousarray(summed[:-1]), float(summed[-1])
