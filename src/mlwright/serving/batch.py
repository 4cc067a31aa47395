"""Batch inference: a table scored by one model version, partition by partition, resumably.

>>> summary = predict_table("delays@champion", "flights@3", "scores/")   # doctest: +SKIP
>>> summary.rows, summary.scored, summary.skipped                      # doctest: +SKIP
(1200000, 12, 0)

The input is a registered dataset (``NAME@N``, or ``NAME`` for the newest version) or a
Parquet file or folder of Parquet files. It is cut into partitions of at most
``partition_rows`` consecutive rows of one file; each partition is checked, scored and
written by the server's own code (:mod:`mlwright.serving.scoring`): the signature and the
contract check the rows, a model with a feature service gets its features by a
point-in-time join at each row's timestamp (the offline twin of the server's online lookup),
and ``ScoringPath.predict`` calls the flavor. Partitions run in this process, in a local
process pool or on Ray (``workers``, ``executor``).

The output folder holds ``part-00000.parquet``, ``part-00001.parquet``, ... with the row id
(``id_column``, or ``row``: the position in the input), the model's output (a list column
for multi-output models such as multi-class probabilities), ``model`` and ``model_version``;
and ``_manifest.json``, which records the model version, the input and the partitioning.
A part is written under a temporary name and renamed, so a part that exists is whole. A
re-run with the same model version and input skips the parts that exist (resume after a
failure or a kill); a re-run against another version or input is refused unless
``overwrite=True``. The alias is resolved once, so every partition uses the same version.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlwright.errors import (
    DataError,
    MlwrightError,
    NotFoundError,
    RequestValidationError,
    ServingError,
)
from mlwright.serving.scoring import ScoringPath, load_scoring_path
from mlwright.workspace import Workspace, as_workspace

WorkspaceArg = Workspace | str | os.PathLike[str] | None
Progress = Callable[[int, int], None]  # (rows done, finished earlier runs included; rows in all)
MANIFEST = "_manifest.json"
FORMAT = 1


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


@dataclass(frozen=True)
class InputFile:
    """One Parquet file of the input: a local path, or a dataset version's artifact."""

    name: str  # as the manifest and messages show it
    location: str  # a path, or an artifact digest when ``artifact``
    artifact: bool
    rows: int
    offset: int  # the input position of its first row
    fingerprint: str  # changes when the file's content may have


@dataclass(frozen=True)
class Partition:
    index: int
    file: InputFile
    start: int  # first row within the file
    rows: int

    def describe(self) -> str:
        return (f"partition {self.index} ({self.file.name} rows {self.start}-"
                f"{self.start + self.rows - 1})")

    def to_dict(self) -> dict[str, Any]:
        return {"part": self.index, "file": self.file.name, "start": self.start,
                "rows": self.rows, "fingerprint": self.file.fingerprint}


@dataclass(frozen=True)
class BatchJob:
    """What every partition needs, small enough to send to a worker process."""

    root: str
    resolved: Any
    model_ref: str  # pinned: NAME@N
    output: str
    id_column: str | None
    timestamp_column: str | None


@dataclass(frozen=True)
class BatchSummary:
    """What a run did: partitions scored now, partitions an earlier run had finished."""

    model: str
    version: int
    input: str
    output: str
    partitions: int
    scored: int
    skipped: int
    rows: int
    rows_scored: int
    seconds: float

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ref": self.ref, "seconds": round(self.seconds, 3)}


# -- the input -------------------------------------------------------------------------------


def _parquet_rows(path: Path | Any, name: str) -> tuple[int, pa.Schema]:
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError(f"Input file '{name}' is not a readable Parquet file: "
                        f"{str(exc).splitlines()[0]}") from None
    return parquet.metadata.num_rows, parquet.schema_arrow


