"""Plain helpers of the feature store tests: workspaces, repository folders, tz-aware tables.

Fixtures live in ``conftest.py``; what a test calls directly lives here (imported as
``from .support import ...``).
"""

from __future__ import annotations

import os
import textwrap
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlwright.errors import OnlineStoreError
from mlwright.workspace import Workspace, init_workspace, open_workspace

REDIS = os.environ.get("MLWRIGHT_TEST_REDIS", "redis://127.0.0.1:6379/0")
UTC_US = pa.timestamp("us", "UTC")
HEADER = "from datetime import timedelta\n\nfrom mlwright.features import *  # noqa: F403\n\n"


def utc(year: int, month: int = 1, day: int = 1, hour: int = 0, minute: int = 0, second: int = 0,
        microsecond: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


def timestamps(values: Sequence[datetime | None]) -> pa.Array:
    """A µs UTC timestamp array (tz-aware)."""
    return pa.array(list(values), UTC_US)


def table(**columns: Any) -> pa.Table:
    """An Arrow table; lists of tz-aware datetimes become µs UTC timestamps, ints int64."""
    arrays = {}
    for name, values in columns.items():
        if isinstance(values, pa.Array | pa.ChunkedArray):
            arrays[name] = values
            continue
        values = list(values)
        sample = next((v for v in values if v is not None), None)
        if isinstance(sample, datetime):
            arrays[name] = pa.array(values, UTC_US if sample.tzinfo is not None else
                                    pa.timestamp("us"))
        elif isinstance(sample, bool):
            arrays[name] = pa.array(values, pa.bool_())
        elif isinstance(sample, int):
            arrays[name] = pa.array(values, pa.int64())
        elif isinstance(sample, float):
            arrays[name] = pa.array(values, pa.float64())
        else:
            arrays[name] = pa.array(values, pa.string())
    return pa.table(arrays)


def write_parquet(path: Path, data: pa.Table) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(data, path)
    return path


def entities(user_ids: Sequence[int], times: Sequence[datetime], **extra: Any) -> pa.Table:
    """An entity table: ``user_id`` (int64) and a tz-aware ``event_timestamp``."""
    return table(user_id=pa.array(list(user_ids), pa.int64()), event_timestamp=timestamps(times),
                 **extra)


def write_repo(folder: Path, source: str, *, file: str = "defs.py", header: bool = True) -> Path:
    """Write one definitions file (dedented, with the usual imports) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    text = textwrap.dedent(source)
    (folder / file).write_text((HEADER if header else "") + text, encoding="utf-8")
    return folder


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    """The error message, checked to be one line."""
    message = str(exc.value)
    assert message and "\n" not in message, message
    return message


def redis_or_skip() -> None:
    """Skip (fail on CI) when no Redis answers at REDIS."""
    from mlwright.features.online import RedisOnlineStore

    try:
        RedisOnlineStore(REDIS, prefix="mlwright-probe").close()
    except OnlineStoreError as exc:
        reason = f"Redis is not usable at {REDIS}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def delete_redis_prefix(prefix: str) -> None:
    import redis

    with redis.Redis.from_url(REDIS) as client:
        doomed = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(doomed), 1000):
            client.unlink(*doomed[start:start + 1000])


def make_workspace(root: Path, *, metadata_url: str | None = None,
                   online: str = "sqlite", **settings: str) -> Workspace:
    """A new workspace at ``root``; ``online="redis"`` points it at the test Redis under a
    prefix of its own (the caller deletes the keys: see :func:`workspace_context`)."""
    ws = init_workspace(root, metadata_url=metadata_url)
    ws.close()
    lines = dict(settings)
    if online == "redis":
        lines.setdefault("online_url", REDIS)
        lines.setdefault("online_prefix", f"mlwright-test-{uuid.uuid4().hex[:16]}")
    if lines:
        with (root / "mlwright.toml").open("a", encoding="utf-8") as handle:
            for key, value in lines.items():
                handle.write(f'{key} = "{value}"\n')
    return open_workspace(root)


@contextmanager
def workspace_context(root: Path, *, metadata_url: str | None = None,
                      online: str = "sqlite") -> Iterator[Workspace]:
    if online == "redis":
        redis_or_skip()
    ws = make_workspace(root, metadata_url=metadata_url, online=online)
    try:
        yield ws
    finally:
        ws.close()
        if online == "redis":
            delete_redis_prefix(ws.settings.online_prefix)
