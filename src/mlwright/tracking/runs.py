"""A tracked run: parameters, metric series, tags and artifacts, written as they are logged.

>>> with start_run("lgbm-baseline", experiment="delays", params={"lr": 0.05}) as run:  # doctest: +SKIP
...     for epoch in range(10):
...         run.log_metric("auc", 0.80 + epoch / 100)     # steps 0, 1, 2, ...
...     run.log_artifact("confusion.png")

Parameters and tags are written at once. Metric points are buffered and written in one
statement when the buffer holds ``FLUSH_POINTS`` points, when a point arrives more than
``FLUSH_SECONDS`` after the last write, before anything in this process reads the run, and
when the run ends: a training loop logging every batch then costs a list append per point,
not a database transaction (MLflow's synchronous ``log_metric`` costs one each).
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from sqlalchemy import insert, select, update

from mlwright.errors import TrackingError
from mlwright.store import Run as RunRow
from mlwright.store import (
    RunArtifact,
    RunLatestMetric,
    RunMetric,
    RunParam,
    RunTag,
    is_unique_violation,
)
from mlwright.store.types import utcnow
from mlwright.store.upsert import upsert
from mlwright.tracking.environment import code_version, environment
from mlwright.workspace import Workspace, as_workspace

FLUSH_POINTS = 5000
FLUSH_SECONDS = 1.0
KEY_LIMIT = 250
RunKind = Literal["manual", "pipeline"]
RunStatus = Literal["running", "succeeded", "failed"]

# Runs of this process that may hold unwritten metric points; readers flush them first.
_live: dict[str, Run] = {}


def flush_live(run_id: str | None = None) -> None:
    """Write the buffered metric points of this process's open run ``run_id``, or of all of
    them when ``run_id`` is None or not an open run's full id (it may be a prefix)."""
    for live in [_live[run_id]] if run_id in _live else list(_live.values()):
        live.flush()


