"""Callers ask the loss: the questions of the loss base class that the estimators, Dask, Spark and
the CUDA path use instead of asking which loss they hold, and the source checks that keep it so
(no ``isinstance`` on a concrete loss outside the losses; every private framework name in the
compat modules).
"""

import ast
from pathlib import Path

import numpy as np
import pytest

import boostloss
from boostloss import FocalLoss, GHMLoss, OHEMLoss
from boostloss._kernels.constants import HESSIAN_EXACT, HESSIAN_GAUSS_NEWTON
from boostloss.losses import GHMParams


def _binary_data(seed=0, n=400):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.float64)
    return y, rng.normal(-0.5, 2.0, n), rng.uniform(0.1, 3.0, n)


def test_cross_row_statistic_says_which_losses_couple_the_rows():
    assert FocalLoss().cross_row_statistic is None
    for loss in (GHMLoss(), GHMLoss(density="window"), OHEMLoss()):
        assert isinstance(loss.cross_row_statistic, str) and loss.cross_row_statistic


def test_evaluation_loss_is_the_loss_or_the_cross_entropy():
    focal = FocalLoss(gamma=1.0, alpha=0.4)
    assert focal.evaluation_loss() == (focal, None)
    y, x, w = _binary_data(1)
    cross_entropy = np.logaddexp(0.0, x) - y * x
    for loss in (GHMLoss(bins=7), OHEMLoss(ratio=2.0)):
        metric, name = loss.evaluation_loss()
        assert name == "logloss" and metric.cross_row_statistic is None
        np.testing.assert_allclose(metric.loss(y, x, w), w * cross_entropy, rtol=1e-12)


def test_for_classes_maps_label_values_to_indices():
    for loss in (FocalLoss(), GHMLoss(), OHEMLoss()):  # nothing names a label: the same loss
        assert loss.for_classes(np.array(["a", "b", "c"])) is loss
    ohem = OHEMLoss(ratio=2.0, negative_class="bg")
    mapped = ohem.for_classes(np.array(["a", "bg", "c"]))
    assert mapped.get_params() == {"ratio": 2.0, "random_state": 0, "negative_class": 1}
    assert ohem.negative_class == "bg"


@pytest.mark.parametrize(
    "loss",
    [
        FocalLoss(gamma=2.0, alpha=0.25),
        FocalLoss(gamma=0.5, alpha=None),
        GHMLoss(bins=10),
        GHMLoss(density="window"),
    ],
    ids=repr,
)
def test_start_from_class_totals_is_init_score_of_the_rows_binary(loss):
    y, _, w = _binary_data(2)
    totals = [float(w[y == 0.0].sum()), float(w[y == 1.0].sum())]  # as init_score sums them
    assert loss.start_from_class_totals(totals) == loss.init_score(y, w)
    counts = [float(np.count_nonzero(y == 0.0)), float(np.count_nonzero(y == 1.0))]
    assert loss.start_from_class_totals(counts) == loss.init_score(y)


@pytest.mark.parametrize(
    "loss",
    [
        FocalLoss(gamma=2.0, alpha=None),
        FocalLoss(gamma=1.0, alpha=[0.5, 1.0, 2.0]),
        GHMLoss(bins=10),
    ],
    ids=repr,
)
def test_start_from_class_totals_is_init_score_of_the_rows_k_classes(loss):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 300).astype(np.float64)
    w = rng.uniform(0.1, 3.0, 300)
    totals = np.bincount(y.astype(np.intp), weights=w, minlength=3)
    np.testing.assert_array_equal(
        loss.start_from_class_totals(totals), loss.init_score(y, w, n_classes=3), strict=True
    )


def test_ohem_start_from_class_totals_matches_its_kept_set():
    y = np.r_[np.ones(50), np.zeros(400)]  # ratio * n+ = 150 whole and <= n-: exact
    loss = OHEMLoss(ratio=3.0)
    np.testing.assert_allclose(
        loss.start_from_class_totals([400.0, 50.0]), loss.init_score(y), rtol=1e-15
    )


def test_start_from_class_totals_refuses_fewer_than_two_classes():
    with pytest.raises(ValueError, match=r"at least 2 classes.*\[5\.0\]"):
        FocalLoss().start_from_class_totals([5.0])
    with pytest.raises(ValueError, match="class 0"):
        FocalLoss().start_from_class_totals([0.0, 3.0])


def test_what_the_cuda_path_asks():
    assert GHMLoss(bins=12).gradient_density() == GHMParams(12, 0.0, "bins", 0.1)
    assert FocalLoss().gradient_density() is None and OHEMLoss().gradient_density() is None
    assert FocalLoss(gamma=2.0, alpha=0.25, hessian="gauss_newton").binary_focal_terms() == (
        2.0,
        0.25,
        0.75,
        HESSIAN_GAUSS_NEWTON,
    )
    assert FocalLoss(gamma=1.5, alpha=[0.3, 0.7]).binary_focal_terms() == (
        1.5,
        0.7,
        0.3,
        HESSIAN_EXACT,
    )
    assert FocalLoss(alpha=None).binary_focal_terms() == (2.0, 1.0, 1.0, HESSIAN_EXACT)
    assert GHMLoss().binary_focal_terms() is None and OHEMLoss().binary_focal_terms() is None
    with pytest.raises(ValueError, match="3 class weights"):
        FocalLoss(alpha=[1.0, 2.0, 3.0]).binary_focal_terms()


def test_cuda_path_refuses_what_it_cannot_compute_before_it_needs_a_device():
    from boostloss import cuda

    with pytest.raises(TypeError, match=r"FocalLoss or GHMLoss, got OHEMLoss\(.*compute='host'"):
        cuda.DeviceGradients(OHEMLoss(), [0, 1])
    with pytest.raises(TypeError, match="FocalLoss or GHMLoss, got 'focal'"):
        cuda.DeviceGradients("focal", [0, 1])
    with pytest.raises(ValueError, match="3 class weights"):
        cuda.DeviceGradients(FocalLoss(alpha=[1.0, 2.0, 3.0]), [0, 1])
    with pytest.raises(TypeError, match="state must be a GHMState made by GHMLoss.new_state()"):
        cuda.DeviceGradients(GHMLoss(), [0, 1], state=OHEMLoss().new_state())


# ------------------------------------------------------------------------------------------------
# The source
# ------------------------------------------------------------------------------------------------

_PACKAGE = Path(boostloss.__file__).parent
_LOSS_CLASSES = {"FocalLoss", "GHMLoss", "OHEMLoss", "GHMState", "OHEMState"}


def _modules():
    for path in sorted(_PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def test_no_caller_asks_which_loss_it_holds():
    """``isinstance`` on a concrete loss (or its state) only in the modules defining them."""
    found = []
    for path, tree in _modules():
        defined = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
        if defined & _LOSS_CLASSES:
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "isinstance"
                and len(node.args) == 2
            ):
                names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
                if names & _LOSS_CLASSES:
                    found.append(f"{path.relative_to(_PACKAGE)}:{node.lineno}")
    assert not found, f"isinstance on a concrete loss class outside the losses: {found}"


#: The private names of XGBoost, LightGBM, scikit-learn, Dask and pyspark that boostloss uses.
_FRAMEWORK_PRIVATE_NAMES = {
    "_Booster",
    "_Booster__set_objective_to_none",
    "_other_params",
    "_handle",
    "_le",
    "_classes",
    "_objective",
    "_LGBMLabelEncoder",
    "_lgb_dask_to_local",
    "_lgb_dask_copy_extra_params",
    "_gen_xgb_params_dict",
    "_fit",
    "_set",
    "_setDefault",
    "_dummy",
    "_more_tags",
    "_get_tags",
    "_client",
}


def test_private_framework_names_live_in_the_compat_modules():
    found = []
    for path, tree in _modules():
        if "compat" in path.stem:
            continue
        methods = {
            id(item)
            for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef)
            for item in node.body
            if isinstance(item, ast.FunctionDef)
        }
        for node in ast.walk(tree):
            # An attribute read or set, a method defined (an override), a name in a string, or
            # an import.
            name = (
                node.attr
                if isinstance(node, ast.Attribute)
                else node.name
                if id(node) in methods or isinstance(node, ast.alias)
                else node.value
                if isinstance(node, ast.Constant)
                else None
            )
            if isinstance(name, str) and name in _FRAMEWORK_PRIVATE_NAMES:
                found.append(f"{path.relative_to(_PACKAGE)}:{getattr(node, 'lineno', '')} {name}")
    assert not found, f"private framework names outside the compat modules: {found}"
