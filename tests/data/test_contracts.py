"""Contracts: parsing YAML and Python, round trips, and every way a contract can be wrong."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from mlwright.data import (
    Allowed,
    ColumnType,
    Contract,
    Freshness,
    Monotonic,
    NotNull,
    Quantile,
    Range,
    Regex,
    RowCount,
    Unique,
    load_contract,
    parse_duration,
)
from mlwright.errors import ContractError

FULL = """\
name: tx
description: payments
columns:
  id: {type: int64, not_null: true, unique: true}
  amount:
    type: float
    range: {min: 0, max: 100, severity: warn}
    mean: {min: 1, max: 50}
    quantiles: [{q: 0.5, min: 0, max: 60}, {q: 0.9, max: 99}]
    null_rate: 0.1
  status: {allowed: [ok, failed]}
  email: {regex: '^[a-z]+@x\\.com$'}
  ts:
    type: timestamp
    monotonic: strictly_increasing
    freshness: 7d
  day: {range: {min: 2024-01-01, max: 2024-12-31}}
  note: {nullable: false}
table:
  row_count: {min: 1, max: 1000}
  unique:
    - [a, b]
    - {columns: [c, d], severity: warn}
"""


def test_yaml_contract_builds_one_rule_per_entry() -> None:
    contract = Contract.from_yaml(FULL)
    ids = [rule.rule_id for rule in contract.rules]
    assert ids == [
        "type(id)", "not_null(id)", "unique(id)", "type(amount)", "range(amount)",
        "mean(amount)", "quantile(amount,0.5)", "quantile(amount,0.9)", "null_rate(amount)",
        "allowed(status)", "regex(email)", "type(ts)", "monotonic(ts)", "freshness(ts)",
        "range(day)", "not_null(note)", "row_count", "unique(a,b)", "unique(c,d)",
    ]
    assert contract.description == "payments"
    by_id = {rule.rule_id: rule for rule in contract.rules}
    assert by_id["range(amount)"] == Range("amount", min=0, max=100, severity="warn")
    assert by_id["monotonic(ts)"] == Monotonic("ts", "increasing", strict=True)
    assert by_id["freshness(ts)"] == Freshness("ts", timedelta(days=7))
    assert by_id["range(day)"] == Range("day", min=date(2024, 1, 1), max=date(2024, 12, 31))
    assert by_id["unique(c,d)"].severity == "warn"
    assert contract.columns[:3] == ("id", "amount", "status")


def test_round_trip_through_dict_keeps_the_contract_and_its_hash() -> None:
    contract = Contract.from_yaml(FULL)
    again = Contract.from_dict(contract.to_dict())
    assert again == contract
    assert again.spec_hash == contract.spec_hash
    for age in ("30d", "1.5h", "400d"):
        fresh = Contract.from_yaml(FULL.replace("freshness: 7d", f"freshness: {age}"))
        assert Contract.from_dict(fresh.to_dict()) == fresh
    changed = Contract.from_yaml(FULL.replace("max: 1000", "max: 1001"))
    assert changed.spec_hash != contract.spec_hash


def test_python_contract_equals_yaml_contract() -> None:
    python = Contract("c", [ColumnType("x", "int64"), NotNull("x"), Unique(("x",)),
                            Allowed("s", ["a", "b"]), Regex("s", "^a"),
                            Range("t", min=datetime(2024, 1, 1)), RowCount(min=1)])
    yaml_text = """
name: c
columns:
  x: {type: int64, not_null: true, unique: true}
  s: {allowed: [a, b], regex: '^a'}
  t: {range: {min: 2024-01-01T00:00:00}}
