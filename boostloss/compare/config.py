"""The settings of one comparison: which backends and losses, and how they are trained."""

import dataclasses

from .registry import BACKENDS, LOSSES

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
    rounds : int
        Boosting rounds of every model.
    learning_rate : float
    seed : int
        Seeds the fold split and the backends.
    gamma, alpha : float, float or None
        Focal loss parameters (``alpha=None``: no class weighting).
    bins : int
        Number of bins of GHM-C.
    n_jobs : int
        The estimators' ``n_jobs``: threads per model. 1 by default: the models are small, and
        OpenMP threads competing for busy cores slow training down by orders of magnitude rather
        than speeding it up.
    """

    backends: tuple = tuple(BACKENDS)
    losses: tuple = tuple(LOSSES)
    folds: int = 5
    rounds: int = 200
    learning_rate: float = 0.1
    seed: int = 0
    gamma: float = 2.0
    alpha: float | None = 0.25
    bins: int = 10
    n_jobs: int = 1

    @classmethod
    def from_options(cls, options):
        """The config from a mapping that may hold other keys too (e.g. ``vars(parsed_args)``)."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in options.items() if name in names})

    def loss_label(self, loss):
        """Table label of a loss key, with its parameters."""
        spec = LOSSES[loss]
        return spec.title if spec.label is None else spec.label(self)

    def as_dict(self):
        """The settings as plain JSON values (lists for the tuples), in field order."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(self).items()
        }
