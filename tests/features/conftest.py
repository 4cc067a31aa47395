"""Fixtures of the feature store tests: workspaces (SQLite metadata by default; PostgreSQL
too where the metadata database matters), online stores (SQLite and Redis) and repository
folders written from source text.

Redis is the server at 127.0.0.1:6379 db 0 (MLWRIGHT_TEST_REDIS names another); each test
gets a key prefix of its own, deleted at teardown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlwright.workspace import WORKSPACE_ENV, Workspace

from .support import workspace_context, write_repo

ONLINE_STORES = ["sqlite", "redis"]


@pytest.fixture(autouse=True)
def _no_workspace_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    for name in ("MLWRIGHT_ONLINE_URL", "MLWRIGHT_ONLINE_PREFIX", "MLWRIGHT_METADATA_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    """A workspace on SQLite (metadata and online store), the fast default."""
    with workspace_context(tmp_path / "ws") as workspace:
        yield workspace


@pytest.fixture
def db_ws(tmp_path: Path, database_url: str) -> Iterator[Workspace]:
    """A workspace per metadata database: SQLite and a fresh PostgreSQL database."""
    with workspace_context(tmp_path / "ws", metadata_url=database_url) as workspace:
        yield workspace


@pytest.fixture(params=ONLINE_STORES)
def online_ws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    """A workspace (SQLite metadata) per online store: SQLite, and Redis under its own prefix."""
    with workspace_context(tmp_path / "ws", online=request.param) as workspace:
        yield workspace


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """``make_repo(source, name="repo", file="defs.py")``: a repository folder under tmp_path
    holding ``source`` (dedented, after the usual imports)."""

    def make(source: str, name: str = "repo", file: str = "defs.py", header: bool = True) -> Path:
        return write_repo(tmp_path / name, source, file=file, header=header)

    return make
