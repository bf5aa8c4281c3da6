"""Reading the data of a comparison: the built-in dataset, CSV / parquet files, the target (binary,
or K >= 3 classes).

Everything here turns input into a :class:`Dataset` or raises :class:`DataError` with a message
that says what is wrong and what to do; nothing trains.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import pathlib
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ..losses._validation import describe_values

__all__ = ["DataError", "Dataset", "load_default_dataset", "load_table", "read_table"]


class DataError(ValueError):
    """Input the command cannot use; the message says what is wrong and what to do."""


@dataclasses.dataclass
class Dataset:
    """A binary or multi-class task ready for cross-validation.

    Attributes
    ----------
    name : str
        Short name shown in the table header.
    X : pandas.DataFrame
        Features: numeric columns (NaN for missing) and ``category`` columns for strings.
    y : ndarray of shape (n,), int8
        Binary: 1 for the positive class, 0 otherwise. Multi-class: the class index 0..K-1
        (into ``classes``).
    description : str
        One line on where the data comes from and what the positive class is.
    notes : list of str
        Things about the reading the user should know (e.g. a numeric column with a few text
        values, read as categories), one line each.
    """

    name: str
    X: pd.DataFrame
    y: np.ndarray
    description: str = ""
    notes: list[str] = dataclasses.field(default_factory=list)
    #: Multi-class: the class labels (as text), in the order of the indices in ``y``; None: binary.
    classes: list[str] | None = None

    @property
    def n_positive(self) -> int:
        """Number of positive rows (binary)."""
        return int(self.y.sum())

    @property
    def n_classes(self) -> int:
        """2 for a binary task, K for a multi-class one."""
        return 2 if self.classes is None else len(self.classes)

    @property
    def class_counts(self) -> NDArray[np.intp]:
        """Rows per class, in class order."""
        return np.bincount(np.asarray(self.y, dtype=np.int64), minlength=self.n_classes)

    @property
    def rarest_class(self) -> int:
        """Index of the class with the fewest rows (the first of them on a tie)."""
        return int(np.argmin(self.class_counts))

    @property
    def categorical_columns(self) -> list[Any]:
        """Names of the columns passed to the backends as categories."""
        return [c for c in self.X.columns if isinstance(self.X[c].dtype, pd.CategoricalDtype)]


def load_default_dataset() -> Dataset:
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


def first_line(exc):
    """The first line of an exception's message (its type name when the message is empty)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# -- files --------------------------------------------------------------------------------------

_CSV_SUFFIXES = {".csv", ".txt", ".tsv", ".tab", ".dat"}
_COMPRESSION_SUFFIXES = {".gz", ".bz2", ".xz", ".zip", ".zst"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}


def read_table(path: str | os.PathLike[str], na_values: Sequence[str] = ()) -> pd.DataFrame:
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
        return _read_parquet(p, path)
    text_suffix = suffixes[-2] if last in _COMPRESSION_SUFFIXES and len(suffixes) > 1 else last
    if last not in _CSV_SUFFIXES | _COMPRESSION_SUFFIXES | {""} or (
        last in _COMPRESSION_SUFFIXES and text_suffix not in _CSV_SUFFIXES | {last}
    ):
        raise DataError(
            f"cannot read {path}: unsupported file type {''.join(p.suffixes[-2:])!r}; use CSV "
            "(.csv, optionally compressed as .csv.gz) or parquet (.parquet)"
        )
    _check_not_empty(p, path)
    sep = "\t" if text_suffix in (".tsv", ".tab") else ","
    return _read_delimited(p, path, sep, list(na_values))


def _check_not_empty(p, path):
    if p.stat().st_size == 0:
        raise DataError(f"{path} is empty; give a file with a header row and data rows")


def _read_parquet(p, path):
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise DataError(
            f"reading {path} needs pyarrow: pip install pyarrow, or convert the file to CSV"
        ) from None
    _check_not_empty(p, path)
    try:
        return pd.read_parquet(p)
    except Exception as exc:
        raise DataError(
            f"cannot read {path} as parquet ({first_line(exc)}); check the file"
        ) from None


def _read_delimited(p, path, sep, na_values):
    # low_memory=False: each column's type is inferred from the whole column, not chunk by chunk
    # (which makes a mixed column's values depend on where the chunks fall, and warns).
    options = dict(na_values=na_values, compression="infer", low_memory=False)
    try:
        frame = pd.read_csv(p, sep=sep, **options)
        if frame.shape[1] == 1 and sep == ",":
            # A one-column read of a semicolon- or tab-separated file: try those delimiters.
            header = str(frame.columns[0])
            other = ";" if ";" in header else "\t" if "\t" in header else None
            if other is not None:
                frame = pd.read_csv(p, sep=other, **options)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty; give a file with a header row and data rows") from None
    except UnicodeDecodeError:
        raise DataError(
            f"cannot read {path} as CSV: it is not UTF-8 text; give a CSV (optionally gzip) or "
            "parquet file"
        ) from None
    except (
        pd.errors.ParserError,
        OSError,
        EOFError,
        zlib.error,
        gzip.BadGzipFile,
        ValueError,
    ) as exc:
        raise DataError(f"cannot read {path} as CSV ({first_line(exc)}); check the file") from None
    return frame


