"""The public losses: :class:`FocalLoss` and :class:`GHMLoss`.

Both work on raw margins ``x`` (what a booster predicts before the sigmoid) and binary labels
``y in {0, 1}``, and give per-sample losses, first and second derivatives with respect to ``x``, and
the best constant starting margin. Parameters are validated at first use (the scikit-learn
convention), so ``set_params`` and ``clone`` never fail on values that are only wrong in context.
Inputs are validated on every public call; outputs are float64 arrays.
"""

import contextlib

import numba
import numpy as np
from scipy.optimize import brentq
from sklearn.base import BaseEstimator

from . import _kernels
from . import _validation as v

__all__ = ["FocalLoss", "GHMLoss"]

#: Below this many rows the kernels run on the calling thread only: waking numba's thread pool
#: costs more than it saves there (tens of microseconds idle, milliseconds on a busy machine).
PARALLEL_MIN_ROWS = 1 << 15


@contextlib.contextmanager
def kernel_threads(n_rows, limit=None):
    """Run the kernels of this block on one thread when ``n_rows`` is small, or on at most ``limit``.

    ``numba.set_num_threads`` is local to the calling thread, so concurrent trainings in other
    threads are not affected. Results do not depend on the thread count (see ``_kernels``).
    """
    current = numba.get_num_threads()
    wanted = 1 if n_rows < PARALLEL_MIN_ROWS else current
    if limit is not None:
        wanted = min(wanted, limit)
    if wanted == current:
        yield
        return
    numba.set_num_threads(wanted)
    try:
        yield
    finally:
        numba.set_num_threads(current)


_HESSIANS = {"exact": _kernels.HESSIAN_EXACT, "gauss_newton": _kernels.HESSIAN_GAUSS_NEWTON}
_DENSITIES = ("bins", "window")


class _BinaryLoss(BaseEstimator):
    """What both losses share: the public methods, validation and the constant minimiser."""

    #: Name used by the metrics of the adapters.
    name = "loss"

    def loss(self, y_true, raw_prediction, sample_weight=None):
        """Per-sample loss, multiplied by ``sample_weight`` when given.

        Parameters
        ----------
        y_true : array-like of shape (n,)
            Binary labels, 0 or 1 (bool, int or float).
        raw_prediction : array-like of shape (n,)
            Raw margins (log-odds), float32 or float64.
        sample_weight : array-like of shape (n,), optional
            Non-negative weights.

        Returns
        -------
        ndarray of shape (n,), float64
        """
        y, x, w = v.check_inputs(y_true, raw_prediction, sample_weight)
        out = np.empty(y.shape[0], dtype=np.float64)
        self._loss_unchecked(self._params(), y, x, w, out)
        return out

    def gradient_hessian(self, y_true, raw_prediction, sample_weight=None):
        """First and second derivatives of the loss with respect to the raw margin.

        Returns
        -------
        (gradient, hessian) : tuple of ndarrays of shape (n,), float64
            Both multiplied by ``sample_weight`` when given. The Hessian is strictly positive
            (before weighting) for every finite margin.
        """
        y, x, w = v.check_inputs(y_true, raw_prediction, sample_weight)
        n = y.shape[0]
        grad = np.empty(n, dtype=np.float64)
        hess = np.empty(n, dtype=np.float64)
        self._grad_hess_unchecked(self._params(), y, x, w, grad, hess, self._state())
        return grad, hess

    def init_score(self, y_true, sample_weight=None):
        """The constant raw margin that minimises the (weighted) total loss.

        Returns
        -------
        float
            For the logistic loss (focal with gamma=0, alpha=None) this is the prior log-odds
            ``log(W1 / W0)`` of the positive and negative weight totals.

        Raises
        ------
        ValueError
            If one class has no (positive) weight: the minimiser is then at infinity.
        """
        y = v.check_labels(y_true)
        w = v.check_weights(sample_weight, y.shape[0])
        params = self._params()
        if w.shape[0]:
            w1 = float(w[y == 1.0].sum())
            w0 = float(w[y == 0.0].sum())
        else:
            w1 = float(np.count_nonzero(y == 1.0))
            w0 = float(y.shape[0] - w1)
        if not (w1 > 0.0 and w0 > 0.0):
            raise ValueError(
                "init_score needs both classes with positive total weight, got weight "
                f"{w1!r} for class 1 and {w0!r} for class 0: the best constant margin is infinite"
            )
        return self._constant_minimiser(params, w1, w0)

    # -- internals ------------------------------------------------------------------------

    # The adapters call these two on validated input with buffers they own; the subclasses
    # implement ``_loss_kernels`` / ``_grad_hess_kernels``.
    @classmethod
    def _loss_unchecked(cls, params, y, x, w, out):
        with kernel_threads(y.shape[0]):
            cls._loss_kernels(params, y, x, w, out)

    @classmethod
    def _grad_hess_unchecked(cls, params, y, x, w, grad, hess, state, scratch=None):
        with kernel_threads(y.shape[0]):
            cls._grad_hess_kernels(params, y, x, w, grad, hess, state, scratch)

    def _constant_total_and_slope(self, params, s, w1, w0):
        y2 = np.array([1.0, 0.0])
        w2 = np.array([w1, w0])
        x2 = np.array([s, s])
        out = np.empty(2)
        self._loss_unchecked(params, y2, x2, w2, out)
        grad = np.empty(2)
        hess = np.empty(2)
        self._grad_hess_unchecked(params, y2, x2, w2, grad, hess, None)
        return float(out.sum()), float(grad.sum())

    @staticmethod
    def _bracket(w1, w0):
        prior = np.log(w1) - np.log(w0)
        half_width = max(40.0, 2.0 * abs(prior) + 10.0)
        return np.linspace(-half_width, half_width, 1601)

    def _constant_minimiser(self, params, w1, w0):
        # A grid finds the basin of the global minimum (the focal total over a constant need not
        # be convex everywhere), then the root of the slope inside it is found to machine
        # precision. The bracket covers the prior log-odds with a wide margin.
        grid = self._bracket(w1, w0)
        totals = np.array([self._constant_total_and_slope(params, s, w1, w0)[0] for s in grid])
        k = int(np.argmin(totals))
        lo = grid[max(k - 1, 0)]
        hi = grid[min(k + 1, grid.size - 1)]
        f_lo = self._constant_total_and_slope(params, lo, w1, w0)[1]
        f_hi = self._constant_total_and_slope(params, hi, w1, w0)[1]
        if f_lo < 0.0 < f_hi:
            return float(brentq(lambda s: self._constant_total_and_slope(params, s, w1, w0)[1],
                                lo, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=200))
        return float(grid[k])

    def _state(self):
        return None

    def __sklearn_clone__(self):
        # A clone is a fresh loss: same parameters, no training state.
        return type(self)(**self.get_params())


