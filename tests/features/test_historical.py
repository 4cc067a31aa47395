"""Historical retrieval: point-in-time joins checked against a brute-force implementation, the
cases Feast gets wrong, time zones, bad input, SQL / dataset / on-demand sources and outputs."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlwright
from mlwright.errors import FeatureError
from mlwright.features import (
    apply_repository,
    get_historical_features,
    materialize,
    online_reader,
)
from mlwright.workspace import Workspace

from .support import (
    entities,
    make_workspace,
    one_line,
    table,
    timestamps,
    utc,
    write_parquet,
    write_repo,
)


@pytest.fixture(params=["memory", "spill"])
def ws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    """Every test here runs on both joins: in memory (polars) and DuckDB's spilling one."""
    workspace = make_workspace(tmp_path / "ws", offline_join=request.param)
    try:
        yield workspace
    finally:
        workspace.close()


# -- the brute-force property test ----------------------------------------------------------

BASE = utc(2024, 1, 1)
US = timedelta(microseconds=1)


def at(seconds: int, micros: int = 0) -> datetime:
    return BASE + timedelta(seconds=seconds, microseconds=micros)


@dataclass(frozen=True)
class Row:
    user: int
    country: str
    event: datetime
    created: datetime
    value: Any


@dataclass(frozen=True)
class Scenario:
    composite: bool  # view A keyed by (user_id, country) instead of user_id
    a_created: bool  # view A declares a created timestamp
    ttl_a: int | None  # seconds
    ttl_b: int | None
    a_rows: list[Row]
    b_rows: list[Row]
    entity_rows: list[tuple[int, str, datetime]]


def _dedupe(rows: list[Row], key: Callable[[Row], Any]) -> list[Row]:
    seen: dict[Any, Row] = {}
    for row in rows:
        seen.setdefault(key(row), row)
    return list(seen.values())


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    composite = draw(st.booleans())
    a_created = draw(st.booleans())
    ttl_a = draw(st.sampled_from([None, 3, 5]))
    ttl_b = draw(st.sampled_from([None, 2, 8]))
    users, countries = st.integers(1, 3), st.sampled_from(["fr", "de"])
    raw_a = draw(st.lists(st.tuples(users, countries, st.integers(0, 12)), max_size=25))
    if raw_a:  # rows tied with another on key and event time (told apart by created)
        raw_a += [raw_a[i] for i in draw(st.lists(st.integers(0, len(raw_a) - 1), max_size=6))]
    # Distinct created timestamps: ties on the event time have one newest row.
    created = draw(st.permutations(range(len(raw_a))))
    a_rows = [Row(u, c, at(e), at(100 + created[i]),
                  draw(st.one_of(st.none(), st.just(float(i)))) if i % 5 == 4 else float(i))
              for i, (u, c, e) in enumerate(raw_a)]
    if not a_created:  # without a created timestamp, (key, event) must be unique
        a_rows = _dedupe(a_rows, lambda r: (r.user, r.country if composite else "", r.event))
    raw_b = draw(st.lists(st.tuples(users, st.integers(0, 12)), max_size=15))
    b_rows = _dedupe([Row(u, "", at(e), at(0), f"b{i}") for i, (u, e) in enumerate(raw_b)],
                     lambda r: (r.user, r.event))
    # Entities: users without data (4), times on the grid and 1 µs either side of it, so
    # that rows exactly at the TTL boundary and 1 µs beyond it occur often.
    entity = st.tuples(st.integers(1, 4), countries, st.integers(0, 20),
                       st.sampled_from([-1, 0, 0, 1]))
    drawn = draw(st.lists(entity, min_size=1, max_size=20))
    entity_rows = [(u, c, at(s, m)) for u, c, s, m in drawn]
    if draw(st.booleans()):  # an exact duplicate entity row
        entity_rows.append(entity_rows[draw(st.integers(0, len(entity_rows) - 1))])
    return Scenario(composite, a_created, ttl_a, ttl_b, a_rows, b_rows, entity_rows)


def brute_force(rows: Sequence[Row], match: Callable[[Row], bool], moment: datetime,
                ttl: int | None, by_created: bool) -> Any:
    """The newest qualifying row's value: same key, event <= moment, event >= moment - ttl
    (inclusive), newest (event, created); None when nothing qualifies."""
    best: Row | None = None
    for row in rows:
        if not match(row) or row.event > moment:
            continue
        if ttl is not None and row.event < moment - timedelta(seconds=ttl):
            continue
        order = (row.event, row.created if by_created else BASE)
        if best is None or order > (best.event, best.created if by_created else BASE):
            best = row
    return None if best is None else best.value


