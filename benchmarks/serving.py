"""Benchmark of model serving (issue 6): mlwright against BentoML and MLflow, and the floor.

One LightGBM model serves on every server: a binary classifier, 100 trees of 31 leaves, 20
float64 features ``f0``..``f19``, trained here (numpy, seeded: 50,000 rows, a label from a
noisy non-linear function of the features; deterministic, seed 1) and saved to a text file
(``Booster.save_model``) that every server loads; mlwright registers the same Booster in a
fresh workspace. The servers, each one worker, each in a process pinned to one core
(``taskset -c 0``), started on a free port, waited for (its health URL), measured and
stopped (SIGTERM to its process group, SIGKILL after 15 s), one after the other:

* ``floor``: a minimal Starlette app on uvicorn (uvloop, httptools), orjson, the records into
  a numpy array, ``Booster.predict`` in the event loop (``peers/serving_floor.py``, in the
  project's environment): the least a Python server can do;
* ``mlwright``: ``mlwright -w WS serve bench@champion --workers 1 --grpc-port 0
  --log-predictions``: with auth (a bearer token from ``mlwright token create --scope
  predict``), input validation against the model's signature, prediction logging and metrics
  on, as in production; ``mlwright-nowait``: the same with ``--max-wait-us 0`` (its dynamic
  batching never waits for company: the reference of the batching target below);
  ``mlwright-bare``: the same as ``mlwright`` with ``--no-auth --no-log-predictions`` (an
  extra row: what those cost);
* ``bentoml``: ``bentoml serve`` of a ``@bentoml.service`` (``peers/serving_bentoml.py``), a
  sync API taking ``records: list[dict[str, float]]``; ``bentoml-batching``: the same API with
  adaptive batching (``@bentoml.api(batchable=True)``, BentoML's default limits);
* ``mlflow``: ``mlflow models serve --env-manager local -w 1`` of the model logged with
  ``mlflow.lightgbm.log_model`` (with a signature) in a local file store
  (``peers/serving_mlflow.py``), driven with both of its JSON forms (two rows, one server):
  ``dataframe_split`` and ``inputs`` (records).

The request: the floor, mlwright and BentoML take the same body, ``{"records": [{"f0": ...,
..., "f19": ...}, ...]}`` (values rounded to 4 decimals); MLflow the same rows in its forms.
Every server's answer for 5 rows, and for 1,000, is checked against ``Booster.predict`` of
the same rows (within 1e-9; a warning line otherwise).

The load: wrk (``/usr/bin/wrk``; ``apt-get install wrk``), pinned to another core
(``taskset -c 1``), one thread, keep-alive connections, every request the same POST (the Lua
script ``peers/wrk_post.lua``, which also prints wrk's exact latency percentiles, in
microseconds, from its histogram). Per row: a warm-up (32 connections, not reported), then
1 connection (p50, p99), 32 connections (throughput, p50, p99), and 1 connection sending a
1,000-row body (its p50: the 1,000-row request). A run with any error (connect, read, write,
timeout, or a status other than 2xx/3xx) is not reported: its cells read ``ERR`` and the
errors are printed. Memory: the resident set of the server's process tree (the sum of VmRSS
of the process and its descendants, read from /proc after the load; in brackets the number
of processes when more than one: shared pages are counted once per process).

Targets (issue 6): mlwright with everything on at least 0.7x the floor's throughput at 32
connections, its p50 at 1 connection within 2x of the floor's, its 1,000-row request within
1.3x of the floor's, and dynamic batching that never holds a lone request longer than its
``--max-wait-us`` (the default, read from ``mlwright serve --help``): at 1 connection every
request is alone, so its p50 and p99 there may exceed those of ``mlwright-nowait`` by at most
that much. Also printed: every row's throughput against the floor's, and mlwright's against
BentoML's and MLflow's. When other processes (besides the server, wrk and this script) used
more than 0.1 of a core during a run (measured from /proc), the report warns that the
figures are not reliable: the machine has 2 cores, one for the server and one for wrk.

BentoML and MLflow run in virtual environments of their own (``benchmarks/.venvs/
serving-bentoml`` and ``serving-mlflow``, built from ``requirements-serving-bentoml.txt`` and
``requirements-serving-mlflow.txt`` when missing); the floor and mlwright in the project's.

Run: ``.venv/bin/python benchmarks/serving.py`` from the repository root (about 6 minutes on
2 CPUs, plus the two environments on the first run); ``--quick``: shorter loads (3 s a run,
about 2.5 minutes); ``--servers``: a subset; ``--markdown``: also print the run as a section for
RESULTS.md; ``--append-results``: append that section to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from common import Report, ensure_venv, fmt, machine, record_run

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
LUA = PEERS / "wrk_post.lua"
BENTOML_REQUIREMENTS = HERE / "requirements-serving-bentoml.txt"
MLFLOW_REQUIREMENTS = HERE / "requirements-serving-mlflow.txt"

FEATURES = [f"f{i}" for i in range(20)]
LABEL = "y"
TRAIN_ROWS = 50_000
SEED = 20250606
PARAMS = {"objective": "binary", "num_leaves": 31, "learning_rate": 0.1, "seed": 1,
          "deterministic": True, "num_threads": 2, "verbose": -1}
ROUNDS = 100
MODEL_NAME = "bench"
TOLERANCE = 1e-9
BIG = 1_000  # rows of the large request
SERVERS = ["floor", "mlwright", "mlwright-nowait", "mlwright-bare", "bentoml", "bentoml-batching",
           "mlflow"]
ML_SERVERS = {"mlwright", "mlwright-nowait", "mlwright-bare"}
READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 15.0
OTHERS_WARN = 0.10  # of a core: other processes busier than this during a run make it unreliable
HZ = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"· {message}", file=sys.stderr, flush=True)


# -- data and model --------------------------------------------------------------------------

def make_data(rows: int, rng: np.random.Generator) -> pd.DataFrame:
    x = rng.standard_normal((rows, len(FEATURES))).round(4)
    weights = rng.standard_normal(len(FEATURES))
    logit = x @ weights + 1.5 * np.sin(x[:, 0] * x[:, 1]) + 0.8 * (x[:, 2] > 0.5) * x[:, 3]
    y = (logit + rng.standard_normal(rows) > 0).astype(np.int64)
    frame = pd.DataFrame(x, columns=FEATURES)
    frame[LABEL] = y
    return frame


def train(frame: pd.DataFrame) -> lgb.Booster:
    return lgb.train(PARAMS, lgb.Dataset(frame[FEATURES], frame[LABEL]), num_boost_round=ROUNDS)


def records(rows: np.ndarray) -> list[dict[str, float]]:
    return [dict(zip(FEATURES, map(float, row), strict=True)) for row in rows]


def payload(kind: str, rows: np.ndarray) -> dict[str, Any]:
    """The JSON body of ``rows`` in the form ``kind`` (records, dataframe_split, inputs)."""
    if kind == "records":
        return {"records": records(rows)}
    if kind == "dataframe_split":
        return {"dataframe_split": {"columns": FEATURES,
                                    "data": [[float(v) for v in row] for row in rows]}}
    if kind == "inputs":
        return {"inputs": records(rows)}
    raise ValueError(kind)


# -- mlwright (one function per call of its API or CLI: adapt here) --------------------------

def mlwright_cli() -> Path:
    return Path(sys.executable).parent / "mlwright"


def mlwright_serve_help() -> str | None:
    """The help of ``mlwright serve``, or None while the command does not exist."""
    done = subprocess.run([str(mlwright_cli()), "serve", "--help"], capture_output=True,
                          text=True, check=False, env={**os.environ, "COLUMNS": "200"})
    return done.stdout if done.returncode == 0 else None


def mlwright_workspace(folder: Path, booster: lgb.Booster, frame: pd.DataFrame) -> str:
    """A fresh workspace with the model registered as bench@champion; a predict token."""
    from mlwright.registry import register_model, set_alias

    subprocess.run([str(mlwright_cli()), "init", str(folder)], check=True, capture_output=True)
    info = register_model(MODEL_NAME, booster, training_data=frame, label=LABEL,
                          workspace=folder)
    set_alias(MODEL_NAME, "champion", info.version, workspace=folder)
    done = subprocess.run([str(mlwright_cli()), "-w", str(folder), "token", "create", "bench",
                           "--scope", "predict", "--json"], capture_output=True, text=True,
                          check=True)
    token: str = json.loads(done.stdout)["token"]
    return token


def mlwright_max_wait_us(help_text: str) -> int:
    """The default of ``--max-wait-us``: the longest its batching may hold a request."""
    found = re.search(r"--max-wait-us.*?\[default: (\d+)\]", help_text, re.DOTALL)
    return int(found.group(1)) if found else 1000


def mlwright_command(folder: Path, help_text: str, key: str) -> list[str]:
    """The server's command line (``{port}``: its port): everything on (``mlwright``), the
    same without any wait for company (``mlwright-nowait``), or without auth and prediction
    logging (``mlwright-bare``)."""
    bare = key == "mlwright-bare"
    command = [str(mlwright_cli()), "-w", str(folder), "serve", f"{MODEL_NAME}@champion",
               "--host", "127.0.0.1", "--port", "{port}", "--grpc-port", "0",
               "--workers", "1"]
    if bare:
        command += [flag for flag in ("--no-auth", "--no-log-predictions") if flag in help_text]
    elif "--log-predictions" in help_text:
        command.append("--log-predictions")
    if key == "mlwright-nowait":
        command += ["--max-wait-us", "0"]
    return command


# -- servers ---------------------------------------------------------------------------------

@dataclass
class Target:
    """One row of the table: a server and the form of its request."""

    key: str
    label: str
    path: str
    form: str = "records"


@dataclass
class Server:
    key: str
    command: list[str]
    health: str
    targets: list[Target]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    token: str | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def children_map() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (those alive now)."""
    tree = children_map()
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