# -- features and target ------------------------------------------------------------------------


def _as_features(frame):
    """Numeric columns as float, booleans as 0/1, everything else as pandas categories."""
    columns = {}
    for name in frame.columns:
        col = frame[name]
        if (
            pd.api.types.is_bool_dtype(col)
            or pd.api.types.is_numeric_dtype(col)
            and not isinstance(col.dtype, pd.CategoricalDtype)
        ):
            columns[name] = col.astype("float64")
        else:
            # One category per distinct string; missing values stay missing.
            as_text = col.astype("object").where(col.notna(), None)
            as_text = as_text.map(lambda v: v if v is None else str(v))
            columns[name] = as_text.astype("category")
    return pd.DataFrame(columns, index=frame.index)


def _sorted_distinct(values):
    distinct = pd.unique(values)
    try:
        return np.sort(distinct)
    except TypeError:
        return np.array(sorted(distinct, key=str), dtype=object)


def _zero_one_target(values, distinct, target):
    numeric = pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
    if numeric and set(np.asarray(distinct, dtype=float)) <= {0.0, 1.0}:
        return np.asarray(values, dtype=float).astype(np.int8)
    raise DataError(
        f"target {target!r} has two values but is not coded 0/1 (values: "
        f"{describe_values(distinct)}); pass --positive LABEL to say which value is the positive "
        "class"
    )


def _positive_target(values, distinct, target, positive):
    matches = [v for v in distinct if str(v) == positive]
    if not matches:
        try:
            wanted = float(positive)
            matches = [
                v for v in distinct if isinstance(v, (int, float, np.number)) and v == wanted
            ]
        except ValueError:
            pass
    if not matches:
        raise DataError(
            f"--positive {positive!r} is not a value of target {target!r} (values: "
            f"{describe_values(distinct)}); pass one of them"
        )
    return np.asarray(values.isin(matches), dtype=np.int8)


def _multiclass_target(values, distinct):
    """Class indices 0..K-1 (in sorted label order) and the labels as text."""
    codes = pd.Index(distinct).get_indexer(values)
    return codes.astype(np.int8 if len(distinct) <= 127 else np.int16), [str(v) for v in distinct]


def _target(values, target, positive):
    """(labels, classes): 0/1 labels and None, or class indices and the class labels (K >= 3
    values and no ``positive``)."""
    distinct = _sorted_distinct(values)
    if positive is None and len(distinct) >= 3:
        if 2 * len(distinct) >= len(values):
            # Two rows per class or fewer on average: a continuous value or an identifier.
            raise DataError(
                f"target {target!r} has {len(distinct)} distinct values in {len(values)} rows "
                f"(values: {describe_values(distinct)}); too many for class labels (a multi-class "
                "target needs more than 2 rows per class on average): give a label column, or "
                "pass --positive LABEL for one value against the rest"
            )
        return _multiclass_target(values, distinct)
    return _binary_target(values, distinct, target, positive), None


def _binary_target(values, distinct, target, positive):
    """0/1 labels from a target column; ``positive`` picks the positive value when given."""
    if positive is None:
        y = _zero_one_target(values, distinct, target)
    else:
        y = _positive_target(values, distinct, target, positive)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.shape[0]:
        only = "positive" if n_pos else "negative"
        raise DataError(
            f"target {target!r} has a single class (every row is {only}); compare needs rows of "
            "both classes"
        )
    return y


# -- a file as a Dataset ------------------------------------------------------------------------


