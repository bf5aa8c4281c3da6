"""The public API as the docs use it, for the type checker only (never run, not a test module).

mypy checks this file with the package (``[tool.mypy] files``): the annotations must accept the
documented calls, and the adapters' callables must fit the frameworks' own annotated parameters
(``xgb.train(obj=...)``, ``xgb.XGBClassifier(objective=...)``,
``lgb.LGBMClassifier(objective=...)``).
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import xgboost as xgb
from numpy.typing import NDArray

import boostloss
import boostloss.lightgbm as bll
import boostloss.xgboost as blx
from boostloss import FocalLoss, GHMLoss, OHEMLoss, make_loss
from boostloss.compare import (
    CompareConfig,
    cross_validate,
    load_default_dataset,
    summarize,
    verdicts,
)
from boostloss.losses import GHMState, Target, check_target


def losses(y: NDArray[np.int64], x: NDArray[np.float64]) -> float:
    focal = FocalLoss(gamma=2.0, alpha=0.25)
    grad, hess = focal.gradient_hessian(y, x)
    loss = focal.loss(y, x, n_threads=1)
    start = float(focal.init_score(y))
    ghm = GHMLoss(bins=10).set_params(momentum=0.5)
    state: GHMState = ghm.new_state()
    ghm.gradient_hessian(check_target(y), x, state=state)
    target: Target = check_target([0, 1], [1.0, 2.0])
    ohem = OHEMLoss(ratio=3.0).for_classes(["background", "object"])
    named = make_loss("focal:gamma=2")
    total = float(grad.sum() + hess.sum() + loss.sum()) + start + target.n_samples
    return total + ohem.ratio + len(named.name)


def xgboost_train(dtrain: xgb.DMatrix, dvalid: xgb.DMatrix) -> xgb.Booster:
    focal = FocalLoss()
    params: dict[str, Any] = {"tree_method": "hist", "base_score": blx.base_score(focal, dtrain)}
    objective: blx.XGBObjectiveFunction = blx.objective(focal)
    metric: blx.XGBMetricFunction = blx.metric(focal)
    sklearn_objective: blx.XGBSklearnObjectiveFunction = blx.sklearn_objective(focal)
    sklearn_metric: blx.XGBSklearnMetricFunction = blx.sklearn_metric(focal)
    xgb.XGBClassifier(objective=sklearn_objective, eval_metric=sklearn_metric)
    return xgb.train(
        params, dtrain, 10, obj=objective, custom_metric=metric, evals=[(dvalid, "valid")]
    )


def lightgbm_train(train_set: lgb.Dataset, X: NDArray[np.float64]) -> NDArray[np.float64]:
    focal = FocalLoss()
    start = bll.set_init_score(focal, train_set)
    objective: bll.LGBMObjectiveFunction = bll.objective(focal)
    feval: bll.LGBMMetricFunction = bll.metric(focal)
    sklearn_objective: bll.LGBMSklearnObjectiveFunction = bll.sklearn_objective(focal)
    sklearn_metric: bll.LGBMSklearnMetricFunction = bll.sklearn_metric(focal)
    lgb.LGBMClassifier(objective=bll.sklearn_objective(focal)).fit(
        X, np.zeros(X.shape[0]), eval_metric=bll.sklearn_metric(focal)
    )
    del sklearn_objective, sklearn_metric
    booster = lgb.train({"objective": objective, "metric": "None"}, train_set, feval=feval)
    bll.make_portable(booster, start).save_model("model.txt")
    return bll.predict_proba(booster, X, start)


def estimators(X: NDArray[np.float64], y: NDArray[np.int64]) -> float:
    xgb_clf = boostloss.XGBClassifier(loss="focal", n_estimators=10).fit(X, y)
    lgb_clf = boostloss.LGBMClassifier(loss=FocalLoss(), n_estimators=10).fit(X, y)
    proba = xgb_clf.predict_proba(X)[:, 1]
    margins = lgb_clf.decision_function(X)
    return float(proba.sum() + lgb_clf.predict_proba(X).sum() + margins.sum())


def compare() -> str:
    config = CompareConfig(folds=3, tune=True)
    result = cross_validate(load_default_dataset(), config)
    rows = summarize(result.records)
    return f"{rows[0]['backend']} {verdicts(result.records, config)}"


def cli() -> int:
    from boostloss.cli import main

    return main(["compare", "--help"])
