"""`mlwright trace REQUEST_ID` through the real entry point."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from mlwright import register_dataset
from mlwright.registry import register_model
from mlwright.serving.feedback import FeedbackItem, record_feedback
from mlwright.serving.predlog import PredictionLog, PredictionRecord
from mlwright.workspace import open_workspace

Cli = Callable[..., Any]


@pytest.fixture
def cli(run_cli: Cli, tmp_path: Path) -> Cli:
    assert run_cli("init", "ws").code == 0
    ws = open_workspace(tmp_path / "ws")
    try:
        rng = np.random.default_rng(1)
        frame = pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100)})
        frame["y"] = (frame["a"] > 0).astype(int)
        register_dataset("train", frame, workspace=ws)
        register_model("scorer", LogisticRegression().fit(frame[["a", "b"]], frame["y"]),
                       training_data="train@1", label="y", workspace=ws)
        with PredictionLog(ws.predictions_dir, writer_id="t", flush_interval=3600) as log:
            log.record(PredictionRecord(
                "req-42", time.time_ns() // 1000, "scorer", 1,
                inputs={"a": np.arange(5.0), "b": np.ones(5)}, features={},
                outputs=np.linspace(0.1, 0.5, 5), feature_views=["nowhere@2"],
                latency_ms=3.25))
        record_feedback([FeedbackItem("req-42", 1, row=4)], workspace=ws)
    finally:
        ws.close()
    return run_cli


def test_trace_prints_the_request_and_its_lineage(cli: Cli) -> None:
    result = cli("-w", "ws", "trace", "req-42")
    assert result.code == 0, result.err
    out = result.out
    for needle in ("request req-42", "3.2 ms", "status 200", "5 row(s)", "scorer@1 sklearn",
                   "rows (3 of 5)", "#0 a=0, b=1 → 0.1", "feature view nowhere@2",
                   "no feature view 'nowhere' version 2", "dataset train@1",
                   "feedback: row 4 → 1"):
        assert needle in out, (needle, out)
    assert "#3" not in out
    assert "#4" in cli("-w", "ws", "trace", "req-42", "--rows", "9").out


def test_trace_json_is_for_scripts(cli: Cli) -> None:
    result = cli("-w", "ws", "trace", "req-42", "--json")
    assert result.code == 0, result.err
    data = result.json()
    (prediction,) = data["predictions"]
    assert (prediction["ref"], prediction["latency_ms"], len(prediction["rows"])) == \
        ("scorer@1", 3.25, 5)
    assert prediction["rows"][4] == {"row": 4, "inputs": {"a": 4.0, "b": 1.0},
                                     "features": None, "output": 0.5}
    assert {n["id"] for n in prediction["lineage"]["nodes"]} == {"model:scorer@1",
                                                                 "dataset:train@1"}
    assert data["feedback"][0]["label"] == 1.0


def test_an_unknown_request_id_exits_2_with_one_line(cli: Cli) -> None:
    result = cli("-w", "ws", "trace", "missing")
    assert result.code == 2
    assert "No prediction with request id 'missing' in the prediction log at" in result.err
    assert result.out == ""