def encode_value(value: Any) -> str:
    """A parameter as stored: JSON, so numbers and booleans come back as what they were."""
    try:
        return json.dumps(value, sort_keys=True, allow_nan=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return json.dumps(str(value))


def decode_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:  # written by something other than mlwright
        return text


def check_key(key: object, what: str, run_id: str) -> str:
    if not isinstance(key, str) or not key.strip() or len(key) > KEY_LIMIT:
        raise TrackingError(f"The {what} name of run {run_id} must be a non-empty string of at most "
                            f"{KEY_LIMIT} characters; got {key!r}.")
    return key


class Run:
    """An open run. Use ``start_run`` to get one; end it with ``end`` or a ``with`` block."""

    def __init__(self, ws: Workspace, *, run_id: str, experiment: str, name: str,
                 owns_workspace: bool) -> None:
        self.id = run_id
        self.experiment = experiment
        self.name = name
        self.workspace = ws
        self.status: RunStatus = "running"
        self._owns_workspace = owns_workspace
        self._params: dict[str, str] = {}
        self._steps: dict[str, int] = {}
        self._pending: list[dict[str, Any]] = []
        self._last_flush = time.monotonic()

    def __repr__(self) -> str:
        return f"Run({self.id!r}, experiment={self.experiment!r}, status={self.status!r})"

    def _check_open(self) -> None:
        if self.status != "running":
            raise TrackingError(f"Run {self.id} has ended ({self.status}); start a new run to "
                                "log more.")

    # -- parameters and tags -------------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        """Record a parameter; logging the same key again with another value is refused."""
        self.log_params({key: value})

    def log_params(self, params: dict[str, Any]) -> None:
        """Record several parameters in one write."""
        self._check_open()
        fresh: dict[str, str] = {}
        for key, value in params.items():
            encoded = encode_value(value)
            known = self._params.get(check_key(key, "parameter", self.id), fresh.get(key))
            if known is not None and known != encoded:
                raise TrackingError(
                    f"Parameter '{key}' of run {self.id} is already {decode_value(known)!r}; got "
                    f"{value!r}. Parameters are fixed once logged: start a new run for a new value.")
            if known is None:
                fresh[key] = encoded
        if not fresh:
            return
        rows = [{"run_id": self.id, "key": k, "value": v} for k, v in fresh.items()]
        try:
            with self.workspace.db.session() as session:
                session.execute(insert(RunParam), rows)
        except Exception as exc:
            if not is_unique_violation(exc):
                raise
            self._check_against_stored(fresh)
        self._params.update(fresh)

    def _check_against_stored(self, fresh: dict[str, str]) -> None:
        """Another writer logged some of these keys first: fine if the values agree."""
        with self.workspace.db.session() as session:
            stored = dict(session.execute(select(RunParam.key, RunParam.value).where(
                RunParam.run_id == self.id, RunParam.key.in_(list(fresh)))).all())
            for key, value in fresh.items():
                if key in stored and stored[key] != value:
                    raise TrackingError(
                        f"Parameter '{key}' of run {self.id} is already "
                        f"{decode_value(stored[key])!r}; got {decode_value(value)!r}. Parameters "
                        "are fixed once logged: start a new run for a new value.") from None
            missing = [{"run_id": self.id, "key": k, "value": v}
                       for k, v in fresh.items() if k not in stored]
            if missing:
                session.execute(insert(RunParam), missing)

    def set_tag(self, key: str, value: Any) -> None:
        """Set a tag (unlike a parameter, it may change)."""
        self.set_tags({key: value})

    def set_tags(self, tags: dict[str, Any]) -> None:
        if not tags:
            return
        values = {check_key(k, "tag", self.id): str(v) for k, v in tags.items()}
        with self.workspace.db.session() as session:
            stored = set(session.execute(select(RunTag.key).where(
                RunTag.run_id == self.id, RunTag.key.in_(list(values)))).scalars())
            for key, value in values.items():
                if key in stored:
                    session.execute(update(RunTag).where(RunTag.run_id == self.id, RunTag.key == key)
                                    .values(value=value))
            new = [{"run_id": self.id, "key": k, "value": v} for k, v in values.items()
                   if k not in stored]
            if new:
                session.execute(insert(RunTag), new)

    # -- metrics -------------------------------------------------------------------------

    def log_metric(self, key: str, value: float, step: int | None = None,
                   timestamp: float | None = None) -> None:
        """Add a point to the series ``key``; ``step`` defaults to the series' next step."""
        self._check_open()
        check_key(key, "metric", self.id)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise TrackingError(f"Metric '{key}' of run {self.id} must be a number; got "
                                f"{value!r}.") from None
        if step is None:
            step = self._steps.get(key, -1) + 1
        elif not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise TrackingError(f"The step of metric '{key}' of run {self.id} must be an integer "
                                f">= 0; got {step!r}.")
        self._steps[key] = max(step, self._steps.get(key, -1))
        moment = time.time() if timestamp is None else float(timestamp)
        self._pending.append({"run_id": self.id, "key": key,
                              "value": None if math.isnan(number) else number, "step": step,
                              "timestamp_ms": int(moment * 1000)})
        if len(self._pending) >= FLUSH_POINTS or \
                time.monotonic() - self._last_flush > FLUSH_SECONDS:
            self.flush()

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Several metrics at the same step (each series' next step when ``step`` is None)."""
        moment = time.time()
        for key, value in metrics.items():
            self.log_metric(key, value, step=step, timestamp=moment)

    def flush(self) -> None:
        """Write the buffered metric points now, and each series' newest point (one
        transaction)."""
        if self._pending:
            rows, self._pending = self._pending, []
            latest: dict[str, dict[str, Any]] = {}
            for row in rows:  # in logging order: the last of equal steps wins
                if row["key"] not in latest or row["step"] >= latest[row["key"]]["step"]:
                    latest[row["key"]] = row
            with self.workspace.db.session() as session:
                session.execute(insert(RunMetric), rows)
                upsert(session, RunLatestMetric, list(latest.values()), keys=["run_id", "key"],
                       only_if=lambda new: new.step >= RunLatestMetric.step)
        self._last_flush = time.monotonic()

    # -- artifacts -----------------------------------------------------------------------

    def log_artifact(self, source: str | os.PathLike[str] | bytes, name: str | None = None) -> str:
        """Store a file (or bytes) with the run under ``name``; returns its sha256."""
        self._check_open()
        if isinstance(source, bytes):
            if name is None:
                raise TrackingError(f"Artifact bytes of run {self.id} need a name=.")
            data = source
        else:
            path = Path(source)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise TrackingError(f"Cannot attach {path} to run {self.id}: "
                                    f"{exc.strerror or exc}.") from None
            name = name or path.name
        check_key(name, "artifact", self.id)
        digest = self.workspace.artifacts.put_bytes(data)
        with self.workspace.db.session() as session:
            row = session.get(RunArtifact, (self.id, name))
            if row is None:
                session.add(RunArtifact(run_id=self.id, name=name, digest=digest, size=len(data)))
            else:
                row.digest, row.size = digest, len(data)
        return digest

    # -- the end -------------------------------------------------------------------------

    def end(self, status: RunStatus = "succeeded", error: str | None = None) -> None:
        """Write what is buffered and close the run (a second call does nothing)."""
        if self.status != "running":
            return
        try:
            self.flush()
            with self.workspace.db.session() as session:
                session.execute(update(RunRow).where(RunRow.id == self.id)
                                .values(status=status, error=error, ended_at=utcnow()))
        finally:
            self.status = status
            _live.pop(self.id, None)
            if self._owns_workspace:
                self.workspace.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.end("succeeded")
        else:
            self.end("failed", error=f"{type(exc).__name__}: {exc}")


def start_run(name: str | None = None, *, experiment: str = "default",
              params: dict[str, Any] | None = None, tags: dict[str, Any] | None = None,
              kind: RunKind = "manual", code_path: str | os.PathLike[str] | None = None,
              workspace: Workspace | str | os.PathLike[str] | None = None) -> Run:
    """Open a run, recording the environment and the code's git version; use it in ``with``.

    >>> with start_run("baseline", params={"lr": 0.1}) as run:   # doctest: +SKIP
    ...     run.log_metric("loss", 0.3)
    """
    owns = not isinstance(workspace, Workspace)
    ws = as_workspace(workspace)
    run_id = uuid.uuid4().hex
    check_key(experiment, "experiment", run_id)
    name = name or f"{experiment}-{run_id[:8]}"
    try:
        with ws.db.session() as session:
            session.add(RunRow(id=run_id, experiment=experiment, name=name, kind=kind,
                               status="running", environment=environment(),
                               code_version=code_version(code_path), created_by=ws.actor))
    except BaseException:
        if owns:
            ws.close()
        raise
    run = Run(ws, run_id=run_id, experiment=experiment, name=name, owns_workspace=owns)
    _live[run_id] = run
    try:
        run.log_params(params or {})
        run.set_tags(tags or {})
    except BaseException as exc:
        run.end("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    return run
