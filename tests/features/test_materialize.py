"""Materialization into the online store (SQLite and Redis): newest row per entity, agreement
with historical retrieval, TTL, incremental watermarks, newer-wins, batching, workers and
failures (watermarks on SQLite and PostgreSQL)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import select

from mlwright.errors import FeatureError, OnlineStoreError
from mlwright.features import (
    apply_repository,
    get_historical_features,
    materialize,
    online_reader,
)
from mlwright.features.materialize import store_id
from mlwright.features.online import SqliteOnlineStore, open_online_store
from mlwright.store import FeatureMaterialization, FeatureWatermark, list_events
from mlwright.workspace import Workspace, open_workspace

from .conftest import ONLINE_STORES
from .support import entities, table, utc, workspace_context, write_parquet, write_repo

FEATURES = ["user_stats:clicks", "user_stats:country", "user_stats:seen", "user_stats:active",
            "user_stats:visits"]
STATS = """
user = Entity("user", join_keys={"user_id": "int64"})
user_stats = FeatureView(
    "user_stats", entities=[user], source=ParquetSource("data"),
    timestamp_field="event_timestamp", created_timestamp_field="created",
    features=[Field("clicks", "float64"), Field("country", "string"), Field("seen", "timestamp"),
              Field("active", "bool"), Field("visits", "int64")],
    ttl=TTL)
"""


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def rows(users: list[int], times: list[datetime], clicks: list[float],
         created: list[datetime] | None = None) -> pa.Table:
    n = len(users)
    return table(user_id=pa.array(users, pa.int64()), event_timestamp=times,
                 created=created or [t + timedelta(seconds=1) for t in times],
                 clicks=pa.array(clicks, pa.float64()),
                 country=[f"c{int(c)}" for c in clicks], seen=[t - timedelta(hours=1) for t in times],
                 active=[c > 2 for c in clicks], visits=pa.array([int(c) * 10 for c in clicks],
                                                                 pa.int64()) if n else [])


def stats_repo(ws: Workspace, data: pa.Table, *, ttl: str = "timedelta(days=7)",
               file: str = "part-0.parquet") -> Path:
    repo = write_repo(ws.root.parent / "repo", STATS.replace("TTL", ttl))
    write_parquet(repo / "data" / file, data)
    apply_repository(repo, workspace=ws)
    return repo


def online(ws: Workspace, users: list[int], features: list[str] | None = None) -> Any:
    with online_reader(features or FEATURES, workspace=ws) as reader:
        return reader.get({"user_id": users})


def runs(ws: Workspace) -> list[tuple[str, int, int, int]]:
    with ws.db.session() as session:
        found = session.execute(select(FeatureMaterialization)
                                .order_by(FeatureMaterialization.id)).scalars()
        return [(r.status, r.start_us, r.end_us, r.rows) for r in found]


def watermark(ws: Workspace) -> int | None:
    with ws.db.session() as session:
        row = session.execute(select(FeatureWatermark)).scalar_one_or_none()
        return None if row is None else row.watermark_us


def micros(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


@pytest.fixture(params=ONLINE_STORES)
def db_online_ws(request: pytest.FixtureRequest, tmp_path: Path,
                 database_url: str) -> Iterator[Workspace]:
    """Every metadata database with every online store."""
    with workspace_context(tmp_path / "ws", metadata_url=database_url,
                           online=request.param) as workspace:
        yield workspace


# -- what is written ------------------------------------------------------------------------


def test_materialize_writes_the_newest_row_per_entity_in_range(online_ws: Workspace) -> None:
    t = now()
    start, end = t - timedelta(days=5), t - timedelta(hours=1)
    data = rows(
        [1, 1, 1, 1, 2, 2, 3, 4],
        [t - timedelta(days=3), t - timedelta(days=1), t - timedelta(days=1), end,
         start, end + timedelta(minutes=1), start - timedelta(microseconds=1), end - timedelta(days=1)],
        [1.0, 2.0, 20.0, 99.0, 5.0, 98.0, 97.0, 4.0],
        created=[t - timedelta(days=3), t - timedelta(days=1), t, t, t, t, t, t])
    stats_repo(online_ws, data)

    [result] = materialize(start, end, workspace=online_ws)

    assert (result.view, result.version, result.rows) == ("user_stats", 1, 3)
    assert result.store == store_id(online_ws)
    got = online(online_ws, [1, 2, 3, 4, 5])
    # 1: the tie on event time goes to the newer created row; the row at `end` is excluded.
    # 2: the row at `start` is included, the one after `end` is not. 3: before start.
    assert got.values["clicks"] == [20.0, 5.0, None, 4.0, None]
    assert got.values["country"] == ["c20", "c5", None, "c4", None]
    assert got.statuses["clicks"] == ["present", "present", "missing", "present", "missing"]
    assert runs(online_ws) == [("completed", micros(start), micros(end), 3)]
    assert watermark(online_ws) == micros(end)


def test_online_values_equal_historical_retrieval_as_of_now(online_ws: Workspace) -> None:
    t = now()
    users = [u for u in range(1, 41) for _ in range(3)]
    times = [t - timedelta(hours=h) for h in range(1, len(users) + 1)]
    clicks = [float(i % 7) + 0.25 for i in range(len(users))]
    data = rows(users, times, clicks)
    stats_repo(online_ws, data)
    materialize(t - timedelta(days=30), t + timedelta(seconds=1), workspace=online_ws)

    asked = list(range(45, 0, -1))
    offline = get_historical_features(entities(asked, [t + timedelta(seconds=1)] * len(asked)),
                                      FEATURES, workspace=online_ws).to_arrow()
    got = online(online_ws, asked)
    for ref in FEATURES:
        column = ref.split(":")[1]
        assert got.values[column] == offline.column(column).to_pylist(), column
    assert got.statuses["clicks"] == ["missing"] * 5 + ["present"] * 40
    assert got.keys == {"user_id": asked}


def test_ttl_expired_rows_read_as_expired_with_null_values(online_ws: Workspace) -> None:
    t = now()
    stats_repo(online_ws, rows([1, 2], [t - timedelta(hours=2), t - timedelta(hours=30)],
                               [1.0, 2.0]), ttl="timedelta(days=1)")
    materialize(t - timedelta(days=3), t, workspace=online_ws)
    got = online(online_ws, [2, 1, 3])
    for feature in ("clicks", "country", "seen", "active", "visits"):
        assert got.values[feature][0] is None and got.values[feature][2] is None
        assert got.statuses[feature] == ["expired", "present", "missing"]
    assert got.values["clicks"][1] == 1.0
    assert got.values["seen"][1] == t - timedelta(hours=3)


COMPOSITE = """
user_country = Entity("user_country", join_keys={"user_id": "int64", "country": "string"})
spend = FeatureView("spend", entities=[user_country], source=ParquetSource("spend.parquet"),
                    timestamp_field="event_timestamp", features=[Field("spend", "float32")])
