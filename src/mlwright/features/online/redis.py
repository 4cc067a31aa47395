"""The Redis online store (``redis://host:port/db``, extra ``mlwright[redis]``).

One Redis string per entity and online table, under ``{prefix}:{table}:{key}``, holding the
row as a compact JSON array ``[event_ts, created_ts, f1, ..., fn]`` (timestamps in µs).
A Lua script applies the newer-wins rule, so a write is atomic per key whichever process
writes; a batch goes as pipelined script calls of 100 keys, 1,000 rows per round trip.
Reads are one ``GET`` (one key) or ``MGET`` (several): one round trip.

JSON has no NaN or infinity: non-finite floats are stored as ``null`` and read back as
``None`` (SQLite also reads NaN back as ``None``). ``bool`` reads back as ``bool``,
``float32`` as a Python float holding the float32 value, timestamps as int µs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.compute as pc

from mlwright.errors import OnlineStoreError
from mlwright.features.online.base import OnlineTable, Reader, Row, batch_columns

if TYPE_CHECKING:
    from redis import Redis
    from redis.commands.core import Script

_dumps: Callable[[Any], bytes | str]
_loads: Callable[[bytes | str], Any]
try:  # orjson is several times faster on the write and read paths; json is the fallback
    import orjson  # type: ignore[import-not-found, unused-ignore]  # optional

    _dumps, _loads = orjson.dumps, orjson.loads
except ImportError:  # pragma: no cover - depends on the environment
    def _dumps(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    _loads = json.loads

# KEYS: the rows' keys; ARGV: per key, the new row (JSON), its event ts and its created ts
# (-1 for none). A stored row is replaced only when (ts, cts) >= its pair: newer wins, and
# equal pairs take the new row (idempotent re-writes, last of equal writes wins). Redis runs
# a script without interleaving, so each key's read-compare-set is atomic. Lua numbers are
# doubles: µs timestamps are exact until the year 2255 (2^53 µs). Returns the rows stored.
_NEWER_WINS = """
local stored = 0
for i, key in ipairs(KEYS) do
  local at = (i - 1) * 3
  local ts, cts = tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  local newer = true
  local old = redis.call('GET', key)
  if old then
    local row = cjson.decode(old)
    local old_cts = row[2]
    if old_cts == cjson.null then old_cts = -1 end
    newer = ts > row[1] or (ts == row[1] and cts >= old_cts)
  end
  if newer then
    redis.call('SET', key, ARGV[at + 1])
    stored = stored + 1
  end