def _scenario_repo(folder: Path, s: Scenario) -> Path:
    write_parquet(folder / "a.parquet", table(
        user_id=pa.array([r.user for r in s.a_rows], pa.int64()),
        country=pa.array([r.country for r in s.a_rows], pa.string()),
        event_ts=timestamps([r.event for r in s.a_rows]),
        created=timestamps([r.created for r in s.a_rows]),
        a_val=pa.array([r.value for r in s.a_rows], pa.float64())))
    write_parquet(folder / "b.parquet", table(
        user_id=pa.array([r.user for r in s.b_rows], pa.int64()),
        event_ts=timestamps([r.event for r in s.b_rows]),
        b_val=pa.array([r.value for r in s.b_rows], pa.string())))
    ttl = {"a": s.ttl_a, "b": s.ttl_b}
    ttl_sql = {k: "None" if v is None else f"timedelta(seconds={v})" for k, v in ttl.items()}
    created = '"created"' if s.a_created else "None"
    return write_repo(folder, f"""
        user = Entity("user", join_keys={{"user_id": "int64"}})
        user_country = Entity("user_country", join_keys={{"user_id": "int64", "country": "string"}})
        view_a = FeatureView("view_a", entities=[{"user_country" if s.composite else "user"}],
                             source=ParquetSource("a.parquet"), timestamp_field="event_ts",
                             created_timestamp_field={created},
                             features=[Field("a_val", "float64")], ttl={ttl_sql["a"]})
        view_b = FeatureView("view_b", entities=[user], source=ParquetSource("b.parquet"),
                             timestamp_field="event_ts", features=[Field("b_val", "string")],
                             ttl={ttl_sql["b"]})
        """)


_EXAMPLES = itertools.count()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(s=scenarios())
def test_point_in_time_join_matches_brute_force(ws: Workspace, tmp_path: Path,
                                                s: Scenario) -> None:
    folder = tmp_path / f"example-{next(_EXAMPLES)}"
    apply_repository(_scenario_repo(folder, s), workspace=ws)
    entity_table = table(user_id=pa.array([u for u, _, _ in s.entity_rows], pa.int64()),
                         country=pa.array([c for _, c, _ in s.entity_rows], pa.string()),
                         event_timestamp=timestamps([t for _, _, t in s.entity_rows]))

    result = get_historical_features(entity_table, ["view_a:a_val", "view_b:b_val"],
                                     workspace=ws).to_arrow()

    assert result.column_names == ["user_id", "country", "event_timestamp", "a_val", "b_val"]
    assert result.num_rows == len(s.entity_rows)
    assert result.column("user_id").to_pylist() == [u for u, _, _ in s.entity_rows]
    assert result.column("country").to_pylist() == [c for _, c, _ in s.entity_rows]
    assert result.column("event_timestamp").to_pylist() == [t for _, _, t in s.entity_rows]
    expected_a = [brute_force(s.a_rows, lambda r, u=u, c=c: r.user == u and
                              (not s.composite or r.country == c), t, s.ttl_a, s.a_created)
                  for u, c, t in s.entity_rows]
    expected_b = [brute_force(s.b_rows, lambda r, u=u: r.user == u, t, s.ttl_b, False)
                  for u, _, t in s.entity_rows]
    assert result.column("a_val").to_pylist() == expected_a
    assert result.column("b_val").to_pylist() == expected_b


# -- what Feast gets wrong, pinned ----------------------------------------------------------

STATS = """
user = Entity("user", join_keys={"user_id": "int64"})
user_stats = FeatureView(
    "user_stats", entities=[user], source=ParquetSource("stats.parquet"),
    timestamp_field="event_timestamp", created_timestamp_field="created",
    features=[Field("clicks", "float64"), Field("country", "string")],
    ttl=timedelta(days=2), owner="ana", tags={"team": "growth"})
ranking = FeatureService("ranking", features=[user_stats])
"""


