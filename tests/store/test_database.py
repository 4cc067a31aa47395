"""The metadata database on SQLite and PostgreSQL: migrations, sessions, types, errors."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from mlwright.errors import StoreError
from mlwright.store import Base, Database, Dataset, DatasetVersion, connect, is_unique_violation, mask_url
from mlwright.store.database import HEAD_REVISION, MIGRATIONS_DIR

TABLES = {"datasets", "dataset_versions", "contracts", "validations", "audit_log", "alembic_version"}


def _version(dataset_id: int, version: int, content_hash: str) -> DatasetVersion:
    return DatasetVersion(dataset_id=dataset_id, version=version, content_hash=content_hash,
                          artifact_digest="0" * 64, num_rows=10, num_bytes=2**40,
                          schema_json=[{"name": "x", "type": "int64", "nullable": False}],
                          profile_json={"x": {"min": 1}}, created_by="ana")


def test_head_revision_is_the_newest_migration() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD_REVISION]


def test_migrate_creates_the_tables_and_is_idempotent(database_url: str) -> None:
    db = connect(database_url)
    db.migrate()
    db.migrate()
    assert db.revision() == HEAD_REVISION
    assert set(inspect(db.engine).get_table_names()) >= TABLES
    db.dispose()


def test_the_migrated_schema_matches_the_table_classes(database: Database) -> None:
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_concurrent_migrations_queue_up(database_url: str) -> None:
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            connect(database_url).dispose()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    db = Database(database_url)
    assert db.revision() == HEAD_REVISION
    db.dispose()


def test_connect_at_head_does_not_import_alembic(database: Database) -> None:
    code = ("import sys; from mlwright.store import connect; connect(sys.argv[1]).dispose(); "
            "assert 'alembic' not in sys.modules, 'alembic was imported'")
    subprocess.run([sys.executable, "-c", code, database.url], check=True)


def test_construction_connects_to_nothing_and_creates_no_file(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'lazy.db'}")
    with db.session():
        pass  # a session that runs no statement opens no connection either
    assert list(tmp_path.iterdir()) == []
    db.check()
    assert (tmp_path / "lazy.db").is_file()
    db.dispose()


def test_sqlite_is_wal_with_foreign_keys(tmp_path: Path) -> None:
    db = connect(f"sqlite:///{tmp_path / 'm.db'}")
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    db.dispose()


def test_in_memory_sqlite_keeps_its_data_across_sessions() -> None:
    db = connect("sqlite://")
    with db.session() as session:
        session.add(Dataset(name="kept", created_by="ana"))
    with db.session() as session:
        assert session.execute(select(Dataset.name)).scalars().all() == ["kept"]
    db.dispose()


def test_plain_postgresql_urls_use_psycopg() -> None:
    assert Database("postgresql://u@h/db").url == "postgresql+psycopg://u@h/db"
    assert Database("postgres://u@h/db").url == "postgresql+psycopg://u@h/db"


def test_session_commits_on_success_and_rolls_back_on_error(database: Database) -> None:
    with database.session() as session:
        session.add(Dataset(name="kept", created_by="ana"))
    with pytest.raises(RuntimeError), database.session() as session:
        session.add(Dataset(name="dropped", created_by="ana"))
        session.flush()
        raise RuntimeError("boom")
    with database.session() as session:
        kept = session.execute(select(Dataset)).scalars().all()
    assert [d.name for d in kept] == ["kept"]
    assert kept[0].id is not None  # readable after the session: expire_on_commit=False


def test_unique_constraints(database: Database) -> None:
    with database.session() as session:
        dataset = Dataset(name="flights", created_by="ana")
        session.add(dataset)
        session.flush()
        session.add(_version(dataset.id, 1, "a" * 64))
    cases = [
        lambda: Dataset(name="flights", created_by="bob"),
        lambda: _version(dataset.id, 1, "b" * 64),
        lambda: _version(dataset.id, 2, "a" * 64),
    ]
    for make in cases:
        with pytest.raises(IntegrityError) as caught, database.session() as session:
            session.add(make())
        assert is_unique_violation(caught.value)


def test_foreign_keys_are_enforced(database: Database) -> None:
    with pytest.raises(IntegrityError) as caught, database.session() as session:
        session.add(_version(12345, 1, "a" * 64))
    assert not is_unique_violation(caught.value)


def test_json_and_big_integers_round_trip(database: Database) -> None:
    with database.session() as session:
        dataset = Dataset(name="flights", created_by="ana")
        session.add(dataset)
        session.flush()
        session.add(_version(dataset.id, 1, "a" * 64))
    with database.session() as session:
        row = session.execute(select(DatasetVersion)).scalar_one()
        assert row.dataset.name == "flights"
    assert row.num_bytes == 2**40
    assert row.schema_json == [{"name": "x", "type": "int64", "nullable": False}]
    assert row.profile_json == {"x": {"min": 1}}


def test_datetimes_come_back_aware_in_utc(database: Database) -> None:
    plus_two = datetime(2026, 3, 1, 14, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    naive = datetime(2026, 3, 1, 12, 0)
    with database.session() as session:
        session.add_all([Dataset(name="default", created_by="ana"),
                         Dataset(name="plus-two", created_by="ana", created_at=plus_two),
                         Dataset(name="naive", created_by="ana", created_at=naive)])
    with database.session() as session:
        rows = {d.name: d.created_at for d in session.execute(select(Dataset)).scalars()}
    for value in rows.values():
        assert value.tzinfo is UTC
    assert rows["plus-two"] == plus_two
    assert rows["plus-two"].hour == 12
    assert rows["naive"] == naive.replace(tzinfo=UTC)
    assert abs(rows["default"] - datetime.now(UTC)) < timedelta(minutes=5)


@pytest.mark.parametrize("url", [
    "postgresql://postgres@127.0.0.1:5999/x",
    "postgresql://postgres:hunter2secret@127.0.0.1:5999/x",
    "postgresql://postgres:hunter2secret@127.0.0.1:5432/mlwright_no_such_database",
    "postgresql://postgres:hunter2secret@no-such-host.invalid/x",
    "sqlite:////no/such/folder/metadata.db",
    "garbage",
    "not a url at all://",
    "mysql://root:hunter2secret@127.0.0.1/x",
    "postgresql+nosuchdriver://u@h/x",
])
def test_unreachable_databases_give_one_line_errors(url: str) -> None:
    with pytest.raises(StoreError) as caught:
        connect(url)
    message = str(caught.value)
    assert message.startswith("Cannot reach the metadata database at ")
    assert "\n" not in message
    assert "hunter2secret" not in message
    assert mask_url(url.replace("postgresql://", "postgresql+psycopg://")) in message
    assert "MLWRIGHT_METADATA_URL" in message


def test_specific_reasons() -> None:
    reasons = {
        "postgresql://postgres@127.0.0.1:5999/x": "connection refused",
        "postgresql://postgres@127.0.0.1:5432/mlwright_no_such_database": "does not exist",
        "postgresql://postgres@no-such-host.invalid/x": "unknown host 'no-such-host.invalid'",
        "sqlite:////no/such/folder/metadata.db": "the folder /no/such/folder does not exist",
    }
    for url, reason in reasons.items():
        with pytest.raises(StoreError, match=reason):
            connect(url)


@pytest.mark.parametrize(("url", "masked"), [
    ("postgresql://ana:s3cret@db/x", "postgresql://ana:***@db/x"),
    ("postgresql+psycopg://ana:p%40ss@db:5432/x", "postgresql+psycopg://ana:***@db:5432/x"),
    ("postgresql://ana:p@ss/w:rd@db/x", "postgresql://ana:***@db/x"),
    ("postgresql://ana@db/x?password=s3cret&sslmode=require",
     "postgresql://ana@db/x?password=***&sslmode=require"),
    ("postgresql://ana@db/x", "postgresql://ana@db/x"),
    ("sqlite:////home/ana/m@il/x.db", "sqlite:////home/ana/m@il/x.db"),
    ("garbage", "garbage"),
])
def test_mask_url_hides_passwords(url: str, masked: str) -> None:
    assert mask_url(url) == masked
