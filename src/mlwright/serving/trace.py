"""Reading the prediction and feedback logs, and tracing one request to where it came from.

>>> read_predictions(model="delays", since=datetime(2024, 5, 1, tzinfo=UTC))   # doctest: +SKIP
>>> found = trace("3f2a9c")                                                    # doctest: +SKIP
>>> found.predictions[0].ref, [v.ref for v in found.predictions[0].feature_views]  # doctest: +SKIP
('delays@2', ['weather@2'])

The chain of a trace: the request's log rows → the model version that answered (registry) →
the feature view versions it read, each with its source (datasets as of the request's time,
files) → the version's lineage (training datasets, run, code, parent versions) → the labels
sent back for the request. Parts that no longer exist (a deleted model, a view never applied
here) are reported with a note instead of failing the trace.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
from sqlalchemy import select

from mlwright.data.datasets import DatasetVersionInfo, get_dataset_version, list_versions, parse_ref
from mlwright.errors import MlwrightError, NotFoundError, ServingError
from mlwright.features.relations import connect
from mlwright.features.sources import source_from_spec
from mlwright.registry import LineageGraph, ModelVersionInfo, get_model_version, lineage
from mlwright.serving.feedback import FEEDBACK_SCHEMA
from mlwright.serving.predlog import OUTPUT_TYPES, UTC_MICROS
from mlwright.store import FeatureDefinition
from mlwright.workspace import Workspace, as_workspace

WorkspaceArg = Workspace | str | os.PathLike[str] | None

PREDICTION_SCHEMA = pa.schema([
    ("request_id", pa.string()), ("row", pa.int32()), ("time", UTC_MICROS),
    ("model", pa.string()), ("version", pa.int32()), ("latency_ms", pa.float64()),
    ("status", pa.int16()), ("feature_views", pa.list_(pa.string())),
    ("inputs", pa.struct([])), ("features", pa.struct([])), *OUTPUT_TYPES.items()])
_PREDICTION_HIVE = "{'model': VARCHAR, 'date': DATE, 'hour': INTEGER}"
_FEEDBACK_HIVE = "{'date': DATE, 'hour': INTEGER}"
_VIEW_REF = re.compile(r"(?P<name>[^@]+?)(?:@v?(?P<version>\d+))?")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC, the log's zone."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _parquet_glob(folder: str) -> tuple[str | None, Any]:
    """The glob of the Parquet files under ``folder`` (None when there are none yet) and the
    fsspec file system DuckDB must be given (None for a local folder)."""
    if "://" in folder and not folder.startswith("file://"):
        import fsspec

        fs, path = fsspec.core.url_to_fs(folder)
        found = fs.exists(path) and fs.glob(f"{path}/**/*.parquet")
        return (f"{folder}/**/*.parquet" if found else None), fs
    local = Path(folder.removeprefix("file://"))
    if not local.is_dir() or next(local.rglob("*.parquet"), None) is None:
        return None, None
    return str(local / "**" / "*.parquet"), None


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """The schema's columns first (nulls where no file has them), then any others."""
    columns = dict(zip(table.column_names, table.columns, strict=True))
    names = [f.name for f in schema] + [n for n in columns if n not in schema.names]
    arrays = [columns[n] if n in columns else pa.nulls(table.num_rows, schema.field(n).type)
              for n in names]
    return pa.Table.from_arrays(arrays, names=names)


def _read(ws: Workspace, folder: str, what: str, hive: str, schema: pa.Schema,
          where: list[str], params: list[Any], order: str) -> pa.Table:
    import duckdb

    pattern, fs = _parquet_glob(folder)
    if pattern is None:
        return schema.empty_table()
    conn = connect(ws)
    try:
        if fs is not None:
            conn.register_filesystem(fs)
        sql = (f"SELECT * EXCLUDE (date, hour) FROM read_parquet({_literal(pattern)}, "
               f"union_by_name = true, hive_partitioning = true, hive_types = {hive})"
               + (f" WHERE {' AND '.join(where)}" if where else "") + f" ORDER BY {order}")
        table = conn.sql(sql, params=params).to_arrow_table()
    except duckdb.Error as exc:
        raise ServingError(f"Cannot read the {what} at {folder}: "
                           f"{str(exc).splitlines()[0]}") from None
    finally:
        conn.close()
    return _conform(table, schema)


