"""Validation gates: what a model version must pass before it may serve.

Gates are declared next to the pipeline and judged on a held-out dataset version: metric
thresholds, no regression against the champion (paired bootstrap), per-slice metrics,
behavioural tests (invariance, directional expectation, minimum functionality) and
fairness per sensitive attribute. The registry stores the report with the version and
refuses the ``challenger`` and ``champion`` aliases to a version that failed a blocking gate.

>>> from mlwright.evaluation import MetricThreshold, NoRegression, SliceMetric, evaluate_gates
>>> gates = [
...     MetricThreshold("auc", min=0.65),
...     NoRegression("auc", tolerance=0.01),
...     SliceMetric("auc", by="carrier", min=0.6),
... ]
>>> report = evaluate_gates(  # doctest: +SKIP
...     gates, predict=lambda X: model.predict_proba(X)[:, 1], data=holdout, label="delayed",
...     champion_predict=lambda X: champion.predict_proba(X)[:, 1])
>>> report.raise_if_failed("Model delays@3")  # doctest: +SKIP
GateError: Model delays@3 failed gate metric_threshold(auc>=0.65): auc 0.61 is 0.04 below 0.65.
"""

from mlwright.evaluation.evaluate import evaluate_gates
from mlwright.evaluation.fairness import (
    FAIRNESS_METRICS,
    demographic_parity_difference,
    equalized_odds_difference,
    group_rates,
)
from mlwright.evaluation.gates import (
    GATE_KINDS,
    Directional,
    Fairness,
    Gate,
    Invariance,
    MetricThreshold,
    MinimumFunctionality,
    NoRegression,
    SliceMetric,
)
from mlwright.evaluation.metrics import METRICS, Metric, get_metric, metric_value
from mlwright.evaluation.report import GateReport, GateResult
from mlwright.evaluation.spec import gate_from_spec, gates_from_spec, to_spec

__all__ = [
    "FAIRNESS_METRICS",
    "GATE_KINDS",
    "METRICS",
    "Directional",
    "Fairness",
    "Gate",
    "GateReport",
    "GateResult",
    "Invariance",
    "Metric",
    "MetricThreshold",
    "MinimumFunctionality",
    "NoRegression",
    "SliceMetric",
    "demographic_parity_difference",
    "equalized_odds_difference",
    "evaluate_gates",
    "gate_from_spec",
    "gates_from_spec",
    "get_metric",
    "group_rates",
    "metric_value",
    "to_spec",
]
