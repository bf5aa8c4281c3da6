"""The protocol of ``boostloss compare``: folds, early stopping, tuning, a model per configuration.

Every configuration (a loss on a backend) is trained on the same (repeated) stratified folds. By
default each one picks its own number of rounds: on each training fold, a stratified, seeded
validation split (the same rows for every configuration) is held out, the model trains on the rest
until the selection metric on the held-out rows has not improved for ``patience`` rounds (at most
``rounds``), and the model kept is then **refit on the whole training fold** with the best number
of rounds. With ``tune``, every setting of the loss's grid goes through the same early-stopped
training on the same split, and the best one is refit. Metrics are computed on the held-out fold
from the probabilities the estimators return: AP and ROC-AUC (and the argmax columns on K classes)
rank them as they are, while log loss, Brier score and ECE judge the posterior, which for the
class-weighted logistic rows is corrected for the class weights (:func:`class_weights`, from the
margins). Which estimator and which loss a configuration means comes from
:mod:`boostloss.compare.registry`.

On a multi-class task (``config.n_classes`` K >= 3) the same protocol runs with softmax models:
probabilities of shape (n, K), the class-weighted loss trains with balanced per-row weights
(``sample_weight``) instead of ``scale_pos_weight``, and the folds, the inner split and the
metrics are stratified / averaged over the K classes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import time
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .data import DataError, first_line
from .diagnostics import degenerate_reason, tie_blocks
from .registry import BACKENDS, LOSSES, balanced_class_weights
from .scoring import binary_metrics, make_score, multiclass_metrics

if TYPE_CHECKING:
    from .._typing import Float64Array
    from ..estimators import LGBMClassifier, XGBClassifier
    from .config import CompareConfig
    from .data import Dataset

__all__ = [
    "CompareResult",
    "check_folds",
    "class_weights",
    "cross_validate",
    "make_estimator",
    "planned_fits",
    "sample_weight",
    "staged_probabilities",
]


@dataclasses.dataclass
class CompareResult:
    """Everything one comparison produced.

    Attributes
    ----------
    records : list of dict
        One per (backend, loss, repeat, fold): the metrics of the held-out fold, the fit time
        (selection and refit), the rounds and settings chosen, the diagnostics, sizes.
    oof_proba : dict
        ``(backend, loss) -> ndarray`` of out-of-fold probabilities of the positive class (of
        every class, shape (n, K), on a multi-class task) from the first repeat (every row is
        predicted by the one model that did not see it), as the estimators return them.
    oof_posterior : dict
        The same for the posterior (the class-weight corrected probabilities of the weighted
        rows; the same arrays as ``oof_proba`` for the other rows).
    first_fold : dict
        ``(backend, loss) -> estimator`` trained on the first fold, and ``"train_index"``: the
        rows it was trained on (for the gradient-norm plot).
    config : CompareConfig or None
        The config the comparison ran with (its ``n_classes`` set from the data).
    """

    records: list[dict[str, Any]]
    oof_proba: dict[tuple[str, str], NDArray[np.float64]]
    first_fold: dict[Any, Any]
    config: CompareConfig | None = None
    oof_posterior: dict[tuple[str, str], NDArray[np.float64]] = dataclasses.field(
        default_factory=dict
    )


def make_estimator(
    backend: str, loss: str, config: CompareConfig, y_train: NDArray[Any], rounds: int | None = None
) -> XGBClassifier | LGBMClassifier:
    """A fresh, unfitted estimator for one configuration.

    ``"logistic"`` is the backend's built-in logistic objective; ``"weighted"`` is the same with
    ``scale_pos_weight = (n_negative / n_positive) ** config.pos_weight_power`` of the training
    labels (power 1: what LightGBM's ``is_unbalance`` computes; on a multi-class task the weights
    are per row, :func:`sample_weight`, given to ``fit``); ``"focal"`` and ``"ghm"`` are
    :class:`~boostloss.FocalLoss` and :class:`~boostloss.GHMLoss`. ``rounds`` (default
    ``config.rounds``) is ``n_estimators``. Every other parameter is the backend's default.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {tuple(BACKENDS)}")
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; expected one of {tuple(LOSSES)}")
    spec = LOSSES[loss]
    params = {
        "n_estimators": int(config.rounds if rounds is None else rounds),
        "learning_rate": config.learning_rate,
        "random_state": config.seed,
        "n_jobs": config.n_jobs,
    }
    if spec.class_weighted and not config.multiclass:
        params["scale_pos_weight"] = float(_class_weights_of(loss, config, y_train)[1])
    if spec.params is not None:
        params.update(spec.params(backend))
    return BACKENDS[backend].estimator(spec.build(config, y_train), params)


