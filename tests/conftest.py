"""Shared fixtures: a fresh, empty metadata database per test, on SQLite and on PostgreSQL.

The PostgreSQL server is the one at 127.0.0.1:5432 (user postgres, trust auth); point
MLWRIGHT_TEST_POSTGRES at another maintenance-database URL to use a different one. Tests
against it carry the ``postgres`` marker: ``pytest -m "not postgres"`` runs without it.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass
class CliResult:
    """What one `mlwright ...` call did: exit code, standard output, standard error."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
            tmp_path: Path) -> Callable[..., CliResult]:
    """Run `mlwright ARGS...` in-process through its real entry point, in ``tmp_path``, with
    no workspace in the environment."""
    from mlwright.cli.main import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLWRIGHT_WORKSPACE", raising=False)

    def run(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["mlwright", *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
