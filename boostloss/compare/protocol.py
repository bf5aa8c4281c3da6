"""The engine of ``boostloss compare``: data loading, cross-validation, metrics and the summary.

The command-line layer (:mod:`boostloss.cli`) parses arguments, shows progress and writes files;
everything here is importable and free of printing, so benchmarks and notebooks can call it too::

    from boostloss.compare import CompareConfig, load_default_dataset, cross_validate, summarize
    result = cross_validate(load_default_dataset(), CompareConfig(folds=3, rounds=50))
    rows = summarize(result.records)

Every configuration (a loss on a backend) is trained on the same stratified folds; metrics are
computed on the held-out fold from the probabilities the estimators return.
"""

import contextlib
import dataclasses
import gzip
import math
import pathlib
import time
import zlib

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

__all__ = [
    "BACKENDS",
    "LOSSES",
    "METRICS",
    "CompareConfig",
    "CompareResult",
    "DataError",
    "Dataset",
    "best_per_metric",
    "cross_validate",
    "load_default_dataset",
    "load_table",
    "make_estimator",
    "staged_gradient_norms",
    "summarize",
]

#: Backends, in table order.
BACKENDS = ("xgboost", "lightgbm")

#: Loss keys accepted by ``--losses``, in table order, with the label shown in the table.
LOSSES = {
    "logistic": "logistic",
    "weighted": "weighted logistic",
    "focal": "focal",
    "ghm": "GHM-C",
}

#: Metric key -> (column title, True when larger is better).
METRICS = {
    "average_precision": ("AP", True),
    "roc_auc": ("ROC-AUC", True),
    "log_loss": ("log loss", False),
    "brier": ("Brier", False),
    "fit_seconds": ("fit s", False),
}

_SHOWN_VALUES = 6


class DataError(ValueError):
    """Input the command cannot use; the message says what is wrong and what to do."""


@dataclasses.dataclass
class Dataset:
    """A binary task ready for cross-validation.

    Attributes
    ----------
    name : str
        Short name shown in the table header.
    X : pandas.DataFrame
        Features: numeric columns (NaN for missing) and ``category`` columns for strings.
    y : ndarray of shape (n,), int8
        1 for the positive class, 0 otherwise.
    description : str
        One line on where the data comes from and what the positive class is.
    """

    name: str
    X: pd.DataFrame
    y: np.ndarray
    description: str = ""

    @property
    def n_positive(self):
        """Number of positive rows."""
        return int(self.y.sum())

    @property
    def categorical_columns(self):
        """Names of the columns passed to the backends as categories."""
        return [c for c in self.X.columns if isinstance(self.X[c].dtype, pd.CategoricalDtype)]


@dataclasses.dataclass
class CompareConfig:
    """What to compare and how.

    Attributes
    ----------
    backends : tuple of str
        Subset of :data:`BACKENDS`.
    losses : tuple of str
        Subset of the keys of :data:`LOSSES`.
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
        Threads per model. 1 by default: the models are small, and OpenMP threads competing for
        busy cores slow training down by orders of magnitude rather than speeding it up.
    """

    backends: tuple = ("xgboost", "lightgbm")
    losses: tuple = tuple(LOSSES)
    folds: int = 5
    rounds: int = 200
    learning_rate: float = 0.1
    seed: int = 0
    gamma: float = 2.0
    alpha: float | None = 0.25
    bins: int = 10
    n_jobs: int = 1

    def loss_label(self, loss):
        """Table label of a loss key, with its parameters."""
        if loss == "focal":
            alpha = "none" if self.alpha is None else f"{self.alpha:g}"
            return f"focal (gamma={self.gamma:g}, alpha={alpha})"
        if loss == "ghm":
            return f"GHM-C ({self.bins} bins)"
        return LOSSES[loss]


@dataclasses.dataclass
class CompareResult:
    """Everything one comparison produced.

    Attributes
    ----------
    records : list of dict
        One per (backend, loss, fold): the metrics of the held-out fold, the fit time, sizes.
    oof_proba : dict
        ``(backend, loss) -> ndarray`` of out-of-fold probabilities of the positive class
        (every row is predicted by the one model that did not see it).
    first_fold : dict
        ``(backend, loss) -> estimator`` trained on the first fold, and ``"train_index"``: the
        rows it was trained on (for the gradient-norm plot).
    """

    records: list
    oof_proba: dict
    first_fold: dict


# -- data -------------------------------------------------------------------------------------


