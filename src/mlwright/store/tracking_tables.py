"""Metadata tables of run tracking: runs, their parameters, metric series, tags and artifacts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mlwright.store.tables import Base
from mlwright.store.types import BigId, Json, UTCDateTime, utcnow

_RUN_FK = "runs.id"


class Run(Base):
    """One tracked run: by hand (``start_run``) or a pipeline's (the same id as its run)."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_experiment_started", "experiment", "started_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    experiment: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(16))  # manual | pipeline
    status: Mapped[str] = mapped_column(String(16))  # running | succeeded | failed
    error: Mapped[str | None] = mapped_column(Text)
    environment: Mapped[Any] = mapped_column(Json)
    code_version: Mapped[Any] = mapped_column(Json)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(128))


class RunParam(Base):
    """A parameter: logged once per run (a different value later is refused)."""

    __tablename__ = "run_params"

    run_id: Mapped[str] = mapped_column(ForeignKey(_RUN_FK), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RunTag(Base):
    """A tag: a label that can change during the run."""

    __tablename__ = "run_tags"

    run_id: Mapped[str] = mapped_column(ForeignKey(_RUN_FK), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RunMetric(Base):
    """One point of a metric series. ``value`` is NULL for NaN (SQLite cannot store NaN)."""

    __tablename__ = "run_metrics"
    __table_args__ = (Index("ix_run_metrics_run_id_key_step", "run_id", "key", "step"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey(_RUN_FK))
    key: Mapped[str] = mapped_column(String(250))
    value: Mapped[float | None] = mapped_column(Float)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)


class RunLatestMetric(Base):
    """Each series' point at its highest step, kept by every write, so that reading a run's
    (or fifty runs') current metrics is one indexed lookup, not a scan of every point."""

    __tablename__ = "run_latest_metrics"

    run_id: Mapped[str] = mapped_column(ForeignKey(_RUN_FK), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)


class RunArtifact(Base):
    """A file attached to a run; its bytes live in the content-addressed artifact store."""

    __tablename__ = "run_artifacts"

    run_id: Mapped[str] = mapped_column(ForeignKey(_RUN_FK), primary_key=True)
    name: Mapped[str] = mapped_column(String(512), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

