"""Streaming inference against the real Redis: events scored into the sink stream through the
server's path, bad events dead-lettered with the reason, acknowledgement only after the
write, and no event lost when the consumer is killed or dies for good."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LinearRegression

from mlwright.errors import ServingError
from mlwright.features import apply_repository, materialize
from mlwright.registry.versions import load_model, register_model
from mlwright.serving.stream import StreamAddress, consume
from mlwright.workspace import Workspace

REDIS = os.environ.get("MLWRIGHT_TEST_REDIS", "redis://127.0.0.1:6379/0")


@dataclass(frozen=True)
class Streams:
    source: str
    sink: str
    dead: str

    def url(self, stream: str) -> str:
        return f"{REDIS.rstrip('/')}/{stream}"


@pytest.fixture
def streams() -> Iterator[Streams]:
    redis = pytest.importorskip("redis")
    try:
        with redis.Redis.from_url(REDIS, socket_connect_timeout=2) as client:
            client.ping()
    except redis.ConnectionError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not usable at {REDIS}: {exc}")
        pytest.skip(f"Redis is not usable at {REDIS}: {exc}")
    name = f"mlwright-test-predict-{uuid.uuid4().hex[:12]}"
    yield Streams(f"{name}:in", f"{name}:out", f"{name}:in:dead")
    with redis.Redis.from_url(REDIS) as client:
        client.delete(f"{name}:in", f"{name}:out", f"{name}:in:dead")


def register_linear(ws: Workspace) -> str:
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    train["y"] = train["a"] + 2 * train["b"]
    model = LinearRegression().fit(train[["a", "b"]], train["y"])
    return register_model("lin", model, training_data=train, label="y", workspace=ws).ref


def client() -> Any:
    import redis

    return redis.Redis.from_url(REDIS, decode_responses=True)


def send(stream: str, events: list[dict[str, str]]) -> list[str]:
    with client() as c:
        return [c.xadd(stream, event) for event in events]


def entries(stream: str) -> list[dict[str, str]]:
    with client() as c:
        return [fields for _, fields in c.xrange(stream)]


def pending(stream: str, group: str = "mlwright") -> int:
    with client() as c:
        return int(c.xpending(stream, group)["pending"])


def expected(ws: Workspace, ref: str, a: list[float], b: list[float]) -> np.ndarray:
    return np.asarray(load_model(ref, workspace=ws).predict(pd.DataFrame({"a": a, "b": b})))


def test_events_are_scored_into_the_sink_and_logged(ws: Workspace, streams: Streams) -> None:
    ref = register_linear(ws)
    ids = send(streams.source, [
        {"a": "0.5", "b": "1.25", "order": "o-1"},
        {"data": json.dumps({"a": -1, "b": 2.5, "order": "o-2"})},
    ])
    stats = consume("lin@1", streams.url(streams.source), streams.url(streams.sink),
                    workspace=ws, idle_exit=True, block_ms=200, keys=["order"])
    assert stats.to_dict() == {"read": 2, "predicted": 2, "dead": 0, "reclaimed": 0,
                               "batches": 1, "versions": [1]}
    out = entries(streams.sink)
    assert [e["event_id"] for e in out] == ids
    assert [e["order"] for e in out] == ["o-1", "o-2"]
    assert {(e["model"], e["version"]) for e in out} == {("lin", "1")}
    assert len({e["request_id"] for e in out}) == 1  # one micro-batch, one request
    predictions = [json.loads(e["prediction"]) for e in out]
    np.testing.assert_allclose(predictions, expected(ws, ref, [0.5, -1], [1.25, 2.5]),
                               rtol=1e-12)
    assert pending(streams.source) == 0
    logged = [pq.read_table(f) for f in Path(ws.predictions_dir).rglob("*.parquet")]
    assert sum(t.num_rows for t in logged) == 2
    assert {r for t in logged for r in t.column("request_id").to_pylist()} == \
        {out[0]["request_id"]}


def test_bad_events_go_to_the_dead_letter_stream_with_the_reason(ws: Workspace,
                                                                 streams: Streams) -> None:
    ref = register_linear(ws)
    ids = send(streams.source, [
        {"a": "x", "b": "1"},
        {"a": "1"},
        {"a": "1", "b": "2", "colour": "red"},
        {"data": "{not json"},
        {"data": json.dumps({"a": "1", "b": 2})},
        {"a": "1", "b": "inf"},
        {"a": "1", "b": ""},  # null passes the signature (nullable), the model refuses it
        {"a": "2", "b": "3"},
    ])
    stats = consume(ref, streams.url(streams.source), streams.url(streams.sink), workspace=ws,
                    idle_exit=True, block_ms=200)
    assert (stats.read, stats.predicted, stats.dead) == (8, 1, 7)
    dead = entries(streams.dead)
    assert [d["event_id"] for d in dead] == ids[:7]
    reasons = [d["reason"] for d in dead]
    assert reasons[0] == "a: expected a number, got 'x'"
    assert reasons[1] == "b: missing"
    assert reasons[2] == "colour: unexpected field (not in the signature)"
    assert reasons[3].startswith("'data' is not JSON")
    assert reasons[4] == "a: expected a number, got str '1'"
    assert reasons[5] == "b: infinity is not allowed"
    assert reasons[6].startswith("ValueError: Input X contains NaN")
    assert dead[2]["colour"] == "red"  # the event's own fields come along
    [out] = entries(streams.sink)
    assert out["event_id"] == ids[7]
    assert json.loads(out["prediction"]) == pytest.approx(expected(ws, ref, [2], [3])[0])
    assert pending(streams.source) == 0  # dead-lettered events are acknowledged too


def test_nothing_is_acknowledged_until_the_predictions_are_written(ws: Workspace,
                                                                   streams: Streams) -> None:
    ref = register_linear(ws)
    send(streams.source, [{"a": str(i), "b": "1"} for i in range(10)])
    with client() as c:
        c.set(streams.sink, "not a stream")  # every XADD to the sink fails
    with pytest.raises(ServingError, match=r"Cannot write predictions to .*WRONGTYPE.* the 4 "
                                           r"events of this batch stay unacknowledged"):
        consume(ref, streams.url(streams.source), streams.url(streams.sink), workspace=ws,
                consumer="c1", batch_size=4, idle_exit=True, block_ms=200)
    assert pending(streams.source) == 4  # read, not acknowledged
    with client() as c:
        c.delete(streams.sink)
    stats = consume(ref, streams.url(streams.source), streams.url(streams.sink), workspace=ws,
                    consumer="c1", batch_size=4, idle_exit=True, block_ms=200)
    assert (stats.read, stats.predicted) == (10, 10)
    assert pending(streams.source) == 0
    predictions = [json.loads(e["prediction"]) for e in entries(streams.sink)]
    np.testing.assert_allclose(predictions, expected(ws, ref, list(range(10)), [1] * 10))


def test_a_dead_consumers_pending_events_are_claimed(ws: Workspace, streams: Streams) -> None:
    ref = register_linear(ws)
    ids = send(streams.source, [{"a": str(i), "b": "0"} for i in range(10)])
    with client() as c:
        c.xgroup_create(streams.source, "mlwright", id="0")
        c.xreadgroup("mlwright", "gone-for-good", {streams.source: ">"}, count=6)
    stats = consume(ref, streams.url(streams.source), streams.url(streams.sink), workspace=ws,
                    consumer="alive", claim_idle_ms=0, idle_exit=True, block_ms=200)
    assert (stats.read, stats.predicted, stats.reclaimed) == (10, 10, 6)
    assert sorted(e["event_id"] for e in entries(streams.sink)) == sorted(ids)
    assert pending(streams.source) == 0


CONSUMER = """
import sys
from mlwright.serving.stream import consume
consume(sys.argv[1], sys.argv[2], sys.argv[3], workspace=sys.argv[4], consumer="worker-1",
        batch_size=20, block_ms=200)