def load_default_dataset():
    """The built-in task: Wisconsin breast cancer with the malignant class made rare.

    scikit-learn's bundled copy of the Breast Cancer Wisconsin (Diagnostic) data (569 tumours,
    30 numeric features, 212 malignant) is available offline on every install. To make the task
    imbalanced, every benign tumour is kept and only every 5th malignant one in file order
    (rows 0, 5, 10, ... of the malignant rows): 357 benign + 43 malignant = 400 rows, 10.75%
    positive. The positive class is *malignant*. Deterministic: no random numbers are involved.

    Returns
    -------
    Dataset
    """
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    malignant = bunch.target.to_numpy() == 0  # scikit-learn codes malignant as 0
    malignant_rank = np.cumsum(malignant) - 1
    keep = ~malignant | (malignant_rank % 5 == 0)
    X = bunch.data.loc[keep].reset_index(drop=True)
    y = malignant[keep].astype(np.int8)
    return Dataset(
        name="breast_cancer (built-in, malignant made rare)",
        X=X,
        y=y,
        description=(
            "scikit-learn's Breast Cancer Wisconsin data; all benign tumours and every 5th "
            "malignant one; positive = malignant"
        ),
    )


def _short(exc):
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _show_values(values):
    shown = ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in values[:_SHOWN_VALUES])
    more = len(values) - _SHOWN_VALUES
    return shown + (f" and {more} more" if more > 0 else "")


_CSV_SUFFIXES = {".csv", ".txt", ".tsv", ".tab", ".dat"}
_COMPRESSION_SUFFIXES = {".gz", ".bz2", ".xz", ".zip", ".zst"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}


def read_table(path, na_values=()):
    """Read a CSV (plain or compressed) or parquet file into a DataFrame.

    The format follows the file name: ``.parquet`` / ``.pq`` is parquet (needs pyarrow); ``.csv``,
    ``.tsv``, ``.txt``, optionally followed by ``.gz``, ``.bz2``, ``.xz``, ``.zip`` or ``.zst``, is
    delimited text (``.tsv``: tabs; otherwise commas, or semicolons / tabs when the header holds
    no comma but one of those).

    Raises
    ------
    DataError
        Missing, empty or unreadable file, or an unsupported file type.
    """
    p = pathlib.Path(path)
    if not p.exists():
        raise DataError(f"file not found: {path}; give the path of a CSV or parquet file")
    if p.is_dir():
        raise DataError(f"{path} is a directory; give the path of a CSV or parquet file")
    suffixes = [s.lower() for s in p.suffixes]
    last = suffixes[-1] if suffixes else ""
    if last in _PARQUET_SUFFIXES:
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise DataError(
                f"reading {path} needs pyarrow: pip install pyarrow, or convert the file to CSV"
            ) from None
        if p.stat().st_size == 0:
            raise DataError(f"{path} is empty; give a file with a header row and data rows")
        try:
            return pd.read_parquet(p)
        except Exception as exc:
            raise DataError(f"cannot read {path} as parquet ({_short(exc)}); check the file") from None
    text_suffix = suffixes[-2] if last in _COMPRESSION_SUFFIXES and len(suffixes) > 1 else last
    if last not in _CSV_SUFFIXES | _COMPRESSION_SUFFIXES | {""} or (
        last in _COMPRESSION_SUFFIXES and text_suffix not in _CSV_SUFFIXES | {last}
    ):
        raise DataError(
            f"cannot read {path}: unsupported file type {''.join(p.suffixes[-2:])!r}; use CSV "
            "(.csv, optionally compressed as .csv.gz) or parquet (.parquet)"
        )
    if p.stat().st_size == 0:
        raise DataError(f"{path} is empty; give a file with a header row and data rows")
    sep = "\t" if text_suffix in (".tsv", ".tab") else ","
    try:
        frame = pd.read_csv(p, sep=sep, na_values=list(na_values), compression="infer")
        if frame.shape[1] == 1 and sep == ",":
            # A one-column read of a semicolon- or tab-separated file: try those delimiters.
            header = str(frame.columns[0])
            other = ";" if ";" in header else "\t" if "\t" in header else None
            if other is not None:
                frame = pd.read_csv(p, sep=other, na_values=list(na_values), compression="infer")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty; give a file with a header row and data rows") from None
    except UnicodeDecodeError:
        raise DataError(
            f"cannot read {path} as CSV: it is not UTF-8 text; give a CSV (optionally gzip) or "
            "parquet file"
        ) from None
    except (pd.errors.ParserError, OSError, EOFError, zlib.error, gzip.BadGzipFile, ValueError) as exc:
        raise DataError(f"cannot read {path} as CSV ({_short(exc)}); check the file") from None
    return frame


