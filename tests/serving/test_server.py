"""`mlwright serve` as users run it: a supervisor process, worker processes, real sockets,
real clients (httpx and tritonclient over HTTP and gRPC)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from mlwright.registry import load_model, set_alias

from .conftest import Served
from .support import FEATURES, free_port, records

TESTS = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.xdist_group("server")  # processes and ports: one worker at a time


@dataclass
class Server:
    process: subprocess.Popen[str]
    url: str
    grpc: str | None
    stderr: list[str]
    reader: threading.Thread

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        pids = [int(p) for p in children.read_text().split()]
        return [p for p in pids if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()
                and b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()]


@pytest.fixture
def start_server(served: Served) -> Iterator[object]:
    started: list[Server] = []

    def start(*args: str, grpc: bool = False) -> Server:
        grpc_port = free_port() if grpc else 0
        env = {**os.environ, "PYTHONPATH": f"{TESTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        process = subprocess.Popen(
            [sys.executable, "-m", "mlwright.cli.main", "-w", str(served.workspace.root), "serve",
             "--port", "0", "--grpc-port", str(grpc_port), *args],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        lines: list[str] = []
        address = None
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            found = re.search(r"on (http://[\d.]+:\d+)", line)
            if found:
                address = found.group(1)
                break
        assert address is not None, "".join(lines)
        reader = threading.Thread(target=lambda: lines.extend(process.stderr or []), daemon=True)
        reader.start()
        server = Server(process, address, f"127.0.0.1:{grpc_port}" if grpc else None, lines,
                        reader)
        started.append(server)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{address}/v2/health/ready", timeout=1).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            assert process.poll() is None, "".join(lines)
            time.sleep(0.2)
        raise AssertionError("the server did not become ready: " + "".join(lines))

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
            try:
                server.process.wait(30)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()
        server.reader.join(10)
        if server.process.stderr is not None:
            server.process.stderr.close()


def predict(server: Server, served: Served, rows: list[dict[str, float | int]],
            model: str = "risk", timeout: float = 10) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/models/{model}/predict", json={"records": rows},
                      headers=served.headers, timeout=timeout)


def test_workers_serve_a_crashed_worker_is_replaced_and_metrics_add_up(
        served: Served, start_server: object) -> None:
    server = start_server("risk@champion", "--workers", "2")  # type: ignore[operator]
    assert len(server.workers()) == 2
    for _ in range(6):
        assert predict(server, served, records(2)).status_code == 200
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'mlwright_requests_total{model="risk",version="1"} 6.0' in metrics  # both workers
    victim = server.workers()[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        current = server.workers()
        if len(current) == 2 and victim not in current:
            break
        time.sleep(0.2)
    assert len(server.workers()) == 2 and victim not in server.workers()
    codes = {predict(server, served, records(1)).status_code for _ in range(20)}
    assert codes == {200}


def test_sigterm_drains_in_flight_requests(served: Served, start_server: object) -> None:
    server = start_server("exploding", "--workers", "1", "--no-auth")  # type: ignore[operator]
    slow = {**records(1)[0], "a": 7.0}  # the model sleeps 1.5 s on it
    result: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: result.append(
        predict(server, served, [slow], model="exploding", timeout=30)))
    thread.start()
    time.sleep(0.5)  # the request is in flight
    server.process.send_signal(signal.SIGTERM)
    thread.join(30)
    assert result and result[0].status_code == 200 and result[0].json()["predictions"] == [14.0]
    assert server.process.wait(30) == 0


def test_the_server_follows_an_alias_under_load_without_failing_a_request(
        served: Served, start_server: object) -> None:
    server = start_server("risk@champion", "--workers", "2",  # type: ignore[operator]
                          "--follow-seconds", "0.3")
    rows = records(3)
    v1 = load_model("risk@1", workspace=served.workspace).predict(pd.DataFrame(rows)).tolist()
    v2 = load_model("risk@2", workspace=served.workspace).predict(pd.DataFrame(rows)).tolist()
    stop = threading.Event()
    seen: list[tuple[int, int, list[float] | None]] = []

    def hammer() -> None:
        with httpx.Client(headers=served.headers, timeout=10) as client:
            while not stop.is_set():
                response = client.post(f"{server.url}/v1/models/risk/predict",
                                       json={"records": rows})
                body = response.json() if response.status_code == 200 else {}
                seen.append((response.status_code, body.get("version", 0),
                             body.get("predictions")))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    set_alias("risk", "champion", 2, workspace=served.workspace)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (
            seen and all(v == 2 for _, v, _ in seen[-20:])):
        time.sleep(0.2)
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    assert {code for code, _, _ in seen} == {200}
    versions = [v for _, v, _ in seen]
    assert versions[0] == 1 and versions[-1] == 2
    assert all(v == 2 for v in versions[-20:])  # both workers switched (each on its own poll)
    for _, version, predictions in seen:  # each answer is wholly one version's
        assert np.allclose(predictions, v1 if version == 1 else v2, atol=1e-12)


def test_tritonclient_http_and_grpc_work_unchanged(served: Served, start_server: object) -> None:
    import tritonclient.grpc as grpcclient
    import tritonclient.http as httpclient

    server = start_server("risk@champion", grpc=True)  # type: ignore[operator]
    rows = records(5)
    want = load_model("risk@1", workspace=served.workspace).predict(pd.DataFrame(rows))
    headers = {"Authorization": f"Bearer {served.token}"}

    http = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    assert http.is_server_live() and http.is_server_ready()
    assert http.is_model_ready("risk", headers=headers)
    metadata = http.get_model_metadata("risk", headers=headers)
    assert [i["name"] for i in metadata["inputs"]] == FEATURES
    for binary in (True, False):
        inputs = []
        for name in FEATURES:
            values = np.asarray([r[name] for r in rows],
                                dtype=np.int64 if name == "n" else np.float64)
            tensor = httpclient.InferInput(name, [5], "INT64" if name == "n" else "FP64")
            tensor.set_data_from_numpy(values, binary_data=binary)
            inputs.append(tensor)
        # a fresh dict each call: tritonclient writes its binary header into the one it gets
        result = http.infer("risk", inputs, headers=dict(headers))
        assert np.allclose(result.as_numpy("y"), want, atol=1e-12)
    http.close()

    assert server.grpc is not None
    grpc = grpcclient.InferenceServerClient(server.grpc)
    assert grpc.is_server_live() and grpc.is_server_ready()
    inputs = []
    for name in FEATURES:
        values = np.asarray([r[name] for r in rows], dtype=np.int64 if name == "n" else np.float64)
        tensor = grpcclient.InferInput(name, [5], "INT64" if name == "n" else "FP64")
        tensor.set_data_from_numpy(values)
        inputs.append(tensor)
    result = grpc.infer("risk", inputs, headers={"authorization": f"Bearer {served.token}"})
    assert np.allclose(result.as_numpy("y"), want, atol=1e-12)
    grpc.close()


def test_serve_refuses_what_cannot_be_served(run_cli: object, served: Served) -> None:
    root = str(served.workspace.root)
    unknown = run_cli("-w", root, "serve", "nope@champion")  # type: ignore[operator]
    assert unknown.code == 2 and "No model named 'nope'" in unknown.err
    bad = run_cli("-w", root, "serve", "risk", "--workers", "0")  # type: ignore[operator]
    assert bad.code == 2 and "--workers" in bad.err
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = run_cli("-w", root, "serve", "risk", "--port",  # type: ignore[operator]
                   str(taken.getsockname()[1]))
    taken.close()
    assert busy.code == 2 and "Cannot listen" in busy.err
