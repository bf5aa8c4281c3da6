"""OHEM (online hard example mining) as a boosting objective: :class:`OHEMLoss`.

Every boosting round keeps all positives and only the hardest negatives; the other rows get
gradient 0 and Hessian 0 for that round. The selection kernels are in ``_kernels_select.py`` (radix
select, O(n), bit-identical across thread counts); this module is the loss layer on top of them:
parameters (:class:`OHEMParams`), validation, the per-training state (:class:`OHEMState`: the tie
keys of one data set and the last round's kept rows) and the start. See ``docs/ohem.md``.
"""

import dataclasses
import math
import numbers

import numpy as np

from . import _validation as v
from ._numba_cache import kernels
from .losses import _Loss, check_target

__all__ = ["OHEMLoss", "OHEMParams", "OHEMState"]


def _select_kernels():
    return kernels("._kernels_select")


@dataclasses.dataclass(frozen=True)
class OHEMParams:
    """Resolved parameters of an :class:`OHEMLoss`."""

    ratio: float
    random_state: int


class OHEMState:
    """What one OHEM training owns across rounds: the tie keys of its data and the last selection.

    Made by :meth:`OHEMLoss.new_state`; pass it to every :meth:`OHEMLoss.gradient_hessian` call of
    that training. The tie keys are drawn once, at the first round, from
    ``Generator(PCG64(random_state))`` (one uint64 per row), and reused by every later round, so
    the order among tied negatives is the same in every round.

    Attributes
    ----------
    random_state : int or None
        The seed the tie keys were drawn from (None before the first round).
    n_kept_negatives : int
        Negatives kept by the last round (0 before the first round).
    kept_negative_weight : float
        Their total sample weight (their number when unweighted).
    rounds : int
        Number of rounds this state has seen.
    """

    __slots__ = ("random_state", "tie_keys", "_keep", "n_kept_negatives", "kept_negative_weight",
                 "rounds")

    def __init__(self):
        self.random_state = None
        self.tie_keys = None
        self._keep = None
        self.n_kept_negatives = 0
        self.kept_negative_weight = 0.0
        self.rounds = 0

    @property
    def kept(self):
        """Boolean mask of the rows the last round kept (a read-only view; None before)."""
        if self._keep is None:
            return None
        mask = self._keep.view(np.bool_)
        mask.flags.writeable = False
        return mask

    def _buffers(self, n, random_state):
        """Tie keys and the keep mask for ``n`` rows, drawn / allocated once per data set."""
        if (self.tie_keys is None or self.tie_keys.shape[0] != n
                or self.random_state != random_state):
            self.tie_keys = _select_kernels().tie_keys(n, random_state)
            self.random_state = random_state
            self._keep = np.zeros(n, dtype=np.uint8)
        return self.tie_keys, self._keep