def class_weights(loss: str, config: CompareConfig, y_train: ArrayLike) -> Float64Array | None:
    """The per-class training weights of ``loss``, or None for a loss that trains unweighted.

    Binary: ``(1, s)`` with ``s = scale_pos_weight = (n_negative / n_positive) **
    config.pos_weight_power``; K classes: the balanced weights ``(n / (K n_k)) **
    config.pos_weight_power`` (:func:`~boostloss.compare.registry.balanced_class_weights`).
    The posterior of such a model is ``softmax(margin - log w)`` (binary: ``sigmoid(margin -
    log s)``), :func:`boostloss.losses._posterior.posterior_from_margin` with ``class_weights``.
    """
    if not LOSSES[loss].class_weighted:
        return None
    return _class_weights_of(loss, config, y_train)


def _class_weights_of(loss: str, config: CompareConfig, y_train: ArrayLike) -> Float64Array:
    """:func:`class_weights` of a class-weighted ``loss``."""
    if config.multiclass:
        return balanced_class_weights(y_train, config.pos_weight_power)
    y = np.asarray(y_train)
    n_pos = int(np.sum(y))
    return np.array([1.0, ((y.shape[0] - n_pos) / n_pos) ** config.pos_weight_power])


def sample_weight(loss: str, config: CompareConfig, y_train: ArrayLike) -> Float64Array | None:
    """The per-row training weights of ``loss``: on a multi-class task the class-weighted loss
    weighs each row by its class's ``(n / (K n_k)) ** config.pos_weight_power``; otherwise None."""
    if not (config.multiclass and LOSSES[loss].class_weighted):
        return None
    return _class_weights_of(loss, config, y_train)[np.asarray(y_train, dtype=np.int64)]


def planned_fits(config: CompareConfig) -> int:
    """How many trainings :func:`cross_validate` runs (for progress displays)."""
    total = 0
    for _, loss in config.configurations():
        grid = config.grid(loss)
        selects = config.early_stopping or len(grid) > 1
        total += len(grid) + 1 if selects else 1
    return total * config.folds * config.repeats


def _probabilities(estimator, X, multiclass=False, **kwargs):
    """Probabilities of the positive class (n,), or of every class (n, K) when ``multiclass``."""
    proba = np.asarray(estimator.predict_proba(X, **kwargs))
    if multiclass:
        return proba
    return proba[:, 1] if proba.ndim == 2 else proba


def _predictions(estimator, backend, X, weights, multiclass=False, **first_trees):
    """(probabilities as the estimator returns them, posterior) of ``X``.

    The posterior comes from the margins: a boostloss loss's ``predict_proba`` (focal: the
    inverse of its risk minimiser; GHM-C, OHEM: the sigmoid / softmax, a score), or for a
    class-weighted built-in objective (``weights`` not None) the prior-odds correction
    :func:`~boostloss.posterior_from_margin`; a plain built-in objective's probabilities are its
    posterior.
    """
    proba = np.clip(_probabilities(estimator, X, multiclass, **first_trees), 0.0, 1.0)
    loss = estimator.get_params().get("loss")
    if weights is None and loss is None:
        return proba, proba
    from ..losses._posterior import posterior_from_margin

    margins = np.asarray(BACKENDS[backend].margins(estimator, X, **first_trees), dtype=np.float64)
    if loss is not None:
        posterior = loss.predict_proba(margins)
    else:
        posterior = posterior_from_margin(margins, class_weights=tuple(float(w) for w in weights))
    return proba, np.clip(posterior if multiclass else posterior[:, 1], 0.0, 1.0)


def _fold_metrics(y_true, proba, posterior):
    """The binary columns: AP and ROC-AUC of ``proba``, log loss, Brier and ECE of ``posterior``."""
    return binary_metrics(y_true, proba, posterior)