def _filters(request_id: str | None, since: datetime | None,
             until: datetime | None) -> tuple[list[str], list[Any]]:
    # Dates are literals so that DuckDB prunes whole date= folders before opening a file.
    where: list[str] = []
    params: list[Any] = []
    if request_id is not None:
        where.append("request_id = ?")
        params.append(request_id)
    if since is not None:
        start = _utc(since)
        where += [f"date >= DATE '{start:%Y-%m-%d}'", f"time >= TIMESTAMPTZ '{start.isoformat()}'"]
    if until is not None:
        end = _utc(until)
        where += [f"date <= DATE '{end:%Y-%m-%d}'", f"time < TIMESTAMPTZ '{end.isoformat()}'"]
    return where, params


def read_predictions(workspace: WorkspaceArg = None, *, model: str | None = None,
                     request_id: str | None = None, since: datetime | None = None,
                     until: datetime | None = None, directory: str | None = None) -> pa.Table:
    """Rows of the prediction log (``since`` inclusive, ``until`` exclusive; naive times are
    UTC), oldest first; an empty table of the log's schema when nothing matches.

    ``directory`` reads a log kept elsewhere than the workspace's ``predictions_dir``.
    """
    ws = as_workspace(workspace)
    folder = (directory or ws.predictions_dir).rstrip("/")
    if model is not None:  # only that model's folder is listed and read
        folder = f"{folder}/model={quote(model, safe='')}"
    where, params = _filters(request_id, since, until)
    return _read(ws, folder, "prediction log", _PREDICTION_HIVE, PREDICTION_SCHEMA, where,
                 params, "time, request_id, model, version, row")


def read_feedback(workspace: WorkspaceArg = None, *, request_id: str | None = None,
                  since: datetime | None = None, until: datetime | None = None,
                  directory: str | None = None) -> pa.Table:
    """Rows of the feedback log, filtered like :func:`read_predictions`, oldest first."""
    ws = as_workspace(workspace)
    where, params = _filters(request_id, since, until)
    return _read(ws, (directory or ws.feedback_dir).rstrip("/"), "feedback log", _FEEDBACK_HIVE,
                 FEEDBACK_SCHEMA, where, params, "time, request_id, row")


