"""Reading runs back: one run whole, a list, a metric's series, several runs side by side.

>>> info = get_run("3f2a9c")                      # doctest: +SKIP  (a unique id prefix will do)
>>> info.metrics["auc"], info.params["lr"]        # doctest: +SKIP
(0.89, 0.05)
>>> compare_runs([a.id, b.id]).differing_params   # doctest: +SKIP
['lr']
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlwright.errors import NotFoundError, TrackingError
from mlwright.store import Run as RunRow
from mlwright.store import RunArtifact, RunLatestMetric, RunMetric, RunParam, RunTag
from mlwright.tracking.runs import decode_value, flush_live
from mlwright.workspace import Workspace, as_workspace

WorkspaceLike = Workspace | str | os.PathLike[str] | None
MIN_PREFIX = 4


class MetricPoint(NamedTuple):
    """One point of a metric series (a tuple: a series of thousands builds fast)."""

    step: int
    value: float
    timestamp: float  # seconds since the epoch

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "value": _json_number(self.value), "timestamp": self.timestamp}


@dataclass
class RunInfo:
    """A run as recorded. ``metrics`` holds each series' latest value (highest step)."""

    id: str
    experiment: str
    name: str
    kind: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    error: str | None
    created_by: str
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    code_version: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_at is None else (self.ended_at - self.started_at).total_seconds()

    def to_dict(self, *, environment: bool = True) -> dict[str, Any]:
        data = {"id": self.id, "experiment": self.experiment, "name": self.name,
                "kind": self.kind, "status": self.status,
                "started_at": self.started_at.isoformat(),
                "ended_at": self.ended_at.isoformat() if self.ended_at else None,
                "duration_s": self.duration_s, "error": self.error, "created_by": self.created_by,
                "params": self.params, "tags": self.tags,
                "metrics": {k: _json_number(v) for k, v in self.metrics.items()},
                "artifacts": self.artifacts, "code_version": self.code_version}
        if environment:
            data["environment"] = self.environment
        return data