def stats_rows() -> pa.Table:
    """user 1: three rows, two of them tied on 2024-01-03 (the newer created written first);
    user 2: one row; user 3: none."""
    return table(
        user_id=[1, 1, 1, 2],
        event_timestamp=[utc(2024, 1, 1), utc(2024, 1, 3), utc(2024, 1, 3), utc(2024, 1, 2)],
        created=[utc(2024, 1, 1), utc(2024, 1, 5), utc(2024, 1, 4), utc(2024, 1, 2)],
        clicks=[1.0, 30.0, 3.0, 2.0],
        country=["fr", "de", "fr", "es"],
    )


@pytest.fixture
def stats_repo(ws: Workspace, make_repo: Callable[..., Path]) -> Path:
    repo = make_repo(STATS)
    write_parquet(repo / "stats.parquet", stats_rows())
    apply_repository(repo, workspace=ws)
    return repo


def clicks(ws: Workspace, user_ids: Sequence[int], times: Sequence[datetime]) -> list[Any]:
    result = get_historical_features(entities(user_ids, times), ["user_stats:clicks"],
                                     workspace=ws).to_arrow()
    return result.column("clicks").to_pylist()


@pytest.mark.usefixtures("stats_repo")
def test_feast_rows_without_features_come_back_with_nulls_not_dropped(ws: Workspace) -> None:
    moment = utc(2024, 1, 2, 12)
    # user 3 has no rows; user 1 before its first row; user 2 long after its TTL.
    result = get_historical_features(
        entities([3, 1, 2, 2], [moment, utc(2023, 12, 31), utc(2024, 2, 1), moment]),
        "ranking", workspace=ws).to_arrow()
    assert result.num_rows == 4
    assert result.column("clicks").to_pylist() == [None, None, None, 2.0]
    assert result.column("country").to_pylist() == [None, None, None, "es"]


@pytest.mark.usefixtures("stats_repo")
def test_feast_duplicate_entity_rows_stay_separate(ws: Workspace) -> None:
    moment = utc(2024, 1, 2, 12)
    assert clicks(ws, [1, 1, 2, 1, 2], [moment] * 5) == [1.0, 1.0, 2.0, 1.0, 2.0]


@pytest.mark.usefixtures("stats_repo")
def test_feast_output_keeps_the_input_order(ws: Workspace) -> None:
    users = [2, 1, 3, 1, 2, 1]
    times = [utc(2024, 1, 2, 5), utc(2024, 1, 6), utc(2024, 1, 1), utc(2024, 1, 1, 1),
             utc(2024, 1, 1), utc(2024, 1, 3, 12)]
    result = get_historical_features(entities(users, times), ["user_stats:clicks"],
                                     workspace=ws).to_arrow()
    assert result.column("user_id").to_pylist() == users
    assert result.column("event_timestamp").to_pylist() == times
    assert result.column("clicks").to_pylist() == [2.0, None, None, 1.0, None, 30.0]


@pytest.mark.usefixtures("stats_repo")
def test_feast_event_timestamp_ties_pick_the_newest_created_timestamp(ws: Workspace) -> None:
    # Both orders of the tied rows in the file: the newer created wins either way.
    assert clicks(ws, [1, 1], [utc(2024, 1, 3), utc(2024, 1, 4)]) == [30.0, 30.0]


def test_feast_reversed_file_order_ties_still_pick_the_newest_created(
        ws: Workspace, make_repo: Callable[..., Path]) -> None:
    repo = make_repo(STATS)
    rows = stats_rows()
    write_parquet(repo / "stats.parquet", rows.take([3, 2, 1, 0]))
    apply_repository(repo, workspace=ws)
    assert clicks(ws, [1], [utc(2024, 1, 3, 1)]) == [30.0]


def test_feast_pandas_nanosecond_tz_aware_parquet_source_works(
        ws: Workspace, make_repo: Callable[..., Path]) -> None:
    repo = make_repo(STATS.replace('created_timestamp_field="created",', ""))
    frame = pd.DataFrame({
        "user_id": [1, 2],
        "event_timestamp": pd.Series(pd.to_datetime(
            ["2024-01-01T00:00:00.000000001Z", "2024-01-02T10:00:00Z"], utc=True,
            format="ISO8601")).astype("datetime64[ns, UTC]"),
        "clicks": [1.5, 2.5], "country": ["fr", "de"]})
    frame.to_parquet(repo / "stats.parquet")
    assert pq.read_schema(repo / "stats.parquet").field("event_timestamp").type == \
        pa.timestamp("ns", "UTC")
    apply_repository(repo, workspace=ws)
    assert clicks(ws, [1, 2, 2], [utc(2024, 1, 1, 1), utc(2024, 1, 2, 10),
                                  utc(2024, 1, 2, 9)]) == [1.5, 2.5, None]


