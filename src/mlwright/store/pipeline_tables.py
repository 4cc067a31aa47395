"""Metadata tables of pipelines: definitions, runs, step runs and the step cache."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

import mlwright.store.tracking_tables  # noqa: F401 - pipeline_runs.id refers to runs.id
from mlwright.store.tables import Base
from mlwright.store.types import Json, UTCDateTime, utcnow


class PipelineDef(Base):
    """A pipeline as last run or registered: where its code lives, schedule, partitions."""

    __tablename__ = "pipelines"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    ref: Mapped[str] = mapped_column(Text)
    schedule: Mapped[str | None] = mapped_column(String(128))
    partitions: Mapped[Any] = mapped_column(Json, nullable=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))


class PipelineRun(Base):
    """One run of a pipeline (for one partition); its id is also its tracking run's id."""

    __tablename__ = "pipeline_runs"
    __table_args__ = (Index("ix_pipeline_runs_pipeline_partition", "pipeline_id", "partition_key"),)

    id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    pipeline_id: Mapped[int] = mapped_column(ForeignKey("pipelines.id"))
    status: Mapped[str] = mapped_column(String(16))
    params: Mapped[Any] = mapped_column(Json)
    partition_key: Mapped[str | None] = mapped_column(String(128))
    executor: Mapped[str] = mapped_column(String(16))
    resumed_from: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    output_digest: Mapped[str | None] = mapped_column(String(64))
    output_kind: Mapped[str | None] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(128))


class StepRun(Base):
    """One step of one pipeline run: ran, cached, failed or skipped, with its log."""

    __tablename__ = "step_runs"
    __table_args__ = (UniqueConstraint("pipeline_run_id", "node"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pipeline_run_id: Mapped[str] = mapped_column(ForeignKey("pipeline_runs.id"), index=True)
    node: Mapped[str] = mapped_column(String(128))
    position: Mapped[int] = mapped_column(Integer)
    cache_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    duration_s: Mapped[float | None] = mapped_column(Float)
    output_digest: Mapped[str | None] = mapped_column(String(64))
    output_kind: Mapped[str | None] = mapped_column(String(16))
    log: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StepCache(Base):
    """A step's output by cache key (hash of code, version and inputs)."""

    __tablename__ = "step_cache"

    cache_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    step: Mapped[str] = mapped_column(String(128))
    output_digest: Mapped[str] = mapped_column(String(64), index=True)
    output_kind: Mapped[str] = mapped_column(String(16))
    pipeline_run_id: Mapped[str] = mapped_column(String(32))
    # [[name, value, step, timestamp], ...] logged by the step: a cached run reports them too
    metrics: Mapped[Any] = mapped_column(Json, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
