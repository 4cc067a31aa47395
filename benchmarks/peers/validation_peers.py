"""The peers of the validation benchmark: Great Expectations and pandera (pandas and polars).

Run by ``benchmarks/validation.py`` with the Python of ``benchmarks/.venvs/validation`` (never
the project's), on the same Parquet files and the same rules (given as JSON, one object per
mlwright rule). For each tool it translates the rules into the tool's own terms, validates
the clean and the planted table, and writes JSON: the best time of ``--repeats`` runs after a
warm-up, and, on the planted table, the failing-row count (or pass/fail for table-level
rules) per mlwright rule id.

What is timed is the validation of a frame already in memory, never the Parquet read:

* Great Expectations: ``batch_definition.get_batch(dataframe) + batch.validate(suite)`` with
  ``result_format="BASIC"`` (counts and a short list of failing values, the least that still
  reports how many rows failed; mlwright returns counts and 5 sample rows);
* pandera: ``schema.validate(df, lazy=True)`` (lazy, so that every failure is collected, as
  mlwright and Great Expectations do); on the planted table it raises ``SchemaErrors``, whose
  ``failure_cases`` give the counts.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PANDERA_VALIDATION_DEPTH", "SCHEMA_AND_DATA")

import pandas as pd
import polars as pl

Rule = dict[str, Any]
Counts = dict[str, int | bool]

# mlwright type names -> each library's own name for the same column type
PANDAS_TYPES = {"int64": "int64", "float64": "float64", "bool": "bool",
                "timestamp[us, tz=UTC]": "datetime64[us, UTC]"}
# Great Expectations checks a pandas column's scalar type (dtype.type): a tz-aware timestamp
# column's is pandas.Timestamp, whatever its unit and zone.
GX_TYPES = {**PANDAS_TYPES, "timestamp[us, tz=UTC]": "Timestamp"}
POLARS_TYPES: dict[str, Any] = {"int64": pl.Int64, "float64": pl.Float64, "bool": pl.Boolean,
                                "timestamp[us, tz=UTC]": pl.Datetime("us", "UTC")}


def log(message: str) -> None:
    print(f"  · {message}", file=sys.stderr, flush=True)


def best_of(run: Callable[[], Any], repeats: int) -> tuple[float, list[float], Any]:
    """Warm up once, then time ``repeats`` runs; the best time, all times, the warm-up result."""
    result = run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times), times, result


# -- Great Expectations --------------------------------------------------------------------------

def great_expectations_tool(rules: list[Rule]) -> tuple[Callable[[pd.DataFrame], Any],
                                                        Callable[[Any], Counts]]:
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # they cost time
    batch_definition = (context.data_sources.add_pandas("bench").add_dataframe_asset("orders")
                        .add_batch_definition_whole_dataframe("whole"))
    suite = context.suites.add(gx.ExpectationSuite(name="orders"))
    for rule in rules:
        meta = {"rule": rule["rule"]}
        kind, cols = rule["kind"], rule["columns"]
        column = cols[0] if cols else None
        if kind == "type":
            expectation: Any = gxe.ExpectColumnValuesToBeOfType(
                column=column, type_=GX_TYPES[rule["dtype"]], meta=meta)
        elif kind == "not_null":
            expectation = gxe.ExpectColumnValuesToNotBeNull(column=column, meta=meta)
        elif kind == "unique" and len(cols) == 1:
            expectation = gxe.ExpectColumnValuesToBeUnique(column=column, meta=meta)
        elif kind == "unique":
            expectation = gxe.ExpectCompoundColumnsToBeUnique(column_list=cols, meta=meta)
        elif kind == "range":
            expectation = gxe.ExpectColumnValuesToBeBetween(
                column=column, min_value=rule["min"], max_value=rule["max"], meta=meta)
        elif kind == "allowed":
            expectation = gxe.ExpectColumnValuesToBeInSet(column=column, value_set=rule["values"],
                                                          meta=meta)
        elif kind == "regex":
            expectation = gxe.ExpectColumnValuesToMatchRegex(column=column, regex=rule["pattern"],
                                                             meta=meta)
        elif kind == "mean":
            expectation = gxe.ExpectColumnMeanToBeBetween(
                column=column, min_value=rule["min"], max_value=rule["max"], meta=meta)
        elif kind == "row_count":
            expectation = gxe.ExpectTableRowCountToBeBetween(
                min_value=rule["min"], max_value=rule["max"], meta=meta)
        elif kind == "monotonic":
            expectation = gxe.ExpectColumnValuesToBeIncreasing(column=column,
                                                               strictly=rule["strict"], meta=meta)
        else:
            raise SystemExit(f"no Great Expectations translation for rule kind {kind!r}")
        suite.add_expectation(expectation)

    def run(df: pd.DataFrame) -> Any:
        batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
        return batch.validate(suite, result_format="BASIC")

    def counts(result: Any) -> Counts:
        found: Counts = {}
        for item in result.results:
            rule = item.expectation_config.meta["rule"]
            if item.exception_info and item.exception_info.get("raised_exception"):
                raise SystemExit(f"Great Expectations failed on {rule}: {item.exception_info}")
            unexpected = (item.result or {}).get("unexpected_count")
            found[rule] = bool(item.success) if unexpected is None else int(unexpected)
        return found

    return run, counts


# -- pandera -------------------------------------------------------------------------------------

class _Pandera:
    """One DataFrameSchema for a backend, and how its failure cases map back to rule ids."""

    def __init__(self, pa: Any, backend: str, rules: list[Rule]) -> None:
        self.rules = rules
        self.by_name: dict[tuple[str, str], str] = {}  # (column, not_nullable|...) -> rule
        self.column_checks: dict[str, list[str]] = {}  # column -> rule per check_number
        self.frame_checks: list[str] = []              # rule per DataFrameSchema check_number
        columns: dict[str, Any] = {}
        frame_checks: list[Any] = []
        unique_key = None
        for rule in rules:
            kind, name, cols = rule["kind"], rule["rule"], rule["columns"]
            if kind == "row_count":
                frame_checks.append(self._row_count(pa, backend, rule))
                self.frame_checks.append(name)
                continue
            if kind == "unique" and len(cols) > 1:
                unique_key = cols
                self.by_name[("*", "multiple_fields_uniqueness")] = name
                continue
            column = cols[0]
            spec = columns.setdefault(column, {"dtype": None, "nullable": True, "unique": False,
                                               "checks": []})
            if kind == "type":
                types = PANDAS_TYPES if backend == "pandas" else POLARS_TYPES
                spec["dtype"] = types[rule["dtype"]]
                self.by_name[(column, "dtype")] = name
            elif kind == "not_null":
                spec["nullable"] = False
                self.by_name[(column, "not_nullable")] = name
            elif kind == "unique":
                spec["unique"] = True
                self.by_name[(column, "field_uniqueness")] = name
            else:
                spec["checks"].append(self._check(pa, backend, rule))
                self.column_checks.setdefault(column, []).append(name)
        # report_duplicates="all": every row of a duplicated key fails, as in mlwright
        self.schema = pa.DataFrameSchema(
            {c: pa.Column(**spec) for c, spec in columns.items()}, checks=frame_checks,
            unique=unique_key, report_duplicates="all")

    @staticmethod
    def _check(pa: Any, backend: str, rule: Rule) -> Any:
        kind, name = rule["kind"], rule["rule"]
        if kind == "range":
            return pa.Check.in_range(rule["min"], rule["max"], name=name)
        if kind == "allowed":
            return pa.Check.isin(rule["values"], name=name)
        if kind == "regex":
            # str_matches anchors at the start only (re.match / "^" + pattern); the pattern is
            # anchored at both ends, so it means the same as mlwright's search.
            return pa.Check.str_matches(rule["pattern"], name=name)
        if kind == "mean":  # pandera has no built-in mean check: the documented custom check
            low, high = rule["min"], rule["max"]
            if backend == "pandas":
                return pa.Check(lambda s: low <= s.mean() <= high, name=name)
            return pa.Check(lambda data: data.lazyframe.select(
                pl.col(data.key).mean().is_between(low, high)), name=name)
        if kind == "monotonic":
            # each value >= the one before it; the first row has none before it. (The column
            # has no nulls; with nulls, mlwright compares with the previous non-null value.)
            if backend == "pandas":
                return pa.Check(lambda s: s.ge(s.shift()) | s.shift().isna(), name=name)
            return pa.Check(lambda data: data.lazyframe.select(
                (pl.col(data.key) >= pl.col(data.key).shift()).fill_null(True)), name=name)
        raise SystemExit(f"no pandera translation for rule kind {kind!r}")

    @staticmethod
    def _row_count(pa: Any, backend: str, rule: Rule) -> Any:
        low, high = rule["min"], rule["max"]
        if backend == "pandas":
            return pa.Check(lambda df: low <= len(df) <= high, name=rule["rule"])
        return pa.Check(lambda data: data.lazyframe.select(pl.len().is_between(low, high)),
                        name=rule["rule"])

    def rule_of(self, context: str, column: Any, check: str, number: Any) -> str:
        if check == "multiple_fields_uniqueness":
            return self.by_name[("*", check)]
        if check.startswith("dtype("):
            return self.by_name[(column, "dtype")]
        if check in ("not_nullable", "field_uniqueness"):
            return self.by_name[(column, check)]
        if context == "DataFrameSchema":
            return self.frame_checks[int(number)]
        return self.column_checks[column][int(number)]

    def counts(self, failure_cases: pd.DataFrame | None) -> Counts:
        """Failing rows per rule: distinct row indexes (a compound-key failure is reported once
        per key column by the pandas backend); table-level failures have no index."""
        rows: dict[str, set[Any]] = {}
        failed: set[str] = set()
        if failure_cases is not None:
            frame = failure_cases[["schema_context", "column", "check", "check_number", "index"]]
            for context, column, check, number, index in frame.itertuples(index=False):
                rule = self.rule_of(context, column, str(check), number)
                failed.add(rule)
                if index is not None and index == index:
                    rows.setdefault(rule, set()).add(index)
        result: Counts = {}
        for rule in self.rules:
            name = rule["rule"]
            table_level = rule["kind"] in ("type", "mean", "row_count")
            result[name] = name not in failed if table_level else len(rows.get(name, ()))
        return result


def pandera_tool(backend: str, rules: list[Rule]) -> tuple[Callable[[Any], Any],
                                                           Callable[[Any], Counts]]:
    from pandera.errors import SchemaErrors

    if backend == "pandas":
        import pandera.pandas as pa
    else:
        import pandera.polars as pa
    translated = _Pandera(pa, backend, rules)

    def run(df: Any) -> Any:
        try:
            translated.schema.validate(df, lazy=True)
        except SchemaErrors as errors:
            return errors.failure_cases
        return None

    def counts(failure_cases: Any) -> Counts:
        if failure_cases is not None and backend == "polars":
            failure_cases = failure_cases.to_pandas()
        return translated.counts(failure_cases)

    return run, counts


# -- main ------------------------------------------------------------------------------------------

TOOLS = {
    "great_expectations": ("pandas", great_expectations_tool),
    "pandera_pandas": ("pandas", lambda rules: pandera_tool("pandas", rules)),
    "pandera_polars": ("polars", lambda rules: pandera_tool("polars", rules)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", required=True)
    parser.add_argument("--planted", required=True)
    parser.add_argument("--rules", required=True, help="JSON file: a list of rule objects")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", required=True)
    parser.add_argument("--tools", default=",".join(TOOLS))
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    rules = json.loads(Path(args.rules).read_text(encoding="utf-8"))

    frames: dict[str, dict[str, Any]] = {"pandas": {}, "polars": {}}
    out: dict[str, Any] = {
        "versions": {name: version(name) for name in
                     ("great_expectations", "pandera", "pandas", "polars", "pyarrow", "numpy")},
        "python": sys.version.split()[0],
        "tools": {},
    }
    for tool in args.tools.split(","):
        engine, build = TOOLS[tool]
        if not frames[engine]:
            for copy in ("clean", "planted"):
                path = getattr(args, copy)
                frames[engine][copy] = (pd.read_parquet(path) if engine == "pandas"
                                        else pl.read_parquet(path))
        run, counts = build(rules)
        entry: dict[str, Any] = {"engine": engine}
        for copy in ("clean", "planted"):
            frame = frames[engine][copy]
            best, times, result = best_of(lambda f=frame, run=run: run(f), args.repeats)
            entry[copy] = {"best_s": best, "times_s": times, "counts": counts(result)}
            log(f"{tool:<20} {copy:<8} best {best:.3f}s of {[round(t, 3) for t in times]}")
        out["tools"][tool] = entry
    Path(args.out).write_text(json.dumps(out, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
