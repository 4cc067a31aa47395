"""INSERT ... ON CONFLICT DO UPDATE, the same on SQLite and PostgreSQL.

>>> upsert(session, StepCache, [row], keys=["cache_key"])        # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session


def upsert(session: Session, table: Any, rows: Sequence[dict[str, Any]], *, keys: list[str],
           only_if: Callable[[Any], ColumnElement[bool]] | None = None) -> None:
    """Insert ``rows`` into ``table``; a row whose ``keys`` exist already replaces the stored
    values (when ``only_if(excluded)`` holds, if given: e.g. only a newer step)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(table).values(list(rows))
    columns = [name for name in rows[0] if name not in keys]
    session.execute(statement.on_conflict_do_update(
        index_elements=keys, set_={name: statement.excluded[name] for name in columns},
        where=only_if(statement.excluded) if only_if is not None else None))
