"""Bad input at the public boundary raises a clear error that quotes the bad value.

Every case is one entry of a parametrised list, so the number of bad inputs tried is the number of
collected tests (``pytest tests/test_validation.py --collect-only -q``). Parameters are checked at
first use (the scikit-learn convention): construction, ``set_params`` and ``clone`` accept anything,
and the first call of a method raises.
"""

import numpy as np
import pandas as pd
import pytest
from conftest import LOSSES
from sklearn.base import clone

from boostloss import FocalLoss, GHMLoss

Y = np.array([0, 1, 1, 0])
X = np.array([-1.0, 0.5, 2.0, 0.0])
W = np.array([1.0, 2.0, 0.5, 1.0])

# (id, y_true, raw_prediction, sample_weight, exception, message regex)
BAD_DATA = [
    # labels
    ("label_2", [0, 2, 1, 0], X, None, ValueError, r"only 0 and 1.*1 other value\(s\): 2"),
    ("label_minus1", [-1, 0, 1, 0], X, None, ValueError, r"other value\(s\): -1"),
    ("label_half", [0.5, 0, 1, 0], X, None, ValueError, r"other value\(s\): 0\.5"),
    ("labels_several", [3, 7, 3, -2], X, None, ValueError, r"4 other value\(s\): -2, 3, 7"),
    (
        "labels_many_shown_truncated",
        np.arange(2, 12),
        np.zeros(10),
        None,
        ValueError,
        r"10 other value\(s\): 2, 3, 4, 5, 6 and 5 more",
    ),
    ("label_nan", [0, np.nan, 1, 0], X, None, ValueError, r"other value\(s\): nan"),
    ("label_inf", [0, np.inf, 1, 0], X, None, ValueError, r"other value\(s\): inf"),
    ("label_minus_inf", [0, -np.inf, 1, 0], X, None, ValueError, r"other value\(s\): -inf"),
    (
        "labels_strings",
        ["no", "yes", "yes", "no"],
        X,
        None,
        TypeError,
        r"y_true must hold real numbers.*'no'",
    ),
    (
        "labels_object",
        np.array([0, "1", 1, 0], dtype=object),
        X,
        None,
        TypeError,
        r"y_true.*dtype object",
    ),
    ("labels_complex", np.array([0, 1j, 1, 0]), X, None, TypeError, r"y_true.*complex"),
    ("labels_none", None, X, None, TypeError, r"y_true must be an array-like.*None"),
    ("labels_2d", np.array([[0, 1], [1, 0]]), X, None, ValueError, r"y_true must be 1-D.*\(2, 2\)"),
    (
        "labels_datetime",
        np.array(["2020-01-01"] * 4, dtype="datetime64[D]"),
        X,
        None,
        TypeError,
        r"y_true must hold real numbers",
    ),
    # pandas nullable arrays and object arrays of bools/ints are numbers, but a missing value is
    # an error on every pandas (before 2.2 NA came as an object array, since as a float NaN).
    (
        "labels_nullable_int_na",
        pd.Series([0, None, 1, 0], dtype="Int64"),
        X,
        None,
        ValueError,
        r"y_true has 1 missing value\(s\) \(first at index 1: <NA>\); drop or fill",
    ),
    (
        "labels_boolean_na",
        pd.Series([True, False, None, None], dtype="boolean"),
        X,
        None,
        ValueError,
        r"y_true has 2 missing value\(s\) \(first at index 2: <NA>\)",
    ),
    (
        "labels_object_none",
        np.array([0, 1, None, 0], dtype=object),
        X,
        None,
        ValueError,
        r"y_true has 1 missing value\(s\) \(first at index 2: None\)",
    ),
    (
        "labels_object_pd_na",
        np.array([True, pd.NA, False, True], dtype=object),
        X,
        None,
        ValueError,
        r"y_true has 1 missing value\(s\) \(first at index 1: <NA>\)",
    ),
    (
        "labels_object_digit_strings",
        np.array(["0", "1", "1", "0"], dtype=object),
        X,
        None,
        TypeError,
        r"y_true must hold real numbers, got dtype object \(first values: '0'",
    ),
    (
        "labels_object_floats",
        np.array([0.0, 1.0, 1.0, 0.0], dtype=object),
        X,
        None,
        TypeError,
        r"y_true must hold real numbers, got dtype object",
    ),
    (
        "labels_object_bool_and_string",
        np.array([True, "no", False, True], dtype=object),
        X,
        None,
        TypeError,
        r"y_true.*dtype object",
    ),
    (
        "labels_nullable_int_2",
        pd.Series([0, 2, 1, 0], dtype="Int64"),
        X,
        None,
        ValueError,
        r"other value\(s\): 2",
    ),
    # margins
    ("margin_nan", Y, [-1.0, np.nan, 2.0, 0.0], None, ValueError, r"non-finite.*index 1: nan"),
    ("margin_inf", Y, [-1.0, 0.5, np.inf, 0.0], None, ValueError, r"non-finite.*index 2: inf"),
    (
        "margin_minus_inf",
        Y,
        [-np.inf, 0.5, 2.0, 0.0],
        None,
        ValueError,
        r"non-finite.*index 0: -inf",
    ),
    (
        "margin_nan_float32",
        Y,
        np.array([0, 0, 0, np.nan], dtype=np.float32),
        None,
        ValueError,
        r"1 non-finite.*index 3: nan",
    ),
    ("margins_all_nan", Y, np.full(4, np.nan), None, ValueError, r"contains 4 non-finite"),
    (
        "margins_short",
        Y,
        [0.0, 1.0, 2.0],
        None,
        ValueError,
        r"raw_prediction has 3 entries but y_true has 4",
    ),
    (
        "margins_long",
        Y,
        np.zeros(5),
        None,
        ValueError,
        r"raw_prediction has 5 entries but y_true has 4",
    ),
    (
        "margins_2d_one_column",
        Y,
        np.zeros((4, 1)),
        None,
        ValueError,
        r"raw_prediction must be 1-D.*\(4, 1\)",
    ),
    (
        "margins_3d",
        Y,
        np.zeros((4, 2, 2)),
        None,
        ValueError,
        r"raw_prediction must be 1-D.*\(4, 2, 2\)",
    ),
    ("margins_scalar", Y, 0.5, None, ValueError, r"raw_prediction must be 1-D.*\(\)"),
    (
        "margins_strings",
        Y,
        ["a", "b", "c", "d"],
        None,
        TypeError,
        r"raw_prediction must hold real numbers",
    ),
    ("margins_none", Y, None, None, TypeError, r"raw_prediction must be an array-like.*None"),
    ("margins_complex", Y, np.zeros(4, dtype=complex), None, TypeError, r"raw_prediction.*complex"),
    (
        "margins_nullable_na",
        Y,
        pd.Series([0.0, 1.0, None, 0.0], dtype="Float64"),
        None,
        ValueError,
        r"raw_prediction has 1 missing value\(s\) \(first at index 2: <NA>\)",
    ),
    # weights
    (
        "weight_negative",
        Y,
        X,
        [1.0, -1.0, 1.0, 1.0],
        ValueError,
        r"finite and >= 0.*1 bad value\(s\): -1\.0",
    ),
    ("weight_nan", Y, X, [1.0, 1.0, np.nan, 1.0], ValueError, r"finite and >= 0.*nan"),
    ("weight_inf", Y, X, [np.inf, 1.0, 1.0, 1.0], ValueError, r"finite and >= 0.*inf"),
    ("weights_several_bad", Y, X, [-2.0, np.nan, -0.5, 1.0], ValueError, r"3 bad value\(s\)"),
    (
        "weights_short",
        Y,
        X,
        [1.0, 1.0],
        ValueError,
        r"sample_weight has 2 entries but y_true has 4",
    ),
    ("weights_2d", Y, X, np.ones((4, 1)), ValueError, r"sample_weight must be 1-D.*\(4, 1\)"),
    (
        "weights_bool",
        Y,
        X,
        np.ones(4, dtype=bool),
        TypeError,
        r"sample_weight must hold numbers.*boolean",
    ),
    (
        "weights_strings",
        Y,
        X,
        ["1", "1", "1", "1"],
        TypeError,
        r"sample_weight must hold real numbers",
    ),
    (
        "weights_nullable_na",
        Y,
        X,
        pd.Series([1.0, None, 2.0, 1.0], dtype="Float64"),
        ValueError,
        r"sample_weight has 1 missing value\(s\) \(first at index 1: <NA>\)",
    ),
    (
        "weights_boolean_nullable",
        Y,
        X,
        pd.Series([True] * 4, dtype="boolean"),
        TypeError,
        r"sample_weight must hold numbers.*boolean",
    ),
    (
        "weights_object_bools",
        Y,
        X,
        np.array([True] * 4, dtype=object),
        TypeError,
        r"sample_weight must hold numbers.*boolean",
    ),
    (
        "weights_nullable_negative",
        Y,
        X,
        pd.Series([1, -1, 1, 1], dtype="Int64"),
        ValueError,
        r"finite and >= 0.*-1\.0",
    ),
    (
        "weights_sum_overflows",
        Y,
        X,
        [1e308, 1e308, 1.0, 1.0],
        ValueError,
        r"sample_weight.*sum.*inf",
    ),
]

