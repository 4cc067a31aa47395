"""The prediction log writer: files per model version and hour, whole files only, a write
every interval, nothing lost on close, at most an interval lost on a crash, and failures
survived."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from mlwright.errors import ServingError
from mlwright.serving.predlog import PredictionLog, PredictionRecord
from mlwright.serving.trace import read_predictions
from mlwright.workspace import WORKSPACE_ENV, Workspace, init_workspace

HOUR = datetime(2024, 5, 1, 9, 15, tzinfo=UTC)
HOUR_US = int(HOUR.timestamp() * 1_000_000)
CARRIERS = ["AA", "UA", "DL", "WN"]


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    workspace = init_workspace(tmp_path / "ws")
    yield workspace
    workspace.close()


def rec(request_id: str, *, model: str = "delays", version: int = 1, time_us: int = HOUR_US,
        rows: int = 2, **fields: Any) -> PredictionRecord:
    values: dict[str, Any] = {
        "inputs": {"distance": np.arange(rows, dtype=np.float64) + 100,
                   "carrier": [CARRIERS[i % len(CARRIERS)] for i in range(rows)]},
        "features": {"temp": np.full(rows, 20.5)},
        "outputs": np.linspace(0, 1, rows),
        "feature_views": ["weather@2"], "latency_ms": 1.25}
    values.update(fields)
    return PredictionRecord(request_id=request_id, time_us=time_us, model=model,
                            version=version, **values)


def parquet_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.parquet"))


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def by_request(table: Any) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for row in table.to_pylist():
        found.setdefault(row["request_id"], []).append(row)
    return found


def test_records_from_threads_make_one_file_per_model_version_and_hour(ws: Workspace) -> None:
    log = PredictionLog(ws.predictions_dir, writer_id="host-1", flush_interval=3600)
    groups = [("delays", 1, 0), ("delays", 2, 0), ("delays", 1, 1), ("fraud", 1, 0)]

    def client(worker: int) -> None:
        for i in range(50):
            model, version, hour = groups[i % len(groups)]
            log.record(rec(f"w{worker}-{i}", model=model, version=version,
                           time_us=HOUR_US + hour * 3_600_000_000 + i))

    threads = [threading.Thread(target=client, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    assert (log.stats.records, log.stats.rows, log.stats.files) == (200, 400, 4)
    assert (log.stats.pending, log.stats.dropped, log.stats.invalid) == (0, 0, 0)
    files = [p.relative_to(ws.predictions_dir).as_posix() for p in
             parquet_files(Path(ws.predictions_dir))]
    folders = sorted(f.rsplit("/", 1)[0] for f in files)
    assert folders == ["model=delays/date=2024-05-01/hour=09",
                       "model=delays/date=2024-05-01/hour=09",
                       "model=delays/date=2024-05-01/hour=10",
                       "model=fraud/date=2024-05-01/hour=09"]
    for name in files:
        assert name.rsplit("/", 1)[1].startswith("part-host-1-00000000")
    for path in parquet_files(Path(ws.predictions_dir)):  # one version per file
        assert len(set(pq.read_table(path).column("version").to_pylist())) == 1
    table = read_predictions(ws)
    assert table.num_rows == 400
    rows = by_request(table)
    assert len(rows) == 200
    assert [r["row"] for r in rows["w3-49"]] == [0, 1]
    assert rows["w3-49"][1]["inputs"] == {"distance": 101.0, "carrier": "UA"}
    assert rows["w3-49"][1]["output"] == 1.0
    only = read_predictions(ws, model="fraud")
    assert set(only.column("model").to_pylist()) == {"fraud"} and only.num_rows == 4 * 12 * 2


def test_values_come_back_as_they_were_recorded(ws: Workspace) -> None:
    with PredictionLog(ws.predictions_dir, writer_id="w", flush_interval=3600) as log:
        log.record(rec("scores", inputs={"x": np.array([1.5, np.nan]), "name": ["a", None],
                                         "when": np.array(["2024-01-01", "2024-01-02"],
                                                          dtype="datetime64[us]")},
                       outputs=np.array([0.25, 0.75], dtype=np.float32)))
        log.record(rec("probs", rows=1, inputs={"x": [3], "name": ["b"]}, features={},
                       outputs=np.array([[0.1, 0.9]]), feature_views=[]))
        log.record(rec("labels", rows=2, inputs={"x": [4.0, 5.0]}, features={},
                       outputs=["approved", "refused"], status=500, latency_ms=9.5))
        log.record(rec("objects", rows=1, model="other", inputs={"v": [[1, 2]]},
                       features={}, outputs=[{"score": 1}]))
    rows = by_request(read_predictions(ws))
    first, second = rows["scores"]
    assert first["inputs"]["x"] == 1.5 and first["inputs"]["name"] == "a"
    assert second["inputs"]["x"] is None and second["inputs"]["name"] is None  # NaN: missing
    assert first["inputs"]["when"] == datetime(2024, 1, 1)
    assert (first["output"], second["output"]) == (0.25, 0.75)
    assert first["features"] == {"temp": 20.5} and first["feature_views"] == ["weather@2"]
    assert first["time"] == HOUR and first["latency_ms"] == 1.25 and first["status"] == 200
    (probs,) = rows["probs"]
    assert probs["output"] is None and probs["output_vector"] == [0.1, 0.9]
    assert probs["inputs"]["x"] == 3.0 and probs["feature_views"] == []  # int with floats
    assert [r["output_text"] for r in rows["labels"]] == ["approved", "refused"]
    assert rows["labels"][0]["status"] == 500 and rows["labels"][0]["latency_ms"] == 9.5
    (other,) = rows["objects"]
    assert other["inputs"]["v"] == [1, 2] and other["output_text"] == '{"score": 1}'
    assert other["features"] is None  # that file has no features column


def test_readers_only_ever_see_whole_files(ws: Workspace) -> None:
    log = PredictionLog(ws.predictions_dir, writer_id="w", flush_interval=0.005)
    done = threading.Event()
    seen: list[int] = []

    def writer() -> None:
        i = 0
        while not done.is_set():
            log.record(rec(f"r{i}", rows=3))
            i += 1
            time.sleep(0.0005)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            for request_id, rows in by_request(read_predictions(ws)).items():
                assert [r["row"] for r in rows] == [0, 1, 2], request_id
            seen.append(len(parquet_files(Path(ws.predictions_dir))))
    finally:
        done.set()
        thread.join()
        log.close()
    assert seen[-1] > 1 and seen == sorted(seen)
    assert not [p for p in Path(ws.predictions_dir).rglob("*") if p.name.endswith(".tmp")]


def test_a_record_is_written_within_an_interval_without_close(ws: Workspace) -> None:
    log = PredictionLog(ws.predictions_dir, writer_id="w", flush_interval=0.2)
    try:
        log.record(rec("soon"))
        wait_for(lambda: read_predictions(ws, request_id="soon").num_rows == 2,
                 "the record on disk", timeout=0.2 + 5.0)
        assert log.stats.pending == 0
    finally:
        log.close()


CRASH = """
import os, signal, time
import numpy as np
from mlwright.serving.predlog import PredictionLog, PredictionRecord

