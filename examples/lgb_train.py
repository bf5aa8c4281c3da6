"""Focal loss with lgb.train: objective, metric, init_score on every set, probabilities."""

import lightgbm as lgb
from sklearn.datasets import make_classification
from sklearn.metrics import average_precision_score

import boostloss.lightgbm as bll
from boostloss import FocalLoss

X, y = make_classification(n_samples=4000, n_features=10, weights=[0.95], random_state=0)
train_set = lgb.Dataset(X[:3000], label=y[:3000])
valid_set = lgb.Dataset(X[3000:], label=y[3000:], reference=train_set)
focal = FocalLoss(gamma=2.0, alpha=0.25)

start = bll.set_init_score(focal, train_set, valid_set)  # LightGBM would start from 0
params = {
    "objective": bll.objective(focal),
    "metric": "None",
    "learning_rate": 0.1,
    "num_leaves": 15,
    "verbose": -1,
}
booster = lgb.train(
    params,
    train_set,
    300,
    valid_sets=[valid_set],
    feval=bll.metric(focal),
    callbacks=[lgb.early_stopping(20, verbose=False)],
)
proba = bll.predict_proba(booster, X[3000:], start)  # adds the init score back
print(
    f"best iteration {booster.best_iteration}, "
    f"average precision {average_precision_score(y[3000:], proba):.3f} "
    f"(positive rate {y.mean():.3f})"
)
