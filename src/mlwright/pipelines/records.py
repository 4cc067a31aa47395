"""What pipelines write to the metadata store: definitions, runs, step runs, the cache."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlwright.errors import NotFoundError
from mlwright.pipelines.execution import StepResult
from mlwright.store import record_event
from mlwright.store.pipeline_tables import PipelineDef, PipelineRun, StepCache, StepRun
from mlwright.store.types import utcnow
from mlwright.store.upsert import upsert
from mlwright.workspace import Workspace


@dataclass
class StepRecord:
    node: str
    status: str  # succeeded | cached | failed | skipped
    cache_key: str
    attempts: int = 0
    duration_s: float | None = None
    error: str | None = None
    log: str | None = None
    output_digest: str | None = None
    output_kind: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.node, "status": self.status, "attempts": self.attempts,
                "duration_s": self.duration_s, "cache_key": self.cache_key, "error": self.error,
                "output_digest": self.output_digest, "output_kind": self.output_kind}


@dataclass
class PipelineRunInfo:
    id: str
    pipeline: str
    ref: str
    status: str
    params: dict[str, Any]
    partition: str | None
    executor: str
    started_at: datetime
    ended_at: datetime | None
    error: str | None
    resumed_from: str | None
    steps: list[StepRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "pipeline": self.pipeline, "ref": self.ref, "status": self.status,
                "params": self.params, "partition": self.partition, "executor": self.executor,
                "started_at": self.started_at.isoformat(),
                "ended_at": self.ended_at.isoformat() if self.ended_at else None,
                "error": self.error, "resumed_from": self.resumed_from,
                "steps": [s.to_dict() for s in self.steps]}


def register(ws: Workspace, *, name: str, ref: str, schedule: str | None,
             partitions: dict[str, Any] | None, code_hash: str,
             apply_schedule: bool = False) -> int:
    """Create or update the pipeline's definition; audited when it changes.

    The schedule is the decorator's when the pipeline is first recorded; after that only an
    explicit act changes it (``apply_schedule``: `pipeline register`, or `pipeline schedule`),
    never a run, so that a schedule set by an operator is not undone by the next run.
    """
    with ws.db.session() as session:
        row = session.execute(select(PipelineDef).where(PipelineDef.name == name)).scalar_one_or_none()
        changed = {"ref": ref, "schedule": schedule, "partitions": partitions, "code_hash": code_hash}
        if row is not None and not apply_schedule:
            changed["schedule"] = row.schedule
        if row is None:
            row = PipelineDef(name=name, created_by=ws.actor, **changed)
            session.add(row)
            session.flush()
            record_event(session, actor=ws.actor, action="pipeline.registered",
                         object_type="pipeline", object_ref=name,
                         details={"ref": ref, "schedule": schedule, "code_hash": code_hash})
        elif any(getattr(row, k) != v for k, v in changed.items()):
            for key, value in changed.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
            record_event(session, actor=ws.actor, action="pipeline.updated",
                         object_type="pipeline", object_ref=name,
                         details={"ref": ref, "schedule": schedule, "code_hash": code_hash})
        return row.id


def get_definition(ws: Workspace, name: str) -> PipelineDef:
    with ws.db.session() as session:
        row = session.execute(select(PipelineDef).where(PipelineDef.name == name)).scalar_one_or_none()
        if row is None:
            known = session.execute(select(PipelineDef.name).order_by(PipelineDef.name)).scalars().all()
            hint = f" (known: {', '.join(known[:20])})" if known else ""
            raise NotFoundError(f"No pipeline named '{name}'{hint}; run it once by module:function "
                                "or file.py:function to register it.")
        return row


@dataclass
class PipelineInfo:
    """A registered pipeline: where its code is, its schedule and partitions, its last run."""

    name: str
    ref: str
    schedule: str | None
    partitions: dict[str, Any] | None
    code_hash: str
    updated_at: datetime
    last_run: dict[str, Any] | None = None

    @property
    def next_run(self) -> datetime | None:
        """When the schedule fires next (UTC), or None without a schedule."""
        if not self.schedule:
            return None
        from croniter import croniter

        nxt: datetime = croniter(self.schedule, utcnow()).get_next(datetime)
        return nxt

    def to_dict(self) -> dict[str, Any]:
        nxt = self.next_run
        return {"name": self.name, "ref": self.ref, "schedule": self.schedule,
                "next_run": nxt.isoformat() if nxt else None, "partitions": self.partitions,
                "code_hash": self.code_hash, "updated_at": self.updated_at.isoformat(),
                "last_run": self.last_run}


def _run_summary(row: PipelineRun) -> dict[str, Any]:
    return {"id": row.id, "status": row.status, "partition": row.partition_key,
            "started_at": row.started_at.isoformat(),
            "ended_at": row.ended_at.isoformat() if row.ended_at else None, "error": row.error}


def _info(session: Session, row: PipelineDef) -> PipelineInfo:
    last = session.execute(select(PipelineRun).where(PipelineRun.pipeline_id == row.id)
                           .order_by(PipelineRun.started_at.desc()).limit(1)).scalar()
    return PipelineInfo(row.name, row.ref, row.schedule, row.partitions, row.code_hash,
                        row.updated_at, _run_summary(last) if last else None)


def list_pipelines(ws: Workspace) -> list[PipelineInfo]:
    """Every registered pipeline with its newest run."""
    with ws.db.session() as session:
        rows = session.execute(select(PipelineDef).order_by(PipelineDef.name)).scalars().all()
        return [_info(session, row) for row in rows]


def get_pipeline(ws: Workspace, name: str) -> PipelineInfo:
    """One registered pipeline with its newest run."""
    row = get_definition(ws, name)
    with ws.db.session() as session:
        return _info(session, row)


def recent_runs(ws: Workspace, name: str, limit: int = 20) -> list[dict[str, Any]]:
    """The newest runs of one pipeline."""
    definition = get_definition(ws, name)
    with ws.db.session() as session:
        rows = session.execute(select(PipelineRun).where(PipelineRun.pipeline_id == definition.id)
                               .order_by(PipelineRun.started_at.desc()).limit(limit)).scalars()
        return [_run_summary(row) for row in rows]


def set_schedule(ws: Workspace, name: str, schedule: str | None) -> PipelineInfo:
    """Declare (or clear, with None) the cron schedule of a registered pipeline; audited."""
    with ws.db.session() as session:
        row = session.execute(select(PipelineDef).where(PipelineDef.name == name)).scalar_one_or_none()
        if row is None:
            raise NotFoundError(f"No pipeline named '{name}'; register it first with `mlwright "
                                "pipeline register module:function` (or run it once).")
        if row.schedule != schedule:
            before, row.schedule, row.updated_at = row.schedule, schedule, utcnow()
            record_event(session, actor=ws.actor, action="pipeline.scheduled",
                         object_type="pipeline", object_ref=name,
                         details={"schedule": schedule, "before": before})
        return PipelineInfo(row.name, row.ref, row.schedule, row.partitions, row.code_hash,
                            row.updated_at)


@dataclass(frozen=True)
class CacheHit:
    digest: str
    kind: str
    metrics: list[tuple[str, float, int | None, float]]  # what the step logged when it ran


def cached(ws: Workspace, keys: Iterable[str]) -> dict[str, CacheHit]:
    """Cache hits among ``keys`` whose output is still in the artifact store."""
    wanted = list(set(keys))
    if not wanted:
        return {}
    with ws.db.session() as session:
        rows = session.execute(select(StepCache.cache_key, StepCache.output_digest,
                                      StepCache.output_kind, StepCache.metrics)
                               .where(StepCache.cache_key.in_(wanted))).all()
    return {key: CacheHit(digest, kind, [tuple(m) for m in metrics or []])
            for key, digest, kind, metrics in rows if ws.artifacts.exists(digest)}


def start(ws: Workspace, *, run_id: str, pipeline_id: int, params: dict[str, Any],
          partition: str | None, executor: str, resumed_from: str | None) -> None:
    with ws.db.session() as session:
        session.add(PipelineRun(id=run_id, pipeline_id=pipeline_id, status="running", params=params,
                                partition_key=partition, executor=executor,
                                resumed_from=resumed_from, created_by=ws.actor))


def record_steps(ws: Workspace, run_id: str,
                 records: Sequence[tuple[int, StepRecord, StepResult | None]]) -> None:
    """Write step records (and, for steps that ran, their cache entries) in one transaction."""
    with ws.db.session() as session:
        for position, record, result in records:
            started = ended = None
            if result is not None:
                started = datetime.fromtimestamp(result.started, utcnow().tzinfo)
                ended = datetime.fromtimestamp(result.ended, utcnow().tzinfo)
            session.add(StepRun(pipeline_run_id=run_id, node=record.node, position=position,
                                cache_key=record.cache_key, status=record.status,
                                attempts=record.attempts, duration_s=record.duration_s,
                                output_digest=record.output_digest, output_kind=record.output_kind,
                                log=record.log, error=record.error, started_at=started,
                                ended_at=ended))
            if record.status == "succeeded" and record.output_digest and record.output_kind:
                _remember(session, record, run_id, result)


def _remember(session: Session, record: StepRecord, run_id: str,
              result: StepResult | None) -> None:
    """Upsert the cache entry: partitions running in parallel may write the same key at
    once, and an entry whose artifact was deleted is replaced by the fresh one."""
    values: dict[str, Any] = {"cache_key": record.cache_key, "step": record.node,
              "output_digest": record.output_digest, "output_kind": record.output_kind,
              "pipeline_run_id": run_id, "created_at": utcnow(),
              "metrics": [list(m) for m in result.metrics] if result is not None else []}
    upsert(session, StepCache, [values], keys=["cache_key"])


def finish(ws: Workspace, run_id: str, *, status: str, error: str | None,
           output: tuple[str, str] | None) -> None:
    with ws.db.session() as session:
        row = session.get(PipelineRun, run_id)
        assert row is not None
        row.status, row.error, row.ended_at = status, error, utcnow()
        if output is not None:
            row.output_digest, row.output_kind = output


def get_run(ws: Workspace, run_id: str) -> PipelineRunInfo:
    with ws.db.session() as session:
        row = session.get(PipelineRun, run_id)
        if row is None:
            raise NotFoundError(f"No pipeline run '{run_id}'; see `mlwright runs list`.")
        definition = session.get(PipelineDef, row.pipeline_id)
        assert definition is not None
        steps = session.execute(select(StepRun).where(StepRun.pipeline_run_id == run_id)
                                .order_by(StepRun.position)).scalars().all()
        return PipelineRunInfo(
            id=row.id, pipeline=definition.name, ref=definition.ref, status=row.status,
            params=dict(row.params or {}), partition=row.partition_key, executor=row.executor,
            started_at=row.started_at, ended_at=row.ended_at, error=row.error,
            resumed_from=row.resumed_from,
            steps=[StepRecord(node=s.node, status=s.status, cache_key=s.cache_key,
                              attempts=s.attempts, duration_s=s.duration_s, error=s.error,
                              log=s.log, output_digest=s.output_digest,
                              output_kind=s.output_kind) for s in steps])


def run_output(ws: Workspace, run_id: str) -> tuple[str, str] | None:
    with ws.db.session() as session:
        row = session.get(PipelineRun, run_id)
        if row is None or row.output_digest is None or row.output_kind is None:
            return None
        return row.output_digest, row.output_kind


def succeeded_partitions(ws: Workspace, pipeline_id: int) -> set[str]:
    with ws.db.session() as session:
        keys = session.execute(select(PipelineRun.partition_key)
                               .where(PipelineRun.pipeline_id == pipeline_id,
                                      PipelineRun.status == "succeeded",
                                      PipelineRun.partition_key.is_not(None))).scalars().all()
    return {k for k in keys if k is not None}
