"""Pushing rows (SQLite and Redis online stores): online at once, offline for historical
retrieval and materialization, newer-wins, and bad rows refused with nothing written."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from mlwright.errors import FeatureError
from mlwright.features import (
    apply_repository,
    get_historical_features,
    load_catalog,
    materialize,
    online_reader,
    push,
)
from mlwright.features.relations import pushed_folder
from mlwright.workspace import Workspace

from .support import entities, one_line, table, utc, write_parquet, write_repo

CLICKS = """
user = Entity("user", join_keys={"user_id": "int64"})
clicks = FeatureView("clicks", entities=[user], source=ParquetSource("clicks.parquet"),
                     timestamp_field="event_timestamp", created_timestamp_field="created",
                     features=[Field("clicks", "float64"), Field("last_page", "string"),
                               Field("seen", "timestamp")],
                     ttl=timedelta(days=30))
local = FeatureView("local", entities=[user], source=ParquetSource("local.parquet"),
                    timestamp_field="event_timestamp", timezone="Europe/Paris",
                    features=[Field("level", "int64")])
"""
FEATURES = ["clicks:clicks", "clicks:last_page", "clicks:seen"]


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def t() -> datetime:
    return now()


@pytest.fixture
def repo(online_ws: Workspace, t: datetime) -> Path:
    folder = write_repo(online_ws.root.parent / "repo", CLICKS)
    write_parquet(folder / "clicks.parquet", table(
        user_id=[1], event_timestamp=[t - timedelta(days=2)], created=[t - timedelta(days=2)],
        clicks=[1.0], last_page=["/home"], seen=[t - timedelta(days=3)]))
    write_parquet(folder / "local.parquet", pa.table({
        "user_id": pa.array([1], pa.int64()),
        "event_timestamp": pa.array([datetime(2024, 1, 1)], pa.timestamp("us")),
        "level": pa.array([1], pa.int64())}))
    apply_repository(folder, workspace=online_ws)
    return folder


def row(user: Any, moment: datetime, clicks: float, **extra: Any) -> dict[str, Any]:
    return {"user_id": user, "event_timestamp": moment, "clicks": clicks,
            "last_page": f"/p{int(clicks)}", "seen": moment - timedelta(minutes=5), **extra}


def online(ws: Workspace, users: list[int]) -> Any:
    with online_reader(FEATURES, workspace=ws) as reader:
        return reader.get({"user_id": users})


def offline(ws: Workspace, users: list[int], moment: datetime) -> pa.Table:
    return get_historical_features(entities(users, [moment] * len(users)), FEATURES,
                                   workspace=ws).to_arrow()


def pushed_files(ws: Workspace, view: str = "clicks") -> list[Path]:
    folder = Path(pushed_folder(ws, load_catalog(ws).view(view)))
    return sorted(folder.glob("*.parquet")) if folder.is_dir() else []


@pytest.mark.usefixtures("repo")
def test_pushed_rows_are_online_at_once_and_offline(online_ws: Workspace, t: datetime) -> None:
    pushed = push("clicks", [row(2, t - timedelta(minutes=1), 7.0),
                             row(3, t - timedelta(minutes=2), 8.0)], workspace=online_ws)
    assert pushed == 2
    got = online(online_ws, [2, 3, 1])
    assert got.values["clicks"] == [7.0, 8.0, None]  # 1 is only in the source: not materialized
    assert got.values["last_page"] == ["/p7", "/p8", None]
    assert got.values["seen"] == [t - timedelta(minutes=6), t - timedelta(minutes=7), None]
    assert got.statuses["clicks"] == ["present", "present", "missing"]

    result = offline(online_ws, [1, 2, 3], t)
    assert result.column("clicks").to_pylist() == [1.0, 7.0, 8.0]
    assert result.column("seen").to_pylist()[1] == t - timedelta(minutes=6)
    before = offline(online_ws, [2], t - timedelta(minutes=1, microseconds=1))
    assert before.column("clicks").to_pylist() == [None]
    assert len(pushed_files(online_ws)) == 1


@pytest.mark.usefixtures("repo")
def test_push_targets_write_only_where_asked(online_ws: Workspace, t: datetime) -> None:
    push("clicks", [row(2, t - timedelta(minutes=1), 7.0)], workspace=online_ws, to="online")
    push("clicks", [row(3, t - timedelta(minutes=1), 8.0)], workspace=online_ws, to="offline")
    assert online(online_ws, [2, 3]).values["clicks"] == [7.0, None]
    assert offline(online_ws, [2, 3], t).column("clicks").to_pylist() == [None, 8.0]
    # materialization reads the pushed offline rows with the source
    materialize(t - timedelta(days=5), t, workspace=online_ws)
    assert online(online_ws, [1, 2, 3]).values["clicks"] == [1.0, 7.0, 8.0]
    with pytest.raises(FeatureError, match="'everywhere'"):
        push("clicks", [row(4, t, 1.0)], workspace=online_ws, to="everywhere")  # type: ignore[arg-type]


@pytest.mark.usefixtures("repo")
def test_an_older_pushed_row_does_not_overwrite_a_newer_one(online_ws: Workspace,
                                                            t: datetime) -> None:
    push("clicks", [row(2, t - timedelta(minutes=1), 7.0)], workspace=online_ws)
    push("clicks", [row(2, t - timedelta(hours=1), 3.0)], workspace=online_ws)  # late, older
    assert online(online_ws, [2]).values["clicks"] == [7.0]
    assert offline(online_ws, [2], t).column("clicks").to_pylist() == [7.0]
    assert offline(online_ws, [2], t - timedelta(minutes=30)).column("clicks").to_pylist() == [3.0]
    # nor does materializing the older source row
    materialize(t - timedelta(days=5), t, workspace=online_ws)
    assert online(online_ws, [2]).values["clicks"] == [7.0]
    # an equal event time with a newer created time does replace it, online and offline
    push("clicks", [row(2, t - timedelta(minutes=1), 9.0, created=t + timedelta(hours=1))],
         workspace=online_ws)
    assert online(online_ws, [2]).values["clicks"] == [9.0]
    assert offline(online_ws, [2], t).column("clicks").to_pylist() == [9.0]


@pytest.mark.usefixtures("repo")
def test_pushing_arrow_and_pandas_tables(online_ws: Workspace, t: datetime) -> None:
    arrow = table(user_id=[5, 6], event_timestamp=[t, t], clicks=[1.5, 2.5],
                  last_page=["/a", "/b"], seen=[t, t])
    assert push("clicks", arrow, workspace=online_ws) == 2
    assert push("clicks", arrow.slice(0, 0), workspace=online_ws) == 0
    frame = arrow.to_pandas()
    frame["clicks"] = [3.5, 4.5]
    frame["event_timestamp"] = frame["event_timestamp"] + timedelta(seconds=1)
    assert push("clicks", frame, workspace=online_ws) == 2
    assert online(online_ws, [5, 6]).values["clicks"] == [3.5, 4.5]
    assert len(pushed_files(online_ws)) == 2  # the empty push wrote no file


BAD_ROWS: list[tuple[str, Callable[[datetime], list[dict[str, Any]]], str]] = [
    ("missing feature column",
     lambda t: [{k: v for k, v in row(9, t, 1.0).items() if k != "last_page"}], "last_page"),
    ("unknown column", lambda t: [row(9, t, 1.0, colour="red")], "colour"),
    ("naive timestamp", lambda t: [row(9, t.replace(tzinfo=None), 1.0)], "event_timestamp"),
    ("naive timestamp feature",
     lambda t: [row(9, t, 1.0) | {"seen": t.replace(tzinfo=None)}], "seen"),
    ("wrong key type", lambda t: [row("9", t, 1.0)], "user_id"),
    ("null key", lambda t: [row(9, t, 1.0), row(None, t, 2.0)], "user_id"),
    ("wrong feature type", lambda t: [row(9, t, 1.0) | {"clicks": "many"}], "clicks"),
    ("timestamp not a timestamp",
     lambda t: [row(9, t, 1.0) | {"event_timestamp": "2024-01-01T00:00:00Z"}],
     "event_timestamp"),
]


@pytest.mark.usefixtures("repo")
@pytest.mark.parametrize(("rows", "named"), [(r, n) for _, r, n in BAD_ROWS],
                         ids=[i for i, _, _ in BAD_ROWS])
def test_bad_rows_are_refused_and_nothing_is_written(
        online_ws: Workspace, t: datetime, rows: Callable[[datetime], list[dict[str, Any]]],
        named: str) -> None:
    with pytest.raises(FeatureError) as exc:
        push("clicks", rows(t), workspace=online_ws)
    assert named in one_line(exc)
    assert online(online_ws, [9]).statuses["clicks"] == ["missing"]
    assert pushed_files(online_ws) == []
    assert offline(online_ws, [9], t).column("clicks").to_pylist() == [None]


def test_pushing_to_an_unknown_view_is_refused(online_ws: Workspace, repo: Path) -> None:
    with pytest.raises(FeatureError, match="'nope'"):
        push("nope", [row(1, now(), 1.0)], workspace=online_ws)


@pytest.mark.usefixtures("repo")
def test_naive_pushed_timestamps_are_read_in_the_view_zone(online_ws: Workspace) -> None:
    push("local", [{"user_id": 2, "event_timestamp": datetime(2024, 7, 1, 1, 0), "level": 7}],
         workspace=online_ws)
    summer = utc(2024, 6, 30, 23)  # 01:00 in Paris
    result = get_historical_features(
        entities([2, 2], [summer, summer - timedelta(microseconds=1)]), ["local:level"],
        workspace=online_ws).to_arrow()
    assert result.column("level").to_pylist() == [7, None]


@pytest.mark.usefixtures("repo")
def test_a_pushed_wall_time_in_a_dst_gap_is_a_feature_error(online_ws: Workspace) -> None:
    with pytest.raises(FeatureError) as exc:  # 02:30 does not exist in Paris on 2024-03-31
        push("local", [{"user_id": 2, "event_timestamp": datetime(2024, 3, 31, 2, 30),
                        "level": 7}], workspace=online_ws)
    assert "event_timestamp" in one_line(exc)
