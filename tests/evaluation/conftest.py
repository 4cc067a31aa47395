"""Real models on the datasets scikit-learn ships, and a model that reads its score from the data.

The breast cancer models are classifiers (target 1 = benign); the diabetes models are
regressions. Each fixture is built once per session: fitting is the slow part.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .models import Models, Predict


def _split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    shuffled = frame.sample(frac=1.0, random_state=7).reset_index(drop=True)
    cut = int(len(shuffled) * 0.6)
    return shuffled.iloc[:cut], shuffled.iloc[cut:].reset_index(drop=True)


@pytest.fixture(scope="session")
def cancer() -> Models:
    data = load_breast_cancer(as_frame=True)
    features = [str(c) for c in data.data.columns]
    frame = data.frame.copy()
    frame["size"] = np.where(frame["mean radius"] > 14, "large", "small")
    frame["name"] = [f"patient {i}" for i in range(len(frame))]
    train, holdout = _split(frame)

    def fit(columns: list[str]) -> Predict:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        model.fit(train[columns], train["target"])
        return lambda f: model.predict_proba(f[columns])[:, 1]

    blind_to = "worst area"
    return Models(holdout, features, "target", good=fit(features),
                  weak=fit(["mean texture", "mean smoothness"]),
                  blind=fit([c for c in features if c != blind_to]), blind_to=blind_to)


@pytest.fixture(scope="session")
def diabetes() -> Models:
    data = load_diabetes(as_frame=True)
    features = [str(c) for c in data.data.columns]
    train, holdout = _split(data.frame)

    def fit(columns: list[str]) -> Predict:
        model = LinearRegression().fit(train[columns], train["target"])
        return lambda f: model.predict(f[columns])

    return Models(holdout, features, "target", good=fit(features), weak=fit(["age", "sex"]),
                  blind=fit([c for c in features if c != "s1"]), blind_to="s1")