archive = FeatureView("archive", entities=[user_country], source=ParquetSource("spend.parquet"),
                      timestamp_field="event_timestamp", features=[Field("spend", "float32")],
                      online=False)
"""


def test_composite_keys_online_equal_historical(online_ws: Workspace) -> None:
    t = now()
    repo = write_repo(online_ws.root.parent / "repo", COMPOSITE)
    write_parquet(repo / "spend.parquet", table(
        user_id=[1, 1, 1, 2, 2], country=["fr", "fr", "de", "fr", "x\u00e9 y"],
        event_timestamp=[t - timedelta(hours=h) for h in (5, 1, 2, 3, 4)],
        spend=pa.array([0.1, 0.2, 0.3, 0.4, 0.5], pa.float32())))
    apply_repository(repo, workspace=online_ws)
    [result] = materialize(t - timedelta(days=1), t, workspace=online_ws)  # not "archive"
    assert (result.view, result.rows) == ("spend", 4)
    users, countries = [1, 1, 2, 2, 2], ["fr", "de", "fr", "x\u00e9 y", "de"]
    with online_reader(["spend:spend"], workspace=online_ws) as reader:
        got = reader.get({"user_id": users, "country": countries})
    offline = get_historical_features(
        table(user_id=pa.array(users, pa.int64()), country=countries, event_timestamp=[t] * 5),
        ["spend:spend"], workspace=online_ws).to_arrow()
    assert offline.schema.field("spend").type == pa.float32()
    assert got.values["spend"] == offline.column("spend").to_pylist()
    assert got.values["spend"][:2] == [pytest.approx(0.2), pytest.approx(0.3)]
    assert got.statuses["spend"] == ["present"] * 4 + ["missing"]
    with online_reader(["archive:spend"], workspace=online_ws) as reader:
        assert reader.get({"user_id": [1], "country": ["fr"]}).statuses["spend"] == ["missing"]


# -- incremental runs and watermarks (SQLite and PostgreSQL metadata) ------------------------


def test_incremental_runs_continue_from_the_watermark(db_online_ws: Workspace) -> None:
    ws = db_online_ws
    t0, t1, t2 = utc(2024, 1, 1), utc(2024, 2, 1), utc(2024, 3, 1)
    repo = stats_repo(ws, rows([1, 2], [t0 + timedelta(days=1), t0 + timedelta(days=2)],
                               [1.0, 2.0]), ttl="None")

    first = materialize(None, t1, workspace=ws)
    assert [(r.start, r.rows) for r in first] == [(datetime(1970, 1, 1, tzinfo=UTC), 2)]
    assert watermark(ws) == micros(t1)
    assert online(ws, [1, 2, 3]).values["clicks"] == [1.0, 2.0, None]

    nothing_new = materialize(None, t2, workspace=ws)  # nothing after the watermark yet
    assert [(r.start, r.rows) for r in nothing_new] == [(t1, 0)]
    assert watermark(ws) == micros(t2)

    # New rows arrive in a second file: one inside the next window, one late (before the
    # watermark, so an incremental run skips it), one after the next end.
    write_parquet(repo / "data" / "part-1.parquet", rows(
        [1, 3, 2, 1], [t2 + timedelta(days=1), t2 + timedelta(days=2), t1 - timedelta(days=1),
                       t2 + timedelta(days=40)], [10.0, 30.0, 25.0, 99.0]))
    t3 = t2 + timedelta(days=30)
    third = materialize(None, t3, workspace=ws)
    assert [(r.start, r.end, r.rows) for r in third] == [(t2, t3, 2)]
    assert online(ws, [1, 2, 3]).values["clicks"] == [10.0, 2.0, 30.0]
    assert watermark(ws) == micros(t3)
    assert runs(ws) == [("completed", 0, micros(t1), 2),
                        ("completed", micros(t1), micros(t2), 0),
                        ("completed", micros(t2), micros(t3), 2)]
    with ws.db.session() as session:
        events = list_events(session, action="feature.view.materialized")
        assert [e.details["rows"] for e in events] == [2, 0, 2]


def test_a_failed_run_leaves_the_watermark_and_records_the_failure(db_online_ws: Workspace) -> None:
    ws = db_online_ws
    t0, t1 = utc(2024, 1, 1), utc(2024, 2, 1)
    repo = stats_repo(ws, rows([1], [t0 + timedelta(days=1)], [1.0]), ttl="None")
    materialize(None, t1, workspace=ws)
    for file in (repo / "data").iterdir():
        file.unlink()
    (repo / "data").rmdir()

    with pytest.raises(FeatureError, match="data"):
        materialize(None, utc(2024, 3, 1), workspace=ws)

    assert watermark(ws) == micros(t1)
    with ws.db.session() as session:
        failed = session.execute(select(FeatureMaterialization).where(
            FeatureMaterialization.status == "failed")).scalar_one()
        assert (failed.start_us, failed.end_us, failed.rows) == (micros(t1), micros(utc(2024, 3, 1)), 0)
        assert failed.error is not None and "FeatureError" in failed.error
        assert failed.finished_at is not None
    assert online(ws, [1]).values["clicks"] == [1.0]  # what was there stays


def test_an_unreachable_redis_fails_the_run_and_claims_nothing(ws: Workspace) -> None:
    t = now()
    stats_repo(ws, rows([1], [t - timedelta(hours=1)], [1.0]))
    broken = open_workspace(ws.root, overrides={"online_url": "redis://127.0.0.1:1/0"})
    try:
        with pytest.raises(OnlineStoreError):
            materialize(t - timedelta(days=1), t, workspace=broken)
        assert runs(broken)[0][0] == "failed"
        with broken.db.session() as session:
            assert session.execute(select(FeatureWatermark)).first() is None
            assert list_events(session, action="feature.view.materialized") == []
    finally:
        broken.close()


# -- newer wins, batches, workers -----------------------------------------------------------


def test_rematerializing_an_older_range_does_not_overwrite_newer_values(online_ws: Workspace) -> None:
    t = now()
    stats_repo(online_ws, rows([1, 1, 2], [t - timedelta(days=4), t - timedelta(days=1),
                                           t - timedelta(days=4)], [1.0, 2.0, 3.0]))
    materialize(t - timedelta(days=2), t, workspace=online_ws)
    materialize(t - timedelta(days=6), t - timedelta(days=2), workspace=online_ws)  # older
    got = online(online_ws, [1, 2])
    assert got.values["clicks"] == [2.0, 3.0]
    assert watermark(online_ws) == micros(t)  # an older range does not move it back
    materialize(t - timedelta(days=6), t, workspace=online_ws)  # idempotent re-run
    assert online(online_ws, [1, 2]).values == got.values


def _many(n: int) -> tuple[pa.Table, datetime]:
    t = now()
    users = [u for u in range(n) for _ in range(2)]
    times = [t - timedelta(minutes=i + 1) for i in range(len(users))]
    return rows(users, times, [float(i) for i in range(len(users))]), t


def test_small_batches_give_the_same_result(online_ws: Workspace) -> None:
    data, t = _many(100)
    stats_repo(online_ws, data)
    [result] = materialize(t - timedelta(days=1), t, workspace=online_ws, batch_rows=7)
    assert result.rows == 100
    users = list(range(100))
    offline = get_historical_features(entities(users, [t] * 100), FEATURES,
                                      workspace=online_ws).to_arrow()
    got = online(online_ws, users)
    assert got.values["clicks"] == offline.column("clicks").to_pylist()
    assert got.values["clicks"] == [float(2 * u) for u in users]  # the newer of each pair


def test_two_workers_give_the_same_result_as_one(online_ws: Workspace) -> None:
    # Create the online store first: two workers creating a fresh SQLite file race (see
    # test_opening_a_fresh_sqlite_online_store_waits_for_a_concurrent_writer).
    open_online_store(online_ws.online_url, prefix=online_ws.settings.online_prefix).close()
    data, t = _many(60)
    stats_repo(online_ws, data)
    users = list(range(60))
    [two] = materialize(t - timedelta(days=1), t, workspace=online_ws, workers=2)
    assert two.rows == 60
    assert watermark(online_ws) == micros(t)
    parallel = online(online_ws, users).values
    assert parallel["clicks"] == [float(2 * u) for u in users]
    # one worker over the same range rewrites the very same rows
    [one] = materialize(t - timedelta(days=1), t, workspace=online_ws, workers=1)
    assert one.rows == 60
    assert online(online_ws, users).values == parallel
    offline = get_historical_features(entities(users, [t] * 60), FEATURES,
                                      workspace=online_ws).to_arrow()
    for ref in FEATURES:
        column = ref.split(":")[1]
        assert parallel[column] == offline.column(column).to_pylist(), column


def test_opening_a_fresh_sqlite_online_store_waits_for_a_concurrent_writer(tmp_path: Path) -> None:
    path = tmp_path / "online.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # what a second opener holds while switching to WAL
        release = threading.Timer(0.2, lambda: other.execute("COMMIT"))
        release.start()
        try:
            SqliteOnlineStore(path, timeout=5.0).close()  # should wait its timeout, not fail
        finally:
            release.join()
    finally:
        other.close()


# -- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(("start", "end", "named"), [
    (datetime(2024, 1, 1), utc(2024, 2, 1), "start"),
    (utc(2024, 1, 1), datetime(2024, 2, 1), "end"),
    (utc(2024, 2, 1), utc(2024, 2, 1), "Start"),
    (utc(2024, 3, 1), utc(2024, 2, 1), "Start"),
])
def test_bad_ranges_are_refused(ws: Workspace, start: datetime, end: datetime,
                                named: str) -> None:
    stats_repo(ws, rows([1], [utc(2024, 1, 10)], [1.0]))
    with pytest.raises(FeatureError, match=named) as exc:
        materialize(start, end, workspace=ws)
    assert "\n" not in str(exc.value)
    assert runs(ws) == [] and watermark(ws) is None


def test_unknown_view_and_empty_catalog_are_refused(ws: Workspace) -> None:
    with pytest.raises(FeatureError, match="apply"):
        materialize(utc(2024, 1, 1), utc(2024, 2, 1), workspace=ws)
    stats_repo(ws, rows([1], [utc(2024, 1, 10)], [1.0]))
    with pytest.raises(FeatureError, match="'nope'"):
        materialize(utc(2024, 1, 1), utc(2024, 2, 1), views=["nope"], workspace=ws)