def _as_features(frame):
    """Numeric columns as float, booleans as 0/1, everything else as pandas categories."""
    columns = {}
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_bool_dtype(col):
            columns[name] = col.astype("float64")
        elif pd.api.types.is_numeric_dtype(col) and not isinstance(col.dtype, pd.CategoricalDtype):
            columns[name] = col.astype("float64")
        else:
            # One category per distinct string; missing values stay missing.
            as_text = col.astype("object").where(col.notna(), None)
            as_text = as_text.map(lambda v: v if v is None else str(v))
            columns[name] = as_text.astype("category")
    return pd.DataFrame(columns, index=frame.index)


def _binary_target(values, target, positive):
    """0/1 labels from a target column; ``positive`` picks the positive value when given."""
    distinct = pd.unique(values)
    try:
        distinct = np.sort(distinct)
    except TypeError:
        distinct = np.array(sorted(distinct, key=str), dtype=object)
    if positive is None:
        numeric = pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
        if numeric and set(np.asarray(distinct, dtype=float)) <= {0.0, 1.0}:
            y = np.asarray(values, dtype=float).astype(np.int8)
        else:
            raise DataError(
                f"target {target!r} is not coded 0/1 (values: {_show_values(distinct)}); pass "
                "--positive LABEL to say which value is the positive class"
            )
    else:
        matches = [v for v in distinct if str(v) == positive]
        if not matches:
            try:
                wanted = float(positive)
                matches = [v for v in distinct if isinstance(v, (int, float, np.number)) and v == wanted]
            except ValueError:
                pass
        if not matches:
            raise DataError(
                f"--positive {positive!r} is not a value of target {target!r} (values: "
                f"{_show_values(distinct)}); pass one of them"
            )
        y = np.asarray(values.isin(matches), dtype=np.int8)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.shape[0]:
        only = "positive" if n_pos else "negative"
        raise DataError(
            f"target {target!r} has a single class (every row is {only}); compare needs rows of "
            "both classes"
        )
    return y


def load_table(path, target, positive=None, drop=(), na_values=(), max_rows=None, seed=0):
    """Load a file as a binary :class:`Dataset`.

    Parameters
    ----------
    path : str or path-like
        CSV (plain or compressed) or parquet file; see :func:`read_table`.
    target : str
        Name of the label column. Rows with a missing label are dropped.
    positive : str, optional
        The value of ``target`` that is the positive class (compared as text, or as a number
        when the column is numeric). Needed unless the target is coded 0/1.
    drop : sequence of str
        Columns not to use as features.
    na_values : sequence of str
        Extra strings read as missing values (e.g. ``"unknown"``).
    max_rows : int, optional
        Keep a stratified random subsample of this many rows (same positive rate, seeded by
        ``seed``).

    Returns
    -------
    Dataset
        Numeric features as float64 with NaN for missing, every other column (strings, mixed)
        as a pandas ``category`` column, which both backends split on natively.

    Raises
    ------
    DataError
    """
    if target is None:
        raise DataError("--target COLUMN is required with a data file: name the label column")
    frame = read_table(path, na_values)
    if frame.shape[0] == 0:
        raise DataError(f"{path} has no data rows; give a file with a header row and data rows")
    if target not in frame.columns:
        near = [c for c in frame.columns if str(c).lower() == target.lower()]
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise DataError(
            f"target column {target!r} not found in {path}; {hint}columns are: "
            f"{_show_values(list(frame.columns))}"
        )
    unknown = [c for c in drop if c not in frame.columns]
    if unknown:
        raise DataError(f"--drop: column {unknown[0]!r} not found in {path}")
    labelled = frame[target].notna()
    if not labelled.any():
        raise DataError(f"target column {target!r} in {path} is empty; every label is missing")
    frame = frame.loc[labelled].reset_index(drop=True)
    y = _binary_target(frame[target], target, positive)
    features = frame.drop(columns=[target, *drop])
    if features.shape[1] == 0:
        raise DataError(f"{path} has no feature columns besides the target {target!r}")
    X = _as_features(features)
    if all(X[c].nunique(dropna=True) <= 1 for c in X.columns):
        raise DataError(
            f"no feature column of {path} varies (each holds at most one distinct value); "
            "give columns that can predict the target"
        )
    if max_rows is not None and max_rows < X.shape[0]:
        keep, _ = train_test_split(
            np.arange(X.shape[0]), train_size=max_rows, stratify=y, random_state=seed
        )
        keep = np.sort(keep)
        X = X.iloc[keep].reset_index(drop=True)
        y = y[keep]
    name = pathlib.Path(path).name
    label = f"{target} == {positive!r}" if positive is not None else f"{target} == 1"
    return Dataset(name=name, X=X, y=y, description=f"{name}; positive = {label}")


