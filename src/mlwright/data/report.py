"""What a validation says: one result per rule, and the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any


def jsonable(value: Any) -> Any:
    """Turn values from Arrow/DuckDB rows into something json.dumps accepts."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


@dataclass
class RuleResult:
    """The outcome of one rule on one table."""

    rule_id: str
    kind: str
    columns: tuple[str, ...]
    severity: str
    passed: bool
    message: str
    failing_rows: int | None = None  # None for rules that judge the table as a whole
    observed: Any = None
    first_failing_row: int | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule_id,
            "kind": self.kind,
            "columns": list(self.columns),
            "severity": self.severity,
            "passed": self.passed,
            "message": self.message,
            "failing_rows": self.failing_rows,
            "observed": jsonable(self.observed),
            "first_failing_row": self.first_failing_row,
            "samples": jsonable(self.samples),
        }


@dataclass
class ValidationReport:
    """Every rule's result; ``passed`` is False when any error-severity rule failed."""

    contract: str
    target: str
    num_rows: int
    results: list[RuleResult]
    duration_s: float

    @property
    def passed(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[RuleResult]:
        return [r for r in self.results if not r.passed and r.severity == "error"]

    @property
    def warnings(self) -> list[RuleResult]:
        return [r for r in self.results if not r.passed and r.severity == "warn"]

    def result(self, rule_id: str) -> RuleResult:
        """The result of one rule, by its id (``range(amount)``)."""
        for item in self.results:
            if item.rule_id == rule_id:
                return item
        raise KeyError(f"no rule {rule_id!r} in this report; rules: "
                       f"{', '.join(r.rule_id for r in self.results)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "contract": self.contract,
            "target": self.target,
            "num_rows": self.num_rows,
            "passed": self.passed,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "duration_s": round(self.duration_s, 6),
            "results": [r.to_dict() for r in self.results],
        }
