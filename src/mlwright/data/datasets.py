"""Dataset versions: immutable Parquet snapshots with a content hash, schema and profile.

>>> import mlwright
>>> version = mlwright.register_dataset("flights", "flights.parquet")   # doctest: +SKIP
>>> version.ref, version.num_rows                                       # doctest: +SKIP
('flights@1', 336776)
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from mlwright.data.io import as_arrow_table, read_path
from mlwright.data.profile import profile_table
from mlwright.errors import DataError, NotFoundError, StoreError
from mlwright.store import Dataset, DatasetVersion, check_name, is_unique_violation, record_event
from mlwright.workspace import Workspace, as_workspace

Progress = Callable[[str], None]
WorkspaceArg = Workspace | str | os.PathLike[str] | None


@dataclass(frozen=True)
class DatasetVersionInfo:
    """One immutable version of a dataset, as the metadata store records it."""

    name: str
    version: int
    content_hash: str
    artifact_digest: str
    num_rows: int
    num_bytes: int
    schema: list[dict[str, Any]]
    profile: dict[str, Any]
    source: str | None
    created_at: datetime
    created_by: str
    created: bool = False  # True when this call registered it, False when it already existed

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self, *, profile: bool = True) -> dict[str, Any]:
        data = {
            "name": self.name, "version": self.version, "ref": self.ref,
            "content_hash": self.content_hash, "artifact_digest": self.artifact_digest,
            "num_rows": self.num_rows, "num_bytes": self.num_bytes, "schema": self.schema,
            "source": self.source, "created_at": self.created_at.isoformat(),
            "created_by": self.created_by, "created": self.created,
        }
        if profile:
            data["profile"] = self.profile
        return data


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME``, ``NAME@latest`` or ``NAME@3`` → (name, version or None for the latest)."""
    name, _, version = ref.partition("@")
    check_name("dataset", name)
    if version in ("", "latest"):
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise DataError(f"Version '{version}' in '{ref}' is not a version number; use NAME, "
                        "NAME@latest or NAME@N with N >= 1.")
    return name, int(version)


def _canonical(array: pa.Array) -> list[pa.Array]:
    """The column as arrays whose bytes depend only on its values: dictionary encoding undone,
    validity as its own boolean column, and null slots (whose bytes Arrow leaves undefined)
    filled with a zero of the type."""
    if pa.types.is_dictionary(array.type):
        array = array.cast(array.type.value_type)
    if not array.null_count:
        return [array]
    validity = array.is_valid()
    try:
        zero = pa.scalar("" if pa.types.is_string(array.type) else
                         b"" if pa.types.is_binary(array.type) else
                         False if pa.types.is_boolean(array.type) else 0, array.type)
        array = pc.fill_null(array, zero)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, TypeError):
        pass  # nested types: hashed as they are
    return [validity, array]


def content_hash(table: pa.Table) -> str:
    """sha256 of the table's values, names and types: the same content hashes the same whichever
    file, library or chunking it came from.

    Hashing Parquet or plain IPC bytes is not enough: both carry representation (writer
    version, null-slot bytes, dictionary encoding) that differs for equal tables.
    """
    digest = hashlib.sha256()
    digest.update(str(table.schema.remove_metadata()).encode())
    arrays: list[pa.Array] = []
    for column in table.columns:
        arrays.extend(_canonical(column.combine_chunks()))
    canonical = pa.table(arrays, names=[str(i) for i in range(len(arrays))])

    class _Sink:
        closed = False

        def write(self, data: Any) -> int:
            digest.update(data)
            return len(data)

        def flush(self) -> None:
            pass

    sink = pa.PythonFile(_Sink(), mode="w")
    with pa.ipc.new_stream(sink, canonical.schema) as writer:
        writer.write_table(canonical)
    return digest.hexdigest()


def schema_of(table: pa.Table) -> list[dict[str, Any]]:
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in table.schema]


