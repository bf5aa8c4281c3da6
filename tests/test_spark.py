"""XGBoost on Spark with a boostloss loss: global GHM-C density, a model that saves and loads.

One local Spark session (two task slots) for the module; the partitions are skewed (the first
holds no positive), and the features small integers so that the sketch cuts agree with one process.
"""

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from scipy.special import expit

import boostloss.xgboost as blx
from boostloss import GHMLoss

pytestmark = pytest.mark.spark
pytest.importorskip(
    "pyspark", reason="pyspark is not installed (pip install 'focal-ghm-boost[spark]')"
)

FEATURES = ["f0", "f1", "f2"]


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("boostloss-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "1g")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    yield session
    session.stop()


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 8, (n, 3)).astype(float)
    y = (X[:, 0] + rng.normal(size=n) > 4).astype(float)
    y[: n // 2] = 0.0
    return pd.DataFrame({"f0": X[:, 0], "f1": X[:, 1], "f2": X[:, 2], "label": y})


def _frame(spark, pdf):
    # Two contiguous slices: the first partition holds no positive.
    rows = [tuple(r) for r in pdf.itertuples(index=False)]
    return spark.createDataFrame(spark.sparkContext.parallelize(rows, 2), list(pdf.columns))


@pytest.mark.timeout(400)
def test_ghm_on_spark_equals_one_process_and_saves(spark, tmp_path):
    from boostloss.spark import SparkXGBClassifier, SparkXGBClassifierModel

    pdf = _data()
    loss = GHMLoss(bins=10, momentum=0.5)
    clf = SparkXGBClassifier(
        loss=loss,
        features_col=FEATURES,
        label_col="label",
        num_workers=2,
        n_estimators=8,
        max_depth=3,
        max_bin=16,
    )
    model = clf.fit(_frame(spark, pdf))
    start = loss.init_score(pdf["label"].to_numpy())
    params = {
        "max_depth": 3,
        "max_bin": 16,
        "objective": "binary:logistic",
        "base_score": float(expit(start)),
    }
    single = xgb.train(params, xgb.DMatrix(pdf[FEATURES], pdf["label"]), 8, obj=blx.objective(loss))
    expected = single.predict(xgb.DMatrix(pdf[FEATURES]))
    got = model.get_booster().predict(xgb.DMatrix(pdf[FEATURES]))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)

    model.save(str(tmp_path / "model"))
    clf.save(str(tmp_path / "estimator"))
    loaded = SparkXGBClassifierModel.load(str(tmp_path / "model"))
    out = loaded.transform(_frame(spark, pdf)).select("probability").toPandas()
    proba = np.stack(out["probability"].map(lambda v: v.toArray()))
    np.testing.assert_allclose(proba[:, 1], expected, rtol=1e-6)
    reloaded = SparkXGBClassifier.load(str(tmp_path / "estimator"))
    assert reloaded.getOrDefault("loss") == "ghm:bins=10,density=bins,epsilon=0.1,momentum=0.5"


@pytest.mark.timeout(200)
def test_bad_labels_are_refused_on_the_driver(spark):
    from boostloss.spark import SparkXGBClassifier

    pdf = _data(60)
    pdf.loc[3, "label"] = 2.0
    clf = SparkXGBClassifier(loss="focal", features_col=FEATURES, label_col="label", num_workers=2)
    with pytest.raises(ValueError, match="only 0 and 1"):
        clf.fit(_frame(spark, pdf))


@pytest.mark.timeout(200)
def test_negative_weight_on_one_partition_is_refused_on_the_driver(spark):
    from boostloss.spark import SparkXGBClassifier

    pdf = _data(60)
    pdf["w"] = 1.0
    pdf.loc[45, "w"] = -2.0  # in the second partition only
    clf = SparkXGBClassifier(
        loss="ghm", features_col=FEATURES, label_col="label", weight_col="w", num_workers=2
    )
    with pytest.raises(
        ValueError, match="weight column must be finite and non-negative, got a minimum of -2.0"
    ):
        clf.fit(_frame(spark, pdf))
