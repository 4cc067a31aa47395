"""The append-only audit log: every state change, written in the same transaction.

>>> with db.session() as session:                                  # doctest: +SKIP
...     record_event(session, actor="ana", action="dataset.created",
...                  object_type="dataset", object_ref="flights")
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlwright.store.tables import AuditEvent
from mlwright.store.types import utcnow


def record_event(session: Session, *, actor: str, action: str, object_type: str,
                 object_ref: str, details: Mapping[str, Any] | None = None) -> AuditEvent:
    """Add an event to the caller's transaction: it commits or rolls back with the change."""
    event = AuditEvent(at=utcnow(), actor=actor, action=action, object_type=object_type,
                       object_ref=object_ref, details=dict(details or {}))
    session.add(event)
    return event


def list_events(session: Session, *, limit: int = 100, action: str | None = None,
                object_type: str | None = None, object_ref: str | None = None,
                since: datetime | None = None) -> list[AuditEvent]:
    """Events, newest first, optionally filtered."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if object_type is not None:
        query = query.where(AuditEvent.object_type == object_type)
    if object_ref is not None:
        query = query.where(AuditEvent.object_ref == object_ref)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    return list(session.execute(query).scalars())
