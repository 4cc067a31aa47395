"""Judge a model's gates on a held-out dataset: ``evaluate_gates``.

Everything that can be wrong with the gates or the data (a column a gate reads that the
data lacks, a metric for the other task, no rows, no label) is found before the model is
called. The model then predicts once on all rows (the champion too, when a gate compares
with it); every gate reuses those predictions, and a behavioural gate predicts again only
on its perturbed rows or its cases.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mlwright.errors import GateError
from mlwright.evaluation.checks import check
from mlwright.evaluation.context import EvaluationContext, Predict, as_frame, pandas
from mlwright.evaluation.gates import Fairness, Gate, NoRegression
from mlwright.evaluation.metrics import TASKS, FloatArray, Task, get_metric, metric_value
from mlwright.evaluation.report import GateReport, number

if TYPE_CHECKING:
    import pandas as pd


def _check_gates(gates: Sequence[Gate]) -> list[Gate]:
    if isinstance(gates, Gate) or not isinstance(gates, Sequence):
        raise GateError(f"gates must be a list of gates, got {type(gates).__name__}")
    seen: set[str] = set()
    for position, gate in enumerate(gates):
        if not isinstance(gate, Gate):
            raise GateError(f"gate {position} is a {type(gate).__name__}, not a gate; build gates with "
                            f"MetricThreshold, NoRegression, SliceMetric, Invariance, Directional, "
                            f"MinimumFunctionality or Fairness")
        if gate.gate_id in seen:
            raise GateError(f"two gates have the id {gate.gate_id!r}; declare each gate once")
        seen.add(gate.gate_id)
    return list(gates)


def _columns(frame: pd.DataFrame) -> str:
    names = [str(c) for c in frame.columns]
    return ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")


def _features(frame: pd.DataFrame, label: str, features: Sequence[str] | None) -> list[str]:
    if features is None:
        return [c for c in frame.columns if c != label]
    if isinstance(features, str) or not all(isinstance(f, str) for f in features):
        raise GateError(f"features must be a list of column names, got {features!r}")
    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise GateError(f"feature columns {missing} are not in the evaluation data; its columns are "
                        f"{_columns(frame)}")
    if label in features:
        raise GateError(f"the label column {label!r} is listed as a feature; the model must not "
                        f"read its own answer")
    return list(features)


def _label(frame: pd.DataFrame, label: str, task: Task | None,
           positive: Any) -> tuple[FloatArray, Task, tuple[Any, Any] | None, str]:
    """The truth as floats, the task, the binary classes and why the task is what it is."""
    pd = pandas()
    column = frame[label]
    nulls = column.isna().to_numpy()
    if nulls.any():
        raise GateError(f"label column {label!r} has {int(nulls.sum())} null values (first at row "
                        f"{int(np.argmax(nulls))}); every evaluation row needs a label")
    values = column.drop_duplicates().tolist()
    try:
        ordered = sorted(values)
    except TypeError:
        ordered = sorted(values, key=repr)
    shown = ", ".join(repr(v) for v in ordered[:10]) + (", ..." if len(values) > 10 else "")
    if positive is not None:
        if task == "regression":
            raise GateError("positive names a class, which a regression does not have; drop it "
                            "or set task='binary'")
        others = [v for v in values if v != positive]
        if len(others) > 1 or len(others) == len(values):
            raise GateError(f"label {label!r} must hold {positive!r} and at most one other value "
                            f"for a binary task; it holds {shown}")
        y = (column == positive).to_numpy(dtype=np.float64)
        return y, "binary", (others[0] if others else None, positive), f"positive={positive!r}"
    if pd.api.types.is_bool_dtype(column):
        if task == "regression":
            raise GateError(f"label {label!r} is boolean; a regression needs numbers")
        return column.to_numpy(dtype=np.float64), "binary", (False, True), f"label {label!r} is boolean"
    if not pd.api.types.is_numeric_dtype(column):
        raise GateError(f"label {label!r} holds {shown}; for a binary task pass positive=... naming "
                        f"the positive class, for a regression give numbers")
    y = column.to_numpy(dtype=np.float64)
    zero_one = set(np.unique(y).tolist()) <= {0.0, 1.0}
    if task is None:
        task = "binary" if zero_one else "regression"
        why = f"label {label!r} holds only 0 and 1" if zero_one else f"label {label!r} holds numbers"
    else:
        why = f"task={task!r} was given"
    if task == "binary" and not zero_one:
        raise GateError(f"label {label!r} holds {shown}; a binary task needs 0/1 or boolean labels, "
                        f"or positive=... naming the positive class")
    return y, task, (0, 1) if task == "binary" else None, why


def _check_fit(gates: list[Gate], frame: pd.DataFrame, task: Task, why: str) -> None:
    """Each gate's metrics match the task and the columns it reads are in the data."""
    for gate in gates:
        for name in gate.metrics:
            metric = get_metric(name)
            if metric.task != task:
                other = "regression" if task == "binary" else "binary"
                raise GateError(f"gate {gate.gate_id}: {name} is a {metric.task} metric, but the task "
                                f"is {task} ({why}); use a {task} metric or pass task={other!r}")
        if isinstance(gate, Fairness) and task != "binary":
            raise GateError(f"gate {gate.gate_id}: fairness gates judge binary classifiers, but the "
                            f"task is {task} ({why})")
        for column in gate.columns:
            if column not in frame.columns:
                raise GateError(f"gate {gate.gate_id} reads column {column!r}, which the evaluation "
                                f"data does not have; its columns are {_columns(frame)}")


