"""Steps and pipelines that the pipeline tests run.

They live in a module (not in the test files) because worker processes find a step by
``module:qualname``. Steps that should be observed append a line to the file ``log`` that the
test passes as a parameter: each line is one real execution.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from mlwright.pipelines import DailyPartitions, StaticPartitions, log_metric, pipeline, step
from mlwright.pipelines.graph import Handle


def mark(log: str, line: str) -> None:
    with Path(log).open("a", encoding="utf-8") as sink:
        sink.write(line + "\n")


def ran(log: str | os.PathLike[str]) -> list[str]:
    """The lines steps wrote to ``log`` (the first word of each: what ran), in order."""
    path = Path(log)
    if not path.exists():
        return []
    return [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines()]


# -- a chain: load -> scale -> total ------------------------------------------------------

@step
def load(n: int, log: str) -> pa.Table:
    mark(log, "load")
    return pa.table({"x": list(range(n))})


@step
def scale(table: pa.Table, factor: float, log: str) -> pa.Table:
    mark(log, "scale")
    return table.append_column("y", pc.multiply(pc.cast(table["x"], pa.float64()), factor))


@step
def total(table: pa.Table, log: str) -> dict[str, Any]:
    mark(log, "total")
    value = pc.sum(table["y"]).as_py()
    log_metric("total", value)
    log_metric("rows", table.num_rows)
    return {"total": value, "rows": table.num_rows}


@pipeline
def chain(log: str, n: int = 5, factor: float = 2.0) -> Any:
    return total(scale(load(n, log), factor, log), log)


@pipeline
def shares_load(log: str, n: int = 5) -> Any:
    """Calls ``load`` with the same inputs as ``chain`` does, so it shares chain's cache."""
    return scale(load(n, log), 1.0, log)


@step(cache=False)
def stamp(table: pa.Table, log: str) -> int:
    mark(log, "stamp")
    return table.num_rows


@pipeline
def with_uncached(log: str) -> Any:
    return stamp(load(3, log), log)


@step(version="1")
def noted(log: str) -> str:
    mark(log, "noted")
    return "noted"


@pipeline
def versioned(log: str) -> Any:
    return noted(log)


@step(cache=False)
def read_text(path: str, log: str) -> str:
    """Reads the outside world, so it runs every time; what follows is keyed by what it read."""
    mark(log, "read_text")
    return Path(path).read_text(encoding="utf-8")


@step
def word_count(text: str, log: str) -> int:
    mark(log, "word_count")
    return len(text.split())


@pipeline
def counts_words(path: str, log: str) -> Any:
    return word_count(read_text(path, log), log)


# -- outputs of every storable kind, and some that are not ----------------------------------

class Opaque:
    """A custom object: not data mlwright knows how to store without pickle."""


def sample(kind: str) -> Any:
    if kind == "arrow":
        return pa.table({"a": [1, 2, 3], "b": ["x", None, "z"]})
    if kind == "pandas":
        return pd.DataFrame({"a": [1.5, 2.5], "b": ["x", "y"]},
                            index=pd.Index([10, 20], name="id"))
    if kind == "polars":
        return pl.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    if kind == "numpy":
        return np.arange(6, dtype=np.float32).reshape(2, 3)
    if kind == "json":
        return {"a": [1, 2.5, None, True], "b": {"c": "d"}, "e": "ü"}
    if kind == "scalar":
        return 42
    if kind == "bytes":
        return b"\x00\x01binary\xff"
    if kind == "lambda":
        return lambda x: x
    if kind == "object":
        return Opaque()
    if kind == "object-array":
        return np.array([Opaque(), Opaque()], dtype=object)
    raise ValueError(kind)


@step
def make(kind: str) -> Any:
    return sample(kind)


@pipeline
def emit(kind: str) -> Any:
    return make(kind)


# -- failure and resume ----------------------------------------------------------------------

@step
def fragile(table: pa.Table, flag: str, log: str) -> pa.Table:
    mark(log, "fragile")
    print("checking the flag")
    logging.getLogger("flows").warning("the flag should be at %s", flag)
    if not Path(flag).exists():
        raise RuntimeError(f"flag file {flag} is missing")
    return table


@pipeline
def resumable(log: str, flag: str, n: int = 4) -> Any:
    checked = fragile(load(n, log), flag, log)
    return total(scale(checked, 1.0, log), log)


# -- retries ---------------------------------------------------------------------------------

def _attempt(counter: str, failures: int) -> int:
    """Counts calls in the file ``counter``; fails the first ``failures`` of them."""
    mark(counter, "attempt")
    attempt = len(ran(counter))
    if attempt <= failures:
        raise ConnectionError(f"attempt {attempt} of {failures + 1} failed")
    return attempt


@step(retries=2, backoff=0.01)
def flaky(counter: str, failures: int) -> int:
    return _attempt(counter, failures)


@step(retries=1, backoff=0.01)
def flaky_once(counter: str, failures: int) -> int:
    return _attempt(counter, failures)


@pipeline
def retrying(counter: str, failures: int = 2) -> Any:
    return flaky(counter, failures)


@pipeline
def retrying_once(counter: str, failures: int = 2) -> Any:
    return flaky_once(counter, failures)


@step
def dies(log: str) -> int:
    """Ends the worker process it runs in, as an out-of-memory kill would."""
    mark(log, "dies")
    os._exit(3)


@pipeline
def crashing(log: str) -> Any:
    return dies(log)


# -- pipelines that are wrong ----------------------------------------------------------------

@pipeline
def branches(log: str) -> Any:
    table = load(3, log)
    if table:
        return table
    return None


@pipeline
def unpacks(log: str) -> Any:
    first, _second = load(3, log)
    return first


@pipeline
def forward_reference(log: str) -> Any:
    """Passes on a handle of a node that does not exist (yet)."""
    return scale(Handle(5, "later"), 1.0, log)


@pipeline
def calls_no_step(n: int = 1) -> Any:
    return None


@pipeline
def returns_a_constant(log: str) -> Any:
    load(1, log)
    return 3


@pipeline
def path_argument(log: str) -> Any:
    return stamp(load(1, log), Path(log))


# -- partitions ------------------------------------------------------------------------------

@step
def day_total(partition: str, log: str, fail_on: str) -> dict[str, str]:
    mark(log, partition)
    if partition == fail_on:
        raise ValueError(f"no data for {partition}")
    return {"day": partition}


@pipeline(partitions=DailyPartitions("2024-01-01", "2024-01-10"))
def daily(partition: str, log: str, fail_on: str = "") -> Any:
    return day_total(partition, log, fail_on)


@pipeline(partitions=StaticPartitions(("eu", "us", "apac")))
def regional(partition: str, log: str) -> Any:
    return day_total(partition, log, "")


# -- a diamond: source -> (left, right) -> join ----------------------------------------------

@step
def source(n: int) -> dict[str, list[int]]:
    return {"values": list(range(n))}


def _timed(log: str, name: str, pause: float) -> None:
    begin = time.time()
    time.sleep(pause)
    mark(log, f"{name} {begin} {time.time()} {os.getpid()}")


@step
def left(data: dict[str, list[int]], log: str, pause: float) -> int:
    _timed(log, "left", pause)
    return sum(data["values"])


@step
def right(data: dict[str, list[int]], log: str, pause: float) -> int:
    _timed(log, "right", pause)
    return max(data["values"])


@step
def join(total: int, top: int) -> dict[str, int]:
    return {"sum": total, "max": top}


@pipeline
def diamond(log: str, n: int = 10, pause: float = 0.0) -> Any:
    data = source(n)
    return join(left(data, log, pause), right(data, log, pause))
