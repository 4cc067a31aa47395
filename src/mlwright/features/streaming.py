"""A Redis Stream consumer that pushes events to a feature view.

>>> stats = consume_stream("user_stats", "redis://127.0.0.1:6379/0", "clicks",
...                        max_events=1000)                        # doctest: +SKIP

Events are read with a consumer group, pushed (online and offline) in micro-batches and
acknowledged only after the push returned, so a consumer killed mid-batch re-reads its
pending events on restart: at least once, and the online store's newer-wins rule makes a
replay harmless. An event is either flat fields (``user_id=42``, ``clicks=3.0``, timestamps
as ISO 8601 or epoch microseconds) or one ``data`` field holding a JSON object. An event that
cannot be read goes to the dead-letter stream ``STREAM:dead`` with the reason, and is
acknowledged.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mlwright.errors import FeatureError, OnlineStoreError
from mlwright.features.catalog import ViewVersion
from mlwright.features.push import Pusher, pusher
from mlwright.workspace import Workspace

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class StreamStats:
    read: int = 0
    pushed: int = 0
    dead: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"read": self.read, "pushed": self.pushed, "dead": self.dead}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _timestamp(value: Any) -> datetime:
    if isinstance(value, int | float) or (isinstance(value, str) and value.lstrip("-").isdigit()):
        return EPOCH + timedelta(microseconds=int(value))
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone")
    return moment


def parse_event(view: ViewVersion, fields: dict[Any, Any]) -> dict[str, Any]:
    """One stream entry as a row of the view (typed); ValueError says what is wrong."""
    raw = {_text(k): v for k, v in fields.items()}
    if set(raw) == {"data"}:
        loaded = json.loads(_text(raw["data"]))
        if not isinstance(loaded, dict):
            raise ValueError("'data' is not a JSON object")
        raw = loaded
    else:
        raw = {k: _text(v) for k, v in raw.items()}
    fv = view.view
    types = {**fv.join_keys, fv.timestamp_field: "timestamp",
             **{f.name: f.dtype for f in fv.features}}
    if fv.created_timestamp_field:
        types[fv.created_timestamp_field] = "timestamp"
    unknown = sorted(set(raw) - set(types))
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}")
    row: dict[str, Any] = {}
    for name, dtype in types.items():
        if name not in raw:
            if name == fv.created_timestamp_field:
                continue
            raise ValueError(f"missing field '{name}'")
        value = raw[name]
        if value is None or value == "":
            row[name] = None
        elif dtype == "int64":
            row[name] = int(value)
        elif dtype in ("float64", "float32"):
            row[name] = float(value)
        elif dtype == "bool":
            row[name] = value if isinstance(value, bool) else str(value).lower() in ("1", "true")
        elif dtype == "timestamp":
            row[name] = _timestamp(value)
        else:
            row[name] = str(value)
    return row


def _client(url: str) -> Any:
    try:
        import redis
    except ImportError:
        raise FeatureError("Consuming a Redis Stream needs the redis extra: pip install "
                           "'mlwright[redis]'.") from None
    return redis.Redis.from_url(url, socket_connect_timeout=2)


def consume_stream(
    view: str,
    redis_url: str,
    stream: str,
    *,
    workspace: Workspace | str | os.PathLike[str] | None = None,
    group: str = "mlwright-features",
    consumer: str | None = None,
    batch: int = 500,
    block_ms: int = 1000,
    max_events: int | None = None,
    idle_exit: bool = False,
    stop: threading.Event | None = None,
) -> StreamStats:
    """Push events from ``stream`` to ``view`` until ``stop`` is set, ``max_events`` were
    read, or (``idle_exit``) the stream has nothing new for ``block_ms``."""
    import redis

    target: Pusher = pusher(view, workspace=workspace)
    client = _client(redis_url)
    consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
    dead_letter = f"{stream}:dead"
    stats = StreamStats()
    try:
        try:
            client.xgroup_create(stream, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        cursor = "0"  # first our own pending events (a previous run died before acking)
        while not (stop is not None and stop.is_set()):
            if max_events is not None and stats.read >= max_events:
                break
            count = batch if max_events is None else min(batch, max_events - stats.read)
            reply = client.xreadgroup(group, consumer, {stream: cursor}, count=count,
                                      block=None if cursor == "0" else block_ms)
            entries = reply[0][1] if reply else []
            if not entries:
                if cursor == "0":
                    cursor = ">"
                    continue
                if idle_exit:
                    break
                continue
            rows, ids = [], []
            for entry_id, fields in entries:
                ids.append(entry_id)
                try:
                    rows.append(parse_event(target.view, fields))
                except (ValueError, TypeError, json.JSONDecodeError) as exc:
                    client.xadd(dead_letter, {"id": entry_id, "reason": str(exc),
                                              "event": json.dumps({_text(k): _text(v) for k, v
                                                                   in fields.items()})})
                    stats.dead += 1
            if rows:
                try:
                    stats.pushed += target.push(rows)
                except FeatureError as exc:  # the batch as a whole does not fit the view
                    for entry_id, fields in entries:
                        client.xadd(dead_letter, {"id": entry_id, "reason": str(exc),
                                                  "event": json.dumps({_text(k): _text(v)
                                                                       for k, v in fields.items()})})
                    stats.dead += len(rows)
            client.xack(stream, group, *ids)
            stats.read += len(entries)
    except redis.ConnectionError as exc:
        raise OnlineStoreError(f"Redis at {redis_url} is unreachable ({exc}); start it or fix "
                               "the stream URL.") from None
    finally:
        target.close()
        client.close()
    return stats
