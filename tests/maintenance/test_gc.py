"""Collecting unreferenced artifacts, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import delete

from mlwright import load_dataset, register_dataset
from mlwright.errors import ArtifactError
from mlwright.pipelines import records
from mlwright.registry import load_model, register_model
from mlwright.store import (
    Base,
    DatasetVersion,
    ModelVersion,
    PipelineRun,
    RunArtifact,
    StepCache,
    StepRun,
    list_events,
)
from mlwright.store.gc import DIGEST_COLUMNS, NOT_OBJECTS, collect_garbage
from mlwright.store.types import utcnow
from mlwright.tracking import load_artifact, start_run
from mlwright.workspace import Workspace, init_workspace

from . import flows


def _populate(ws: Workspace) -> tuple[dict[str, set[str]], str]:
    """One object of every kind, through the real APIs: the digests each kind refers to, and
    the id of the run with an artifact."""
    dataset = register_dataset("flights", pa.table({"delay": [1.0, 2.5, 7.0]}), workspace=ws)
    version = register_model("delays", flows.Constant(0.5), workspace=ws)
    with start_run("report", workspace=ws) as run:
        logged = run.log_artifact(b"a report", name="report.txt")
    result = flows.two_steps.run(workspace=ws, executor="inline")
    steps = records.get_run(ws, result.run_id).steps
    return {"dataset": {dataset.artifact_digest},
            "model": {f["digest"] for f in version.files.values()},
            "run": {logged},
            "pipeline": {s.output_digest for s in steps if s.output_digest}}, run.id


def test_every_kind_of_reference_survives_and_only_garbage_goes(workspace: Workspace) -> None:
    kinds, run_id = _populate(workspace)
    store = workspace.artifacts
    orphan = store.put_bytes(b"nobody refers to me")
    referenced = set().union(*kinds.values())
    assert len(kinds["pipeline"]) == 2 and orphan not in referenced
    report = collect_garbage(workspace, grace=timedelta(0))
    assert [g.digest for g in report.garbage] == [orphan]
    assert (report.removed, report.removed_bytes) == (1, len(b"nobody refers to me"))
    assert (report.listed, report.referenced, report.kept) == (len(referenced) + 1,
                                                               len(referenced), len(referenced))
    assert set(store.digests()) == referenced
    # Everything still loads, hash-verified.
    assert load_dataset("flights", workspace=workspace).num_rows == 3
    assert list(load_model("delays@1", workspace=workspace).predict(pd.DataFrame({"a": [1]}))) \
        == [0.5]
    assert load_artifact(run_id, "report.txt", workspace=workspace) == b"a report"
    again = flows.two_steps.run(workspace=workspace, executor="inline")
    assert again.cached == ["numbers", "summary"] and again.output() == {"rows": 4, "sum": 6}


def test_deleted_rows_leave_garbage_that_is_collected(workspace: Workspace) -> None:
    kinds, _ = _populate(workspace)
    store = workspace.artifacts
    with workspace.db.session() as session:  # no delete APIs yet: as a deletion would
        session.execute(delete(RunArtifact))
        session.execute(delete(StepCache))
    # The run artifact goes; the step outputs are still those of recorded step runs: kept.
    first = collect_garbage(workspace, grace=timedelta(0))
    assert {g.digest for g in first.garbage} == kinds["run"]
    assert kinds["pipeline"] <= set(store.digests())
    with workspace.db.session() as session:
        session.execute(delete(StepRun))
        session.execute(delete(PipelineRun))
        session.execute(delete(DatasetVersion))
        session.execute(delete(ModelVersion))
    report = collect_garbage(workspace, grace=timedelta(0))
    gone = kinds["pipeline"] | kinds["dataset"] | kinds["model"]
    assert {g.digest for g in report.garbage} == gone and report.removed == len(gone)
    assert list(store.digests()) == []


def test_young_garbage_stays_within_the_grace_period(workspace: Workspace) -> None:
    orphan = workspace.artifacts.put_bytes(b"just written, its row not committed yet")
    report = collect_garbage(workspace)  # default grace: one hour
    assert (report.young, report.removed, report.garbage) == (1, 0, [])
    assert workspace.artifacts.exists(orphan)
    assert collect_garbage(workspace, grace=timedelta(minutes=5),
                           now=utcnow() + timedelta(minutes=4)).removed == 0
    later = collect_garbage(workspace, grace=timedelta(minutes=5),
                            now=utcnow() + timedelta(minutes=6))
    assert (later.young, later.removed) == (0, 1)
    assert not workspace.artifacts.exists(orphan)


def test_a_dry_run_lists_and_removes_nothing(workspace: Workspace) -> None:
    _populate(workspace)
    orphans = sorted(workspace.artifacts.put_bytes(f"orphan {n}".encode()) for n in range(3))
    before = sorted(workspace.artifacts.digests())
    dry = collect_garbage(workspace, grace=timedelta(0), dry_run=True)
    assert sorted(g.digest for g in dry.garbage) == orphans
    assert (dry.removable, dry.removable_bytes, dry.removed) == (3, 3 * len(b"orphan 0"), 0)
    assert sorted(workspace.artifacts.digests()) == before
    with workspace.db.session() as session:
        assert list_events(session, action="artifacts.collected") == []
    done = collect_garbage(workspace, grace=timedelta(0))
    assert done.removed == 3
    with workspace.db.session() as session:
        [event] = list_events(session, action="artifacts.collected")
    assert event.actor == workspace.actor
    assert event.details == {"objects": len(before), "kept": len(before) - 3, "young": 0,
                             "removed": 3, "removed_bytes": 3 * len(b"orphan 0"), "errors": 0,
                             "grace_s": 0.0}


def test_an_object_referenced_while_collecting_is_kept(workspace: Workspace) -> None:
    orphan = workspace.artifacts.put_bytes(b"about to be logged")
    with start_run("late", workspace=workspace) as run:
        pass

    def meanwhile(phase: str, done: int, total: int) -> None:
        if phase == "checking" and done == total:  # after the references were read once
            with workspace.db.session() as session:
                session.add(RunArtifact(run_id=run.id, name="late.bin", digest=orphan, size=18))

    report = collect_garbage(workspace, grace=timedelta(0), progress=meanwhile)
    assert (report.removed, report.referenced, report.garbage) == (0, 1, [])
    assert workspace.artifacts.exists(orphan)


def test_every_digest_column_is_known() -> None:
    """A new table with a *digest* column must tell gc whether it refers to an object."""
    known = {f"{c.table.name}.{c.name}" for c in DIGEST_COLUMNS} | set(NOT_OBJECTS)
    found = {f"{t.name}.{c.name}" for t in Base.metadata.tables.values() for c in t.columns
             if "digest" in c.name}
    assert found == known


def test_a_negative_grace_is_refused(workspace: Workspace) -> None:
    with pytest.raises(ArtifactError, match="grace period must be 0 or more seconds; got -1"):
        collect_garbage(workspace, grace=timedelta(seconds=-1))


def test_collects_on_an_fsspec_memory_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLWRIGHT_WORKSPACE", raising=False)
    ws = init_workspace(tmp_path / "ws", artifact_url=f"memory://gc-{uuid.uuid4().hex}")
    kept = register_model("m", flows.Constant(1.0), workspace=ws)
    orphan = ws.artifacts.put_bytes(b"orphan")
    report = collect_garbage(ws, grace=timedelta(0))
    assert [g.digest for g in report.garbage] == [orphan] and report.removed == 1
    assert set(ws.artifacts.digests()) == {f["digest"] for f in kept.files.values()}
    ws.close()