def tree_rss_mb(pid: int) -> tuple[float, int]:
    """The summed VmRSS of ``pid`` and its descendants, in MB, and how many processes."""
    total, count = 0, 0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    count += 1
        except OSError:
            continue
    return total / 1e6, count


def busy_seconds() -> float:
    """CPU time spent by every process of the machine since boot (not idle, not iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / HZ


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and its descendants (and of their children already reaped)."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return total / HZ


class OthersMeter:
    """How much CPU the rest of the machine used while a run went on: all busy time minus
    the server's tree, wrk (a reaped child) and this process, in cores."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.start = self.sample()

    def sample(self) -> tuple[float, ...]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = os.times()
        return (time.perf_counter(), busy_seconds(), tree_cpu_seconds(self.server_pid),
                children.ru_utime + children.ru_stime, own.user + own.system)

    def cores(self) -> float:
        end = self.sample()
        wall, busy, server, wrk_cpu, own = (b - a for a, b in zip(self.start, end,
                                                                   strict=True))
        return max(0.0, (busy - server - wrk_cpu - own) / wall) if wall > 0 else 0.0


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


@contextlib.contextmanager
def serving(server: Server, base: str, core: str, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``server`` pinned to ``core``, wait until its health URL answers 200, yield its
    process; stop it (its process group, then any descendant left) whatever happens."""
    import httpx

    env = {**os.environ, **server.env}
    handle = log_path.open("wb")
    process = subprocess.Popen(["taskset", "-c", core, *server.command], cwd=server.cwd,
                               env=env, stdout=handle, stderr=subprocess.STDOUT,
                               start_new_session=True)
    headers = {"Authorization": f"Bearer {server.token}"} if server.token else {}
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{server.key} exited ({process.returncode}) before it was "
                                   f"ready:\n{log_tail(log_path)}")
            try:
                if httpx.get(base + server.health, headers=headers,
                             timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.key} not ready after {READY_TIMEOUT_S:.0f} s:\n"
                                   f"{log_tail(log_path)}")
            time.sleep(0.2)
        yield process
    finally:
        stop(process)
        handle.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    members = process_tree(process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    deadline = time.monotonic() + 5
    for pid in members[1:]:  # descendants that left the group (or outlived their parent)
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)


# -- the load --------------------------------------------------------------------------------

WRK_LINE = re.compile(r"^BENCH (.*)$", re.MULTILINE)


def wrk(url: str, body: Path, token: str | None, connections: int, duration: float,
        core: str) -> dict[str, Any]:
    """One wrk run: requests, rps, p50/p90/p99/max (seconds) and its errors."""
    command = ["taskset", "-c", core, "wrk", "-t1", f"-c{connections}",
               f"-d{max(1, round(duration))}s", "--timeout", "30s", "--latency", "-s", str(LUA),
               url]
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          env={**os.environ, "WRK_BODY": str(body), "WRK_TOKEN": token or ""})
    match = WRK_LINE.search(done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    values = {k: int(v) for k, v in (part.split("=") for part in match.group(1).split())}
    errors = {k: values[k] for k in ("connect", "read", "write", "status", "timeout")
              if values[k]}
    seconds = values["duration_us"] / 1e6
    return {"requests": values["requests"], "rps": values["requests"] / seconds,
            "p50": values["p50"] / 1e6, "p90": values["p90"] / 1e6,
            "p99": values["p99"] / 1e6, "max": values["max"] / 1e6, "errors": errors,
            "connections": connections}


def predictions_of(answer: Any) -> list[float]:
    """The predictions in a server's JSON answer: ``{"predictions": [...]}`` or ``[...]``,
    items numbers (or one-item lists, or objects with one number)."""
    items = answer.get("predictions", answer.get("outputs")) if isinstance(answer, dict) \
        else answer
    if isinstance(items, list) and items and isinstance(items[0], dict) and "data" in items[0]:
        items = items[0]["data"]  # Open Inference Protocol
    values = []
    for item in items or []:
        if isinstance(item, list):
            item = item[-1]
        if isinstance(item, dict):
            item = next(v for k, v in item.items()
                        if isinstance(v, float | int) and k not in ("label", "class"))
        values.append(float(item))
    return values


def check(base: str, target: Target, token: str | None, rows: np.ndarray,
          expected: np.ndarray) -> str | None:
    """None when the server's predictions of ``rows`` equal ``expected`` within 1e-9; what
    differs otherwise."""
    import httpx

    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = httpx.post(base + target.path, content=json.dumps(payload(target.form, rows)),
                              headers=headers, timeout=60)
    except httpx.HTTPError as exc:
        return f"{len(rows)} rows: {type(exc).__name__}: {exc}"
    if response.status_code != 200:
        return f"{len(rows)} rows: HTTP {response.status_code}: {response.text[:300]}"
    try:
        got = np.asarray(predictions_of(response.json()), dtype=np.float64)
    except Exception as exc:
        return f"{len(rows)} rows: answer not understood ({exc}): {response.text[:300]}"
    if got.shape != expected.shape:
        return f"{len(rows)} rows: {got.size} predictions: {response.text[:300]}"
    worst = float(np.max(np.abs(got - expected)))
    return None if worst <= TOLERANCE else f"{len(rows)} rows: max |difference| {worst:.3g}"


def measure(server: Server, target: Target, base: str, folder: Path, rows: np.ndarray,
            expected: np.ndarray, args: argparse.Namespace, process: subprocess.Popen[bytes],
            durations: dict[str, float]) -> dict[str, Any]:
    small, big = folder / f"{target.key}-1.json", folder / f"{target.key}-{BIG}.json"
    small.write_text(json.dumps(payload(target.form, rows[:1])), encoding="utf-8")
    big.write_text(json.dumps(payload(target.form, rows[:BIG])), encoding="utf-8")
    result: dict[str, Any] = {"label": target.label, "warnings": [], "errors": {},
                              "body_bytes": small.stat().st_size,
                              "big_body_bytes": big.stat().st_size}
    for count in (5, BIG):
        problem = check(base, target, server.token, rows[:count], expected[:count])
        if problem:
            result["warnings"].append(problem)
    url = base + target.path
    core = args.client_core
    log(f"{target.key}: warm-up, 1 connection, 32 connections, {BIG:,} rows ...")
    wrk(url, small, server.token, 32, durations["warmup"], core)
    runs: dict[str, dict[str, Any]] = {}
    for name, body, connections, seconds in (("c1", small, 1, durations["run"]),
                                             ("c32", small, 32, durations["run"]),
                                             ("big", big, 1, durations["big"])):
        meter = OthersMeter(process.pid)
        runs[name] = wrk(url, body, server.token, connections, seconds, core)
        runs[name]["others_cores"] = meter.cores()
    rss, processes = tree_rss_mb(process.pid)
    for name, run in runs.items():
        if run["errors"]:
            result["errors"][name] = run["errors"]
        result[name] = run
    result.update({"rss_mb": rss, "processes": processes,
                   "others_cores": max(run["others_cores"] for run in runs.values())})
    return result


# -- the report ------------------------------------------------------------------------------

def figure(result: dict[str, Any] | None, run: str, key: str) -> float | None:
    """A figure of a run, None when the row failed or the run had errors."""
    if not result or "error" in result or run in result.get("errors", {}):
        return None
    value: float = result[run][key]
    return value


def cell(result: dict[str, Any] | None, run: str, key: str) -> str:
    if not result:
        return "-"
    if "error" in result:
        return "FAILED"
    if run in result.get("errors", {}):
        return "ERR"
    value = result[run][key]
    return f"{value:,.0f}" if key == "rps" else fmt(value)


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def package_version(python: Path, package: str) -> str:
    done = subprocess.run([str(python), "-c", "from importlib.metadata import version; "
                           f"print(version('{package}'))"], capture_output=True, text=True,
                          check=False)
    return done.stdout.strip() if done.returncode == 0 else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="3 s a run instead of 10 (1,000 rows: 2 s instead of 5)")
    parser.add_argument("--duration", type=float, help="seconds of each 1- and 32-connection "
                        "run (default 10; --quick 3)")
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=SERVERS,
                        help="servers to run (default: all)")
    parser.add_argument("--server-core", default="0", help="CPU(s) of the server (taskset -c)")
    parser.add_argument("--client-core", default="1", help="CPU(s) of wrk (taskset -c)")
    parser.add_argument("--markdown", action="store_true",
                        help="also print the run as a section of RESULTS.md")
    parser.add_argument("--append-results", action="store_true",
                        help="append that section to benchmarks/RESULTS.md")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (model, workspace, server logs)")
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        print("serving.py needs wrk and taskset: apt-get install wrk util-linux", file=sys.stderr)
        sys.exit(2)
    for name in ("MLWRIGHT_WORKSPACE", "MLWRIGHT_METADATA_URL", "MLWRIGHT_ARTIFACT_URL",
                 "MLWRIGHT_ONLINE_URL", "MLWRIGHT_ONLINE_PREFIX"):
        os.environ.pop(name, None)  # the benchmark's own workspace, nothing else
    os.environ["BENTOML_DO_NOT_TRACK"] = "true"  # no usage reports from BentoML
    run_s = args.duration or (3.0 if args.quick else 10.0)
    durations = {"warmup": 1.0 if args.quick else 3.0, "run": run_s,
                 "big": 2.0 if args.quick else 5.0}
    load_start = " / ".join(f"{v:.2f}" for v in os.getloadavg())

    python = Path(sys.executable)
    peers: dict[str, Path] = {}
    install: dict[str, float] = {}
    for name, requirements, wanted in (
            ("serving-bentoml", BENTOML_REQUIREMENTS, {"bentoml", "bentoml-batching"}),
            ("serving-mlflow", MLFLOW_REQUIREMENTS, {"mlflow"})):
        if wanted & set(args.servers):
            new = not (HERE / ".venvs" / name / "bin" / "python").exists()
            started = time.perf_counter()
            peers[name] = ensure_venv(name, requirements)
            if new:
                install[name] = time.perf_counter() - started

    help_text = mlwright_serve_help() if ML_SERVERS & set(args.servers) else None
    ml_missing = "`mlwright serve` does not exist yet" if help_text is None else None

    root = Path(tempfile.mkdtemp(prefix="mlwright-bench-serving-"))
    results: dict[str, dict[str, Any]] = {}
    try:
        rng = np.random.default_rng(SEED)
        started = time.perf_counter()
        frame = make_data(TRAIN_ROWS, rng)
        booster = train(frame)
        model_file = root / "model.txt"
        booster.save_model(str(model_file))
        rows = make_data(BIG, rng)[FEATURES].to_numpy()
        expected = np.asarray(booster.predict(rows), dtype=np.float64)
        log(f"model trained and saved in {time.perf_counter() - started:.1f} s "
            f"({booster.num_trees()} trees)")

        servers: list[Server] = []
        ml_token: str | None = None
        for key in args.servers:
            if key == "floor":
                servers.append(Server(key, [str(python), str(PEERS / "serving_floor.py"),
                                            "--model", str(model_file), "--port", "{port}"],
                                      "/health", [Target(key, "floor (Starlette, uvicorn)",
                                                         "/predict")]))
            elif key in ML_SERVERS:
                bare = key == "mlwright-bare"
                label = {"mlwright": "mlwright, all on",
                         "mlwright-nowait": "mlwright, all on, wait 0",
                         "mlwright-bare": "mlwright, auth+logging off"}[key]
                if ml_missing:
                    results[key] = {"label": label, "missing": ml_missing}
                    continue
                folder = root / "workspace"
                try:
                    if ml_token is None:
                        ml_token = mlwright_workspace(folder, booster, frame)
                except Exception as exc:
                    results[key] = {"label": label, "error": f"{type(exc).__name__}: {exc}"}
                    log(f"{key}: workspace failed: {exc}")
                    continue
                assert help_text is not None
                servers.append(Server(key, mlwright_command(folder, help_text, key),
                                      "/v2/health/ready",
                                      [Target(key, label, f"/v1/models/{MODEL_NAME}/predict")],
                                      token=None if bare else ml_token))
            elif key in ("bentoml", "bentoml-batching"):
                service = "LightGBMBatched" if key == "bentoml-batching" else "LightGBMService"
                label = "BentoML, adaptive batching" if key == "bentoml-batching" \
                    else "BentoML"
                bentoml = peers["serving-bentoml"].parent / "bentoml"
                servers.append(Server(key, [str(bentoml), "serve",
                                            f"serving_bentoml:{service}", "--working-dir",
                                            str(PEERS), "--host", "127.0.0.1", "--port",
                                            "{port}"], "/readyz",
                                      [Target(key, label, "/predict")], cwd=PEERS,
                                      env={"BENCH_MODEL_FILE": str(model_file)}))
            elif key == "mlflow":
                servers.append(Server(key, [str(peers["serving-mlflow"]),
                                            str(PEERS / "serving_mlflow.py"),
                                            "--model", str(model_file),
                                            "--store", str(root / "mlflow"),
                                            "--port", "{port}"], "/ping",
                                      [Target("mlflow-split", "MLflow, dataframe_split",
                                              "/invocations", "dataframe_split"),
                                       Target("mlflow-inputs", "MLflow, inputs",
                                              "/invocations", "inputs")], cwd=root))

        for server in servers:
            port = free_port()
            server.command = [part.replace("{port}", str(port)) for part in server.command]
            base = f"http://127.0.0.1:{port}"
            log(f"{server.key}: starting on port {port} (core {args.server_core}) ...")
            started = time.perf_counter()
            try:
                with serving(server, base, args.server_core,
                             root / f"{server.key}.log") as process:
                    ready = time.perf_counter() - started
                    log(f"{server.key}: ready in {ready:.1f} s")
                    for target in server.targets:
                        try:
                            results[target.key] = measure(server, target, base, root, rows,
                                                          expected, args, process, durations)
                            results[target.key]["ready_s"] = ready
                        except Exception as exc:
                            results[target.key] = {"label": target.label,
                                                   "error": f"{type(exc).__name__}: {exc}"}
                            log(f"{target.key} failed: {exc}")
            except Exception as exc:
                for target in server.targets:
                    results.setdefault(target.key, {"label": target.label,
                                                    "error": f"{type(exc).__name__}: {exc}"})
                log(f"{server.key} failed: {exc}")
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    load_end = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    max_wait_us = mlwright_max_wait_us(help_text) if help_text is not None else None
    report(args, results, peers, install, durations, load_start, load_end, max_wait_us)


def report(args: argparse.Namespace, results: dict[str, dict[str, Any]],
           peers: dict[str, Path], install: dict[str, float], durations: dict[str, float],
           load_start: str, load_end: str, max_wait_us: int | None) -> None:
    import starlette
    import uvicorn

    out = Report()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    try:
        import mlwright

        ml_version = mlwright.__version__
    except Exception:  # pragma: no cover - the project's environment always has it
        ml_version = "?"
    versions = [f"mlwright {ml_version}", f"LightGBM {lgb.__version__}",
                f"starlette {starlette.__version__}", f"uvicorn {uvicorn.__version__}",
                f"Python {platform.python_version()}"]
    if "serving-bentoml" in peers:
        versions.append(f"BentoML {package_version(peers['serving-bentoml'], 'bentoml')}")
    if "serving-mlflow" in peers:
        versions.append(f"MLflow {package_version(peers['serving-mlflow'], 'mlflow')}")
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True,
                                 check=False).stdout.split("\n")[0].split(" Copyright")[0]
    out(f"# mlwright benchmark: serving (issue 6), {now}")
    out()
    out(f"machine:  {machine()}")
    out(f"load:     load averages (1 / 5 / 15 min) {load_start} at the start, {load_end} at the "
        "end")
    out(f"versions: {', '.join(versions)}; {wrk_version}")
    for name, seconds in install.items():
        out(f"install:  benchmarks/.venvs/{name} built in {seconds:.0f} s this run")
    out(f"model:    LightGBM binary, {ROUNDS} trees x {PARAMS['num_leaves']} leaves, "
        f"{len(FEATURES)} float64 features, trained on {TRAIN_ROWS:,} rows (seed {SEED})")
    out(f"load:     wrk -t1 on core {args.client_core}, servers (1 worker) on core "
        f"{args.server_core}; {durations['run']:.0f} s at 1 and at 32 connections after a "
        f"{durations['warmup']:.0f} s warm-up, {durations['big']:.0f} s of {BIG:,}-row requests "
        "at 1 connection")
    out()
    head = (f"{'server':<30} {'req/s @32':>10} {'x floor':>8} {'p50 @1':>9} {'p99 @1':>9} "
            f"{'p50 @32':>9} {'p99 @32':>9} {'1,000 rows':>10} {'RSS MB':>9}")
    out(head)
    out("-" * len(head))
    floor = results.get("floor")
    floor_rps = figure(floor, "c32", "rps")
    order = ["floor", "mlwright", "mlwright-nowait", "mlwright-bare", "bentoml",
             "bentoml-batching", "mlflow-split", "mlflow-inputs"]
    for key in order:
        result = results.get(key)
        if result is None:
            continue
        if "missing" in result:
            out(f"{result['label']:<30} not available ({result['missing']})")
            continue
        if "error" in result:
            out(f"{result['label']:<30} FAILED: {result['error'].splitlines()[0]}")
            continue
        rss = f"{result['rss_mb']:,.0f}" + (f" ({result['processes']})"
                                             if result["processes"] > 1 else "")
        out(f"{result['label']:<30} {cell(result, 'c32', 'rps'):>10} "
            f"{ratio(figure(result, 'c32', 'rps'), floor_rps):>8} "
            f"{cell(result, 'c1', 'p50'):>9} {cell(result, 'c1', 'p99'):>9} "
            f"{cell(result, 'c32', 'p50'):>9} {cell(result, 'c32', 'p99'):>9} "
            f"{cell(result, 'big', 'p50'):>10} {rss:>9}")
    out()
    shown: set[str] = set()
    for key in order:
        result = results.get(key, {})
        for warning in result.get("warnings", []):
            out(f"  WARNING {result['label']}: predictions differ from Booster.predict: "
                f"{warning}")
        for run, errors in result.get("errors", {}).items():
            name = {"c1": "1 connection", "c32": "32 connections", "big": f"{BIG:,} rows"}[run]
            out(f"  ERRORS {result['label']}, {name} (not reported): "
                + ", ".join(f"{k} {v:,}" for k, v in errors.items())
                + f" of {result[run]['requests']:,} requests")
        if "error" in result and "\n" in result["error"] and result["error"] not in shown:
            shown.add(result["error"])
            out(f"  FAILED {result['label']}:")
            for line in result["error"].splitlines()[1:]:
                out(f"    {line}")
    checked = [results[k]["label"] for k in order
               if k in results and "c1" in results[k] and not results[k]["warnings"]]
    if checked:
        out(f"predictions of 5 and of {BIG:,} rows equal to Booster.predict within "
            f"{TOLERANCE:g}: {', '.join(checked)}")
    others = {results[k]["label"]: results[k]["others_cores"] for k in order
              if k in results and "others_cores" in results[k]}
    if others:
        out("CPU used by other processes during the runs (the busiest run of each row, in "
            "cores): " + "; ".join(f"{label} {value:.2f}" for label, value in others.items()))
        if max(others.values()) > OTHERS_WARN:
            out(f"  WARNING: other processes used more than {OTHERS_WARN:.2f} of a core during "
                "some runs: they competed with the server or wrk, so those figures (p99s "
                "first) are not reliable; run again on a quiet machine")
    sizes = {results[k]["label"]: (results[k]["body_bytes"], results[k]["big_body_bytes"])
             for k in order if k in results and "body_bytes" in results[k]}
    if sizes:
        out("request bodies (1 row / 1,000 rows): " + "; ".join(
            f"{label} {a:,} B / {b / 1e3:,.0f} kB" for label, (a, b) in sizes.items()))
    out()

    ml = results.get("mlwright")
    # (label, value, met: None when not measured, is it a target of the issue)
    targets: list[tuple[str, str, bool | None, bool]] = []

    def versus(label: str, ours: float | None, theirs: float | None,
               limit: tuple[str, float] | None) -> None:
        met = None
        if limit is not None and ours is not None and theirs is not None and theirs:
            met = ours / theirs >= limit[1] if limit[0] == ">=" else ours / theirs <= limit[1]
        targets.append((label + (f" ({limit[0]} {limit[1]}x)" if limit else ""),
                        ratio(ours, theirs), met, limit is not None))

    versus("mlwright / floor, req/s at 32 connections", figure(ml, "c32", "rps"), floor_rps,
           (">=", 0.7))
    versus("mlwright / floor, p50 at 1 connection", figure(ml, "c1", "p50"),
           figure(floor, "c1", "p50"), ("<=", 2.0))
    versus(f"mlwright / floor, {BIG:,}-row request (p50)", figure(ml, "big", "p50"),
           figure(floor, "big", "p50"), ("<=", 1.3))
    if max_wait_us is not None:
        nowait = results.get("mlwright-nowait")
        for key in ("p50", "p99"):
            ours, theirs = figure(ml, "c1", key), figure(nowait, "c1", key)
            extra = None if ours is None or theirs is None else ours - theirs
            targets.append((f"lone request: {key} at 1 connection, minus with wait 0 "
                            f"(<= {max_wait_us:,} us)",
                            "-" if extra is None else f"{extra * 1e6:+,.0f} us",
                            None if extra is None else extra <= max_wait_us / 1e6, True))
    for key in ("bentoml", "bentoml-batching", "mlflow-split", "mlflow-inputs"):
        if key in results:
            versus(f"mlwright / {results[key]['label']}, req/s at 32 connections",
                   figure(ml, "c32", "rps"), figure(results[key], "c32", "rps"), None)
    out("## Ratios and targets")
    out()
    for label, value, met, is_target in targets:
        verdict = "" if not is_target else (
            "not run" if met is None else ("met" if met else "MISSED"))
        out(f"  {label:<66} {value:>11}   {verdict}".rstrip())
    out()
    out("x floor: req/s at 32 connections / the floor's. Latencies: wrk's histogram (p50, p99 "
        "of every request of the run). 1,000 rows: p50 of one connection sending a 1,000-row "
        "body. RSS: summed over the server's processes after the load.")

    verdicts = [f"  - {label}: {value}" + ("" if not is_target else
                                          " — not run" if met is None else
                                          f" — {'met' if met else 'missed'}")
                for label, value, met, is_target in targets]
    record_run("Serving (issue 6)", "benchmarks/serving.py",
               f"BentoML from `benchmarks/{BENTOML_REQUIREMENTS.name}`, MLflow from "
               f"`benchmarks/{MLFLOW_REQUIREMENTS.name}`, each in `benchmarks/.venvs/`",
               load_start=load_start, load_end=load_end, recorded=now,
               heading="Ratios and targets", verdicts=verdicts, lines=out.lines,
               markdown=args.markdown, append=args.append_results, log=log)


if __name__ == "__main__":
    main()
