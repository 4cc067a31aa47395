"""The Redis Stream consumer: events pushed to a view online and offline, acknowledged only
after the push, bad events dead-lettered, and nothing lost when the consumer is killed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlwright.features import apply_repository, get_historical_features, online_reader
from mlwright.features.streaming import consume_stream
from mlwright.workspace import Workspace

from .support import REDIS, entities, redis_or_skip, table, utc, write_parquet

REPO = """
user = Entity("user", join_keys={"user_id": "int64"})
clicks = FeatureView("clicks", entities=[user], source=ParquetSource("../data/clicks.parquet"),
                     timestamp_field="event_timestamp", features=[Field("clicks", "float64")])
"""


@pytest.fixture
def stream() -> Iterator[str]:
    redis_or_skip()
    import redis

    name = f"mlwright-test-stream-{uuid.uuid4().hex[:12]}"
    yield name
    with redis.Redis.from_url(REDIS) as client:
        client.delete(name, f"{name}:dead")


@pytest.fixture
def clicks_ws(online_ws: Workspace, make_repo: Callable[..., Path], tmp_path: Path) -> Workspace:
    write_parquet(tmp_path / "data" / "clicks.parquet",
                  table(user_id=[1], event_timestamp=[utc(2026, 1, 1)], clicks=[1.0]))
    apply_repository(make_repo(REPO), workspace=online_ws)
    return online_ws


def _send(stream: str, events: list[dict[str, str]]) -> None:
    import redis

    with redis.Redis.from_url(REDIS) as client:
        for event in events:
            client.xadd(stream, event)  # type: ignore[arg-type]


def test_events_are_pushed_online_and_offline(clicks_ws: Workspace, stream: str) -> None:
    _send(stream, [
        {"user_id": "7", "event_timestamp": "2026-02-01T10:00:00+00:00", "clicks": "3.5"},
        {"data": json.dumps({"user_id": 8, "event_timestamp": 1769940000000000, "clicks": 2})},
    ])
    stats = consume_stream("clicks", REDIS, stream, workspace=clicks_ws, idle_exit=True,
                           block_ms=200)
    assert stats.to_dict() == {"read": 2, "pushed": 2, "dead": 0}
    with online_reader(["clicks:clicks"], workspace=clicks_ws) as reader:
        assert reader.get({"user_id": [7, 8]}).values["clicks"] == [3.5, 2.0]
    offline = get_historical_features(entities([7, 8], [utc(2026, 3, 1)] * 2), ["clicks:clicks"],
                                      workspace=clicks_ws).to_arrow()
    assert offline.column("clicks").to_pylist() == [3.5, 2.0]


def test_bad_events_go_to_the_dead_letter_stream(clicks_ws: Workspace, stream: str) -> None:
    import redis

    _send(stream, [
        {"user_id": "1", "event_timestamp": "2026-02-01T10:00:00+00:00", "clicks": "x"},
        {"user_id": "1", "event_timestamp": "2026-02-01T10:00:00", "clicks": "1"},  # naive
        {"user_id": "1", "event_timestamp": "2026-02-01T10:00:00+00:00", "colour": "red"},
        {"user_id": "2", "event_timestamp": "2026-02-01T10:00:00+00:00", "clicks": "4"},
    ])
    stats = consume_stream("clicks", REDIS, stream, workspace=clicks_ws, idle_exit=True,
                           block_ms=200)
    assert stats.to_dict() == {"read": 4, "pushed": 1, "dead": 3}
    with redis.Redis.from_url(REDIS, decode_responses=True) as client:
        dead = [fields for _, fields in client.xrange(f"{stream}:dead")]
        pending = client.xpending(stream, "mlwright-features")["pending"]
    reasons = [d["reason"] for d in dead]
    assert "could not convert string to float" in reasons[0]
    assert "no time zone" in reasons[1]
    assert "unknown field(s) colour" in reasons[2]
    assert pending == 0  # dead-lettered events are acknowledged too


CONSUMER = """
import sys
from mlwright.features.streaming import consume_stream
consume_stream("clicks", sys.argv[1], sys.argv[2], workspace=sys.argv[3], batch=50,
               consumer="worker-1", block_ms=200)
"""


def test_a_killed_consumer_loses_no_event(clicks_ws: Workspace, stream: str,
                                          tmp_path: Path) -> None:
    events = [{"user_id": str(i), "event_timestamp": "2026-02-01T10:00:00+00:00",
               "clicks": str(float(i))} for i in range(3000)]
    _send(stream, events)
    script = tmp_path / "consumer.py"
    script.write_text(CONSUMER)
    command = [sys.executable, str(script), REDIS, stream, str(clicks_ws.root)]
    process = subprocess.Popen(command)
    try:
        import redis

        with redis.Redis.from_url(REDIS) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # wait until it is part-way through
                groups = client.xinfo_groups(stream)
                if groups and groups[0]["entries-read"] and groups[0]["entries-read"] >= 200:
                    break
                time.sleep(0.01)
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            group = client.xinfo_groups(stream)[0]
        # Killed part-way: events were left unread, or read and never acknowledged.
        assert group["entries-read"] < 3000 or group["pending"] > 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # The same consumer name restarts: first its pending (read, not acknowledged) events.
    consume_stream("clicks", REDIS, stream, workspace=clicks_ws, consumer="worker-1",
                   idle_exit=True, block_ms=300)
    ids = list(range(3000))
    with online_reader(["clicks:clicks"], workspace=clicks_ws) as reader:
        result = reader.get({"user_id": ids})
    assert result.values["clicks"] == [float(i) for i in ids]
    offline = get_historical_features(entities(ids, [utc(2026, 3, 1)] * 3000), ["clicks:clicks"],
                                      workspace=clicks_ws).to_arrow()
    assert offline.column("clicks").to_pylist() == [float(i) for i in ids]


def test_redis_unreachable_is_a_clear_error(clicks_ws: Workspace) -> None:
    from mlwright.errors import OnlineStoreError

    with pytest.raises(OnlineStoreError, match="unreachable"):
        consume_stream("clicks", "redis://127.0.0.1:1/0", "s", workspace=clicks_ws,
                       idle_exit=True)