DATA_IDS = [case[0] for case in BAD_DATA]


@pytest.mark.parametrize("loss_name", sorted(LOSSES))
@pytest.mark.parametrize("case", BAD_DATA, ids=DATA_IDS)
def test_bad_data_rejected_by_loss_and_gradient(loss_name, case):
    _, y, x, w, exc, pattern = case
    loss = LOSSES[loss_name]()
    with pytest.raises(exc, match=pattern):
        loss.gradient_hessian(y, x, sample_weight=w)
    with pytest.raises(exc, match=pattern):
        loss.loss(y, x, sample_weight=w)
    if isinstance(loss, GHMLoss):
        with pytest.raises(exc, match=pattern):
            loss.harmonizing_weights(y, x, sample_weight=w)
        # A rejected call never touches the training state.
        assert loss.running_counts_ is None


# init_score takes no margins: the label and weight cases apply.
INIT_CASES = [case for case in BAD_DATA if case[0].startswith(("label", "weight"))]


@pytest.mark.parametrize("case", INIT_CASES, ids=[case[0] for case in INIT_CASES])
def test_bad_data_rejected_by_init_score(case):
    _, y, _, w, exc, pattern = case
    with pytest.raises(exc, match=pattern):
        FocalLoss().init_score(y, sample_weight=w)


