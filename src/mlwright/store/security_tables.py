"""Metadata table of API tokens: only a hash of each secret is kept.

>>> from sqlalchemy import select
>>> query = select(ApiToken).where(ApiToken.revoked_at.is_(None))
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from mlwright.store.tables import Base
from mlwright.store.types import Json, UTCDateTime, utcnow


class ApiToken(Base):
    """A bearer token for the serving API: its public id, a sha256 of its secret, scopes."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[Any] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
