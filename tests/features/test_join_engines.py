"""The two readers of a view (pyarrow and DuckDB) give the same normalized rows, and the
retrieval picks the in-memory join or the spilling one as its settings and the data say."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwright.errors import FeatureError
from mlwright.features import apply_repository, arrow_read, get_historical_features, push
from mlwright.features import historical as historical_module
from mlwright.features.arrow_read import read_view
from mlwright.features.asof import asof_indices
from mlwright.features.catalog import load_catalog
from mlwright.features.historical import memory_budget
from mlwright.features.relations import connect, fetch_view
from mlwright.features.sources import SourceContext
from mlwright.workspace import Workspace

from .support import entities, make_workspace, one_line, utc, write_parquet

TYPED = """
user = Entity("user", join_keys={"user_id": "int64", "shop": "string"})
typed = FeatureView(
    "typed", entities=[user], source=ParquetSource("typed.parquet"),
    timestamp_field="ts", created_timestamp_field="created", timezone="UTC",
    features=[Field("small", "int64"), Field("unsigned", "int64"), Field("ratio", "float32"),
              Field("amount", "float64"), Field("count_as_float", "float64"),
              Field("label", "string"), Field("flag", "bool"), Field("seen", "timestamp")],
    ttl=timedelta(days=3))
"""


def typed_rows() -> pa.Table:
    """Every type the pyarrow reader converts itself, with nulls and odd values."""
    base = 1_704_067_200_000_000_000  # 2024-01-01 in ns
    hour = 3_600_000_000_000
    ms, us = base // 1_000_000, base // 1_000
    return pa.table({
        "user_id": pa.array([1, 1, 2, 3, None], pa.int32()),
        "shop": pa.array(["a", "a", "b", None, "c"], pa.large_string()),
        "ts": pa.array([base + 1_999, base + hour + 999, base, base + 2 * hour, base],
                       pa.timestamp("ns", "Europe/Paris")),
        "created": pa.array([ms, None, ms + 5, ms, ms], pa.timestamp("ms")),
        "small": pa.array([1, -2, None, 4, 5], pa.int8()),
        "unsigned": pa.array([1, 2, 3, 4, 5], pa.uint32()),
        "ratio": pa.array([0.1, 0.2, None, 1e300, 0.5], pa.float64()),
        "amount": pa.array([Decimal("1.25"), None, Decimal("-3.50"), Decimal("0"),
                            Decimal("9.99")], pa.decimal128(6, 2)),
        "count_as_float": pa.array([2**53 + 1, 0, None, -1, 7], pa.int64()),
        "label": pa.array(["x", None, "ü", "", "z"], pa.string()),
        "flag": pa.array([True, False, None, True, False]),
        "seen": pa.array([us, None, us + 1, us, us], pa.timestamp("us")),
    })


@pytest.fixture
def typed_ws(tmp_path: Path, make_repo: Callable[..., Path]) -> Workspace:
    ws = make_workspace(tmp_path / "ws")
    repo = make_repo(TYPED)
    write_parquet(repo / "typed.parquet", typed_rows())
    apply_repository(repo, workspace=ws)
    yield ws
    ws.close()


def both_readers(ws: Workspace, low_us: int | None, high_us: int) -> tuple[pa.Table, pa.Table]:
    view = load_catalog(ws).view("typed")
    conn = connect(ws)
    try:
        ctx = SourceContext(conn, ws)
        arrow = read_view(ctx, view, budget_bytes=2**40)
        duck = fetch_view(ctx, view, low_us=low_us, high_us=high_us, budget_bytes=2**40)
    finally:
        conn.close()
    assert arrow is not None and duck is not None
    # the pyarrow reader returns every row (the join windows them); DuckDB windows in SQL
    ts = pc.cast(arrow.column("__ts"), pa.int64())
    keep = pc.less_equal(ts, high_us)
    if low_us is not None:
        keep = pc.and_(keep, pc.greater_equal(ts, low_us))
    for key in ("user_id", "shop"):
        keep = pc.and_(keep, pc.is_valid(arrow.column(key)))
    return arrow.filter(keep), duck


@pytest.mark.parametrize("window", [(None, 2**62), (1_704_067_200_000_000, 1_704_070_800_000_999),
                                    (None, 0)])
def test_the_pyarrow_reader_normalizes_exactly_as_duckdb_does(
        typed_ws: Workspace, window: tuple[int | None, int]) -> None:
    arrow, duck = both_readers(typed_ws, *window)
    assert arrow.schema == duck.schema
    assert arrow.to_pylist() == duck.to_pylist()


def test_pushed_rows_are_read_with_the_source_by_both_readers(typed_ws: Workspace) -> None:
    push("typed", [{"user_id": 9, "shop": "p", "ts": utc(2024, 1, 2), "created": utc(2024, 1, 2),
                    "small": 1, "unsigned": 2, "ratio": 0.5, "amount": 1.0,
                    "count_as_float": 3.0, "label": "pushed", "flag": True,
                    "seen": utc(2024, 1, 2)}], workspace=typed_ws, to="offline")
    arrow, duck = both_readers(typed_ws, None, 2**62)
    assert arrow.num_rows == duck.num_rows == 4  # 3 rows with both keys and the pushed one
    assert sorted(arrow.to_pylist(), key=str) == sorted(duck.to_pylist(), key=str)


def test_a_type_the_pyarrow_reader_does_not_convert_is_left_to_duckdb(
        tmp_path: Path, make_repo: Callable[..., Path]) -> None:
    ws = make_workspace(tmp_path / "ws", offline_join="memory")
    repo = make_repo(TYPED)
    rows = typed_rows()
    rows = rows.set_column(rows.schema.get_field_index("label"), "label",
                           rows.column("label").dictionary_encode())
    write_parquet(repo / "typed.parquet", rows)
    apply_repository(repo, workspace=ws)
    view = load_catalog(ws).view("typed")
    conn = connect(ws)
    try:
        assert read_view(SourceContext(conn, ws), view, budget_bytes=2**40) is None
    finally:
        conn.close()
    result = get_historical_features(
        entities([1], [utc(2024, 1, 1, 2)], shop=pa.array(["a"])), ["typed:label"],
        workspace=ws).to_arrow()
    assert result.column("label").to_pylist() == [None]  # the row at 01:00 has no label
    ws.close()


def test_a_source_file_that_is_not_parquet_is_an_error_naming_the_view(
        typed_ws: Workspace, tmp_path: Path) -> None:
    source = load_catalog(typed_ws).view("typed").view.source
    Path(source.path).write_bytes(b"not parquet at all")  # type: ignore[attr-defined]
    with pytest.raises(FeatureError) as caught:
        get_historical_features(entities([1], [utc(2024, 1, 2)], shop=pa.array(["a"])),
                                ["typed:small"], workspace=typed_ws).to_arrow()
    message = one_line(caught)
    assert "Cannot read the source of feature view 'typed'" in message


@pytest.mark.parametrize(("limit", "mode", "expected"), [
    ("2GB", "auto", 2 * 10**9 // 3), ("512MiB", "auto", 512 * 2**20 // 3),
    ("1.5 GB", "auto", int(1.5e9 / 3)), ("2GB", "spill", 0), ("2GB", "memory", 2**62),
    ("lots", "auto", 0), ("12parsecs", "auto", 0)])
def test_memory_budget_is_a_third_of_the_limit(limit: str, mode: str, expected: int) -> None:
    assert memory_budget(limit, mode) == expected


def test_memory_budget_in_percent_is_of_physical_memory() -> None:
    assert 0 < memory_budget("50%", "auto") < memory_budget("100%", "auto")


BIG = """
user = Entity("user", join_keys={"user_id": "int64"})
big = FeatureView("big", entities=[user], source=ParquetSource("big.parquet"),
                  timestamp_field="ts", features=[Field("value", "float64")],
                  ttl=timedelta(hours=2))
