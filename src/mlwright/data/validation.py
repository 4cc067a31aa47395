"""Checking a whole table against a contract: one DuckDB statement for every rule.

Every row-level count, every aggregate and every uniqueness check is one column of a single
SELECT over the Arrow table, so DuckDB reads each column once, in parallel, without copying
the data. Two kinds of facts come from Arrow instead, because Arrow already has them for
free: null counts (kept in every array's metadata) and the schema. Monotonic order is checked
with NumPy on the one column it reads: SQL has no row order without an index column and a
sort, which costs far more than a vectorised comparison of neighbours. (A uniqueness check
groups its key into a temporary table first, which the SELECT sums up; see ``_Query``.)

Only when rules fail does a second step look for a few failing rows to show: it reads the
table from the top in growing parts and stops once every failed rule has its samples.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlwright.data.contracts import Contract
from mlwright.data.io import as_arrow_table
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
    parse_dtype,
    type_matches,
)
from mlwright.errors import ContractError

ROW = "__mlwright_row"

_database: duckdb.DuckDBPyConnection | None = None
_database_pid = 0
_database_lock = threading.Lock()


def _connect() -> duckdb.DuckDBPyConnection:
    """A new connection to this process's in-memory DuckDB database, opened on first use.

    Opening a database costs 11-30 ms (its buffer manager and threads); a connection to an
    open one 0.4 ms: 5-13% of validating 1M rows on the 2-CPU benchmark machine. What a
    validation registers belongs to its own connection, so threads never see each other's.

    A process forked from one that had the database (a pipeline worker) opens its own: it
    must neither use the inherited one (its threads did not survive the fork) nor close it
    (closing waits for those threads forever), so the inherited one is kept, unused, by a
    reference that is never given back, not even when the interpreter exits.
    """
    global _database, _database_pid
    with _database_lock:
        if _database is not None and _database_pid != os.getpid():
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(_database))
            _database = None
        if _database is None:
            _database, _database_pid = duckdb.connect(), os.getpid()
        return _database.cursor()



def quote(name: str) -> str:
    """A SQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def _is_numeric(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def _is_temporal(t: pa.DataType) -> bool:
    return bool(pa.types.is_timestamp(t) or pa.types.is_date(t))


def _is_string(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t)
                or pa.types.is_string_view(t))


def literal(value: object, column_type: pa.DataType) -> str:
    """A constant rendered as SQL for comparison with a column of ``column_type``."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime | date) and pa.types.is_timestamp(column_type):
        moment = value if isinstance(value, datetime) else datetime(value.year, value.month,
                                                                    value.day)
        if column_type.tz is None:  # a naive column is read as UTC
            moment = moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
            return f"TIMESTAMP '{moment.isoformat(sep=' ')}'"
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return f"TIMESTAMPTZ '{moment.astimezone(UTC).isoformat(sep=' ')}'"
    if isinstance(value, datetime | date):
        day = value.date() if isinstance(value, datetime) else value
        return f"DATE '{day.isoformat()}'"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, int) else repr(float(value))
    return "'" + str(value).replace("'", "''") + "'"


def _check_fit(rule: Rule, schema: pa.Schema, contract: str, target: str) -> None:
    """Refuse a rule that names a missing column or cannot apply to the column's type."""
    for column in rule.columns:
        if column not in schema.names:
            have = ", ".join(schema.names[:30]) + (", ..." if len(schema.names) > 30 else "")
            raise ContractError(
                f"Contract '{contract}' rule {rule.rule_id} names column '{column}', which "
                f"{target} does not have (it has: {have}). Fix the column name in the contract."
            )
    if not rule.columns:
        return
    col_type = schema.field(rule.columns[0]).type
    need = None
    if isinstance(rule, Range | Quantile) and not (_is_numeric(col_type) or _is_temporal(col_type)):
        need = "a numeric, date or timestamp column"
    elif isinstance(rule, Mean) and not _is_numeric(col_type):
        need = "a numeric column"
    elif isinstance(rule, Regex) and not _is_string(col_type):
        need = "a string column"
    elif isinstance(rule, Freshness) and not _is_temporal(col_type):
        need = "a date or timestamp column"
    elif isinstance(rule, Allowed):
        wants_str = isinstance(rule.values[0], str)
        if wants_str != _is_string(col_type) or (not wants_str and not (
                _is_numeric(col_type) or pa.types.is_boolean(col_type))):
            need = "values of the column's type ({})".format(
                "strings" if _is_string(col_type) else "numbers")
    elif isinstance(rule, Range | Quantile):
        for bound in (rule.min, rule.max):
            if bound is not None and (isinstance(bound, datetime | date) != _is_temporal(col_type)):
                need = "bounds of the column's type (dates/timestamps for a temporal column)"
    if need:
        raise ContractError(f"Contract '{contract}' rule {rule.rule_id} needs {need}; column "
                            f"'{rule.columns[0]}' of {target} is {col_type}.")


