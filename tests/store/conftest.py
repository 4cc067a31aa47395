"""A migrated metadata database per test, on both dialects."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlwright.store import Database, connect


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = connect(database_url)
    yield db
    db.dispose()
