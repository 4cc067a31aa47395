"""Streaming inference: events from a Redis Stream scored and written to another stream.

>>> stats = consume("delays@champion", "redis://127.0.0.1:6379/0/flights",
...                 "redis://127.0.0.1:6379/0/delay-scores", max_events=1000)  # doctest: +SKIP

A stream is named by a URL ``redis://[USER:PASSWORD@]HOST:PORT/DB/STREAM`` (``rediss://``
for TLS); everything after the database number is the stream key. Events are read with a
consumer group (``XREADGROUP``) in micro-batches of up to ``batch_size`` and scored through
a :class:`~mlwright.serving.host.ModelHost`, the server's own path: the signature and
contract check, the feature service's online lookup, the dynamic batcher and the prediction
log. Each event is checked alone first, so a bad event goes to the dead-letter stream
instead of failing its batch; the valid ones are scored by one ``infer`` call.

An event is one entry whose single field ``data`` holds a JSON object of the request's
fields (typed: ``{"distance": 1200.5, "carrier": "UA"}``), or else flat fields, each a
string read by the signature's type (``distance=1200.5``, ``carrier=UA``; an empty string
is null; booleans as ``true``/``false``/``1``/``0``). The fields are those of a request to
the server: the feature service's entity keys and the signature inputs the store does not
provide. ``keys`` names extra fields copied to the prediction (default: the entity keys).

Each prediction is one sink entry: ``event_id`` (the source entry's id), ``request_id``
(the micro-batch's, as in the prediction log), ``model``, ``version``, ``prediction``
(JSON: a number, or a list for multi-output models) and the key fields. A bad event goes to
the dead-letter stream (default ``STREAM:dead`` on the source's server) as its own fields
plus ``reason`` and ``event_id``.

Delivery is at least once: a micro-batch is acknowledged only after its predictions (and
dead letters) were written, so a consumer killed mid-batch re-reads its pending events when
it restarts under the same name, and pending events of a consumer that died for good are
claimed (``XAUTOCLAIM``) by a live one once idle for ``claim_idle_ms``. A replay writes a
prediction twice; consumers of the sink deduplicate by ``event_id`` where it matters.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from mlwright.errors import (
    ArtifactError,
    OnlineStoreError,
    RequestValidationError,
    ServingError,
    StoreError,
)
from mlwright.registry.versions import parse_model_ref
from mlwright.serving.fields import FieldSpec
from mlwright.serving.host import ModelHost, new_request_id
from mlwright.serving.settings import ServeSettings
from mlwright.workspace import Workspace, as_workspace

WorkspaceArg = Workspace | str | os.PathLike[str] | None
# Failures of the system rather than of the events: the consumer stops, nothing is acked.
_INFRASTRUCTURE = (OnlineStoreError, StoreError, ArtifactError, OSError)
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


@dataclass(frozen=True)
class StreamAddress:
    """A Redis server and one stream key on it."""

    url: str  # the connection URL, redis://HOST:PORT/DB
    stream: str

    @classmethod
    def parse(cls, text: str, what: str = "stream") -> StreamAddress:
        parts = urlsplit(text)
        database, _, stream = parts.path.lstrip("/").partition("/")
        if parts.scheme not in ("redis", "rediss") or not parts.hostname or \
                not database.isdigit() or not stream:
            raise ServingError(f"The {what} URL {text!r} is not redis://HOST:PORT/DB/STREAM "
                               "(e.g. redis://127.0.0.1:6379/0/events); only Redis Streams "
                               "are supported.")
        return cls(urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, "")),
                   stream)

    def __str__(self) -> str:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}/{self.stream}"


@dataclass
class StreamStats:
    """What a consumer did: events read, predictions written, events dead-lettered."""

    read: int = 0
    predicted: int = 0
    dead: int = 0
    reclaimed: int = 0
    batches: int = 0
    versions: set[int] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        return {"read": self.read, "predicted": self.predicted, "dead": self.dead,
                "reclaimed": self.reclaimed, "batches": self.batches,
                "versions": sorted(self.versions)}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _typed(spec: FieldSpec, text: str) -> Any:
    """A flat field's text as its signature type; ValueError says what is wrong."""
    if text == "":
        return None
    if spec.kind == "float":
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{spec.name}: expected a number, got {text[:40]!r}") from None
    if spec.kind == "int":
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise ValueError(f"{spec.name}: expected an integer, got {text[:40]!r}") \
                    from None
            if not number.is_integer():
                raise ValueError(f"{spec.name}: expected an integer, got {text[:40]!r}") \
                    from None
            return int(number)
    if spec.kind == "bool":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f"{spec.name}: expected true or false, got {text[:40]!r}")
    return text


