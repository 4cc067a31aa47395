"""The models the tests judge: a score read from the data, and fitted scikit-learn models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

Predict = Callable[[pd.DataFrame], Any]


def read_score(frame: pd.DataFrame) -> np.ndarray:
    """A 'model' whose prediction is the ``score`` column: hand-built cases with known answers."""
    return frame["score"].to_numpy(dtype=float)


@dataclass
class Models:
    holdout: pd.DataFrame  # features, the label and extra columns that are not features
    features: list[str]
    label: str
    good: Predict
    weak: Predict  # the same kind of model on a few features only
    blind: Predict  # a model that never reads ``blind_to``
    blind_to: str
