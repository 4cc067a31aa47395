"""Batch inference: tables scored in partitions by the server's own path, equal to the
model's own predictions, point-in-time features for a model with a feature service,
resumable after a failure, and refused against another version or input."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from mlwright.data.datasets import register_dataset
from mlwright.errors import DataError, NotFoundError, RequestValidationError, ServingError
from mlwright.features import apply_repository, get_historical_features
from mlwright.registry.versions import load_model, register_model
from mlwright.serving.batch import predict_table
from mlwright.workspace import WORKSPACE_ENV, Workspace, init_workspace

UTC_US = pa.timestamp("us", "UTC")


@pytest.fixture
def db_ws(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[Workspace]:
    """A workspace per metadata database: SQLite and a fresh PostgreSQL database."""
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    workspace = init_workspace(tmp_path / "ws", metadata_url=database_url)
    yield workspace
    workspace.close()


def rows(n: int, seed: int = 0, start: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": [f"r{start + i}" for i in range(n)],
                         "a": rng.normal(size=n), "b": rng.normal(size=n),
                         "note": ["extra column"] * n})


def register_linear(ws: Workspace, name: str = "lin", seed: int = 0) -> str:
    train = rows(200, seed)[["a", "b"]]
    train["y"] = train["a"] + 2 * train["b"] + np.random.default_rng(seed).normal(0, .1, 200)
    model = LinearRegression().fit(train[["a", "b"]], train["y"])
    return register_model(name, model, training_data=train, label="y", workspace=ws).ref


def write(path: Path, frame: pd.DataFrame, row_group_size: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path,
                   row_group_size=row_group_size)
    return path


def output(folder: Path) -> pa.Table:
    return pq.read_table(sorted(folder.glob("part-*.parquet")))


def test_predictions_equal_the_models_own_in_partitions(ws: Workspace, tmp_path: Path) -> None:
    ref = register_linear(ws)
    data = rows(250, seed=1)
    source = write(tmp_path / "in.parquet", data, row_group_size=40)
    seen: list[tuple[int, int]] = []
    summary = predict_table(ref, source, tmp_path / "out", workspace=ws, partition_rows=100,
                            progress=lambda done, total: seen.append((done, total)))
    assert (summary.partitions, summary.scored, summary.skipped) == (3, 3, 0)
    assert (summary.rows, summary.rows_scored, summary.version) == (250, 250, 1)
    assert seen == [(0, 250), (100, 250), (200, 250), (250, 250)]
    result = output(tmp_path / "out")
    assert result.column_names == ["row", "y", "model", "model_version"]
    assert result.column("row").to_pylist() == list(range(250))
    expected = load_model(ref, workspace=ws).predict(data)
    np.testing.assert_allclose(result.column("y").to_numpy(), expected, rtol=1e-12)
    assert set(result.column("model").to_pylist()) == {"lin"}
    assert set(result.column("model_version").to_pylist()) == {1}
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    assert manifest["complete"] and manifest["version"] == 1
    assert [p["rows"] for p in manifest["partitions"]] == [100, 100, 50]


def test_a_dataset_version_scored_by_local_processes_keeps_its_ids(db_ws: Workspace,
                                                                   tmp_path: Path) -> None:
    ws = db_ws
    ref = register_linear(ws)
    data = rows(300, seed=2)
    register_dataset("inputs", data, workspace=ws)
    summary = predict_table("lin@latest", "inputs@1", tmp_path / "out", workspace=ws,
                            partition_rows=64, workers=3, id_column="id")
    assert (summary.partitions, summary.scored, summary.input) == (5, 5, "inputs@1")
    result = output(tmp_path / "out")
    assert result.column("id").to_pylist() == data["id"].tolist()
    np.testing.assert_allclose(result.column("y").to_numpy(),
                               load_model(ref, workspace=ws).predict(data), rtol=1e-12)


def test_multi_class_probabilities_are_a_list_column(ws: Workspace, tmp_path: Path) -> None:
    train = rows(300, seed=3)[["a", "b"]]
    train["label"] = np.select([train["a"] < -0.5, train["a"] > 0.5], ["low", "high"], "mid")
    model = LogisticRegression(max_iter=500).fit(train[["a", "b"]], train["label"])
    ref = register_model("cls", model, training_data=train, label="label", workspace=ws).ref
    data = rows(40, seed=4)
    predict_table(ref, write(tmp_path / "in.parquet", data), tmp_path / "out", workspace=ws)
    result = output(tmp_path / "out")
    assert pa.types.is_list(result.schema.field("label").type)
    np.testing.assert_allclose(np.array(result.column("label").to_pylist()),
                               model.predict_proba(data[["a", "b"]]), rtol=1e-12)


REPO = """
from mlwright.features import Entity, FeatureService, FeatureView, Field, ParquetSource