def rec(request_id):
    return PredictionRecord(request_id, time.time_ns() // 1000, "delays", 1,
                            {{"x": np.array([1.0])}}, {{}}, np.array([0.5]), [], 1.0)

log = PredictionLog({folder!r}, writer_id="crash", flush_interval=0.1)
for i in range(20):
    log.record(rec(f"early-{{i}}"))
time.sleep(1.0)
log.record(rec("late"))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_crash_loses_at_most_the_last_interval(ws: Workspace) -> None:
    script = textwrap.dedent(CRASH.format(folder=ws.predictions_dir))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == -9, done.stderr
    for path in parquet_files(Path(ws.predictions_dir)):
        pq.read_table(path)  # every visible file is whole
    ids = set(read_predictions(ws).column("request_id").to_pylist())
    assert {f"early-{i}" for i in range(20)} <= ids  # "late" may or may not have made it


def test_close_writes_everything_once_and_later_records_are_counted_as_dropped(
        ws: Workspace, caplog: pytest.LogCaptureFixture) -> None:
    log = PredictionLog(ws.predictions_dir, writer_id="w", flush_interval=3600)
    for i in range(1000):
        log.record(rec(f"r{i}", rows=1))
    log.close()
    log.close()
    assert read_predictions(ws).num_rows == 1000
    assert (log.stats.rows, log.stats.files, log.stats.pending) == (1000, 1, 0)
    with caplog.at_level(logging.WARNING, logger="mlwright.serving.predlog"):
        log.record(rec("too-late"))
    assert log.stats.dropped == 2
    assert "is closed; dropped request 'too-late' of delays@1" in caplog.text
    assert read_predictions(ws, request_id="too-late").num_rows == 0


