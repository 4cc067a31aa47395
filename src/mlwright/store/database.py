"""The metadata database: SQLite (WAL) by default, PostgreSQL by URL.

>>> db = connect("sqlite:///metadata.db")      # doctest: +SKIP
>>> with db.session() as session:              # doctest: +SKIP
...     session.add(Dataset(name="flights", created_by="ana"))   # committed on exit
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from mlwright.errors import StoreError

# The newest migration in migrations/versions (a test keeps them equal). `migrate` compares
# the database's revision with it first and never imports Alembic when they match.
HEAD_REVISION = "0006"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# pg_advisory_xact_lock key ("mlwrig" in ASCII): one migrator at a time per database.
_MIGRATION_LOCK = 0x6D6C77726967
_FIX = "Check `metadata_url` in mlwright.toml or MLWRIGHT_METADATA_URL."
_DIALECTS = ("sqlite", "postgresql")
_PASSWORD_IN_NETLOC = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://[^:/@]*):(.*)@(?=[^@]*$)")
_PASSWORD_IN_QUERY = re.compile(r"(password=)[^&#]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***``, for messages and ``config show``.

    >>> mask_url("postgresql://ana:s3cret@db.internal/mlwright")
    'postgresql://ana:***@db.internal/mlwright'
    """
    masked = _PASSWORD_IN_NETLOC.sub(r"\1:***@", url)
    return _PASSWORD_IN_QUERY.sub(r"\1***", masked)


