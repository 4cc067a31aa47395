"""`mlwright model ...` through the real entry point."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlwright.registry import register_model

Cli = Callable[..., Any]


@pytest.fixture
def cli(run_cli: Cli, tmp_path: Path) -> Cli:
    assert run_cli("init", "ws").code == 0
    return run_cli


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 2))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": (x[:, 0] + x[:, 1] > 0).astype(int)})


def test_model_commands(cli: Cli, frame: pd.DataFrame, tmp_path: Path) -> None:
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(frame[["a", "b"]],
                        frame["y"]), num_boost_round=5)
    failed = {"passed": False, "results": [{"gate_id": "metric_threshold(auc>=0.99)",
                                            "blocking": True, "passed": False,
                                            "message": "auc 0.95 is 0.04 below 0.99"}]}
    register_model("clf", booster, training_data=frame, label="y", metrics={"auc": 0.95},
                   workspace=str(tmp_path / "ws"))
    register_model("clf", booster, training_data=frame, label="y", gates=failed,
                   workspace=str(tmp_path / "ws"))
    listed = cli("-w", "ws", "model", "list", "--json").json()
    assert listed == [{"name": "clf", "versions": 2, "latest": 2, "aliases": {},
                       "description": None}]
    moved = cli("-w", "ws", "model", "alias", "clf", "champion", "1", "--json").json()
    assert isinstance(moved, dict) and (moved["from_version"], moved["to_version"]) == (None, 1)
    refused = cli("-w", "ws", "model", "alias", "clf", "champion", "2")
    assert refused.code == 2
    assert "Model clf@2 failed its gates and cannot become 'champion': auc 0.95 is 0.04 below " \
           "0.99" in " ".join(refused.err.split())
    shown = cli("-w", "ws", "model", "show", "clf@champion", "--json").json()
    assert isinstance(shown, dict)
    assert (shown["version"], shown["aliases"], shown["versions"]) == (1, ["champion"], [2, 1])
    assert [c["name"] for c in shown["signature"]["inputs"]] == ["a", "b"]
    people = cli("-w", "ws", "model", "show", "clf@2")
    assert "FAILED" in people.out and "metric_threshold(auc>=0.99)" in people.out
    tree = cli("-w", "ws", "model", "lineage", "clf@1")
    assert tree.code == 0 and "clf@1" in tree.out
    graph = cli("-w", "ws", "model", "lineage", "clf@1", "--json").json()
    assert isinstance(graph, dict) and graph["root"] == "model:clf@1"
    history = cli("-w", "ws", "model", "aliases", "clf", "--json").json()
    assert isinstance(history, list) and [(h["alias"], h["to_version"]) for h in history] == \
        [("champion", 1)]
    assert cli("-w", "ws", "model", "alias", "clf", "champion", "--remove").code == 0
    assert cli("-w", "ws", "model", "alias", "clf", "champion").code == 2  # no version, no --remove
    data = tmp_path / "input.parquet"
    frame[["a", "b"]].to_parquet(data)
    out = tmp_path / "scored.parquet"
    scored = cli("-w", "ws", "model", "predict", "clf@1", str(data), "-o", str(out))
    assert scored.code == 0, scored.err
    np.testing.assert_allclose(pq.read_table(out)["prediction"].to_numpy(),
                               booster.predict(frame[["a", "b"]]))
    missing = cli("-w", "ws", "model", "show", "nothing")
    assert missing.code == 2 and "No model named 'nothing'" in missing.err
    bad = tmp_path / "bad.parquet"
    frame[["a"]].to_parquet(bad)
    wrong = cli("-w", "ws", "model", "predict", "clf@1", str(bad), "-o", str(out))
    assert wrong.code == 2 and "needs column 'b'" in wrong.err
