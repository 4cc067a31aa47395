"""Metadata tables of the model registry: models, versions, what they came from, aliases."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mlwright.store.tables import Base
from mlwright.store.types import BigId, Json, UTCDateTime, utcnow


class Model(Base):
    """A named model; its content lives in immutable :class:`ModelVersion` rows."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))


class ModelVersion(Base):
    """One immutable version: its flavor, its files (by digest), signature, metrics, lineage
    and the outcome of its gates."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    flavor: Mapped[str] = mapped_column(String(32))
    flavor_meta: Mapped[Any] = mapped_column(Json)
    files: Mapped[Any] = mapped_column(Json)  # {relative path: {"digest": ..., "size": ...}}
    manifest_digest: Mapped[str] = mapped_column(String(64), index=True)
    signature: Mapped[Any] = mapped_column(Json, nullable=True)
    metrics: Mapped[Any] = mapped_column(Json)
    params: Mapped[Any] = mapped_column(Json)
    lineage: Mapped[Any] = mapped_column(Json)
    gates: Mapped[Any] = mapped_column(Json, nullable=True)  # the GateReport, when evaluated
    gates_passed: Mapped[bool | None] = mapped_column(Boolean)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))


class ModelLineage(Base):
    """One input of a version (a dataset version, a run, a parent version, a feature view),
    as a row, so that "which models used flights@2?" is one indexed query."""

    __tablename__ = "model_lineage"
    __table_args__ = (Index("ix_model_lineage_kind_ref", "kind", "ref"),)

    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    ref: Mapped[str] = mapped_column(String(256), primary_key=True)


class ModelAlias(Base):
    """Where an alias (champion, challenger, ...) points now."""

    __tablename__ = "model_aliases"

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(128))


class ModelAliasMove(Base):
    """Every move of an alias, in order: from which version to which, by whom, when."""

    __tablename__ = "model_alias_history"
    __table_args__ = (Index("ix_model_alias_history_model_alias", "model_id", "alias"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    alias: Mapped[str] = mapped_column(String(64))
    from_version: Mapped[int | None] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)  # None: the alias was removed
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(128))