def check_folds(dataset: Dataset, folds: int) -> None:
    """Raise :class:`DataError` when a class has fewer rows than there are folds."""
    classes = dataset.classes  # None: a binary task
    if classes is not None and len(classes) > 2:
        counts = dataset.class_counts
        small = [
            (classes[k], int(counts[k]))
            for k in np.argsort(counts, kind="stable")
            if counts[k] < folds
        ]
        if small:
            listed = ", ".join(f"{label!r} {count}" for label, count in small)
            raise DataError(
                f"{len(small)} of {dataset.n_classes} classes have fewer rows than the {folds} "
                f"folds ({listed}); every fold needs a row of each class: lower --folds, pass "
                "--merge-rare N to merge the classes with fewer than N rows into one, or pass "
                "--positive LABEL "
                "for one class against the rest"
            )
        return
    n_pos = dataset.n_positive
    n_neg = dataset.y.shape[0] - n_pos
    if min(n_pos, n_neg) < folds:
        which = "positive" if n_pos < n_neg else "negative"
        raise DataError(
            f"only {min(n_pos, n_neg)} {which} rows for {folds} folds; every fold needs one; "
            "lower --folds or use more data"
        )


def _tiny_data(dataset):
    """A few rows of every class: what the warm-up trainings fit. Binary: 8 negatives per
    positive, so that OHEM (3 per positive) selects among them, as on real data, and its
    selection kernels compile here rather than in a timed fit."""
    per_class = (160, 20) if dataset.n_classes == 2 else (30,) * dataset.n_classes
    rows = np.concatenate([np.flatnonzero(dataset.y == k)[:m] for k, m in enumerate(per_class)])
    return dataset.X.iloc[rows], dataset.y[rows]


def _warm_up_fits(X, y, config, pairs, n_rows):
    """One tiny training and prediction per custom loss of ``pairs`` (and per end of its grid): it
    loads (or, on a fresh install, compiles) the numba kernels that the real trainings use, with
    the same dtypes, so that the first fold's fit time measures training, not compilation; then
    the kernels that only the dataset's ``n_rows`` rows reach (``warm._compile_for_rows``).
    Failures are left to the real trainings, which report them."""
    from ..warm import _compile_for_rows

    n_classes = int(np.unique(y).shape[0])
    k = n_classes if n_classes > 2 else None
    for backend, loss in pairs:
        grid = config.grid(loss)
        for settings in (grid[0], grid[-1]) if len(grid) > 1 else grid:  # e.g. GHM momentum on
            tiny = dataclasses.replace(config, rounds=2, **settings)
            built = LOSSES[loss].build(tiny, y)
            if built is not None:
                with contextlib.suppress(Exception):
                    make_estimator(backend, loss, tiny, y).fit(X, y).predict_proba(X)
                    _compile_for_rows(built, n_rows, k, (backend,))


def _warm_up(dataset, config):
    X, y = _tiny_data(dataset)
    _warm_up_fits(X, y, config, config.configurations(), dataset.y.shape[0])


def _is_custom(config, loss, y):
    """Whether ``loss`` trains with a boostloss objective (kernels to compile) for some setting."""
    for settings in config.grid(loss):
        try:
            if LOSSES[loss].build(dataclasses.replace(config, **settings), y) is not None:
                return True
        except Exception:  # noqa: BLE001 - the trainings report it; count it as custom
            return True
    return False


