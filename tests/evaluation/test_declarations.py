"""Gates are checked when they are declared: a typo fails where the pipeline declares it."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as sk

from mlwright.errors import GateError
from mlwright.evaluation import (
    METRICS,
    Directional,
    Fairness,
    Invariance,
    MetricThreshold,
    MinimumFunctionality,
    NoRegression,
    SliceMetric,
    get_metric,
    metric_value,
)


def same(frame: pd.DataFrame) -> pd.DataFrame:
    return frame


def test_the_metric_registry_is_typed_and_complete() -> None:
    assert set(METRICS) == {"auc", "logloss", "accuracy", "precision", "recall", "f1", "brier",
                            "rmse", "mae", "r2"}
    lower = {name for name, m in METRICS.items() if not m.higher_is_better}
    assert lower == {"logloss", "brier", "rmse", "mae"}
    assert {name for name, m in METRICS.items() if m.task == "regression"} == {"rmse", "mae", "r2"}
    assert {name for name, m in METRICS.items() if m.needs == "labels"} == {
        "accuracy", "precision", "recall", "f1"}


def test_metric_values_agree_with_scikit_learn_and_cut_labels_at_the_threshold() -> None:
    y = np.array([0, 0, 1, 1, 1, 0])
    s = np.array([0.1, 0.7, 0.65, 0.9, 0.3, 0.2])
    assert metric_value("auc", y, s) == sk.roc_auc_score(y, s)
    assert metric_value("logloss", y, s) == sk.log_loss(y, s)
    assert metric_value("brier", y, s) == sk.brier_score_loss(y, s)
    assert metric_value("accuracy", y, s) == pytest.approx(4 / 6)
    assert metric_value("accuracy", y, s, threshold=0.68) == pytest.approx(3 / 6)
    assert metric_value("precision", y, s, threshold=0.68) == pytest.approx(1 / 2)
    assert metric_value("precision", y, s, threshold=0.8) == 1.0
    assert metric_value("recall", y, s) == pytest.approx(2 / 3)
    assert metric_value("f1", y, s) == sk.f1_score(y, s >= 0.5)
    t = np.array([3.0, 5.0, 2.5, 7.0])
    p = np.array([2.5, 5.0, 4.0, 8.0])
    assert metric_value("rmse", t, p) == pytest.approx(math.sqrt((0.25 + 0 + 2.25 + 1) / 4))
    assert metric_value("mae", t, p) == pytest.approx(0.75)
    assert metric_value("r2", t, p) == sk.r2_score(t, p)


def test_an_undefined_metric_is_nan_not_an_error() -> None:
    assert math.isnan(metric_value("auc", [1, 1], [0.2, 0.9]))  # one class
    assert math.isnan(metric_value("precision", [1, 0], [0.2, 0.1]))  # no positive prediction
    assert math.isnan(metric_value("recall", [0, 0], [0.2, 0.9]))  # no positive
    assert math.isnan(metric_value("r2", [1.0], [2.0]))  # one row
    assert math.isnan(metric_value("accuracy", [], []))


@pytest.mark.parametrize("declare", [
    lambda: MetricThreshold("acu", min=0.6),
    lambda: NoRegression("AUC"),
    lambda: SliceMetric("roc_auc", by="region", min=0.6),
    lambda: get_metric("accuracy_score"),
])
def test_an_unknown_metric_fails_at_declaration_listing_the_known_ones(declare: Any) -> None:
    with pytest.raises(GateError, match=r"unknown metric '.+'; known metrics are binary: auc, "
                                        r"logloss, brier, accuracy, precision, recall, f1; "
                                        r"regression: rmse, mae, r2"):
        declare()


def test_an_unknown_fairness_metric_fails_at_declaration() -> None:
    with pytest.raises(GateError, match="unknown fairness metric 'demographic_parity'; known "
                                        "fairness metrics are demographic_parity_difference, "
                                        "equalized_odds_difference"):
        Fairness("demographic_parity", attribute="sex")  # type: ignore[arg-type]


@pytest.mark.parametrize(("declare", "message"), [
    (lambda: MetricThreshold("auc"), "give at least one of 'min' and 'max'"),
    (lambda: MetricThreshold("auc", min=0.9, max=0.8), "min 0.9 is greater than max 0.8"),
    (lambda: MetricThreshold("auc", min=float("nan")), "min must be a finite number"),
    (lambda: MetricThreshold("auc", min="0.6"), "min must be a finite number, got '0.6'"),
    (lambda: MetricThreshold("auc", min=0.6, blocking="yes"), "blocking must be True or False"),
    (lambda: NoRegression("auc", tolerance=-0.01), "tolerance must be >= 0"),
    (lambda: NoRegression("auc", confidence=1.0), "confidence must be < 1"),
    (lambda: NoRegression("auc", confidence=0), "confidence must be > 0"),
    (lambda: NoRegression("auc", n_bootstrap=0), "n_bootstrap must be a whole number >= 1"),
    (lambda: SliceMetric("auc", by="", min=0.6), "by must be a non-empty string"),
    (lambda: SliceMetric("auc", by="region", min=0.6, min_rows=0), "min_rows must be a whole"),
    (lambda: Invariance("names", perturb="swap"), "perturb must be a function"),
    (lambda: Invariance("names", perturb=same, max_change=-1), "max_change must be >= 0"),
    (lambda: Directional("bmi", perturb=same, direction="up"), "direction must be 'increase'"),
    (lambda: Directional("bmi", perturb=same, min_fraction=0), "min_fraction must be > 0"),
    (lambda: Directional("bmi", perturb=same, min_fraction=1.5), "min_fraction must be <= 1"),
    (lambda: MinimumFunctionality("basics", cases=pd.DataFrame({"x": [1, 2]}), expected=[1]),
     "2 cases but 1 expected answers"),
    (lambda: MinimumFunctionality("basics", cases=pd.DataFrame({"x": []}), expected=[]),
     "give at least one case"),
    (lambda: MinimumFunctionality("basics", cases=[[1, 2]], expected=[1]),
     "cases must be a DataFrame or an Arrow table, got list"),
    (lambda: Fairness("equalized_odds_difference", attribute="sex", max=-0.1), "max must be >= 0"),
])
def test_a_wrong_declaration_says_what_is_wrong(declare: Any, message: str) -> None:
    with pytest.raises(GateError, match=re.escape(message)):
        declare()


def test_gate_ids_are_stable_and_readable() -> None:
    assert MetricThreshold("auc", min=0.65).gate_id == "metric_threshold(auc>=0.65)"
    assert MetricThreshold("logloss", max=0.5).gate_id == "metric_threshold(logloss<=0.5)"
    assert MetricThreshold("auc", min=0.6, max=0.99).gate_id == "metric_threshold(0.6<=auc<=0.99)"
    assert NoRegression("auc").gate_id == "no_regression(auc)"
    assert NoRegression("rmse", tolerance=0.5).gate_id == "no_regression(rmse,tolerance=0.5)"
    assert SliceMetric("recall", by="region", min=0.7).gate_id == \
        "slice_metric(recall>=0.7,by=region)"
    assert Invariance("names", perturb=same).gate_id == "invariance(names)"
    assert Directional("bmi", perturb=same).gate_id == "directional(bmi)"
    assert MinimumFunctionality("basics", cases=pd.DataFrame({"x": [1]}), expected=[1]).gate_id \
        == "minimum_functionality(basics)"
    assert Fairness("demographic_parity_difference", attribute="sex", max=0.1).gate_id == \
        "fairness(demographic_parity_difference[sex]<=0.1)"


def test_gates_are_frozen_values_that_block_unless_told_otherwise() -> None:
    gate = MetricThreshold("auc", min=0.65)
    assert gate.blocking and not MetricThreshold("auc", min=0.65, blocking=False).blocking
    assert gate == MetricThreshold("auc", min=0.65) and hash(gate) == hash(MetricThreshold("auc", min=0.65))
    with pytest.raises(AttributeError):
        gate.min = 0.7  # type: ignore[misc]
    assert gate.metrics == ("auc",) and gate.columns == ()
    assert SliceMetric("auc", by="region", min=0.6).columns == ("region",)
    assert Fairness("demographic_parity_difference", attribute="sex").metrics == ()
