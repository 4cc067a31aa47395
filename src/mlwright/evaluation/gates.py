"""The gates a model version must pass: one frozen dataclass per kind.

A gate is a declaration; ``evaluate`` judges it on a held-out dataset. A gate is checked when
it is built, so that a misspelt metric fails where the pipeline declares its gates, not
after training. Every gate is ``blocking`` unless told otherwise: a version that fails a
blocking gate may not take the ``challenger`` or ``champion`` alias; a non-blocking gate
is reported only.

>>> MetricThreshold("auc", min=0.65).gate_id
'metric_threshold(auc>=0.65)'
>>> Fairness("demographic_parity_difference", attribute="sex", max=0.1).gate_id
'fairness(demographic_parity_difference[sex]<=0.1)'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from mlwright.errors import GateError
from mlwright.evaluation.fairness import FAIRNESS_METRICS, FairnessMetric
from mlwright.evaluation.metrics import METRICS, get_metric

if TYPE_CHECKING:
    import pandas as pd

Perturbation = Callable[["pd.DataFrame"], "pd.DataFrame"]


def _number(gate: str, name: str, value: Any, *, low: float | None = None,
            high: float | None = None, low_open: bool = False, high_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) \
            or math.isinf(value):
        raise GateError(f"{gate}: {name} must be a finite number, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise GateError(f"{gate}: {name} must be {'>' if low_open else '>='} {low:g}, got {value!r}")
    if high is not None and (value >= high if high_open else value > high):
        raise GateError(f"{gate}: {name} must be {'<' if high_open else '<='} {high:g}, got {value!r}")


def _whole(gate: str, name: str, value: Any, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise GateError(f"{gate}: {name} must be a whole number >= {low}, got {value!r}")


def _text(gate: str, name: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise GateError(f"{gate}: {name} must be a non-empty string, got {value!r}")


def _bounds(gate: str, low: Any, high: Any) -> None:
    for name, bound in (("min", low), ("max", high)):
        if bound is not None:
            _number(gate, name, bound)
    if low is None and high is None:
        raise GateError(f"{gate}: give at least one of 'min' and 'max'")
    if low is not None and high is not None and low > high:
        raise GateError(f"{gate}: min {low!r} is greater than max {high!r}")


def bounds_text(metric: str, low: float | None, high: float | None) -> str:
    """``auc>=0.65``, ``logloss<=0.5`` or ``0.6<=auc<=0.9``."""
    if low is not None and high is not None:
        return f"{low:g}<={metric}<={high:g}"
    if low is not None:
        return f"{metric}>={low:g}"
    return f"{metric}<={high:g}"


@dataclass(frozen=True)
class Gate:
    """What every gate has: a kind, an id and whether failing it blocks the version."""

    kind: ClassVar[str] = "gate"
    behavioural: ClassVar[bool] = False  # declared with code (a perturbation or cases)
    # Keyword-only so that it may follow each gate's own fields: MetricThreshold("auc", min=0.6,
    # blocking=False).
    blocking: bool = field(default=True, kw_only=True)

    def _check_blocking(self) -> None:
        if not isinstance(self.blocking, bool):
            raise GateError(f"{self.kind}: blocking must be True or False, got {self.blocking!r}")

    @property
    def gate_id(self) -> str:
        return self.kind

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics the gate reads (each computed on the full data for the report)."""
        metric = getattr(self, "metric", None)
        return (metric,) if metric in METRICS else ()

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns of the evaluation data the gate reads besides the model's features."""
        return ()

    def to_spec(self) -> dict[str, Any]:
        """The declaration as JSON; for a behavioural gate, its name and numbers only."""
        spec: dict[str, Any] = {"kind": self.kind}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.init and item.metadata.get("spec", True):
                spec[item.name] = value
        return spec


