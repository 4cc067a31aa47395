"""Shared fixtures: a fresh, empty metadata database per test, on SQLite and on PostgreSQL.

The PostgreSQL server is the one at 127.0.0.1:5432 (user postgres, trust auth); point
MLWRIGHT_TEST_POSTGRES at another maintenance-database URL to use a different one. Tests
against it carry the ``postgres`` marker: ``pytest -m "not postgres"`` runs without it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

POSTGRES = os.environ.get("MLWRIGHT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _postgres_database() -> Iterator[str]:
    name = f"mlwright_test_{uuid.uuid4().hex}"
    try:
        admin = psycopg.connect(POSTGRES, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL is not reachable at {POSTGRES}: {str(exc).splitlines()[0]}"
        if os.environ.get("CI"):  # CI machines have the server: its absence is a failure there
            pytest.fail(reason)
        pytest.skip(reason)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES).set(drivername="postgresql+psycopg", database=name) \
            .render_as_string(hide_password=False)
    finally:
        # WITH (FORCE) ends the sessions that tests left open (pools not disposed).
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database that exists only for this test (not yet migrated)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'metadata.db'}"
    else:
        yield from _postgres_database()