end
return stored
"""
_CHUNK = 1000  # rows per pipeline round trip, keys per MGET / UNLINK
# Keys per script call: one call per key costs redis-py more than the write itself, and a
# call of 100 keys keeps Redis busy well under a millisecond, so other clients barely wait.
_SCRIPT_KEYS = 100


def _redact(url: str) -> str:
    """The URL without its password, fit for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisOnlineStore:
    """The online store in a Redis server, shared by every process that serves features.

    ``prefix`` starts every key, so that several workspaces can share one Redis database.
    Opening checks that Redis answers, so a wrong URL fails here and not on the first request.

    >>> store = RedisOnlineStore("redis://127.0.0.1:6379/0", prefix="ranking")   # doctest: +SKIP
    >>> store.write(table, batch)                                                  # doctest: +SKIP
    10000
    >>> store.reader(table)(["42", "7"])                                           # doctest: +SKIP
    [(1700000000000000, 3.0, 'fr'), None]
    """

    def __init__(self, url: str, *, prefix: str = "mlwright", connect_timeout: float = 2.0,
                 timeout: float = 5.0) -> None:
        try:
            import redis
        except ImportError as exc:
            raise OnlineStoreError(f"The online store {_redact(url)} needs the Redis client; install "
                                   "it with: pip install 'mlwright[redis]'.") from exc
        if not prefix:
            raise OnlineStoreError("The Redis online store needs a non-empty key prefix; got ''.")
        self.url = url
        self.prefix = prefix
        self._errors = redis.RedisError
        self._unreachable = (redis.ConnectionError, redis.TimeoutError)
        try:
            # redis-py picks the hiredis parser by itself when it is installed. One connection
            # held by the store (a store serves one process): no pool checkout per command,
            # about a fifth off each online read.
            self._client: Redis = redis.Redis.from_url(
                url, socket_connect_timeout=connect_timeout, socket_timeout=timeout,
                single_connection_client=True)
        except ValueError as exc:
            raise OnlineStoreError(f"Online store URL {_redact(url)!r} is not a valid Redis URL "
                                   f"({exc}); use redis://HOST:PORT/DB.") from exc
        except redis.RedisError as exc:  # the single connection is made at once
            raise self._fail("open the online store", exc) from exc
        try:
            self._client.ping()
        except redis.RedisError as exc:
            self._client.close()
            raise self._fail("open the online store", exc) from exc
        self._script: Script = self._client.register_script(_NEWER_WINS)

    def _fail(self, action: str, exc: Exception) -> OnlineStoreError:
        reason = (str(exc).splitlines()[0] if str(exc) else type(exc).__name__).rstrip(".")
        if isinstance(exc, self._unreachable):
            return OnlineStoreError(f"Cannot {action}: Redis at {_redact(self.url)} is unreachable "
                                    f"({reason}). Start Redis there or fix online_url.")
        return OnlineStoreError(f"Cannot {action}: Redis at {_redact(self.url)} refused it ({reason}).")

    def _key_prefix(self, table: OnlineTable) -> str:
        return f"{self.prefix}:{table.name}:"

    def write(self, table: OnlineTable, batch: pa.RecordBatch) -> int:
        """Upsert a batch (newer wins, atomic per key); return how many rows were stored."""
        columns = batch_columns(table, batch)
        keys = columns[0].to_pylist()
        # JSON cannot hold NaN or infinity: make them nulls here, vectorised, for both encoders.
        rows = list(zip(*(
            (pc.if_else(pc.is_finite(column), column, None)
             if pa.types.is_floating(column.type) else column).to_pylist()
            for column in columns[1:]), strict=True))
        key_prefix = self._key_prefix(table)
        script, client, count = self._script, self._client, len(keys)
        stored = 0
        try:
            for start in range(0, count, _CHUNK):
                with client.pipeline(transaction=False) as pipe:
                    for first in range(start, min(start + _CHUNK, count), _SCRIPT_KEYS):
                        last = min(first + _SCRIPT_KEYS, count)
                        args: list[Any] = []
                        for row in rows[first:last]:  # row = (event_ts, created_ts, f1, ..., fn)
                            args += (_dumps(row), row[0], -1 if row[1] is None else row[1])
                        # Through the Script object: the pipeline loads it if Redis lost it.
                        script(keys=[key_prefix + key for key in keys[first:last]], args=args,
                               client=pipe)
                    stored += sum(pipe.execute())
        except self._errors as exc:
            raise self._fail(f"write online table '{table.name}'", exc) from exc
        return stored

    def reader(self, table: OnlineTable) -> Reader:
        """A function from entity keys to ``(event_ts_us, f1, ..., fn)`` or ``None``, per key."""
        key_prefix = self._key_prefix(table)
        client, errors, loads = self._client, self._errors, _loads
        action = f"read online table '{table.name}'"

        def decode(raw: bytes | str) -> Row:
            row = loads(raw)
            del row[1]  # the created timestamp: only the newer-wins rule needs it
            return tuple(row)

        def read(keys: Sequence[str]) -> list[Row | None]:
            try:
                if len(keys) == 1:
                    raw = client.get(key_prefix + keys[0])
                    return [None if raw is None else decode(raw)]
                found: list[Row | None] = []
                for start in range(0, len(keys), _CHUNK):
                    chunk = [key_prefix + key for key in keys[start:start + _CHUNK]]
                    found.extend(None if raw is None else decode(raw) for raw in client.mget(chunk))
                return found
            except errors as exc:
                raise self._fail(action, exc) from exc
            except ValueError as exc:  # not JSON: something else wrote under our prefix
                raise OnlineStoreError(f"Cannot {action}: a key under '{key_prefix}' in Redis at "
                                       f"{_redact(self.url)} does not hold a feature row ({exc}).") from exc

        return read

    def drop(self, table: OnlineTable) -> None:
        """Delete every key of the table (``SCAN`` + ``UNLINK``, in chunks; never blocks Redis)."""
        # Table names hold no glob characters (OnlineTable checks); the prefix may.
        pattern = f"{_glob_escape(self.prefix)}:{table.name}:*"
        try:
            doomed: list[bytes] = []
            for key in self._client.scan_iter(match=pattern, count=_CHUNK):
                doomed.append(key)
                if len(doomed) >= _CHUNK:
                    self._client.unlink(*doomed)
                    doomed.clear()
            if doomed:
                self._client.unlink(*doomed)
        except self._errors as exc:
            raise self._fail(f"drop online table '{table.name}'", exc) from exc

    def close(self) -> None:
        """Close the connections; closing twice does nothing."""
        self._client.close()

    def __enter__(self) -> RedisOnlineStore:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RedisOnlineStore({_redact(self.url)!r}, prefix={self.prefix!r})"