def _json_number(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def _value(stored: float | None) -> float:
    return math.nan if stored is None else float(stored)


def resolve_run_id(ws: Workspace, ref: str) -> str:
    """A full run id from an id or a unique prefix of one (at least four characters)."""
    ref = ref.strip().lower()
    with ws.db.session() as session:
        return _resolve(session, ref)


def _resolve(session: Session, ref: str) -> str:
    if session.execute(select(RunRow.id).where(RunRow.id == ref)).scalar() is not None:
        return ref
    if len(ref) >= MIN_PREFIX and all(c in "0123456789abcdef" for c in ref):
        found = session.execute(select(RunRow.id).where(RunRow.id.startswith(ref)).limit(2)
                                ).scalars().all()
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise TrackingError(f"Run id prefix '{ref}' matches several runs; give more "
                                "characters.")
    raise NotFoundError(f"No run '{ref}' in this workspace; see `mlwright runs list`.")


def _latest_metrics(session: Session, run_ids: list[str]) -> dict[str, dict[str, float]]:
    """Each series' value at its highest step (the last logged among equal steps): a point
    logged late for an early step is not the latest. Kept up to date by every flush."""
    latest: dict[str, dict[str, float]] = {run_id: {} for run_id in run_ids}
    if run_ids:
        rows = session.execute(select(RunLatestMetric.run_id, RunLatestMetric.key,
                                      RunLatestMetric.value)
                               .where(RunLatestMetric.run_id.in_(run_ids))
                               .order_by(RunLatestMetric.key))
        for run_id, key, value in rows:
            latest[run_id][key] = _value(value)
    return latest


def _row_info(row: RunRow) -> RunInfo:
    return RunInfo(id=row.id, experiment=row.experiment, name=row.name, kind=row.kind,
                   status=row.status, started_at=row.started_at, ended_at=row.ended_at,
                   error=row.error, created_by=row.created_by)


def get_run(run_id: str, *, workspace: WorkspaceLike = None) -> RunInfo:
    """Everything recorded about one run (``run_id`` may be a unique prefix)."""
    ws = as_workspace(workspace)
    flush_live(run_id)
    with ws.db.session() as session:
        run_id = _resolve(session, run_id.strip().lower())
        row = session.get(RunRow, run_id)
        assert row is not None
        info = _row_info(row)
        info.environment = dict(row.environment or {})
        info.code_version = dict(row.code_version or {})
        info.params = {k: decode_value(v) for k, v in session.execute(
            select(RunParam.key, RunParam.value).where(RunParam.run_id == run_id)
            .order_by(RunParam.key))}
        info.tags = {k: v for k, v in session.execute(
            select(RunTag.key, RunTag.value).where(RunTag.run_id == run_id).order_by(RunTag.key))}
        info.artifacts = {a.name: {"digest": a.digest, "size": a.size}
                          for a in session.execute(select(RunArtifact).where(
                              RunArtifact.run_id == run_id).order_by(RunArtifact.name)).scalars()}
        info.metrics = _latest_metrics(session, [run_id])[run_id]
    return info


def list_runs(*, experiment: str | None = None, status: str | None = None, limit: int = 50,
              workspace: WorkspaceLike = None) -> list[RunInfo]:
    """The newest runs first, with parameters, tags and latest metrics (no environment)."""
    ws = as_workspace(workspace)
    flush_live()
    query = select(RunRow).order_by(RunRow.started_at.desc(), RunRow.id).limit(limit)
    if experiment is not None:
        query = query.where(RunRow.experiment == experiment)
    if status is not None:
        query = query.where(RunRow.status == status)
    with ws.db.session() as session:
        infos = [_row_info(row) for row in session.execute(query).scalars()]
        ids = [info.id for info in infos]
        by_id = {info.id: info for info in infos}
        for run_id, key, value in session.execute(select(RunParam.run_id, RunParam.key,
                                                         RunParam.value)
                                                  .where(RunParam.run_id.in_(ids))):
            by_id[run_id].params[key] = decode_value(value)
        for run_id, key, value in session.execute(select(RunTag.run_id, RunTag.key, RunTag.value)
                                                  .where(RunTag.run_id.in_(ids))):
            by_id[run_id].tags[key] = value
        for run_id, metrics in _latest_metrics(session, ids).items():
            by_id[run_id].metrics = metrics
    return infos


def metric_history(run_id: str, key: str, *, workspace: WorkspaceLike = None) -> list[MetricPoint]:
    """Every point of one series, by step (and in logging order within a step)."""
    ws = as_workspace(workspace)
    flush_live(run_id)
    with ws.db.engine.connect() as conn:  # a plain read: no ORM session needed
        rows = conn.execute(select(RunMetric.step, RunMetric.value, RunMetric.timestamp_ms)
                            .where(RunMetric.run_id == run_id, RunMetric.key == key)
                            .order_by(RunMetric.step, RunMetric.id)).all()
    if rows:
        return [MetricPoint(step, math.nan if value is None else value, ts / 1000)
                for step, value, ts in rows]
    with ws.db.session() as session:  # a prefix, an unknown run, or an unknown series
        full = _resolve(session, run_id.strip().lower())
        if full != run_id:
            return metric_history(full, key, workspace=ws)
        keys = session.execute(select(RunLatestMetric.key).where(RunLatestMetric.run_id == full)
                               .order_by(RunLatestMetric.key)).scalars().all()
    raise NotFoundError(f"Run {full} has no metric '{key}' (it has: {', '.join(keys) or 'none'}).")


def load_artifact(run_id: str, name: str, *, workspace: WorkspaceLike = None) -> bytes:
    """The bytes of an artifact attached to a run (hash-verified)."""
    ws = as_workspace(workspace)
    run_id = resolve_run_id(ws, run_id)
    with ws.db.session() as session:
        row = session.get(RunArtifact, (run_id, name))
        if row is None:
            raise NotFoundError(f"Run {run_id} has no artifact '{name}'; see `mlwright runs show "
                                f"{run_id[:8]}`.")
        digest = row.digest
    return ws.artifacts.get_bytes(digest)


@dataclass
class RunComparison:
    """Runs side by side: every parameter and latest metric, one column per run."""

    runs: list[RunInfo]
    params: dict[str, list[Any]]
    metrics: dict[str, list[float | None]]

    @property
    def differing_params(self) -> list[str]:
        return [k for k, values in self.params.items() if len({repr(v) for v in values}) > 1]

    def to_dict(self) -> dict[str, Any]:
        return {"runs": [{"id": r.id, "name": r.name, "experiment": r.experiment,
                          "status": r.status, "code_version": r.code_version} for r in self.runs],
                "params": self.params, "differing_params": self.differing_params,
                "metrics": {k: [None if v is None else _json_number(v) for v in values]
                            for k, values in self.metrics.items()}}


def compare_runs(run_ids: list[str], *, workspace: WorkspaceLike = None) -> RunComparison:
    """Compare two or more runs: parameters (``None`` where a run lacks one) and metrics."""
    if len(run_ids) < 2:
        raise TrackingError(f"Comparing needs at least two runs; got {len(run_ids)}.")
    ws = as_workspace(workspace)
    runs = [get_run(ref, workspace=ws) for ref in run_ids]
    param_keys = sorted({k for r in runs for k in r.params})
    metric_keys = sorted({k for r in runs for k in r.metrics})
    return RunComparison(runs=runs,
                         params={k: [r.params.get(k) for r in runs] for k in param_keys},
                         metrics={k: [r.metrics.get(k) for r in runs] for k in metric_keys})