def _info(version: DatasetVersion, name: str, *, created: bool = False) -> DatasetVersionInfo:
    return DatasetVersionInfo(
        name=name, version=version.version, content_hash=version.content_hash,
        artifact_digest=version.artifact_digest, num_rows=version.num_rows,
        num_bytes=version.num_bytes, schema=list(version.schema_json),
        profile=dict(version.profile_json), source=version.source,
        created_at=version.created_at, created_by=version.created_by, created=created,
    )


def _find_by_hash(ws: Workspace, name: str, digest: str) -> DatasetVersionInfo | None:
    with ws.db.session() as session:
        row = session.execute(
            select(DatasetVersion).join(Dataset).where(Dataset.name == name,
                                                       DatasetVersion.content_hash == digest)
        ).scalar_one_or_none()
        return _info(row, name) if row is not None else None


def _insert_version(ws: Workspace, name: str, description: str | None,
                    fields: dict[str, Any]) -> DatasetVersionInfo:
    with ws.db.session() as session:
        dataset = session.execute(select(Dataset).where(Dataset.name == name)).scalar_one_or_none()
        if dataset is None:
            dataset = Dataset(name=name, description=description, created_by=ws.actor)
            session.add(dataset)
            session.flush()
            record_event(session, actor=ws.actor, action="dataset.created",
                         object_type="dataset", object_ref=name,
                         details={"description": description})
        latest = session.execute(select(func.max(DatasetVersion.version))
                                 .where(DatasetVersion.dataset_id == dataset.id)).scalar()
        version = DatasetVersion(dataset_id=dataset.id, version=(latest or 0) + 1,
                                 created_by=ws.actor, **fields)
        session.add(version)
        session.flush()
        record_event(session, actor=ws.actor, action="dataset.version.registered",
                     object_type="dataset", object_ref=f"{name}@{version.version}",
                     details={"content_hash": fields["content_hash"],
                              "num_rows": fields["num_rows"], "source": fields["source"]})
        return _info(version, name, created=True)


def register_dataset(
    name: str,
    data: Any,
    *,
    workspace: WorkspaceArg = None,
    description: str | None = None,
    progress: Progress | None = None,
) -> DatasetVersionInfo:
    """Register a table as a new immutable version of dataset ``name``.

    ``data`` is a path (Parquet file, folder of Parquet files, CSV) or an Arrow/pandas/polars
    table. Identical content returns the existing version (``created`` is False). A failure
    leaves no row and no artifact behind.
    """
    step = progress or (lambda _: None)
    check_name("dataset", name)
    ws = as_workspace(workspace)
    step("reading")
    if isinstance(data, str | os.PathLike):
        source: str | None = str(Path(data).expanduser().resolve())
        table = read_path(data)
    else:
        source, table = None, as_arrow_table(data)
    table = table.combine_chunks()
    step("hashing")
    digest = content_hash(table)
    existing = _find_by_hash(ws, name, digest)
    if existing is not None:
        return existing
    step("profiling")
    profile = profile_table(table)
    step("storing")
    with tempfile.TemporaryDirectory(prefix="mlwright-") as tmp:
        snapshot = Path(tmp) / "data.parquet"
        pq.write_table(table, snapshot, compression="zstd")
        num_bytes = snapshot.stat().st_size
        artifact = ws.artifacts.put_file(snapshot)
    fields = {"content_hash": digest, "artifact_digest": artifact, "num_rows": table.num_rows,
              "num_bytes": num_bytes, "schema_json": schema_of(table), "profile_json": profile,
              "source": source}
    step("recording")
    try:
        return _record(ws, name, description, fields)
    except BaseException:
        _drop_unreferenced(ws, artifact)
        raise


def _record(ws: Workspace, name: str, description: str | None,
            fields: dict[str, Any]) -> DatasetVersionInfo:
    for _attempt in range(5):  # concurrent registrations race for the next version number
        try:
            return _insert_version(ws, name, description, fields)
        except IntegrityError as exc:
            if not is_unique_violation(exc):
                raise StoreError(f"Cannot record dataset '{name}': {exc.orig}") from None
            same = _find_by_hash(ws, name, fields["content_hash"])
            if same is not None:
                return same
    raise StoreError(f"Cannot record a version of dataset '{name}': too many concurrent "
                     "registrations at once; try again.")