@pytest.mark.parametrize(
    "y, w",
    [
        ([], None),
        ([0, 0, 0], None),
        ([1, 1], None),
        ([0, 1, 1], [1.0, 0.0, 0.0]),
        ([0, 1], [0.0, 0.0]),
    ],
    ids=["empty", "only_negatives", "only_positives", "positives_weight_zero", "all_weights_zero"],
)
@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_init_score_needs_both_classes(loss_name, y, w):
    with pytest.raises(
        ValueError, match=r"init_score needs both classes with positive total weight"
    ):
        LOSSES[loss_name]().init_score(y, sample_weight=w)


# (id, estimator factory, exception, message regex)
BAD_PARAMS = [
    (
        "gamma_negative",
        lambda: FocalLoss(gamma=-1.0),
        ValueError,
        r"gamma must be in \[0\.0, inf\), got -1\.0",
    ),
    ("gamma_tiny_negative", lambda: FocalLoss(gamma=-1e-300), ValueError, r"gamma.*got -1e-300"),
    ("gamma_nan", lambda: FocalLoss(gamma=np.nan), ValueError, r"gamma must be in .*got nan"),
    ("gamma_inf", lambda: FocalLoss(gamma=np.inf), ValueError, r"gamma must be in .*got inf"),
    (
        "gamma_string",
        lambda: FocalLoss(gamma="2"),
        TypeError,
        r"gamma must be a real number, got '2'",
    ),
    (
        "gamma_bool",
        lambda: FocalLoss(gamma=True),
        TypeError,
        r"gamma must be a real number, got True",
    ),
    (
        "gamma_none",
        lambda: FocalLoss(gamma=None),
        TypeError,
        r"gamma must be a real number, got None",
    ),
    (
        "gamma_array",
        lambda: FocalLoss(gamma=np.array([2.0])),
        TypeError,
        r"gamma must be a real number",
    ),
    (
        "alpha_negative",
        lambda: FocalLoss(alpha=-0.1),
        ValueError,
        r"alpha must be in \[0\.0, 1\.0\], got -0\.1",
    ),
    (
        "alpha_above_one",
        lambda: FocalLoss(alpha=1.5),
        ValueError,
        r"alpha must be in \[0\.0, 1\.0\], got 1\.5",
    ),
    ("alpha_nan", lambda: FocalLoss(alpha=float("nan")), ValueError, r"alpha must be in .*got nan"),
    (
        "alpha_string",
        lambda: FocalLoss(alpha="0.25"),
        TypeError,
        r"alpha must be a real number, got '0\.25'",
    ),
    (
        "hessian_unknown",
        lambda: FocalLoss(hessian="newton"),
        ValueError,
        r"hessian must be one of 'auto', 'exact', 'gauss_newton', 'bounded', got 'newton'",
    ),
    (
        "hessian_case",
        lambda: FocalLoss(hessian="Exact"),
        ValueError,
        r"hessian must be one of .*got 'Exact'",
    ),
    (
        "hessian_none",
        lambda: FocalLoss(hessian=None),
        ValueError,
        r"hessian must be one of .*got None",
    ),
    ("bins_zero", lambda: GHMLoss(bins=0), ValueError, r"bins must be >= 1, got 0"),
    ("bins_negative", lambda: GHMLoss(bins=-3), ValueError, r"bins must be >= 1, got -3"),
    ("bins_float", lambda: GHMLoss(bins=2.5), TypeError, r"bins must be an integer, got 2\.5"),
    (
        "bins_float_integral",
        lambda: GHMLoss(bins=10.0),
        TypeError,
        r"bins must be an integer, got 10\.0",
    ),
    ("bins_bool", lambda: GHMLoss(bins=True), TypeError, r"bins must be an integer, got True"),
    (
        "momentum_one",
        lambda: GHMLoss(momentum=1.0),
        ValueError,
        r"momentum must be in \[0\.0, 1\.0\), got 1\.0",
    ),
    (
        "momentum_negative",
        lambda: GHMLoss(momentum=-0.1),
        ValueError,
        r"momentum must be in .*got -0\.1",
    ),
    (
        "momentum_nan",
        lambda: GHMLoss(momentum=np.nan),
        ValueError,
        r"momentum must be in .*got nan",
    ),
    (
        "momentum_string",
        lambda: GHMLoss(momentum="0.5"),
        TypeError,
        r"momentum must be a real number, got '0\.5'",
    ),
    (
        "epsilon_zero",
        lambda: GHMLoss(density="window", epsilon=0.0),
        ValueError,
        r"epsilon must be in \(0\.0, 1\.0\], got 0\.0",
    ),
    (
        "epsilon_above_one",
        lambda: GHMLoss(density="window", epsilon=1.5),
        ValueError,
        r"epsilon.*got 1\.5",
    ),
    (
        "epsilon_negative",
        lambda: GHMLoss(density="window", epsilon=-0.1),
        ValueError,
        r"epsilon.*got -0\.1",
    ),
    ("epsilon_nan", lambda: GHMLoss(epsilon=np.nan), ValueError, r"epsilon must be in .*got nan"),
    (
        "density_unknown",
        lambda: GHMLoss(density="kde"),
        ValueError,
        r"density must be one of 'bins', 'window', got 'kde'",
    ),
    (
        "density_none",
        lambda: GHMLoss(density=None),
        ValueError,
        r"density must be one of .*got None",
    ),
    (
        "window_with_momentum",
        lambda: GHMLoss(density="window", momentum=0.5),
        ValueError,
        r"momentum=0\.5 needs density='bins'",
    ),
]


