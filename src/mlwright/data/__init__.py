"""Datasets and data contracts.

>>> from mlwright.data import Contract, NotNull, validate_table
"""

from mlwright.data.contracts import Contract, load_contract, parse_duration
from mlwright.data.records import RecordValidator, RecordViolation
from mlwright.data.report import RuleResult, ValidationReport
from mlwright.data.rules import (
    Allowed,
    ColumnType,
    Freshness,
    Mean,
    Monotonic,
    NotNull,
    NullRate,
    Quantile,
    Range,
    Regex,
    RowCount,
    Rule,
    Unique,
)
from mlwright.data.validation import validate_table

__all__ = [
    "Allowed",
    "ColumnType",
    "Contract",
    "Freshness",
    "Mean",
    "Monotonic",
    "NotNull",
    "NullRate",
    "Quantile",
    "Range",
    "RecordValidator",
    "RecordViolation",
    "Regex",
    "RowCount",
    "Rule",
    "RuleResult",
    "Unique",
    "ValidationReport",
    "load_contract",
    "parse_duration",
    "validate_table",
]
