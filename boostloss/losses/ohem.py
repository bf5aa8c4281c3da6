"""OHEM (online hard example mining) as a boosting objective: :class:`OHEMLoss`.

Every boosting round keeps all positives and only the hardest negatives; the other rows get
gradient 0 and Hessian 0 for that round. The selection kernels are in ``_kernels/select.py`` (radix
select, O(n), bit-identical across thread counts); this module is the loss layer on top of them:
parameters (:class:`OHEMParams`), validation, the per-training state (:class:`OHEMState`: the tie
keys of one data set, the last round's kept rows and, in a distributed training, the workers whose
rows the selection ranks together) and the start. See ``docs/ohem.md``.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._kernels.cache import kernels
from .._typing import Float64Array, LabelsLike
from . import _validation as v
from ._base import _NO_ALPHA, _Loss, check_target, weight_by_class
from ._multiclass import softmax_focal_best_constant
from .focal import FocalLoss

__all__ = ["OHEMLoss", "OHEMParams", "OHEMState"]


def _select_kernels():
    return kernels("select")


@dataclasses.dataclass(frozen=True)
class OHEMParams:
    """Resolved parameters of an :class:`OHEMLoss` (``negative_class`` a class index or None)."""

    ratio: float
    random_state: int
    negative_class: int | None = None

    def background(self, n_classes: int | None) -> int:
        """The class index whose rows are the negatives, for margins of ``n_classes`` columns
        (None: one margin per row, a binary model)."""
        neg = self.negative_class
        if n_classes is None:
            if neg is None or neg in (0, 1):
                return 0 if neg is None else neg
            raise ValueError(
                f"negative_class={neg!r} is not a class of a binary model (one margin per row, "
                "labels 0/1): use 0, 1 or None (0), or margins of shape (n, K) with K > "
                f"{neg}"
            )
        if neg is None:
            raise ValueError(
                f"margins with {n_classes} columns (a {n_classes}-class model) need "
                "negative_class, the background class whose rows play the negatives: "
                f"OHEMLoss(negative_class=c) with c in 0..{n_classes - 1}"
            )
        if neg >= n_classes:
            raise ValueError(
                f"negative_class={neg!r} is out of range for {n_classes} classes: use a class "
                f"index in 0..{n_classes - 1}"
            )
        return neg


class OHEMState:
    """What one OHEM training owns across rounds: the tie keys of its data and the last selection.

    Made by :meth:`OHEMLoss.new_state`; pass it to every :meth:`OHEMLoss.gradient_hessian` call of
    that training. The tie keys are drawn once, at the first round, from
    ``Generator(PCG64(random_state))`` (one uint64 per row), and reused by every later round, so
    the order among tied negatives is the same in every round.

    ``group`` is None, or, in a training spread over several workers, the workers
    (``_frameworks.collective.WorkerGroup``, set by the XGBoost adapters inside a collective). The
    selection then ranks the rows of every worker together, and this worker's tie keys are those
    that one draw for the rows of all workers, in the order of their ranks, gives its rows.

    Attributes
    ----------
    random_state : int or None
        The seed the tie keys were drawn from (None before the first round).
    n_kept_negatives : int
        Negatives kept by the last round (0 before the first round), over all workers.
    kept_negative_weight : float
        Their total sample weight (their number when unweighted), over all workers.
    rounds : int
        Number of rounds this state has seen.
    """

    __slots__ = (
        "random_state",
        "tie_keys",
        "_keep",
        "n_kept_negatives",
        "kept_negative_weight",
        "rounds",
        "group",
    )

    def __init__(self) -> None:
        self.random_state: int | None = None
        self.tie_keys: NDArray[Any] | None = None
        self._keep: NDArray[np.uint8] | None = None
        self.n_kept_negatives = 0
        self.kept_negative_weight = 0.0
        self.rounds = 0
        self.group: Any = None

    @property
    def kept(self) -> NDArray[np.bool_] | None:
        """Boolean mask of the rows the last round kept (a read-only view; None before)."""
        if self._keep is None:
            return None
        mask = self._keep.view(np.bool_)
        mask.flags.writeable = False
        return mask

    def has_keys(self, n: int, random_state: int) -> bool:
        """Whether the tie keys of ``n`` rows and this seed are drawn already."""
        return (
            self.tie_keys is not None
            and self.tie_keys.shape[0] == n
            and self.random_state == random_state
        )

    def buffers(self, n: int, random_state: int) -> tuple[NDArray[Any], NDArray[np.uint8]]:
        """Tie keys and the keep mask for ``n`` rows, drawn / allocated once per data set.

        With a ``group``, the first call is a collective one (the rows of the workers of lower
        rank give this worker's offset in the draw).
        """
        if not self.has_keys(n, random_state):
            k = _select_kernels()
            if self.group is None:
                self.tie_keys = k.tie_keys(n, random_state)
            else:
                offset = int(self.group.before(np.array([n], dtype=np.float64))[0])
                self.tie_keys = k.tie_keys(n, random_state, offset)
            self.random_state = random_state
            self._keep = np.zeros(n, dtype=np.uint8)
        return self.tie_keys, self._keep  # type: ignore[return-value]  # set with the keys


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

    K classes (margins of shape (n, K), labels 0..K-1): the rows of the background class
    ``negative_class`` are the negatives, ranked by their loss :math:`-\log p_{bg}`; the rows of
    every other class are the positives (all kept); kept rows get the softmax cross-entropy's
    gradient :math:`w (p - e_y)` and diagonal Hessian :math:`w\, p (1 - p)`, the others 0.

    Unlike LightGBM's GOSS, nothing is re-weighted: the model is biased toward the positives on
    purpose (at the start it predicts :math:`1 / (1 + r)`), as in detection.

    Parameters
    ----------
    ratio : float, default=3.0
        Negatives kept per positive, > 0.
    random_state : int, default=0
        Seed of the tie keys (a non-negative integer). The same seed gives the same selection.
    negative_class : int or None, default=None
        The class whose rows are the negatives, as the labels given to this loss spell it: a
        class index (0..K-1 with K-class margins; 0 or 1 with one margin per row). None: class 0
        of a binary model; K-class margins need it. The estimators (:class:`boostloss.XGBClassifier`
        and friends) take it as a value of the ``y`` given to ``fit`` (``"background"``, say) and
        map it to its class index (:meth:`for_classes`).

    Notes
    -----
    :meth:`loss` is the per-row cross-entropy (times the weight) of the rows that a round at these
    margins would keep, 0 for the others; it selects with the tie keys a training with this
    ``random_state`` draws for that many rows. Its mean moves with the selection, so the estimators
    early-stop OHEM on the plain cross-entropy of all rows instead.

    :meth:`init_score` is the cross-entropy minimiser over the kept set at a constant start:
    :math:`\log(W_+ / W_{-,kept})` for a binary model (:math:`\log(n_+ / \lceil r n_+ \rceil)
    \approx -\log r` unweighted), the centred log kept class weights for K classes.

    :meth:`gradient_hessian` uses the ``state`` it is given (see :meth:`new_state`), or, without
    one, a state this object keeps for direct calls (:attr:`state_`, its :attr:`kept_`). In a
    distributed XGBoost training the state holds the workers and the selection is global
    (docs/scaling-out.md).
    """

    name = "ohem"
    state_: OHEMState | None
    cross_row_statistic = "OHEM selects the hardest negatives of all rows each round"

    def evaluation_loss(self) -> tuple[_Loss, str | None]:
        """The cross-entropy, named ``logloss`` (see :meth:`_Loss.evaluation_loss`)."""
        return FocalLoss(gamma=0.0, alpha=None), "logloss"

    def __init__(
        self, ratio: float = 3.0, random_state: int = 0, negative_class: int | None = None
    ) -> None:
        self.ratio = ratio
        self.random_state = random_state
        self.negative_class = negative_class

    def resolved_params(self) -> OHEMParams:
        """The validated parameters, as an :class:`OHEMParams`."""
        ratio = v.check_real("ratio", self.ratio, low=0.0, low_open=True)
        seed = self.random_state
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ValueError(
                f"random_state must be a non-negative integer (the seed of the tie keys), got "
                f"{seed!r}"
            )
        neg = self.negative_class
        if neg is not None and (
            isinstance(neg, bool) or not isinstance(neg, numbers.Integral) or neg < 0
        ):
            raise ValueError(
                f"negative_class={neg!r}: this loss sees class indices (labels 0..K-1), so "
                "negative_class must be one of them (an integer >= 0) or None; a label value such "
                "as 'background' is mapped to its index by the estimators (boostloss."
                "XGBClassifier, LGBMClassifier) or by OHEMLoss.for_classes(classes)"
            )
        return OHEMParams(float(ratio), int(seed), None if neg is None else int(neg))

    def for_classes(self, classes: ArrayLike) -> OHEMLoss:
        """This loss for a model whose class ``i`` is the label ``classes[i]``.

        ``negative_class`` is matched to the labels by equality (``classes[i] == negative_class``,
        so ``1`` matches ``1.0`` but not ``"1"``) and replaced by the index of the match; None
        stays None. The estimators call it with their sorted labels (``classes_``).

        Raises
        ------
        ValueError
            ``negative_class`` is not one of ``classes``; the message lists them.
        """
        neg = self.negative_class
        if neg is None:
            return self
        classes = list(np.asarray(classes).tolist())
        matches = [i for i, label in enumerate(classes) if _same_label(label, neg)]
        if len(matches) != 1:
            shown = ", ".join(repr(c) for c in classes[:10]) + (
                ", ..." if len(classes) > 10 else ""
            )
            raise ValueError(
                f"negative_class={neg!r} is not a label of y; the labels are {shown}: name the "
                "background class as y spells it"
            )
        return type(self)(**dict(self.get_params(), negative_class=matches[0]))

    def new_state(self) -> OHEMState:
        """A fresh :class:`OHEMState` for one training."""
        return OHEMState()

    @property
    def kept_(self) -> NDArray[np.bool_] | None:
        """Boolean mask of the rows kept by the last direct :meth:`gradient_hessian` call (None
        before the first): the kept rows of :attr:`state_`."""
        return None if self.state_ is None else self.state_.kept

    def init_score(
        self,
        y_true: LabelsLike,
        sample_weight: ArrayLike | None = None,
        *,
        n_classes: int | None = None,
    ) -> float | Float64Array:
        """The cross-entropy minimiser over the kept set at a constant start.

        At a constant start every negative ties, so the kept set is the first
        ``ceil(ratio * n+)`` negatives of the random order (weighted: the shortest prefix reaching
        ``ratio * W+``), and it does not depend on the constant: a first round at this start keeps
        the same rows. Over that set the cross-entropy of a constant is minimal where the
        predicted class probabilities are the kept class weights' shares.

        Returns
        -------
        float, or ndarray of shape (K,) with ``n_classes=K``
            Binary: ``log(W1_kept / W0_kept)``, i.e. ``log(W+ / W-kept)`` with the default
            negatives (``log(n+ / ceil(ratio * n+))``, ``-log(ratio)`` when ``ratio * n+`` is
            whole and at most ``n-``). K classes: ``log W_j,kept`` centred to mean 0, where only the
            background class loses weight.

        Raises
        ------
        ValueError
            No positive (or no positive weight), a class without weight in the kept set, or a bad
            ``negative_class``.
        """
        params = self.resolved_params()
        target = check_target(y_true, sample_weight)
        n_classes = None if n_classes is None else v.check_int("n_classes", n_classes, 2)
        target.check_classes(n_classes)
        neg = params.background(n_classes)
        totals = weight_by_class(target, n_classes or 2)
        k = _select_kernels()
        keys = k.tie_keys(target.n_samples, params.random_state)
        keep = np.empty(target.n_samples, dtype=np.uint8)
        _, w_kept, _, w_pos = k.select_rows(
            target.y, None, target.sample_weight, neg, params.ratio, keys, keep
        )
        if not w_pos > 0.0:
            raise ValueError(_no_positives_message(target, neg))
        totals[neg] = w_kept
        return _kept_set_constant(totals, neg, n_classes)

    def start_from_class_totals(self, class_totals: ArrayLike) -> float | Float64Array:
        """The start from the class weight totals alone (a distributed training's global start).

        :meth:`init_score` with the background class's kept weight taken as
        ``min(W_bg, ratio * W_others)``: the kept weight of the first round at a constant start
        to within one row (exact unweighted when ``ratio * n_others`` is whole). ``class_totals``
        holds K totals; two give the binary model's float.
        """
        params = self.resolved_params()
        totals = np.array(class_totals, dtype=np.float64)
        n_classes = None if totals.shape[0] == 2 else totals.shape[0]
        neg = params.background(n_classes)
        others = totals.sum() - totals[neg]
        if not others > 0.0:
            raise ValueError(
                f"OHEM needs positives: the class totals {list(totals)} have no weight outside "
                f"the background class {neg}"
            )
        totals[neg] = min(totals[neg], params.ratio * others)
        return _kept_set_constant(totals, neg, n_classes)

    # -- internals ------------------------------------------------------------------------

    def _check_state(self, state):
        return self._state_or_own(state, OHEMState)

    def _compile_for_samples(self, n_samples):
        _select_kernels().compile_radix_select(n_samples)

    def _select(self, params, y, x, w, state, keep=None):
        """Select this round's rows into the state's (or the given) keep buffer; checks that
        there are positives. Returns ``(n_kept, w_kept, keep)``."""
        neg = params.background(None if x.ndim == 1 else x.shape[1])
        n = y.shape[0]
        keys, own_keep = state.buffers(n, params.random_state)
        keep = own_keep if keep is None else keep
        n_kept, w_kept, _, w_pos = _select_kernels().select_rows(
            y, x, w, neg, params.ratio, keys, keep, state.group
        )
        if not w_pos > 0.0:
            from ._base import Target

            raise ValueError(_no_positives_message(Target(y, w), neg))
        return n_kept, w_kept, keep

    def _loss_kernels(self, params, y, x, w, out, state=None):
        # A training's state lends its tie keys and its workers; its last selection is neither
        # read nor changed.
        if state is None or (
            state.group is None and not state.has_keys(y.shape[0], params.random_state)
        ):
            state = OHEMState()
        if x.ndim == 1:
            x = kernels().as_float64(x)
        _, _, keep = self._select(params, y, x, w, state, np.empty(y.shape[0], dtype=np.uint8))
        if x.ndim == 1:
            kernels().focal_loss(y, x, w, 0.0, 1.0, 1.0, out)
        else:
            kernels("softmax").softmax_focal_loss(y, x, w, 0.0, _NO_ALPHA, out)
        out *= keep

    _softmax_loss_kernels = _loss_kernels

    def _grad_hess_kernels(self, params, y, x, w, grad, hess, state):
        if x.ndim == 1:  # float32 margins (XGBoost's) read as float64: one version of each kernel
            x = kernels().as_float64(x)
        n_kept, w_kept, keep = self._select(params, y, x, w, state)
        # The cross-entropy kernels with a keep mask: OHEM's derivatives are GHM-C's unweighted.
        if x.ndim == 1:
            kernels().kept_cross_entropy_grad_hess(y, x, w, keep, grad, hess)
        else:
            kernels("softmax").kept_softmax_ce_grad_hess(y, x, w, keep, grad, hess)
        state.n_kept_negatives = int(n_kept)
        state.kept_negative_weight = float(w_kept)
        state.rounds += 1

    _softmax_grad_hess_kernels = _grad_hess_kernels


def _kept_set_constant(kept_totals, negative_class, n_classes):
    """The cross-entropy minimiser over a kept set with these class weights: the log-odds of a
    binary model (``n_classes`` None), else the centred log weights (the log class shares)."""
    for j, total in enumerate(kept_totals):
        if not total > 0.0:
            raise ValueError(
                f"the start needs every class with positive weight in the kept set, got "
                f"{float(total)!r} for class {j} (the negatives are the rows of class "
                f"{negative_class}): the best constant margin of a class without weight is -inf"
            )
    if n_classes is None:
        return float(np.log(kept_totals[1]) - np.log(kept_totals[0]))
    return softmax_focal_best_constant(kept_totals, 0.0)


def _same_label(label, wanted):
    try:
        return bool(label == wanted)
    except (TypeError, ValueError):
        return False


def _no_positives_message(target, negative_class=0):
    which = f"(rows not of the background class {negative_class})"
    what = f"no positive rows {which}"
    if target.weighted and np.any(target.y != negative_class):
        what = f"positives of total weight 0 {which}"
    return (
        f"OHEM needs positives: the training data has {what} among {target.n_samples} rows, so "
        "no negative would be kept and every gradient would be 0"
    )