@pytest.mark.parametrize("case", BAD_PARAMS, ids=[case[0] for case in BAD_PARAMS])
def test_bad_parameter_raises_at_first_use(case):
    _, make, exc, pattern = case
    loss = make()  # construction never validates (scikit-learn convention)
    clone(loss)  # neither does clone
    for call in (
        lambda: loss.loss(Y, X),
        lambda: loss.gradient_hessian(Y, X),
        lambda: loss.init_score(Y),
    ):
        with pytest.raises(exc, match=pattern):
            call()


@pytest.mark.parametrize("case", BAD_PARAMS, ids=[case[0] for case in BAD_PARAMS])
def test_bad_parameter_via_set_params_raises_at_first_use(case):
    _, make, exc, pattern = case
    bad = make()
    good = FocalLoss() if isinstance(bad, FocalLoss) else GHMLoss()
    good.gradient_hessian(Y, X)
    good.set_params(**bad.get_params())  # accepted: only checked when used
    with pytest.raises(exc, match=pattern):
        good.gradient_hessian(Y, X)


@pytest.mark.parametrize(
    "make",
    [
        lambda: FocalLoss(gamma=0, alpha=0),
        lambda: FocalLoss(gamma=np.float32(0.5), alpha=np.float64(1.0)),
        lambda: FocalLoss(gamma=5, alpha=None, hessian="exact"),
        lambda: GHMLoss(bins=1, momentum=0.0),
        lambda: GHMLoss(bins=np.int64(30), momentum=0.999),
        lambda: GHMLoss(density="window", epsilon=1),
        lambda: GHMLoss(density="window", epsilon=1e-9),
    ],
)
def test_boundary_parameters_are_accepted(make):
    grad, hess = make().gradient_hessian(Y, X, sample_weight=W)
    assert np.isfinite(grad).all() and (hess > 0).all()


