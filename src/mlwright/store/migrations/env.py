"""Alembic environment: mlwright hands over an open connection; no alembic.ini is needed.

``Database.migrate`` puts the connection in ``config.attributes["connection"]`` inside a
transaction it holds (with a lock, so that two processes never migrate at once).
"""

from __future__ import annotations

from alembic import context

from mlwright.errors import StoreError
from mlwright.store import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise StoreError("mlwright migrations run through `mlwright.store.Database.migrate()` "
                     "(or `mlwright init`), not the alembic command line.")
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
