"""The settings of one comparison: which backends and losses, and how they are trained."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .registry import BACKENDS, LOSSES, absent_reason

if TYPE_CHECKING:
    from typing_extensions import Self

    from .data import Dataset

__all__ = ["CompareConfig"]


@dataclasses.dataclass
class CompareConfig:
    """What to compare and how.

    Attributes
    ----------
    backends : tuple of str
        Subset of :data:`~boostloss.compare.BACKENDS`.
    losses : tuple of str
        Subset of the keys of :data:`~boostloss.compare.LOSSES`.
    folds : int
        Number of stratified folds (>= 2).
    repeats : int
        Repetitions of the k-fold split, each with its own shuffle (repeated stratified k-fold).
    rounds : int
        With early stopping, the most boosting rounds a model may use; without, the rounds of
        every model.
    learning_rate : float
    seed : int
        Seeds the fold split, the inner validation split and the backends.
    metric : str
        ``"ap"``, ``"logloss"`` or ``"auc"``: what early stopping, tuning and the verdict judge,
        on probabilities for every loss alike.
    early_stopping : bool
        Pick each configuration's rounds by early stopping on an inner validation split of the
        training fold, then refit on the whole training fold with that many rounds.
    patience : int
        Early stopping gives up after this many rounds without improvement.
    validation_fraction : float
        Share of the training fold held out (stratified, seeded) for early stopping and tuning.
    tune : bool
        Choose each loss's settings from its grid (:attr:`LossSpec.grid`) on the inner split.
    gamma, alpha : float, float or None or str
        Focal loss parameters (``alpha=None``: no class weighting; on a multi-class task alpha is
        None or ``"balanced"``: per-class weights ``n / (K n_k)`` of the training labels).
    bins : int
        Number of bins of GHM-C.
    momentum : float
        GHM-C's momentum (0: no moving average of the bin counts).
    pos_weight_power : float
        The weighted logistic loss uses ``scale_pos_weight = (n_negative / n_positive) ** power``
        (multi-class: per-row weights ``(n / (K n_k)) ** power`` of the row's class k).
    n_jobs : int
        The estimators' ``n_jobs``: threads per model. 1 by default: the models are small, and
        OpenMP threads competing for busy cores slow training down by orders of magnitude rather
        than speeding it up.
    ohem_ratio : float
        OHEM's hard negatives per positive.
    jobs : int
        Configurations (a loss on a backend, all its folds) trained at once, each in its own
        worker process; the results are the same as with 1 (every model is seeded and uses
        ``n_jobs`` threads either way).
    n_classes : int
        Classes of the target: 2 (binary) or K >= 3 (a multi-class comparison: softmax losses,
        the metrics of :data:`~boostloss.compare.registry.MULTICLASS_METRICS`, no binary-only
        loss). Set from the data (:meth:`for_dataset`).
    """

    # what is compared, on which splits
    backends: tuple[str, ...] = tuple(BACKENDS)
    losses: tuple[str, ...] = tuple(LOSSES)
    folds: int = 5
    repeats: int = 1
    # how each model is trained and chosen
    rounds: int = 1000
    learning_rate: float = 0.1
    seed: int = 0
    metric: str = "ap"
    ohem_ratio: float = 3.0
    # early stopping and tuning on the inner split
    early_stopping: bool = True
    patience: int = 50
    validation_fraction: float = 0.2
    tune: bool = False
    # processes, the task (set from the data) and the losses' parameters
    jobs: int = 1
    n_classes: int = 2
    gamma: float = 2.0
    alpha: float | str | None = 0.25
    bins: int = 10
    momentum: float = 0.0
    pos_weight_power: float = 1.0
    n_jobs: int = 1

    #: Fields written by :meth:`as_dict` only where they matter: OHEM's ratio when OHEM is
    #: compared, the number of classes on a multi-class task, the processes when more than one.
    _OPTIONAL = {
        "ohem_ratio": lambda c: "ohem" in c.losses,
        "n_classes": lambda c: c.multiclass,
        "jobs": lambda c: c.jobs != 1,
    }

    @property
    def multiclass(self) -> bool:
        """Whether the target has K >= 3 classes."""
        return self.n_classes > 2

    def for_dataset(self, dataset: Dataset) -> Self:
        """This config for ``dataset``'s number of classes; a multi-class task drops the binary
        focal alpha default (0.25) for None."""
        n_classes = dataset.n_classes
        changes: dict[str, Any] = {"n_classes": n_classes}
        if n_classes > 2 and not (self.alpha is None or isinstance(self.alpha, str)):
            changes["alpha"] = None
        return dataclasses.replace(self, **changes)

    def configurations(self) -> list[tuple[str, str]]:
        """The (backend, loss) pairs that have a row, in table order."""
        return [
            (backend, loss)
            for backend in self.backends
            for loss in self.losses
            if not absent_reason(backend, loss, self.multiclass)
        ]

    def absent_lines(self) -> list[str]:
        """One line per loss without a row on some backend, saying why (naming the backend
        unless the loss has no row on any)."""
        lines = []
        for loss in self.losses:
            why = {
                backend: absent_reason(backend, loss, self.multiclass) for backend in self.backends
            }
            if len(self.backends) > 1 and all(why.values()) and len(set(why.values())) == 1:
                lines.append(f"no row for {self.loss_label(loss)}: {why[self.backends[0]]}")
                continue
            lines += [
                f"no {backend} row for {self.loss_label(loss)}: {reason}"
                for backend, reason in why.items()
                if reason
            ]
        return lines

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        """The config from a mapping that may hold other keys too (e.g. ``vars(parsed_args)``)."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in options.items() if name in names})

    def loss_label(self, loss: str) -> str:
        """Table label of a loss key, with its parameters ("(tuned)" when ``--tune`` picks them)."""
        spec = LOSSES[loss]
        if self.tune and spec.grid:
            return f"{spec.title} (tuned)"
        return spec.title if spec.label is None else spec.label(self)

    def grid(self, loss: str) -> list[dict[str, Any]]:
        """The settings tried for ``loss``: its grid with ``tune``, else one empty setting."""
        spec = LOSSES[loss]
        grid = spec.grid
        if self.multiclass and spec.multiclass_grid is not None:
            grid = spec.multiclass_grid
        return [dict(point) for point in grid] if self.tune and grid else [{}]

    def setting_words(self, loss: str, settings: Mapping[str, Any]) -> str:
        """A grid point of ``loss`` in words (``""`` for no setting)."""
        if not settings:
            return ""
        if self.multiclass and set(settings) == {"pos_weight_power"}:
            power = settings["pos_weight_power"]
            return "balanced weights" + ("" if power == 1.0 else f"^{power:g}")
        describe = LOSSES[loss].describe
        if describe is not None:
            return describe(settings)
        return " ".join(
            f"{name}={value:g}" if isinstance(value, float) else f"{name}={value}"
            for name, value in settings.items()
        )

    def protocol_words(self) -> str:
        """One line on how models are trained and chosen (table header, docs)."""
        split = f"{self.folds}-fold stratified CV" + (
            f" x {self.repeats} repeats" if self.repeats > 1 else ""
        )
        if self.multiclass:
            split = f"{self.n_classes}-class softmax; {split}"
        if not self.early_stopping:
            how = f"{self.rounds} rounds for every model"
        else:
            how = (
                f"rounds by early stopping on {self.metric} (patience {self.patience}, at most "
                f"{self.rounds}) on a stratified {self.validation_fraction:.0%} of each training "
                "fold, then refit on the whole training fold"
            )
        tuned = "; settings tuned on the same split" if self.tune else ""
        return f"{split}; {how}{tuned}; learning rate {self.learning_rate:g}, seed {self.seed}"

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain JSON values (lists for the tuples), in field order; the optional
        fields (OHEM's ratio, the number of classes) only where they matter."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(self).items()
            if name not in self._OPTIONAL or self._OPTIONAL[name](self)
        }
