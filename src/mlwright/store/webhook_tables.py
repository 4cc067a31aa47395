"""Metadata tables of registry webhooks: the subscriptions and the log of each delivery.

A webhook keeps a cursor into the audit log (``last_event_id``); scanning the log past it
turns matching events into :class:`WebhookDelivery` rows (one per webhook and event, at
most), which are then sent and retried until delivered or failed.

>>> from sqlalchemy import select
>>> query = select(WebhookDelivery).where(WebhookDelivery.status == "pending")
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mlwright.store.tables import Base
from mlwright.store.types import BigId, Json, UTCDateTime, utcnow


class Webhook(Base):
    """A URL that receives registry events, signed with its secret (kept to sign them)."""

    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(256))
    events: Mapped[Any] = mapped_column(Json)  # ["model.alias.moved", ...] or ["*"]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The newest audit event already turned into deliveries (or skipped by the filter).
    last_event_id: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))


class WebhookDelivery(Base):
    """One event for one webhook: pending until a 2xx answer (delivered) or until it fails
    for good (a 4xx, or too many attempts)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("webhook_id", "event_id"),
                      Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id"))
    # audit_log.id, without a foreign key: the log stays free of anything referring to it
    event_id: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
