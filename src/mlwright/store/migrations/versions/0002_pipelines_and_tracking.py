"""Pipelines (definitions, runs, step runs, the step cache) and run tracking.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mlwright.store.types import BigId, Json, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}")


def _run_child(table: str, *columns: sa.Column[object]) -> None:
    """A table keyed by (run_id, key-ish column) that belongs to one run."""
    op.create_table(table, sa.Column("run_id", sa.String(32), nullable=False), *columns,
                    _fk(table, "run_id", "runs"),
                    sa.PrimaryKeyConstraint("run_id", columns[0].name, name=f"pk_{table}"))


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("experiment", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("environment", Json, nullable=False),
        sa.Column("code_version", Json, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("ended_at", UTCDateTime, nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_experiment_started", "runs", ["experiment", "started_at"])
    _run_child("run_params", sa.Column("key", sa.String(250), nullable=False),
               sa.Column("value", sa.Text, nullable=False))
    _run_child("run_tags", sa.Column("key", sa.String(250), nullable=False),
               sa.Column("value", sa.Text, nullable=False))
    _run_child("run_artifacts", sa.Column("name", sa.String(512), nullable=False),
               sa.Column("digest", sa.String(64), nullable=False),
               sa.Column("size", BigId, nullable=False),
               sa.Column("created_at", UTCDateTime, nullable=False))
    op.create_table(
        "run_metrics",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger, nullable=False),
        _fk("run_metrics", "run_id", "runs"),
        sa.PrimaryKeyConstraint("id", name="pk_run_metrics"),
    )
    op.create_index("ix_run_metrics_run_id_key_step", "run_metrics", ["run_id", "key", "step"])
    _run_child("run_latest_metrics", sa.Column("key", sa.String(250), nullable=False),
               sa.Column("value", sa.Float, nullable=True),
               sa.Column("step", sa.BigInteger, nullable=False),
               sa.Column("timestamp_ms", sa.BigInteger, nullable=False))

    op.create_table(
        "pipelines",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("ref", sa.Text, nullable=False),
        sa.Column("schedule", sa.String(128), nullable=True),
        sa.Column("partitions", Json, nullable=True),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pipelines"),
        sa.UniqueConstraint("name", name="uq_pipelines_name"),
    )
    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("pipeline_id", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("params", Json, nullable=False),
        sa.Column("partition_key", sa.String(128), nullable=True),
        sa.Column("executor", sa.String(16), nullable=False),
        sa.Column("resumed_from", sa.String(32), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("output_digest", sa.String(64), nullable=True),
        sa.Column("output_kind", sa.String(16), nullable=True),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("ended_at", UTCDateTime, nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        _fk("pipeline_runs", "id", "runs"),
        _fk("pipeline_runs", "pipeline_id", "pipelines"),
        sa.PrimaryKeyConstraint("id", name="pk_pipeline_runs"),
    )
    op.create_index("ix_pipeline_runs_pipeline_partition", "pipeline_runs",
                    ["pipeline_id", "partition_key"])
    op.create_table(
        "step_runs",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("pipeline_run_id", sa.String(32), nullable=False),
        sa.Column("node", sa.String(128), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("cache_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("duration_s", sa.Float, nullable=True),
        sa.Column("output_digest", sa.String(64), nullable=True),
        sa.Column("output_kind", sa.String(16), nullable=True),
        sa.Column("log", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("started_at", UTCDateTime, nullable=True),
        sa.Column("ended_at", UTCDateTime, nullable=True),
        _fk("step_runs", "pipeline_run_id", "pipeline_runs"),
        sa.PrimaryKeyConstraint("id", name="pk_step_runs"),
        sa.UniqueConstraint("pipeline_run_id", "node", name="uq_step_runs_pipeline_run_id_node"),
    )
    op.create_index("ix_step_runs_pipeline_run_id", "step_runs", ["pipeline_run_id"])
    op.create_table(
        "step_cache",
        sa.Column("cache_key", sa.String(64), nullable=False),
        sa.Column("step", sa.String(128), nullable=False),
        sa.Column("output_digest", sa.String(64), nullable=False),
        sa.Column("output_kind", sa.String(16), nullable=False),
        sa.Column("pipeline_run_id", sa.String(32), nullable=False),
        sa.Column("metrics", Json, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("cache_key", name="pk_step_cache"),
    )
    op.create_index("ix_step_cache_output_digest", "step_cache", ["output_digest"])


def downgrade() -> None:
    for table in ("step_cache", "step_runs", "pipeline_runs", "pipelines", "run_latest_metrics",
                  "run_metrics",
                  "run_artifacts", "run_tags", "run_params", "runs"):
        op.drop_table(table)