class OHEMLoss(_Loss):
    r"""Online hard example mining: the cross-entropy of all positives and the hardest negatives.

    Shrivastava, Gupta, Girshick (2016), "Training Region-based Object Detectors with Online Hard
    Example Mining", arXiv:1604.03540; the 3:1 rule of SSD (Liu et al. 2016, arXiv:1512.02325).

    At every call of :meth:`gradient_hessian` (every boosting round), with :math:`n_+` positives:

    - every positive is kept;
    - the negatives are ranked by their current cross-entropy :math:`\log(1 + e^{x})`, hardest
      (highest margin) first, and the first :math:`k = \min(n_-, \lceil r\, n_+ \rceil)` are kept
      (:math:`r` = ``ratio``). With sample weights: the shortest prefix of the ranking whose weight
      reaches :math:`r W_+`; negatives of weight 0 are never kept;
    - ties (every negative ties at a constant start) are broken by a random key per row, drawn once
      per training from ``random_state``, never by row order;
    - kept rows get the cross-entropy derivatives times their weight, all others exactly 0:

    .. math::

        g_i = w_i (p_i - y_i), \quad h_i = w_i \max(p_i (1 - p_i), 10^{-16})
        \quad (i \text{ kept}), \qquad g_i = h_i = 0 \quad (\text{otherwise}).

    Unlike LightGBM's GOSS, nothing is re-weighted: the model is biased toward the positives on
    purpose (at the start it predicts :math:`1 / (1 + r)`), as in detection.

    Parameters
    ----------
    ratio : float, default=3.0
        Negatives kept per positive, > 0.
    random_state : int, default=0
        Seed of the tie keys (a non-negative integer). The same seed gives the same selection.
    negative_class : None
        The background class of multi-class OHEM. boostloss's losses are binary for now (the
        multi-class selection kernels exist, the multi-class losses do not): only None is accepted,
        and multi-class input is an error that says so.

    Notes
    -----
    :meth:`loss` is the per-row cross-entropy (times the weight) of the rows that a round at these
    margins would keep, 0 for the others; it selects with the tie keys a training with this
    ``random_state`` draws for that many rows. Its mean moves with the selection, so the estimators
    early-stop OHEM on the plain cross-entropy of all rows instead.

    :meth:`init_score` is the cross-entropy minimiser over the kept set at a constant start,
    :math:`\log(W_+ / W_{-,kept})`: :math:`\log(n_+ / \lceil r n_+ \rceil) \approx -\log r`
    unweighted.

    :meth:`gradient_hessian` uses the ``state`` it is given (see :meth:`new_state`), or, without
    one, a state this object keeps for direct calls (:attr:`kept_`).
    """

    name = "ohem"

    def __init__(self, ratio=3.0, random_state=0, negative_class=None):
        self.ratio = ratio
        self.random_state = random_state
        self.negative_class = negative_class

    def resolved_params(self):
        """The validated parameters, as an :class:`OHEMParams`."""
        ratio = v.check_real("ratio", self.ratio, low=0.0, low_open=True)
        seed = self.random_state
        if (isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0):
            raise ValueError(
                f"random_state must be a non-negative integer (the seed of the tie keys), got "
                f"{seed!r}"
            )
        if self.negative_class is not None:
            raise ValueError(
                f"negative_class={self.negative_class!r}: multi-class OHEM needs boostloss's "
                "multi-class losses, which this version does not have yet; OHEMLoss is binary "
                "(labels 0/1, negative_class=None)"
            )
        return OHEMParams(float(ratio), int(seed))

    def new_state(self):
        """A fresh :class:`OHEMState` for one training."""
        return OHEMState()

    @property
    def kept_(self):
        """Boolean mask of the rows kept by the last direct :meth:`gradient_hessian` call."""
        state = self.__dict__.get("_own_state")
        return None if state is None else state.kept

    def reset(self):
        """Forget the state of direct calls (tie keys and last selection)."""
        self.__dict__.pop("_own_state", None)
        return self

    def set_params(self, **params):
        super().set_params(**params)
        return self.reset()

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_own_state", None)  # the direct calls' state, rebuilt on use
        return state

    def init_score(self, y_true, sample_weight=None):
        """The cross-entropy minimiser over the kept set at a constant start, ``log(W+ / W-kept)``.

        At a constant margin every negative ties, so the kept set is the first
        ``ceil(ratio * n+)`` negatives of the random order (weighted: the shortest prefix reaching
        ``ratio * W+``), and the result is ``log(n+ / ceil(ratio * n+))`` (``-log(ratio)`` when
        ``ratio * n+`` is whole and at most ``n-``). The kept set does not depend on the constant,
        so a first round at this start keeps the same rows and its gradients sum to 0.

        Raises
        ------
        ValueError
            No positive (or no positive weight), or no negative of positive weight.
        """
        target = check_target(y_true, sample_weight)
        params = self.resolved_params()
        y, w = target.y, target.sample_weight
        positive = y == 1.0
        w_pos = float(w[positive].sum()) if target.weighted else float(np.count_nonzero(positive))
        if not w_pos > 0.0:
            raise ValueError(_no_positives_message(target))
        k = _select_kernels()
        keys = k.tie_keys(target.n_samples, params.random_state)
        keep = np.empty(target.n_samples, dtype=np.uint8)
        _, w_kept = k.ohem_select(y, np.zeros(target.n_samples), w, params.ratio, keys, keep)
        if not w_kept > 0.0:
            raise ValueError(
                "init_score needs negatives (label 0) with positive weight; got none: the best "
                "constant margin is infinite"
            )
        return float(k.ohem_best_constant(w_pos, float(w_kept)))

    # -- internals ------------------------------------------------------------------------

    @staticmethod
    def _inputs(y_true, raw_prediction, sample_weight):
        if np.ndim(raw_prediction) == 2 and np.shape(raw_prediction)[1] > 1:
            raise ValueError(
                f"raw_prediction has shape {np.shape(raw_prediction)}: multi-class OHEM needs "
                "boostloss's multi-class losses, which this version does not have yet; OHEMLoss "
                "takes one margin per row and labels 0/1"
            )
        return _Loss._inputs(y_true, raw_prediction, sample_weight)

    def _check_state(self, state):
        if state is None:
            state = self.__dict__.get("_own_state")
            if state is None:
                state = self.__dict__["_own_state"] = OHEMState()
            return state
        if not isinstance(state, OHEMState):
            raise TypeError(
                f"state must be an OHEMState made by OHEMLoss.new_state(), got {state!r} of type "
                f"{type(state).__name__}"
            )
        return state

    @staticmethod
    def _loss_kernels(params, y, x, w, out, state=None):
        # A training's state lends its tie keys (same seed and size: the same keys); its last
        # selection is neither read nor changed.
        k = _select_kernels()
        n = y.shape[0]
        keys = None
        if (state is not None and state.tie_keys is not None and state.tie_keys.shape[0] == n
                and state.random_state == params.random_state):
            keys = state.tie_keys
        if keys is None:
            keys = k.tie_keys(n, params.random_state)
        keep = np.empty(n, dtype=np.uint8)
        k.ohem_select(y, x, w, params.ratio, keys, keep)
        kernels().focal_loss(y, x, w, 0.0, 1.0, 1.0, out)
        out *= keep

    @staticmethod
    def _grad_hess_kernels(params, y, x, w, grad, hess, state):
        k = _select_kernels()
        keys, keep = state._buffers(y.shape[0], params.random_state)
        n_kept, w_kept = k.ohem_select(y, x, w, params.ratio, keys, keep)
        if n_kept == 0:
            _check_positives(y, w)
        k.ohem_grad_hess(y, x, w, keep, grad, hess)
        state.n_kept_negatives = int(n_kept)
        state.kept_negative_weight = float(w_kept)
        state.rounds += 1


def _no_positives_message(target):
    what = "no positive rows (label 1)"
    if target.weighted and np.any(target.y == 1.0):
        what = "positives of total weight 0"
    return (
        f"OHEM needs positives: the training data has {what} among {target.n_samples} rows, so "
        "no negative would be kept and every gradient would be 0"
    )


def _check_positives(y, w):
    """Raise when a round kept nothing because there is no positive weight (else: no negatives)."""
    positive = y == 1.0
    w_pos = float(w[positive].sum()) if w.shape[0] else float(np.count_nonzero(positive))
    if not (w_pos > 0.0 and math.isfinite(w_pos)):
        from .losses import Target

        raise ValueError(_no_positives_message(Target(y, w)))
