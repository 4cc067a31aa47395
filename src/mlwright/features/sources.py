"""Where a feature view's rows come from, as DuckDB relations.

>>> ParquetSource("data/ratings/")                       # a file, a folder, or an fsspec URL
ParquetSource(path='data/ratings/')
>>> DatasetSource("ratings@3")                           # a registered dataset version
DatasetSource(ref='ratings@3')
>>> SqlSource("SELECT user_id, ts, avg(rating) OVER w AS mean_7d FROM ratings "
...           "WINDOW w AS (PARTITION BY user_id ORDER BY ts "
...           "RANGE BETWEEN INTERVAL 7 DAYS PRECEDING AND CURRENT ROW)",
...           inputs={"ratings": ParquetSource("ratings.parquet")})   # doctest: +ELLIPSIS
SqlSource(...)

A source becomes SQL text that DuckDB reads lazily (``relation``), so nothing is loaded into
Python memory: scans stream and large joins spill to disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mlwright.errors import FeatureError

if TYPE_CHECKING:
    import duckdb

    from mlwright.workspace import Workspace


@dataclass
class SourceContext:
    """What reading a source needs: a DuckDB session and the workspace (for datasets). Given
    ``None``, the context opens a session on first use and ``close`` closes it (a join that
    reads its files with pyarrow never needs one)."""

    session: duckdb.DuckDBPyConnection | None
    workspace: Workspace
    registered: set[str] = field(default_factory=set)
    datasets: dict[str, str] = field(default_factory=dict)  # dataset ref -> version read
    owned: bool = False

    @property
    def conn(self) -> duckdb.DuckDBPyConnection:
        if self.session is None:
            from mlwright.features.relations import connect  # relations builds on this module

            self.session, self.owned = connect(self.workspace), True
        return self.session

    def close(self) -> None:
        """Close the session this context opened itself (a given one is the caller's)."""
        if self.owned and self.session is not None:
            self.session.close()
            self.session, self.owned = None, False

    def temp_name(self, hint: str) -> str:
        name = f"__src_{len(self.registered)}_{hint}"
        self.registered.add(name)
        return name


class Source(Protocol):
    """One method turns a source into SQL that DuckDB can select from."""

    def relation(self, ctx: SourceContext) -> str: ...

    def to_spec(self) -> dict[str, Any]: ...

    def describe(self) -> str: ...


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class ParquetSource:
    """A Parquet file or a folder of them (read recursively), local or at an fsspec URL.

    A relative path is relative to the feature repository; ``apply`` stores it absolute.
    """

    path: str

    def resolved(self, base: Path) -> ParquetSource:
        if "://" in self.path or Path(self.path).expanduser().is_absolute():
            return ParquetSource(str(Path(self.path).expanduser()) if "://" not in self.path
                                 else self.path)
        return ParquetSource(str((base / self.path).resolve()))

    def relation(self, ctx: SourceContext) -> str:
        if "://" in self.path and not self.path.startswith("file://"):
            import fsspec

            protocol = self.path.split("://", 1)[0]
            fs = fsspec.filesystem(protocol)
            if not fs.exists(self.path):
                raise FeatureError(f"Source path '{self.path}' does not exist; fix the path in "
                                   "the feature view and run `mlwright features apply`.")
            ctx.conn.register_filesystem(fs)
            target = self.path.rstrip("/") + "/**/*.parquet" if fs.isdir(self.path) else self.path
        else:
            local = Path(self.path.removeprefix("file://")).expanduser()
            if not local.exists():
                raise FeatureError(f"Source path '{local}' does not exist; fix the path in the "
                                   "feature view and run `mlwright features apply`.")
            if local.is_dir():
                if not any(local.rglob("*.parquet")):
                    raise FeatureError(f"Source folder '{local}' holds no .parquet files.")
                target = str(local / "**" / "*.parquet")
            else:
                target = str(local)
        return f"read_parquet({_quote(target)}, union_by_name = true)"

    def to_spec(self) -> dict[str, Any]:
        return {"type": "parquet", "path": self.path}

    def describe(self) -> str:
        return f"parquet:{self.path}"


@dataclass(frozen=True)
class DatasetSource:
    """A registered dataset: ``NAME@N`` pins a version, ``NAME`` reads the newest one."""

    ref: str

    def relation(self, ctx: SourceContext) -> str:
        from mlwright.data.datasets import get_dataset_version

        version = get_dataset_version(self.ref, workspace=ctx.workspace)
        ctx.datasets[self.ref] = version.ref
        store = ctx.workspace.artifacts
        local = store.local_path(version.artifact_digest)
        if local is not None:
            return f"read_parquet({_quote(str(local))})"
        ctx.conn.register_filesystem(store.fs)
        return f"read_parquet({_quote(store.object_path(version.artifact_digest))})"

    def to_spec(self) -> dict[str, Any]:
        return {"type": "dataset", "ref": self.ref}

    def describe(self) -> str:
        return f"dataset:{self.ref}"


@dataclass(frozen=True)
class SqlSource:
    """DuckDB SQL over other sources or feature views, each named in ``inputs``.

    Windowed aggregates are the usual use: counts and means over the last N days per entity,
    computed once per event so that point-in-time joins see only the past.
    """

    query: str
    inputs: Mapping[str, Any] = field(default_factory=dict)  # name -> Source or FeatureView

    def __post_init__(self) -> None:
        for name in self.inputs:
            if not name.isidentifier():
                raise FeatureError(f"SQL source input name '{name}' is not an identifier; "
                                   "the query refers to inputs by name.")

    def _input_source(self, value: Any) -> Source:
        source = getattr(value, "source", value)  # a FeatureView stands for its source
        if not hasattr(source, "relation"):
            raise FeatureError(f"SQL source input {value!r} is neither a source nor a view.")
        return source  # type: ignore[no-any-return]

    def resolved(self, base: Path) -> SqlSource:
        inputs = {}
        for name, value in self.inputs.items():
            source = self._input_source(value)
            inputs[name] = source.resolved(base) if hasattr(source, "resolved") else source
        return SqlSource(self.query, inputs)

    def relation(self, ctx: SourceContext) -> str:
        import duckdb

        # Inputs become common table expressions of this query alone, so two SQL sources may
        # both call an input "ratings" and still read their own.
        ctes = [f'"{name}" AS (SELECT * FROM {self._input_source(value).relation(ctx)})'
                for name, value in self.inputs.items()]
        query = self.query.strip().rstrip(";")
        if ctes and query[:4].upper() == "WITH" and query[4:5].isspace():
            query = f"WITH {', '.join(ctes)}, {query[5:].lstrip()}"
        elif ctes:
            query = f"WITH {', '.join(ctes)} {query}"
        view = ctx.temp_name("sql")
        try:
            ctx.conn.execute(f'CREATE OR REPLACE TEMP VIEW "{view}" AS {query}')
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0]
            raise FeatureError(f"SQL source does not run: {first}. Fix the query "
                               f"(inputs available: {', '.join(self.inputs) or 'none'}).") from None
        return f'"{view}"'

    def to_spec(self) -> dict[str, Any]:
        return {"type": "sql", "query": self.query,
                "inputs": {k: self._input_source(v).to_spec() for k, v in self.inputs.items()}}

    def describe(self) -> str:
        return f"sql({', '.join(self.inputs)})"


def source_from_spec(spec: Mapping[str, Any]) -> Source:
    kind = spec.get("type")
    if kind == "parquet":
        return ParquetSource(spec["path"])
    if kind == "dataset":
        return DatasetSource(spec["ref"])
    if kind == "sql":
        return SqlSource(spec["query"], {k: source_from_spec(v) for k, v in spec["inputs"].items()})
    raise FeatureError(f"Unknown source type {kind!r} in a stored feature view; upgrade mlwright.")
