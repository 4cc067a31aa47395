"""Benchmark of the feature store (issue 5): mlwright against Feast, and the floors.

The data (numpy, seeded, written to Parquet in a temporary folder; the same files for every
tool): ``user_id`` (int64), ``event_timestamp`` and ``created`` (timestamp[us, UTC]) and 10
float64 features ``f0``..``f9``; one row per entity and hour (each entity with its own offset
within the hour), plus 0.5% restated rows (the same entity and event time, a later
``created``, new values: the created timestamp breaks the tie) and 0.1% nulls in ``f9``. The
entity dataframe (``user_id``, ``event_timestamp``, and ``row_id``, its position): random
times from 12 hours before the first event to 72 hours after the last (so some rows are
before any event and some beyond the 48-hour TTL), ids up to 2% above the last one (ids with
no data), 1% of the rows copies of others (duplicates). Sizes (``--sizes``):

* ``small``: 1,000 entities x 100 hours (100,000 rows), 10,000 entity rows;
* ``default``: 10,000 x 100 (1,000,000 rows), 100,000 entity rows;
* ``long``: 10,000 x 400 (4,000,000 rows, 4x the history per entity), 100,000 entity rows;
* ``large``: 100,000 x 100 (10,000,000 rows), 1,000,000 entity rows (only with ``--large``;
  Feast's file store is left out there unless ``--file-store-large``: it took 12 GB of memory
  at 4,000,000 rows).

Measured, for each size, each in a fresh process (so that its peak RSS, VmHWM, is its own;
the RSS before the first call is shown too): the historical retrieval, from the entity
dataframe already in memory to the result in memory, one warm-up call then the median of
``--repeats`` (as many as fit in about a second, up to 25, for calls under a second; only the
warm-up when it took over 30 s):

* mlwright: ``get_historical_features(entity_table, refs, workspace=ws).to_arrow()`` (Arrow
  entity table; rows come back in input order);
* Feast ``get_historical_features(entity_df, refs).to_df()`` with its ``file`` offline store
  (dask/pandas) and with its ``duckdb`` offline store (ibis), pandas entity dataframe;
* the floors, no feature store: one DuckDB ``ASOF LEFT JOIN`` of the Arrow entity table with
  ``read_parquet`` of the file, the TTL as a ``CASE``, ``ORDER BY row_id``; one polars
  ``join_asof(by="user_id", tolerance="48h")`` of the entity frame with ``scan_parquet`` of
  the file, both sorted by time first, then sorted back by ``row_id``.

Checked: mlwright's rows against Feast's duckdb offline store, row for row (by ``row_id``;
every feature equal, nulls and NaN counted equal); the Feast file store and the floors against
the same reference, for information.

At the ``default`` size (or the largest run below it): materialization of the whole history
(``materialize(start, end)``, Feast with its duckdb offline store) into SQLite and into Redis
(each timed once into a fresh store), then online reads of 1 entity x 10 features (p50/p99 of
``--calls`` calls, random ids, after 100 warm-up calls) and of 100 entities x 10 features
(median and p99 of ``--batch-calls`` calls), Feast ``get_online_features(...).to_dict()``
against mlwright ``online_reader(refs).get({"user_id": ids}).to_dict()``; the values read for
50 entities (and 2 without data) are checked against the latest row of each in the data.
Redis (``--redis``, skipped when it does not answer): Feast's project name and mlwright's key
prefix are unique to the run; Feast's ``teardown()`` and a scan of mlwright's prefix delete
their keys at the end (nothing else is touched). Also: the time of ``import feast`` and of
``import mlwright.features`` (median of 3 fresh processes).

Targets (issue 5): historical retrieval within 1.2x of the faster floor; mlwright's peak RSS
flat as history grows (``long`` against ``default``: within 1.25x); materialization at least
5x faster than Feast; online 1x10 p99 under 0.15 ms on SQLite and 0.3 ms on Redis; 100
entities under 1 ms on SQLite and 1.5 ms on Redis. Ratios: Feast / mlwright (above 1:
mlwright faster) and mlwright / floor (below 1.2: target met).

Feast runs in a virtual environment of its own (``benchmarks/.venvs/features``, built from
``benchmarks/requirements-features.txt`` when missing) through
``benchmarks/peers/features_feast.py``; mlwright and the floors run in the project's
environment, in child processes of this script (``--child``).

Run: ``.venv/bin/python benchmarks/features.py`` from the repository root (``--quick``: the
small and default sizes, one timed call, fewer online calls; ``--large``: also the large
size; ``--markdown``: also print the run as a section for RESULTS.md; ``--append-results``:
append that section to benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common import Report, ensure_venv, fmt, machine, median, peak_rss_mb, record_run, rss_mb

HERE = Path(__file__).resolve().parent
PEER_SCRIPT = HERE / "peers" / "features_feast.py"
REQUIREMENTS = HERE / "requirements-features.txt"

FEATURES = [f"f{i}" for i in range(10)]
REFS = [f"user_stats:{name}" for name in FEATURES]
TTL_HOURS = 48
# mlwright once more with DuckDB held to this memory limit: it spills instead of growing
BOUNDED_LIMIT = "256MB"
SEED = 20250605
SINGLE_ABOVE_S = 30.0  # a warm-up slower than this is the only timed call
SHORT_CALL_S = 1.0  # calls quicker than this are repeated to fill about this long


@dataclass(frozen=True)
class Size:
    name: str
    entities: int
    hours: int
    entity_rows: int

    @property
    def label(self) -> str:
        return f"{self.name} ({self.entities:,} x {self.hours})"


SIZES = {
    "small": Size("small", 1_000, 100, 10_000),
    "default": Size("default", 10_000, 100, 100_000),
    "long": Size("long", 10_000, 400, 100_000),
    "large": Size("large", 100_000, 100, 1_000_000),
}


def log(message: str) -> None:
    print(f"· {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# -- data ------------------------------------------------------------------------------------

def to_timestamps(seconds: np.ndarray) -> pa.Array:
    return pa.array(seconds.astype(np.int64) * 1_000_000, pa.timestamp("us", tz="UTC"))


def generate(folder: Path, size: Size, anchor: dt.datetime) -> dict[str, Any]:
    """Write features.parquet and entities.parquet for ``size`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED + size.entities + size.hours)
    n, h = size.entities, size.hours
    end_s = int(anchor.timestamp())
    start_s = end_s - h * 3600
    offsets = rng.integers(0, 3600, n)
    user_id = np.repeat(np.arange(n, dtype=np.int64), h)
    event_s = start_s + np.tile(np.arange(h, dtype=np.int64), n) * 3600 + np.repeat(offsets, h)
    created_s = event_s + rng.integers(60, 3600, n * h)
    values = rng.standard_normal((n * h, len(FEATURES)))
    restated = rng.choice(n * h, (n * h) // 200, replace=False)  # same key, later, new values
    user_id = np.concatenate([user_id, user_id[restated]])
    event_s = np.concatenate([event_s, event_s[restated]])
    created_s = np.concatenate([created_s, created_s[restated]
                                + rng.integers(1, 86_400, len(restated))])
    values = np.concatenate([values, rng.standard_normal((len(restated), len(FEATURES)))])
    order = np.lexsort((created_s, event_s))  # a log in time order
    nulls = rng.random(len(order)) < 0.001
    columns: dict[str, Any] = {"user_id": pa.array(user_id[order]),
                               "event_timestamp": to_timestamps(event_s[order]),
                               "created": to_timestamps(created_s[order])}
    for i, name in enumerate(FEATURES):
        column = values[order, i]
        columns[name] = pa.array(column, mask=nulls) if name == "f9" else pa.array(column)
    features_path = folder / "features.parquet"
    pq.write_table(pa.table(columns), features_path)

    m = size.entity_rows
    ids = rng.integers(0, int(n * 1.02) + 1, m)
    times = rng.integers(start_s - 12 * 3600, end_s + 72 * 3600, m)
    copies = rng.choice(m, m // 100, replace=False)
    sources = rng.choice(m, m // 100, replace=False)
    ids[copies], times[copies] = ids[sources], times[sources]
    entity_path = folder / "entities.parquet"
    pq.write_table(pa.table({"user_id": pa.array(ids.astype(np.int64)),
                             "event_timestamp": to_timestamps(times),
                             "row_id": pa.array(np.arange(m, dtype=np.int64))}), entity_path)
    return {"features_path": str(features_path), "entity_path": str(entity_path),
            "rows": len(order), "entity_rows": m,
            "start": dt.datetime.fromtimestamp(start_s, dt.UTC),
            "features_mb": features_path.stat().st_size / 1e6}


def latest_rows(features_path: str, ids: list[int]) -> dict[int, list[float | None]]:
    """What an online store must hold per entity: the row with the latest event, then the
    latest created."""
    table = pq.read_table(features_path).to_pandas()
    table = table[table["user_id"].isin(ids)].sort_values(["user_id", "event_timestamp",
                                                           "created"])
    last = table.groupby("user_id").tail(1).set_index("user_id")
    return {int(i): [None if np.isnan(v) else float(v) for v in last.loc[i, FEATURES]]
            for i in last.index}


# -- mlwright (one function per call of its API: adapt here) ---------------------------------

REPOSITORY = '''"""The benchmark's feature repository (written by benchmarks/features.py)."""
from datetime import timedelta

from mlwright.features import Entity, FeatureView, Field, ParquetSource

user = Entity("user", join_keys={{"user_id": "int64"}})
user_stats = FeatureView(
    "user_stats",
    entities=[user],
    source=ParquetSource({path!r}),
    timestamp_field="event_timestamp",
    created_timestamp_field="created",
    features=[Field(f"f{{i}}", "float64") for i in range(10)],
    ttl=timedelta(hours={ttl}),
)
'''


def ml_workspace(folder: Path, features_path: str) -> Any:
    """A fresh workspace with the feature repository applied."""
    import mlwright
    from mlwright.features import apply_repository

    ws = mlwright.init_workspace(folder / "ws")
    repo = folder / "repo"
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "features.py").write_text(REPOSITORY.format(path=features_path, ttl=TTL_HOURS),
                                      encoding="utf-8")
    apply_repository(repo, workspace=ws)
    return ws


def ml_redis_workspace(folder: Path, url: str, prefix: str) -> Any:
    import mlwright

    return mlwright.open_workspace(folder / "ws", overrides={"online_url": url,
                                                             "online_prefix": prefix})


def ml_bounded_workspace(folder: Path) -> Any:
    import mlwright

    return mlwright.open_workspace(folder / "ws",
                                   overrides={"offline_memory_limit": BOUNDED_LIMIT})


def ml_historical(ws: Any, entities: pa.Table) -> pa.Table:
    from mlwright.features import get_historical_features

    result: pa.Table = get_historical_features(entities, REFS, workspace=ws).to_arrow()
    return result


def ml_materialize(ws: Any, start: dt.datetime, end: dt.datetime) -> None:
    from mlwright.features import materialize

    materialize(start, end, workspace=ws)


def ml_reader(ws: Any) -> Any:
    from mlwright.features import online_reader

    return online_reader(REFS, workspace=ws)


def ml_read(reader: Any, ids: list[int]) -> dict[str, list[Any]]:
    result: dict[str, list[Any]] = reader.get({"user_id": ids}).to_dict()
    return result


# -- children: one measurement per process ---------------------------------------------------

def timed_calls(call: Any, repeats: int) -> tuple[float, list[float], Any]:
    """A warm-up call, then ``repeats`` timed ones (none when the warm-up was over 30 s), or
    more for short calls: as many as fit in about a second, up to 25 (a median of 3 calls of
    20 ms moved by a quarter between runs)."""
    started = time.perf_counter()
    value = call()
    first = time.perf_counter() - started
    times: list[float] = []
    if first <= SINGLE_ABOVE_S:
        if first < SHORT_CALL_S:
            repeats = max(repeats, min(25, int(SHORT_CALL_S / max(first, 1e-3))))
        for _ in range(repeats):
            del value
            started = time.perf_counter()
            value = call()
            times.append(time.perf_counter() - started)
    return first, times or [first], value


def child_historical(config: dict[str, Any]) -> dict[str, Any]:
    kind, features_path = config["kind"], config["features_path"]
    entities = pq.read_table(config["entity_path"])
    if kind in ("mlwright", "mlwright-bounded"):
        ws = ml_workspace(Path(config["folder"]), features_path)
        if kind == "mlwright-bounded":  # the same workspace, DuckDB held to a memory limit
            ws = ml_bounded_workspace(Path(config["folder"]))
        table = entities.select(["user_id", "event_timestamp"])  # the API's input, no extras
        baseline = rss_mb()
        first, times, result = timed_calls(lambda: ml_historical(ws, table), config["repeats"])
        rows = result.num_rows
        out = result.select(FEATURES).append_column(
            "row_id", pa.array(np.arange(rows, dtype=np.int64)))
    elif kind == "duckdb":
        import duckdb

        conn = duckdb.connect()
        conn.register("entity", entities)
        cases = ", ".join(f"CASE WHEN f.event_timestamp >= e.event_timestamp - INTERVAL "
                          f"{TTL_HOURS} HOUR THEN f.{name} END AS {name}" for name in FEATURES)
        path = features_path.replace("'", "''")
        query = (f"SELECT e.row_id, {cases} FROM entity e ASOF LEFT JOIN read_parquet('{path}') f"
                 " ON e.user_id = f.user_id AND e.event_timestamp >= f.event_timestamp"
                 " ORDER BY e.row_id")
        baseline = rss_mb()
        first, times, out = timed_calls(lambda: conn.sql(query).fetch_arrow_table(),
                                        config["repeats"])
        rows = out.num_rows
    elif kind == "polars":
        import polars as pl

        frame = pl.from_arrow(entities)
        assert isinstance(frame, pl.DataFrame)

        def join() -> pl.DataFrame:
            source = pl.scan_parquet(features_path).sort("event_timestamp", "created")
            return (frame.lazy().sort("event_timestamp")
                    .join_asof(source, on="event_timestamp", by="user_id",
                               tolerance=f"{TTL_HOURS}h", check_sortedness=False)
                    .sort("row_id").collect())

        baseline = rss_mb()
        first, times, joined = timed_calls(join, config["repeats"])
        rows = joined.height
        out = joined.select(["row_id", *FEATURES]).to_arrow()
    else:
        raise ValueError(kind)
    peak = peak_rss_mb()
    pq.write_table(out, config["output"])
    return {"first_s": first, "times": times, "peak_rss_mb": peak, "baseline_rss_mb": baseline,
            "rows": rows, "entity_rows": entities.num_rows}


def child_online(config: dict[str, Any]) -> dict[str, Any]:
    import random

    folder = Path(config["folder"])
    start = dt.datetime.fromisoformat(config["materialize_start"])
    end = dt.datetime.fromisoformat(config["materialize_end"])
    stores: dict[str, Any] = {"sqlite": ml_workspace(folder, config["features_path"])}
    if config["redis_url"]:
        stores["redis"] = ml_redis_workspace(folder, config["redis_url"], config["redis_prefix"])
    n = config["n_entities"]
    results: dict[str, Any] = {}
    for name, ws in stores.items():
        started = time.perf_counter()
        ml_materialize(ws, start, end)
        materialize_s = time.perf_counter() - started
        reader = ml_reader(ws)
        rng = random.Random(config["seed"])
        for _ in range(config["warmup_calls"]):
            ml_read(reader, [rng.randrange(n)])
        single: list[float] = []
        for _ in range(config["single_calls"]):
            ids = [rng.randrange(n)]
            started = time.perf_counter()
            ml_read(reader, ids)
            single.append(time.perf_counter() - started)
        batch: list[float] = []
        for _ in range(config["batch_calls"]):
            ids = [rng.randrange(n) for _ in range(config["batch"])]
            started = time.perf_counter()
            ml_read(reader, ids)
            batch.append(time.perf_counter() - started)
        checked = ml_read(reader, config["check_ids"])
        results[name] = {
            "materialize_s": materialize_s, "single_p50": percentile(single, 50),
            "single_p99": percentile(single, 99), "batch_p50": percentile(batch, 50),
            "batch_p99": percentile(batch, 99),
            "values": {"user_id": [int(v) for v in checked["user_id"]],
                       **{f: [None if v is None else float(v) for v in checked[f]]
                          for f in FEATURES}}}
    return {"stores": results, "peak_rss_mb": peak_rss_mb()}


def run_child(args: argparse.Namespace) -> None:
    config = json.loads(Path(args.child).read_text(encoding="utf-8"))
    result = child_online(config) if config["kind"] == "online" else child_historical(config)
    Path(args.result).write_text(json.dumps(result), encoding="utf-8")


# -- the parent: runs the children -----------------------------------------------------------

def spawn(python: Path, script: Path, config: dict[str, Any], folder: Path,
          name: str) -> dict[str, Any]:
    """Run ``script`` on ``config`` in a fresh process; its JSON result, or {"error": ...}."""
    config_path, result_path = folder / f"{name}.config.json", folder / f"{name}.result.json"
    config_path.write_text(json.dumps(config, default=str), encoding="utf-8")
    flags = ["--config"] if script == PEER_SCRIPT else ["--child"]
    log(f"{name} ...")
    started = time.perf_counter()
    done = subprocess.run([str(python), str(script), *flags, str(config_path), "--result",
                           str(result_path)], capture_output=True, text=True, check=False,
                          cwd=folder)
    if done.returncode != 0 or not result_path.exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
        log(f"{name} failed:\n" + "\n".join(tail))
        return {"error": tail[-1] if tail else f"exit {done.returncode}"}
    result: dict[str, Any] = json.loads(result_path.read_text(encoding="utf-8"))
    log(f"{name} done in {time.perf_counter() - started:.1f} s")
    return result


def compare(path: str, reference: str) -> dict[str, Any]:
    """Rows of ``path`` against ``reference`` by row_id: rows missing or extra, and rows where
    a feature differs (nulls and NaN equal)."""
    ours, theirs = pq.read_table(path), pq.read_table(reference)
    ours_ids = ours.column("row_id").to_numpy()
    ref_ids = theirs.column("row_id").to_numpy()
    common_ids, ours_at, ref_at = np.intersect1d(ours_ids, ref_ids, return_indices=True)
    differ = np.zeros(len(common_ids), dtype=bool)
    for name in FEATURES:
        a = ours.column(name).to_numpy(zero_copy_only=False).astype(np.float64)[ours_at]
        b = theirs.column(name).to_numpy(zero_copy_only=False).astype(np.float64)[ref_at]
        differ |= ~((a == b) | (np.isnan(a) & np.isnan(b)))
    example = None
    if differ.any():
        row = int(common_ids[np.argmax(differ)])
        example = {"row_id": row}
    return {"rows": len(ours_ids), "missing": len(np.setdiff1d(ref_ids, ours_ids)),
            "extra": len(ours_ids) - len(common_ids),
            "duplicated": len(ours_ids) - len(np.unique(ours_ids)),
            "mismatched": int(differ.sum()), "example": example,
            "found": int(sum(~np.isnan(theirs.column("f0").to_numpy(zero_copy_only=False)
                                       .astype(np.float64))))}


def check_online(values: dict[str, list[Any]] | None,
                 expected: dict[int, list[float | None]], ids: list[int]) -> str:
    if not values:
        return "-"
    wrong = 0
    for position, i in enumerate(ids):
        got = [values[f][position] for f in FEATURES] if position < len(values["user_id"]) \
            else None
        want = expected.get(i, [None] * len(FEATURES))
        if got != want:
            wrong += 1
    return "OK" if wrong == 0 else f"{wrong} of {len(ids)} entities differ"


def import_time(python: Path, module: str) -> float | None:
    code = f"import time; t = time.perf_counter(); import {module}; " \
           "print(time.perf_counter() - t)"
    times = []
    for _ in range(3):
        done = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            return None
        times.append(float(done.stdout.strip().splitlines()[-1]))
    return median(times)


def redis_client(url: str) -> Any:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    client.ping()
    return client


def delete_keys(client: Any, pattern: str) -> int:
    deleted = 0
    keys = list(client.scan_iter(match=pattern, count=10_000))
    for start in range(0, len(keys), 10_000):
        deleted += client.delete(*keys[start:start + 10_000])
    return deleted


def mlwright_features_error() -> str | None:
    try:
        import mlwright.features as features

        missing = [name for name in ("Entity", "FeatureView", "Field", "ParquetSource",
                                     "apply_repository", "get_historical_features",
                                     "materialize", "online_reader")
                   if not hasattr(features, name)]
        return f"mlwright.features lacks {', '.join(missing)}" if missing else None
    except Exception as exc:  # the API is not there (yet): the peers and floors still run
        return f"{type(exc).__name__}: {exc}"


def mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} MB"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES),
                        help="sizes to run (default: small default long; --quick: small "
                             "default)")
    parser.add_argument("--large", action="store_true", help="also the large size")
    parser.add_argument("--quick", action="store_true",
                        help="small and default sizes, 1 timed call, 1,000 online calls")
    parser.add_argument("--repeats", type=int, help="timed retrievals after the warm-up "
                        "(default 3; --quick 1)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="processes per mlwright/floor retrieval, interleaved, their timed "
                             "calls pooled, where every call takes under a second (default 3)")
    parser.add_argument("--calls", type=int, help="1-entity online calls (default 2000)")
    parser.add_argument("--batch-calls", type=int, help="100-entity online calls (default 200)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0",
                        help="Redis for the online rows ('' to skip)")
    parser.add_argument("--no-file-store", action="store_true",
                        help="skip Feast's file offline store (the slowest column)")
    parser.add_argument("--file-store-large", action="store_true",
                        help="run Feast's file store at the large size too (it is left out "
                             "there: 12 GB of memory at 4,000,000 rows already)")
    parser.add_argument("--markdown", action="store_true",
                        help="also print the run as a section of RESULTS.md")
    parser.add_argument("--append-results", action="store_true",
                        help="append that section to benchmarks/RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args)
        return
    for name in ("MLWRIGHT_WORKSPACE", "MLWRIGHT_METADATA_URL", "MLWRIGHT_ARTIFACT_URL",
                 "MLWRIGHT_ONLINE_URL", "MLWRIGHT_ONLINE_PREFIX"):
        os.environ.pop(name, None)  # the benchmark's own workspaces, nothing else
    sizes = args.sizes or (["small", "default"] if args.quick else ["small", "default", "long"])
    if args.large and "large" not in sizes:
        sizes.append("large")
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    calls = args.calls or (1000 if args.quick else 2000)
    batch_calls = args.batch_calls or (100 if args.quick else 200)

    load_start = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    venv_new = not (HERE / ".venvs" / "features" / "bin" / "python").exists()
    install_started = time.perf_counter()
    feast_python = ensure_venv("features", REQUIREMENTS)
    install_s = time.perf_counter() - install_started if venv_new else None
    ml_error = mlwright_features_error()
    if ml_error:
        log(f"mlwright side skipped: {ml_error}")
    redis_url = args.redis
    redis_info = ""
    client = None
    if redis_url:
        try:
            client = redis_client(redis_url)
            redis_info = f"Redis {client.info('server')['redis_version']} at {redis_url}"
        except Exception as exc:
            log(f"Redis rows skipped: {exc}")
            redis_url = ""
    run_id = uuid.uuid4().hex[:12]
    root = Path(tempfile.mkdtemp(prefix="mlwright-bench-features-"))
    anchor = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    python = Path(sys.executable)
    script = Path(__file__).resolve()
    data: dict[str, dict[str, Any]] = {}
    hist: dict[str, dict[str, dict[str, Any]]] = {}
    checks: dict[str, dict[str, dict[str, Any]]] = {}
    online: dict[str, Any] = {}
    online_size = "default" if "default" in sizes else sizes[-1]
    try:
        imports = {"feast": import_time(feast_python, "feast"),
                   "mlwright.features": None if ml_error else import_time(python,
                                                                          "mlwright.features")}
        for size_name in sizes:
            size = SIZES[size_name]
            folder = root / size_name
            started = time.perf_counter()
            data[size_name] = generate(folder, size, anchor)
            log(f"{size.label}: {data[size_name]['rows']:,} rows written in "
                f"{time.perf_counter() - started:.1f} s")
            paths = {"features_path": data[size_name]["features_path"],
                     "entity_path": data[size_name]["entity_path"]}
            results: dict[str, dict[str, Any]] = {}
            outputs: dict[str, str] = {}
            tools = (["mlwright", "mlwright-bounded"] if not ml_error else []) + ["duckdb",
                                                                                 "polars"]
            for round_ in range(args.rounds):
                # Short calls move by a quarter from one process to the next on this machine:
                # more rounds, interleaved, and every timed call of every round pooled.
                for tool in tools:
                    outputs[tool] = str(folder / f"{tool}.parquet")
                    result = spawn(python, script, {
                        "kind": tool, **paths, "folder": str(folder / "mlwright"),
                        "repeats": repeats, "output": outputs[tool]}, folder, tool)
                    if round_ == 0:
                        results[tool] = result
                    elif "error" not in result and "error" not in results[tool]:
                        results[tool]["times"] += result["times"]
                        results[tool]["rounds"] = round_ + 1
                if any("error" in r or median(r["times"]) > SHORT_CALL_S
                       for r in results.values()):
                    break
            file_store = not args.no_file_store and (size_name != "large"
                                                     or args.file_store_large)
            for store in (["file"] if file_store else []) + ["duckdb"]:
                name = f"feast-{store}"
                outputs[name] = str(folder / f"{name}.parquet")
                results[name] = spawn(feast_python, PEER_SCRIPT, {
                    "mode": "historical", **paths, "offline": store,
                    "repo": str(folder / f"feast-repo-{store}"),
                    "project": f"bench_{run_id}_{size_name}_{store}", "ttl_hours": TTL_HOURS,
                    "repeats": repeats, "single_above_s": SINGLE_ABOVE_S,
                    "output": outputs[name]}, folder, name)
            hist[size_name] = results
            checks[size_name] = {}
            if "error" not in results["feast-duckdb"]:
                for tool, path in outputs.items():
                    if tool != "feast-duckdb" and "error" not in results[tool]:
                        checks[size_name][tool] = compare(path, outputs["feast-duckdb"])

            if size_name == online_size:
                size_data = data[size_name]
                rng = np.random.default_rng(SEED)
                check_ids = [int(i) for i in rng.choice(size.entities, 50, replace=False)]
                check_ids += [size.entities + 1, size.entities + 5]  # no data
                common = {"features_path": size_data["features_path"], "ttl_hours": TTL_HOURS,
                          "materialize_start": (size_data["start"] - dt.timedelta(hours=1))
                          .isoformat(),
                          "materialize_end": (anchor + dt.timedelta(hours=1)).isoformat(),
                          "n_entities": size.entities, "seed": SEED, "warmup_calls": 100,
                          "single_calls": calls, "batch_calls": batch_calls, "batch": 100,
                          "check_ids": check_ids}
                host_port = db = None
                if redis_url:
                    from urllib.parse import urlparse

                    parsed = urlparse(redis_url)
                    host_port = f"{parsed.hostname}:{parsed.port or 6379}"
                    db = int(parsed.path.strip("/") or 0)
                for store in ["sqlite"] + (["redis"] if redis_url else []):
                    online[f"feast-{store}"] = spawn(feast_python, PEER_SCRIPT, {
                        "mode": "online", **common, "online": store,
                        "repo": str(folder / f"feast-online-{store}"),
                        "project": f"bench_{run_id}_online_{store}",
                        "redis_host": host_port, "redis_db": db}, folder, f"feast-{store}-online")
                if not ml_error:
                    prefix = f"bench-{run_id}"
                    online["mlwright"] = spawn(python, script, {
                        "kind": "online", **common, "folder": str(folder / "mlwright-online"),
                        "redis_url": redis_url, "redis_prefix": prefix},
                        folder, "mlwright-online")
                    if client is not None:
                        online["mlwright_keys_deleted"] = delete_keys(client, f"{prefix}*")
                online["expected"] = latest_rows(size_data["features_path"], check_ids)
                online["check_ids"] = check_ids
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    load_end = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    report(args, sizes, data, hist, checks, online, online_size, imports, install_s, ml_error,
           redis_info, load_start, load_end, repeats, calls, batch_calls, root)


def report(args: argparse.Namespace, sizes: list[str], data: dict[str, dict[str, Any]],
           hist: dict[str, dict[str, dict[str, Any]]],
           checks: dict[str, dict[str, dict[str, Any]]], online: dict[str, Any],
           online_size: str, imports: dict[str, float | None], install_s: float | None,
           ml_error: str | None, redis_info: str, load_start: str, load_end: str,
           repeats: int, calls: int, batch_calls: int, root: Path) -> None:
    import duckdb
    import polars as pl

    out = Report()
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    feast_info = next((r for rs in hist.values() for r in rs.values()
                       if "feast" in r), {})
    feast_versions = feast_info.get("versions", {})
    try:
        import mlwright

        ml_version = mlwright.__version__
    except Exception:  # pragma: no cover - the project's environment always has it
        ml_version = "?"
    out(f"# mlwright benchmark: feature store (issue 5), {now}")
    out()
    out(f"machine:  {machine()}")
    out(f"load:     load averages (1 / 5 / 15 min) {load_start} at the start, {load_end} at the "
        "end")
    out(f"versions: mlwright {ml_version}, duckdb {duckdb.__version__}, polars "
        f"{pl.__version__}, pyarrow {pa.__version__}, numpy {np.__version__}, Python "
        f"{platform.python_version()}; Feast {feast_info.get('feast', '?')} ("
        + ", ".join(f"{k} {v}" for k, v in feast_versions.items())
        + f", Python {feast_info.get('python', '?')})" + (f"; {redis_info}" if redis_info
                                                          else "; no Redis"))
    out("install:  Feast environment benchmarks/.venvs/features "
        + (f"built in {install_s:.0f} s this run" if install_s is not None
           else "already there") + f" (pins: {REQUIREMENTS.name})")
    out(f"import:   import feast {fmt(imports.get('feast'))}, import mlwright.features "
        f"{fmt(imports.get('mlwright.features'))} (median of 3 fresh processes)")
    for name in sizes:
        size, d = SIZES[name], data.get(name)
        if d:
            out(f"data:     {size.label}: {d['rows']:,} feature rows ({d['features_mb']:.0f} MB "
                f"Parquet), {d['entity_rows']:,} entity rows")
    out(f"          TTL {TTL_HOURS} h, 10 float64 features, seed {SEED}; temporary folder "
        f"{root.parent}")
    if ml_error:
        out(f"mlwright: NOT RUN ({ml_error})")
    out()

    columns = [("mlwright", "mlwright"), (f"mlw {BOUNDED_LIMIT}", "mlwright-bounded"),
               ("Feast file", "feast-file"),
               ("Feast duckdb", "feast-duckdb"), ("DuckDB floor", "duckdb"),
               ("polars floor", "polars")]
    columns = [(label, key) for label, key in columns
               if any(key in hist[s] for s in hist)]

    def time_of(size_name: str, key: str) -> float | None:
        result = hist.get(size_name, {}).get(key)
        return None if not result or "error" in result else median(result["times"])

    out(f"## Historical retrieval (median of {repeats} after a warm-up, up to 25 for calls "
        f"under {SHORT_CALL_S:.0f} s; 1 call when the warm-up took over {SINGLE_ABOVE_S:.0f} s)")
    if any(r.get("rounds") for name in sizes for r in hist.get(name, {}).values()):
        out(f"(mlwright and the floors where every call took under {SHORT_CALL_S:.0f} s: "
            f"{args.rounds} processes each, interleaved, their calls pooled)")
    out()
    head = f"{'size':<26}" + "".join(f" {label:>13}" for label, _ in columns)
    head += f" {'file/mlw':>9} {'duckdb/mlw':>10} {'mlw/floor':>9}"
    out(head)
    out("-" * len(head))
    floor_ratios: dict[str, float | None] = {}
    for name in sizes:
        line = f"{SIZES[name].label:<26}"
        line += "".join(f" {fmt(time_of(name, key)):>13}" for _, key in columns)
        ours = time_of(name, "mlwright")
        floors = [t for t in (time_of(name, "duckdb"), time_of(name, "polars")) if t]
        floor = min(floors) if floors else None
        floor_ratios[name] = ours / floor if ours and floor else None
        line += f" {ratio(time_of(name, 'feast-file'), ours):>9}"
        line += f" {ratio(time_of(name, 'feast-duckdb'), ours):>10}"
        line += f" {ratio(ours, floor):>9}"
        out(line)
    out()
    out("Peak RSS of the retrieval process (VmHWM; in brackets: its RSS before the first call)")
    head = f"{'size':<26}" + "".join(f" {label:>19}" for label, _ in columns)
    out(head)
    out("-" * len(head))
    for name in sizes:
        cells = []
        for _, key in columns:
            r = hist.get(name, {}).get(key)
            cells.append("-" if not r or "error" in r
                         else f"{mb(r['peak_rss_mb'])} ({r['baseline_rss_mb']:,.0f})")
        out(f"{SIZES[name].label:<26}" + "".join(f" {c:>19}" for c in cells))
    out()
    out("Row-for-row check against Feast's duckdb offline store (by row_id; rows with a value "
        "found / rows mismatched / missing / extra)")
    for name in sizes:
        parts = []
        for tool, c in checks.get(name, {}).items():
            parts.append(f"{tool}: {c['rows']:,} rows, {c['mismatched']:,} mismatched, "
                         f"{c['missing']:,} missing, {c['extra']:,} extra"
                         + (f" (first: row_id {c['example']['row_id']})" if c["example"]
                            else ""))
        found = next(iter(checks.get(name, {}).values()), {}).get("found")
        reference = f"Feast duckdb {found:,} of {data[name]['entity_rows']:,} rows found" \
            if found is not None else "no reference"
        out(f"  {SIZES[name].label}: {reference}; " + "; ".join(parts))
    file_ran = any("feast-file" in hist[n] for n in sizes if n in hist)
    out("  (the DuckDB floor's ASOF join takes any one of the rows restated at the same event "
        "time, not the latest created: its mismatches are those ties"
        + ("; Feast's file store leaves out rows and differs on some of those ties)" if file_ran
           else ")"))
    if "large" in sizes and "feast-file" not in hist.get("large", {}) and file_ran:
        out("  (Feast's file store not run at the large size: --file-store-large)")
    errors = [f"{SIZES[n].label} {tool}: {r['error']}" for n in sizes
              for tool, r in hist.get(n, {}).items() if "error" in r]
    for error in errors:
        out(f"  FAILED {error}")
    out()

    out(f"## Materialization and online reads, {SIZES[online_size].label} "
        f"({calls:,} calls of 1 entity, {batch_calls:,} of 100)")
    out()
    ml_online = online.get("mlwright", {})
    ml_stores = ml_online.get("stores", {}) if "error" not in ml_online else {}
    rows = [("materialize into SQLite", "sqlite", "materialize_s", None),
            ("materialize into Redis", "redis", "materialize_s", None),
            ("online 1x10 SQLite p50", "sqlite", "single_p50", None),
            ("online 1x10 SQLite p99", "sqlite", "single_p99", 0.15e-3),
            ("online 1x10 Redis p50", "redis", "single_p50", None),
            ("online 1x10 Redis p99", "redis", "single_p99", 0.3e-3),
            ("100 entities SQLite p50", "sqlite", "batch_p50", 1e-3),
            ("100 entities SQLite p99", "sqlite", "batch_p99", None),
            ("100 entities Redis p50", "redis", "batch_p50", 1.5e-3),
            ("100 entities Redis p99", "redis", "batch_p99", None)]
    head = f"{'operation':<26} {'mlwright':>10} {'Feast':>10} {'Feast/mlw':>10} {'target':>10}"
    out(head)
    out("-" * len(head))
    targets: list[tuple[str, str, bool | None]] = []
    for label, store, key, target in rows:
        peer = online.get(f"feast-{store}", {})
        theirs = peer.get(key) if "error" not in peer else None
        ours = ml_stores.get(store, {}).get(key)
        if theirs is None and ours is None:
            continue
        line = f"{label:<26} {fmt(ours):>10} {fmt(theirs):>10} {ratio(theirs, ours):>10}"
        if key == "materialize_s":
            line += f" {'>= 5x':>10}"
            targets.append((f"{label}: Feast/mlwright >= 5x", ratio(theirs, ours),
                            None if ours is None or theirs is None else theirs / ours >= 5))
        elif target is not None:
            line += f" {'< ' + fmt(target):>10}"
            targets.append((f"{label} < {fmt(target)}", fmt(ours),
                            None if ours is None else ours < target))
        out(line)
    expected, ids = online.get("expected", {}), online.get("check_ids", [])
    parts = [f"Feast {s}: {check_online(online.get(f'feast-{s}', {}).get('values'), expected, ids)}"
             for s in ("sqlite", "redis") if f"feast-{s}" in online]
    parts += [f"mlwright {s}: {check_online(v.get('values'), expected, ids)}"
              for s, v in ml_stores.items()]
    out(f"values of {len(ids)} entities ({len(ids) - 2} with data, 2 without) against the "
        f"latest row of each: {'; '.join(parts) if parts else '-'}")
    keys = [f"Feast redis keys left after teardown: {online['feast-redis'].get('keys_left')}"] \
        if "feast-redis" in online and "error" not in online["feast-redis"] else []
    if "mlwright_keys_deleted" in online:
        keys.append(f"mlwright redis keys deleted (its prefix): "
                    f"{online['mlwright_keys_deleted']:,}")
    if keys:
        out("; ".join(keys))
    for name in ("feast-sqlite", "feast-redis", "mlwright"):
        if "error" in online.get(name, {}):
            out(f"  FAILED {name}: {online[name]['error']}")
    out()

    first: list[tuple[str, str, bool | None]] = []
    for name in sizes:
        value = floor_ratios.get(name)
        first.append((f"historical {SIZES[name].label}: mlwright/faster floor <= 1.2x",
                      "-" if value is None else f"{value:.2f}x",
                      None if value is None else value <= 1.2))
    if "default" in hist and "long" in hist:
        for key, label in (("mlwright", "default limit"), ("mlwright-bounded", BOUNDED_LIMIT)):
            a = hist["default"].get(key, {}).get("peak_rss_mb")
            b = hist["long"].get(key, {}).get("peak_rss_mb")
            first.append((f"peak RSS flat as history grows (4x), {label}: long/default <= 1.25x",
                          ratio(b, a), None if a is None or b is None else b / a <= 1.25))
    targets = first + targets
    out("## Targets")
    out()
    for label, value, met in targets:
        verdict = "not run" if met is None else ("met" if met else "MISSED")
        out(f"  {label:<66} {value:>10}   {verdict}")
    out()
    out("ratios: file/mlw and duckdb/mlw = Feast time / mlwright time (above 1: mlwright "
        "faster); mlw/floor = mlwright / the faster floor (DuckDB ASOF or polars join_asof)")

    verdicts = [f"  - {label}: {value} — {'not run' if met is None else ('met' if met else 'missed')}"
                for label, value, met in targets]
    record_run("Feature store (issue 5)", "benchmarks/features.py",
               f"{repeats} timed call(s) per retrieval after a warm-up; Feast from "
               f"`benchmarks/{REQUIREMENTS.name}` in `benchmarks/.venvs/features`",
               load_start=load_start, load_end=load_end, recorded=now,
               heading="Against the targets", verdicts=verdicts, lines=out.lines,
               markdown=args.markdown, append=args.append_results, log=log)


if __name__ == "__main__":
    main()
