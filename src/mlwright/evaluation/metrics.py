"""The metrics a gate may name: one typed entry per name, computed with scikit-learn.

A metric reads the true labels (or targets) and either the model's scores (the probability
of the positive class, or the regression prediction) or labels cut from the scores at a
decision ``threshold``. A metric that is undefined on the rows given (AUC with one class,
precision with no positive prediction, R² on one row) is NaN, never an exception, so that a
slice too small or too pure to judge is reported as such.

>>> get_metric("auc").higher_is_better
True
>>> metric_value("accuracy", [0, 1, 1, 0], [0.2, 0.9, 0.4, 0.1])
0.75
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

import numpy as np
import numpy.typing as npt

from mlwright.errors import GateError

Task = Literal["binary", "regression"]
TASKS: tuple[Task, ...] = ("binary", "regression")
Needs = Literal["scores", "labels"]
FloatArray = npt.NDArray[np.float64]
NAN = float("nan")


def sklearn_metrics() -> ModuleType:
    """``sklearn.metrics``, imported on first use so that importing mlwright stays fast."""
    try:
        import sklearn.metrics
    except ImportError:  # pragma: no cover - scikit-learn is installed wherever tests run
        raise GateError("Gate metrics are computed with scikit-learn, which is not installed; "
                        "install it with: pip install scikit-learn") from None
    module: ModuleType = sklearn.metrics
    return module


@dataclass(frozen=True)
class Metric:
    """A metric a gate may name."""

    name: str
    fn: Callable[[FloatArray, FloatArray], float]
    higher_is_better: bool
    needs: Needs  # what ``fn`` reads besides the truth: raw scores, or labels cut at the threshold
    task: Task
    description: str
    probabilities: bool = False  # whether the scores must be probabilities in [0, 1]


def _two_classes(y_true: FloatArray) -> bool:
    return bool(y_true.size) and bool(y_true.min() != y_true.max())


def _auc(y_true: FloatArray, scores: FloatArray) -> float:
    if not _two_classes(y_true):
        return NAN
    return float(sklearn_metrics().roc_auc_score(y_true, scores))


def _logloss(y_true: FloatArray, scores: FloatArray) -> float:
    return float(sklearn_metrics().log_loss(y_true, scores, labels=[0, 1]))


def _brier(y_true: FloatArray, scores: FloatArray) -> float:
    return float(sklearn_metrics().brier_score_loss(y_true, scores, pos_label=1))


def _accuracy(y_true: FloatArray, labels: FloatArray) -> float:
    return float(sklearn_metrics().accuracy_score(y_true, labels))


def _precision(y_true: FloatArray, labels: FloatArray) -> float:
    return float(sklearn_metrics().precision_score(y_true, labels, zero_division=np.nan))


def _recall(y_true: FloatArray, labels: FloatArray) -> float:
    return float(sklearn_metrics().recall_score(y_true, labels, zero_division=np.nan))


def _f1(y_true: FloatArray, labels: FloatArray) -> float:
    return float(sklearn_metrics().f1_score(y_true, labels, zero_division=np.nan))


def _rmse(y_true: FloatArray, pred: FloatArray) -> float:
    return float(sklearn_metrics().root_mean_squared_error(y_true, pred))


def _mae(y_true: FloatArray, pred: FloatArray) -> float:
    return float(sklearn_metrics().mean_absolute_error(y_true, pred))


def _r2(y_true: FloatArray, pred: FloatArray) -> float:
    if y_true.size < 2:
        return NAN
    return float(sklearn_metrics().r2_score(y_true, pred))


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("auc", _auc, True, "scores", "binary", "area under the ROC curve"),
        Metric("logloss", _logloss, False, "scores", "binary", "log loss (cross-entropy)",
               probabilities=True),
        Metric("brier", _brier, False, "scores", "binary", "Brier score (mean squared error of "
               "the probability)", probabilities=True),
        Metric("accuracy", _accuracy, True, "labels", "binary", "share of correct labels"),
        Metric("precision", _precision, True, "labels", "binary",
               "share of positive predictions that are right"),
        Metric("recall", _recall, True, "labels", "binary", "share of positives found"),
        Metric("f1", _f1, True, "labels", "binary", "harmonic mean of precision and recall"),
        Metric("rmse", _rmse, False, "scores", "regression", "root mean squared error"),
        Metric("mae", _mae, False, "scores", "regression", "mean absolute error"),
        Metric("r2", _r2, True, "scores", "regression", "coefficient of determination"),
    )
}


def known_metrics() -> str:
    """The metric names, grouped by task, for error messages."""
    return "; ".join(
        f"{task}: {', '.join(m.name for m in METRICS.values() if m.task == task)}" for task in TASKS
    )


def get_metric(name: str) -> Metric:
    """The metric called ``name``; an unknown name is a GateError listing the known ones."""
    if isinstance(name, str) and name in METRICS:
        return METRICS[name]
    raise GateError(f"unknown metric {name!r}; known metrics are {known_metrics()}")


def metric_value(
    metric: str | Metric,
    y_true: Sequence[float] | FloatArray,
    scores: Sequence[float] | FloatArray,
    *,
    threshold: float = 0.5,
) -> float:
    """The metric on these rows (NaN where it is undefined, such as on no rows).

    ``scores`` are the model's outputs: probabilities of the positive class for a binary
    metric (labels are ``scores >= threshold``), predictions for a regression metric.
    """
    spec = get_metric(metric) if isinstance(metric, str) else metric
    truth = np.asarray(y_true, dtype=np.float64)
    values = np.asarray(scores, dtype=np.float64)
    if truth.size == 0:
        return NAN
    if spec.needs == "labels":
        values = (values >= threshold).astype(np.float64)
    return float(spec.fn(truth, values))