"""


def test_a_killed_consumer_loses_no_event(ws: Workspace, streams: Streams,
                                          tmp_path: Path) -> None:
    ref = register_linear(ws)
    n = 3000
    a = [float(i % 97) for i in range(n)]
    with client() as c:
        pipe = c.pipeline(transaction=False)
        for value in a:
            pipe.xadd(streams.source, {"a": str(value), "b": "1"})
        ids = pipe.execute()
    script = tmp_path / "consumer.py"
    script.write_text(CONSUMER)
    command = [sys.executable, str(script), ref, streams.url(streams.source),
               streams.url(streams.sink), str(ws.root)]
    process = subprocess.Popen(command)
    try:
        with client() as c:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # wait until it is part-way through
                if c.exists(streams.sink) and c.xlen(streams.sink) >= 300:
                    break
                time.sleep(0.005)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            [group] = c.xinfo_groups(streams.source)
            written = c.xlen(streams.sink)
        assert 300 <= written < n  # killed part-way
        assert group["entries-read"] < n or group["pending"] > 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stats = consume(ref, streams.url(streams.source), streams.url(streams.sink), workspace=ws,
                    consumer="worker-1", idle_exit=True, block_ms=300)
    assert stats.read == n - group["entries-read"] + group["pending"]
    out = entries(streams.sink)
    by_event = {e["event_id"]: json.loads(e["prediction"]) for e in out}  # duplicates allowed
    assert set(by_event) == set(ids)
    np.testing.assert_allclose([by_event[i] for i in ids], expected(ws, ref, a, [1.0] * n),
                               rtol=1e-12)
    assert pending(streams.source) == 0


REPO = """
from mlwright.features import Entity, FeatureService, FeatureView, Field, ParquetSource

