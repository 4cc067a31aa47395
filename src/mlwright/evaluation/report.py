"""What an evaluation says: one result per gate, the metrics, and the verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np

from mlwright.errors import GateError


def number(value: float | None) -> str:
    """A metric value as people read it: 0.61, 0.04, 1234.5, nan."""
    if value is None:
        return "none"
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:.1f}"
    return f"{value:.4g}"


def jsonable(value: Any) -> Any:
    """Turn NumPy scalars, tuples and non-finite floats into what strict JSON accepts."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


@dataclass
class GateResult:
    """The outcome of one gate.

    ``value`` is what was observed (the metric, the worst slice, the largest change, ...),
    ``threshold`` the bound it was held to, and ``margin`` the signed distance to that bound:
    positive when the gate passed with room to spare, negative by how much it failed.
    """

    gate_id: str
    kind: str
    blocking: bool
    passed: bool
    message: str
    value: float | None = None
    threshold: float | None = None
    margin: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate_id": self.gate_id,
            "kind": self.kind,
            "blocking": self.blocking,
            "passed": self.passed,
            "value": jsonable(self.value),
            "threshold": jsonable(self.threshold),
            "margin": jsonable(self.margin),
            "message": self.message,
            "details": jsonable(self.details),
        }


@dataclass
class GateReport:
    """Every gate's result; ``passed`` is False when any blocking gate failed."""

    results: list[GateResult]
    metrics: dict[str, float]
    task: str
    num_rows: int
    threshold: float
    duration_s: float
    champion_metrics: dict[str, float] | None = None

    @property
    def passed(self) -> bool:
        return not self.failed_blocking

    @property
    def failed_blocking(self) -> list[GateResult]:
        return [r for r in self.results if not r.passed and r.blocking]

    @property
    def warnings(self) -> list[GateResult]:
        """Non-blocking gates that failed."""
        return [r for r in self.results if not r.passed and not r.blocking]

    def result(self, gate_id: str) -> GateResult:
        """The result of one gate, by its id (``metric_threshold(auc>=0.65)``)."""
        for item in self.results:
            if item.gate_id == gate_id:
                return item
        raise KeyError(f"no gate {gate_id!r} in this report; gates: "
                       f"{', '.join(r.gate_id for r in self.results) or 'none'}")

    def summary(self) -> str:
        """One line: how many gates passed, and which failed."""
        failed = [r for r in self.results if not r.passed]
        line = (f"{'passed' if self.passed else 'FAILED'}: {len(self.results) - len(failed)} of "
                f"{len(self.results)} gates passed on {self.num_rows} rows")
        if self.failed_blocking:
            line += "; blocking failures: " + ", ".join(r.gate_id for r in self.failed_blocking)
        if self.warnings:
            line += "; non-blocking failures: " + ", ".join(r.gate_id for r in self.warnings)
        return line

    def raise_if_failed(self, what: str) -> None:
        """Raise a GateError naming each failed blocking gate and by how much it failed.

        ``what`` names the object judged, such as ``"Model delays@3"``.
        """
        failed = self.failed_blocking
        if not failed:
            return
        if len(failed) == 1:
            raise GateError(f"{what} failed gate {failed[0].gate_id}: {failed[0].message}.")
        reasons = "; ".join(f"{r.gate_id}: {r.message}" for r in failed)
        raise GateError(f"{what} failed {len(failed)} blocking gates: {reasons}.")

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "task": self.task,
            "num_rows": self.num_rows,
            "threshold": self.threshold,
            "duration_s": round(self.duration_s, 6),
            "metrics": jsonable(self.metrics),
            "champion_metrics": jsonable(self.champion_metrics),
            "failed_blocking": [r.gate_id for r in self.failed_blocking],
            "results": [r.to_dict() for r in self.results],
        }