def test_zero_weights_are_valid():
    grad, hess = GHMLoss().gradient_hessian(Y, X, sample_weight=np.zeros(4))
    assert np.array_equal(grad, np.zeros(4)) and np.array_equal(hess, np.zeros(4))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1 << 15) - 1, 1 << 15, ((1 << 14) + 1, 2)])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_margin_found_on_both_sides_of_the_numpy_check(dtype, shape, bad):
    """Small arrays are checked by numpy, large ones by the jitted pass: the last margin (and the
    last row's last class) is found either way, with the same message."""
    from boostloss.losses._validation import _NUMPY_CHECK_BELOW, check_finite_margins

    x = np.zeros(shape, dtype=dtype)
    check_finite_margins(x)
    x.flat[-1] = bad
    where = "index" if x.ndim == 1 else f"row {x.shape[0] - 1}, column"
    with pytest.raises(ValueError, match=rf"1 non-finite value\(s\) \(first at {where}"):
        check_finite_margins(x)
    assert (x.size < _NUMPY_CHECK_BELOW) == (x.size == (1 << 15) - 1)
    if x.ndim == 2:
        check_finite_margins(np.asfortranarray(np.zeros(shape, dtype=dtype)))
        with pytest.raises(ValueError, match=r"1 non-finite"):
            check_finite_margins(np.asfortranarray(x))
