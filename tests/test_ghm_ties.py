"""GHM-C and repeated rows: a block of identical feature vectors with mixed labels.

The lead (issue 15, mammography): 3,335 of 11,183 rows share one feature vector, 13 of them
positive; logistic predicts about 0.004 there, GHM-C about 0.465. The mechanism: every non-empty
gradient-norm bin gets the same total weight, so the block's few positives, alone in their bin
near g = 1 - p, pull as hard as the block's many negatives near g = p, and the shared margin of the
block settles where the two pulls balance, near p = 0.5, whatever the block's positive rate. These
tests build such data and check it, on both backends and for the bins and momentum of the tuning
grid, and that compare flags the block.
"""

import numpy as np
import pandas as pd
import pytest

from boostloss import GHMLoss, LGBMClassifier, XGBClassifier
from boostloss import compare as cmp
from boostloss.compare import report
from boostloss.compare.protocol import cross_validate

N_OTHER, N_BLOCK, BLOCK_POSITIVES = 1000, 400, 4  # the block: 28.6% of rows, 1% positive


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_OTHER, 2))
    y_other = (x[:, 0] + 0.5 * rng.normal(size=N_OTHER) > 1.2).astype(np.int8)
    block = np.tile([[-3.0, 5.0]], (N_BLOCK, 1))
    y_block = np.zeros(N_BLOCK, dtype=np.int8)
    y_block[rng.choice(N_BLOCK, BLOCK_POSITIVES, replace=False)] = 1
    X = pd.DataFrame(np.vstack([x, block]), columns=["a", "b"])
    return X, np.r_[y_other, y_block]


def _block_probability(estimator_class, loss):
    X, y = _data()
    extra = {"verbose": -1} if estimator_class is LGBMClassifier else {}
    model = estimator_class(loss=loss, n_estimators=150, learning_rate=0.1, n_jobs=1, **extra).fit(
        X, y
    )
    in_block = np.unique(model.predict_proba(X)[N_OTHER:, 1])
    assert in_block.shape == (1,)  # identical rows: one shared prediction
    return float(in_block[0])


@pytest.mark.parametrize("estimator_class", [XGBClassifier, LGBMClassifier])
def test_logistic_predicts_the_blocks_rate(estimator_class):
    assert _block_probability(estimator_class, None) < 0.03  # the block's rate is 0.01


@pytest.mark.parametrize("estimator_class", [XGBClassifier, LGBMClassifier])
@pytest.mark.parametrize(
    "loss", [GHMLoss(bins=10), GHMLoss(bins=5), GHMLoss(bins=30, momentum=0.75)], ids=repr
)
def test_ghm_pins_the_block_near_one_half(estimator_class, loss):
    p = _block_probability(estimator_class, loss)
    assert 0.25 < p < 0.6, p  # some 40 times the block's positive rate of 0.01


def test_compare_flags_the_ghm_tie_block():
    X, y = _data()
    dataset = cmp.Dataset(name="ties", X=X, y=y)
    config = cmp.CompareConfig(
        backends=("lightgbm",),
        losses=("logistic", "ghm"),
        folds=2,
        rounds=100,
        early_stopping=False,
    )
    records = cross_validate(dataset, config).records
    blocks = {r["loss"]: r["tie_block"] for r in records if r["fold"] == 0}
    assert blocks["logistic"]["share"] > 0.2 and not blocks["logistic"]["miscalibrated"]
    assert blocks["ghm"]["share"] > 0.2 and blocks["ghm"]["miscalibrated"]
    lines = report.flag_lines(records, config)
    assert len(lines) == 1 and lines[0].startswith(
        "! lightgbm GHM-C (10 bins) predicts one probability"
    )
