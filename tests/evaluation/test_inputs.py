"""Everything wrong with the gates, the data or the model is a GateError that says what to do."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlwright.errors import GateError
from mlwright.evaluation import (
    Fairness,
    Invariance,
    MetricThreshold,
    MinimumFunctionality,
    SliceMetric,
    evaluate_gates,
)

from .models import read_score

DATA = pd.DataFrame({"score": [0.2, 0.6, 0.7, 0.9], "y": [0, 0, 1, 1], "region": list("aabb")})
AUC = MetricThreshold("auc", min=0.6)


def fails(message: str, gates: Any = (AUC,), **kwargs: Any) -> None:
    kwargs.setdefault("predict", read_score)
    kwargs.setdefault("data", DATA)
    kwargs.setdefault("label", "y")
    with pytest.raises(GateError, match=re.escape(message)):
        evaluate_gates(list(gates) if isinstance(gates, tuple) else gates, **kwargs)


def test_the_label_column_must_exist() -> None:
    fails("label column 'target' is not in the evaluation data; its columns are score, y, region",
          label="target")


def test_empty_data_is_refused_before_predicting() -> None:
    def never(frame: pd.DataFrame) -> Any:
        raise AssertionError("predict must not be called")

    fails("the evaluation data has no rows", data=DATA.iloc[:0], predict=never)


def test_data_must_be_a_table() -> None:
    fails("the evaluation data must be a pandas DataFrame, a pyarrow Table or a polars DataFrame; "
          "got dict", data={"score": [0.1]})


def test_null_labels_are_refused() -> None:
    fails("label column 'y' has 1 null values (first at row 2)",
          data=DATA.assign(y=[0, 1, None, 1]))


def test_features_must_exist_and_exclude_the_label() -> None:
    fails("feature columns ['age'] are not in the evaluation data", features=["score", "age"])
    fails("the label column 'y' is listed as a feature", features=["score", "y"])


def test_a_column_a_gate_reads_must_exist() -> None:
    fails("gate slice_metric(auc>=0.6,by=country) reads column 'country', which the evaluation "
          "data does not have", gates=[SliceMetric("auc", by="country", min=0.6)])
    fails("gate fairness(demographic_parity_difference[sex]<=0.1) reads column 'sex'",
          gates=[Fairness("demographic_parity_difference", attribute="sex")])


def test_a_metric_must_fit_the_task() -> None:
    fails("gate metric_threshold(rmse<=1): rmse is a regression metric, but the task is binary "
          "(label 'y' holds only 0 and 1); use a binary metric or pass task='regression'",
          gates=[MetricThreshold("rmse", max=1)])
    regression = DATA.assign(y=[1.5, 2.0, 3.0, 4.0])
    fails("gate metric_threshold(auc>=0.6): auc is a binary metric, but the task is regression "
          "(label 'y' holds numbers)", data=regression)
    fails("gate fairness(demographic_parity_difference[region]<=0.1): fairness gates judge binary "
          "classifiers, but the task is regression",
          gates=[Fairness("demographic_parity_difference", attribute="region")], data=regression)
    # Told explicitly, a 0/1 label can be a regression target.
    report = evaluate_gates([MetricThreshold("rmse", max=1)], predict=read_score, data=DATA,
                            label="y", features=["score"], task="regression")
    assert report.task == "regression" and report.passed


def test_labels_that_are_not_binary_need_a_positive_class_or_numbers() -> None:
    words = DATA.assign(y=["no", "no", "yes", "yes"])
    fails("label 'y' holds 'no', 'yes'; for a binary task pass positive=... naming the positive class",
          data=words)
    fails("label 'y' must hold 'maybe' and at most one other value", data=words, positive="maybe")
    fails("label 'y' holds 1.5, 2.0, 3.0, 4.0; a binary task needs 0/1 or boolean labels",
          data=DATA.assign(y=[1.5, 2.0, 3.0, 4.0]), task="binary")
    fails("task must be one of binary, regression, got 'multiclass'", task="multiclass")


def test_predictions_must_be_one_finite_number_per_row() -> None:
    fails("predict returned 3 predictions for 4 rows", predict=lambda f: np.ones(3))
    fails("predict returned 1 predictions that are NaN or infinite (first at row 1)",
          predict=lambda f: np.array([0.1, np.nan, 0.3, 0.4]))
    fails("predict returned predictions of shape (4, 3)", predict=lambda f: np.ones((4, 3)))
    fails("predict returned predictions that are not numbers",
          predict=lambda f: np.array(["a", "b", "c", "d"]))


def test_a_predict_that_raises_is_reported_with_its_error() -> None:
    def broken(frame: pd.DataFrame) -> Any:
        raise KeyError("column 'age'")

    with pytest.raises(GateError, match=r"predict raised KeyError: \"column 'age'\"") as caught:
        evaluate_gates([AUC], predict=broken, data=DATA, label="y")
    assert isinstance(caught.value.__cause__, KeyError)


def test_probability_metrics_need_probabilities() -> None:
    fails("gate metric_threshold(logloss<=0.5): logloss needs probabilities in [0, 1], but predict "
          "returned values from -2 to 3; return predict_proba(X)[:, 1]",
          gates=[MetricThreshold("logloss", max=0.5)], predict=lambda f: np.array([-2, 1, 2, 3.0]))


def test_gates_must_be_a_list_of_distinct_gates() -> None:
    fails("gates must be a list of gates, got MetricThreshold", gates=AUC)
    fails("gate 1 is a str, not a gate", gates=[AUC, "auc>=0.6"])
    fails("two gates have the id 'metric_threshold(auc>=0.6)'; declare each gate once",
          gates=[AUC, MetricThreshold("auc", min=0.6, blocking=False)])


def test_a_perturbation_that_breaks_names_its_gate() -> None:
    def drop_rows(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.iloc[:2]

    def in_place(frame: pd.DataFrame) -> None:
        frame["score"] = 0.5

    def crash(frame: pd.DataFrame) -> pd.DataFrame:
        raise ValueError("no such column")

    fails("gate invariance(drop): perturb returned 2 rows for 4; a perturbation changes values, "
          "not rows", gates=[Invariance("drop", perturb=drop_rows)])
    fails("gate invariance(in place): perturb returned NoneType; it must return the perturbed "
          "DataFrame", gates=[Invariance("in place", perturb=in_place)])  # type: ignore[arg-type]
    fails("gate invariance(crash): perturb raised ValueError: no such column",
          gates=[Invariance("crash", perturb=crash)])


def test_cases_must_carry_the_features() -> None:
    cases = pd.DataFrame({"other": [1.0]})
    fails("gate minimum_functionality(basics): the cases lack the feature columns ['score']",
          gates=[MinimumFunctionality("basics", cases=cases, expected=[1])], features=["score"])


def test_threshold_and_predict_are_checked() -> None:
    fails("threshold must be a number, got '0.5'", threshold="0.5")
    fails("predict and champion_predict must be functions", predict="model")