# -- models -----------------------------------------------------------------------------------


def _loss_object(loss, config):
    from .losses import FocalLoss, GHMLoss

    if loss == "focal":
        return FocalLoss(gamma=config.gamma, alpha=config.alpha)
    if loss == "ghm":
        return GHMLoss(bins=config.bins)
    return None


def make_estimator(backend, loss, config, y_train):
    """A fresh, unfitted estimator for one configuration.

    ``"logistic"`` is the backend's built-in logistic objective; ``"weighted"`` is the same with
    ``scale_pos_weight = n_negative / n_positive`` of the training labels (what LightGBM's
    ``is_unbalance`` computes); ``"focal"`` and ``"ghm"`` are :class:`~boostloss.FocalLoss` and
    :class:`~boostloss.GHMLoss`. Every other parameter is the backend's default.
    """
    from .estimators import LGBMClassifier, XGBClassifier

    params = {
        "n_estimators": config.rounds,
        "learning_rate": config.learning_rate,
        "random_state": config.seed,
        "n_jobs": config.n_jobs,
    }
    if loss == "weighted":
        n_pos = int(np.sum(y_train))
        params["scale_pos_weight"] = (len(y_train) - n_pos) / n_pos
    if backend == "xgboost":
        return XGBClassifier(loss=_loss_object(loss, config), enable_categorical=True, **params)
    if backend == "lightgbm":
        return LGBMClassifier(loss=_loss_object(loss, config), verbose=-1, **params)
    raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")


def _backend_errors():
    # The errors the libraries raise for data they cannot train on (e.g. no usable feature).
    from lightgbm.basic import LightGBMError
    from xgboost.core import XGBoostError

    return (LightGBMError, XGBoostError)


def _positive_proba(estimator, X, **kwargs):
    proba = np.asarray(estimator.predict_proba(X, **kwargs))
    return proba[:, 1] if proba.ndim == 2 else proba


def _fold_metrics(y_true, proba):
    proba = np.clip(proba, 0.0, 1.0)
    return {
        "average_precision": float(average_precision_score(y_true, proba)),
        "roc_auc": float(roc_auc_score(y_true, proba)),
        "log_loss": float(log_loss(y_true, proba, labels=[0, 1])),
        "brier": float(brier_score_loss(y_true, proba)),
    }


def check_folds(dataset, folds):
    """Raise :class:`DataError` when a class has fewer rows than there are folds."""
    n_pos = dataset.n_positive
    n_neg = dataset.y.shape[0] - n_pos
    if min(n_pos, n_neg) < folds:
        which = "positive" if n_pos < n_neg else "negative"
        raise DataError(
            f"only {min(n_pos, n_neg)} {which} rows for {folds} folds; every fold needs one; "
            "lower --folds or use more data"
        )


def cross_validate(dataset, config, on_fit=None, keep_first_fold=False):
    """Stratified k-fold cross-validation of every (backend, loss) of ``config``.

    Parameters
    ----------
    dataset : Dataset
    config : CompareConfig
    on_fit : callable, optional
        Called as ``on_fit(backend, loss, fold)`` after each fit (for progress displays).
    keep_first_fold : bool
        Keep the estimators trained on the first fold (for :func:`staged_gradient_norms`).

    Returns
    -------
    CompareResult
    """
    check_folds(dataset, config.folds)
    with _numba_threads(config.n_jobs):
        return _cross_validate(dataset, config, on_fit, keep_first_fold)


@contextlib.contextmanager
def _numba_threads(n_jobs):
    # The loss kernels run in numba's thread pool. Each boosting round calls them on arrays of a
    # few thousand rows (and init_score on arrays of two): with more threads than free cores, the
    # pool's start-up dominates, so the kernels get the same thread budget as the models.
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n_jobs, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def _warm_up(dataset, config):
    # One tiny training per custom loss and backend loads (or, on a fresh install, compiles) the
    # numba kernels that the real trainings use, with the same dtypes, so that the first fold's
    # fit time measures training, not compilation.
    # Failures are left to the real trainings, which report them.
    positives = np.flatnonzero(dataset.y == 1)[:40]
    negatives = np.flatnonzero(dataset.y == 0)[:80]
    rows = np.concatenate([positives, negatives])
    X, y = dataset.X.iloc[rows], dataset.y[rows]
    tiny = dataclasses.replace(config, rounds=2)
    for backend in config.backends:
        for loss in config.losses:
            if _loss_object(loss, config) is not None:
                with contextlib.suppress(Exception):
                    make_estimator(backend, loss, tiny, y).fit(X, y)


