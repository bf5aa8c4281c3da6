"""The answer does not depend on how the same numbers are stored.

Label dtype (float32, float64, ints, bool), margin dtype where the values are exactly
representable, read-only memory, non-contiguous views, pandas Series (with any index; nullable
dtypes too), object arrays of bools or integers and plain lists all give bit-identical outputs;
the inputs are never modified; empty input gives empty output.
"""

import numpy as np
import pandas as pd
import pytest
from conftest import LOSSES

from boostloss import GHMLoss

N = 301


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(42)
    y = (rng.random(N) < 0.3).astype(np.float64)
    # Multiples of 1/8 are exact in float32, so float32 margins must give the float64 answer.
    x = np.round(rng.normal(0.0, 3.0, N) * 8) / 8
    w = rng.integers(0, 5, N).astype(np.float64)
    return y, x, w


def reference(loss_name, y, x, w):
    loss = LOSSES[loss_name]()
    out = (loss.loss(y, x, sample_weight=w),) + loss.gradient_hessian(y, x, sample_weight=w)
    if isinstance(loss, GHMLoss):
        out += (loss.harmonizing_weights(y, x, sample_weight=w),)
    return out


def assert_identical(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert a.dtype == np.float64
        np.testing.assert_array_equal(a, b, strict=True)


def readonly(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


def strided(a):
    """The same values as a non-contiguous view (every other entry of a twice-as-long array)."""
    a = np.asarray(a)
    big = np.zeros(2 * a.size, dtype=a.dtype)
    big[::2] = a
    view = big[::2]
    assert not view.flags.c_contiguous or a.size <= 1
    return view


LABEL_FORMS = {
    "float32": lambda y: y.astype(np.float32),
    "int8": lambda y: y.astype(np.int8),
    "int64": lambda y: y.astype(np.int64),
    "uint8": lambda y: y.astype(np.uint8),
    "bool": lambda y: y.astype(bool),
    "list_int": lambda y: [int(v) for v in y],
    "list_bool": lambda y: [bool(v) for v in y],
    "readonly": readonly,
    "strided": strided,
    "reversed_view": lambda y: np.ascontiguousarray(y[::-1])[::-1],
    "series": lambda y: pd.Series(y, index=np.arange(N)[::-1] * 3),
    "series_int64_nullable": lambda y: pd.Series(y.astype(int), dtype="Int64"),
    "series_boolean": lambda y: pd.Series(y.astype(bool), dtype="boolean"),
    "series_category": lambda y: pd.Series(y.astype(int)).astype("category"),
    "series_uint8_nullable": lambda y: pd.Series(y.astype(np.uint8), dtype="UInt8"),
    "series_float64_nullable": lambda y: pd.Series(y, dtype="Float64"),
    "object_int": lambda y: np.array([int(v) for v in y], dtype=object),
    "object_bool": lambda y: np.array([bool(v) for v in y], dtype=object),
    "series_object_bool": lambda y: pd.Series(y.astype(bool), dtype=object),
}

MARGIN_FORMS = {
    "float32": lambda x: x.astype(np.float32),
    "float32_readonly": lambda x: readonly(x.astype(np.float32)),
    "float32_strided": lambda x: strided(x.astype(np.float32)),
    "readonly": readonly,
    "strided": strided,
    "list": lambda x: [float(v) for v in x],
    "series": lambda x: pd.Series(x, index=pd.RangeIndex(5, 5 + N)),
    "series_float32": lambda x: pd.Series(x.astype(np.float32)),
    "dataframe_column": lambda x: pd.DataFrame({"a": x, "b": -x})["a"],
    "fortran_column": lambda x: np.asfortranarray(np.stack([x, -x], axis=1))[:, 0],
    "series_float64_nullable": lambda x: pd.Series(x, dtype="Float64"),
    "series_float32_nullable": lambda x: pd.Series(x.astype(np.float32), dtype="Float32"),
}

WEIGHT_FORMS = {
    "int64": lambda w: w.astype(np.int64),
    "float32": lambda w: w.astype(np.float32),
    "list": lambda w: [float(v) for v in w],
    "readonly": readonly,
    "strided": strided,
    "series": lambda w: pd.Series(w, index=np.arange(N) + 100),
    "series_float64_nullable": lambda w: pd.Series(w, dtype="Float64"),
}


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
@pytest.mark.parametrize("form", sorted(LABEL_FORMS))
def test_label_storage_does_not_matter(loss_name, form, data):
    y, x, w = data
    assert_identical(
        reference(loss_name, LABEL_FORMS[form](y), x, w), reference(loss_name, y, x, w)
    )


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
@pytest.mark.parametrize("form", sorted(MARGIN_FORMS))
def test_margin_storage_does_not_matter(loss_name, form, data):
    y, x, w = data
    assert_identical(
        reference(loss_name, y, MARGIN_FORMS[form](x), w), reference(loss_name, y, x, w)
    )


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_integer_margins_equal_float_margins(loss_name, data):
    y, x, w = data
    xi = np.round(x).astype(np.int64)
    assert_identical(
        reference(loss_name, y, xi, w), reference(loss_name, y, xi.astype(np.float64), w)
    )


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
@pytest.mark.parametrize("form", sorted(WEIGHT_FORMS))
def test_weight_storage_does_not_matter(loss_name, form, data):
    y, x, w = data
    assert_identical(
        reference(loss_name, y, x, WEIGHT_FORMS[form](w)), reference(loss_name, y, x, w)
    )


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_unit_weights_equal_no_weights(loss_name, data):
    y, x, _ = data
    assert_identical(reference(loss_name, y, x, np.ones(N)), reference(loss_name, y, x, None))


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_inputs_are_not_modified(loss_name, data):
    y, x, w = data
    for margins in (x.copy(), x.astype(np.float32)):
        y_in, w_in = y.copy(), w.copy()
        before = margins.copy()
        reference(loss_name, y_in, margins, w_in)
        np.testing.assert_array_equal(margins, before, strict=True)
        np.testing.assert_array_equal(y_in, y, strict=True)
        np.testing.assert_array_equal(w_in, w, strict=True)
    y_in, w_in = y.copy(), w.copy()
    LOSSES[loss_name]().init_score(y_in, sample_weight=w_in)
    np.testing.assert_array_equal(y_in, y, strict=True)
    np.testing.assert_array_equal(w_in, w, strict=True)


@pytest.mark.parametrize("loss_name", ["focal_exact", "ghm_bins"])
def test_init_score_storage_does_not_matter(loss_name, data):
    y, _, w = data
    expected = LOSSES[loss_name]().init_score(y, sample_weight=w)
    # init_score is a search over many evaluations: a few pairs of forms keep this test quick.
    pairs = [
        (y.astype(bool), w.astype(np.int64)),
        (pd.Series(y, index=np.arange(N)[::-1]), strided(w)),
        (readonly(y.astype(np.int8)), pd.Series(w)),
    ]
    for labels, weights in pairs:
        assert LOSSES[loss_name]().init_score(labels, sample_weight=weights) == expected


EMPTY_FORMS = {
    "list": lambda: ([], []),
    "float64": lambda: (np.empty(0), np.empty(0)),
    "float32_margins": lambda: (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)),
    "bool_labels": lambda: (np.empty(0, dtype=bool), np.empty(0)),
    "series": lambda: (pd.Series([], dtype=float), pd.Series([], dtype=float)),
}


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("loss_name", sorted(LOSSES))
@pytest.mark.parametrize("form", sorted(EMPTY_FORMS))
def test_empty_input_gives_empty_output(loss_name, form, weighted):
    y, x = EMPTY_FORMS[form]()
    w = np.empty(0) if weighted else None
    loss = LOSSES[loss_name]()
    out = loss.loss(y, x, sample_weight=w)
    grad, hess = loss.gradient_hessian(y, x, sample_weight=w)
    for a in (out, grad, hess):
        assert a.shape == (0,) and a.dtype == np.float64
    if isinstance(loss, GHMLoss):
        assert loss.harmonizing_weights(y, x, sample_weight=w).shape == (0,)
    with pytest.raises(
        ValueError, match=r"init_score needs both classes.*got weight 0\.0 for class 1"
    ):
        loss.init_score(y, sample_weight=w)
    # An empty round in the middle of a training leaves the next round intact.
    grad1, hess1 = loss.gradient_hessian([0, 1], [0.3, -0.2])
    assert np.isfinite(grad1).all() and (hess1 > 0).all()


def test_empty_round_does_not_disturb_momentum():
    """GHM with momentum: a call on empty input is a no-op for the running counts."""
    y, x = np.array([0, 1, 1, 0, 1]), np.array([-2.0, 0.3, 1.0, 0.4, -3.0])
    a, b = GHMLoss(bins=5, momentum=0.5), GHMLoss(bins=5, momentum=0.5)
    a.gradient_hessian(y, x)
    b.gradient_hessian(y, x)
    b.gradient_hessian([], [])
    np.testing.assert_array_equal(a.running_counts_, b.running_counts_)
    np.testing.assert_array_equal(a.gradient_hessian(y, x)[0], b.gradient_hessian(y, x)[0])


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_float32_margins_give_the_float64_answer_widened_or_not(loss_name, data, monkeypatch):
    """Up to ``WIDEN_UPTO`` binary float32 margins are widened to float64 before the kernels (one
    margin dtype to compile for small trainings); above, the kernels read float32: the same bits."""
    from boostloss.losses import _validation

    y, x, w = data
    expected = reference(loss_name, y, x, w)
    for limit in (-1, N):  # the float32 kernels; widened
        monkeypatch.setattr(_validation, "WIDEN_UPTO", limit)
        assert_identical(reference(loss_name, y, x.astype(np.float32), w), expected)
