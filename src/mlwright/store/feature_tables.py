"""Metadata tables of the feature store: versioned definitions and materialization state.

A definition (entity, feature view, on-demand view, service) is a row per version holding
its JSON spec; the highest version of a name is the current one unless it is retired. The
watermark of a view version in an online store moves only after a materialization's writes
committed, so an interrupted run never claims to be complete.

>>> from sqlalchemy import select
>>> query = select(FeatureDefinition).where(FeatureDefinition.kind == "view")
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mlwright.store.tables import Base
from mlwright.store.types import BigId, Json, UTCDateTime, utcnow


class FeatureDefinition(Base):
    """One version of one definition, as ``mlwright features apply`` recorded it."""

    __tablename__ = "feature_definitions"
    __table_args__ = (UniqueConstraint("kind", "name", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # entity | view | on_demand | service
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64))
    spec: Mapped[Any] = mapped_column(Json)
    repo: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class FeatureWatermark(Base):
    """How far a view version is materialized into one online store (µs since the epoch)."""

    __tablename__ = "feature_watermarks"

    view: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    store: Mapped[str] = mapped_column(String(512), primary_key=True)
    watermark_us: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FeatureMaterialization(Base):
    """One materialization of one view version over [start, end): what it wrote and when."""

    __tablename__ = "feature_materializations"
    __table_args__ = (Index("ix_feature_materializations_view", "view", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    view: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    store: Mapped[str] = mapped_column(String(512))
    start_us: Mapped[int] = mapped_column(BigInteger)
    end_us: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))  # running | completed | failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_by: Mapped[str] = mapped_column(String(128))
