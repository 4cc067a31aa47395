"""Data contracts: a named set of rules, declared in YAML or in Python.

The YAML form is column-centric; every rule takes a short form or a mapping that adds a
``severity``::

    name: flights
    severity: error               # the default for rules that do not say
    columns:
      dep_delay:
        type: float64
        range: {min: -100, max: 1500, severity: warn}
      carrier: {not_null: true, allowed: [AA, B6, DL, UA]}
      tailnum: {regex: '^N[0-9A-Z]+$'}
      time_hour: {monotonic: increasing, freshness: 400d}
    table:
      row_count: {min: 1000}
      unique: [[year, month, day, carrier, flight]]

>>> contract = Contract("tx", [NotNull("id"), Range("amount", min=0)])
>>> contract.validate_record({"id": 1, "amount": -5})[0].rule_id
'range(amount)'
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

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
from mlwright.errors import ContractError

if TYPE_CHECKING:
    from mlwright.data.records import RecordValidator, RecordViolation

Loc = tuple[str | int, ...]


class _SpecError(Exception):
    """A problem at a location in a contract document; becomes a ContractError with file:line."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(value: object) -> timedelta:
    """'90s', '30m', '12h', '7d', '2w', a number of seconds, or a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    raise ContractError(f"expected a duration such as '7d', '12h' or '30m', got {value!r}")


def _parse_bound(value: object) -> Any:
    if isinstance(value, str):  # timestamps and dates round-trip through JSON as ISO strings
        try:
            return date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
        except ValueError:
            raise ContractError(f"a bound must be a number, a date or a timestamp, "
                                f"got {value!r}") from None
    return value


def _dump_value(value: object) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        return f"{int(seconds) if seconds.is_integer() else seconds}s"
    if isinstance(value, tuple):
        return [_dump_value(v) for v in value]
    return value


# -- reading the column-centric document -----------------------------------------------------

def _long_form(value: object, main: str, loc: Loc) -> dict[str, Any]:
    """A rule's short form ``x`` becomes ``{main: x}``; a mapping is taken as is."""
    if isinstance(value, Mapping):
        return dict(value)
    return {main: value}


def _build(loc: Loc, factory: Any, **kwargs: Any) -> Rule:
    try:
        return factory(**kwargs)  # type: ignore[no-any-return]
    except ContractError as exc:
        raise _SpecError(loc, str(exc)) from None
    except TypeError as exc:  # an unknown or missing parameter in the long form
        detail = str(exc).split("()", 1)[-1].strip()
        raise _SpecError(loc, f"wrong parameters: {detail}") from None


