"""`mlwright features ...` through the real entry point, on real files and the SQLite store."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

Cli = Callable[..., Any]
UTC_US = pa.timestamp("us", "UTC")
NOW = datetime.now(UTC).replace(microsecond=0)

REPO = """
from datetime import timedelta
from mlwright.features import Entity, FeatureService, FeatureView, Field, ParquetSource

user = Entity("user", join_keys={"user_id": "int64"})
stats = FeatureView("stats", entities=[user], source=ParquetSource("../stats.parquet"),
                    timestamp_field="ts", features=[Field("clicks", "float64"),
                    Field("country", "string")], ttl=timedelta(days=TTL_DAYS), owner="ana")
svc = FeatureService("svc", features=[stats])
"""


def _repo(tmp_path: Path, ttl_days: int = 2) -> Path:
    folder = tmp_path / "repo"
    folder.mkdir(exist_ok=True)
    (folder / "defs.py").write_text(textwrap.dedent(REPO).replace("TTL_DAYS", str(ttl_days)))
    return folder


@pytest.fixture
def cli(run_cli: Cli, tmp_path: Path) -> Cli:
    assert run_cli("init", "ws").code == 0
    pq.write_table(pa.table({
        "user_id": pa.array([1, 1, 2, 3], pa.int64()),
        "ts": pa.array([NOW - timedelta(hours=5), NOW - timedelta(hours=1),
                        NOW - timedelta(hours=2), NOW - timedelta(days=9)], UTC_US),
        "clicks": [1.0, 2.0, 5.0, 9.0], "country": ["fr", "fr", "de", "it"]}),
        tmp_path / "stats.parquet")
    return lambda *args: run_cli("-w", "ws", *args)


def test_apply_materialize_read_and_check(cli: Cli, tmp_path: Path) -> None:
    repo = str(_repo(tmp_path))
    dry = cli("features", "apply", repo, "--dry-run", "--json")
    assert dry.code == 0 and not dry.json()["applied"]
    assert cli("features", "list", "--json").json() == []
    plan = cli("features", "apply", repo)
    assert plan.code == 0 and "create" in plan.out and "Applied 3 definition(s)" in plan.out
    again = cli("features", "apply", repo, "--json").json()
    assert {c["action"] for c in again["changes"]} == {"unchanged"}
    changed = cli("features", "apply", str(_repo(tmp_path, ttl_days=3)), "--json").json()
    assert {(c["name"], c["action"], c["version"]) for c in changed["changes"]
            if c["kind"] == "view"} == {("stats", "new version", 2)}
    listed = {(d["kind"], d["name"]): d["version"] for d in cli("features", "list",
                                                                 "--json").json()}
    assert listed[("view", "stats")] == 2

    entities = tmp_path / "entities.parquet"
    pq.write_table(pa.table({"user_id": pa.array([2, 1, 4], pa.int64()),
                             "event_timestamp": pa.array([NOW] * 3, UTC_US)}), entities)
    out = tmp_path / "train.parquet"
    hist = cli("features", "historical", str(entities), "svc", "-o", str(out), "--json")
    assert hist.code == 0 and hist.json()["views"] == ["stats@2"]
    assert pq.read_table(out).column("clicks").to_pylist() == [5.0, 2.0, None]

    start = (NOW - timedelta(days=30)).isoformat()
    mat = cli("features", "materialize", "--start", start, "--end",
              (NOW + timedelta(seconds=1)).isoformat(), "--json")
    assert mat.code == 0 and mat.json()[0]["rows"] == 3
    incremental = cli("features", "materialize", "--json")  # from the watermark: nothing new
    assert incremental.code == 0 and incremental.json()[0]["rows"] == 0
    online = cli("features", "online", "svc", "-e", "user_id=1", "-e", "user_id=3",
                 "-e", "user_id=9", "--json").json()
    assert online["values"]["clicks"] == [2.0, None, None]
    assert online["statuses"]["clicks"] == ["present", "expired", "missing"]
    table = cli("features", "online", "stats:clicks", "-e", "user_id=1")
    assert table.code == 0 and "│ 1       │ 2      │" in table.out
    log = cli("features", "materializations", "--json").json()
    assert [m["status"] for m in log] == ["completed", "completed"]
    shown = cli("features", "show", "stats", "--json").json()
    assert shown["version"] == 2 and shown["spec"]["owner"] == "ana"
    assert "materialized completed" in cli("features", "show", "stats").out

    skew = cli("features", "check-skew", "svc", "--json")
    assert skew.code == 0 and skew.json()["ok"] and skew.json()["entities"] == 3

    # A push that reaches only the offline side is skew, and the check says so (exit 1).
    fresh = tmp_path / "fresh.parquet"
    pq.write_table(pa.table({"user_id": pa.array([2], pa.int64()),
                             "ts": pa.array([NOW], UTC_US), "clicks": [7.0],
                             "country": ["de"]}), fresh)
    assert cli("features", "push", "stats", str(fresh), "--to", "offline").code == 0
    skewed = cli("features", "check-skew", "svc")
    assert skewed.code == 1 and "1 mismatch" in skewed.out
    report = cli("features", "check-skew", "svc", "--json").json()
    assert [(m["entity"], m["feature"], m["offline"], m["online"]) for m in
            report["mismatches"]] == [({"user_id": 2}, "clicks", 7.0, 5.0)]
    assert cli("features", "push", "stats", str(fresh), "--json").json()["rows"] == 1
    assert cli("features", "check-skew", "svc").code == 0


@pytest.mark.parametrize(("args", "message"), [
    (["features", "apply", "nowhere"], "is not a folder"),
    (["features", "show", "nothing"], "No feature definition named 'nothing'"),
    (["features", "online", "svc", "-e", "user_id=x"], "user_id is an int64 key"),
    (["features", "online", "svc", "-e", "user"], "is not KEY=VALUE"),
    (["features", "online", "nope:x", "-e", "user_id=1"], "Unknown feature view 'nope'"),
    (["features", "materialize", "--start", "yesterday"], "not an ISO 8601 time"),
    (["features", "materialize", "--start", "2026-01-02T00:00:00+00:00", "--end",
      "2026-01-01T00:00:00+00:00"], "is not before end"),
    (["features", "historical", "missing.parquet", "svc", "-o", "x.parquet"],
     "does not exist"),
    (["features", "push", "stats", "missing.parquet"], "missing.parquet"),
])
def test_user_errors_exit_2_with_one_line(cli: Cli, tmp_path: Path, args: list[str],
                                          message: str) -> None:
    assert cli("features", "apply", str(_repo(tmp_path))).code == 0
    result = cli(*args)
    assert result.code == 2, result.out + result.err
    assert message in result.err and result.err.strip().count("\n") == 0, result.err
    assert not (tmp_path / "x.parquet").exists()
