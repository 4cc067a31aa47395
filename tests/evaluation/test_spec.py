"""Gates as JSON: what the registry stores with a version, and rebuilds."""

from __future__ import annotations

import json
import re
from typing import Any

import pandas as pd
import pytest

from mlwright.errors import GateError
from mlwright.evaluation import (
    Directional,
    Fairness,
    Invariance,
    MetricThreshold,
    MinimumFunctionality,
    NoRegression,
    SliceMetric,
    gates_from_spec,
    to_spec,
)

DECLARATIVE = [
    MetricThreshold("auc", min=0.65),
    MetricThreshold("logloss", max=0.5, blocking=False),
    NoRegression("auc", tolerance=0.01, confidence=0.9, n_bootstrap=500, seed=4),
    SliceMetric("recall", by="region", min=0.6, min_rows=50),
    Fairness("equalized_odds_difference", attribute="sex", max=0.05, min_rows=10),
]


def same(frame: pd.DataFrame) -> pd.DataFrame:
    return frame


BEHAVIOURAL = [
    Invariance("names", perturb=same, max_change=0.01),
    Directional("bmi", perturb=same, direction="decrease", min_fraction=0.9, blocking=False),
    MinimumFunctionality("basics", cases=pd.DataFrame({"x": [1, 2]}), expected=[0, 1]),
]


def test_declarative_gates_round_trip_through_json() -> None:
    spec = json.loads(json.dumps(to_spec(DECLARATIVE)))
    assert spec[0] == {"kind": "metric_threshold", "blocking": True, "metric": "auc", "min": 0.65,
                       "max": None}
    assert gates_from_spec(spec) == DECLARATIVE


def test_behavioural_gates_are_recorded_by_name_and_numbers_only() -> None:
    spec = json.loads(json.dumps(to_spec(BEHAVIOURAL)))
    assert spec == [
        {"kind": "invariance", "blocking": True, "name": "names", "max_change": 0.01},
        {"kind": "directional", "blocking": False, "name": "bmi", "direction": "decrease",
         "min_fraction": 0.9},
        {"kind": "minimum_functionality", "blocking": True, "name": "basics", "tolerance": 0.0,
         "cases": 2},
    ]
    with pytest.raises(GateError, match=re.escape(
            "gate 0 of the spec: invariance gate 'names' is declared with code or data, which a "
            "spec does not hold; declare it in Python, or pass skip_behavioural=True")):
        gates_from_spec(spec)
    mixed = to_spec([*DECLARATIVE, *BEHAVIOURAL])
    assert gates_from_spec(mixed, skip_behavioural=True) == DECLARATIVE


@pytest.mark.parametrize(("spec", "message"), [
    ({"kind": "metric_threshold"}, "a gate spec is a list of gate declarations, got dict"),
    (["auc>=0.6"], "gate 0 of the spec must be a mapping with a 'kind', got 'auc>=0.6'"),
    ([{"kind": "threshold", "metric": "auc"}], "unknown gate kind 'threshold'; kinds are "
                                                "metric_threshold, no_regression, slice_metric"),
    ([{"kind": "metric_threshold", "metric": "auc", "minimum": 0.6}],
     "unknown key 'minimum' for a metric_threshold gate; it takes blocking, metric, min, max"),
    ([{"kind": "slice_metric", "metric": "auc", "min": 0.6}], "a slice_metric gate needs 'by'"),
    ([{"kind": "metric_threshold", "metric": "acu", "min": 0.6}], "unknown metric 'acu'"),
    ([{"kind": "metric_threshold", "metric": "auc", "min": 0.6}] * 2,
     "gate 1 of the spec repeats 'metric_threshold(auc>=0.6)'"),
])
def test_a_wrong_spec_says_where(spec: Any, message: str) -> None:
    with pytest.raises(GateError, match=re.escape(message)):
        gates_from_spec(spec)
