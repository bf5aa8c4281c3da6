"""Tune the focal loss's gamma and alpha like any hyper-parameter, inside a Pipeline."""

from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from boostloss import FocalLoss, LGBMClassifier

X, y = make_classification(n_samples=2000, n_features=10, weights=[0.95], random_state=0)
pipe = make_pipeline(
    StandardScaler(), LGBMClassifier(loss=FocalLoss(), n_estimators=100, num_leaves=15, verbose=-1)
)
grid = {"lgbmclassifier__loss__gamma": [0.0, 1.0, 2.0], "lgbmclassifier__loss__alpha": [None, 0.25]}
search = GridSearchCV(pipe, grid, scoring="average_precision", cv=3).fit(X, y)
print("best parameters:", search.best_params_)
print(f"best average precision: {search.best_score_:.3f}")
