"""The plain scikit-learn script the trainer is benchmarked against.

It does the same work as ``modelops train`` on the bench's config, without the trainer:
read the CSV, the same stratified split, the same estimator and params, fit, predict, the
same held-out metrics, and save the model with joblib.

Usage: python baseline.py DATA.csv OUT.joblib N_ESTIMATORS MAX_DEPTH SEED TEST_SIZE
"""

from __future__ import annotations

import sys

import joblib
import pandas as pd
from sklearn import metrics
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split


def main(argv: list[str]) -> int:
    data, out, n_estimators, max_depth, seed, test_size = argv
    frame = pd.read_csv(data)
    x, y = frame.drop(columns="target"), frame["target"]
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=float(test_size), random_state=int(seed), stratify=y
    )
    model = RandomForestClassifier(n_estimators=int(n_estimators), max_depth=int(max_depth), random_state=int(seed))
    model.fit(x_train, y_train)
    pred = model.predict(x_test)
    proba = model.predict_proba(x_test)[:, 1]
    scores = {
        "accuracy": metrics.accuracy_score(y_test, pred),
        "precision": metrics.precision_score(y_test, pred),
        "recall": metrics.recall_score(y_test, pred),
        "f1": metrics.f1_score(y_test, pred),
        "roc_auc": metrics.roc_auc_score(y_test, proba),
    }
    joblib.dump(model, out)
    print(scores)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