@pytest.mark.usefixtures("stats_repo")
def test_pandas_entity_frame_with_nanosecond_timestamps_in_another_zone(ws: Workspace) -> None:
    frame = pd.DataFrame({
        "event_timestamp": pd.Series([utc(2024, 1, 2, 6), utc(2024, 1, 3, 6), utc(2023, 1, 1)])
        .astype("datetime64[ns, UTC]").dt.tz_convert("America/New_York"),
        "user_id": [2, 1, 1]}).iloc[::-1]  # reversed: a non-default index, not a column
    result = get_historical_features(frame, "ranking", workspace=ws).to_arrow()
    assert result.column_names == ["event_timestamp", "user_id", "clicks", "country"]
    assert result.column("user_id").to_pylist() == [1, 1, 2]
    assert result.column("clicks").to_pylist() == [None, 30.0, 2.0]


# -- time zones -----------------------------------------------------------------------------


@pytest.mark.usefixtures("stats_repo")
def test_naive_entity_timestamps_are_refused_naming_the_column(ws: Workspace) -> None:
    naive = pa.table({"user_id": pa.array([1], pa.int64()),
                      "asked_at": pa.array([datetime(2024, 1, 2)], pa.timestamp("us"))})
    with pytest.raises(FeatureError) as exc:
        get_historical_features(naive, ["user_stats:clicks"], workspace=ws,
                                timestamp_column="asked_at")
    message = one_line(exc)
    assert "'asked_at'" in message and "time zone" in message


@pytest.mark.usefixtures("stats_repo")
def test_entity_timestamps_in_another_zone_are_the_same_instants(ws: Workspace) -> None:
    paris = timestamps([utc(2024, 1, 2, 23, 30)]).cast(pa.timestamp("us", "Europe/Paris"))
    result = get_historical_features(pa.table({"user_id": pa.array([2], pa.int64()),
                                               "event_timestamp": paris}),
                                     ["user_stats:clicks"], workspace=ws).to_arrow()
    assert result.column("clicks").to_pylist() == [2.0]


PARIS = """
user = Entity("user", join_keys={"user_id": "int64"})
local = FeatureView("local", entities=[user], source=ParquetSource("local.parquet"),
                    timestamp_field="event_timestamp", timezone=ZONE,
                    features=[Field("level", "int64"), Field("seen_at", "timestamp")])
"""


def _naive_source(repo: Path) -> None:
    write_parquet(repo / "local.parquet", pa.table({
        "user_id": pa.array([1, 2], pa.int64()),
        # winter (UTC+1) and summer (UTC+2) wall-clock times in Paris
        "event_timestamp": pa.array([datetime(2024, 1, 15, 0, 30), datetime(2024, 7, 1, 1, 0)],
                                    pa.timestamp("us")),
        "level": pa.array([10, 20], pa.int64()),
        "seen_at": pa.array([datetime(2024, 1, 15, 0, 30), datetime(2024, 7, 1, 1, 0)],
                            pa.timestamp("us")),
    }))


def test_naive_source_timestamps_are_refused_without_a_view_zone(
        ws: Workspace, make_repo: Callable[..., Path]) -> None:
    repo = make_repo(PARIS.replace("ZONE", "None"))
    _naive_source(repo)
    with pytest.raises(FeatureError) as exc:
        apply_repository(repo, workspace=ws)
    message = one_line(exc)
    assert "'event_timestamp'" in message and "'local'" in message and "zone" in message