def _drop_unreferenced(ws: Workspace, artifact: str) -> None:
    """Delete an artifact this registration stored, unless a recorded version uses it."""
    try:
        with ws.db.session() as session:
            used = session.execute(select(func.count()).select_from(DatasetVersion)
                                   .where(DatasetVersion.artifact_digest == artifact)).scalar()
    except StoreError:
        used = 0
    if not used:
        ws.artifacts.delete(artifact)


def get_dataset_version(ref: str, *, workspace: WorkspaceArg = None) -> DatasetVersionInfo:
    """The version ``NAME@N`` (or the latest for ``NAME``)."""
    name, number = parse_ref(ref)
    ws = as_workspace(workspace)
    with ws.db.session() as session:
        query = select(DatasetVersion).join(Dataset).where(Dataset.name == name)
        query = (query.where(DatasetVersion.version == number) if number is not None
                 else query.order_by(DatasetVersion.version.desc()).limit(1))
        row = session.execute(query).scalar_one_or_none()
        if row is None:
            known = session.execute(select(Dataset.name).order_by(Dataset.name)).scalars().all()
            if name not in known:
                hint = f" (known: {', '.join(known[:20])})" if known else ""
                raise NotFoundError(f"No dataset named '{name}'{hint}; register it with "
                                    f"`mlwright data register {name} PATH`.")
            raise NotFoundError(f"Dataset '{name}' has no version {number}; "
                                f"see `mlwright data show {name}`.")
        return _info(row, name)


def load_dataset(ref: str | DatasetVersionInfo, *, workspace: WorkspaceArg = None) -> pa.Table:
    """The table of a dataset version, read back with its hash verified."""
    ws = as_workspace(workspace)
    info = ref if isinstance(ref, DatasetVersionInfo) else get_dataset_version(ref, workspace=ws)
    data = ws.artifacts.get_bytes(info.artifact_digest)
    return pq.read_table(pa.BufferReader(data))


@dataclass(frozen=True)
class DatasetSummary:
    name: str
    description: str | None
    versions: int
    latest: int
    num_rows: int
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "versions": self.versions,
                "latest": self.latest, "num_rows": self.num_rows,
                "updated_at": self.updated_at.isoformat()}


def list_datasets(*, workspace: WorkspaceArg = None) -> list[DatasetSummary]:
    """Every dataset with its latest version."""
    ws = as_workspace(workspace)
    with ws.db.session() as session:
        counts = (select(DatasetVersion.dataset_id, func.count().label("n"),
                         func.max(DatasetVersion.version).label("latest"))
                  .group_by(DatasetVersion.dataset_id).subquery())
        rows = session.execute(
            select(Dataset, counts.c.n, DatasetVersion)
            .join(counts, counts.c.dataset_id == Dataset.id)
            .join(DatasetVersion, (DatasetVersion.dataset_id == Dataset.id)
                  & (DatasetVersion.version == counts.c.latest))
            .order_by(Dataset.name)
        ).all()
        return [DatasetSummary(name=d.name, description=d.description, versions=n,
                               latest=v.version, num_rows=v.num_rows, updated_at=v.created_at)
                for d, n, v in rows]


def list_versions(name: str, *, workspace: WorkspaceArg = None) -> list[DatasetVersionInfo]:
    """Every version of one dataset, oldest first."""
    ws = as_workspace(workspace)
    get_dataset_version(name, workspace=ws)  # a clear error for an unknown name
    with ws.db.session() as session:
        rows = session.execute(select(DatasetVersion).join(Dataset).where(Dataset.name == name)
                               .order_by(DatasetVersion.version)).scalars().all()
        return [_info(row, name) for row in rows]
