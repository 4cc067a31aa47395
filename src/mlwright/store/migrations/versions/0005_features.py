"""Feature store: versioned definitions, online watermarks and the materialization log.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mlwright.store.types import BigId, Json, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feature_definitions",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("spec", Json, nullable=False),
        sa.Column("repo", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("retired_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_feature_definitions"),
        sa.UniqueConstraint("kind", "name", "version",
                            name="uq_feature_definitions_kind_name_version"),
    )
    op.create_table(
        "feature_watermarks",
        sa.Column("view", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("store", sa.String(512), nullable=False),
        sa.Column("watermark_us", sa.BigInteger, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("view", "version", "store", name="pk_feature_watermarks"),
    )
    op.create_table(
        "feature_materializations",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("view", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("store", sa.String(512), nullable=False),
        sa.Column("start_us", sa.BigInteger, nullable=False),
        sa.Column("end_us", sa.BigInteger, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feature_materializations"),
    )
    op.create_index("ix_feature_materializations_view", "feature_materializations",
                    ["view", "version"])


def downgrade() -> None:
    for table in ("feature_materializations", "feature_watermarks", "feature_definitions"):
        op.drop_table(table)
