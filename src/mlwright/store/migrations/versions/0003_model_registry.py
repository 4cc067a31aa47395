"""The model registry: models, versions, lineage rows, aliases and their history.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mlwright.store.types import BigId, Json, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}")


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_models"),
        sa.UniqueConstraint("name", name="uq_models_name"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("model_id", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("flavor", sa.String(32), nullable=False),
        sa.Column("flavor_meta", Json, nullable=False),
        sa.Column("files", Json, nullable=False),
        sa.Column("manifest_digest", sa.String(64), nullable=False),
        sa.Column("signature", Json, nullable=True),
        sa.Column("metrics", Json, nullable=False),
        sa.Column("params", Json, nullable=False),
        sa.Column("lineage", Json, nullable=False),
        sa.Column("gates", Json, nullable=True),
        sa.Column("gates_passed", sa.Boolean, nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        _fk("model_versions", "model_id", "models"),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("model_id", "version", name="uq_model_versions_model_id_version"),
    )
    op.create_index("ix_model_versions_model_id", "model_versions", ["model_id"])
    op.create_index("ix_model_versions_manifest_digest", "model_versions", ["manifest_digest"])
    op.create_table(
        "model_lineage",
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ref", sa.String(256), nullable=False),
        _fk("model_lineage", "version_id", "model_versions"),
        sa.PrimaryKeyConstraint("version_id", "kind", "ref", name="pk_model_lineage"),
    )
    op.create_index("ix_model_lineage_kind_ref", "model_lineage", ["kind", "ref"])
    op.create_table(
        "model_aliases",
        sa.Column("model_id", sa.Integer, nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        _fk("model_aliases", "model_id", "models"),
        _fk("model_aliases", "version_id", "model_versions"),
        sa.PrimaryKeyConstraint("model_id", "alias", name="pk_model_aliases"),
    )
    op.create_table(
        "model_alias_history",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("model_id", sa.Integer, nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("from_version", sa.Integer, nullable=True),
        sa.Column("to_version", sa.Integer, nullable=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        _fk("model_alias_history", "model_id", "models"),
        sa.PrimaryKeyConstraint("id", name="pk_model_alias_history"),
    )
    op.create_index("ix_model_alias_history_model_alias", "model_alias_history",
                    ["model_id", "alias"])


def downgrade() -> None:
    for table in ("model_alias_history", "model_aliases", "model_lineage", "model_versions",
                  "models"):
        op.drop_table(table)