def resolve_input(ws: Workspace, source: str) -> tuple[dict[str, str], list[InputFile],
                                                        pa.Schema | None]:
    """The input's identity (kind, source), its files in order and the first file's schema."""
    path = Path(source).expanduser()
    if path.exists():
        return _resolve_path(path)
    looks_like_path = os.sep in source or "/" in source or source.endswith(".parquet")
    if not looks_like_path:
        from mlwright.data.datasets import get_dataset_version

        try:
            info = get_dataset_version(source, workspace=ws)
        except (NotFoundError, DataError) as exc:
            raise DataError(f"Input '{source}' is neither a file or folder nor a registered "
                            f"dataset ({exc})") from None
        local = ws.artifacts.local_path(info.artifact_digest)
        handle: Any = local if local is not None else ws.artifacts.fs.open(
            ws.artifacts.object_path(info.artifact_digest), "rb")
        rows, schema = _parquet_rows(handle, info.ref)
        files = [InputFile(info.ref, info.artifact_digest, True, rows, 0, info.content_hash)]
        return {"kind": "dataset", "source": info.ref}, files, schema
    raise DataError(f"Input '{source}' does not exist; give a Parquet file, a folder of "
                    "Parquet files or a dataset reference NAME@N.")


def _resolve_path(path: Path) -> tuple[dict[str, str], list[InputFile], pa.Schema | None]:
    root = path.resolve()
    if root.is_dir():
        found = sorted(p for p in root.rglob("*.parquet") if p.is_file() and not any(
            part.startswith((".", "_")) for part in p.relative_to(root).parts))
        if not found:
            raise DataError(f"Input folder '{root}' holds no .parquet files.")
    else:
        found = [root]
    files: list[InputFile] = []
    schema: pa.Schema | None = None
    offset = 0
    for file in found:
        name = str(file.relative_to(root)) if root.is_dir() else file.name
        rows, file_schema = _parquet_rows(file, name)
        schema = schema or file_schema
        stat = file.stat()
        files.append(InputFile(name, str(file), False, rows, offset,
                               f"{stat.st_size}-{stat.st_mtime_ns}"))
        offset += rows
    return {"kind": "parquet", "source": str(root)}, files, schema


def plan_partitions(files: list[InputFile], partition_rows: int) -> list[Partition]:
    """Consecutive row ranges of at most ``partition_rows``, never across files."""
    parts: list[Partition] = []
    for file in files:
        for start in range(0, file.rows, partition_rows):
            parts.append(Partition(len(parts), file, start, min(partition_rows,
                                                                file.rows - start)))
    return parts


def _needed_columns(path: ScoringPath, job: BatchJob) -> list[str]:
    names = [f.name for f in path.fields]
    if path.feature_service and job.timestamp_column:
        names.append(job.timestamp_column)
    if job.id_column:
        names.append(job.id_column)
    return list(dict.fromkeys(names))


def _check_schema(path: ScoringPath, job: BatchJob, files: list[InputFile],
                  schema: pa.Schema | None) -> None:
    """Every column a partition reads exists, checked once before any partition runs."""
    if schema is None:
        return
    for file in files:
        if not file.artifact and file is not files[0]:
            _, schema = _parquet_rows(Path(file.location), file.name)
        missing = [c for c in _needed_columns(path, job) if c not in schema.names]
        if missing:
            needs = ", ".join(f.name for f in path.fields)
            extra = (f", the timestamp column '{job.timestamp_column}' for the point-in-time "
                     "feature join" if path.feature_service else "")
            raise ServingError(f"Input '{file.name}' has no column "
                               f"{', '.join(map(repr, missing))}; model {path.version.ref} "
                               f"needs {needs}{extra}"
                               f"{' and the id column' if job.id_column else ''} (columns: "
                               f"{', '.join(schema.names)}).")


# -- one partition ---------------------------------------------------------------------------