def _check_probabilities(gates: list[Gate], scores: FloatArray, who: str) -> None:
    for gate in gates:
        for name in gate.metrics:
            if get_metric(name).probabilities and (scores.min() < 0 or scores.max() > 1):
                raise GateError(f"gate {gate.gate_id}: {name} needs probabilities in [0, 1], but "
                                f"{who} returned values from {number(float(scores.min()))} to "
                                f"{number(float(scores.max()))}; return predict_proba(X)[:, 1]")


def evaluate_gates(
    gates: Sequence[Gate],
    *,
    predict: Predict,
    data: Any,
    label: str,
    features: Sequence[str] | None = None,
    champion_predict: Predict | None = None,
    task: Task | None = None,
    positive: Any = None,
    threshold: float = 0.5,
) -> GateReport:
    """Judge every gate on ``data`` (a pandas DataFrame, Arrow table or polars DataFrame).

    ``predict`` gets the ``features`` columns (by default every column but ``label``) as a
    pandas DataFrame and returns one score per row: for a binary classifier the probability
    of the positive class (an ``(n, 2)`` ``predict_proba`` array is accepted), for a
    regression the prediction. Labels are ``score >= threshold``. ``task`` is found from the
    label when not given: 0/1 or boolean means binary, other numbers regression; name the
    positive class with ``positive`` when the label holds strings. ``champion_predict`` is
    the current champion, for ``NoRegression`` gates.
    """
    started = time.perf_counter()
    gates = _check_gates(gates)
    if task is not None and task not in TASKS:
        raise GateError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold != threshold:
        raise GateError(f"threshold must be a number, got {threshold!r}")
    if not callable(predict) or (champion_predict is not None and not callable(champion_predict)):
        raise GateError("predict and champion_predict must be functions of a DataFrame returning "
                        "one prediction per row")
    frame = as_frame(data, "the evaluation data")
    if not isinstance(label, str) or label not in frame.columns:
        raise GateError(f"label column {label!r} is not in the evaluation data; its columns are "
                        f"{_columns(frame)}")
    if len(frame) == 0:
        raise GateError("the evaluation data has no rows; gates need a held-out dataset version "
                        "with rows to judge")
    chosen = _features(frame, label, features)
    y, task, classes, why = _label(frame, label, task, positive)
    _check_fit(gates, frame, task, why)
    ctx = EvaluationContext(frame=frame, features=chosen, label=label, y=y, task=task,
                            threshold=float(threshold), predict=predict,
                            scores=np.empty(0), champion_predict=champion_predict, classes=classes)
    ctx.scores = ctx.run(predict, ctx.inputs, "predict")
    _check_probabilities(gates, ctx.scores, "predict")
    compares = any(isinstance(gate, NoRegression) for gate in gates)
    champion = ctx.champion_scores() if compares else None
    if champion is not None:
        _check_probabilities(gates, champion, "champion_predict")
    names = list(dict.fromkeys(name for gate in gates for name in gate.metrics))
    metrics = {name: ctx.metric(name) for name in names}
    results = [check(gate, ctx) for gate in gates]
    champion_metrics = None if champion is None else {
        name: metric_value(name, y, champion, threshold=ctx.threshold) for name in names
    }
    return GateReport(results=results, metrics=metrics, task=task, num_rows=ctx.rows,
                      threshold=ctx.threshold, duration_s=time.perf_counter() - started,
                      champion_metrics=champion_metrics)