@dataclass(frozen=True)
class MetricThreshold(Gate):
    """The metric on the full evaluation data lies in [min, max] (either bound may be omitted)."""

    metric: str
    min: float | None = None
    max: float | None = None
    kind: ClassVar[str] = "metric_threshold"

    def __post_init__(self) -> None:
        self._check_blocking()
        get_metric(self.metric)
        _bounds(f"metric_threshold({self.metric})", self.min, self.max)

    @property
    def gate_id(self) -> str:
        return f"{self.kind}({bounds_text(self.metric, self.min, self.max)})"


@dataclass(frozen=True)
class NoRegression(Gate):
    """The candidate is no worse than the champion by more than ``tolerance``, with evidence.

    A paired bootstrap over the evaluation rows gives a ``confidence`` interval for the
    difference of the metric (candidate minus champion); the gate fails when the whole
    interval lies on the worse side of ``-tolerance``, that is when the data show a
    regression beyond the tolerance. Without a champion the gate passes with a note.
    """

    metric: str
    tolerance: float = 0.0
    confidence: float = 0.95
    n_bootstrap: int = 1000
    seed: int = 0
    kind: ClassVar[str] = "no_regression"

    def __post_init__(self) -> None:
        self._check_blocking()
        get_metric(self.metric)
        where = f"no_regression({self.metric})"
        _number(where, "tolerance", self.tolerance, low=0)
        _number(where, "confidence", self.confidence, low=0, low_open=True, high=1, high_open=True)
        _whole(where, "n_bootstrap", self.n_bootstrap, low=1)
        _whole(where, "seed", self.seed, low=0)

    @property
    def gate_id(self) -> str:
        if self.tolerance:
            return f"{self.kind}({self.metric},tolerance={self.tolerance:g})"
        return f"{self.kind}({self.metric})"


@dataclass(frozen=True)
class SliceMetric(Gate):
    """The metric lies in [min, max] on every slice (value of ``by``) of at least ``min_rows`` rows.

    Smaller slices, and slices where the metric is undefined, are reported but not judged.
    """

    metric: str
    by: str
    min: float | None = None
    max: float | None = None
    min_rows: int = 30
    kind: ClassVar[str] = "slice_metric"

    def __post_init__(self) -> None:
        self._check_blocking()
        get_metric(self.metric)
        where = f"slice_metric({self.metric})"
        _text(where, "by", self.by)
        _bounds(where, self.min, self.max)
        _whole(where, "min_rows", self.min_rows, low=1)

    @property
    def gate_id(self) -> str:
        return f"{self.kind}({bounds_text(self.metric, self.min, self.max)},by={self.by})"

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.by,)


def _callable(gate: str, name: str, value: Any) -> None:
    if not callable(value):
        raise GateError(f"{gate}: {name} must be a function of a DataFrame returning a DataFrame, "
                        f"got {value!r}")


@dataclass(frozen=True)
class Invariance(Gate):
    """Predictions change by at most ``max_change`` (largest absolute change) under ``perturb``.

    ``perturb`` gets a copy of the model's input frame and returns the perturbed frame (same
    rows), for example with the customer's name replaced. Changes within floating point
    noise (1e-9 of the largest prediction) count as none.
    """

    name: str
    perturb: Perturbation = field(compare=False, metadata={"spec": False})
    max_change: float = 0.0
    kind: ClassVar[str] = "invariance"
    behavioural: ClassVar[bool] = True

    def __post_init__(self) -> None:
        self._check_blocking()
        _text(self.kind, "name", self.name)
        _callable(f"invariance({self.name})", "perturb", self.perturb)
        _number(f"invariance({self.name})", "max_change", self.max_change, low=0)

    @property
    def gate_id(self) -> str:
        return f"{self.kind}({self.name})"


