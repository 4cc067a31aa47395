"""A workspace per test, on SQLite and on PostgreSQL (see ``database_url`` in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlwright.workspace import WORKSPACE_ENV, Workspace, init_workspace


@pytest.fixture
def workspace(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)  # and restored afterwards, whatever ran
    ws = init_workspace(tmp_path / "ws", metadata_url=database_url)
    yield ws
    ws.close()


@pytest.fixture
def log(tmp_path: Path) -> str:
    """The file the steps of tests/pipelines/flows.py append a line to each time they run."""
    return str(tmp_path / "ran.log")