def test_naive_source_timestamps_are_read_in_the_view_zone(
        ws: Workspace, make_repo: Callable[..., Path]) -> None:
    repo = make_repo(PARIS.replace("ZONE", '"Europe/Paris"'))
    _naive_source(repo)
    apply_repository(repo, workspace=ws)
    winter, summer = utc(2024, 1, 14, 23, 30), utc(2024, 6, 30, 23, 0)  # the same instants
    result = get_historical_features(
        entities([1, 1, 2, 2], [winter, winter - US, summer, summer - US]),
        ["local:level", "local:seen_at"], workspace=ws).to_arrow()
    assert result.column("level").to_pylist() == [10, None, 20, None]
    assert result.column("seen_at").to_pylist() == [winter, None, summer, None]
    assert result.schema.field("seen_at").type == pa.timestamp("us", "UTC")


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.usefixtures("stats_repo")
@pytest.mark.parametrize(("features", "named"), [
    (["user_stats:nope"], "'nope'"),
    (["nope:clicks"], "'nope'"),
    (["nope:*"], "'nope'"),
    ("nope_service", "'nope_service'"),
])
def test_unknown_references_are_refused_naming_them(ws: Workspace, features: Any,
                                                    named: str) -> None:
    with pytest.raises(FeatureError) as exc:
        get_historical_features(entities([1], [utc(2024, 1, 2)]), features, workspace=ws)
    assert named in one_line(exc)


@pytest.mark.usefixtures("stats_repo")
@pytest.mark.parametrize(("entity_table", "named"), [
    (pa.table({"event_timestamp": timestamps([utc(2024, 1, 2)])}), "'user_id'"),
    (pa.table({"user_id": pa.array([1], pa.int64())}), "'event_timestamp'"),
    (pa.table({"user_id": pa.array(["1"]), "event_timestamp": timestamps([utc(2024, 1, 2)])}),
     "'user_id'"),
    (pa.table({"user_id": pa.array([1], pa.int64()),
               "event_timestamp": pa.array(["2024-01-02T00:00:00Z"])}), "'event_timestamp'"),
])
def test_bad_entity_tables_are_refused_naming_the_column(ws: Workspace, entity_table: pa.Table,
                                                         named: str) -> None:
    with pytest.raises(FeatureError) as exc:
        get_historical_features(entity_table, ["user_stats:clicks"], workspace=ws)
    assert named in one_line(exc)


def test_wrong_key_type_message_names_the_declared_type(ws: Workspace, stats_repo: Path) -> None:
    strings = pa.table({"user_id": pa.array(["1"]),
                        "event_timestamp": timestamps([utc(2024, 1, 2)])})
    with pytest.raises(FeatureError) as exc:
        get_historical_features(strings, ["user_stats:clicks"], workspace=ws)
    assert "int64" in one_line(exc)


def test_source_removed_after_apply_is_an_error_naming_the_path(ws: Workspace,
                                                                stats_repo: Path) -> None:
    (stats_repo / "stats.parquet").unlink()
    job = get_historical_features(entities([1], [utc(2024, 1, 2)]), ["user_stats:clicks"],
                                  workspace=ws)
    with pytest.raises(FeatureError) as exc:
        job.to_arrow()
    assert "stats.parquet" in one_line(exc)


@pytest.mark.parametrize(("drift", "named"), [
    (lambda t: t.drop_columns(["clicks"]), "'clicks'"),
    (lambda t: t.set_column(t.schema.get_field_index("clicks"), "clicks",
                            pa.array(["1", "2", "3", "4"])), "'clicks'"),
    (lambda t: t.drop_columns(["created"]), "'created'"),
    (lambda t: t.set_column(0, "user_id", pa.array(["1", "1", "1", "2"])), "'user_id'"),
])
def test_source_schema_drift_after_apply_is_an_error_naming_the_column(
        ws: Workspace, stats_repo: Path, drift: Callable[[pa.Table], pa.Table],
        named: str) -> None:
    write_parquet(stats_repo / "stats.parquet", drift(stats_rows()))
    job = get_historical_features(entities([1], [utc(2024, 1, 2)]), ["user_stats:clicks"],
                                  workspace=ws)
    with pytest.raises(FeatureError) as exc:
        job.to_arrow()
    message = one_line(exc)
    assert named in message and "'user_stats'" in message


def test_missing_entity_parquet_is_an_error(ws: Workspace, stats_repo: Path,
                                            tmp_path: Path) -> None:
    with pytest.raises(FeatureError) as exc:  # at the call, before any work
        get_historical_features(tmp_path / "nope.parquet", ["user_stats:clicks"], workspace=ws)
    assert "nope.parquet" in one_line(exc)
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(FeatureError) as exc:
        get_historical_features(tmp_path / "bad.parquet", ["user_stats:clicks"], workspace=ws)
    assert "not a readable Parquet file" in one_line(exc)


# -- SQL sources: windowed aggregates -------------------------------------------------------