class FocalLoss(_BinaryLoss):
    r"""Binary focal loss on raw margins (Lin et al., 2017, arXiv:1708.02002).

    .. math::

        FL(x, y) = -\alpha_t (1 - p_t)^\gamma \log p_t, \qquad
        p_t = \begin{cases} \sigma(x) & y = 1 \\ 1 - \sigma(x) & y = 0 \end{cases}

    with :math:`\alpha_t = \alpha` for positives and :math:`1 - \alpha` for negatives (1 for both
    when ``alpha=None``). With :math:`z = s x` (:math:`s = \pm 1` toward the true class),
    :math:`q = 1 - p_t` and :math:`m = q^\gamma`:

    .. math::

        \frac{\partial FL}{\partial x} = s\,\alpha_t m (\gamma p_t \log p_t - q), \qquad
        \frac{\partial^2 FL}{\partial x^2} = \alpha_t m \left(\gamma p_t \log p_t (q - \gamma p_t)
                                               + (2\gamma + 1) p_t q\right).

    ``gamma=0, alpha=None`` is the logistic loss exactly (gradient ``p - y``, Hessian
    ``p (1 - p)``); ``gamma=0`` with ``alpha`` is the alpha-balanced cross-entropy.

    Parameters
    ----------
    gamma : float, default=2.0
        Focusing parameter, >= 0. The paper's best setting on detection is 2.
    alpha : float in [0, 1] or None, default=0.25
        Weight of the positive class (negatives get ``1 - alpha``); None for no class weighting.
        0.25 is the paper's setting together with gamma=2.
    hessian : {"exact", "gauss_newton"}, default="exact"
        Second-derivative policy. The exact second derivative is negative for confidently wrong
        samples (down to about -0.06 alpha_t for gamma=2), which boosting cannot use:

        - ``"exact"`` (default): the true second derivative, floored at
          ``boostloss.HESSIAN_FLOOR`` (1e-16).
        - ``"gauss_newton"``: ``alpha_t (1 - p_t)^gamma p (1 - p)``, the Hessian of the
          cross-entropy weighted by the focal modulating factor held constant. Always positive and
          equal to the exact Hessian at gamma=0.

        On the real datasets (``benchmarks/hessian_policy.py``, results in the README) the exact
        Hessian gave the better average precision in 12 of 18 dataset/setting pairs, the
        Gauss-Newton one the lower log loss in 16 of 18: ranking is what focal loss is for, so
        ``"exact"`` is the default.

        Every policy is floored at 1e-16, so the Hessian is strictly positive for any finite margin.
    """

    name = "focal"

    def __init__(self, gamma=2.0, alpha=0.25, hessian="exact"):
        self.gamma = gamma
        self.alpha = alpha
        self.hessian = hessian

    def _params(self):
        gamma = v.check_real("gamma", self.gamma, low=0.0)
        if self.alpha is None:
            a_pos = a_neg = 1.0
        else:
            a_pos = v.check_real("alpha", self.alpha, low=0.0, high=1.0)
            a_neg = 1.0 - a_pos
        mode = _HESSIANS[v.check_choice("hessian", self.hessian, tuple(_HESSIANS))]
        return gamma, a_pos, a_neg, mode

    @staticmethod
    def _loss_kernels(params, y, x, w, out):
        gamma, a_pos, a_neg, _ = params
        _kernels.focal_loss(y, x, w, gamma, a_pos, a_neg, out)

    @staticmethod
    def _grad_hess_kernels(params, y, x, w, grad, hess, state, scratch=None):
        gamma, a_pos, a_neg, mode = params
        _kernels.focal_grad_hess(y, x, w, gamma, a_pos, a_neg, mode, grad, hess)


