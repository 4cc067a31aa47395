"""A model with a feature service: the request carries entity keys and request fields, the
server looks the features up online (on-demand transform included) and logs what it used."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from starlette.testclient import TestClient

from mlwright.features import apply_repository, get_historical_features, materialize, online_reader
from mlwright.registry import register_model
from mlwright.security.tokens import TokenVerifier
from mlwright.serving.app import build_app
from mlwright.serving.host import ModelHost
from mlwright.serving.settings import ServeSettings
from mlwright.workspace import WORKSPACE_ENV, Workspace, init_workspace

REPO = """
from datetime import timedelta

import pandas as pd

from mlwright.features import *  # noqa: F403

user = Entity("user", join_keys={"user_id": "int64"})
stats = FeatureView("stats", entities=[user], source=ParquetSource("stats.parquet"),
                    timestamp_field="event_timestamp", ttl=timedelta(days=3650),
                    features=[Field("clicks", "float64"), Field("views", "int64")])
request = RequestSource("request", schema=[Field("amount", "float64")])


def per_click(frame):
    return pd.DataFrame({"amount_per_click": frame["amount"] / frame["clicks"]})


ratios = OnDemandFeatureView("ratios", sources=[stats, request], transform=per_click,
                             features=[Field("amount_per_click", "float64")])
scoring = FeatureService("scoring", features=["stats:clicks", "stats:views",
                                              "ratios:amount_per_click"])
"""
USERS = 30


@pytest.fixture
def feature_ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    ws = init_workspace(tmp_path / "ws")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "defs.py").write_text(textwrap.dedent(REPO), encoding="utf-8")
    now = datetime.now(UTC)
    rng = np.random.default_rng(3)
    users = np.repeat(np.arange(1, USERS + 1), 2)
    pq.write_table(pa.table({
        "user_id": pa.array(users, pa.int64()),
        "event_timestamp": pa.array([now - timedelta(days=int(d)) for d in
                                     np.tile([3, 1], USERS)], pa.timestamp("us", "UTC")),
        "clicks": pa.array(rng.uniform(1, 20, len(users))),
        "views": pa.array(rng.integers(20, 100, len(users)), pa.int64())}),
        repo / "stats.parquet")
    apply_repository(repo, workspace=ws)
    materialize(now - timedelta(days=10), now + timedelta(seconds=1), workspace=ws)
    entity = pa.table({"user_id": pa.array(np.arange(1, USERS + 1), pa.int64()),
                       "event_timestamp": pa.array([now] * USERS, pa.timestamp("us", "UTC")),
                       "amount": pa.array(rng.uniform(10, 50, USERS))})
    train = get_historical_features(entity, "scoring", workspace=ws).to_pandas()
    train["hour"] = rng.integers(0, 24, USERS)
    train["target"] = train.clicks * 0.1 + train.amount_per_click + train.hour * 0.01
    columns = ["clicks", "views", "amount_per_click", "hour"]
    model = lgb.LGBMRegressor(n_estimators=10, min_child_samples=2, verbose=-1)
    model.fit(train[columns], train["target"])
    register_model("scorer", model, training_data=train[[*columns, "target"]], label="target",
                   feature_service="scoring", workspace=ws)
    return ws


def test_features_are_looked_up_online_and_logged(feature_ws: Workspace) -> None:
    from mlwright.serving.trace import read_predictions

    host = ModelHost(feature_ws, ["scorer"], settings=ServeSettings(auth=False,
                                                                    log_flush_seconds=0.1))
    rows = [{"user_id": 3, "amount": 30.0, "hour": 5}, {"user_id": 999, "amount": 10.0, "hour": 1}]
    with TestClient(build_app(host, verifier=TokenVerifier(feature_ws))) as client:
        meta = client.get("/v2/models/scorer").json()
        assert [i["name"] for i in meta["inputs"]] == ["user_id", "amount", "hour"]
        response = client.post("/v1/models/scorer/predict", json={"records": rows})
        assert response.status_code == 200, response.text
        missing_key = client.post("/v1/models/scorer/predict",
                                  json={"records": [{"amount": 1.0, "hour": 1}]})
        assert missing_key.status_code == 422
        assert missing_key.json()["errors"] == [{"field": "records[0].user_id",
                                                 "problem": "missing"}]
        listed = client.get("/v1/models").json()["models"][0]
        assert listed["feature_service"] == "scoring" and listed["feature_views"] == ["stats@1"]
    with online_reader("scoring", workspace=feature_ws) as reader:
        online = reader.get({"user_id": [3, 999], "amount": [30.0, 10.0]}).values
    frame = pd.DataFrame({**online, "hour": [5, 1]})[["clicks", "views", "amount_per_click", "hour"]]
    from mlwright.registry import load_model

    want = load_model("scorer", workspace=feature_ws).predict(frame.astype(float))
    assert np.allclose(response.json()["predictions"], want, atol=1e-12)
    logged = read_predictions(feature_ws, request_id=response.json()["request_id"])
    assert logged.num_rows == 2
    assert logged.column("feature_views").to_pylist() == [["stats@1"], ["stats@1"]]
    features = logged.column("features").to_pylist()
    assert features[0]["clicks"] == pytest.approx(online["clicks"][0])
    assert features[1]["clicks"] is None  # user 999 has no data: null, predicted anyway
