"""Partitions: one run of a pipeline per key (a day, a region), backfilled in parallel.

>>> days = DailyPartitions("2013-01-01", "2013-12-31")
>>> days.keys("2013-01-30", "2013-02-02")
['2013-01-30', '2013-01-31', '2013-02-01', '2013-02-02']
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Protocol

from mlwright.errors import PipelineError


class Partitions(Protocol):
    def keys(self, start: str | None = None, end: str | None = None) -> list[str]: ...

    def check(self, key: str) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


def _day(value: str | date, what: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise PipelineError(f"{what} {value!r} is not a date (YYYY-MM-DD).") from None


@dataclass(frozen=True)
class DailyPartitions:
    """One partition per day from ``start`` to ``end`` inclusive; keys are ISO dates."""

    start: str
    end: str

    def __post_init__(self) -> None:
        if _day(self.start, "Partition start") > _day(self.end, "Partition end"):
            raise PipelineError(f"Daily partitions start {self.start} after they end {self.end}.")

    def keys(self, start: str | None = None, end: str | None = None) -> list[str]:
        first = self.check(start) if start else self.start
        last = self.check(end) if end else self.end
        low, high = _day(first, "From"), _day(last, "To")
        if low > high:
            raise PipelineError(f"--from {first} is after --to {last}.")
        return [(low + timedelta(days=i)).isoformat() for i in range((high - low).days + 1)]

    def check(self, key: str) -> str:
        day = _day(key, "Partition key")
        if not _day(self.start, "") <= day <= _day(self.end, ""):
            raise PipelineError(f"Partition {key} is outside the declared range "
                                f"{self.start}..{self.end}.")
        return day.isoformat()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "daily", "start": self.start, "end": self.end}


@dataclass(frozen=True)
class StaticPartitions:
    """A fixed list of keys (regions, customers, ...); ranges follow the list's order."""

    values: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(str(v) for v in self.values))
        if not self.values or len(set(self.values)) != len(self.values):
            raise PipelineError("Static partitions need distinct keys, at least one.")

    def keys(self, start: str | None = None, end: str | None = None) -> list[str]:
        low = self.values.index(self.check(start)) if start else 0
        high = self.values.index(self.check(end)) if end else len(self.values) - 1
        if low > high:
            raise PipelineError(f"--from {start} comes after --to {end} in the partition list.")
        return list(self.values[low : high + 1])

    def check(self, key: str) -> str:
        if key not in self.values:
            raise PipelineError(f"Partition {key!r} is not one of the declared partitions "
                                f"({', '.join(self.values[:10])}{', ...' if len(self.values) > 10 else ''}).")
        return key

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "static", "values": list(self.values)}
