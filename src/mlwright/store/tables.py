"""The metadata tables. Concept packages use them through their own modules only.

Every change to these classes needs a migration under ``migrations/versions``;
``tests/store/test_migrations.py`` fails when the two drift apart.

>>> from sqlalchemy import select
>>> query = select(Dataset).where(Dataset.name == "flights")
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from mlwright.store.types import BigId, Json, UTCDateTime, utcnow

# Named constraints, so that later migrations (SQLite batch mode in particular) can refer
# to them; the names in migrations/versions spell out the same convention.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """The declarative base of every mlwright table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Dataset(Base):
    """A named dataset; its content lives in immutable :class:`DatasetVersion` rows."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))


class DatasetVersion(Base):
    """One immutable snapshot: the Parquet artifact, its hashes, schema and profile."""

    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "version"),
                      UniqueConstraint("dataset_id", "content_hash"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    artifact_digest: Mapped[str] = mapped_column(String(64), index=True)
    num_rows: Mapped[int] = mapped_column(BigId)
    num_bytes: Mapped[int] = mapped_column(BigId)
    # [{"name": ..., "type": ..., "nullable": ...}, ...]
    schema_json: Mapped[Any] = mapped_column(Json)
    profile_json: Mapped[Any] = mapped_column(Json)
    source: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))

    dataset: Mapped[Dataset] = relationship()


class Contract(Base):
    """A version of the data contract attached to a dataset."""

    __tablename__ = "contracts"
    __table_args__ = (UniqueConstraint("dataset_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(128))
    spec: Mapped[Any] = mapped_column(Json)
    spec_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))


class Validation(Base):
    """The outcome of checking a dataset version against a contract."""

    __tablename__ = "validations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_version_id: Mapped[int] = mapped_column(ForeignKey("dataset_versions.id"), index=True)
    contract_id: Mapped[int | None] = mapped_column(ForeignKey("contracts.id"))
    passed: Mapped[bool] = mapped_column(Boolean)
    report_json: Mapped[Any] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))


class AuditEvent(Base):
    """One state change. Rows are only ever inserted: triggers refuse UPDATE and DELETE."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_object", "object_type", "object_ref"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64), index=True)  # e.g. "dataset.version.registered"
    object_type: Mapped[str] = mapped_column(String(32))
    object_ref: Mapped[str] = mapped_column(String(256))  # e.g. "flights@3"
    details: Mapped[Any] = mapped_column(Json, default=dict)