@dataclass(frozen=True)
class Directional(Gate):
    """Predictions move in ``direction`` under ``perturb`` on at least ``min_fraction`` of the rows.

    A move within floating point noise (1e-9 of the largest prediction) does not count.
    """

    name: str
    perturb: Perturbation = field(compare=False, metadata={"spec": False})
    direction: Literal["increase", "decrease"] = "increase"
    min_fraction: float = 1.0
    kind: ClassVar[str] = "directional"
    behavioural: ClassVar[bool] = True

    def __post_init__(self) -> None:
        self._check_blocking()
        _text(self.kind, "name", self.name)
        where = f"directional({self.name})"
        _callable(where, "perturb", self.perturb)
        if self.direction not in ("increase", "decrease"):
            raise GateError(f"{where}: direction must be 'increase' or 'decrease', "
                            f"got {self.direction!r}")
        _number(where, "min_fraction", self.min_fraction, low=0, low_open=True, high=1)

    @property
    def gate_id(self) -> str:
        return f"{self.kind}({self.name})"


@dataclass(frozen=True)
class MinimumFunctionality(Gate):
    """Cases with known answers: every case must come out as ``expected``.

    For a binary classifier ``expected`` holds labels, compared with the predicted labels;
    for a regression, values, each to be matched within ``tolerance``. ``cases`` is a
    DataFrame (or Arrow table) with the model's feature columns.
    """

    name: str
    cases: Any = field(compare=False, metadata={"spec": False})
    expected: Sequence[Any] = field(compare=False, metadata={"spec": False})
    tolerance: float = 0.0
    kind: ClassVar[str] = "minimum_functionality"
    behavioural: ClassVar[bool] = True

    def __post_init__(self) -> None:
        self._check_blocking()
        _text(self.kind, "name", self.name)
        where = f"minimum_functionality({self.name})"
        if not hasattr(self.cases, "__len__") or not hasattr(self.cases, "columns"):
            raise GateError(f"{where}: cases must be a DataFrame or an Arrow table, "
                            f"got {type(self.cases).__name__}")
        if isinstance(self.expected, str | bytes) or not hasattr(self.expected, "__len__"):
            raise GateError(f"{where}: expected must be a list with one answer per case, "
                            f"got {self.expected!r}")
        object.__setattr__(self, "expected", tuple(self.expected))
        if len(self.cases) == 0:
            raise GateError(f"{where}: give at least one case")
        if len(self.expected) != len(self.cases):
            raise GateError(f"{where}: {len(self.cases)} cases but {len(self.expected)} expected "
                            f"answers; give one answer per case")
        _number(where, "tolerance", self.tolerance, low=0)

    @property
    def gate_id(self) -> str:
        return f"{self.kind}({self.name})"

    def to_spec(self) -> dict[str, Any]:
        return {**super().to_spec(), "cases": len(self.cases)}


@dataclass(frozen=True)
class Fairness(Gate):
    """A group fairness difference over the values of ``attribute`` is at most ``max``.

    Groups with fewer than ``min_rows`` rows are reported but not judged. Binary
    classification only; predictions are labels cut at the decision threshold.
    """

    metric: FairnessMetric
    attribute: str
    max: float = 0.1
    min_rows: int = 1
    kind: ClassVar[str] = "fairness"

    def __post_init__(self) -> None:
        self._check_blocking()
        if self.metric not in FAIRNESS_METRICS:
            raise GateError(f"unknown fairness metric {self.metric!r}; known fairness metrics are "
                            f"{', '.join(FAIRNESS_METRICS)}")
        where = f"fairness({self.metric})"
        _text(where, "attribute", self.attribute)
        _number(where, "max", self.max, low=0)
        _whole(where, "min_rows", self.min_rows, low=1)

    @property
    def gate_id(self) -> str:
        return f"{self.kind}({self.metric}[{self.attribute}]<={self.max:g})"

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.attribute,)


GATE_KINDS: dict[str, type[Gate]] = {
    cls.kind: cls
    for cls in (MetricThreshold, NoRegression, SliceMetric, Invariance, Directional,
                MinimumFunctionality, Fairness)
}
