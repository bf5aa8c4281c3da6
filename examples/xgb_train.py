"""Focal loss with xgb.train: objective, metric, starting margin and early stopping."""

import numpy as np
import xgboost as xgb
from scipy.special import expit
from sklearn.datasets import make_classification
from sklearn.metrics import average_precision_score

import boostloss.xgboost as blx
from boostloss import FocalLoss

X, y = make_classification(n_samples=4000, n_features=10, weights=[0.95], random_state=0)
dtrain = xgb.DMatrix(X[:3000], label=y[:3000])
dvalid = xgb.DMatrix(X[3000:], label=y[3000:])
focal = FocalLoss(gamma=2.0, alpha=0.25)

params = {
    "tree_method": "hist",
    "max_depth": 4,
    "eta": 0.1,
    "base_score": blx.base_score(focal, dtrain),  # start from the loss's best constant, not 0.5
    "disable_default_eval_metric": 1,
}
booster = xgb.train(
    params,
    dtrain,
    300,
    obj=blx.objective(focal),
    custom_metric=blx.metric(focal),
    evals=[(dvalid, "valid")],
    early_stopping_rounds=20,
    verbose_eval=False,
)
proba = expit(booster.predict(dvalid, output_margin=True))
print(
    f"best iteration {booster.best_iteration}, "
    f"average precision {average_precision_score(y[3000:], proba):.3f} "
    f"(positive rate {y.mean():.3f})"
)
assert np.all((proba > 0) & (proba < 1))
