"""The peer of the feature store benchmark: Feast, timed like mlwright on the same files.

Run by ``benchmarks/features.py`` with the Python of ``benchmarks/.venvs/features`` (never the
project's), one process per measurement so that each one's peak memory is its own. It reads
one JSON config (``--config``) and writes one JSON result (``--result``). The feature
repository is built in a folder of its own (``config["repo"]``): a ``feature_store.yaml``
(project, local registry file, the offline and the online store asked for), then
``FeatureStore.apply`` of the entity ``user`` (join key ``user_id``, INT64) and the feature
view ``user_stats`` (10 Float64 features, TTL ``ttl_hours``) over a ``FileSource`` of the
benchmark's Parquet file (``event_timestamp``, created timestamp ``created``).

Modes:

* ``historical``: ``get_historical_features(entity_df, ["user_stats:f0", ...]).to_df()``
  with the offline store ``offline`` (``file`` or ``duckdb``) on the entity Parquet file
  read into pandas beforehand (with its ``row_id`` column, which Feast carries through, so
  that its rows, which it reorders, can be put back in input order); one warm-up call, then
  ``repeats`` timed calls (only the warm-up when it took longer than ``single_above_s``).
  The last frame goes to ``output`` (Parquet, ``row_id`` + the features, sorted by
  ``row_id``); the result has the times, the peak RSS (VmHWM) and the RSS before the first
  call;
* ``online``: the duckdb offline store and the online store ``online`` (``sqlite`` or
  ``redis``); ``materialize(start, end)`` timed once into the fresh store, then
  ``get_online_features`` of 1 entity (``single_calls`` calls, random ids, after
  ``warmup_calls``) and of ``batch`` entities per call (``batch_calls`` calls), as
  ``.to_dict()``; the values read for ``check_ids`` are returned for the check. Redis: the
  project name is unique to the run and ``FeatureStore.teardown()`` deletes its keys at the
  end (the keys left are counted and reported).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from datetime import datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

started_import = time.perf_counter()
import feast  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType  # noqa: E402
from feast.types import Float64, Int64  # noqa: E402

IMPORT_S = time.perf_counter() - started_import

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/: common.py
from common import peak_rss_mb, rss_mb  # noqa: E402

FEATURES = [f"f{i}" for i in range(10)]
REFS = [f"user_stats:{name}" for name in FEATURES]


def build_store(config: dict[str, Any], offline: str, online: str) -> FeatureStore:
    repo = Path(config["repo"])
    repo.mkdir(parents=True, exist_ok=True)
    if online == "redis":
        online_yaml = (f"  type: redis\n  connection_string: \"{config['redis_host']},"
                       f"db={config['redis_db']}\"\n")
    else:
        online_yaml = f"  type: sqlite\n  path: {repo / 'online.db'}\n"
    (repo / "feature_store.yaml").write_text(
        f"project: {config['project']}\n"
        f"registry: {repo / 'registry.db'}\n"
        "provider: local\n"
        f"offline_store:\n  type: {offline}\n"
        f"online_store:\n{online_yaml}"
        "entity_key_serialization_version: 3\n", encoding="utf-8")
    store = FeatureStore(repo_path=str(repo))
    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    source = FileSource(name="user_stats_source", path=config["features_path"],
                        timestamp_field="event_timestamp", created_timestamp_column="created")
    view = FeatureView(name="user_stats", entities=[user],
                       ttl=timedelta(hours=config["ttl_hours"]),
                       schema=[Field(name="user_id", dtype=Int64),
                               *[Field(name=name, dtype=Float64) for name in FEATURES]],
                       source=source, online=True)
    store.apply([user, view])
    return store


def historical(config: dict[str, Any]) -> dict[str, Any]:
    store = build_store(config, config["offline"], "sqlite")
    entity_df = pd.read_parquet(config["entity_path"])
    baseline = rss_mb()

    def call() -> pd.DataFrame:
        return store.get_historical_features(entity_df=entity_df, features=REFS).to_df()

    started = time.perf_counter()
    frame = call()
    first = time.perf_counter() - started
    times: list[float] = []
    if first <= config["single_above_s"]:
        for _ in range(config["repeats"]):
            del frame
            started = time.perf_counter()
            frame = call()
            times.append(time.perf_counter() - started)
    peak = peak_rss_mb()
    rows = len(frame)
    frame = frame[["row_id", *FEATURES]].sort_values("row_id", kind="stable")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, config["output"])
    return {"first_s": first, "times": times or [first], "peak_rss_mb": peak,
            "baseline_rss_mb": baseline, "rows": rows, "entity_rows": len(entity_df)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def online(config: dict[str, Any]) -> dict[str, Any]:
    import random

    store = build_store(config, "duckdb", config["online"])
    start = datetime.fromisoformat(config["materialize_start"])
    end = datetime.fromisoformat(config["materialize_end"])
    started = time.perf_counter()
    store.materialize(start, end)
    materialize_s = time.perf_counter() - started

    rng = random.Random(config["seed"])
    n = config["n_entities"]

    def read(ids: list[int]) -> dict[str, Any]:
        return store.get_online_features(features=REFS,
                                         entity_rows=[{"user_id": i} for i in ids]).to_dict()

    for _ in range(config["warmup_calls"]):
        read([rng.randrange(n)])
    single: list[float] = []
    for _ in range(config["single_calls"]):
        ids = [rng.randrange(n)]
        started = time.perf_counter()
        read(ids)
        single.append(time.perf_counter() - started)
    batch: list[float] = []
    for _ in range(config["batch_calls"]):
        ids = [rng.randrange(n) for _ in range(config["batch"])]
        started = time.perf_counter()
        read(ids)
        batch.append(time.perf_counter() - started)
    checked = read(config["check_ids"])
    values = {"user_id": [int(v) for v in checked["user_id"]],
              **{name: [None if v is None else float(v) for v in checked[name]]
                 for name in FEATURES}}
    left = None
    if config["online"] == "redis":
        store.teardown()  # deletes this project's keys
        import redis

        host, port = config["redis_host"].split(":")
        client = redis.Redis(host=host, port=int(port), db=config["redis_db"])
        left = sum(1 for _ in client.scan_iter(b"*" + config["project"].encode()))
    return {"materialize_s": materialize_s, "single": single, "batch": batch,
            "single_p50": percentile(single, 50), "single_p99": percentile(single, 99),
            "batch_p50": percentile(batch, 50), "batch_p99": percentile(batch, 99),
            "values": values, "keys_left": left, "peak_rss_mb": peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="JSON config")
    parser.add_argument("--result", required=True, help="where to write the JSON result")
    args = parser.parse_args()
    logging.getLogger("feast").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    config = json.loads(Path(args.config).read_text(encoding="utf-8"))
    result = historical(config) if config["mode"] == "historical" else online(config)
    result.update({"import_s": IMPORT_S, "feast": feast.__version__,
                   "versions": {name: version(name) for name in
                                ("pandas", "pyarrow", "duckdb", "ibis-framework", "redis")},
                   "python": sys.version.split()[0]})
    Path(args.result).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