def _failure_predicate(rule: Rule, schema: pa.Schema) -> str | None:
    """A SQL condition true for exactly the rows that break a row-level rule."""
    if isinstance(rule, NotNull):
        return f"{quote(rule.column)} IS NULL"
    if isinstance(rule, Range):
        col_type = schema.field(rule.column).type
        parts = []
        if rule.min is not None:
            parts.append(f"{quote(rule.column)} < {literal(rule.min, col_type)}")
        if rule.max is not None:
            parts.append(f"{quote(rule.column)} > {literal(rule.max, col_type)}")
        return " OR ".join(parts)
    if isinstance(rule, Allowed):
        col_type = schema.field(rule.column).type
        values = ", ".join(literal(v, col_type) for v in rule.values)
        return f"{quote(rule.column)} NOT IN ({values})"
    if isinstance(rule, Regex):
        return f"NOT regexp_matches({quote(rule.column)}, {literal(rule.pattern, pa.string())})"
    return None


def _duplicates_source(rule: Unique) -> str:
    key = ", ".join(quote(c) for c in rule.key)
    present = " AND ".join(f"{quote(c)} IS NOT NULL" for c in rule.key)
    return f"SELECT {key}, count(*) AS n FROM t WHERE {present} GROUP BY {key} HAVING count(*) > 1"