def _normalize(url: str) -> str:
    """``postgresql://`` (and Heroku's ``postgres://``) mean the psycopg 3 driver we ship."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _parse(url: str) -> URL:
    masked = mask_url(url)
    try:
        parsed = make_url(url) if "://" in url else None
    except (ArgumentError, ValueError):
        parsed = None
    if parsed is None:
        raise StoreError(f"Cannot reach the metadata database at '{masked}': not a database URL "
                         "(expected e.g. sqlite:////path/to/metadata.db or "
                         f"postgresql://user@host:5432/mlwright). {_FIX}")
    if parsed.get_backend_name() not in _DIALECTS:
        raise StoreError(f"Cannot reach the metadata database at {masked}: "
                         f"'{parsed.get_backend_name()}' is not supported (use sqlite or "
                         f"postgresql). {_FIX}")
    return parsed


def _sqlite_file(parsed: URL) -> Path | None:
    database = parsed.database or ""
    return None if database in ("", ":memory:") or database.startswith("file:") else Path(database)


def _reason(exc: BaseException, parsed: URL) -> tuple[str, str]:
    """A short reason for a driver error, and what to do about it."""
    orig = getattr(exc, "orig", None) or exc
    message = str(orig)
    low = message.lower()
    if "refused" in low:
        return "connection refused", f"Is the server running there? {_FIX}"
    if "resolve host" in low or "translate host name" in low or "name or service not known" in low:
        return f"unknown host '{parsed.host}'", _FIX
    if "does not exist" in low and "database" in low:
        return (f"database '{parsed.database}' does not exist",
                f"Create it (`createdb {parsed.database}`) or fix the name. {_FIX}")
    if "authentication failed" in low or "no password supplied" in low:
        return (f"authentication failed for user '{parsed.username}'",
                f"Check the user and password. {_FIX}")
    if "timeout" in low or "timed out" in low:
        return "connection timed out", f"Is the host reachable? {_FIX}"
    if "unable to open database file" in low:
        return "cannot open the SQLite file (does its folder exist, is it writable?)", _FIX
    if isinstance(orig, ImportError):
        return (f"the driver '{parsed.get_driver_name()}' is not installed",
                f"Use postgresql+psycopg:// (installed with mlwright). {_FIX}")
    first = next((line.strip() for line in message.splitlines() if line.strip()), type(orig).__name__)
    if parsed.password:  # never echo a password, whatever the driver put in its message
        first = first.replace(str(parsed.password), "***")
    return first.rstrip("."), _FIX


def is_unique_violation(exc: BaseException) -> bool:
    """Whether ``exc`` (an IntegrityError, or its driver error) broke a unique constraint.

    >>> try:                                        # doctest: +SKIP
    ...     session.flush()
    ... except IntegrityError as exc:
    ...     if not is_unique_violation(exc): raise
    """
    orig = getattr(exc, "orig", None) or exc
    if getattr(orig, "sqlstate", None) == "23505":  # psycopg: unique_violation
        return True
    # sqlite3: SQLITE_CONSTRAINT_UNIQUE (2067) or SQLITE_CONSTRAINT_PRIMARYKEY (1555)
    if getattr(orig, "sqlite_errorcode", None) in (2067, 1555):
        return True
    return type(orig).__module__ == "sqlite3" and "UNIQUE constraint failed" in str(orig)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    import sqlite3

    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")  # wait for a concurrent writer, do not fail
        # In WAL mode NORMAL is still crash-safe (no corruption) and skips an fsync per commit,
        # which makes small writes (a run's parameters, a step's record) ~10x cheaper; only a
        # power cut can lose the last commits. SQLite's own recommendation for WAL.
        cursor.execute("PRAGMA synchronous=NORMAL")
        # WAL: readers never block the writer. The mode is stored in the file, so only the
        # first connection switches it; SQLite refuses the switch without waiting while another
        # connection holds a lock, hence the retries when processes create the file together.
        deadline = time.monotonic() + 30
        while cursor.execute("PRAGMA journal_mode").fetchone()[0] not in ("wal", "memory"):
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
                break  # switched, or a filesystem without WAL support kept the old mode
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        cursor.close()


class Database:
    """The metadata database. SQLite (WAL, foreign keys on, busy_timeout 30 s) or PostgreSQL.

    Constructing it only parses the URL: no connection is opened and no file is created
    until :meth:`check`, :meth:`migrate` or a session needs one.

    >>> db = Database("sqlite:////tmp/mlwright/metadata.db")
    >>> db.url
    'sqlite:////tmp/mlwright/metadata.db'
    """

    def __init__(self, url: str) -> None:
        self.url = _normalize(url)
        self._parsed = _parse(self.url)
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None

    def __repr__(self) -> str:
        return f"Database({mask_url(self.url)!r})"

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._parsed.get_backend_name()

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, built on first use (still without connecting)."""
        if self._engine is None:
            try:
                self._engine = self._create_engine()
            except (SQLAlchemyError, ImportError) as exc:
                raise self._error("Cannot reach", exc) from None
            self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        return self._engine

    def _create_engine(self) -> Engine:
        if self.dialect == "sqlite":
            memory = _sqlite_file(self._parsed) is None
            # An in-memory database lives in one connection: share it, or it vanishes.
            extra: dict[str, Any] = {"poolclass": StaticPool} if memory else {}
            engine = create_engine(self._parsed, connect_args={"timeout": 30,
                                                                "check_same_thread": False}, **extra)
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        connect_args: dict[str, Any] = {"application_name": "mlwright"}
        if "connect_timeout" not in self._parsed.query:
            connect_args["connect_timeout"] = 10  # an unreachable host fails fast
        return create_engine(self._parsed, pool_pre_ping=True, connect_args=connect_args)

    def _error(self, what: str, exc: BaseException) -> StoreError:
        reason, fix = _reason(exc, self._parsed)
        return StoreError(f"{what} the metadata database at {mask_url(self.url)}: {reason}. {fix}")

    def _preflight(self) -> None:
        path = _sqlite_file(self._parsed)
        if path is not None and not path.parent.is_dir():
            raise StoreError(f"Cannot reach the metadata database at {mask_url(self.url)}: the "
                             f"folder {path.parent} does not exist. Create the folder, or check "
                             "`metadata_url` in mlwright.toml or MLWRIGHT_METADATA_URL.")

    def check(self) -> None:
        """Connect once; raise :class:`StoreError` saying what, where and what to do if that fails."""
        self._preflight()
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise self._error("Cannot reach", exc) from None

    def revision(self) -> str | None:
        """The schema revision the database is at (None when it was never migrated)."""
        try:
            with self.engine.connect() as conn:
                return _revision(conn)
        except SQLAlchemyError as exc:
            raise self._error("Cannot reach", exc) from None

    def migrate(self) -> None:
        """Bring the schema to :data:`HEAD_REVISION`; cheap (one query) when it is there.

        Safe to run from several processes at once: they queue on a lock (an advisory lock
        on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) and the schema change is one transaction.
        """
        self._preflight()
        if self.revision() == HEAD_REVISION:
            return
        try:
            with self.engine.connect() as conn:
                if self.dialect == "sqlite":
                    # pysqlite would run DDL outside a transaction; take the write lock now.
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                else:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
                current = _revision(conn)
                if current != HEAD_REVISION:
                    _upgrade(conn, current, mask_url(self.url))
                conn.commit()
        except SQLAlchemyError as exc:
            raise self._error("Cannot migrate", exc) from None

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises.

        Objects stay readable after the block (``expire_on_commit=False``). A lost or
        locked database becomes a :class:`StoreError`; constraint violations stay
        ``IntegrityError`` so callers can tell them apart (see :func:`is_unique_violation`).

        >>> with db.session() as session:         # doctest: +SKIP
        ...     session.add(row)
        """
        self.engine  # noqa: B018 - builds the session factory
        assert self._sessions is not None
        session = self._sessions()
        try:
            yield session
            session.commit()
        except OperationalError as exc:
            session.rollback()
            raise self._error("Cannot use", exc) from None
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def exclusive(self, name: str) -> Iterator[Session]:
        """A :meth:`session` that holds the lock ``name`` from its start to its end, so that
        read-then-write sequences (moving an alias and recording from where) never interleave.

        SQLite takes its one write lock up front (``BEGIN IMMEDIATE``); PostgreSQL a
        transaction-scoped advisory lock on a hash of ``name``, so unrelated names never wait.

        >>> with db.exclusive("alias:delays:champion") as session:   # doctest: +SKIP
        ...     ...
        """
        with self.session() as session:
            connection = session.connection()
            if self.dialect == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                digest = hashlib.sha256(name.encode()).digest()
                key = int.from_bytes(digest[:8], "big", signed=True)
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            yield session

    def dispose(self) -> None:
        """Close every pooled connection; the object can still be used afterwards."""
        if self._engine is not None:
            self._engine.dispose()


def _revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if value is None else str(value)


def _upgrade(conn: Connection, current: str | None, where: str) -> None:
    from alembic import command
    from alembic.config import Config
    from alembic.util import CommandError

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = conn
    try:
        command.upgrade(config, "head")
    except CommandError:
        raise StoreError(f"The metadata database at {where} is at schema revision '{current}', "
                         f"which this version of mlwright (newest: {HEAD_REVISION}) does not know; "
                         "upgrade mlwright.") from None


def connect(url: str, *, migrate: bool = True) -> Database:
    """Open the metadata database at ``url``: check that it answers, then migrate it.

    >>> db = connect("postgresql://ana@db.internal/mlwright")    # doctest: +SKIP
    """
    database = Database(url)
    try:
        database.check()
        if migrate:
            database.migrate()
    except BaseException:
        database.dispose()
        raise
    return database
