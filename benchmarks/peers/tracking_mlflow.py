"""The peer of the tracking benchmark: MLflow, on one local store, timed like mlwright.

Run by ``benchmarks/pipelines.py`` with the Python of ``benchmarks/.venvs/pipelines`` (never
the project's), once per store (``--uri``: ``file:/…`` for MLflow's file store,
``sqlite:///…`` for its SQLAlchemy store on SQLite, ``postgresql://…`` on PostgreSQL). It
reads the parameters and metric points to log from ``--data`` (JSON written by the
benchmark, so that both tools log exactly the same values) and prints one JSON object: every
repetition's time of each operation, in seconds, and what the read-back checks found.

Each repetition uses fresh runs in one experiment; the store (file tree or migrated database)
and the experiment are created before any timing, as they are for mlwright. The operations:

* ``log_param``: 100 ``mlflow.log_param(key, value)`` calls in an active run;
* ``log_params``: one ``mlflow.log_params(dict of 100)``;
* ``log_metric``: 1,000 ``mlflow.log_metric(key, value, step=i)`` calls, then
  ``mlflow.end_run()`` (MLflow's ``log_metric`` is synchronous, so this is ~all in the calls);
* ``log_batch``: the same 1,000 points in one ``MlflowClient().log_batch`` (its fastest path;
  1,000 is the most one call takes), then ``client.set_terminated``;
* ``get_run``: ``client.get_run(run_id)`` of the run holding the 100 parameters and 1,000
  points: its parameters and the latest value of each metric;
* ``metric_history``: ``client.get_metric_history(run_id, key)``: all 1,000 points;
* ``start_end``: ``mlflow.start_run()`` then ``mlflow.end_run()`` with nothing logged.

The first repetition is a warm-up (imports, connection pools, caches) and is not reported.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

# MLflow 3.x refuses the file store (in "maintenance mode") unless this is set.
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")  # the default: synchronous

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric

Times = dict[str, list[float]]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def check_readback(params: dict[str, Any], key: str, points: list[float], fetched: Any,
                   history: list[Metric]) -> list[str]:
    """What differs between what was logged and what MLflow gives back (empty: nothing)."""
    problems: list[str] = []
    expected = {k: str(v) for k, v in params.items()}  # MLflow stores parameters as str(value)
    if dict(fetched.data.params) != expected:
        problems.append(f"params: {len(fetched.data.params)} read back, {len(expected)} logged"
                        " or values differ")
    if fetched.data.metrics.get(key) != points[-1]:
        problems.append(f"latest {key}: {fetched.data.metrics.get(key)!r} != {points[-1]!r}")
    got = sorted((m.step, m.value) for m in history)
    if got != list(enumerate(points)):
        problems.append(f"history: {len(got)} points read back, {len(points)} logged or values "
                        "differ")
    return problems


def repetition(client: MlflowClient, experiment_id: str, params: dict[str, Any], key: str,
               points: list[float]) -> tuple[dict[str, float], list[str]]:
    times: dict[str, float] = {}

    mlflow.start_run(experiment_id=experiment_id, run_name="log_param")

    def log_param() -> None:
        for k, v in params.items():
            mlflow.log_param(k, v)

    times["log_param"], _ = timed(log_param)
    mlflow.end_run()

    run = mlflow.start_run(experiment_id=experiment_id, run_name="log_params+log_metric")
    run_id = run.info.run_id
    times["log_params"], _ = timed(lambda: mlflow.log_params(params))

    def log_metrics() -> None:
        for step, value in enumerate(points):
            mlflow.log_metric(key, value, step=step)
        mlflow.end_run()

    times["log_metric"], _ = timed(log_metrics)

    batch_run = client.create_run(experiment_id, run_name="log_batch")
    batch_id = batch_run.info.run_id
    now_ms = int(time.time() * 1000)

    def log_batch() -> None:
        client.log_batch(batch_id, metrics=[Metric(key, value, now_ms, step)
                                            for step, value in enumerate(points)])
        client.set_terminated(batch_id)

    times["log_batch"], _ = timed(log_batch)

    times["get_run"], fetched = timed(lambda: client.get_run(run_id))
    times["metric_history"], history = timed(lambda: client.get_metric_history(run_id, key))
    problems = check_readback(params, key, points, fetched, history)
    batch_history = client.get_metric_history(batch_id, key)
    if sorted((m.step, m.value) for m in batch_history) != list(enumerate(points)):
        problems.append(f"log_batch history: {len(batch_history)} points read back")

    def start_end() -> None:
        mlflow.start_run(experiment_id=experiment_id, run_name="empty")
        mlflow.end_run()

    times["start_end"], _ = timed(start_end)
    return times, problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uri", required=True, help="MLflow tracking URI (file:, sqlite:, ...)")
    parser.add_argument("--data", required=True, help="JSON with params, metric key and points")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)

    data = json.loads(Path(args.data).read_text(encoding="utf-8"))
    params: dict[str, Any] = data["params"]
    key: str = data["metric_key"]
    points: list[float] = data["points"]

    setup_s, experiment_id = timed(lambda: _setup(args.uri))
    client = MlflowClient()
    times: Times = {}
    problems: list[str] = []
    for index in range(args.repeats + 1):
        rep, found = repetition(client, experiment_id, params, key, points)
        problems.extend(found)
        if index == 0:
            continue  # warm-up
        for name, seconds in rep.items():
            times.setdefault(name, []).append(seconds)
    json.dump({"tool": "mlflow", "version": version("mlflow"),
               "sqlalchemy": version("sqlalchemy"), "python": sys.version.split()[0],
               "sqlite": sqlite3.sqlite_version,
               "uri_scheme": args.uri.split(":", 1)[0], "setup_s": setup_s,
               "repeats": args.repeats, "times": times, "problems": sorted(set(problems))},
              sys.stdout)
    sys.stdout.write("\n")


def _setup(uri: str) -> str:
    """Point MLflow at the store (creating and migrating it) and create the experiment."""
    mlflow.set_tracking_uri(uri)
    return str(MlflowClient().create_experiment("bench"))


if __name__ == "__main__":
    main()