class _Query:
    """The single SELECT, built up expression by expression (identical ones shared).

    The duplicated keys of each unique rule are grouped first into a temporary table of their
    own, which the SELECT sums up and which the failing-row samples join against later, so
    that a failed uniqueness rule is not grouped a second time to find its rows. (Measured:
    the same time as grouping inside the SELECT.)
    """

    def __init__(self) -> None:
        self.expressions: dict[str, str] = {}
        self.tables: dict[str, str] = {}  # SQL of a derived table -> its temporary table's name

    def add(self, sql: str) -> str:
        return self.expressions.setdefault(sql, f"e{len(self.expressions)}")

    def add_table(self, sql: str) -> str:
        return self.tables.setdefault(sql, f"mlwright_d{len(self.tables)}")

    def run(self, con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
        for sql, name in self.tables.items():
            con.execute(f"CREATE TEMP TABLE {name} AS {sql}")
        if not self.expressions:
            return {}
        # count(*) keeps the SELECT an aggregate, one row, when every other column is a scalar
        # subquery (a contract of unique rules only), which alone gives one row per table row
        select = ", ".join(["count(*)", *(f"{sql} AS {alias}"
                                          for sql, alias in self.expressions.items())])
        (row,) = con.execute(f"SELECT {select} FROM t").fetchall()
        return dict(zip(self.expressions.values(), row[1:], strict=True))


def _plan(rule: Rule, schema: pa.Schema, query: _Query) -> dict[str, str]:
    """Register the SQL a rule needs; returns the aliases its verdict will read."""
    col = quote(rule.columns[0]) if rule.columns else ""
    predicate = _failure_predicate(rule, schema)
    if predicate is not None and not isinstance(rule, NotNull):
        aliases = {"failing": query.add(f"count_if({predicate})")}
        if isinstance(rule, Range):
            aliases |= {"min": query.add(f"min({col})"), "max": query.add(f"max({col})")}
        return aliases
    if isinstance(rule, Unique):
        duplicates = query.add_table(_duplicates_source(rule))
        return {"failing": query.add(f"(SELECT coalesce(sum(n), 0) FROM {duplicates})")}
    if isinstance(rule, Mean):
        return {"value": query.add(f"avg({col})")}
    if isinstance(rule, Quantile):
        function = "quantile_cont" if _is_numeric(schema.field(rule.column).type) else "quantile_disc"
        return {"value": query.add(f"{function}({col}, {rule.q!r})")}
    if isinstance(rule, Freshness):
        return {"value": query.add(f"max({col})")}
    return {}


def _monotonic_breaks(column: pa.ChunkedArray, rule: Monotonic) -> np.ndarray:
    """Row positions whose value breaks the order with the previous non-null value."""
    array = column.combine_chunks()
    positions = None
    if array.null_count:
        positions = np.flatnonzero(array.is_valid().to_numpy(zero_copy_only=False))
        array = array.drop_null()
    if pa.types.is_timestamp(array.type) or pa.types.is_date(array.type):
        array = array.cast(pa.int64()) if pa.types.is_timestamp(array.type) else \
            pc.cast(array, pa.date32()).cast(pa.int32())
    values = array.to_numpy(zero_copy_only=False)
    before, after = values[:-1], values[1:]
    if rule.direction == "increasing":
        broken = after <= before if rule.strict else after < before
    else:
        broken = after >= before if rule.strict else after > before
    found = np.flatnonzero(broken) + 1
    return positions[found] if positions is not None else found


def _bounds_text(low: object, high: object) -> str:
    return f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"


def _in_bounds(value: Any, low: Any, high: Any) -> bool:
    if value is None or (isinstance(value, float) and value != value):
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def _judge(rule: Rule, table: pa.Table, values: dict[str, Any], now: datetime) -> RuleResult:
    """Turn the numbers a rule's SQL produced into its result."""
    base: dict[str, Any] = {"rule_id": rule.rule_id, "kind": rule.kind, "columns": rule.columns,
            "severity": rule.severity}
    n = table.num_rows
    if isinstance(rule, ColumnType):
        actual = table.schema.field(rule.column).type
        ok = type_matches(rule.expected, actual)
        return RuleResult(**base, passed=ok, observed=str(actual),
                          message="ok" if ok else f"expected {rule.dtype}, got {actual}")
    if isinstance(rule, RowCount):
        ok = _in_bounds(n, rule.min, rule.max)
        return RuleResult(**base, passed=ok, observed=n, message="ok" if ok else
                          f"{n} rows, expected {_bounds_text(rule.min, rule.max)}")
    if isinstance(rule, NotNull | NullRate):
        nulls = table.column(rule.column).null_count
        if isinstance(rule, NotNull):
            return RuleResult(**base, passed=nulls == 0, failing_rows=nulls, observed=nulls,
                              message="ok" if nulls == 0 else f"{nulls} null values")
        rate = nulls / n if n else 0.0
        ok = _in_bounds(rate, rule.min, rule.max)
        return RuleResult(**base, passed=ok, observed=rate, message="ok" if ok else
                          f"null rate {rate:.4f}, expected {_bounds_text(rule.min, rule.max)}")
    if isinstance(rule, Monotonic):
        breaks = _monotonic_breaks(table.column(rule.column), rule)
        count = int(breaks.size)
        first = int(breaks[0]) if count else None
        order = ("strictly " if rule.strict else "") + rule.direction
        return RuleResult(**base, passed=count == 0, failing_rows=count, first_failing_row=first,
                          message="ok" if not count else f"{count} rows break {order} order")
    if "failing" in values:
        count = int(values["failing"] or 0)  # an empty table sums to NULL
        observed = {"min": values["min"], "max": values["max"]} if "min" in values else None
        message = "ok"
        if count:
            bounds = _bounds_text(getattr(rule, "min", None), getattr(rule, "max", None))
            what = {"range": f"outside {bounds}",
                    "allowed": "not in the allowed set", "regex": "not matching the pattern",
                    "unique": "with a duplicated key"}[rule.kind]
            message = f"{count} rows {what}"
            if observed is not None:
                message += f" (observed min {observed['min']}, max {observed['max']})"
        return RuleResult(**base, passed=count == 0, failing_rows=count, observed=observed,
                          message=message)
    value = values.get("value")
    if isinstance(rule, Freshness):
        if value is None:
            return RuleResult(**base, passed=False, message="no values to judge freshness by")
        newest = value if isinstance(value, datetime) else datetime(value.year, value.month,
                                                                     value.day)
        newest = newest if newest.tzinfo else newest.replace(tzinfo=UTC)
        age = now - newest
        ok = age <= rule.max_age
        return RuleResult(**base, passed=ok, observed=newest, message="ok" if ok else
                          f"newest value {newest.isoformat()} is {_age(age)} old, "
                          f"expected at most {_age(rule.max_age)}")
    if isinstance(rule, Mean | Quantile):
        ok = _in_bounds(value, rule.min, rule.max)
        label = "mean" if isinstance(rule, Mean) else f"quantile {rule.q:g}"
        return RuleResult(**base, passed=ok, observed=value, message="ok" if ok else
                          f"{label} is {value}, expected {_bounds_text(rule.min, rule.max)}")
    raise ContractError(f"rule kind '{rule.kind}' cannot be checked on a table")  # pragma: no cover


def _age(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def _rows_at(table: pa.Table, positions: list[int]) -> pa.Table:
    """The rows at ``positions``, with their row numbers as a last column ``ROW``.

    Arrow's take on a table of several chunks first joins each column's chunks (13 ms on the
    1M-row benchmark table); a few hundred one-row slices cost well under a millisecond.
    """
    if len(positions) > 1_000:
        rows = table.take(pa.array(positions, pa.int64()))
    elif positions:
        rows = pa.concat_tables([table.slice(p, 1) for p in positions])
    else:
        rows = table.slice(0, 0)
    return rows.append_column(ROW, pa.array(positions, pa.int64()))


def _first_failing_rows(con: duckdb.DuckDBPyConnection, indexed: pa.Table,
                        searches: dict[str, tuple[str, bool]], limit: int) -> dict[str, list[int]]:
    """The first ``limit`` failing row numbers of each rule, read from the top of the table down.

    ``searches`` maps a rule id to the SQL giving the sorted list of the first ``limit`` failing
    row numbers of the part ``t_part``, and whether that SQL is an aggregate over ``t_part``
    (else a scalar subquery). The table is read in growing parts (8Ki rows, then each part 4x
    the one before) and a rule leaves the search once it has ``limit`` rows. Failing rows
    usually show up early, so this reads a small part of the table, where one filtered and
    sorted query per rule read all of it every time; at worst, failing rows only at the very
    end, it reads the table once. (Measured on the 1M-row benchmark table with 14 failed
    rules, samples included: 0.50 s before, 0.04 s now.)
    """
    found: dict[str, list[int]] = {rule_id: [] for rule_id in searches}
    start, size = 0, 8_192
    while start < indexed.num_rows:
        pending = [r for r in searches if len(found[r]) < limit]
        if not pending:
            break
        pending.sort(key=lambda r: not searches[r][1])  # aggregates first, then subqueries
        con.register("t_part", indexed.slice(start, size))
        from_part = " FROM t_part" if searches[pending[0]][1] else ""  # no aggregate, no FROM
        (row,) = con.execute(f"SELECT {', '.join(searches[r][0] for r in pending)}{from_part}"
                             ).fetchall()
        for rule_id, rows in zip(pending, row, strict=True):
            found[rule_id] = (found[rule_id] + list(rows or []))[:limit]
        start, size = start + size, size * 4
    return found


def _add_samples(results: Sequence[tuple[Rule, RuleResult]], table: pa.Table, schema: pa.Schema,
                 con: duckdb.DuckDBPyConnection, limit: int, duplicates: dict[str, str]) -> None:
    """Fetch a few failing rows (with their row numbers) for each failed row-level rule.

    The row numbers come first (``_first_failing_rows``; a failed unique rule joins the
    temporary table of its duplicated keys instead of grouping again), then one statement
    fetches all the sample rows at once. The rows still pass through DuckDB, as they did when
    each rule fetched its own, so the sample values are exactly what they were.
    """
    failed = [(rule, result) for rule, result in results if not result.passed and rule.row_level]
    if not failed or limit <= 0:
        return
    row = quote(ROW)
    searches: dict[str, tuple[str, bool]] = {}
    for rule, _ in failed:
        if isinstance(rule, Unique):
            key = ", ".join(quote(c) for c in rule.key)
            searches[rule.rule_id] = (f"(SELECT min({row}, {limit}) FROM t_part SEMI JOIN "
                                      f"{duplicates[_duplicates_source(rule)]} USING ({key}))", False)
        elif not isinstance(rule, Monotonic):
            searches[rule.rule_id] = (f"min(CASE WHEN {_failure_predicate(rule, schema)} "
                                      f"THEN {row} END, {limit})", True)
    positions: dict[str, list[int]] = {}
    if searches:
        indexed = table.append_column(ROW, pa.array(np.arange(table.num_rows, dtype=np.int64)))
        positions = _first_failing_rows(con, indexed, searches, limit)
    wanted = sorted({p for found in positions.values() for p in found})
    fetched: dict[int, dict[str, Any]] = {}
    if wanted:
        con.register("t_sample", _rows_at(table, wanted))
        fetched = {r[ROW]: r for r in con.sql("SELECT * FROM t_sample").to_arrow_table().to_pylist()}
    for rule, result in failed:
        if isinstance(rule, Monotonic):  # its rows come straight from Arrow, as they always did
            breaks = _monotonic_breaks(table.column(rule.column), rule)[:limit]
            rows = _rows_at(table, breaks.tolist()).to_pylist()
        else:
            rows = [dict(fetched[p]) for p in positions[rule.rule_id]]
        if rows:
            result.first_failing_row = int(rows[0][ROW])
            result.samples = [{"row": r.pop(ROW), **r} for r in rows]
            if result.first_failing_row is not None:
                result.message += f" (first at row {result.first_failing_row})"


def check_contract_fits(contract: Contract, dataset: Any) -> None:
    """Refuse a contract that does not fit a schema (a dataset version, a table or a schema)."""
    if isinstance(dataset, pa.Schema):
        schema, target = dataset, "the table"
    elif isinstance(dataset, pa.Table):
        schema, target = dataset.schema, "the table"
    else:  # a registered version: its recorded schema is enough, no need to load the data
        schema = pa.schema([pa.field(f["name"], _type_from_name(f["type"]))
                            for f in dataset.schema])
        target = f"dataset {dataset.ref}"
    for rule in contract.rules:
        _check_fit(rule, schema, contract.name, target)


def _type_from_name(name: str) -> pa.DataType:
    """The Arrow type back from its recorded ``str(type)``."""
    name = name.removesuffix("[day]").removesuffix("[ms]") if name.startswith("date") else name
    try:
        return pa.type_for_alias(name)
    except (ValueError, KeyError):
        pass
    try:
        parsed = parse_dtype(name)
    except ContractError:
        return pa.null()  # a type we cannot name back (nested, ...); fits no typed rule
    return parsed if isinstance(parsed, pa.DataType) else pa.null()


def validate_table(
    data: Any,
    contract: Contract,
    *,
    target: str = "the table",
    sample_failures: int = 5,
    now: datetime | None = None,
) -> ValidationReport:
    """Check a table (Arrow, pandas or polars) against a contract in one scan.

    >>> from mlwright.data import Contract, NotNull
    >>> import pyarrow as pa
    >>> report = validate_table(pa.table({"id": [1, None]}), Contract("c", [NotNull("id")]))
    >>> report.passed, report.results[0].failing_rows
    (False, 1)
    """
    started = time.perf_counter()
    table = as_arrow_table(data)
    schema = table.schema
    for rule in contract.rules:
        _check_fit(rule, schema, contract.name, target)
    clock = now or datetime.now(UTC)

    query = _Query()
    plans = [(rule, _plan(rule, schema, query)) for rule in contract.rules]
    con = _connect()
    try:
        con.register("t", table)
        computed = query.run(con)
        results = [
            (rule, _judge(rule, table, {k: computed[a] for k, a in aliases.items()}, clock))
            for rule, aliases in plans
        ]
        _add_samples(results, table, schema, con, sample_failures, query.tables)
    finally:
        con.close()
    return ValidationReport(contract=contract.name, target=target, num_rows=table.num_rows,
                            results=[result for _, result in results],
                            duration_s=time.perf_counter() - started)