user = Entity("user", join_keys={"user_id": "int64"})
stats = FeatureView("stats", entities=[user], source=ParquetSource("stats.parquet"),
                    timestamp_field="event_timestamp", features=[Field("clicks", "float64")])
svc = FeatureService("svc", features=["stats:clicks"])
"""


def test_a_feature_service_model_gets_point_in_time_features(ws: Workspace,
                                                             tmp_path: Path) -> None:
    day = datetime(2026, 1, 1, tzinfo=UTC)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "defs.py").write_text(textwrap.dedent(REPO))
    # clicks of user u on day d is 10 * u + d: a row's value says which day was joined.
    stats = pa.table({"user_id": pa.array([u for u in range(5) for _ in range(4)], pa.int64()),
                      "event_timestamp": pa.array([day + timedelta(days=d) for _ in range(5)
                                                   for d in range(4)], UTC_US),
                      "clicks": [10.0 * u + d for u in range(5) for d in range(4)]})
    pq.write_table(stats, repo / "stats.parquet")
    apply_repository(repo, workspace=ws)
    rng = np.random.default_rng(5)
    train = pd.DataFrame({"clicks": rng.uniform(0, 50, 100), "x": rng.normal(size=100)})
    train["y"] = 3 * train["clicks"] - train["x"]
    model = LinearRegression().fit(train[["clicks", "x"]], train["y"])
    ref = register_model("pit", model, training_data=train, label="y", feature_service="svc",
                         workspace=ws).ref
    n = 60
    entities = pa.table({
        "user_id": pa.array(rng.integers(0, 5, n), pa.int64()),
        "when": pa.array([day + timedelta(hours=int(h)) for h in rng.integers(0, 100, n)],
                         UTC_US),
        "x": rng.normal(size=n)})
    source = tmp_path / "entities.parquet"
    pq.write_table(entities, source)
    predict_table(ref, source, tmp_path / "out", workspace=ws, partition_rows=25,
                  timestamp_column="when")
    joined = get_historical_features(entities, "svc", workspace=ws,
                                     timestamp_column="when").to_pandas()
    assert joined["clicks"].nunique() > 5  # different days were joined
    expected = load_model(ref, workspace=ws).predict(joined)
    result = output(tmp_path / "out")
    np.testing.assert_allclose(result.column("y").to_numpy(), expected, rtol=1e-12)


def test_a_bad_row_fails_its_partition_and_a_rerun_resumes(ws: Workspace, tmp_path: Path) -> None:
    ref = register_linear(ws)
    folder = tmp_path / "in"
    first = rows(100, seed=6)
    second = rows(100, seed=7, start=100)
    write(folder / "a.parquet", first)
    bad = second.copy()
    bad.loc[37, "b"] = np.inf
    write(folder / "b.parquet", bad)
    out = tmp_path / "out"
    with pytest.raises(RequestValidationError) as failure:
        predict_table(ref, folder, out, workspace=ws, partition_rows=50, id_column="id")
    message = str(failure.value)
    assert "\n" not in message
    assert "Row 137 (id='r137') of input 'b.parquet' (partition 2 (b.parquet rows 0-49))" \
        in message
    assert "b: infinity is not allowed" in message
    assert "2 of 4 partitions are written and kept" in message
    assert failure.value.errors == [{"field": "b", "problem": "infinity is not allowed"}]
    assert sorted(p.name for p in out.glob("part-*")) == ["part-00000.parquet",
                                                          "part-00001.parquet"]
    assert not list(out.glob(".*.tmp"))
    written = (out / "part-00000.parquet").stat().st_mtime_ns
    write(folder / "b.parquet", second)  # fixed
    summary = predict_table(ref, folder, out, workspace=ws, partition_rows=50, id_column="id")
    assert (summary.partitions, summary.scored, summary.skipped) == (4, 2, 2)
    assert summary.rows_scored == 100
    assert (out / "part-00000.parquet").stat().st_mtime_ns == written  # skipped, not redone
    result = output(out)
    both = pd.concat([first, second], ignore_index=True)
    assert result.column("id").to_pylist() == both["id"].tolist()
    np.testing.assert_allclose(result.column("y").to_numpy(),
                               load_model(ref, workspace=ws).predict(both), rtol=1e-12)
    again = predict_table(ref, folder, out, workspace=ws, partition_rows=50, id_column="id")
    assert (again.scored, again.skipped) == (0, 4)


def test_another_version_or_input_is_refused_unless_overwriting(ws: Workspace,
                                                                tmp_path: Path) -> None:
    register_linear(ws)
    source = write(tmp_path / "in.parquet", rows(30))
    out = tmp_path / "out"
    predict_table("lin", source, out, workspace=ws)
    register_linear(ws, seed=9)  # lin@2 is now the latest
    with pytest.raises(ServingError, match=r"holds predictions of lin@1, not of lin@2 \(lin\); "
                                           r"write to another folder, or pass --overwrite"):
        predict_table("lin", source, out, workspace=ws)
    other = write(tmp_path / "other.parquet", rows(30, seed=1))
    with pytest.raises(ServingError, match="holds predictions for input"):
        predict_table("lin@1", other, out, workspace=ws)
    with pytest.raises(ServingError, match="partitioning did"):
        predict_table("lin@1", source, out, workspace=ws, partition_rows=10)
    summary = predict_table("lin", source, out, workspace=ws, overwrite=True)
    assert (summary.version, summary.scored) == (2, 1)
    assert set(output(out).column("model_version").to_pylist()) == {2}


def test_clear_errors_for_wrong_references_and_inputs(ws: Workspace, tmp_path: Path) -> None:
    source = write(tmp_path / "in.parquet", rows(10))
    with pytest.raises(NotFoundError, match="No model named 'ghost'"):
        predict_table("ghost@1", source, tmp_path / "out", workspace=ws)
    ref = register_linear(ws)
    with pytest.raises(DataError, match="does not exist"):
        predict_table(ref, tmp_path / "missing.parquet", tmp_path / "out", workspace=ws)
    with pytest.raises(DataError, match="neither a file or folder nor a registered dataset"):
        predict_table(ref, "nodata@1", tmp_path / "out", workspace=ws)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"holds no \.parquet files"):
        predict_table(ref, tmp_path / "empty", tmp_path / "out", workspace=ws)
    short = write(tmp_path / "short.parquet", rows(10)[["a"]])
    with pytest.raises(ServingError, match=r"has no column 'b'; model lin@1 needs a, b"):
        predict_table(ref, short, tmp_path / "out", workspace=ws)
    with pytest.raises(ServingError, match="has no column 'nope'"):
        predict_table(ref, source, tmp_path / "out", workspace=ws, id_column="nope")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(ServingError, match=r"not empty and holds no _manifest\.json"):
        predict_table(ref, source, busy, workspace=ws)
    assert not list((tmp_path / "out").glob("part-*"))


def test_a_model_failure_names_the_partition(ws: Workspace, tmp_path: Path) -> None:
    ref = register_linear(ws)
    data = rows(20)
    data["b"] = None  # nullable in the signature, but the model cannot take NaN
    source = write(tmp_path / "in.parquet", data.astype({"b": "float64"}))
    with pytest.raises(ServingError, match=r"^Partition 0 \(in.parquet rows 0-19\) failed: "
                                           r"ValueError: .*NaN.* 0 of 1 partitions"):
        predict_table(ref, source, tmp_path / "out", workspace=ws)


@pytest.fixture
def ray_module() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    yield ray
    ray.shutdown()


@pytest.mark.xdist_group("ray")
def test_partitions_on_ray_match_the_model(ray_module: Any, ws: Workspace, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ref = register_linear(ws)
    data = rows(200, seed=8)
    source = write(tmp_path / "in.parquet", data)
    summary = predict_table(ref, source, tmp_path / "out", workspace=ws, partition_rows=50,
                            workers=2, executor="ray")
    assert (summary.partitions, summary.scored) == (4, 4)
    assert ray_module.is_initialized()
    result = output(tmp_path / "out")
    assert result.column("row").to_pylist() == list(range(200))
    np.testing.assert_allclose(result.column("y").to_numpy(),
                               load_model(ref, workspace=ws).predict(data), rtol=1e-12)
