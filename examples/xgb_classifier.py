"""boostloss.XGBClassifier: XGBoost's estimator with a loss= parameter and real probabilities."""

from sklearn.datasets import make_classification
from sklearn.metrics import average_precision_score
from sklearn.model_selection import train_test_split

from boostloss import FocalLoss, GHMLoss, XGBClassifier

X, y = make_classification(n_samples=4000, n_features=10, weights=[0.95], random_state=0)
labels = ["rare" if v else "common" for v in y]  # any labels work
X_train, X_test, y_train, y_test = train_test_split(X, labels, stratify=labels, random_state=0)
X_fit, X_val, y_fit, y_val = train_test_split(X_train, y_train, stratify=y_train, random_state=0)

for loss in (None, FocalLoss(gamma=2.0, alpha=0.25), GHMLoss(bins=10)):
    clf = XGBClassifier(
        loss=loss, n_estimators=300, learning_rate=0.1, max_depth=4, early_stopping_rounds=20
    )
    clf.fit(X_fit, y_fit, eval_set=[(X_val, y_val)], verbose=False)  # early stopping on the loss
    positive = list(clf.classes_).index("rare")
    ap = average_precision_score(
        [v == "rare" for v in y_test], clf.predict_proba(X_test)[:, positive]
    )
    print(
        f"{loss!r:>32}: best iteration {clf.best_iteration:3d}, average precision {ap:.3f}, "
        f"predictions {sorted(set(clf.predict(X_test)))}"
    )