"""


def big_repo(make_repo: Callable[..., Path], folder: bool = False) -> Path:
    rows = 600_000  # ~19 MB normalized: more than a third of a 30MB limit
    rng = np.random.default_rng(7)
    # a folder is read through DuckDB, a file by pyarrow: both must notice the budget
    repo = make_repo(BIG.replace('"big.parquet"', '"big"') if folder else BIG)
    write_parquet(repo / ("big/part-0.parquet" if folder else "big.parquet"), pa.table({
        "user_id": pa.array(rng.integers(0, 1_000, rows)),
        "ts": pa.array(1_704_067_200_000_000 + rng.integers(0, 86_400_000_000, rows),
                       pa.timestamp("us", "UTC")),
        "value": pa.array(rng.standard_normal(rows))}))
    return repo


@pytest.mark.parametrize("folder", [False, True], ids=["file", "folder"])
def test_auto_spills_when_the_rows_do_not_fit_and_both_joins_agree(
        tmp_path: Path, make_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
        folder: bool) -> None:
    repo = big_repo(make_repo, folder)
    # entity times over the whole day: the TTL window keeps every source row
    query = entities(list(range(0, 1_000, 7)),
                     [utc(2024, 1, 1, 2) + timedelta(minutes=9 * i) for i in range(143)])
    in_memory = make_workspace(tmp_path / "memory", offline_join="memory")
    apply_repository(repo, workspace=in_memory)
    expected = get_historical_features(query, ["big:value"], workspace=in_memory).to_arrow()
    in_memory.close()

    bounded = make_workspace(tmp_path / "bounded", offline_memory_limit="30MB")
    apply_repository(repo, workspace=bounded)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the in-memory join ran over its budget")

    monkeypatch.setattr(historical_module, "asof_indices", refuse)
    result = get_historical_features(query, ["big:value"], workspace=bounded).to_arrow()
    bounded.close()
    assert result.column("value").to_pylist() == expected.column("value").to_pylist()
    assert expected.column("value").null_count < 143  # the join found rows


def test_the_ttl_boundary_is_inclusive_in_memory(tmp_path: Path,
                                                 make_repo: Callable[..., Path]) -> None:
    ws = make_workspace(tmp_path / "ws", offline_join="memory")
    repo = make_repo(BIG)
    write_parquet(repo / "big.parquet", pa.table({
        "user_id": pa.array([1, 2], pa.int64()),
        "ts": pa.array([utc(2024, 1, 1), utc(2024, 1, 1)], pa.timestamp("us", "UTC")),
        "value": pa.array([1.0, 2.0])}))
    apply_repository(repo, workspace=ws)
    two_hours = utc(2024, 1, 1) + timedelta(hours=2)
    result = get_historical_features(
        entities([1, 2], [two_hours, two_hours + timedelta(microseconds=1)]), ["big:value"],
        workspace=ws).to_arrow()
    assert result.column("value").to_pylist() == [1.0, None]
    ws.close()


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_asof_indices_match_a_brute_force_search(data: st.DataObject) -> None:
    """The in-memory search against a plain loop, with sources in time order (the sort is
    skipped) as often as not, ties on event time, null created times and keys."""
    size = data.draw(st.integers(0, 30))
    keys = data.draw(st.lists(st.one_of(st.none(), st.integers(1, 3)), min_size=size,
                              max_size=size))
    events = data.draw(st.lists(st.integers(0, 8), min_size=size, max_size=size))
    created = data.draw(st.lists(st.one_of(st.none(), st.integers(0, 4)), min_size=size,
                                 max_size=size))
    if data.draw(st.booleans()):  # a log in (event, created) order, nulls first
        order = sorted(range(size), key=lambda i: (events[i], -1 if created[i] is None
                                                   else created[i]))
        keys, events, created = ([xs[i] for i in order] for xs in (keys, events, created))
    ttl = data.draw(st.sampled_from([None, 0, 2]))
    probes = data.draw(st.lists(st.tuples(st.one_of(st.none(), st.integers(1, 3)),
                                          st.integers(0, 10)), max_size=12))
    rows = pa.table({"k": pa.array(keys, pa.int64()),
                     "__ts": pa.array(events, pa.int64()).cast(pa.timestamp("us", "UTC")),
                     "__cts": pa.array(created, pa.int64()).cast(pa.timestamp("us", "UTC"))})
    picked = asof_indices({"k": pa.chunked_array([pa.array([k for k, _ in probes], pa.int64())])},
                          pa.chunked_array([pa.array([t for _, t in probes], pa.int64())]),
                          rows, {"k": "int64"}, ttl).to_pylist()
    for (key, at), index in zip(probes, picked, strict=True):
        found = [i for i in range(size) if key is not None and keys[i] == key
                 and events[i] <= at and (ttl is None or events[i] >= at - ttl)]
        if not found:
            assert index is None
            continue
        best = max((events[i], -1 if created[i] is None else created[i]) for i in found)
        assert index is not None
        assert (events[index], -1 if created[index] is None else created[index]) == best


GROUPED = """
user = Entity("user", join_keys={"user_id": "int64"})
grouped = FeatureView("grouped", entities=[user], source=ParquetSource("grouped.parquet"),
                      timestamp_field="ts", created_timestamp_field="created",
                      features=[Field("value", "float64"), Field("label", "string")],
                      ttl=timedelta(hours=5))