def _cross_validate(dataset, config, on_fit, keep_first_fold):
    _warm_up(dataset, config)
    X, y = dataset.X, dataset.y
    splitter = StratifiedKFold(n_splits=config.folds, shuffle=True, random_state=config.seed)
    splits = list(splitter.split(np.zeros(len(y)), y))
    records = []
    oof = {}
    first_fold = {"train_index": splits[0][0]} if keep_first_fold else {}
    for backend in config.backends:
        for loss in config.losses:
            out = np.full(len(y), np.nan)
            for fold, (train, test) in enumerate(splits):
                estimator = make_estimator(backend, loss, config, y[train])
                start = time.perf_counter()
                try:
                    estimator.fit(X.iloc[train], y[train])
                except _backend_errors() as exc:
                    raise DataError(
                        f"{backend} could not train the {LOSSES[loss]} loss on fold {fold + 1} "
                        f"({_short(exc)}); check that the features vary and that there are "
                        "enough rows"
                    ) from None
                fit_seconds = time.perf_counter() - start
                proba = _positive_proba(estimator, X.iloc[test])
                out[test] = proba
                record = {"backend": backend, "loss": loss, "fold": fold}
                record.update(_fold_metrics(y[test], proba))
                record.update(
                    fit_seconds=fit_seconds,
                    n_train=int(len(train)),
                    n_test=int(len(test)),
                    n_positive_test=int(y[test].sum()),
                )
                records.append(record)
                if keep_first_fold and fold == 0:
                    first_fold[(backend, loss)] = estimator
                if on_fit is not None:
                    on_fit(backend, loss, fold)
            oof[(backend, loss)] = out
    return CompareResult(records=records, oof_proba=oof, first_fold=first_fold)


def summarize(records):
    """Mean and standard deviation over folds of each metric, one row per (backend, loss).

    Returns
    -------
    list of dict
        Keys ``backend``, ``loss``, ``folds``, and ``<metric>_mean`` / ``<metric>_std`` for every
        metric of :data:`METRICS`; in the order the configurations first appear in ``records``.
    """
    groups = {}
    for record in records:
        groups.setdefault((record["backend"], record["loss"]), []).append(record)
    rows = []
    for (backend, loss), group in groups.items():
        row = {"backend": backend, "loss": loss, "folds": len(group)}
        for metric in METRICS:
            values = np.array([r[metric] for r in group], dtype=float)
            row[f"{metric}_mean"] = float(values.mean())
            row[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        rows.append(row)
    return rows


def best_per_metric(rows, decimals=None):
    """Indices of the best rows (by the fold mean) for each metric of :data:`METRICS`.

    Parameters
    ----------
    rows : list of dict
        As returned by :func:`summarize`.
    decimals : dict, optional
        ``metric -> number of decimals``: compare the means rounded as they are shown, so that
        every row that looks best is marked.

    Returns
    -------
    dict
        ``metric -> set of row indices``; every tied row is included.
    """
    decimals = decimals or {}
    best = {}
    for metric, (_, larger_is_better) in METRICS.items():
        means = np.array([row[f"{metric}_mean"] for row in rows])
        if metric in decimals:
            means = np.round(means, decimals[metric])
        target = means.max() if larger_is_better else means.min()
        best[metric] = {i for i, m in enumerate(means) if math.isclose(m, target, rel_tol=1e-12, abs_tol=0.0)}
    return best


def staged_gradient_norms(estimator, backend, X, rounds):
    """Gradient norms ``|p - y|``'s ingredients after each of ``rounds`` boosting rounds.

    Parameters
    ----------
    estimator : fitted boostloss estimator
    backend : {"xgboost", "lightgbm"}
    X : DataFrame
        Rows to predict (the training rows, to see what the loss saw).
    rounds : sequence of int
        Numbers of trees to use, each >= 1.

    Returns
    -------
    dict
        ``round -> probabilities of the positive class`` using the first ``round`` trees.
    """
    staged = {}
    for k in rounds:
        if backend == "xgboost":
            staged[k] = _positive_proba(estimator, X, iteration_range=(0, int(k)))
        else:
            staged[k] = _positive_proba(estimator, X, num_iteration=int(k))
    return staged