def load_table(
    path: str | os.PathLike[str],
    target: str,
    positive: str | float | None = None,
    drop: Sequence[str] = (),
    na_values: Sequence[str] = (),
    max_rows: int | None = None,
    seed: int = 0,
    merge_rare: int | None = None,
) -> Dataset:
    """Load a file as a binary or multi-class :class:`Dataset`.

    A target with K >= 3 distinct values and no ``positive`` is a multi-class task (classes in
    sorted order); with ``positive`` it is that value against the rest.

    Parameters
    ----------
    path : str or path-like
        CSV (plain or compressed) or parquet file; see :func:`read_table`.
    target : str
        Name of the label column. Rows with a missing label are dropped.
    positive : str, optional
        The value of ``target`` that is the positive class (compared as text, or as a number
        when the column is numeric). Needed for a two-valued target not coded 0/1.
    drop : sequence of str
        Columns not to use as features.
    na_values : sequence of str
        Extra strings read as missing values (e.g. ``"unknown"``).
    max_rows : int, optional
        Keep a stratified random subsample of this many rows (same class rates, seeded by
        ``seed``).
    merge_rare : int, optional
        Multi-class: merge the classes with fewer than this many rows (after subsampling) into
        one class, labelled ``"other (a+b+...)"``, placed last.

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
    _check_columns(frame, path, target, drop)
    frame = _labelled_rows(frame, path, target)
    y, classes = _target(frame[target], target, positive)
    features = frame.drop(columns=[target, *drop])
    notes = _mostly_numeric_notes(features)
    X = _feature_frame(features, path, target)
    if max_rows is not None and max_rows < X.shape[0]:
        X, y = _stratified_subsample(X, y, max_rows, seed)
    name = pathlib.Path(path).name
    if classes is not None:
        y, classes = _present_classes(y, classes)  # a subsample may hold no row of a tiny class
        if merge_rare is not None:
            y, classes, merged = merge_rare_classes(y, classes, merge_rare)
            if merged:
                notes.append(f"classes with fewer than {merge_rare} rows merged into one: {merged}")
        if len(classes) < 3:
            raise DataError(
                f"target {target!r} has {len(classes)} classes after merging the rare ones; pass "
                "--positive LABEL for a binary comparison"
            )
        return Dataset(
            name=name,
            X=X,
            y=y,
            notes=notes,
            classes=classes,
            description=f"{name}; {len(classes)} classes of {target}",
        )
    label = f"{target} == {positive!r}" if positive is not None else f"{target} == 1"
    return Dataset(name=name, X=X, y=y, description=f"{name}; positive = {label}", notes=notes)


def _present_classes(y, classes):
    """The labels and classes without the classes that have no row."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=len(classes))
    if np.all(counts > 0):
        return y, classes
    new_index = np.cumsum(counts > 0) - 1
    return new_index[y].astype(y.dtype), [c for c, n in zip(classes, counts, strict=True) if n > 0]


def merge_rare_classes(y, classes, min_rows):
    """Merge the classes with fewer than ``min_rows`` rows into one, placed last.

    Returns
    -------
    (y, classes, merged) : the new class indices and labels, and the merged labels in words
    ("" when no class was merged). One rare class alone is left as it is (nothing to merge it
    with).
    """
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=len(classes))
    rare = [k for k in range(len(classes)) if counts[k] < min_rows]
    if len(rare) < 2:
        return y, classes, ""
    kept = [k for k in range(len(classes)) if k not in rare]
    new_index = np.empty(len(classes), dtype=np.int64)
    new_index[kept] = np.arange(len(kept))
    new_index[rare] = len(kept)
    words = "+".join(classes[k] for k in rare)
    merged = [classes[k] for k in kept] + [f"other ({words})"]
    details = ", ".join(f"{classes[k]!r} ({counts[k]})" for k in rare)
    return new_index[y].astype(y.dtype), merged, details


def _check_columns(frame, path, target, drop):
    if frame.shape[0] == 0:
        raise DataError(f"{path} has no data rows; give a file with a header row and data rows")
    if target not in frame.columns:
        near = [c for c in frame.columns if str(c).lower() == target.lower()]
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise DataError(
            f"target column {target!r} not found in {path}; {hint}columns are: "
            f"{describe_values(list(frame.columns))}"
        )
    unknown = [c for c in drop if c not in frame.columns]
    if unknown:
        raise DataError(f"--drop: column {unknown[0]!r} not found in {path}")


def _labelled_rows(frame, path, target):
    labelled = frame[target].notna()
    if not labelled.any():
        raise DataError(f"target column {target!r} in {path} is empty; every label is missing")
    return frame.loc[labelled].reset_index(drop=True)


def _mostly_numeric_notes(features):
    """Lines naming text columns whose values are numbers but for a few (e.g. ``?`` for missing)."""
    notes = []
    for name in features.columns:
        col = features[name]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            continue
        present = col.dropna()
        if present.empty:
            continue
        as_number = pd.to_numeric(present.astype(str), errors="coerce")
        failed = present[as_number.isna()]
        if 0 < failed.shape[0] < 0.05 * present.shape[0]:
            examples = ", ".join(repr(str(v)) for v in pd.unique(failed.astype(str))[:3])
            notes.append(
                f"column {name!r} holds numbers but {failed.shape[0]} of {present.shape[0]} values "
                f"are not (e.g. {examples}): read as categories; pass --na-values to read those "
                "as missing and the column as numbers"
            )
    return notes


def _feature_frame(features, path, target):
    if features.shape[1] == 0:
        raise DataError(f"{path} has no feature columns besides the target {target!r}")
    X = _as_features(features)
    if all(X[c].nunique(dropna=True) <= 1 for c in X.columns):
        raise DataError(
            f"no feature column of {path} varies (each holds at most one distinct value); "
            "give columns that can predict the target"
        )
    return X


def _stratified_subsample(X, y, max_rows, seed):
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(
        np.arange(X.shape[0]), train_size=max_rows, stratify=y, random_state=seed
    )
    keep = np.sort(keep)
    return X.iloc[keep].reset_index(drop=True), y[keep]