WINDOWED = """
user = Entity("user", join_keys={"user_id": "int64"})
ratings_7d = FeatureView(
    "ratings_7d", entities=[user], timestamp_field="ts",
    source=SqlSource(
        "SELECT user_id, ts, count(*) OVER w AS n_7d, avg(rating) OVER w AS mean_7d "
        "FROM ratings WINDOW w AS (PARTITION BY user_id ORDER BY ts "
        "RANGE BETWEEN INTERVAL 7 DAYS PRECEDING AND CURRENT ROW)",
        inputs={"ratings": ParquetSource("ratings.parquet")}),
    features=[Field("n_7d", "int64"), Field("mean_7d", "float64")])
"""


def test_sql_source_windowed_aggregates_are_point_in_time_correct(
        ws: Workspace, make_repo: Callable[..., Path]) -> None:
    rng = np.random.default_rng(7)
    start = utc(2024, 3, 1)
    n = 60
    users = rng.integers(1, 4, n).tolist()
    # whole hours over 30 days: some ratings share a time, some fall exactly 7 days apart
    times = [start + timedelta(hours=int(h)) for h in rng.integers(0, 30 * 24, n)]
    times[1], users[1] = times[0] + timedelta(days=7), users[0]
    ratings = rng.integers(1, 6, n).astype(float).tolist()
    repo = make_repo(WINDOWED)
    write_parquet(repo / "ratings.parquet", table(user_id=users, ts=times, rating=ratings))
    apply_repository(repo, workspace=ws)

    asked_users = [1, 2, 3, 4] * 12 + [users[0], users[1]]
    asked = [start + timedelta(hours=int(h), minutes=int(m)) for h, m in
             zip(rng.integers(-24, 34 * 24, 48), rng.integers(0, 60, 48), strict=True)]
    asked += [times[0], times[1]]
    result = get_historical_features(entities(asked_users, asked), ["ratings_7d:*"],
                                     workspace=ws).to_arrow()

    def expected(user: int, moment: datetime) -> tuple[int | None, float | None]:
        mine = [(t, r) for u, t, r in zip(users, times, ratings, strict=True) if u == user]
        past = [t for t, _ in mine if t <= moment]
        if not past:
            return None, None
        last = max(past)  # the features as of the newest event at or before the moment
        window = [r for t, r in mine if last - timedelta(days=7) <= t <= last]
        return len(window), sum(window) / len(window)

    want = [expected(u, t) for u, t in zip(asked_users, asked, strict=True)]
    assert result.column("n_7d").to_pylist() == [w[0] for w in want]
    got = result.column("mean_7d").to_pylist()
    assert got == pytest.approx([w[1] for w in want])
    assert sum(w[0] is None for w in want) >= 12  # user 4, and times before any rating


def test_two_sql_sources_with_the_same_input_name_read_their_own_inputs(
        ws: Workspace, make_repo: Callable[..., Path]) -> None:
    repo = make_repo("""
        user = Entity("user", join_keys={"user_id": "int64"})
        low = FeatureView("low", entities=[user], timestamp_field="ts", features=[Field("xa", "float64")],
                          source=SqlSource("SELECT user_id, ts, x AS xa FROM src",
                                           inputs={"src": ParquetSource("a.parquet")}))
        high = FeatureView("high", entities=[user], timestamp_field="ts", features=[Field("xb", "float64")],
                           source=SqlSource("SELECT user_id, ts, x AS xb FROM src",
                                            inputs={"src": ParquetSource("b.parquet")}))
        """)
    write_parquet(repo / "a.parquet", table(user_id=[1], ts=[utc(2024, 1, 1)], x=[1.0]))
    write_parquet(repo / "b.parquet", table(user_id=[1], ts=[utc(2024, 1, 1)], x=[100.0]))
    apply_repository(repo, workspace=ws)
    moment = [utc(2024, 1, 2)]
    alone = get_historical_features(entities([1], moment), ["low:xa"], workspace=ws).to_arrow()
    assert alone.column("xa").to_pylist() == [1.0]
    both = get_historical_features(entities([1], moment), ["low:xa", "high:xb"],
                                   workspace=ws).to_arrow()
    assert both.column("xb").to_pylist() == [100.0]
    assert both.column("xa").to_pylist() == [1.0]  # got 100.0: high's "src" replaced low's


# -- dataset sources ------------------------------------------------------------------------


