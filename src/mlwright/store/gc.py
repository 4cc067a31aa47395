"""Collecting garbage: artifact-store objects that nothing in the metadata store refers to.

>>> report = collect_garbage(ws, dry_run=True)                 # doctest: +SKIP
>>> report.removable, report.removable_bytes                   # doctest: +SKIP
(3, 18204)
>>> collect_garbage(ws).removed                                # doctest: +SKIP
3

An object is kept when any row refers to it (:data:`DIGEST_COLUMNS`, and the files of every
model version) or when it is younger than the grace period: a registration stores its
bytes before its row commits, so a young unreferenced object may be about to be used. The
store is listed *before* the references are read, so an object that becomes referenced
while this runs is seen as referenced; the references are read once more just before
anything is deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from mlwright.errors import ArtifactError
from mlwright.store.artifacts import ArtifactStore
from mlwright.store.audit import record_event
from mlwright.store.database import Database, mask_url
from mlwright.store.pipeline_tables import PipelineRun, StepCache, StepRun
from mlwright.store.registry_tables import ModelVersion
from mlwright.store.tables import DatasetVersion
from mlwright.store.tracking_tables import RunArtifact
from mlwright.store.types import utcnow

GRACE = timedelta(hours=1)
# Every column that holds the digest of an artifact-store object. A new one must be added
# here: tests/maintenance fails on a column named *digest* that is in neither list.
DIGEST_COLUMNS: tuple[InstrumentedAttribute[Any], ...] = (
    DatasetVersion.artifact_digest,
    RunArtifact.digest,
    StepCache.output_digest,
    PipelineRun.output_digest,
    StepRun.output_digest,
)
# Columns named *digest* that are not objects in the store, and why.
NOT_OBJECTS = {"model_versions.manifest_digest": "a hash of the version's file list"}
Progress = Callable[[str, int, int], None]  # (phase, done, total)


class Stores(Protocol):
    """What collecting needs; a :class:`mlwright.workspace.Workspace` is one."""

    @property
    def db(self) -> Database: ...

    @property
    def artifacts(self) -> ArtifactStore: ...

    @property
    def actor(self) -> str: ...


@dataclass(frozen=True)
class Garbage:
    digest: str
    size: int
    modified: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "size": self.size, "modified": self.modified.isoformat()}


@dataclass
class Collection:
    """What a collection found and did (``removed`` is 0 on a dry run)."""

    listed: int = 0
    referenced: int = 0
    young: int = 0  # unreferenced but within the grace period (or of unknown age): kept
    garbage: list[Garbage] = field(default_factory=list)  # removed, or removable on a dry run
    removed: int = 0
    removed_bytes: int = 0
    errors: list[str] = field(default_factory=list)
    dry_run: bool = False
    grace_s: float = GRACE.total_seconds()

    @property
    def kept(self) -> int:
        return self.listed - len(self.garbage)

    @property
    def removable(self) -> int:
        return len(self.garbage)

    @property
    def removable_bytes(self) -> int:
        return sum(g.size for g in self.garbage)

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "grace_s": self.grace_s, "objects": self.listed,
                "referenced": self.referenced, "young": self.young, "kept": self.kept,
                "removable": self.removable, "removable_bytes": self.removable_bytes,
                "removed": self.removed, "removed_bytes": self.removed_bytes,
                "errors": self.errors, "garbage": [g.to_dict() for g in self.garbage]}


def _model_files(files: Any) -> Iterable[str]:
    entries = files.values() if isinstance(files, dict) else []
    return (e["digest"] for e in entries if isinstance(e, dict) and isinstance(e.get("digest"), str))


def referenced_digests(session: Session) -> set[str]:
    """Every digest a row of the metadata store refers to.

    >>> with db.session() as session:                          # doctest: +SKIP
    ...     "e3b0c442..." in referenced_digests(session)
    """
    found: set[str] = set()
    for column in DIGEST_COLUMNS:
        found.update(d for d in session.execute(select(column).where(column.is_not(None))
                                                .distinct()).scalars())
    for files in session.execute(select(ModelVersion.files)
                                 .execution_options(yield_per=1000)).scalars():
        found.update(_model_files(files))
    return found


def _stat(store: ArtifactStore, digest: str) -> tuple[datetime | None, int]:
    """When the object was last written (None when the backend cannot say) and its size;
    FileNotFoundError when it is gone."""
    path = store.object_path(digest)
    size = int(store.fs.size(path))
    try:
        moment = store.fs.modified(path)
    except FileNotFoundError:
        raise
    except (NotImplementedError, OSError, ValueError, KeyError):
        return None, size
    if not isinstance(moment, datetime):
        return None, size
    return (moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)), size


def collect_garbage(stores: Stores, *, grace: timedelta = GRACE, dry_run: bool = False,
                    now: datetime | None = None, progress: Progress | None = None) -> Collection:
    """Remove the store's unreferenced objects older than ``grace`` (list them only when
    ``dry_run``); a real run is recorded in the audit log as ``artifacts.collected``.

    ``now`` is the time ages are measured at (default: after the store is listed).
    """
    if grace < timedelta(0):
        raise ArtifactError(f"The grace period must be 0 or more seconds; got "
                            f"{grace.total_seconds():g}.")
    tick = progress or (lambda _phase, _done, _total: None)
    store = stores.artifacts
    report = Collection(dry_run=dry_run, grace_s=grace.total_seconds())
    listed = list(store.digests())  # first: what becomes referenced after this is kept
    report.listed = len(listed)
    with stores.db.session() as session:
        referenced = referenced_digests(session)
    moment = now or utcnow()
    candidates: list[Garbage] = []
    for done, digest in enumerate(listed, 1):
        tick("checking", done, len(listed))
        if digest in referenced:
            report.referenced += 1
            continue
        try:
            modified, size = _stat(store, digest)
        except FileNotFoundError:  # removed meanwhile, by another collector
            report.listed -= 1
            continue
        except OSError as exc:  # unreadable: kept, and said
            report.errors.append(f"{digest}: {exc.strerror or exc}")
            modified, size = None, 0
        if modified is None or moment - modified < grace:
            report.young += 1
        else:
            candidates.append(Garbage(digest, size, modified))
    if candidates and not dry_run:
        with stores.db.session() as session:
            referenced = referenced_digests(session)  # once more, just before deleting
        report.referenced += sum(1 for g in candidates if g.digest in referenced)
        candidates = [g for g in candidates if g.digest not in referenced]
    report.garbage = candidates
    if dry_run:
        return report
    for done, item in enumerate(candidates, 1):
        try:
            store.delete(item.digest)
            report.removed += 1
            report.removed_bytes += item.size
        except OSError as exc:
            report.errors.append(f"{item.digest}: {exc.strerror or exc}")
        tick("removing", done, len(candidates))
    with stores.db.session() as session:
        record_event(session, actor=stores.actor, action="artifacts.collected",
                     object_type="artifact_store", object_ref=mask_url(store.url)[:256],
                     details={"objects": report.listed, "kept": report.kept,
                              "young": report.young, "removed": report.removed,
                              "removed_bytes": report.removed_bytes,
                              "errors": len(report.errors), "grace_s": report.grace_s})
    return report
