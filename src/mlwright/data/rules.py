"""The rules a data contract is made of: one frozen dataclass per kind.

Each rule knows its kind, the columns it reads and its severity; how a rule is checked
lives elsewhere (``validation`` for a whole table in one DuckDB scan, ``records`` for a
single dict at serving time), so the two checkers can never disagree about what a rule is.

>>> Range("amount", min=0, max=10_000, severity="warn").rule_id
'range(amount)'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import ClassVar, Literal

import pyarrow as pa

from mlwright.errors import ContractError

Severity = Literal["error", "warn"]
SEVERITIES: tuple[str, ...] = ("error", "warn")
Bound = int | float | datetime | date | None

# Type names a contract may use: families, then any Arrow alias pyarrow understands.
TYPE_FAMILIES: dict[str, str] = {
    "integer": "any signed or unsigned integer",
    "float": "any floating point number",
    "numeric": "any integer, float or decimal",
    "string": "string, large_string or string_view",
    "bool": "boolean",
    "boolean": "boolean",
    "timestamp": "a timestamp of any unit and zone",
    "date": "date32 or date64",
    "binary": "any binary",
}
_TIMESTAMP_TYPE = re.compile(r"^timestamp\[(s|ms|us|ns)(?:,\s*tz=([^\]]+))?\]$")


def parse_dtype(name: str) -> pa.DataType | str:
    """A family name (returned as is) or the exact Arrow type a contract type name means."""
    if not isinstance(name, str):
        raise ContractError(f"unknown type '{name}'; a type is a name such as int64 or string")
    if name in TYPE_FAMILIES:
        return name
    match = _TIMESTAMP_TYPE.match(name)
    if match:
        return pa.timestamp(match.group(1), tz=match.group(2))
    try:
        return pa.type_for_alias(name)
    except (ValueError, KeyError):
        known = ", ".join([*TYPE_FAMILIES, "int8..int64", "uint8..uint64", "float32", "float64",
                           "timestamp[us, tz=UTC]", "date32", "large_string"])
        raise ContractError(f"unknown type '{name}'; expected one of {known}") from None


def type_matches(expected: pa.DataType | str, actual: pa.DataType) -> bool:
    """Whether an Arrow column type satisfies a contract type (family or exact)."""
    if isinstance(expected, pa.DataType):
        if pa.types.is_timestamp(expected) and pa.types.is_timestamp(actual):
            return bool(expected.unit == actual.unit and expected.tz == actual.tz)
        return bool(expected.equals(actual))
    checks = {
        "integer": pa.types.is_integer,
        "float": pa.types.is_floating,
        "numeric": lambda t: pa.types.is_integer(t) or pa.types.is_floating(t)
        or pa.types.is_decimal(t),
        "string": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)
        or pa.types.is_string_view(t),
        "bool": pa.types.is_boolean,
        "boolean": pa.types.is_boolean,
        "timestamp": pa.types.is_timestamp,
        "date": pa.types.is_date,
        "binary": lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t),
    }
    return bool(checks[expected](actual))


def _check_severity(severity: str) -> None:
    if severity not in SEVERITIES:
        raise ContractError(f"severity must be 'error' or 'warn', got {severity!r}")


def _check_bounds(low: object, high: object, *, need_one: bool = True) -> None:
    for bound in (low, high):
        if bound is not None and (
            isinstance(bound, bool) or not isinstance(bound, int | float | datetime | date)
        ):
            raise ContractError(f"a bound must be a number, a date or a timestamp, got {bound!r}")
        if isinstance(bound, float) and bound != bound:
            raise ContractError("a bound must not be NaN")
    if need_one and low is None and high is None:
        raise ContractError("give at least one of 'min' and 'max'")
    if low is not None and high is not None:
        try:
            inverted = low > high  # type: ignore[operator]
        except TypeError:
            raise ContractError(f"min {low!r} and max {high!r} are not comparable") from None
        if inverted:
            raise ContractError(f"min {low!r} is greater than max {high!r}")


@dataclass(frozen=True)
class Rule:
    """What every rule has: the columns it reads and a severity."""

    kind: ClassVar[str] = "rule"
    # Keyword-only, so that it may follow each rule's own fields: Range("x", min=0, severity="warn").
    severity: Severity = field(default="error", kw_only=True)

    @property
    def columns(self) -> tuple[str, ...]:
        column = getattr(self, "column", None)
        return (column,) if column is not None else ()

    @property
    def rule_id(self) -> str:
        return f"{self.kind}({','.join(self.columns)})"

    @property
    def row_level(self) -> bool:
        """Whether the rule counts failing rows (rather than judging the table as a whole)."""
        return False


@dataclass(frozen=True)
class ColumnType(Rule):
    """The column's Arrow type is ``dtype`` (an exact type such as ``int64`` or a family)."""

    column: str
    dtype: str
    kind: ClassVar[str] = "type"
    expected: pa.DataType | str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_severity(self.severity)
        object.__setattr__(self, "expected", parse_dtype(self.dtype))


@dataclass(frozen=True)
class NotNull(Rule):
    """No value of the column is null."""

    column: str
    kind: ClassVar[str] = "not_null"

    def __post_init__(self) -> None:
        _check_severity(self.severity)

    @property
    def row_level(self) -> bool:
        return True


@dataclass(frozen=True)
class Unique(Rule):
    """No key (one column or several) occurs twice; rows with a null key part are ignored."""

    key: tuple[str, ...]
    kind: ClassVar[str] = "unique"

    def __post_init__(self) -> None:
        _check_severity(self.severity)
        if isinstance(self.key, str):
            object.__setattr__(self, "key", (self.key,))
        object.__setattr__(self, "key", tuple(self.key))
        if not self.key or not all(isinstance(c, str) and c for c in self.key):
            raise ContractError(f"a unique key needs one or more column names, got {self.key!r}")
        if len(set(self.key)) != len(self.key):
            raise ContractError(f"a unique key names a column twice: {list(self.key)}")

    @property
    def columns(self) -> tuple[str, ...]:
        return self.key

    @property
    def row_level(self) -> bool:
        return True