class GHMState:
    """Running bin counts of one GHM training run (the exponential moving average).

    Owned by exactly one training: the adapters and estimators make one per training, and
    ``GHMLoss`` holds one for direct calls of ``gradient_hessian``.
    """

    __slots__ = ("running_counts",)

    def __init__(self):
        self.running_counts = None

    def reset(self):
        self.running_counts = None


class GHMLoss(_BinaryLoss):
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
    1e-6, half-open bins; ``beta = tot / count_b / n`` with ``n`` the number of non-empty bins, so the
    weights of an unweighted call with momentum 0 sum to the number of samples.

    ``density="window"``: the paper's sliding-window density
    :math:`GD(g) = \frac{1}{l_\epsilon(g)} \sum_k \delta_\epsilon(g_k, g)` with the window
    :math:`(g - \epsilon/2, g + \epsilon/2)` and its length inside [0, 1],
    :math:`l_\epsilon(g) = \min(g + \epsilon/2, 1) - \max(g - \epsilon/2, 0)`;
    :math:`\beta_i = N / GD(g_i)`, rescaled by one constant so the weights sum to N as with bins.
    Computed exactly in O(n): one radix sort of the gradient norms, then one sweep.

    Sample weights: bin counts, window counts and ``tot`` are sums of sample weights (samples of
    weight 0 are not counted), and each sample's gradient and Hessian are then also multiplied by its
    own weight.

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
    :meth:`loss` and :meth:`init_score` compute the weights from the margins they are given alone
    and never touch the running counts. The Hessian ``p (1 - p)`` is floored at 1e-16 before the
    weights multiply it.
    """

    name = "ghm"

    def __init__(self, bins=10, momentum=0.0, density="bins", epsilon=0.1):
        self.bins = bins
        self.momentum = momentum
        self.density = density
        self.epsilon = epsilon

    @property
    def running_counts_(self):
        """The moving-average bin counts after the last call (None before the first)."""
        state = self.__dict__.get("_ghm_state")
        return None if state is None else state.running_counts

    def reset(self):
        """Forget the running counts: the next call starts a new training run."""
        self._state().reset()
        return self

    def set_params(self, **params):
        super().set_params(**params)
        return self.reset()

    def _state(self):
        state = self.__dict__.get("_ghm_state")
        if state is None:
            state = self.__dict__["_ghm_state"] = GHMState()
        return state

    def _params(self):
        bins = v.check_int("bins", self.bins, 1)
        momentum = v.check_real("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        density = v.check_choice("density", self.density, _DENSITIES)
        epsilon = v.check_real("epsilon", self.epsilon, low=0.0, high=1.0, low_open=True)
        if density == "window" and momentum != 0.0:
            raise ValueError(
                f"momentum={self.momentum!r} needs density='bins': the moving average is over bin "
                "counts; use momentum=0.0 with density='window'"
            )
        edges = np.arange(bins + 1, dtype=np.float64) / bins
        edges[-1] += 1e-6
        return bins, momentum, density, epsilon, edges

    @staticmethod
    def _bin_betas(counts, tot, momentum, state):
        nonempty = counts > 0.0
        n_nonempty = int(np.count_nonzero(nonempty))
        density = counts
        # Without a state (loss, init_score, harmonizing_weights) the momentum is not applied.
        if momentum > 0.0 and state is not None:
            if state.running_counts is None or state.running_counts.shape != counts.shape:
                state.running_counts = np.zeros_like(counts)
            acc = state.running_counts
            acc[nonempty] = momentum * acc[nonempty] + (1.0 - momentum) * counts[nonempty]
            density = acc
        beta = np.zeros_like(counts)
        if n_nonempty:
            beta[nonempty] = tot / density[nonempty] / n_nonempty
        return beta

    @classmethod
    def _loss_kernels(cls, params, y, x, w, out):
        bins, momentum, density, epsilon, edges = params
        n = y.shape[0]
        g = np.empty(n)
        _kernels.cross_entropy_and_norm(y, x, out, g)
        if density == "bins":
            idx = np.empty(n, dtype=np.intp)
            counts = np.zeros(bins)
            tot = _kernels.bin_counts(g, w, edges, idx, counts)
            beta = cls._bin_betas(counts, tot, momentum, None)[idx]
        else:
            beta = np.empty(n)
            _kernels.window_beta(g, w, epsilon, beta)
        # A tiny loss times its weight may underflow to 0, and a loss near the float64 maximum
        # may round to inf: both are the correctly rounded values, not errors.
        with np.errstate(under="ignore", over="ignore"):
            out *= beta
            if w.shape[0]:
                out *= w

    @classmethod
    def _grad_hess_kernels(cls, params, y, x, w, grad, hess, state, scratch=None):
        bins, momentum, density, epsilon, edges = params
        n = y.shape[0]
        if density == "bins":
            idx = scratch.get("bin") if scratch is not None else None
            if idx is None or idx.shape[0] != n:
                idx = np.empty(n, dtype=np.int32)
                if scratch is not None:
                    scratch["bin"] = idx
            counts = np.zeros(bins)
            tot = _kernels.ghm_bins_pass(y, x, w, edges, grad, hess, idx, counts)
            beta = cls._bin_betas(counts, tot, momentum, state)
            _kernels.scale_by_bin(idx, beta, grad, hess)
        else:
            work = scratch.get("window") if scratch is not None else None
            if work is None or work[0].shape[0] != n:
                work = (np.empty(n), np.empty(n)) + tuple(
                    np.empty(n, dtype=np.int64) for _ in range(4)) + (np.empty(n + 1),)
                if scratch is not None:
                    scratch["window"] = work
            g, beta = work[0], work[1]
            _kernels.ghm_norm_pass(y, x, w, grad, hess, g)
            _kernels.window_beta_into(g, w, epsilon, beta, *work[2:])
            _kernels.scale_by_sample(beta, grad, hess)

    def _constant_minimiser(self, params, w1, w0):
        # Over a constant margin the harmonising weights change whenever the two classes' g move
        # into other bins (or windows), so the total is only piecewise smooth and its infimum can
        # sit at a jump. A zooming grid search keeps the best point actually evaluated, so the
        # returned margin's total is never above any point tried; 12 zooms reach ~1e-13.
        def total(s):
            return self._constant_total_and_slope(params, s, w1, w0)[0]

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

    def harmonizing_weights(self, y_true, raw_prediction, sample_weight=None):
        """The harmonising weights beta_i of these margins (stateless: momentum is not applied).

        Samples with zero weight are not counted and get beta 0. Unweighted, the betas sum to n.
        """
        y, x, w = v.check_inputs(y_true, raw_prediction, sample_weight)
        params = self._params()
        with kernel_threads(y.shape[0]):
            n = y.shape[0]
            ce = np.empty(n)
            g = np.empty(n)
            _kernels.cross_entropy_and_norm(y, x, ce, g)
            if params[2] == "bins":
                idx = np.empty(n, dtype=np.intp)
                counts = np.zeros(params[0])
                tot = _kernels.bin_counts(g, w, params[4], idx, counts)
                beta = self._bin_betas(counts, tot, 0.0, None)[idx]
                if w.shape[0]:
                    beta[w == 0.0] = 0.0
                return beta
            beta = np.empty(n)
            _kernels.window_beta(g, w, params[3], beta)
            return beta