def parse_event(fields: dict[Any, Any], specs: Sequence[FieldSpec],
                keys: Sequence[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """One entry → (the request's fields, typed; the key fields as text for the sink).
    ValueError says what is wrong."""
    raw = {_text(k): v for k, v in fields.items()}
    if set(raw) == {"data"}:
        try:
            loaded = json.loads(_text(raw["data"]))
        except json.JSONDecodeError as exc:
            raise ValueError(f"'data' is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise ValueError("'data' is not a JSON object")
        values: dict[str, Any] = loaded
    else:
        by_name = {s.name: s for s in specs}
        values = {k: _typed(by_name[k], _text(v)) if k in by_name else _text(v)
                  for k, v in raw.items()}
    names = {s.name for s in specs}
    passed = {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()
              if k in keys}
    return {k: v for k, v in values.items() if k in names or k not in keys}, passed


@dataclass(frozen=True)
class _Event:
    event_id: str
    fields: dict[Any, Any]  # as read: what a dead letter carries
    values: dict[str, Any]  # the request's fields, typed
    passed: dict[str, str]  # the key fields for the sink


class _Consumer:
    """One consumer's loop state: clients, host, counters."""

    def __init__(self, host: ModelHost, name: str, source: StreamAddress, sink: StreamAddress,
                 dead: StreamAddress, group: str, consumer: str, keys: Sequence[str] | None,
                 claim_idle_ms: int) -> None:
        import redis.asyncio

        self.host, self.name = host, name
        self.source, self.sink, self.dead = source, sink, dead
        self.group, self.consumer = group, consumer
        self.keys = keys
        self.claim_idle_ms = claim_idle_ms
        self.stats = StreamStats()
        self.clients: dict[str, Any] = {}
        for address in (source, sink, dead):
            if address.url not in self.clients:
                self.clients[address.url] = redis.asyncio.Redis.from_url(
                    address.url, socket_connect_timeout=2)

    def client(self, address: StreamAddress) -> Any:
        return self.clients[address.url]

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    async def create_group(self) -> None:
        import redis

        try:
            await self.client(self.source).xgroup_create(self.source.stream, self.group,
                                                         id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def reclaim(self) -> int:
        """Take over the events other consumers read but never acknowledged (they died)."""
        client, start, claimed = self.client(self.source), "0-0", 0
        while True:
            reply = await client.xautoclaim(self.source.stream, self.group, self.consumer,
                                            min_idle_time=self.claim_idle_ms, start_id=start,
                                            count=500)
            start, claimed = _text(reply[0]), claimed + len(reply[1])
            if start == "0-0":
                break
        self.stats.reclaimed += claimed
        return claimed

    def keys_for(self) -> list[str]:
        if self.keys is not None:
            return list(self.keys)
        reader = self.host.served(self.name).path.reader
        return list(reader.join_keys) if reader is not None else []

    async def handle(self, entries: list[tuple[Any, Any]]) -> None:
        """Score a micro-batch, write predictions and dead letters, then acknowledge."""
        path = self.host.served(self.name).path
        keys = self.keys_for()
        good: list[_Event] = []
        dead: list[tuple[str, dict[Any, Any], str]] = []
        ids = []
        for entry_id, fields in entries:
            event_id = _text(entry_id)
            ids.append(event_id)
            if not fields:  # deleted from the stream while pending
                continue
            try:
                values, passed = parse_event(fields, path.fields, keys)
                path.check({k: [v] for k, v in values.items()})
            except RequestValidationError as exc:
                dead.append((event_id, fields, _reason(exc)))
                continue
            except (ValueError, TypeError) as exc:
                dead.append((event_id, fields, str(exc)))
                continue
            good.append(_Event(event_id, fields, values, passed))
        out: list[dict[str, Any]] = []
        if good:
            out = await self.score(good, dead)
        await self.write(out, dead, len(entries))
        await self.client(self.source).xack(self.source.stream, self.group, *ids)
        self.stats.read += len(entries)
        self.stats.predicted += len(out)
        self.stats.dead += len(dead)
        self.stats.batches += 1

    async def score(self, good: list[_Event],
                    dead: list[tuple[str, dict[Any, Any], str]]) -> list[dict[str, Any]]:
        """One ``infer`` for the batch; if the model fails on it, one per event, so only
        the events it fails on are dead-lettered."""
        try:
            return await self._infer(good)
        except _INFRASTRUCTURE:
            raise
        except Exception as exc:
            if len(good) == 1:
                dead.append((good[0].event_id, good[0].fields, _reason(exc)))
                return []
        out: list[dict[str, Any]] = []
        for event in good:
            try:
                out += await self._infer([event])
            except _INFRASTRUCTURE:
                raise
            except Exception as exc:
                dead.append((event.event_id, event.fields, _reason(exc)))
        return out

    async def _infer(self, good: list[_Event]) -> list[dict[str, Any]]:
        names = list(dict.fromkeys(k for event in good for k in event.values))
        columns = {n: [event.values.get(n) for event in good] for n in names}
        inference = await self.host.infer(self.name, columns, request_id=new_request_id())
        self.stats.versions.add(inference.version)
        [prediction] = inference.outputs.values()
        out = []
        for event, value in zip(good, np.asarray(prediction), strict=True):
            out.append({**event.passed, "event_id": event.event_id,
                        "request_id": inference.request_id, "model": inference.model,
                        "version": inference.version, "prediction": json.dumps(value.tolist())})
        return out

    async def write(self, out: list[dict[str, Any]], dead: list[tuple[str, dict[Any, Any], str]],
                    read: int) -> None:
        import redis

        try:
            if out:
                pipe = self.client(self.sink).pipeline(transaction=False)
                for entry in out:
                    pipe.xadd(self.sink.stream, entry)
                await pipe.execute()
            if dead:
                pipe = self.client(self.dead).pipeline(transaction=False)
                for event_id, fields, reason in dead:
                    pipe.xadd(self.dead.stream, {**fields, "reason": reason,
                                                 "event_id": event_id})
                await pipe.execute()
        except redis.RedisError as exc:
            raise ServingError(f"Cannot write predictions to {self.sink} (or dead letters to "
                               f"{self.dead}): {exc}; the {read} events of this batch stay "
                               "unacknowledged and are read again on restart.") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RequestValidationError) and exc.errors:
        return "; ".join(f"{e['field']}: {e['problem']}" for e in exc.errors[:5])
    text = " ".join(str(exc).split())
    return text if isinstance(exc, ServingError) else f"{type(exc).__name__}: {text}"


async def _run(consumer: _Consumer, *, batch_size: int, block_ms: int, max_events: int | None,
               idle_exit: bool, stop: threading.Event | None) -> None:
    await consumer.create_group()
    await consumer.reclaim()
    client, stream = consumer.client(consumer.source), consumer.source.stream
    cursor = "0"  # first this consumer's pending events: read before, never acknowledged
    last_claim = time.monotonic()
    stats = consumer.stats
    while not (stop is not None and stop.is_set()):
        if max_events is not None and stats.read >= max_events:
            break
        if time.monotonic() - last_claim > max(consumer.claim_idle_ms, 5000) / 1000:
            last_claim = time.monotonic()
            if await consumer.reclaim():
                cursor = "0"
        count = batch_size if max_events is None else min(batch_size, max_events - stats.read)
        reply = await client.xreadgroup(consumer.group, consumer.consumer, {stream: cursor},
                                        count=count, block=None if cursor == "0" else block_ms)
        entries = reply[0][1] if reply else []
        if not entries:
            if cursor == "0":
                cursor = ">"
                continue
            if idle_exit:
                break
            continue
        await consumer.handle(entries)


def consume(
    ref: str,
    source_url: str,
    sink_url: str,
    *,
    workspace: WorkspaceArg = None,
    group: str = "mlwright",
    consumer: str | None = None,
    batch_size: int = 256,
    block_ms: int = 1000,
    max_events: int | None = None,
    idle_exit: bool = False,
    dead_letter: str | None = None,
    keys: Sequence[str] | None = None,
    claim_idle_ms: int = 60_000,
    settings: ServeSettings | None = None,
    stop: threading.Event | None = None,
) -> StreamStats:
    """Score events from ``source_url`` with model ``ref`` into ``sink_url`` until ``stop``
    is set, ``max_events`` were read, or (``idle_exit``) nothing new came for ``block_ms``.

    ``dead_letter`` is a stream URL or a stream key on the source's server (default
    ``SOURCE_STREAM:dead``). ``consumer`` names this consumer in ``group`` (default
    ``HOST-PID``): restart under the same name to re-read its unacknowledged events first.
    """
    if batch_size < 1:
        raise ServingError(f"batch_size must be at least 1, got {batch_size}.")
    try:
        import redis
    except ImportError:
        raise ServingError("Streaming inference needs the redis extra: pip install "
                           "'mlwright[redis]'.") from None
    source = StreamAddress.parse(source_url, "source")
    sink = StreamAddress.parse(sink_url, "sink")
    if dead_letter is None:
        dead = StreamAddress(source.url, f"{source.stream}:dead")
    elif "://" in dead_letter:
        dead = StreamAddress.parse(dead_letter, "dead-letter")
    else:
        dead = StreamAddress(source.url, dead_letter)
    if (source.url, source.stream) in ((sink.url, sink.stream), (dead.url, dead.stream)):
        raise ServingError(f"The sink and dead-letter streams must differ from the source "
                           f"{source}.")
    name = parse_model_ref(ref)[0]
    consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
    worker = re.sub(r"[^A-Za-z0-9_.-]", "-", consumer)[:64].lstrip("-_.") or "stream"
    settings = settings or ServeSettings(max_request_rows=max(batch_size, 10_000),
                                         max_batch_rows=max(batch_size, 256))
    ws = as_workspace(workspace)
    host = ModelHost(ws, [ref], settings=settings, worker_id=worker)

    async def main() -> StreamStats:
        await host.start()
        state = _Consumer(host, name, source, sink, dead, group, consumer, keys, claim_idle_ms)
        try:
            await _run(state, batch_size=batch_size, block_ms=block_ms, max_events=max_events,
                       idle_exit=idle_exit, stop=stop)
        finally:
            await state.close()
            await host.stop()
        return state.stats

    try:
        return asyncio.run(main())
    except redis.ConnectionError as exc:
        raise ServingError(f"Redis is unreachable for {source} or {sink} ({exc}); start it or "
                           "fix the stream URL.") from None
    except redis.ResponseError as exc:
        raise ServingError(f"Redis refused a command on {source}: {exc}.") from None
    finally:
        if ws is not workspace:  # opened here from a folder
            ws.close()