"""


def test_features_gathered_a_row_group_at_a_time_equal_the_spilling_join(
        tmp_path: Path, make_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    rows = 200
    repo = make_repo(GROUPED)
    ts = 1_704_067_200_000_000 + rng.integers(0, 20, rows) * 3_600_000_000
    pq.write_table(pa.table({
        "user_id": pa.array(rng.integers(0, 12, rows)),
        "ts": pa.array(ts, pa.timestamp("us", "UTC")),
        # ties on event time, never on (key, event, created): there any row is a right pick
        "created": pa.array(ts + rng.permutation(rows), pa.timestamp("us", "UTC")),
        "value": pa.array(rng.standard_normal(rows)),
        "label": pa.array([f"r{i}" if i % 5 else None for i in range(rows)])}),
        repo / "grouped.parquet", row_group_size=17)  # 12 groups
    query = entities([int(u) for u in rng.integers(0, 14, 60)],
                     [utc(2024, 1, 1) + timedelta(minutes=int(m)) for m in
                      rng.integers(-60, 22 * 60, 60)])
    results = {}
    for mode in ("spill", "memory"):
        ws = make_workspace(tmp_path / mode, offline_join=mode)
        apply_repository(repo, workspace=ws)
        push("grouped", [{"user_id": 3, "ts": utc(2024, 1, 1, 19, 30),
                          "created": utc(2024, 1, 1, 19, 30), "value": 42.0,
                          "label": "pushed"}], workspace=ws, to="offline")
        monkeypatch.setattr(arrow_read, "WHOLE_READ_BYTES", 0)  # every group on its own
        results[mode] = get_historical_features(query, ["grouped:value", "grouped:label"],
                                                workspace=ws).to_arrow()
        ws.close()
    assert results["memory"].to_pylist() == results["spill"].to_pylist()
    found = results["memory"].column("label").to_pylist()
    assert 0 < sum(v is not None for v in found) < 60