def _column_rules(column: str, spec: object, default: str, loc: Loc) -> list[Rule]:
    if spec is None:
        return []
    if not isinstance(spec, Mapping):
        raise _SpecError(loc, f"column '{column}' must map rule names to settings, got {spec!r}")
    rules: list[Rule] = []
    for key, value in spec.items():
        where = (*loc, key)
        if key not in _COLUMN_RULES:
            hint = difflib.get_close_matches(str(key), _COLUMN_RULES, n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise _SpecError(where, f"unknown rule '{key}'{suggestion}; known rules: "
                                    f"{', '.join(_COLUMN_RULES)}")
        rules.extend(_COLUMN_RULES[key](column, value, default, where))
    return rules


def _flag(value: object, loc: Loc) -> tuple[bool, dict[str, Any]]:
    if isinstance(value, bool):
        return value, {}
    if isinstance(value, Mapping):
        return True, dict(value)
    raise _SpecError(loc, f"expected true, false or a mapping with 'severity', got {value!r}")


def _type(column: str, value: object, default: str, loc: Loc) -> list[Rule]:
    params = _long_form(value, "dtype", loc)
    return [_build(loc, ColumnType, column=column, **{"severity": default, **params})]


def _not_null(column: str, value: object, default: str, loc: Loc) -> list[Rule]:
    on, params = _flag(value, loc)
    return [_build(loc, NotNull, column=column, **{"severity": default, **params})] if on else []


def _nullable(column: str, value: object, default: str, loc: Loc) -> list[Rule]:
    if not isinstance(value, bool):
        raise _SpecError(loc, f"nullable must be true or false, got {value!r}")
    return [] if value else [_build(loc, NotNull, column=column, severity=default)]


def _unique(column: str, value: object, default: str, loc: Loc) -> list[Rule]:
    on, params = _flag(value, loc)
    return [_build(loc, Unique, key=(column,), **{"severity": default, **params})] if on else []


def _bounded(factory: Any) -> Any:
    def parse(column: str, value: object, default: str, loc: Loc) -> list[Rule]:
        if not isinstance(value, Mapping):
            raise _SpecError(loc, f"expected a mapping with 'min' and/or 'max', got {value!r}")
        try:
            params = {k: (_parse_bound(v) if k in ("min", "max") else v)
                      for k, v in value.items()}
        except ContractError as exc:
            raise _SpecError(loc, str(exc)) from None
        return [_build(loc, factory, column=column, **{"severity": default, **params})]
    return parse


def _null_rate(column: str, value: object, default: str, loc: Loc) -> list[Rule]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = {"max": value}
    return _bounded(NullRate)(column, value, default, loc)  # type: ignore[no-any-return]


def _allowed(column: str, value: object, default: str, loc: Loc) -> list[Rule]:
    params = _long_form(value, "values", loc)
    return [_build(loc, Allowed, column=column, **{"severity": default, **params})]


def _regex(column: str, value: object, default: str, loc: Loc) -> list[Rule]:
    params = _long_form(value, "pattern", loc)
    return [_build(loc, Regex, column=column, **{"severity": default, **params})]


def _monotonic(column: str, value: object, default: str, loc: Loc) -> list[Rule]:
    params = _long_form(value, "direction", loc)
    direction = params.get("direction", "increasing")
    if isinstance(direction, str) and direction.startswith("strictly_"):
        params["direction"], params["strict"] = direction.removeprefix("strictly_"), True
    return [_build(loc, Monotonic, column=column, **{"severity": default, **params})]


def _freshness(column: str, value: object, default: str, loc: Loc) -> list[Rule]:
    params = _long_form(value, "max_age", loc)
    try:
        params["max_age"] = parse_duration(params.get("max_age"))
    except ContractError as exc:
        raise _SpecError(loc, str(exc)) from None
    return [_build(loc, Freshness, column=column, **{"severity": default, **params})]


def _quantiles(column: str, value: object, default: str, loc: Loc) -> list[Rule]:
    if not isinstance(value, list):
        raise _SpecError(loc, f"expected a list of {{q, min, max}} mappings, got {value!r}")
    rules: list[Rule] = []
    for index, item in enumerate(value):
        rules.extend(_bounded(Quantile)(column, item, default, (*loc, index)))
    return rules


_COLUMN_RULES: dict[str, Any] = {
    "type": _type,
    "not_null": _not_null,
    "nullable": _nullable,
    "unique": _unique,
    "range": _bounded(Range),
    "allowed": _allowed,
    "regex": _regex,
    "monotonic": _monotonic,
    "freshness": _freshness,
    "mean": _bounded(Mean),
    "quantiles": _quantiles,
    "null_rate": _null_rate,
}


def _table_rules(spec: object, default: str, loc: Loc) -> list[Rule]:
    if spec is None:
        return []
    if not isinstance(spec, Mapping):
        raise _SpecError(loc, f"'table' must be a mapping, got {spec!r}")
    rules: list[Rule] = []
    for key, value in spec.items():
        where = (*loc, key)
        if key == "row_count":
            if not isinstance(value, Mapping):
                raise _SpecError(where, f"expected a mapping with 'min' and/or 'max', got {value!r}")
            rules.append(_build(where, RowCount, **{"severity": default, **value}))
        elif key == "unique":
            if not isinstance(value, list):
                raise _SpecError(where, f"expected a list of column lists, got {value!r}")
            for index, item in enumerate(value):
                params = dict(item) if isinstance(item, Mapping) else {"columns": item}
                columns = params.pop("columns", None)
                if not isinstance(columns, list | tuple):
                    raise _SpecError((*where, index), f"expected a list of columns, got {columns!r}")
                rules.append(_build((*where, index), Unique, key=tuple(columns),
                                    **{"severity": default, **params}))
        else:
            raise _SpecError(where, f"unknown table rule '{key}'; known: row_count, unique")
    return rules


def _rules_from_document(doc: object) -> tuple[str, str | None, list[Rule]]:
    if not isinstance(doc, Mapping):
        raise _SpecError((), f"a contract must be a mapping with 'name' and 'columns', got {doc!r}")
    unknown = set(doc) - {"name", "description", "severity", "columns", "table"}
    if unknown:
        raise _SpecError((sorted(unknown)[0],), f"unknown key '{sorted(unknown)[0]}'; known: "
                                                "name, description, severity, columns, table")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise _SpecError(("name",), "a contract needs a 'name' (a non-empty string)")
    default = doc.get("severity", "error")
    if default not in ("error", "warn"):
        raise _SpecError(("severity",), f"severity must be 'error' or 'warn', got {default!r}")
    columns = doc.get("columns") or {}
    if not isinstance(columns, Mapping):
        raise _SpecError(("columns",), f"'columns' must map column names to rules, got {columns!r}")
    rules: list[Rule] = []
    for column, spec in columns.items():
        rules.extend(_column_rules(str(column), spec, default, ("columns", column)))
    rules.extend(_table_rules(doc.get("table"), default, ("table",)))
    description = doc.get("description")
    return name, (str(description) if description is not None else None), rules


# -- the contract ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Contract:
    """A named, ordered set of rules; the same object checks tables and single records."""

    name: str
    rules: tuple[Rule, ...] = ()
    description: str | None = None
    _validator: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", tuple(self.rules))
        seen: set[str] = set()
        for rule in self.rules:
            if not isinstance(rule, Rule):
                raise ContractError(f"Contract '{self.name}': {rule!r} is not a rule")
            if rule.rule_id in seen:
                raise ContractError(f"Contract '{self.name}' has rule {rule.rule_id} twice; "
                                    "keep one.")
            seen.add(rule.rule_id)

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the contract names, in first-mention order."""
        return tuple(dict.fromkeys(c for rule in self.rules for c in rule.columns))

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, source: str = "contract") -> Contract:
        """Build a contract from its column-centric document (what YAML or JSON holds)."""
        try:
            name, description, rules = _rules_from_document(doc)
        except _SpecError as exc:
            where = ".".join(str(p) for p in exc.loc)
            raise ContractError(f"{source}{': ' + where if where else ''}: {exc.message}") from None
        return cls(name=name, rules=tuple(rules), description=description)

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<yaml>") -> Contract:
        """Parse YAML text; errors point at ``source:line``."""
        try:
            node = yaml.compose(text)
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise ContractError(f"{source}{at}: not valid YAML: {problem}") from None
        try:
            name, description, rules = _rules_from_document(doc)
        except _SpecError as exc:
            line = _line_of(node, exc.loc)
            where = ".".join(str(p) for p in exc.loc)
            raise ContractError(f"{source}:{line}: {where + ': ' if where else ''}{exc.message}"
                                ) from None
        return cls(name=name, rules=tuple(rules), description=description)

    def to_dict(self) -> dict[str, Any]:
        """The column-centric document; ``Contract.from_dict(c.to_dict()) == c``."""
        columns: dict[str, dict[str, Any]] = {}
        table: dict[str, Any] = {}
        for rule in self.rules:
            params = {k: _dump_value(v) for k, v in vars(rule).items()
                      if k not in ("column", "key", "expected", "compiled")}
            if isinstance(rule, RowCount):
                table["row_count"] = params
            elif isinstance(rule, Unique) and len(rule.key) > 1:
                table.setdefault("unique", []).append({"columns": list(rule.key), **params})
            else:
                column = columns.setdefault(rule.columns[0], {})
                if isinstance(rule, Quantile):
                    column.setdefault("quantiles", []).append(params)
                elif isinstance(rule, Unique | NotNull):
                    column[rule.kind] = params
                else:
                    column[rule.kind] = params
        doc: dict[str, Any] = {"name": self.name}
        if self.description is not None:
            doc["description"] = self.description
        doc["columns"] = columns
        if table:
            doc["table"] = table
        return doc

    @cached_property
    def spec_hash(self) -> str:
        """sha256 of the canonical JSON document: equal contracts hash equal."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def record_validator(self) -> RecordValidator:
        """The contract compiled for single records (built once, then reused)."""
        if self._validator is None:
            from mlwright.data.records import RecordValidator

            object.__setattr__(self, "_validator", RecordValidator(self))
        return self._validator  # type: ignore[no-any-return]

    def validate_record(self, record: Mapping[str, Any]) -> list[RecordViolation]:
        """Check one record (a dict); returns its violations, empty when it conforms.

        Table-level rules (uniqueness, row count, monotonic, freshness, distribution
        bounds) say nothing about one record and are skipped.
        """
        return self.record_validator()(record)


def _line_of(node: yaml.Node | None, loc: Loc) -> int:
    """The 1-based line of the deepest node of ``loc`` that exists in the YAML tree."""
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    line = key_node.start_mark.line + 1
                    child = value_node
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def load_contract(path: str | Path) -> Contract:
    """Read a contract from a YAML (or JSON) file.

    >>> contract = load_contract("examples/flights/contract.yaml")  # doctest: +SKIP
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ContractError(f"Contract file {path} does not exist; check the path.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"Cannot read contract file {path}: {exc}.") from None
    return Contract.from_yaml(text, source=str(path))