@dataclass(frozen=True)
class Range(Rule):
    """Every non-null value lies in [min, max] (either bound may be omitted)."""

    column: str
    min: Bound = None
    max: Bound = None
    kind: ClassVar[str] = "range"

    def __post_init__(self) -> None:
        _check_severity(self.severity)
        _check_bounds(self.min, self.max)

    @property
    def row_level(self) -> bool:
        return True


@dataclass(frozen=True)
class Allowed(Rule):
    """Every non-null value is one of ``values``."""

    column: str
    values: tuple[object, ...]
    kind: ClassVar[str] = "allowed"

    def __post_init__(self) -> None:
        _check_severity(self.severity)
        if isinstance(self.values, str | bytes) or not hasattr(self.values, "__iter__"):
            raise ContractError(f"allowed values must be a list, got {self.values!r}")
        values = tuple(self.values)
        if not values:
            raise ContractError("allowed values must not be empty")
        for value in values:
            if not isinstance(value, str | int | float | bool):
                raise ContractError(f"allowed values must be strings, numbers or booleans, "
                                    f"got {value!r}")
        kinds = {type(v) is str for v in values}
        if len(kinds) > 1:
            raise ContractError(f"allowed values mix strings and numbers: {list(values)}")
        object.__setattr__(self, "values", values)

    @property
    def row_level(self) -> bool:
        return True


@dataclass(frozen=True)
class Regex(Rule):
    """Every non-null value matches ``pattern`` somewhere (search; anchor with ^ and $)."""

    column: str
    pattern: str
    kind: ClassVar[str] = "regex"
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_severity(self.severity)
        if not isinstance(self.pattern, str):
            raise ContractError(f"a regex pattern must be a string, got {self.pattern!r}")
        try:
            object.__setattr__(self, "compiled", re.compile(self.pattern))
        except re.error as exc:
            raise ContractError(f"invalid regex {self.pattern!r}: {exc}") from None

    @property
    def row_level(self) -> bool:
        return True


@dataclass(frozen=True)
class Monotonic(Rule):
    """Values never go down (``increasing``) or up (``decreasing``) in row order; nulls skipped.

    A failing row is one whose value breaks the order with the previous non-null value.
    """

    column: str
    direction: Literal["increasing", "decreasing"] = "increasing"
    strict: bool = False
    kind: ClassVar[str] = "monotonic"

    def __post_init__(self) -> None:
        _check_severity(self.severity)
        if self.direction not in ("increasing", "decreasing"):
            raise ContractError(
                f"monotonic direction must be 'increasing' or 'decreasing', got {self.direction!r}"
            )

    @property
    def row_level(self) -> bool:
        return True


@dataclass(frozen=True)
class Freshness(Rule):
    """The newest value of a timestamp column is at most ``max_age`` old."""

    column: str
    max_age: timedelta
    kind: ClassVar[str] = "freshness"

    def __post_init__(self) -> None:
        _check_severity(self.severity)
        if not isinstance(self.max_age, timedelta) or self.max_age <= timedelta(0):
            raise ContractError(f"max_age must be a positive duration, got {self.max_age!r}")


@dataclass(frozen=True)
class Mean(Rule):
    """The mean of the non-null values lies in [min, max]."""

    column: str
    min: float | None = None
    max: float | None = None
    kind: ClassVar[str] = "mean"

    def __post_init__(self) -> None:
        _check_severity(self.severity)
        _check_bounds(self.min, self.max)


@dataclass(frozen=True)
class Quantile(Rule):
    """The ``q`` quantile (0..1, continuous) of the non-null values lies in [min, max]."""

    column: str
    q: float
    min: Bound = None
    max: Bound = None
    kind: ClassVar[str] = "quantile"

    def __post_init__(self) -> None:
        _check_severity(self.severity)
        if isinstance(self.q, bool) or not isinstance(self.q, int | float) or not 0 <= self.q <= 1:
            raise ContractError(f"quantile q must be a number in [0, 1], got {self.q!r}")
        _check_bounds(self.min, self.max)

    @property
    def rule_id(self) -> str:
        return f"quantile({self.column},{self.q:g})"


@dataclass(frozen=True)
class NullRate(Rule):
    """The share of null values lies in [min, max] (fractions 0..1)."""

    column: str
    min: float | None = None
    max: float | None = None
    kind: ClassVar[str] = "null_rate"

    def __post_init__(self) -> None:
        _check_severity(self.severity)
        _check_bounds(self.min, self.max)
        for bound in (self.min, self.max):
            if bound is not None and not 0 <= float(bound) <= 1:
                raise ContractError(f"a null rate bound must be in [0, 1], got {bound!r}")


@dataclass(frozen=True)
class RowCount(Rule):
    """The table has between ``min`` and ``max`` rows."""

    min: int | None = None
    max: int | None = None
    kind: ClassVar[str] = "row_count"

    def __post_init__(self) -> None:
        _check_severity(self.severity)
        for bound in (self.min, self.max):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)
                                      or bound < 0):
                raise ContractError(f"a row count bound must be a whole number >= 0, got {bound!r}")
        _check_bounds(self.min, self.max)

    @property
    def rule_id(self) -> str:
        return "row_count"


RULE_KINDS: dict[str, type[Rule]] = {
    cls.kind: cls
    for cls in (ColumnType, NotNull, Unique, Range, Allowed, Regex, Monotonic, Freshness, Mean,
                Quantile, NullRate, RowCount)
}
