"""What changed between two dataset versions: schema and profile."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlwright.data.datasets import DatasetVersionInfo

# Relative changes of a statistic that are worth a reader's attention.
NOTABLE_CHANGE = 0.05


@dataclass
class ColumnChange:
    column: str
    statistic: str
    before: Any
    after: Any
    relative: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "statistic": self.statistic, "before": self.before,
                "after": self.after, "relative": self.relative}


@dataclass
class DatasetDiff:
    before: str
    after: str
    rows_before: int
    rows_after: int
    added: list[dict[str, str]] = field(default_factory=list)
    removed: list[dict[str, str]] = field(default_factory=list)
    retyped: list[dict[str, str]] = field(default_factory=list)
    changes: list[ColumnChange] = field(default_factory=list)

    @property
    def schema_changed(self) -> bool:
        return bool(self.added or self.removed or self.retyped)

    @property
    def identical(self) -> bool:
        return not self.schema_changed and not self.changes and self.rows_before == self.rows_after

    def to_dict(self) -> dict[str, Any]:
        return {"before": self.before, "after": self.after,
                "rows": {"before": self.rows_before, "after": self.rows_after},
                "schema": {"added": self.added, "removed": self.removed, "retyped": self.retyped},
                "changes": [c.to_dict() for c in self.changes], "identical": self.identical}


def _relative(before: Any, after: Any) -> float | None:
    if isinstance(before, int | float) and isinstance(after, int | float):
        if before == after:
            return 0.0
        scale = max(abs(before), abs(after))
        return (after - before) / scale if scale else None
    return None


def _column_changes(name: str, a: dict[str, Any], b: dict[str, Any], rows: tuple[int, int]
                    ) -> list[ColumnChange]:
    changes = []
    null_rates = (a["null_count"] / rows[0] if rows[0] else 0.0,
                  b["null_count"] / rows[1] if rows[1] else 0.0)
    if abs(null_rates[1] - null_rates[0]) > 0.001:
        changes.append(ColumnChange(name, "null_rate", round(null_rates[0], 6),
                                    round(null_rates[1], 6), null_rates[1] - null_rates[0]))
    for stat in ("min", "max", "mean", "std"):
        before, after = a.get(stat), b.get(stat)
        if before == after:
            continue
        relative = _relative(before, after)
        if relative is None or abs(relative) >= NOTABLE_CHANGE:
            changes.append(ColumnChange(name, stat, before, after, relative))
    for q in ("0.5",):
        before, after = a.get("quantiles", {}).get(q), b.get("quantiles", {}).get(q)
        relative = _relative(before, after)
        if before != after and (relative is None or abs(relative) >= NOTABLE_CHANGE):
            changes.append(ColumnChange(name, f"quantile {q}", before, after, relative))
    if "top_k" in a and "top_k" in b:
        top_a = {item["value"] for item in a["top_k"]}
        top_b = {item["value"] for item in b["top_k"]}
        if top_a != top_b:
            changes.append(ColumnChange(name, "top values",
                                        sorted(top_a - top_b), sorted(top_b - top_a), None))
    return changes


def diff_versions(before: DatasetVersionInfo, after: DatasetVersionInfo) -> DatasetDiff:
    """Schema differences and notable profile shifts from ``before`` to ``after``."""
    types_a = {f["name"]: f["type"] for f in before.schema}
    types_b = {f["name"]: f["type"] for f in after.schema}
    diff = DatasetDiff(before=before.ref, after=after.ref, rows_before=before.num_rows,
                       rows_after=after.num_rows)
    diff.added = [{"name": n, "type": t} for n, t in types_b.items() if n not in types_a]
    diff.removed = [{"name": n, "type": t} for n, t in types_a.items() if n not in types_b]
    diff.retyped = [{"name": n, "before": types_a[n], "after": t}
                    for n, t in types_b.items() if n in types_a and types_a[n] != t]
    columns_a, columns_b = before.profile["columns"], after.profile["columns"]
    for name in types_b:
        if name in columns_a and types_a[name] == types_b[name]:
            diff.changes += _column_changes(name, columns_a[name], columns_b[name],
                                            (before.num_rows, after.num_rows))
    return diff
