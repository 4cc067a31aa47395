"""A workspace per test on SQLite and PostgreSQL, with the flights-like table registered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlwright.workspace import WORKSPACE_ENV, Workspace, init_workspace


@pytest.fixture
def workspace(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    ws = init_workspace(tmp_path / "ws", metadata_url=database_url)
    yield ws
    ws.close()
