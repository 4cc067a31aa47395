"""The append-only audit log: every state change, written in the same transaction.

The database itself refuses UPDATE and DELETE on ``audit_log`` (triggers installed by the
first migration), so the history cannot be rewritten through mlwright or around it.

>>> with db.session() as session:                                  # doctest: +SKIP
...     record_event(session, actor="ana", action="dataset.registered",
...                  object_type="dataset", object_ref="flights")
...     events = list_events(session, object_type="dataset", limit=10)
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlwright.errors import StoreError
from mlwright.store.tables import AuditEvent
from mlwright.store.types import utcnow


def record_event(session: Session, *, actor: str, action: str, object_type: str,
                 object_ref: str, details: Mapping[str, Any] | None = None) -> AuditEvent:
    """Add an event to the caller's transaction: it commits or rolls back with the change.

    ``action`` is ``<object>.<verb>`` in the past tense, e.g. ``"dataset.version.registered"``;
    ``object_ref`` names the object the way users do, e.g. ``"flights@3"``.

    >>> event = record_event(session, actor="ana", action="contract.attached",  # doctest: +SKIP
    ...                      object_type="dataset", object_ref="flights",
    ...                      details={"version": 2})
    """
    event = AuditEvent(at=utcnow(), actor=actor, action=action, object_type=object_type,
                       object_ref=object_ref, details=dict(details or {}))
    session.add(event)
    session.flush()  # assigns the id now, so the caller can report it
    return event


def list_events(session: Session, *, limit: int = 100, action: str | None = None,
                object_type: str | None = None, object_ref: str | None = None,
                since: datetime | None = None) -> list[AuditEvent]:
    """Events newest first, filtered by exact ``action``/``object_type``/``object_ref`` and
    by ``since`` (inclusive; a naive datetime is taken as UTC).

    >>> list_events(session, object_ref="flights@3", limit=5)   # doctest: +SKIP
    """
    if limit < 1:
        raise StoreError(f"Audit log limit must be at least 1; got {limit}.")
    # `at` first for meaning; `id` breaks ties between events of the same instant.
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if object_type is not None:
        query = query.where(AuditEvent.object_type == object_type)
    if object_ref is not None:
        query = query.where(AuditEvent.object_ref == object_ref)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    return list(session.execute(query).scalars())
