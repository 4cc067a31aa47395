"""`mlwright predict` and `mlwright stream` through the real entry point."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LinearRegression

from mlwright.registry.versions import register_model

Cli = Callable[..., Any]
REDIS = os.environ.get("MLWRIGHT_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
def cli(run_cli: Cli, tmp_path: Path) -> Cli:
    assert run_cli("init", "ws").code == 0
    return run_cli


def register(tmp_path: Path) -> LinearRegression:
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
    train["y"] = train["a"] - train["b"]
    model = LinearRegression().fit(train[["a", "b"]], train["y"])
    register_model("lin", model, training_data=train, label="y",
                   workspace=str(tmp_path / "ws"))
    return model


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})


def test_predict_scores_a_folder_and_resumes_after_a_bad_row(cli: Cli, tmp_path: Path) -> None:
    model = register(tmp_path)
    first, second = frame(30, 1), frame(30, 2)
    (tmp_path / "in").mkdir()
    first.to_parquet(tmp_path / "in" / "1.parquet")
    broken = second.copy()
    broken.loc[4, "a"] = np.inf
    broken.to_parquet(tmp_path / "in" / "2.parquet")
    args = ("-w", "ws", "predict", "lin@1", "--input", "in", "--output", "out",
            "--partition-rows", "10")
    failed = cli(*args)
    assert failed.code == 2
    assert "Row 34 of input '2.parquet' (partition 3 (2.parquet rows 0-9)) does not match " \
           "model lin@1's signature: a: infinity is not allowed. 3 of 6 partitions are " \
           "written and kept" in " ".join(failed.err.split())
    second.to_parquet(tmp_path / "in" / "2.parquet")
    resumed = cli(*args, "--json")
    assert resumed.code == 0, resumed.err
    summary = resumed.json()
    assert {k: summary[k] for k in ("ref", "partitions", "scored", "skipped", "rows")} == \
        {"ref": "lin@1", "partitions": 6, "scored": 3, "skipped": 3, "rows": 60}
    scored = pq.read_table(sorted((tmp_path / "out").glob("part-*.parquet")))
    np.testing.assert_allclose(scored.column("y").to_numpy(),
                               model.predict(pd.concat([first, second])), rtol=1e-12)
    again = cli(*args)
    assert again.code == 0, again.err
    text = " ".join(again.out.split())
    assert "Predictions of lin@1" in text
    assert "6: 0 scored, 6 skipped (finished earlier)" in text


def test_predict_with_workers_and_clear_errors(cli: Cli, tmp_path: Path) -> None:
    model = register(tmp_path)
    data = frame(50, 3)
    pq.write_table(pa.Table.from_pandas(data), tmp_path / "in.parquet")
    done = cli("-w", "ws", "predict", "lin", "-i", "in.parquet", "-o", "out", "--workers", "2",
               "--partition-rows", "20", "--json")
    assert done.code == 0, done.err
    assert done.json()["scored"] == 3
    scored = pq.read_table(sorted((tmp_path / "out").glob("part-*.parquet")))
    assert scored.column("row").to_pylist() == list(range(50))
    np.testing.assert_allclose(scored.column("y").to_numpy(), model.predict(data), rtol=1e-12)
    unknown = cli("-w", "ws", "predict", "ghost@1", "-i", "in.parquet", "-o", "out2")
    assert unknown.code == 2 and "No model named 'ghost'" in unknown.err
    missing = cli("-w", "ws", "predict", "lin", "-i", "nowhere.parquet", "-o", "out2")
    assert missing.code == 2 and "Input 'nowhere.parquet' does not exist" in missing.err
    register(tmp_path)  # lin@2
    refused = cli("-w", "ws", "predict", "lin", "-i", "in.parquet", "-o", "out")
    assert refused.code == 2 and "holds predictions of lin@1, not of lin@2" in \
        " ".join(refused.err.split())
    redone = cli("-w", "ws", "predict", "lin", "-i", "in.parquet", "-o", "out", "--overwrite",
                 "--json")
    assert redone.code == 0 and redone.json()["version"] == 2


def test_stream_scores_events_until_idle(cli: Cli, tmp_path: Path) -> None:
    redis = pytest.importorskip("redis")
    try:
        client = redis.Redis.from_url(REDIS, socket_connect_timeout=2, decode_responses=True)
        client.ping()
    except redis.ConnectionError as exc:
        if os.environ.get("CI"):  # CI machines have Redis: its absence is a failure there
            pytest.fail(f"Redis is not usable at {REDIS}: {exc}")
        pytest.skip(f"Redis is not usable at {REDIS}: {exc}")
    model = register(tmp_path)
    name = f"mlwright-test-cli-stream-{uuid.uuid4().hex[:12]}"
    try:
        client.xadd(f"{name}:in", {"a": "1.5", "b": "0.5"})
        client.xadd(f"{name}:in", {"a": "oops", "b": "0.5"})
        base = REDIS.rstrip("/")
        result = cli("-w", "ws", "stream", "lin@1", "--source", f"{base}/{name}:in", "--sink",
                     f"{base}/{name}:out", "--idle-exit", "--block-ms", "200", "--json")
        assert result.code == 0, result.err
        stats = result.json()
        assert (stats["read"], stats["predicted"], stats["dead"]) == (2, 1, 1)
        [(_, out)] = client.xrange(f"{name}:out")
        assert json.loads(out["prediction"]) == pytest.approx(
            model.predict(pd.DataFrame({"a": [1.5], "b": [0.5]}))[0])
        [(_, dead)] = client.xrange(f"{name}:in:dead")
        assert dead["reason"] == "a: expected a number, got 'oops'"
        bad = cli("-w", "ws", "stream", "lin@1", "--source", "nats://h:4222/x", "--sink",
                  f"{base}/{name}:out")
        assert bad.code == 2 and "is not redis://HOST:PORT/DB/STREAM" in bad.err
    finally:
        client.delete(f"{name}:in", f"{name}:out", f"{name}:in:dead")
        client.close()
