"""Models trained with boostloss go through the ecosystem's tools like any XGBoost / LightGBM model:
ONNX (onnxmltools, run by onnxruntime), treelite, and SHAP's TreeExplainer.

Each tool reads the model the plain framework saves: what it computes is compared with what the
plain framework predicts for the same model (the sigmoid / softmax of the margin), both from the
estimators' boosters in memory and from saved model files loaded again. The tools are in the dev
extra; without them (the floors' environment) these tests skip, saying which is missing.
"""

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
from scipy.special import expit, softmax
from sklearn.datasets import make_classification

import boostloss
from boostloss import FocalLoss, GHMLoss
from boostloss._frameworks import compat_xgboost as _compat_xgboost

N_FEATURES = 5
# float32 in, float32 out: ONNX's tree ensembles compute in float32.
ONNX_ATOL = 1e-5

FRAMEWORKS = ["xgboost", "lightgbm"]
CLASSES = [pytest.param(2, id="binary"), pytest.param(3, id="3-class")]
LOSSES = ["focal", "ghm"]


def make_loss(name, n_classes):
    if name == "focal":
        # alpha is a binary weight; K classes take None or one weight per class.
        return FocalLoss(gamma=2.0, alpha=0.25 if n_classes == 2 else None)
    return GHMLoss(bins=10)


@pytest.fixture(scope="module")
def datasets():
    """Small imbalanced data, float32 (the dtype ONNX runs in), binary and 3 classes."""
    out = {}
    for k, weights in ((2, [0.85]), (3, [0.6, 0.3, 0.1])):
        X, y = make_classification(
            n_samples=400,
            n_features=N_FEATURES,
            n_informative=4,
            n_redundant=0,
            n_classes=k,
            weights=weights,
            flip_y=0.02,
            random_state=11,
        )
        out[k] = X.astype(np.float32), y
    return out


_MODELS = {}


def fitted(framework, n_classes, loss_name, datasets):
    """A boostloss estimator (few trees), trained once per module and reused."""
    key = (framework, n_classes, loss_name)
    if key not in _MODELS:
        X, y = datasets[n_classes]
        loss = make_loss(loss_name, n_classes)
        if framework == "xgboost":
            clf = boostloss.XGBClassifier(
                loss=loss, n_estimators=8, max_depth=3, n_jobs=1, random_state=0
            )
        else:
            clf = boostloss.LGBMClassifier(
                loss=loss, n_estimators=8, num_leaves=7, n_jobs=1, random_state=0, verbose=-1
            )
        _MODELS[key] = clf.fit(X, y)
    return _MODELS[key]


def booster_of(clf, framework, route, tmp_path):
    """The estimator's booster itself ("booster"), or its saved file loaded again ("file")."""
    if framework == "xgboost":
        booster = clf.get_booster()
        if route == "file":
            booster.save_model(tmp_path / "model.json")
            booster = xgb.Booster(model_file=tmp_path / "model.json")
        return booster
    booster = clf.booster_
    if route == "file":
        booster.save_model(tmp_path / "model.txt")
        booster = lgb.Booster(model_file=tmp_path / "model.txt")
    return booster


def start_in_model(framework, n_classes):
    """Whether the saved model holds the start: all but K classes on XGBoost < 3.1, where the
    model has one float base_score and the estimator passes its start as base_margin."""
    return framework == "lightgbm" or n_classes == 2 or _compat_xgboost.takes_vector_base_score()


def plain_predict(booster, X, margin=False):
    """The plain framework's prediction: probabilities (n, K) or margins (n,) / (n, K)."""
    if isinstance(booster, xgb.Booster):
        out = booster.predict(xgb.DMatrix(X), output_margin=margin)
    else:
        out = booster.predict(X, raw_score=margin)
    if not margin and out.ndim == 1:
        out = np.column_stack([1.0 - out, out])
    return out


def estimator_margins(clf, framework, X):
    """The boostloss estimator's raw margins, its start included."""
    if framework == "xgboost":
        return clf.predict(X, output_margin=True)
    return clf.predict(X, raw_score=True)