def test_dataset_source_reads_the_registered_dataset(ws: Workspace,
                                                     make_repo: Callable[..., Path]) -> None:
    first = table(user_id=[1, 2], ts=[utc(2024, 1, 1), utc(2024, 1, 1)], spend=[5.0, 7.0])
    mlwright.register_dataset("spend", first, workspace=ws)
    repo = make_repo("""
        user = Entity("user", join_keys={"user_id": "int64"})
        latest = FeatureView("latest", entities=[user], source=DatasetSource("spend"),
                             timestamp_field="ts", features=[Field("spend", "float64")])
        pinned = FeatureView("pinned", entities=[user], source=DatasetSource("spend@1"),
                             timestamp_field="ts", features=[Field("spend", "float64")])
        """)
    apply_repository(repo, workspace=ws)
    second = table(user_id=[1, 2], ts=[utc(2024, 1, 2), utc(2024, 1, 2)], spend=[50.0, 70.0])
    mlwright.register_dataset("spend", second, workspace=ws)

    job = get_historical_features(entities([2, 1, 3], [utc(2024, 1, 3)] * 3),
                                  ["latest:spend", "pinned:spend"], workspace=ws,
                                  full_feature_names=True)
    result = job.to_arrow()
    assert result.column("latest__spend").to_pylist() == [70.0, 50.0, None]
    assert result.column("pinned__spend").to_pylist() == [7.0, 5.0, None]
    assert job.datasets == {"spend": "spend@2", "spend@1": "spend@1"}
    with pytest.raises(FeatureError, match="full feature names") as exc:
        get_historical_features(entities([1], [utc(2024, 1, 3)]), ["latest:spend", "pinned:spend"],
                                workspace=ws)
    assert "spend" in one_line(exc)
    assert sorted(job.views) == ["latest@1", "pinned@1"]


# -- on-demand views ------------------------------------------------------------------------

ON_DEMAND = """
import pandas as pd

user = Entity("user", join_keys={"user_id": "int64"})
stats = FeatureView("stats", entities=[user], source=ParquetSource("stats.parquet"),
                    timestamp_field="event_timestamp", ttl=timedelta(days=3650),
                    features=[Field("clicks", "float64"), Field("views", "int64")])
request = RequestSource("request", schema=[Field("amount", "float64")])


def per_click(frame):
    return pd.DataFrame({"amount_per_click": frame["amount"] / frame["clicks"],
                         "click_rate": frame["clicks"] / frame["views"]})


ratios = OnDemandFeatureView("ratios", sources=[stats, request], transform=per_click,
                             features=[Field("amount_per_click", "float64"),
                                       Field("click_rate", "float64")])
"""


def test_on_demand_view_gives_the_same_values_offline_and_online(
        ws: Workspace, make_repo: Callable[..., Path]) -> None:
    now = datetime.now(UTC)
    repo = make_repo(ON_DEMAND)
    write_parquet(repo / "stats.parquet", table(
        user_id=[1, 2, 1], event_timestamp=[now - timedelta(days=3), now - timedelta(days=2),
                                            now - timedelta(days=1)],
        clicks=[4.0, 5.0, 8.0], views=[10, 20, 16]))
    apply_repository(repo, workspace=ws)
    users, amounts = [1, 2, 3], [16.0, 10.0, 1.0]
    features = ["ratios:amount_per_click", "ratios:click_rate", "stats:clicks"]

    offline = get_historical_features(entities(users, [now] * 3, amount=amounts), features,
                                      workspace=ws).to_arrow()
    assert offline.column_names == ["user_id", "event_timestamp", "amount",
                                    "amount_per_click", "click_rate", "clicks"]
    assert offline.column("amount_per_click").to_pylist()[:2] == [2.0, 2.0]
    assert offline.column("click_rate").to_pylist()[:2] == [0.5, 0.25]
    assert offline.column("clicks").to_pylist() == [8.0, 5.0, None]

    materialize(now - timedelta(days=10), now + timedelta(seconds=1), workspace=ws)
    with online_reader(features, workspace=ws) as reader:
        online = reader.get({"user_id": users, "amount": amounts})
    for column in ("amount_per_click", "click_rate", "clicks"):
        want = [None if v is None or v != v else v for v in offline.column(column).to_pylist()]
        got = [None if v is None or v != v else v for v in online.values[column]]
        assert got == want, column
    assert online.statuses["clicks"] == ["present", "present", "missing"]


# -- outputs and entity tables --------------------------------------------------------------


