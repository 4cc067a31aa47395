"""Validating whole tables: each rule kind, samples, bad contracts, and a brute-force twin."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwright.data import (
    Allowed,
    ColumnType,
    Contract,
    Freshness,
    Mean,
    Monotonic,
    NotNull,
    NullRate,
    Quantile,
    Range,
    Regex,
    RowCount,
    Unique,
    validate_table,
)
from mlwright.errors import ContractError

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def table() -> pa.Table:
    return pa.table({
        "id": pa.array([1, 2, 3, 3, 5, 6], pa.int64()),
        "amount": pa.array([10.0, -1.0, 50.0, None, 200.0, 30.0]),
        "status": pa.array(["ok", "ok", "lost", None, "failed", "ok"]),
        "email": pa.array(["a@x.com", "B@x.com", "c@x.com", None, "bad", "d@x.com"]),
        "ts": pa.array([datetime(2024, 5, d, tzinfo=UTC) for d in (1, 2, 2, 1, 3, 4)],
                       pa.timestamp("us", tz="UTC")),
        "a": pa.array([1, 1, 2, 2, 1, None]),
        "b": pa.array(["x", "x", "y", "z", "w", "x"]),
    })


def check(contract: Contract, data: Any = None, **kwargs: Any) -> dict[str, Any]:
    report = validate_table(table() if data is None else data, contract, now=NOW, **kwargs)
    return {r.rule_id: r for r in report.results}


def test_row_level_rules_count_failing_rows_and_point_at_the_first() -> None:
    results = check(Contract("c", [
        NotNull("amount"), Unique(("id",)), Range("amount", min=0, max=100),
        Allowed("status", ["ok", "failed"]), Regex("email", r"^[a-z]+@x\.com$"),
        Unique(("a", "b")),
    ]))
    expected = {"not_null(amount)": (1, 3), "unique(id)": (2, 2), "range(amount)": (2, 1),
                "allowed(status)": (1, 2), "regex(email)": (2, 1), "unique(a,b)": (2, 0)}
    for rule_id, (failing, first) in expected.items():
        result = results[rule_id]
        assert (result.failing_rows, result.first_failing_row) == (failing, first), rule_id
        assert not result.passed
        assert f"(first at row {first})" in result.message
    assert results["range(amount)"].observed == {"min": -1.0, "max": 200.0}
    assert [s["row"] for s in results["unique(id)"].samples] == [2, 3]
    assert results["regex(email)"].samples[0]["email"] == "B@x.com"


def test_a_contract_of_unique_rules_only_checks_tables_of_any_length() -> None:
    contract = Contract("c", [Unique(("id",))])
    for ids, failing in (([], 0), ([1], 0), ([1, 2, 2, None], 2)):
        report = validate_table(pa.table({"id": pa.array(ids, pa.int64())}), contract)
        assert report.results[0].failing_rows == failing


def test_samples_are_the_first_failing_rows_however_far_down_they_are() -> None:
    n = 50_000
    x, ids = [1.0] * n, list(range(n))
    for row in (3, 20_000, 45_000, 49_999):
        x[row] = -1.0
    ids[30_000] = ids[49_998] = -7
    report = validate_table(pa.table({"x": x, "id": ids}),
                            Contract("c", [Range("x", min=0), Unique(("id",))]),
                            sample_failures=3)
    by_id = {r.rule_id: r for r in report.results}
    assert [s["row"] for s in by_id["range(x)"].samples] == [3, 20_000, 45_000]
    assert by_id["range(x)"].failing_rows == 4
    assert [s["row"] for s in by_id["unique(id)"].samples] == [30_000, 49_998]
    assert by_id["unique(id)"].samples[1] == {"row": 49_998, "x": 1.0, "id": -7}


def test_aggregate_rules_judge_the_table() -> None:
    results = check(Contract("c", [
        Mean("amount", min=0, max=50), Quantile("amount", q=0.5, min=10, max=30),
        NullRate("status", max=0.1), RowCount(min=1, max=5), ColumnType("id", "int64"),
        ColumnType("amount", "integer"), ColumnType("ts", "timestamp[us, tz=UTC]"),
        ColumnType("status", "string"), Freshness("ts", max_age=timedelta(days=30)),
    ]))
    assert results["mean(amount)"].observed == pytest.approx(57.8)
    assert not results["mean(amount)"].passed
    assert results["quantile(amount,0.5)"].passed
    assert results["null_rate(status)"].observed == pytest.approx(1 / 6)
    assert results["row_count"].message == "6 rows, expected [1, 5]"
    assert results["type(id)"].passed and results["type(ts)"].passed
    assert results["type(status)"].passed
    assert results["type(amount)"].message == "expected integer, got double"


def test_freshness_uses_the_clock_it_is_given() -> None:
    rule = Freshness("ts", max_age=timedelta(days=30))
    report = validate_table(table(), Contract("c", [rule]), now=NOW)
    assert report.passed
    late = validate_table(table(), Contract("c", [rule]), now=NOW + timedelta(days=60))
    assert not late.passed
    assert "old, expected at most 30.0d" in late.results[0].message


def test_monotonic_skips_nulls_and_honours_direction_and_strictness() -> None:
    data = pa.table({"v": pa.array([1, 2, None, 2, 1, 5, None, 4])})
    results = check(Contract("c", [Monotonic("v")]), data)
    assert (results["monotonic(v)"].failing_rows, results["monotonic(v)"].first_failing_row) == (2, 4)
    assert [s["row"] for s in results["monotonic(v)"].samples] == [4, 7]
    strict = check(Contract("c", [Monotonic("v", strict=True)]), data)
    assert strict["monotonic(v)"].failing_rows == 3
    down = check(Contract("c", [Monotonic("v", "decreasing")]), data)
    assert down["monotonic(v)"].failing_rows == 2
    ts = check(Contract("c", [Monotonic("ts")]))
    assert ts["monotonic(ts)"].failing_rows == 1


def test_warnings_do_not_fail_the_report() -> None:
    report = validate_table(table(), Contract("c", [Range("amount", max=100, severity="warn")]))
    assert report.passed
    assert [r.rule_id for r in report.warnings] == ["range(amount)"]
    document = report.to_dict()
    assert document["passed"] is True and document["warnings"] == 1


def test_temporal_bounds_work_on_timestamp_columns_naive_or_zoned() -> None:
    zoned = check(Contract("c", [Range("ts", min=date(2024, 5, 2))]))
    assert zoned["range(ts)"].failing_rows == 2
    naive = pa.table({"ts": pa.array([datetime(2024, 1, 1), datetime(2024, 3, 1)])})
    results = check(Contract("c", [Range("ts", max=datetime(2024, 2, 1, tzinfo=UTC))]), naive)
    assert results["range(ts)"].failing_rows == 1


def test_pandas_and_polars_tables_are_accepted() -> None:
    contract = Contract("c", [NotNull("x"), Range("x", max=2)])
    frame = pd.DataFrame({"x": [1.0, None, 3.0]})
    assert check(contract, frame)["range(x)"].failing_rows == 1
    assert check(contract, pl.from_pandas(frame))["not_null(x)"].failing_rows == 1


def test_an_empty_table_fails_only_what_needs_rows() -> None:
    empty = table().slice(0, 0)
    report = validate_table(empty, Contract("c", [NotNull("id"), RowCount(min=1),
                                                  Mean("amount", min=0)]))
    assert [r.rule_id for r in report.errors] == ["row_count", "mean(amount)"]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (NotNull("nope"), "rule not_null(nope) names column 'nope', which the table does not "
                          "have (it has: id, amount"),
        (Unique(("id", "missing")), "names column 'missing'"),
        (Regex("id", "^1"), "needs a string column; column 'id' of the table is int64"),
        (Mean("status", min=1), "needs a numeric column"),
        (Range("status", min=1), "needs a numeric, date or timestamp column"),
        (Allowed("id", ["1"]), "needs values of the column's type (numbers)"),
        (Freshness("amount", max_age=timedelta(days=1)), "needs a date or timestamp column"),
        (Range("amount", min=date(2024, 1, 1)), "bounds of the column's type"),
    ],
)
def test_contracts_that_do_not_fit_the_table_are_refused(rule: Any, message: str) -> None:
    with pytest.raises(ContractError) as caught:
        validate_table(table(), Contract("c", [rule]))
    assert message in str(caught.value)


def test_sql_special_characters_in_names_and_values_are_quoted() -> None:
    data = pa.table({'we"ird col': ["it's", "o'k", "x"]})
    results = check(Contract("c", [Allowed('we"ird col', ["it's", "o'k"]),
                                   Regex('we"ird col', "'")]), data)
    assert results['allowed(we"ird col)'].failing_rows == 1
    assert results['regex(we"ird col)'].failing_rows == 1


# -- the brute-force twin ------------------------------------------------------------------

def brute_force(rule: Any, rows: list[dict[str, Any]]) -> int:
    """Failing-row counts computed the slowest, most obvious way."""
    if isinstance(rule, NotNull):
        return sum(r[rule.column] is None for r in rows)
    if isinstance(rule, Range):
        return sum(r[rule.column] is not None and ((rule.min is not None and r[rule.column] < rule.min)
                   or (rule.max is not None and r[rule.column] > rule.max)) for r in rows)
    if isinstance(rule, Allowed):
        return sum(r[rule.column] is not None and r[rule.column] not in rule.values for r in rows)
    if isinstance(rule, Regex):
        return sum(r[rule.column] is not None and re.search(rule.pattern, r[rule.column]) is None
                   for r in rows)
    if isinstance(rule, Unique):
        keys = [tuple(r[c] for c in rule.key) for r in rows]
        keys = [k for k in keys if None not in k]
        return sum(keys.count(k) > 1 for k in keys)
    if isinstance(rule, Monotonic):
        values = [r[rule.column] for r in rows if r[rule.column] is not None]
        return sum(b < a for a, b in itertools.pairwise(values))
    raise AssertionError(rule)


ints = st.one_of(st.none(), st.integers(-5, 5))
words = st.one_of(st.none(), st.sampled_from(["a", "b", "ab", "ba", "", "c"]))
row_strategy = st.fixed_dictionaries({"x": ints, "y": ints, "s": words})


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(row_strategy, max_size=40), low=st.integers(-5, 5), span=st.integers(0, 6),
       allowed=st.sets(st.sampled_from(["a", "b", "ab", "c"]), min_size=1),
       pattern=st.sampled_from(["^a", "b$", "ab", "^$", "[bc]"]))
def test_counts_match_a_brute_force_twin(rows: list[dict[str, Any]], low: int, span: int,
                                         allowed: set[str], pattern: str) -> None:
    data = pa.table({"x": pa.array([r["x"] for r in rows], pa.int64()),
                     "y": pa.array([r["y"] for r in rows], pa.int64()),
                     "s": pa.array([r["s"] for r in rows], pa.string())})
    rules = [NotNull("x"), Range("x", min=low, max=low + span), Allowed("s", sorted(allowed)),
             Regex("s", pattern), Unique(("x",)), Unique(("x", "s")), Monotonic("y")]
    report = validate_table(data, Contract("c", rules), sample_failures=2)
    for rule, result in zip(rules, report.results, strict=True):
        assert result.failing_rows == brute_force(rule, rows), rule.rule_id
        assert result.passed == (result.failing_rows == 0)
        assert len(result.samples) == min(2, result.failing_rows or 0)


FORK_SCRIPT = """
import os, sys, threading, multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
import pyarrow as pa
from mlwright.data.contracts import Contract
from mlwright.data.rules import NotNull, Unique
from mlwright.data.validation import validate_table
contract = Contract("c", [NotNull("a"), Unique(("a",))])
table = pa.table({"a": list(range(1000))})
assert validate_table(table, contract).passed          # the parent opens its database
def child(_):
    return validate_table(table, contract).passed
with ProcessPoolExecutor(2, mp_context=mp.get_context("fork")) as pool:
    assert list(pool.map(child, range(4))) == [True] * 4
worker = threading.Thread(target=lambda: [validate_table(table, contract) for _ in range(10)])
worker.start()
pid = os.fork()                                          # a fork while a thread validates
if pid == 0:
    ok = validate_table(table, contract).passed
    sys.exit(0 if ok else 1)                             # a normal exit, with finalization
_, status = os.waitpid(pid, 0)
worker.join()
print("exit", os.waitstatus_to_exitcode(status))
"""


def test_forked_processes_validate_with_their_own_database() -> None:
    """Pipeline workers are forked from a process that may have validated already: they must
    neither hang on the inherited DuckDB database nor share it."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", FORK_SCRIPT], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("exit 0")
