"""One record against a contract: what serving will call on every request."""

from __future__ import annotations

from datetime import UTC, date, datetime

from mlwright.data import Contract


def contract() -> Contract:
    return Contract.from_dict({
        "name": "tx",
        "columns": {
            "id": {"type": "int64", "not_null": True, "unique": True},
            "amount": {"type": "float64", "range": {"min": 0, "max": 100}},
            "status": {"type": "string", "allowed": ["ok", "failed"]},
            "email": {"regex": {"pattern": "^[a-z]+@x\\.com$", "severity": "warn"}},
            "flag": {"type": "bool"},
            "count": {"allowed": [1, 2, 3]},
            "ts": {"type": "timestamp", "monotonic": "increasing"},
            "day": {"type": "date"},
        },
        "table": {"row_count": {"min": 10}},
    })


GOOD = {"id": 7, "amount": 12.5, "status": "ok", "email": "ab@x.com", "flag": True, "count": 2,
        "ts": datetime(2024, 1, 1, tzinfo=UTC), "day": date(2024, 1, 1)}


def test_a_good_record_has_no_violations() -> None:
    assert contract().validate_record(GOOD) == []
    assert contract().validate_record({**GOOD, "amount": 3}) == []  # an int is a fine float


def test_each_broken_rule_is_named() -> None:
    bad = {**GOOD, "id": None, "amount": 101.0, "status": "lost", "email": "NOPE"}
    found = {(v.field, v.rule_id, v.severity) for v in contract().validate_record(bad)}
    assert found == {("id", "not_null(id)", "error"), ("amount", "range(amount)", "error"),
                     ("status", "allowed(status)", "error"), ("email", "regex(email)", "warn")}


def test_types_are_checked_strictly() -> None:
    c = contract()
    assert [v.rule_id for v in c.validate_record({**GOOD, "id": "7"})] == ["type(id)"]
    assert [v.rule_id for v in c.validate_record({**GOOD, "id": True})] == ["type(id)"]
    assert [v.rule_id for v in c.validate_record({**GOOD, "flag": 1})] == ["type(flag)"]
    assert [v.rule_id for v in c.validate_record({**GOOD, "amount": float("inf")})] == [
        "type(amount)", "range(amount)"]
    assert [v.rule_id for v in c.validate_record({**GOOD, "day": "2024-01-01"})] == ["type(day)"]
    assert {v.rule_id for v in c.validate_record({**GOOD, "amount": "12"})} == {
        "type(amount)", "range(amount)"}


def test_missing_and_nan_values_count_as_null() -> None:
    c = contract()
    missing = {k: v for k, v in GOOD.items() if k != "id"}
    assert [v.message for v in c.validate_record(missing)] == ["is null"]
    assert [v.rule_id for v in c.validate_record({**GOOD, "id": float("nan")})] == ["not_null(id)"]
    assert c.validate_record({**GOOD, "status": None}) == []  # nullable column


def test_booleans_do_not_pass_for_numbers_in_allowed_sets() -> None:
    c = contract()
    assert [v.rule_id for v in c.validate_record({**GOOD, "count": True})] == ["allowed(count)"]
    assert [v.rule_id for v in c.validate_record({**GOOD, "status": ["ok"]})] == [
        "type(status)", "allowed(status)"]


def test_violations_serialize() -> None:
    (violation,) = contract().validate_record({**GOOD, "amount": -1.0})
    assert violation.to_dict() == {"field": "amount", "rule": "range(amount)",
                                   "severity": "error", "message": "-1.0 is outside [0, 100]"}