def link(margins):
    """What the plain framework's probabilities are: the sigmoid or softmax of the margins."""
    if margins.ndim == 1:
        return np.column_stack([expit(-margins), expit(margins)])
    return softmax(margins, axis=1)


# ------------------------------------------------------------------------------------------------
# ONNX: onnxmltools converts, onnxruntime runs
# ------------------------------------------------------------------------------------------------


def to_onnx(booster):
    onnxmltools = pytest.importorskip("onnxmltools")
    from onnxmltools.convert.common.data_types import FloatTensorType

    initial_types = [("input", FloatTensorType([None, N_FEATURES]))]
    if isinstance(booster, xgb.Booster):
        return onnxmltools.convert_xgboost(booster, initial_types=initial_types)
    # zipmap=False: the probabilities as one (n, K) tensor, not a list of {class: p} maps.
    return onnxmltools.convert_lightgbm(booster, initial_types=initial_types, zipmap=False)


def set_base_values(model, start):
    """The documented fix for K classes on XGBoost < 3.1 (docs/deploying.md): the start as the
    converted tree ensemble's base values."""
    node = next(n for n in model.graph.node if n.op_type == "TreeEnsembleClassifier")
    base = next(a for a in node.attribute if a.name == "base_values")
    base.floats[:] = [float(v) for v in start]


def run_onnx(model, X):
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    # onnxruntime logs a shape remark about the label output of LightGBM's converted models
    # (declared with one row) on stderr; errors only.
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    names = [output.name for output in session.get_outputs()]
    labels, proba = session.run(names, {"input": X})
    return labels, proba


@pytest.mark.parametrize("route", ["booster", "file"])
@pytest.mark.parametrize("loss_name", LOSSES)
@pytest.mark.parametrize("n_classes", CLASSES)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_onnx_reproduces_the_plain_prediction(
    framework, n_classes, loss_name, route, datasets, tmp_path
):
    pytest.importorskip("onnxmltools")
    pytest.importorskip("onnxruntime")
    X, _ = datasets[n_classes]
    clf = fitted(framework, n_classes, loss_name, datasets)
    booster = booster_of(clf, framework, route, tmp_path)
    plain = plain_predict(booster, X)
    # The plain framework's probabilities are the link of its margins.
    np.testing.assert_allclose(
        plain, link(plain_predict(booster, X, margin=True)), rtol=0, atol=1e-6
    )
    # The link of the estimator's margins (start included): what plain loading predicts. For a
    # focal model predict_proba maps the same margins on to the posterior (docs/deploying.md).
    margins = estimator_margins(clf, framework, X)
    expected = link(margins)
    assert expected.shape == (X.shape[0], n_classes)
    np.testing.assert_allclose(
        clf.loss.predict_proba(margins), clf.predict_proba(X), rtol=0, atol=1e-7
    )
    model = to_onnx(booster)
    if start_in_model(framework, n_classes):
        np.testing.assert_allclose(plain, expected, rtol=0, atol=1e-6)
    else:
        assert np.abs(plain - expected).max() > 1e-3  # the model lacks the start
        set_base_values(model, clf.init_score_)

    labels, proba = run_onnx(model, X)
    assert proba.shape == expected.shape and proba.dtype == np.float32
    np.testing.assert_allclose(proba, expected, rtol=0, atol=ONNX_ATOL)
    # The label output is the most probable class (ties aside, which this data does not have).
    np.testing.assert_array_equal(labels, expected.argmax(axis=1))


