"""boostloss.LGBMClassifier: LightGBM's estimator with a loss= parameter and real probabilities."""

import lightgbm as lgb
from sklearn.datasets import make_classification
from sklearn.metrics import average_precision_score
from sklearn.model_selection import train_test_split

from boostloss import FocalLoss, GHMLoss, LGBMClassifier

X, y = make_classification(n_samples=4000, n_features=10, weights=[0.95], random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=0)
X_fit, X_val, y_fit, y_val = train_test_split(X_train, y_train, stratify=y_train, random_state=0)

for loss in (None, FocalLoss(gamma=2.0, alpha=0.25), GHMLoss(bins=10)):
    clf = LGBMClassifier(loss=loss, n_estimators=300, learning_rate=0.05, num_leaves=15, verbose=-1)
    clf.fit(
        X_fit, y_fit, eval_X=X_val, eval_y=y_val, callbacks=[lgb.early_stopping(20, verbose=False)]
    )
    ap = average_precision_score(y_test, clf.predict_proba(X_test)[:, 1])
    print(f"{loss!r:>32}: best iteration {clf.best_iteration_:3d}, average precision {ap:.3f}")
