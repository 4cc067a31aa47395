"""Column types that behave the same on SQLite and PostgreSQL.

>>> from sqlalchemy.orm import Mapped, mapped_column
>>> # at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

# JSONB on PostgreSQL (compact, indexable), JSON text elsewhere.
Json = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a real 64-bit column.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time, stored as UTC and always read back timezone-aware in UTC.

    A naive datetime passed in is taken to be UTC already (so ``since=datetime(2026, 1, 1)``
    means midnight UTC). SQLite keeps no zone, so the value is stored there as naive UTC;
    PostgreSQL stores ``timestamptz`` and hands it back in the session's zone, which is
    converted to UTC here.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        # Naive on SQLite so that stored strings sort and compare as times.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """Now, timezone-aware in UTC: the one clock every ``created_at`` comes from."""
    return datetime.now(UTC)