@pytest.mark.usefixtures("stats_repo")
def test_to_parquet_writes_what_to_arrow_returns(ws: Workspace, tmp_path: Path) -> None:
    entity_table = entities([2, 1, 3, 1], [utc(2024, 1, 2, 6), utc(2024, 1, 3, 6),
                                           utc(2024, 1, 2), utc(2024, 1, 1)])
    job = get_historical_features(entity_table, "ranking", workspace=ws)
    expected = job.to_arrow()
    target = tmp_path / "out" / "train.parquet"
    target.parent.mkdir()
    assert job.to_parquet(target) == 4
    assert pq.read_table(target).equals(expected)
    assert sorted(p.name for p in target.parent.iterdir()) == ["train.parquet"]  # no temp left
    assert job.to_pandas().equals(expected.to_pandas())
    batches = list(job.to_batches())
    assert pa.Table.from_batches(batches).equals(expected)


@pytest.mark.usefixtures("stats_repo")
def test_parquet_entity_table_written_by_pandas_works(ws: Workspace, tmp_path: Path) -> None:
    users = [2, 1, 3, 1, 1]
    times = [utc(2024, 1, 2, 6), utc(2024, 1, 3, 6), utc(2024, 1, 2), utc(2024, 1, 1),
             utc(2024, 1, 3, 6)]
    path = tmp_path / "entities.parquet"
    pd.DataFrame({"user_id": users,
                  "event_timestamp": pd.Series(times).astype("datetime64[ns, UTC]")}) \
        .to_parquet(path)
    from_path = get_historical_features(path, "ranking", workspace=ws).to_arrow()
    from_table = get_historical_features(entities(users, times), "ranking",
                                         workspace=ws).to_arrow()
    assert from_path.column("user_id").to_pylist() == users
    assert from_path.column("clicks").to_pylist() == [2.0, 30.0, None, 1.0, 30.0]
    for column in ("user_id", "clicks", "country"):
        assert from_path.column(column).to_pylist() == from_table.column(column).to_pylist()


@pytest.mark.usefixtures("stats_repo")
def test_empty_entity_table_gives_an_empty_result_with_the_feature_columns(ws: Workspace) -> None:
    result = get_historical_features(entities([], []), "ranking", workspace=ws).to_arrow()
    assert result.num_rows == 0
    assert result.column_names == ["user_id", "event_timestamp", "clicks", "country"]


def test_source_folder_removed_and_restored_is_read_again(ws: Workspace, stats_repo: Path,
                                                          tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    shutil.move(stats_repo, moved)
    job = get_historical_features(entities([1], [utc(2024, 1, 2)]), ["user_stats:clicks"],
                                  workspace=ws)
    with pytest.raises(FeatureError):
        job.to_arrow()
    shutil.move(moved, stats_repo)
    assert job.to_arrow().column("clicks").to_pylist() == [1.0]


def test_source_rows_repeating_key_and_times_still_give_one_row_per_entity_row(
        ws: Workspace, make_repo: Callable[..., Path]) -> None:
    repo = make_repo("""
        user = Entity("user", join_keys={"user_id": "int64"})
        dup = FeatureView("dup", entities=[user], source=ParquetSource("dup.parquet"),
                          timestamp_field="event_timestamp", created_timestamp_field="created",
                          features=[Field("v", "float64")], ttl=timedelta(days=1))
        nocreated = FeatureView("nocreated", entities=[user], source=ParquetSource("dup.parquet"),
                                timestamp_field="event_timestamp", features=[Field("w", "float64")])
        """)
    write_parquet(repo / "dup.parquet", table(
        user_id=[1, 1, 1], event_timestamp=[utc(2024, 1, 1)] * 3,
        created=[utc(2024, 1, 2), utc(2024, 1, 2), utc(2024, 1, 1)],
        v=[1.0, 2.0, 3.0], w=[1.0, 2.0, 3.0]))
    apply_repository(repo, workspace=ws)
    result = get_historical_features(entities([1, 1, 2], [utc(2024, 1, 1, 12)] * 3),
                                     ["dup:v", "nocreated:w"], workspace=ws).to_arrow()
    assert result.num_rows == 3
    values = result.column("v").to_pylist()
    assert values[0] in (1.0, 2.0) and values[1] in (1.0, 2.0) and values[2] is None
    assert result.column("w").to_pylist()[2] is None
