"""The metadata database: SQLite (WAL) by default, PostgreSQL by URL.

>>> db = connect("sqlite:///metadata.db")      # doctest: +SKIP
>>> with db.session() as session:              # doctest: +SKIP
...     session.add(...)                       # committed on exit, rolled back on error
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
)
from sqlalchemy.orm import Session, sessionmaker

from mlwright.errors import StoreError

# The newest migration; `migrate` does nothing (and never imports Alembic) when the
# database is already there.
HEAD_REVISION = "0001"
_FIX = "Check `metadata_url` in mlwright.toml or MLWRIGHT_METADATA_URL."


def mask_url(url: str) -> str:
    """The URL with any password hidden, for messages and `config show`."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def _normalize(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _reason(exc: BaseException) -> str:
    """The first line of a driver error, without SQLAlchemy's boilerplate."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).strip().splitlines() if line.strip()]
    reason = lines[0] if lines else type(orig).__name__
    return reason.rstrip(".")


def is_unique_violation(exc: IntegrityError) -> bool:
    """Whether an IntegrityError is a unique-constraint violation (on either dialect)."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == "23505":  # psycopg: unique_violation
        return True
    return "UNIQUE constraint failed" in str(orig)


class Database:
    """A metadata database; nothing connects until first use."""

    def __init__(self, url: str) -> None:
        self.url = _normalize(url)
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._create_engine()
            self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        return self._engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _create_engine(self) -> Engine:
        masked = mask_url(self.url)
        try:
            parsed = make_url(self.url)
        except ArgumentError:
            raise StoreError(f"Metadata database URL '{masked}' is not a valid URL. {_FIX}") from None
        backend = parsed.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise StoreError(f"Metadata database URL '{masked}' uses '{backend}'; mlwright "
                             f"supports sqlite and postgresql. {_FIX}")
        if backend == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:" and not Path(database).parent.is_dir():
                raise StoreError(f"Cannot reach the metadata database at {masked}: folder "
                                 f"{Path(database).parent} does not exist. {_FIX}")
            engine = create_engine(self.url, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        try:
            return create_engine(self.url, pool_pre_ping=True,
                                 connect_args={"connect_timeout": 10})
        except (ArgumentError, NoSuchModuleError) as exc:
            raise StoreError(f"Cannot use metadata database URL '{masked}': {_reason(exc)}. "
                             f"{_FIX}") from None

    def check(self) -> None:
        """Connect once; a StoreError that says what and where if that fails."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except DBAPIError as exc:
            raise StoreError(f"Cannot reach the metadata database at {mask_url(self.url)}: "
                             f"{_reason(exc)}. {_FIX}") from None

    def current_revision(self) -> str | None:
        try:
            with self.engine.connect() as conn:
                if not inspect(conn).has_table("alembic_version"):
                    return None
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except DBAPIError as exc:
            raise StoreError(f"Cannot reach the metadata database at {mask_url(self.url)}: "
                             f"{_reason(exc)}. {_FIX}") from None

    def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic), idempotently."""
        if self.current_revision() == HEAD_REVISION:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location",
                               str(resources.files("mlwright.store") / "migrations"))
        try:
            with self.engine.begin() as conn:
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except DBAPIError as exc:
            raise StoreError(f"Cannot migrate the metadata database at {mask_url(self.url)}: "
                             f"{_reason(exc)}.") from None

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        self.engine  # noqa: B018 - builds the session factory
        assert self._sessions is not None
        session = self._sessions()
        try:
            yield session
            session.commit()
        except DBAPIError as exc:
            session.rollback()
            if not _is_connection_error(exc):
                raise
            raise StoreError(f"Lost the metadata database at {mask_url(self.url)}: "
                             f"{_reason(exc)}. {_FIX}") from None
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def _is_connection_error(exc: DBAPIError) -> bool:
    """A lost or refused connection, as opposed to a statement the database refused."""
    if exc.connection_invalidated:
        return True
    message = str(exc.orig).lower()
    return isinstance(exc, OperationalError) and ("connect" in message or "could not" in message)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def connect(url: str, *, migrate: bool = True) -> Database:
    """Open the metadata database at ``url``: check it answers, then migrate it."""
    database = Database(url)
    database.check()
    if migrate:
        database.migrate()
    return database
