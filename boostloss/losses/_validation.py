"""Input validation at the public boundary: one place that turns user input into kernel input.

Every check raises ``ValueError`` (bad value) or ``TypeError`` (bad type) with a message that quotes
the offending value and says what is allowed. Nothing is coerced silently: labels must already be
0/1 (bool, int or float), margins must be real numbers, weights non-negative and finite. pandas'
nullable arrays (``boolean``, ``Int64``, ``Float64``, ...) and object arrays that hold only bools or
integers count as numbers; a missing value (``pd.NA``, ``None``) in them is an error, and strings
are never parsed.
"""

import numbers
import sys

import numpy as np

from .._kernels.cache import kernels

_EMPTY = np.empty(0, dtype=np.float64)
_MAX_SHOWN = 5


def describe_values(values):
    """The first few values, as ``repr`` shows them, and how many more there are."""
    shown = ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in values[:_MAX_SHOWN])
    more = len(values) - _MAX_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _raise_missing(name, missing, values):
    first = int(np.flatnonzero(missing)[0])
    raise ValueError(
        f"{name} has {int(np.count_nonzero(missing))} missing value(s) (first at index {first}: "
        f"{values[first]!r}); drop or fill them first"
    )


def _numeric_extension_array(name, values):
    """A pandas nullable array or Series (``boolean``, ``Int64``, ``Float64``, ``int64[pyarrow]``)
    as a numpy array of its numeric dtype, or None for anything else.

    Before pandas 2.2, ``np.asarray`` turns these into object arrays even without a missing value
    (pandas 2.2 converts them to their numpy dtype, but an ``Int64`` NA then becomes a float NaN).
    Reading the dtype first gives one behaviour on every pandas: numbers, and NA is an error.
    """
    dtype = getattr(values, "dtype", None)
    numpy_dtype = getattr(dtype, "numpy_dtype", None)
    if (
        isinstance(dtype, np.dtype)
        or not isinstance(numpy_dtype, np.dtype)
        or numpy_dtype.kind not in "biuf"
        or not hasattr(values, "to_numpy")
    ):
        return None
    missing = np.asarray(values.isna(), dtype=bool)
    if missing.any():
        _raise_missing(name, missing, np.asarray(values, dtype=object).ravel())
    return values.to_numpy(dtype=numpy_dtype)


def _is_missing(value):
    pandas = sys.modules.get("pandas")  # pd.NA can only exist if pandas is imported
    return (
        value is None
        or (pandas is not None and value is pandas.NA)
        or (isinstance(value, float) and value != value)
    )


def _numeric_object_array(name, arr):
    """An object array that holds only bools (-> bool) or integers (-> int64), else None.

    Such arrays come from ``pd.Series(..., dtype=object)`` or from pandas < 2.2 nullable arrays
    reaching us through another library. Strings and floats are not converted (the caller rejects
    them); a missing value among bools and integers is an error that quotes it.
    """
    flat = arr.ravel()
    if flat.size == 0:
        return None
    is_bool = np.fromiter((isinstance(v, (bool, np.bool_)) for v in flat), bool, flat.size)
    is_int = is_bool | np.fromiter((isinstance(v, numbers.Integral) for v in flat), bool, flat.size)
    if is_bool.all():
        return flat.astype(np.bool_).reshape(arr.shape)
    if is_int.all():
        try:
            return flat.astype(np.int64).reshape(arr.shape)
        except OverflowError:
            return None
    missing = np.fromiter((_is_missing(v) for v in flat), bool, flat.size)
    if missing.any() and (is_int | missing).all():
        _raise_missing(name, missing, flat)
    return None


def _as_1d(name, values, allow_2d=False):
    """``np.asarray`` with a clear error for the shapes and dtypes no loss can use (``allow_2d``:
    also (n, K) with K >= 2, the margins of a K-class model)."""
    if values is None:
        raise TypeError(f"{name} must be an array-like of numbers, got None")
    if hasattr(values, "__cuda_array_interface__") and not isinstance(values, np.ndarray):
        get = getattr(values, "get", None)
        if get is None:
            raise TypeError(
                f"{name} is a device array of type {type(values).__name__}; pass a host array "
                "(numpy, pandas, list) or use the CUDA kernels in boostloss.cuda"
            )
        values = get()
    arr = _numeric_extension_array(name, values)
    if arr is None:
        arr = np.asarray(values)
        if arr.dtype == object and arr.ndim:
            converted = _numeric_object_array(name, arr)
            arr = arr if converted is None else converted
    if arr.dtype == object or arr.dtype.kind in "USVMmc":
        kind = "complex" if arr.dtype.kind == "c" else str(arr.dtype)
        sample = describe_values(np.ravel(arr)[: _MAX_SHOWN + 1]) if arr.size else ""
        raise TypeError(
            f"{name} must hold real numbers, got dtype {kind}"
            + (f" (first values: {sample})" if sample else "")
        )
    if arr.ndim != 1 and not (allow_2d and arr.ndim == 2 and arr.shape[1] >= 2):
        if allow_2d:
            raise ValueError(
                f"{name} must be 1-D (one raw margin per sample: a binary model) or of shape "
                f"(n, K) with K >= 2 columns (one margin per class), got shape {arr.shape}"
            )
        raise ValueError(
            f"{name} must be 1-D with one entry per sample, got shape {arr.shape}; a binary loss "
            "takes one raw margin per sample"
        )
    return arr