table: {row_count: {min: 1}}
"""
    assert Contract.from_yaml(yaml_text) == python


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: c\ncolumns:\n  a:\n    rnage: {min: 1}\n", "<yaml>:4: columns.a.rnage: unknown "
         "rule 'rnage' (did you mean 'range'?)"),
        ("name: c\ncolumns:\n  a: {type: integr}\n", "<yaml>:3: columns.a.type: unknown type "
         "'integr'"),
        ("name: c\ncolumns:\n  a:\n    range: {min: 5, max: 1}\n", "<yaml>:4: columns.a.range: "
         "min 5 is greater than max 1"),
        ("name: c\ncolumns:\n  a:\n    range: {min: abc}\n", "a bound must be a number"),
        ("name: c\ncolumns:\n  a: {regex: '(unclosed'}\n", "invalid regex '(unclosed'"),
        ("name: c\ncolumns:\n  a: {not_null: {severity: fatal}}\n", "severity must be 'error' "
         "or 'warn'"),
        ("columns:\n  a: {not_null: true}\n", "a contract needs a 'name'"),
        ("name: c\ncolumns:\n  a: {freshness: soon}\n", "expected a duration"),
        ("name: c\ncolumns:\n  a: {allowed: []}\n", "allowed values must not be empty"),
        ("name: c\ncolumns:\n  a: {allowed: [1, x]}\n", "mix strings and numbers"),
        ("name: c\ncolumns:\n  a: {monotonic: sideways}\n", "monotonic direction"),
        ("name: c\ncolumns:\n  a: {range: {min: 1, step: 2}}\n", "wrong parameters"),
        ("name: c\ncolumns:\n  a: {quantiles: [{q: 1.5, max: 2}]}\n", "quantile q must be"),
        ("name: c\ncolumns:\n  a: {null_rate: 2}\n", "null rate bound must be in [0, 1]"),
        ("name: c\ntable:\n  row_count: {min: -1}\n", "row count bound"),
        ("name: c\ntable:\n  rows: {min: 1}\n", "unknown table rule 'rows'"),
        ("name: c\ncolums: {}\n", "<yaml>:2: colums: unknown key 'colums'"),
        ("name: c\ncolumns:\n  a: {unique: true}\n  b: [1]\n", "must map rule names"),
        ("name: c\ncolumns: {a: {type: int64}, a2: {type: 3}}\n", "unknown type '3'"),
        ("name: [unclosed\n", "<yaml>:2: not valid YAML"),
    ],
)
def test_bad_contracts_give_one_line_errors_with_a_location(text: str, expected: str) -> None:
    with pytest.raises(ContractError) as caught:
        Contract.from_yaml(text)
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message


def test_a_rule_twice_is_refused() -> None:
    with pytest.raises(ContractError, match="has rule not_null\\(a\\) twice"):
        Contract("c", [NotNull("a"), NotNull("a")])


def test_python_rules_validate_their_arguments() -> None:
    with pytest.raises(ContractError, match="give at least one of 'min' and 'max'"):
        Range("a")
    with pytest.raises(ContractError, match="unique key needs"):
        Unique(())
    with pytest.raises(ContractError, match="names a column twice"):
        Unique(("a", "a"))
    with pytest.raises(ContractError, match="bound must be a number"):
        Range("a", min="x")  # type: ignore[arg-type]
    with pytest.raises(ContractError, match="quantile q"):
        Quantile("a", q=2, max=1)
    with pytest.raises(ContractError, match="not a rule"):
        Contract("c", ["not_null"])  # type: ignore[list-item]


def test_load_contract_from_file_reports_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.yaml"
    path.write_text("name: c\ncolumns:\n  a:\n    type: nope\n")
    with pytest.raises(ContractError, match=f"{path}:4: columns.a.type: unknown type 'nope'"):
        load_contract(path)
    with pytest.raises(ContractError, match="does not exist"):
        load_contract(tmp_path / "missing.yaml")


def test_the_example_contract_loads() -> None:
    contract = load_contract("examples/flights/contract.yaml")
    assert contract.name == "flights"
    assert len(contract.rules) > 20


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("30m", 1800), ("12h", 43200),
                                               ("7d", 604800), ("2w", 1209600), (5, 5),
                                               ("1.5h", 5400)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds
