"""Datasets, dataset versions, contracts, validations and the append-only audit log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.schema import SchemaItem

from mlwright.store.types import BigId, Json, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Refusing UPDATE and DELETE in the database itself, not just in the ORM, keeps the log
# append-only against raw SQL and other clients too. SQLite's RAISE(ABORT) and
# PostgreSQL's restrict_violation (SQLSTATE 23001) both surface as IntegrityError.
_SQLITE_APPEND_ONLY = """
CREATE TRIGGER audit_log_no_{verb} BEFORE {verb} ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: {verb} is not allowed'); END
"""
_PG_FUNCTION = """
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'restrict_violation';
END $$
"""
_PG_TRIGGERS = (
    "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
    "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
)


def _id(table: str) -> list[SchemaItem]:
    return [sa.Column("id", sa.Integer, nullable=False),
            sa.PrimaryKeyConstraint("id", name=f"pk_{table}")]


def _stamp() -> list[SchemaItem]:
    return [sa.Column("created_at", UTCDateTime, nullable=False),
            sa.Column("created_by", sa.String(128), nullable=False)]


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=f"fk_{table}_{column}_{target}")


def upgrade() -> None:
    op.create_table(
        "datasets", *_id("datasets"),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        *_stamp(),
        sa.UniqueConstraint("name", name="uq_datasets_name"),
    )
    op.create_table(
        "dataset_versions", *_id("dataset_versions"),
        sa.Column("dataset_id", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("artifact_digest", sa.String(64), nullable=False),
        sa.Column("num_rows", BigId, nullable=False),
        sa.Column("num_bytes", BigId, nullable=False),
        sa.Column("schema_json", Json, nullable=False),
        sa.Column("profile_json", Json, nullable=False),
        sa.Column("source", sa.Text, nullable=True),
        *_stamp(),
        _fk("dataset_versions", "dataset_id", "datasets"),
        sa.UniqueConstraint("dataset_id", "version", name="uq_dataset_versions_dataset_id_version"),
        sa.UniqueConstraint("dataset_id", "content_hash",
                            name="uq_dataset_versions_dataset_id_content_hash"),
    )
    op.create_index("ix_dataset_versions_dataset_id", "dataset_versions", ["dataset_id"])
    op.create_index("ix_dataset_versions_artifact_digest", "dataset_versions", ["artifact_digest"])
    op.create_table(
        "contracts", *_id("contracts"),
        sa.Column("dataset_id", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("spec", Json, nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        *_stamp(),
        _fk("contracts", "dataset_id", "datasets"),
        sa.UniqueConstraint("dataset_id", "version", name="uq_contracts_dataset_id_version"),
    )
    op.create_index("ix_contracts_dataset_id", "contracts", ["dataset_id"])
    op.create_table(
        "validations", *_id("validations"),
        sa.Column("dataset_version_id", sa.Integer, nullable=False),
        sa.Column("contract_id", sa.Integer, nullable=True),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("report_json", Json, nullable=False),
        *_stamp(),
        _fk("validations", "dataset_version_id", "dataset_versions"),
        _fk("validations", "contract_id", "contracts"),
    )
    op.create_index("ix_validations_dataset_version_id", "validations", ["dataset_version_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_ref", sa.String(256), nullable=False),
        sa.Column("details", Json, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_action", "audit_log", ["action"])
    op.create_index("ix_audit_log_object", "audit_log", ["object_type", "object_ref"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for statement in _PG_TRIGGERS:
            op.execute(statement)
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(_SQLITE_APPEND_ONLY.format(verb=verb))


def downgrade() -> None:
    for table in ("audit_log", "validations", "contracts", "dataset_versions", "datasets"):
        op.drop_table(table)  # dropping audit_log drops its triggers with it
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