def _free_cores(config):
    """Cores left beside one model's ``n_jobs`` threads (none when it takes them all: ``n_jobs``
    below 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    return cores - config.n_jobs if config.n_jobs >= 1 else 0


def _quiet_warm_up(X, y, config, pairs, n_rows):  # pragma: no cover - runs in the helper
    """:func:`_warm_up_fits` in the helper process, at a lower priority than the comparison."""
    with contextlib.suppress(OSError, AttributeError):  # no os.nice on Windows
        os.nice(5)
    warnings.simplefilter("ignore")
    _warm_up_fits(X, y, config, pairs, n_rows)


_HELPER = (
    "import pickle, sys\n"
    "from boostloss.compare.protocol import _quiet_warm_up\n"
    "with open(sys.argv[1], 'rb') as f:\n"
    "    args = pickle.load(f)\n"
    "_quiet_warm_up(*args)\n"
)


def _compile_beside(X, y, config, pairs, n_rows):
    """Start compiling the kernels of ``pairs`` in a helper process; returns ``(process, path of
    its input)``, or None.

    On a fresh install the kernels of the custom losses take seconds to compile (numba writes them
    to its on-disk cache, then loads them in a second). With a core free beside the trainings, a
    helper process runs the warm-up of ``pairs`` while this one trains the built-in losses; this
    process then warms up the same pairs in the opposite order, loading what the helper has
    cached and compiling the rest, so the two meet in the middle. The helper's output goes
    nowhere, and nothing depends on it: if it cannot start or fails, this process compiles all.
    """
    if not pairs or _free_cores(config) < 1:
        return None
    import pickle
    import subprocess
    import sys
    import tempfile

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    path = None
    try:
        with tempfile.NamedTemporaryFile("wb", suffix=".pkl", delete=False) as f:
            path = f.name
            pickle.dump((X, y, config, pairs, n_rows), f)
        helper = subprocess.Popen(
            [sys.executable, "-c", _HELPER, path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
    except (OSError, pickle.PicklingError):
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)
        return None
    return helper, path


def _stop(helper):
    """End the helper (what it compiled is in numba's cache; this process has it all by now)."""
    process, path = helper
    process.terminate()
    process.wait()
    with contextlib.suppress(OSError):
        os.unlink(path)


def _inner_split(y_train, config, repeat, fold):
    """Positions (into the training fold) of the inner training and validation rows."""
    from sklearn.model_selection import train_test_split

    seed = int(np.random.SeedSequence([config.seed, repeat, fold]).generate_state(1)[0])
    positions = np.arange(y_train.shape[0])
    try:
        inner, valid = train_test_split(
            positions, test_size=config.validation_fraction, stratify=y_train, random_state=seed
        )
    except ValueError:
        fewest = int(np.min(np.bincount(np.asarray(y_train, dtype=np.int64))))
        if not config.multiclass:
            raise DataError(
                f"a training fold has too few rows of a class ({int(y_train.sum())} positive of "
                f"{y_train.shape[0]}) to hold out a stratified validation split for early "
                "stopping; "
                "use fewer --folds, more data or --no-early-stopping"
            ) from None
        raise DataError(
            f"a training fold has too few rows of a class ({fewest} of {y_train.shape[0]}) to hold "
            "out a stratified validation split of every class for early stopping; use fewer "
            "--folds, more data, --merge-rare N or --no-early-stopping, or pass --positive LABEL "
            "for one class against the rest"
        ) from None
    return np.sort(inner), np.sort(valid)


def _fit(backend, loss, fold, fit):
    """Run ``fit()``; turn the backend's training errors into a :class:`DataError`."""
    try:
        return fit()
    except BACKENDS[backend].errors() as exc:
        raise DataError(
            f"{backend} could not train the {LOSSES[loss].title} loss on fold {fold + 1} "
            f"({first_line(exc)}); check that the features vary and that there are enough rows"
        ) from None


def _select(dataset, config, score, backend, loss, split, train, on_fit):
    """Early-stop each grid setting on the inner split; return (settings, rounds, inner score)."""
    repeat, fold = split
    X, y = dataset.X, dataset.y
    inner, valid = _inner_split(y[train], config, repeat, fold)
    inner, valid = train[inner], train[valid]
    X_inner, y_inner, X_valid, y_valid = X.iloc[inner], y[inner], X.iloc[valid], y[valid]
    grid = config.grid(loss)
    best = None
    for i, settings in enumerate(grid):
        trial = dataclasses.replace(config, **settings)
        estimator = make_estimator(backend, loss, trial, y_inner)
        weight = sample_weight(loss, trial, y_inner)
        weights = class_weights(loss, trial, y_inner)
        model_score = score.for_model(estimator.get_params()["loss"], weights)
        if config.early_stopping:
            rounds = _fit(
                backend,
                loss,
                fold,
                functools.partial(
                    BACKENDS[backend].fit_early_stopped,
                    estimator,
                    X_inner,
                    y_inner,
                    X_valid,
                    y_valid,
                    model_score,
                    config.patience,
                    weight,
                ),
            )
            first_trees = BACKENDS[backend].first_trees(rounds)
        else:
            rounds, first_trees = config.rounds, {}
            _fit(
                backend,
                loss,
                fold,
                functools.partial(estimator.fit, X_inner, y_inner, sample_weight=weight),
            )
        proba, posterior = _predictions(
            estimator, backend, X_valid, weights, config.multiclass, **first_trees
        )
        value = model_score.of_model(y_valid, proba, posterior)
        if best is None or score.better(value, best[2]):
            best = (settings, rounds, value)
        if on_fit is not None:
            words = config.setting_words(loss, settings)
            grid_text = f": {words} ({i + 1}/{len(grid)})" if len(grid) > 1 else ""
            on_fit(f"{backend} {loss}{_split_words(config, split)}{grid_text}")
    return best


def _split_words(config, split):
    repeat, fold = split
    again = f" repeat {repeat + 1}" if config.repeats > 1 else ""
    return f"{again} fold {fold + 1}"


def _fit_configuration(dataset, config, score, backend, loss, split, train, test, on_fit):
    """Choose, train and evaluate one configuration on one fold; return record, probabilities,
    posterior, model."""
    X, y = dataset.X, dataset.y
    repeat, fold = split
    start = time.perf_counter()
    settings, rounds, valid_score = {}, config.rounds, None
    if config.early_stopping or len(config.grid(loss)) > 1:
        settings, rounds, valid_score = _select(
            dataset, config, score, backend, loss, split, train, on_fit
        )
    final = dataclasses.replace(config, **settings)
    estimator = make_estimator(backend, loss, final, y[train], rounds=rounds)
    weight = sample_weight(loss, final, y[train])
    _fit(backend, loss, fold, lambda: estimator.fit(X.iloc[train], y[train], sample_weight=weight))
    fit_seconds = time.perf_counter() - start
    proba, posterior = _predictions(
        estimator, backend, X.iloc[test], class_weights(loss, final, y[train]), config.multiclass
    )
    if on_fit is not None:
        on_fit(f"{backend} {loss}{_split_words(config, split)}: refit, {rounds} rounds")
    record = {"backend": backend, "loss": loss, "repeat": repeat, "fold": fold}
    blocks = tie_blocks(y[test], posterior)  # a block's probability against its observed rate
    if config.multiclass:
        record.update(multiclass_metrics(y[test], proba, dataset.rarest_class, posterior))
    else:
        record.update(_fold_metrics(y[test], proba, posterior))
    record.update(
        fit_seconds=fit_seconds,
        rounds=int(rounds),
        settings=settings,
        setting=config.setting_words(loss, settings),
        validation_score=valid_score,
        degenerate=degenerate_reason(y[test], proba),
        tie_block=blocks[0] if blocks else None,
        tie_blocks=blocks,
        n_train=int(len(train)),
        n_test=int(len(test)),
        n_positive_test=int(y[test].sum()),
    )
    return record, proba, posterior, estimator


def cross_validate(
    dataset: Dataset,
    config: CompareConfig,
    on_fit: Callable[[str], object] | None = None,
    keep_first_fold: bool = False,
) -> CompareResult:
    """Repeated stratified k-fold cross-validation of every (backend, loss) of ``config``.

    Parameters
    ----------
    dataset : Dataset
    config : CompareConfig
        Its ``n_classes`` is set from ``dataset`` (:meth:`CompareConfig.for_dataset`) when they
        differ; ``CompareResult.config`` is the config used.
    on_fit : callable, optional
        Called as ``on_fit(description)`` after each training (a grid setting on the inner split,
        or a refit), :func:`planned_fits` times in all (for progress displays).
    keep_first_fold : bool
        Keep the estimators trained on the first fold (for :func:`staged_probabilities`).

    Returns
    -------
    CompareResult
    """
    from sklearn.model_selection import RepeatedStratifiedKFold

    if config.n_classes != dataset.n_classes:
        config = config.for_dataset(dataset)
    check_folds(dataset, config.folds)
    score = make_score(config.metric)
    y = dataset.y
    splitter = RepeatedStratifiedKFold(
        n_splits=config.folds, n_repeats=config.repeats, random_state=config.seed
    )
    splits = [
        ((i // config.folds, i % config.folds), train, test)
        for i, (train, test) in enumerate(splitter.split(np.zeros(len(y)), y))
    ]
    records: list[dict[str, Any]] = []
    oof: dict[tuple[str, str], NDArray[np.float64]] = {}
    oof_posterior: dict[tuple[str, str], NDArray[np.float64]] = {}
    first_fold: dict[Any, Any] = {"train_index": splits[0][1]} if keep_first_fold else {}
    for (backend, loss), (found, out, out_posterior, estimator) in zip(
        config.configurations(),
        _each_configuration(dataset, config, score, splits, on_fit, keep_first_fold),
        strict=True,
    ):
        records += found  # a loss without a row has no configuration: the report says why
        oof[(backend, loss)] = out
        oof_posterior[(backend, loss)] = out_posterior
        if keep_first_fold:
            first_fold[(backend, loss)] = estimator
    return CompareResult(
        records=records,
        oof_proba=oof,
        first_fold=first_fold,
        config=config,
        oof_posterior=oof_posterior,
    )


def _configuration(dataset, config, score, backend, loss, splits, on_fit, keep_first_fold):
    """Every fold of one configuration: (records, out-of-fold probabilities, out-of-fold
    posterior, first-fold model)."""
    if config.jobs > 1:  # in a worker process: load the kernels before the first timed fit
        _warm_up(dataset, dataclasses.replace(config, backends=(backend,), losses=(loss,)))
    shape = (len(dataset.y), dataset.n_classes) if config.multiclass else (len(dataset.y),)
    out, out_posterior = np.full(shape, np.nan), np.full(shape, np.nan)
    records, first, same = [], None, True
    for split, train, test in splits:
        record, proba, posterior, estimator = _fit_configuration(
            dataset, config, score, backend, loss, split, train, test, on_fit
        )
        same = same and posterior is proba
        if split[0] == 0:
            out[test] = proba
            out_posterior[test] = posterior
        records.append(record)
        if keep_first_fold and split == (0, 0):
            first = estimator
    # One array where the probabilities are the posterior (a plain built-in objective).
    return records, out, out if same else out_posterior, first


def _each_configuration(dataset, config, score, splits, on_fit, keep_first_fold):
    """Yield :func:`_configuration` of every configuration, in order; with ``config.jobs`` > 1
    they run in that many worker processes (progress advances as each one finishes)."""
    pairs = config.configurations()
    if config.jobs <= 1 or len(pairs) <= 1:
        yield from _in_one_process(dataset, config, score, splits, on_fit, keep_first_fold)
        return
    from joblib import Parallel, delayed

    tasks = (
        delayed(_configuration)(
            dataset, config, score, backend, loss, splits, None, keep_first_fold
        )
        for backend, loss in pairs
    )
    try:
        results = Parallel(n_jobs=min(config.jobs, len(pairs)), return_as="generator")(tasks)
    except TypeError:  # joblib < 1.3: no generator, all at once
        results = Parallel(n_jobs=min(config.jobs, len(pairs)))(tasks)
    single = dataclasses.replace(config, folds=1, repeats=1)
    for (backend, loss), result in zip(pairs, results, strict=True):
        if on_fit is not None:
            for _ in range(
                planned_fits(dataclasses.replace(single, backends=(backend,), losses=(loss,)))
                * len(splits)
            ):
                on_fit(f"{backend} {loss}: done")
        yield result


def _in_one_process(dataset, config, score, splits, on_fit, keep_first_fold):
    """:func:`_each_configuration` in this process: the built-in losses first, while a helper
    process compiles the custom losses' kernels (:func:`_compile_beside`), then the warm-up here
    and the custom losses; yielded in table order (each configuration's results depend on its
    own seeds only, not on the order)."""
    pairs = config.configurations()
    custom = [pair for pair in pairs if _is_custom(config, pair[1], dataset.y)]
    X, y = _tiny_data(dataset)
    helper = _compile_beside(X, y, config, custom, dataset.y.shape[0])
    try:
        done = {}
        for backend, loss in [pair for pair in pairs if pair not in custom]:
            done[backend, loss] = _configuration(
                dataset, config, score, backend, loss, splits, on_fit, keep_first_fold
            )
        _warm_up_fits(
            X, y, config, custom[::-1] if helper is not None else custom, dataset.y.shape[0]
        )
    finally:
        if helper is not None:
            _stop(helper)
    for backend, loss in pairs:
        if (backend, loss) not in done:
            done[backend, loss] = _configuration(
                dataset, config, score, backend, loss, splits, on_fit, keep_first_fold
            )
        yield done.pop((backend, loss))


def staged_probabilities(
    estimator: XGBClassifier | LGBMClassifier,
    backend: str,
    X: Any,
    rounds: Iterable[int],
    multiclass: bool = False,
) -> dict[int, NDArray[np.float64]]:
    """Probabilities of the positive class (of every class when ``multiclass``) after each of
    ``rounds`` boosting rounds.

    Parameters
    ----------
    estimator : fitted boostloss estimator
    backend : str
        A key of :data:`~boostloss.compare.BACKENDS`: says how to predict with the first trees.
    X : DataFrame
        Rows to predict (the training rows, to see what the loss saw).
    rounds : sequence of int
        Numbers of trees to use, each >= 1.

    Returns
    -------
    dict
        ``round -> probabilities of the positive class`` using the first ``round`` trees.
    """
    first_trees = BACKENDS[backend].first_trees
    return {k: _probabilities(estimator, X, multiclass, **first_trees(k)) for k in rounds}
