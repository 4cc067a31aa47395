"""The audit log: written in the caller's transaction, read newest first, never rewritten."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError

from mlwright.errors import StoreError
from mlwright.store import AuditEvent, Database, list_events, record_event


def _record(db: Database, action: str, ref: str, object_type: str = "dataset") -> int:
    with db.session() as session:
        event = record_event(session, actor="ana", action=action, object_type=object_type,
                             object_ref=ref, details={"ref": ref})
        assert event.id is not None
        return event.id


def test_events_commit_and_roll_back_with_the_caller(database: Database) -> None:
    _record(database, "dataset.registered", "flights")
    with pytest.raises(RuntimeError), database.session() as session:
        record_event(session, actor="ana", action="dataset.registered", object_type="dataset",
                     object_ref="lost")
        raise RuntimeError("the change failed")
    with database.session() as session:
        events = list_events(session)
    assert [e.object_ref for e in events] == ["flights"]
    assert events[0].details == {"ref": "flights"}
    assert events[0].at.tzinfo is UTC


@pytest.mark.parametrize("statement", [
    "UPDATE audit_log SET actor = 'mallory'",
    "DELETE FROM audit_log",
    "DELETE FROM audit_log WHERE id = 1",
])
def test_audit_log_is_append_only_in_sql(database: Database, statement: str) -> None:
    _record(database, "dataset.registered", "flights")
    with pytest.raises(DBAPIError, match="append-only"), database.session() as session:
        session.execute(text(statement))
    with database.session() as session:
        assert [e.actor for e in list_events(session)] == ["ana"]


def test_audit_log_is_append_only_through_the_orm(database: Database) -> None:
    event_id = _record(database, "dataset.registered", "flights")
    for statement in (update(AuditEvent).values(actor="mallory"),
                      delete(AuditEvent).where(AuditEvent.id == event_id)):
        with pytest.raises(DBAPIError, match="append-only"), database.session() as session:
            session.execute(statement)
    with pytest.raises(DBAPIError, match="append-only"), database.session() as session:
        event = session.get(AuditEvent, event_id)
        session.delete(event)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_audit_log_refuses_truncate_on_postgresql(database: Database) -> None:
    with pytest.raises(DBAPIError, match="append-only"), database.session() as session:
        session.execute(text("TRUNCATE audit_log"))


def test_list_events_filters_and_orders_newest_first(database: Database) -> None:
    first = _record(database, "dataset.registered", "flights")
    second = _record(database, "dataset.version.registered", "flights@1")
    third = _record(database, "contract.attached", "flights")
    fourth = _record(database, "model.registered", "churn", object_type="model")
    with database.session() as session:
        def ids(**filters: object) -> list[int]:
            return [e.id for e in list_events(session, **filters)]  # type: ignore[arg-type]

        assert ids() == [fourth, third, second, first]
        assert ids(limit=2) == [fourth, third]
        assert ids(action="contract.attached") == [third]
        assert ids(object_type="dataset") == [third, second, first]
        assert ids(object_ref="flights") == [third, first]
        assert ids(object_type="dataset", object_ref="flights@1") == [second]
        assert ids(action="nothing.happened") == []
        assert ids(since=datetime.now(UTC) - timedelta(hours=1)) == [fourth, third, second, first]
        assert ids(since=datetime.now(UTC) + timedelta(hours=1)) == []
        with pytest.raises(StoreError, match="at least 1"):
            list_events(session, limit=0)


def test_since_compares_times_not_strings(database: Database) -> None:
    with database.session() as session:
        for hour in (1, 5, 9):
            session.add(AuditEvent(at=datetime(2026, 1, 1, hour, tzinfo=UTC), actor="ana",
                                   action="x.done", object_type="x", object_ref=str(hour),
                                   details={}))
    since = datetime(2026, 1, 1, 6, 0, tzinfo=UTC).astimezone()  # the same instant, local zone
    with database.session() as session:
        assert [e.object_ref for e in list_events(session, since=since)] == ["9"]
        assert [e.object_ref for e in list_events(session, since=datetime(2026, 1, 1, 5))] == ["9", "5"]