def test_onnx_conversion_of_the_unfixed_lightgbm_model_is_what_make_portable_fixes(datasets):
    # The regression guarded against: a model text whose parameters section says
    # "[objective: custom]" (what a training with a callable objective records) is refused.
    pytest.importorskip("onnxmltools")
    clf = fitted("lightgbm", 2, "focal", datasets)
    text = clf.booster_.model_to_string()
    assert "\n[objective: binary]\n" in text
    custom = lgb.Booster(
        model_str=text.replace("\n[objective: binary]\n", "\n[objective: custom]\n")
    )
    if custom.params.get("objective") != "custom":
        pytest.skip("this LightGBM does not read Booster.params from a model string (< 4.7)")
    with pytest.raises(NotImplementedError, match="custom"):
        to_onnx(custom)


# ------------------------------------------------------------------------------------------------
# treelite: load the model, predict with its reference predictor (GTIL)
# ------------------------------------------------------------------------------------------------


def to_treelite(booster, route, tmp_path):
    treelite = pytest.importorskip("treelite")
    if route == "booster":
        if isinstance(booster, xgb.Booster):
            return treelite.frontend.from_xgboost(booster)
        return treelite.frontend.from_lightgbm(booster)
    if isinstance(booster, xgb.Booster):
        booster.save_model(tmp_path / "model.json")
        return treelite.frontend.load_xgboost_model(str(tmp_path / "model.json"))
    booster.save_model(tmp_path / "model.txt")
    return treelite.frontend.load_lightgbm_model(str(tmp_path / "model.txt"))


@pytest.mark.parametrize("route", ["booster", "file"])
@pytest.mark.parametrize("n_classes", CLASSES)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_treelite_predicts_the_plain_probabilities_and_margins(
    framework, n_classes, route, datasets, tmp_path
):
    treelite = pytest.importorskip("treelite")
    X, _ = datasets[n_classes]
    clf = fitted(framework, n_classes, "focal", datasets)
    booster = booster_of(clf, framework, "booster", tmp_path)
    model = to_treelite(booster, route, tmp_path)
    n = X.shape[0]
    # GTIL's output has shape (rows, targets, classes); one target here, one column when binary.
    margins = treelite.gtil.predict(model, X, pred_margin=True).reshape(n, -1)
    proba = treelite.gtil.predict(model, X).reshape(n, -1)
    if n_classes == 2:
        margins = margins[:, 0]
        proba = np.column_stack([1.0 - proba[:, 0], proba[:, 0]])
    np.testing.assert_allclose(margins, plain_predict(booster, X, margin=True), rtol=0, atol=1e-5)
    np.testing.assert_allclose(proba, plain_predict(booster, X), rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# SHAP: TreeExplainer on the estimators; the explanation adds up to the raw margin
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss_name", LOSSES)
@pytest.mark.parametrize("n_classes", CLASSES)
@pytest.mark.parametrize("framework", FRAMEWORKS)
# shap announces, for every LightGBM binary model, that its output format changed in shap 0.45.
@pytest.mark.filterwarnings("ignore:LightGBM binary classifier with TreeExplainer:UserWarning")
def test_shap_tree_explainer_is_additive(framework, n_classes, loss_name, datasets, tmp_path):
    shap = pytest.importorskip("shap")
    X, _ = datasets[n_classes]
    clf = fitted(framework, n_classes, loss_name, datasets)
    explainer = shap.TreeExplainer(clf)
    values = np.asarray(explainer.shap_values(X))
    expected_value = np.asarray(explainer.expected_value)
    margins = plain_predict(booster_of(clf, framework, "booster", tmp_path), X, margin=True)
    if n_classes == 2:
        assert values.shape == X.shape and expected_value.size == 1
        total = values.sum(axis=1) + expected_value.reshape(())
    else:
        assert values.shape == (*X.shape, n_classes) and expected_value.shape == (n_classes,)
        total = values.sum(axis=1) + expected_value
    # XGBoost explains in float32, LightGBM in float64.
    atol = 1e-5 if framework == "xgboost" else 1e-10
    np.testing.assert_allclose(total, margins, rtol=0, atol=atol)
    if start_in_model(framework, n_classes):
        # The base value is the explained model's average margin over its training data, in which
        # the start of boostloss's training is included: not the zero a model without it has.
        assert np.abs(expected_value).max() > 0.05