def read_labels(y_true):
    """Labels as a contiguous float64 array (type and shape checked; values checked by the user of
    the labels, who knows how many classes the margins have: :func:`check_label_values`)."""
    return np.ascontiguousarray(_as_1d("y_true", y_true), dtype=np.float64)


def label_bound(y):
    """The largest label when every label is a class index (an integer >= 0), else inf.

    -1 for no labels. One pass; a label set is then valid for K classes iff ``bound <= K - 1``.
    """
    if not y.size:
        return -1.0
    top = float(y.max())  # nan when a label is nan
    if not (top >= 0.0 and np.isfinite(top)) or float(y.min()) < 0.0:
        return float("inf")
    if top <= 1.0:
        return top if np.all((y == 0.0) | (y == 1.0)) else float("inf")
    return top if np.array_equal(y, np.floor(y)) else float("inf")


def _label_repr(value):
    value = float(value)
    return int(value) if np.isfinite(value) and value.is_integer() else value


def check_label_values(y, bound, n_classes=None):
    """Raise unless every label is a class of the model: 0/1 for a binary model (``n_classes``
    None: one margin per sample), 0..K-1 for K classes. ``bound`` is :func:`label_bound`'s."""
    k = 2 if n_classes is None else n_classes
    if bound <= k - 1:
        return
    bad = ~((y >= 0.0) & (y <= k - 1) & (y == np.floor(y)))
    values = y[bad]
    offending = values if np.isnan(values).any() else np.unique(values)
    shown = describe_values([_label_repr(value) for value in offending])
    if n_classes is None:
        raise ValueError(
            "y_true must contain only 0 and 1 (binary labels, one margin per sample; for K classes "
            f"pass margins of shape (n, K)), got {int(bad.sum())} other value(s): {shown}"
        )
    raise ValueError(
        f"y_true must contain class indices 0..{k - 1} (integers: the margins have {k} columns, "
        f"one per class), got {int(bad.sum())} other value(s): {shown}"
    )


def check_labels(y_true):
    """Labels as a contiguous float64 array with values in {0, 1}."""
    y = read_labels(y_true)
    check_label_values(y, label_bound(y))
    return y


def check_margins(raw_prediction, n=None):
    """Margins as a float32 or float64 array (no copy when already one), all finite.

    1-D: one margin per sample (a binary model), made C-contiguous. 2-D of shape (n, K), K >= 2:
    one margin per class; C- or F-contiguous arrays are kept as they are (the frameworks hand over
    either), other layouts are copied to C order.
    """
    arr = _as_1d("raw_prediction", raw_prediction, allow_2d=True)
    if arr.dtype.kind not in "biuf":  # pragma: no cover - _as_1d rejects the rest
        raise TypeError(f"raw_prediction has unsupported dtype {arr.dtype}")
    keep = arr.dtype == np.float32 or arr.dtype == np.float64
    if arr.ndim == 2 and (arr.flags.c_contiguous or arr.flags.f_contiguous):
        x = arr if keep else np.asarray(arr, dtype=np.float64, order="K")
    else:
        x = np.ascontiguousarray(arr) if keep else np.ascontiguousarray(arr, dtype=np.float64)
    if n is not None and x.shape[0] != n:
        what = "entries" if x.ndim == 1 else "rows"
        raise ValueError(
            f"raw_prediction has {x.shape[0]} {what} but y_true has {n}; they must have the same "
            "length"
        )
    check_finite_margins(x)
    return x


#: Up to this many margins of a binary model, float32 margins are widened to float64 (exact, a few
#: microseconds) before the kernels read them (as float64 anyway): a small first training then
#: compiles its kernels for one margin dtype, where XGBoost's float32 and LightGBM's float64 would
#: each compile their own (0.2-0.6 s per kernel). Above it a copy would cost more per round than the
#: kernel's own pass at this size; the float32 kernels are compiled there.
WIDEN_UPTO = 4096


def widened(x):
    """``x``, or its float64 copy when it is float32, 1-D, and at most :data:`WIDEN_UPTO` long."""
    if x.dtype == np.float32 and x.ndim == 1 and x.shape[0] <= WIDEN_UPTO:
        return x.astype(np.float64)
    return x