def test_a_failed_write_keeps_the_rows_and_the_thread_until_it_succeeds(
        ws: Workspace, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "log"
    folder.write_text("in the way")  # a file where the log's folder should be
    caplog.set_level(logging.WARNING, logger="mlwright.serving.predlog")
    log = PredictionLog(str(folder), writer_id="w", flush_interval=0.02)
    try:
        for i in range(5):
            log.record(rec(f"r{i}"))
        wait_for(lambda: log.stats.failures >= 3, "three failed attempts")
        assert log._thread.is_alive()
        assert (log.stats.pending, log.stats.rows, log.stats.dropped) == (10, 0, 0)
        complaints = [r for r in caplog.records if "Cannot write the prediction log" in r.message]
        assert len(complaints) == 1  # not one line per attempt
        assert "10 rows kept to retry" in complaints[0].message
        with pytest.raises(ServingError, match=r"Cannot write the prediction log to .*log: .*; "
                                               r"10 rows stay buffered, retried every 0.02 s"):
            log.flush()
        folder.unlink()
        wait_for(lambda: log.stats.rows == 10, "the retried write")
        assert "written again after" in caplog.text
    finally:
        log.close()
    rows = by_request(read_predictions(ws, directory=str(folder)))
    assert sorted(rows) == [f"r{i}" for i in range(5)]


def test_beyond_max_buffered_rows_the_oldest_are_dropped(ws: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "log"
    folder.write_text("in the way")
    log = PredictionLog(str(folder), writer_id="w", flush_interval=0.02, max_buffered_rows=10)
    try:
        for i in range(4):
            log.record(rec(f"early{i}", rows=3))
        wait_for(lambda: log.stats.failures >= 1, "a failed attempt")
        failures = log.stats.failures
        for i in range(2):
            log.record(rec(f"late{i}", rows=3))
        wait_for(lambda: log.stats.failures >= failures + 2, "two more failed attempts")
        assert (log.stats.pending, log.stats.dropped) == (9, 9)
        folder.unlink()
        wait_for(lambda: log.stats.pending == 0, "the retried write")
    finally:
        log.close()
    kept = set(read_predictions(ws, directory=str(folder)).column("request_id").to_pylist())
    assert kept == {"early3", "late0", "late1"}


def test_a_malformed_record_is_dropped_alone(ws: Workspace,
                                             caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="mlwright.serving.predlog"), \
            PredictionLog(ws.predictions_dir, writer_id="w", flush_interval=3600) as log:
        log.record(rec("good"))
        log.record(rec("bad", inputs={"distance": np.array([1.0, 2.0, 3.0])}))
        log.record(rec("no-time", time_us=None))  # type: ignore[arg-type]
        log.record(rec("fine"))
    assert log.stats.invalid == 2 and log.stats.rows == 4
    assert "Cannot log request 'bad' of delays@1 to the prediction log: input column " \
           "'distance' has 3 values for 2 outputs." in caplog.text
    assert "Cannot log request 'no-time' of delays@1" in caplog.text
    assert sorted(by_request(read_predictions(ws))) == ["fine", "good"]


def test_an_object_store_url_is_written_with_fsspec(ws: Workspace) -> None:
    url = f"memory:///predlog-{uuid.uuid4().hex}"
    with PredictionLog(url, writer_id="w", flush_interval=3600) as log:
        log.record(rec("remote"))
    table = read_predictions(ws, directory=url)
    assert table.column("request_id").to_pylist() == ["remote", "remote"]
    assert math.isclose(table.column("output").to_pylist()[1], 1.0)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"writer_id": "a/b"}, r"Writer id 'a/b' of the prediction log is not allowed"),
    ({"writer_id": "w", "flush_interval": 0}, r"needs flush_interval > 0"),
])
def test_bad_settings_are_refused(tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ServingError, match=message):
        PredictionLog(str(tmp_path), **kwargs)


def test_nothing_is_left_running(ws: Workspace) -> None:
    before = threading.active_count()
    log = PredictionLog(ws.predictions_dir, writer_id="w")
    log.close()
    assert threading.active_count() == before
