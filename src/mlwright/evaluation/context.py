"""What every gate reads: the evaluation rows, the truth and the predictions made once.

The evaluation data becomes a pandas DataFrame (from pandas, Arrow or polars); the label
becomes 0/1 (binary) or numbers (regression); the model's outputs become one float per
row: the probability of the positive class (the second column of ``predict_proba``
output is taken) or the regression prediction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mlwright.errors import GateError
from mlwright.evaluation.metrics import FloatArray, Task, metric_value

if TYPE_CHECKING:
    import pandas as pd

Predict = Callable[["pd.DataFrame"], Any]


def pandas() -> Any:
    """The pandas module, imported on first use, with an install hint."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is installed wherever tests run
        raise GateError("Evaluating gates needs pandas; install it with: pip install pandas") from None
    return pd


def as_frame(data: Any, what: str) -> pd.DataFrame:
    """A pandas DataFrame with a fresh 0..n-1 index, from pandas, Arrow or polars."""
    if isinstance(data, pandas().DataFrame):
        frame = data
    elif type(data).__module__.startswith(("pyarrow", "polars")) and hasattr(data, "to_pandas"):
        frame = data.to_pandas()
    else:
        raise GateError(f"{what} must be a pandas DataFrame, a pyarrow Table or a polars DataFrame; "
                        f"got {type(data).__name__}")
    result: pd.DataFrame = frame.reset_index(drop=True)
    return result


def as_predictions(raw: Any, rows: int, task: Task, who: str) -> FloatArray:
    """One finite float per row from what a predict function returned."""
    values = raw.to_numpy() if hasattr(raw, "to_numpy") else raw
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise GateError(f"{who} returned predictions that are not numbers ({exc}); return scores "
                        f"(for a classifier, the probability of the positive class)") from None
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    elif array.ndim == 2 and array.shape[1] == 2 and task == "binary":
        array = array[:, 1]
    elif array.ndim != 1:
        raise GateError(f"{who} returned predictions of shape {array.shape}; expected one number per "
                        f"row (for a binary classifier, the probability of the positive class)")
    if len(array) != rows:
        raise GateError(f"{who} returned {len(array)} predictions for {rows} rows; expected one "
                        f"per row, in row order")
    bad = ~np.isfinite(array)
    if bad.any():
        raise GateError(f"{who} returned {int(bad.sum())} predictions that are NaN or infinite "
                        f"(first at row {int(np.argmax(bad))})")
    return array


@dataclass
class EvaluationContext:
    """The evaluation rows and everything gates share; predictions are made once."""

    frame: pd.DataFrame
    features: list[str]
    label: str
    y: FloatArray
    task: Task
    threshold: float
    predict: Predict
    scores: FloatArray
    champion_predict: Predict | None = None
    classes: tuple[Any, Any] | None = None  # binary: the label values read as 0 and as 1
    _champion_scores: FloatArray | None = field(default=None, repr=False)
    _metrics: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def inputs(self) -> pd.DataFrame:
        """What the model reads: the feature columns, in the order given."""
        inputs: pd.DataFrame = self.frame[self.features]
        return inputs

    def labels(self, scores: FloatArray) -> FloatArray:
        """0/1 labels cut from scores at the decision threshold."""
        return (scores >= self.threshold).astype(np.float64)

    def run(self, predict: Predict, frame: pd.DataFrame, who: str) -> FloatArray:
        """Call a predict function on a frame and check what it returns."""
        try:
            raw = predict(frame)
        except Exception as exc:
            raise GateError(f"{who} raised {type(exc).__name__}: {exc}") from exc
        return as_predictions(raw, len(frame), self.task, who)

    def champion_scores(self) -> FloatArray | None:
        """The champion's predictions on the evaluation rows (made on first use), or None."""
        if self.champion_predict is None:
            return None
        if self._champion_scores is None:
            self._champion_scores = self.run(self.champion_predict, self.inputs, "champion_predict")
        return self._champion_scores

    def metric(self, name: str) -> float:
        """The candidate's metric on all rows (computed once)."""
        if name not in self._metrics:
            self._metrics[name] = metric_value(name, self.y, self.scores, threshold=self.threshold)
        return self._metrics[name]

    def binary_value(self, value: Any, where: str) -> float:
        """An expected answer read as 0 or 1 the way the label is."""
        negative, positive = self.classes if self.classes is not None else (0, 1)
        if value == positive:
            return 1.0
        if negative is None or value == negative:
            return 0.0
        raise GateError(f"{where}: expected answer {value!r} is neither class of the label "
                        f"{self.label!r} ({negative!r} or {positive!r})")
