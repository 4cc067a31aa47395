"""Checking one record (a dict) against a contract, in microseconds.

Serving calls this on every request, so the contract is compiled once into a flat list of
closures; a call is a loop over them with no allocation unless something fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mlwright.data.rules import Allowed, ColumnType, NotNull, Range, Regex, Rule

if TYPE_CHECKING:
    from mlwright.data.contracts import Contract


@dataclass(frozen=True)
class RecordViolation:
    """One rule a record broke."""

    field: str
    rule_id: str
    severity: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule_id, "severity": self.severity,
                "message": self.message}


_Check = Callable[[Any], str | None]  # returns a message when the value breaks the rule


def _python_types(expected: pa.DataType | str) -> tuple[type, ...] | None:
    """The Python types a value of a contract type arrives as in JSON or a dict."""
    family = expected if isinstance(expected, str) else None
    if isinstance(expected, pa.DataType):
        if pa.types.is_integer(expected):
            family = "integer"
        elif pa.types.is_floating(expected) or pa.types.is_decimal(expected):
            family = "float"
        elif pa.types.is_string(expected) or pa.types.is_large_string(expected):
            family = "string"
        elif pa.types.is_boolean(expected):
            family = "bool"
        elif pa.types.is_timestamp(expected):
            family = "timestamp"
        elif pa.types.is_date(expected):
            family = "date"
    return {
        "integer": (int,),
        "float": (float, int),
        "numeric": (float, int),
        "string": (str,),
        "bool": (bool,),
        "boolean": (bool,),
        "timestamp": (datetime,),
        "date": (date,),
        "binary": (bytes,),
    }.get(family or "")


def _type_check(rule: ColumnType) -> _Check | None:
    types = _python_types(rule.expected)
    if types is None:
        return None
    wants_bool = bool in types

    def check(value: Any) -> str | None:
        if isinstance(value, bool) and not wants_bool:
            return f"expected {rule.dtype}, got a boolean"
        if not isinstance(value, types):
            return f"expected {rule.dtype}, got {type(value).__name__} {value!r:.40}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"expected a finite {rule.dtype}, got {value!r}"
        return None

    return check


def _range_check(rule: Range) -> _Check:
    low, high = rule.min, rule.max

    def check(value: Any) -> str | None:
        try:
            if (low is not None and value < low) or (high is not None and value > high):
                return f"{value!r:.40} is outside [{low}, {high}]"
        except TypeError:
            return f"{value!r:.40} cannot be compared with the bounds [{low}, {high}]"
        return None

    return check


def _allowed_check(rule: Allowed) -> _Check:
    allowed = frozenset(rule.values)
    # True == 1 in Python; a boolean only matches a set that holds booleans.
    booleans_allowed = any(isinstance(v, bool) for v in rule.values)

    def check(value: Any) -> str | None:
        try:
            ok = value in allowed and (booleans_allowed or not isinstance(value, bool))
        except TypeError:
            ok = False
        if not ok:
            return f"{value!r:.40} is not one of the {len(allowed)} allowed values"
        return None

    return check


def _regex_check(rule: Regex) -> _Check:
    search = rule.compiled.search

    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return f"expected a string for pattern {rule.pattern!r}, got {type(value).__name__}"
        if search(value) is None:
            return f"{value!r:.40} does not match {rule.pattern!r}"
        return None

    return check


def _compile(rule: Rule) -> _Check | None:
    if isinstance(rule, ColumnType):
        return _type_check(rule)
    if isinstance(rule, Range):
        return _range_check(rule)
    if isinstance(rule, Allowed):
        return _allowed_check(rule)
    if isinstance(rule, Regex):
        return _regex_check(rule)
    return None  # table-level rules say nothing about a single record


class RecordValidator:
    """A contract compiled for single records.

    >>> from mlwright.data import Contract, NotNull
    >>> RecordValidator(Contract("c", [NotNull("id")]))({"id": None})[0].message
    'is null'
    """

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self._required: list[tuple[str, str, str]] = []
        self._checks: list[tuple[str, str, str, _Check]] = []
        for rule in contract.rules:
            if isinstance(rule, NotNull):
                self._required.append((rule.column, rule.rule_id, rule.severity))
                continue
            check = _compile(rule)
            if check is not None:
                self._checks.append((rule.columns[0], rule.rule_id, rule.severity, check))

    def __call__(self, record: Mapping[str, Any]) -> list[RecordViolation]:
        violations: list[RecordViolation] = []
        get = record.get
        for column, rule_id, severity in self._required:
            value = get(column)
            if value is None or (isinstance(value, float) and value != value):
                violations.append(RecordViolation(column, rule_id, severity, "is null"))
        for column, rule_id, severity, check in self._checks:
            value = get(column)
            if value is None or (isinstance(value, float) and value != value):
                continue  # null (or NaN, which tables store as null): only not_null speaks
            message = check(value)
            if message is not None:
                violations.append(RecordViolation(column, rule_id, severity, message))
        return violations