def plain(value: Any) -> Any:
    """A value read from the logs, made JSON-able (times as ISO text, NaN as null)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return value.hex()
    return value


@dataclass
class FeatureViewTrace:
    """A feature view version a request read, and where its data comes from."""

    ref: str  # as logged
    name: str
    version: int | None  # None when the view is not in the feature store
    kind: str | None = None  # "view" or "on_demand"
    source: str | None = None  # "dataset:weather@1", "parquet:/data/weather", "sql(a, b)"
    datasets: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    input_views: list[str] = field(default_factory=list)  # of an on-demand view
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PredictionTrace:
    """One logged answer to the request: rows, model version, feature views, lineage."""

    model: str
    version: int
    time: datetime
    latency_ms: float
    status: int
    rows: list[dict[str, Any]]  # row, inputs, features, output
    feature_views: list[FeatureViewTrace]
    model_version: ModelVersionInfo | None
    lineage: LineageGraph | None
    note: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        info = self.model_version
        return {
            "model": self.model, "version": self.version, "ref": self.ref,
            "time": self.time.isoformat(), "latency_ms": self.latency_ms, "status": self.status,
            "rows": plain(self.rows), "feature_views": [v.to_dict() for v in self.feature_views],
            "model_version": None if info is None else {
                "flavor": info.flavor, "manifest_digest": info.manifest_digest,
                "aliases": info.aliases, "created_at": info.created_at.isoformat(),
                "created_by": info.created_by, "metrics": info.metrics},
            "lineage": None if self.lineage is None else self.lineage.to_dict(),
            "note": self.note}


@dataclass
class Trace:
    """Everything known about one request id (usually one prediction; a shadowed request
    has one per model that answered it)."""

    request_id: str
    predictions: list[PredictionTrace]
    feedback: list[dict[str, Any]]  # row, label, time
    log: str

    def to_dict(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "log": self.log,
                "predictions": [p.to_dict() for p in self.predictions],
                "feedback": plain(self.feedback)}


def _dataset(ws: Workspace, declared: str, at: datetime) -> dict[str, Any]:
    """A dataset a source reads; an unpinned one resolved to the version current at ``at``."""
    try:
        name, number = parse_ref(declared)
        if number is None:
            current = [v for v in list_versions(name, workspace=ws) if v.created_at <= at]
            if not current:
                return {"declared": declared, "ref": None,
                        "note": f"no version of dataset '{name}' existed at {at:%Y-%m-%d %H:%M} UTC"}
            info: DatasetVersionInfo = current[-1]
        else:
            info = get_dataset_version(declared, workspace=ws)
    except MlwrightError as exc:  # removed since, or a reference this mlwright cannot parse
        return {"declared": declared, "ref": None, "note": str(exc)}
    return {"declared": declared, "ref": info.ref, "content_hash": info.content_hash,
            "num_rows": info.num_rows}


def _walk(spec: dict[str, Any], datasets: list[str], paths: list[str]) -> None:
    kind = spec.get("type")
    if kind == "dataset":
        datasets.append(str(spec["ref"]))
    elif kind == "parquet":
        paths.append(str(spec["path"]))
    for inner in (spec.get("inputs") or {}).values():  # a SQL source's inputs
        _walk(inner, datasets, paths)


def _feature_view(ws: Workspace, ref: str, at: datetime) -> FeatureViewTrace:
    match = _VIEW_REF.fullmatch(ref)
    if match is None:
        return FeatureViewTrace(ref, ref, None, note="not a VIEW@N reference")
    name, number = match["name"], int(match["version"]) if match["version"] else None
    query = select(FeatureDefinition).where(FeatureDefinition.kind.in_(("view", "on_demand")),
                                            FeatureDefinition.name == name)
    query = query.where(FeatureDefinition.version == number) if number is not None else \
        query.order_by(FeatureDefinition.version.desc())
    with ws.db.session() as session:
        row = session.execute(query.limit(1)).scalars().first()
        found = None if row is None else (row.kind, row.version, dict(row.spec))
    if found is None:
        return FeatureViewTrace(ref, name, None, note=f"no feature view '{name}'"
                                + (f" version {number}" if number is not None else "")
                                + " in this workspace's feature store")
    kind, version, spec = found
    if kind == "on_demand":
        return FeatureViewTrace(ref, name, version, kind, input_views=list(spec.get("views", [])))
    datasets: list[str] = []
    paths: list[str] = []
    _walk(spec["source"], datasets, paths)
    try:
        source = source_from_spec(spec["source"]).describe()
    except MlwrightError:  # a source type this mlwright does not know
        source = str(spec["source"].get("type"))
    return FeatureViewTrace(ref, name, version, kind, source,
                            [_dataset(ws, d, at) for d in dict.fromkeys(datasets)], paths)


def _row(row: dict[str, Any]) -> dict[str, Any]:
    output = next((row.get(n) for n in OUTPUT_TYPES if row.get(n) is not None), None)
    return {"row": row["row"], "inputs": row.get("inputs"), "features": row.get("features"),
            "output": output}


def _prediction(ws: Workspace, rows: list[dict[str, Any]]) -> PredictionTrace:
    first = rows[0]
    ref = f"{first['model']}@{first['version']}"
    info: ModelVersionInfo | None = None
    graph: LineageGraph | None = None
    note = None
    try:
        info = get_model_version(ref, workspace=ws)
        graph = lineage(ref, workspace=ws)
    except NotFoundError as exc:  # the model was deleted since; the log still knows the rest
        note = str(exc)
    views = [_feature_view(ws, v, first["time"]) for v in first["feature_views"] or []]
    return PredictionTrace(first["model"], first["version"], first["time"], first["latency_ms"],
                           first["status"], [_row(r) for r in rows], views, info, graph, note)


def _label(row: dict[str, Any]) -> Any:
    if row.get("label") is not None:
        return row["label"]
    if row.get("label_text") is not None:
        return row["label_text"]
    return None if row.get("label_json") is None else json.loads(row["label_json"])


def trace(request_id: str, *, workspace: WorkspaceArg = None) -> Trace:
    """The request's rows, model version, feature views with their sources, lineage and
    feedback; NotFoundError when the prediction log has no such request."""
    ws = as_workspace(workspace)
    rows = read_predictions(ws, request_id=request_id).to_pylist()
    if not rows:
        raise NotFoundError(f"No prediction with request id '{request_id}' in the prediction log "
                            f"at {ws.predictions_dir}; check the id, or retry in a few seconds "
                            "(the server writes the log every second).")
    answers: dict[tuple[str, int, datetime], list[dict[str, Any]]] = {}
    for row in rows:
        answers.setdefault((row["model"], row["version"], row["time"]), []).append(row)
    feedback = [{"row": f["row"], "label": _label(f), "time": f["time"]}
                for f in read_feedback(ws, request_id=request_id).to_pylist()]
    return Trace(request_id, [_prediction(ws, group) for group in answers.values()], feedback,
                 ws.predictions_dir)
