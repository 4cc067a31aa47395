"""Reading the logs back and tracing a request: model version → feature views → datasets →
run and code → feedback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

from mlwright import register_dataset
from mlwright.errors import NotFoundError
from mlwright.features import apply_repository
from mlwright.registry import register_model
from mlwright.serving.feedback import FeedbackItem, FeedbackLog, record_feedback
from mlwright.serving.predlog import PredictionLog, PredictionRecord
from mlwright.serving.trace import (
    PREDICTION_SCHEMA,
    read_feedback,
    read_predictions,
    trace,
)
from mlwright.workspace import WORKSPACE_ENV, Workspace, init_workspace

REPO = """\
from datetime import timedelta

from mlwright.features import DatasetSource, Entity, FeatureView, Field, ParquetSource

airport = Entity("airport", join_keys={{"airport": "string"}})
weather = FeatureView("weather", entities=[airport], source=DatasetSource("weather"),
                      timestamp_field="event_timestamp", features=[Field("temp", "float64")],
                      ttl={ttl})
delays = FeatureView("delays", entities=[airport], source=ParquetSource("delays.parquet"),
                     timestamp_field="event_timestamp", features=[Field("late", "float64")])
"""


def loans(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    income = rng.gamma(4.0, 15_000.0, n)
    debt = rng.uniform(0, 40_000, n)
    return pd.DataFrame({"income": income, "debt": debt,
                         "approved": (income / 1000 - debt / 2000) > 40})


def weather(temp: float) -> pa.Table:
    return pa.table({"airport": ["JFK", "SFO"], "temp": [temp, temp + 5],
                     "event_timestamp": pa.array([datetime(2024, 5, 1, tzinfo=UTC)] * 2,
                                                 pa.timestamp("us", "UTC"))})


def apply(ws: Workspace, ttl: str) -> None:
    folder = ws.root.parent / "repo"
    folder.mkdir(exist_ok=True)
    (folder / "defs.py").write_text(REPO.format(ttl=ttl), encoding="utf-8")
    pq.write_table(pa.table({"airport": ["JFK"], "late": [0.5],
                             "event_timestamp": pa.array([datetime(2024, 5, 1, tzinfo=UTC)],
                                                         pa.timestamp("us", "UTC"))}),
                   folder / "delays.parquet")
    apply_repository(folder, workspace=ws)


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    workspace = init_workspace(tmp_path / "ws")
    yield workspace
    workspace.close()


@pytest.fixture
def request_time(ws: Workspace) -> int:
    """A served model with training data and two feature views; the request's time falls
    between the first and second versions of the weather dataset and view."""
    frame = loans()
    register_dataset("loans", frame, workspace=ws)
    model = LogisticRegression().fit(frame[["income", "debt"]], frame["approved"])
    register_model("approvals", model, training_data="loans@1", label="approved",
                   workspace=ws)
    register_dataset("weather", weather(20.0), workspace=ws)
    apply(ws, "None")
    at = time.time_ns() // 1000
    time.sleep(0.01)
    register_dataset("weather", weather(30.0), workspace=ws)
    apply(ws, "timedelta(days=1)")  # weather@2; the request used weather@1
    return at


def served(ws: Workspace, at: int, request_id: str = "req-1") -> None:
    with PredictionLog(ws.predictions_dir, writer_id="t", flush_interval=3600) as log:
        log.record(PredictionRecord(
            request_id, at, "approvals", 1,
            inputs={"income": np.array([90_000.0, 20_000.0]), "debt": np.array([1e3, 3e4])},
            features={"temp": np.array([20.0, 25.0])},
            outputs=np.array([[0.1, 0.9], [0.8, 0.2]]),
            feature_views=["weather@1", "delays@v1", "gone@3"], latency_ms=2.5))


def test_a_trace_follows_the_request_to_data_run_and_feedback(ws: Workspace,
                                                             request_time: int) -> None:
    served(ws, request_time)
    record_feedback([FeedbackItem("req-1", label=True, row=0),
                     FeedbackItem("req-1", label="approved"),
                     FeedbackItem("someone-else", label=0.0)], workspace=ws)
    found = trace("req-1", workspace=ws)
    (prediction,) = found.predictions
    assert prediction.ref == "approvals@1" and prediction.status == 200
    assert prediction.time == datetime.fromtimestamp(request_time / 1e6, UTC)
    assert prediction.model_version is not None and prediction.model_version.flavor == "sklearn"
    assert [r["row"] for r in prediction.rows] == [0, 1]
    assert prediction.rows[0]["inputs"] == {"income": 90_000.0, "debt": 1_000.0}
    assert prediction.rows[0]["features"] == {"temp": 20.0}
    assert prediction.rows[1]["output"] == [0.8, 0.2]
    view, delays, gone = prediction.feature_views
    assert (view.name, view.version, view.kind, view.source) == ("weather", 1, "view",
                                                                 "dataset:weather")
    (dataset,) = view.datasets  # the version current when the request was served
    assert (dataset["declared"], dataset["ref"], dataset["num_rows"]) == ("weather", "weather@1", 2)
    assert (delays.ref, delays.version, delays.datasets) == ("delays@v1", 1, [])
    assert delays.paths == [str(ws.root.parent / "repo" / "delays.parquet")]
    assert gone.version is None and gone.note == ("no feature view 'gone' version 3 in this "
                                                  "workspace's feature store")
    assert prediction.lineage is not None
    kinds = {n["id"]: n["kind"] for n in prediction.lineage.nodes}
    assert kinds == {"model:approvals@1": "model", "dataset:loans@1": "dataset"}
    assert [(f["row"], f["label"]) for f in found.feedback] == [(0, 1.0), (None, "approved")]
    data = json.loads(json.dumps(found.to_dict(), allow_nan=False))
    assert data["request_id"] == "req-1" and data["log"] == ws.predictions_dir
    assert data["predictions"][0]["feature_views"][0]["datasets"][0]["ref"] == "weather@1"
    assert data["predictions"][0]["lineage"]["root"] == "model:approvals@1"
    assert data["feedback"][1]["label"] == "approved"


def test_an_unversioned_view_reference_means_the_newest_version(ws: Workspace,
                                                                 request_time: int) -> None:
    with PredictionLog(ws.predictions_dir, writer_id="t", flush_interval=3600) as log:
        log.record(PredictionRecord("r", request_time, "approvals", 1, {"income": [1.0]}, {},
                                    [0.5], ["weather"], 1.0))
    (view,) = trace("r", workspace=ws).predictions[0].feature_views
    assert (view.version, view.source) == (2, "dataset:weather")


def test_a_deleted_model_still_traces_with_a_note(ws: Workspace) -> None:
    with PredictionLog(ws.predictions_dir, writer_id="t", flush_interval=3600) as log:
        log.record(PredictionRecord("r", time.time_ns() // 1000, "vanished", 4, {"x": [1]}, {},
                                    ["yes"], [], 1.0, status=500))
    (prediction,) = trace("r", workspace=ws).predictions
    assert prediction.model_version is None and prediction.lineage is None
    assert prediction.note is not None and "vanished" in prediction.note
    assert prediction.rows == [{"row": 0, "inputs": {"x": 1}, "features": None,
                                "output": "yes"}]


def test_an_unknown_request_id_is_not_found(ws: Workspace) -> None:
    with pytest.raises(NotFoundError) as error:
        trace("nope", workspace=ws)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"No prediction with request id 'nope' in the prediction log at "
                              f"{ws.predictions_dir}; check the id")


def test_a_request_answered_by_two_models_traces_both(ws: Workspace) -> None:
    at = time.time_ns() // 1000
    with PredictionLog(ws.predictions_dir, writer_id="t", flush_interval=3600) as log:
        for model in ("champion", "shadow"):
            log.record(PredictionRecord("shared", at, model, 1, {"x": [1]}, {}, [0.5], [], 1.0))
    assert [p.ref for p in trace("shared", workspace=ws).predictions] == ["champion@1",
                                                                           "shadow@1"]


def test_reading_filters_by_model_request_and_time(ws: Workspace) -> None:
    empty = read_predictions(ws)
    assert empty.num_rows == 0 and empty.schema == PREDICTION_SCHEMA
    assert read_feedback(ws).num_rows == 0
    start = datetime(2024, 5, 1, 23, 30, tzinfo=UTC)
    with PredictionLog(ws.predictions_dir, writer_id="t", flush_interval=3600) as log:
        for i in range(6):  # every 20 minutes, across midnight
            moment = start + timedelta(minutes=20 * i)
            log.record(PredictionRecord(f"r{i}", int(moment.timestamp() * 1e6),
                                        "a" if i % 2 else "b", 1, {"x": [i]}, {}, [i / 10],
                                        [], 1.0))

    def ids(**filters: object) -> list[str]:
        return read_predictions(ws, **filters).column("request_id").to_pylist()  # type: ignore[arg-type]

    assert ids() == [f"r{i}" for i in range(6)]
    assert ids(model="a") == ["r1", "r3", "r5"]
    assert ids(request_id="r4") == ["r4"]
    assert ids(since=datetime(2024, 5, 2, 0, 10, tzinfo=UTC)) == ["r2", "r3", "r4", "r5"]
    assert ids(until=datetime(2024, 5, 2, 0, 10)) == ["r0", "r1"]  # naive: UTC
    assert ids(model="b", since=start + timedelta(minutes=1),
               until=start + timedelta(hours=2)) == ["r2", "r4"]
    assert ids(model="nobody") == []
    table = read_predictions(ws)
    assert table.schema.names[:len(PREDICTION_SCHEMA)] == PREDICTION_SCHEMA.names
    assert table.column("features").null_count == 6  # no file had features


def test_feedback_round_trip(ws: Workspace) -> None:
    at = int(datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp() * 1e6)
    with FeedbackLog(ws.feedback_dir, writer_id="t", flush_interval=3600) as log:
        log.record(FeedbackItem("a", 1, row=0, time_us=at))
        log.record(FeedbackItem("a", np.float32(0.5), row=1, time_us=at + 1))
        log.record(FeedbackItem("b", "refused", time_us=at + 2))
        log.record(FeedbackItem("c", {"classes": ["x", "y"]}, time_us=at + 3))
        log.record(FeedbackItem("d", None, time_us=at + 3_600_000_000))
    files = sorted(p.relative_to(ws.feedback_dir).as_posix().rsplit("/", 1)[0]
                   for p in Path(ws.feedback_dir).rglob("*.parquet"))
    assert files == ["date=2024-05-01/hour=12", "date=2024-05-01/hour=13"]
    rows = read_feedback(ws).to_pylist()
    assert [(r["request_id"], r["row"], r["label"], r["label_text"], r["label_json"])
            for r in rows] == [("a", 0, 1.0, None, None), ("a", 1, 0.5, None, None),
                               ("b", None, None, "refused", None),
                               ("c", None, None, None, '{"classes": ["x", "y"]}'),
                               ("d", None, None, None, None)]
    assert rows[0]["time"] == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert read_feedback(ws, request_id="b").num_rows == 1
    assert read_feedback(ws, since=datetime(2024, 5, 1, 13, tzinfo=UTC)).num_rows == 1


def test_a_log_written_as_the_server_does_is_joinable_with_feedback(ws: Workspace) -> None:
    at = time.time_ns() // 1000
    with PredictionLog(ws.predictions_dir, writer_id="t", flush_interval=3600) as log:
        log.record(PredictionRecord("j", at, "m", 1, {"x": [1, 2]}, {}, [0.2, 0.9], [], 1.0))
    record_feedback([FeedbackItem("j", 1, row=1), FeedbackItem("j", 0)], workspace=ws)
    from mlwright.features.relations import connect

    conn = connect(ws)
    try:
        conn.register("p", read_predictions(ws))
        conn.register("f", read_feedback(ws))
        joined = conn.sql("SELECT p.row, p.output, f.label FROM p JOIN f ON f.request_id = "
                          "p.request_id AND (f.row IS NULL OR f.row = p.row) "
                          "ORDER BY p.row, f.label").fetchall()
    finally:
        conn.close()
    assert joined == [(0, 0.2, 0.0), (1, 0.9, 0.0), (1, 0.9, 1.0)]