#: Below this many margins the finiteness check is numpy's (``np.isfinite``, a temporary of one
#: byte per margin): a jitted pass is faster on large arrays (0.06 against 0.09 ms at 1M float32
#: margins), but compiling it is 0.1 s of a first small training, per margin dtype.
_NUMPY_CHECK_BELOW = 1 << 15


def compile_finiteness_check(dtype, n_margins=None):
    """Compile (or load) the jitted check of :func:`check_finite_margins` for margins of this
    dtype, when ``n_margins`` margins (None: any number) reach it: for a warm-up before a
    training whose small trial runs would not."""
    if n_margins is None or n_margins >= _NUMPY_CHECK_BELOW:
        check_finite_margins(np.zeros(_NUMPY_CHECK_BELOW, dtype=dtype))


def check_finite_margins(x):
    """Raise if any margin is NaN or infinite (one jitted pass, no temporary arrays, for large
    arrays; numpy's ``isfinite`` for small ones)."""
    if not x.size:
        return
    if x.size < _NUMPY_CHECK_BELOW:
        finite = bool(np.isfinite(x).all())
    else:
        flat = x if x.ndim == 1 else x.reshape(-1, order="F" if x.flags.f_contiguous else "C")
        finite = not kernels().count_nonfinite(flat)
    if not finite:
        bad = np.argwhere(~np.isfinite(x))
        first = tuple(int(i) for i in bad[0])
        where = f"index {first[0]}" if x.ndim == 1 else f"row {first[0]}, column {first[1]}"
        raise ValueError(
            f"raw_prediction contains {bad.shape[0]} non-finite value(s) (first at {where}: "
            f"{float(x[first])!r}); margins must be finite (a diverged model or a bad base margin?)"
        )


def check_weights(sample_weight, n):
    """Weights as a contiguous float64 array, or an empty array meaning "all ones"."""
    if sample_weight is None:
        return _EMPTY
    arr = _as_1d("sample_weight", sample_weight)
    if arr.dtype == np.bool_:
        raise TypeError(
            "sample_weight must hold numbers, got a boolean array; use a 0/1 float array"
        )
    w = np.ascontiguousarray(arr, dtype=np.float64)
    if w.shape[0] != n:
        raise ValueError(
            f"sample_weight has {w.shape[0]} entries but y_true has {n}; they must have the same "
            "length"
        )
    bad = ~(np.isfinite(w) & (w >= 0.0))
    if bad.any():
        raise ValueError(
            f"sample_weight must be finite and >= 0, got {int(bad.sum())} bad value(s): "
            f"{describe_values(w[bad])}"
        )
    # GHM divides by weight totals: a total that overflows would turn every gradient into NaN.
    with np.errstate(over="ignore"):
        total = w.sum()
    if not np.isfinite(total):
        raise ValueError(
            f"sample_weight sums to {float(total)!r} (the largest is {float(w.max())!r}): the "
            "total overflows float64; divide the weights by a constant"
        )
    return w


def check_inputs(y_true, raw_prediction, sample_weight=None):
    y = check_labels(y_true)
    x = check_margins(raw_prediction, n=y.shape[0])
    w = check_weights(sample_weight, y.shape[0])
    return y, x, w


def check_out(name, out, n, n_classes=None):
    """A caller's output buffer: a writeable float32 or float64 array of shape (n,), C-contiguous,
    or with ``n_classes`` of shape (n, n_classes), C- or F-contiguous."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(out).__name__}")
    if out.dtype != np.float32 and out.dtype != np.float64:
        raise TypeError(f"{name} must be a float32 or float64 array, got dtype {out.dtype}")
    shape = (n,) if n_classes is None else (n, n_classes)
    if out.shape != shape:
        like = "y_true" if n_classes is None else "raw_prediction"
        raise ValueError(f"{name} must have shape {shape} like {like}, got {out.shape}")
    contiguous = out.flags.c_contiguous or (n_classes is not None and out.flags.f_contiguous)
    if not (contiguous and out.flags.writeable):
        layout = "C-contiguous" if n_classes is None else "C- or F-contiguous"
        raise ValueError(f"{name} must be a writeable, {layout} array")
    return out


def check_real(name, value, low=None, high=None, low_open=False, high_open=False):
    """A real-number parameter within bounds; bool and non-numbers are TypeErrors."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a real number, got {value!r} of type {type(value).__name__}"
        )
    v = float(value)
    ok = np.isfinite(v)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        lo = "-inf" if low is None else repr(low)
        hi = "inf" if high is None else repr(high)
        interval = (
            ("(" if low_open or low is None else "[")
            + f"{lo}, {hi}"
            + (")" if high_open or high is None else "]")
        )
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return v


def check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    return int(value)


def check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value