user = Entity("user", join_keys={"user_id": "int64"})
stats = FeatureView("stats", entities=[user], source=ParquetSource("stats.parquet"),
                    timestamp_field="event_timestamp", features=[Field("clicks", "float64")])
svc = FeatureService("svc", features=["stats:clicks"])
"""


def test_a_feature_service_model_reads_online_features(ws: Workspace, streams: Streams,
                                                       tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "defs.py").write_text(textwrap.dedent(REPO))
    day = datetime(2026, 1, 1, tzinfo=UTC)
    pq.write_table(pa.table({"user_id": pa.array([1, 2, 3], pa.int64()),
                             "event_timestamp": pa.array([day] * 3, pa.timestamp("us", "UTC")),
                             "clicks": [10.0, 20.0, 30.0]}), repo / "stats.parquet")
    apply_repository(repo, workspace=ws)
    materialize(day - timedelta(days=1), day + timedelta(days=1), workspace=ws)
    rng = np.random.default_rng(1)
    train = pd.DataFrame({"clicks": rng.uniform(0, 50, 100), "x": rng.normal(size=100)})
    train["y"] = 3 * train["clicks"] - train["x"]
    model = LinearRegression().fit(train[["clicks", "x"]], train["y"])
    ref = register_model("fs", model, training_data=train, label="y", feature_service="svc",
                         workspace=ws).ref
    send(streams.source, [{"user_id": "3", "x": "1.5"}, {"user_id": "1", "x": "-2"},
                          {"x": "1"}])
    stats = consume(ref, streams.url(streams.source), streams.url(streams.sink), workspace=ws,
                    idle_exit=True, block_ms=200)
    assert (stats.predicted, stats.dead) == (2, 1)
    out = entries(streams.sink)
    assert [e["user_id"] for e in out] == ["3", "1"]  # the entity keys come along
    np.testing.assert_allclose(
        [json.loads(e["prediction"]) for e in out],
        model.predict(pd.DataFrame({"clicks": [30.0, 10.0], "x": [1.5, -2.0]})), rtol=1e-12)
    assert entries(streams.dead)[0]["reason"] == "user_id: missing"


def test_urls_and_an_unreachable_redis_are_clear_errors(ws: Workspace) -> None:
    assert StreamAddress.parse("redis://h:1/2/a/b") == StreamAddress("redis://h:1/2", "a/b")
    assert str(StreamAddress.parse("redis://u:secret@h:1/0/s")) == "redis://h:1/0/s"
    for bad in ("redis://h:1/s", "nats://h:4222/s", "redis://h:1/0/"):
        with pytest.raises(ServingError, match="is not redis://HOST:PORT/DB/STREAM"):
            StreamAddress.parse(bad)
    ref = register_linear(ws)
    with pytest.raises(ServingError, match="must differ from the source"):
        consume(ref, "redis://h:1/0/s", "redis://h:1/0/s", workspace=ws)
    with pytest.raises(ServingError, match="unreachable"):
        consume(ref, "redis://127.0.0.1:1/0/s", "redis://127.0.0.1:1/0/t", workspace=ws,
                idle_exit=True)
