"""Materialization split by key hash over Ray (the pipelines' executor) writes exactly what
one process writes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlwright.features import apply_repository, materialize, online_reader
from mlwright.workspace import Workspace

from .support import table, utc, write_parquet

REPO = """
user = Entity("user", join_keys={"user_id": "int64"})
stats = FeatureView("stats", entities=[user], source=ParquetSource("../data/stats.parquet"),
                    timestamp_field="event_timestamp", features=[Field("clicks", "float64")])
"""


@pytest.fixture
def ray_module() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    yield ray
    ray.shutdown()


@pytest.mark.xdist_group("ray")
def test_materialization_on_ray_matches_one_process(ray_module: Any, ws: Workspace,
                                                    make_repo: Callable[..., Path],
                                                    tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ids = list(range(200))
    write_parquet(tmp_path / "data" / "stats.parquet", table(
        user_id=ids + ids, event_timestamp=[utc(2026, 1, 1)] * 200 + [utc(2026, 1, 2)] * 200,
        clicks=[0.0] * 200 + [float(i) for i in ids]))
    apply_repository(make_repo(REPO), workspace=ws)
    [result] = materialize(utc(2025, 1, 1), utc(2026, 2, 1), workspace=ws, workers=3,
                           executor="ray")
    assert result.rows == 200
    assert ray_module.is_initialized()
    with online_reader(["stats:clicks"], workspace=ws) as reader:
        assert reader.get({"user_id": ids}).values["clicks"] == [float(i) for i in ids]