def _read(ws: Workspace, part: Partition, columns: list[str]) -> pa.Table:
    """The partition's rows: only the row groups that hold them are read."""
    file = part.file
    source: Any = Path(file.location)
    if file.artifact:
        local = ws.artifacts.local_path(file.location)
        source = local if local is not None else ws.artifacts.fs.open(
            ws.artifacts.object_path(file.location), "rb")
    parquet = pq.ParquetFile(source)
    groups, first, seen = [], None, 0
    for i in range(parquet.metadata.num_row_groups):
        size = parquet.metadata.row_group(i).num_rows
        if seen + size > part.start and seen < part.start + part.rows:
            groups.append(i)
            first = seen if first is None else first
        seen += size
    table = parquet.read_row_groups(groups, columns=columns)
    return table.slice(part.start - (first or 0), part.rows)


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    """A column as the wire would bring it: categories as text, times as ISO text."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
    elif pa.types.is_temporal(kind):
        column = pc.cast(column, pa.string())
    return np.asarray(column.to_numpy(zero_copy_only=False))


def _fails(path: ScoringPath, columns: Mapping[str, np.ndarray], rows: int) -> bool:
    try:
        path.check({k: v[:rows] for k, v in columns.items()})
    except RequestValidationError:
        return True
    return False


def _bad_row(path: ScoringPath, columns: dict[str, np.ndarray], part: Partition,
             table: pa.Table, job: BatchJob) -> RequestValidationError:
    """The first row that fails the check (a binary search over prefixes: rows are checked
    independently), with the fields it gets wrong."""
    low, high = 1, part.rows
    while low < high:
        middle = (low + high) // 2
        if _fails(path, columns, middle):
            high = middle
        else:
            low = middle + 1
    row = low - 1
    errors: list[dict[str, str]] = []
    try:
        path.check({k: v[row:row + 1] for k, v in columns.items()})
    except RequestValidationError as exc:
        errors = exc.errors
    shown = "; ".join(f"{e['field']}: {e['problem']}" for e in errors[:5]) or "rejected"
    position = part.file.offset + part.start + row
    named = f" ({job.id_column}={table.column(job.id_column)[row].as_py()!r})" \
        if job.id_column else ""
    return RequestValidationError(f"Row {position}{named} of input '{part.file.name}' "
                                  f"({part.describe()}) does not match model "
                                  f"{path.version.ref}'s signature: {shown}.", errors)


def _features(ws: Workspace, path: ScoringPath, table: pa.Table,
              job: BatchJob) -> dict[str, np.ndarray]:
    """The feature service's values as of each row's timestamp (point in time)."""
    if not path.feature_service:
        return {}
    from mlwright.features.catalog import load_catalog
    from mlwright.features.historical import get_historical_features

    selection = load_catalog(ws).select(path.feature_service)
    wanted = [*selection.join_keys, *(f.name for f in selection.request_fields),
              job.timestamp_column or "event_timestamp"]
    entities = table.select(list(dict.fromkeys(wanted)))
    joined = get_historical_features(entities, path.feature_service, workspace=ws,
                                     timestamp_column=job.timestamp_column
                                     or "event_timestamp").to_arrow()
    return {c: _numpy(joined.column(c)) for c in path.feature_columns}


def _output_array(prediction: np.ndarray) -> pa.Array:
    if prediction.ndim == 2:
        return pa.array(list(prediction), pa.list_(pa.from_numpy_dtype(prediction.dtype)))
    if prediction.dtype.kind == "O":
        return pa.array(prediction.tolist())
    return pa.array(prediction)


def score_partition(ws: Workspace, path: ScoringPath, job: BatchJob, part: Partition) -> int:
    """Check, join, predict and write one partition (whole or not at all); its row count."""
    table = _read(ws, part, _needed_columns(path, job))
    columns = {f.name: _numpy(table.column(f.name)) for f in path.fields}
    try:
        checked = path.check(columns)
    except RequestValidationError:
        raise _bad_row(path, columns, part, table, job) from None
    prediction = np.asarray(path.predict(path.model_input(checked, _features(ws, path, table,
                                                                              job))))
    if len(prediction) != part.rows:
        raise ServingError(f"Model {path.version.ref} returned {len(prediction)} predictions "
                           f"for the {part.rows} rows of {part.describe()}.")
    ids = table.column(job.id_column) if job.id_column else pa.array(
        np.arange(part.rows, dtype=np.int64) + part.file.offset + part.start)
    out = pa.table({job.id_column or "row": ids, path.output_name: _output_array(prediction),
                    "model": pa.array([path.version.name] * part.rows, pa.string()),
                    "model_version": pa.array([path.version.version] * part.rows, pa.int64())})
    target = Path(job.output) / part_name(part.index)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        pq.write_table(out, temp)
        temp.replace(target)
    finally:
        temp.unlink(missing_ok=True)
    return part.rows


_LOADED: dict[tuple[int, str, str], tuple[Workspace, ScoringPath]] = {}


def _partition_task(job: BatchJob, part: Partition) -> int:
    """One partition in a worker process; the version is loaded once per process."""
    key = (os.getpid(), job.root, job.model_ref)
    if key not in _LOADED:
        ws = Workspace(root=Path(job.root), resolved=job.resolved)
        _LOADED[key] = ws, load_scoring_path(job.model_ref, workspace=ws, online=False)
    ws, path = _LOADED[key]
    return score_partition(ws, path, job, part)


# -- the output folder -----------------------------------------------------------------------


def _manifest(path: ScoringPath, ref: str, identity: dict[str, str], parts: list[Partition],
              job: BatchJob, partition_rows: int) -> dict[str, Any]:
    return {"format": FORMAT, "model": path.version.name, "version": path.version.version,
            "model_ref": ref, "input": identity, "partition_rows": partition_rows,
            "id_column": job.id_column, "timestamp_column": job.timestamp_column,
            "partitions": [p.to_dict() for p in parts], "complete": False}


def _write_manifest(output: Path, manifest: dict[str, Any]) -> None:
    temp = output / f".{MANIFEST}.{uuid.uuid4().hex[:8]}.tmp"
    temp.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    temp.replace(output / MANIFEST)


def _existing_parts(output: Path) -> dict[int, Path]:
    found = {}
    for file in output.glob("part-*.parquet"):
        number = file.name[len("part-"):-len(".parquet")]
        if number.isdigit():
            found[int(number)] = file
    return found


def _prepare_output(output: Path, fresh: dict[str, Any], overwrite: bool) -> set[int]:
    """Check the folder against its manifest; the partitions already written."""
    if output.exists() and not output.is_dir():
        raise ServingError(f"Output '{output}' is a file; give a folder for the parts.")
    output.mkdir(parents=True, exist_ok=True)
    for stale in output.glob(".*.tmp"):  # a killed run's unfinished part
        stale.unlink(missing_ok=True)
    existing = _existing_parts(output)
    manifest_file = output / MANIFEST
    if not manifest_file.is_file():
        if any(output.iterdir()):
            raise ServingError(f"Output folder '{output}' is not empty and holds no "
                               f"{MANIFEST}; give an empty or new folder.")
        return set()
    if overwrite:
        for file in existing.values():
            file.unlink()
        manifest_file.unlink()
        return set()
    old = json.loads(manifest_file.read_text(encoding="utf-8"))
    fix = "write to another folder, or pass --overwrite (overwrite=True) to start over"
    if (old.get("model"), old.get("version")) != (fresh["model"], fresh["version"]):
        raise ServingError(f"Output '{output}' holds predictions of {old.get('model')}@"
                           f"{old.get('version')}, not of {fresh['model']}@{fresh['version']} "
                           f"({fresh['model_ref']}); {fix}.")
    if old.get("input") != fresh["input"]:
        raise ServingError(f"Output '{output}' holds predictions for input "
                           f"{old.get('input', {}).get('source')!r}, not "
                           f"{fresh['input']['source']!r}; {fix}.")
    if not existing:
        return set()
    for key in ("id_column", "timestamp_column"):
        if old.get(key) != fresh[key]:
            raise ServingError(f"Output '{output}' was written with {key}={old.get(key)!r}, "
                               f"not {fresh[key]!r}; use the same, or {fix}.")
    planned = {p["part"]: p for p in fresh["partitions"]}
    earlier = {p["part"]: p for p in old.get("partitions", [])}
    for index in sorted(existing):
        if earlier.get(index) != planned.get(index):
            what = planned.get(index, {}).get("file") or "the input"
            raise ServingError(f"Input {what!r} changed (or the partitioning did) since "
                               f"{part_name(index)} was written to '{output}'; {fix}.")
    return set(existing)


# -- the job ---------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)  # Ray wraps a task's exception
    if isinstance(cause, BaseException):
        exc = cause
    text = " ".join(str(exc).split())
    text = text if len(text) <= 500 else text[:499] + "…"
    return text if isinstance(exc, MlwrightError) else f"{type(exc).__name__}: {text}"


def _failure(exc: BaseException, part: Partition, done: int, total: int) -> ServingError:
    cause = getattr(exc, "cause", None)
    original = cause if isinstance(cause, BaseException) else exc
    message = _one_line(exc)
    if not isinstance(original, RequestValidationError):
        described = part.describe()
        message = f"{described[0].upper()}{described[1:]} failed: {message}"
    message += (f" {done} of {total} partitions are written and kept; fix the cause and "
                "re-run to resume.")
    if isinstance(original, RequestValidationError):
        return RequestValidationError(message, original.errors)
    return ServingError(message)


def predict_table(
    ref: str,
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    workspace: WorkspaceArg = None,
    partition_rows: int = 100_000,
    workers: int = 1,
    executor: str = "local",
    id_column: str | None = None,
    timestamp_column: str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> BatchSummary:
    """Score ``input`` (a dataset reference or a Parquet file or folder) with model ``ref``
    into the folder ``output``; parts an earlier run wrote are skipped.

    ``timestamp_column`` (default ``event_timestamp``) is the time each row's features are
    read as of, for a model with a feature service. ``workers > 1`` scores partitions in a
    local process pool (``executor="local"``) or on Ray (``"ray"``).
    """
    if partition_rows < 1:
        raise ServingError(f"partition_rows must be at least 1, got {partition_rows}.")
    if workers < 1:
        raise ServingError(f"workers must be at least 1, got {workers}.")
    if executor not in ("local", "ray"):
        raise ServingError(f"Unknown executor '{executor}'; choose local or ray.")
    started = time.perf_counter()
    ws = as_workspace(workspace)
    try:
        path = load_scoring_path(ref, workspace=ws, online=False)
        try:
            return _predict(ws, path, ref, os.fspath(input), Path(output).expanduser().resolve(),
                            partition_rows, workers, executor, id_column, timestamp_column,
                            overwrite, progress, started)
        finally:
            path.close()
    finally:
        if ws is not workspace:  # opened here from a folder
            ws.close()


def _predict(ws: Workspace, path: ScoringPath, ref: str, source: str, out: Path,
             partition_rows: int, workers: int, executor: str, id_column: str | None,
             timestamp_column: str | None, overwrite: bool, progress: Progress | None,
             started: float) -> BatchSummary:
    if path.feature_service and timestamp_column is None:
        timestamp_column = "event_timestamp"
    if id_column in (path.output_name, "model", "model_version"):
        raise ServingError(f"id_column {id_column!r} would clash with an output column "
                           f"({path.output_name}, model, model_version); rename it.")
    job = BatchJob(str(ws.root), ws.resolved, path.version.ref, str(out), id_column,
                   timestamp_column if path.feature_service else None)
    identity, files, schema = resolve_input(ws, source)
    _check_schema(path, job, files, schema)
    parts = plan_partitions(files, partition_rows)
    manifest = _manifest(path, ref, identity, parts, job, partition_rows)
    finished = _prepare_output(out, manifest, overwrite)
    _write_manifest(out, manifest)
    todo = [p for p in parts if p.index not in finished]
    total_rows = sum(f.rows for f in files)
    done_rows = total_rows - sum(p.rows for p in todo)
    if progress is not None:
        progress(done_rows, total_rows)
    if workers == 1:
        for part in todo:
            try:
                done_rows += score_partition(ws, path, job, part)
            except Exception as exc:
                raise _failure(exc, part, len(_existing_parts(out)), len(parts)) from None
            if progress is not None:
                progress(done_rows, total_rows)
    else:
        _run_parallel(job, todo, workers, executor, done_rows, total_rows, len(parts), progress)
    manifest["complete"] = True
    _write_manifest(out, manifest)
    return BatchSummary(path.version.name, path.version.version, identity["source"], str(out),
                        len(parts), len(todo), len(finished), total_rows,
                        sum(p.rows for p in todo), time.perf_counter() - started)


def _run_parallel(job: BatchJob, todo: list[Partition], workers: int, executor: str,
                  done_rows: int, total_rows: int, total_parts: int,
                  progress: Progress | None) -> int:
    from mlwright.pipelines.executors import make_executor

    pool = make_executor(executor, workers)
    failed: tuple[BaseException, Partition] | None = None
    try:
        futures: dict[Future[int], Partition] = {
            pool.submit(_partition_task, job, part): part for part in todo}
        for future in as_completed(futures):
            try:
                done_rows += future.result()
            except Exception as exc:
                failed = exc, futures[future]
                break
            if progress is not None:
                progress(done_rows, total_rows)
    finally:
        pool.shutdown()  # a failure cancels what has not started; running parts finish
    if failed is not None:
        written = len(_existing_parts(Path(job.output)))
        raise _failure(failed[0], failed[1], written, total_parts) from None
    return done_rows
