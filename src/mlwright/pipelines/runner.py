"""Running a pipeline: trace, look up the cache, execute what is missing, record everything."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlwright.errors import PipelineError
from mlwright.pipelines import records
from mlwright.pipelines.execution import OutputRef, StepResult, StepTask, execute
from mlwright.pipelines.executors import check_executor, make_executor
from mlwright.pipelines.graph import Graph, Handle, Node
from mlwright.pipelines.outputs import decode
from mlwright.pipelines.records import StepRecord
from mlwright.workspace import Workspace, as_workspace

if TYPE_CHECKING:
    from mlwright.pipelines.definition import Pipeline


class StepFailedError(PipelineError):
    """A step failed (after its retries); the run is recorded and can be resumed."""

    def __init__(self, message: str, result: PipelineRunResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class PipelineRunResult:
    run_id: str
    pipeline: str
    status: str
    steps: list[StepRecord]
    duration_s: float
    partition: str | None = None
    _output: tuple[str, str] | None = field(default=None, repr=False)
    _workspace: Workspace | None = field(default=None, repr=False)

    @property
    def ran(self) -> list[str]:
        return [s.node for s in self.steps if s.status == "succeeded"]

    @property
    def cached(self) -> list[str]:
        return [s.node for s in self.steps if s.status == "cached"]

    def summary(self) -> str:
        failed = [s.node for s in self.steps if s.status == "failed"]
        text = f"{len(self.steps)} steps: {len(self.ran)} ran, {len(self.cached)} cached"
        if failed:
            text += f", failed at {failed[0]}"
        elif not self.ran:
            text += " (nothing to do)"
        return text

    def output(self) -> Any:
        """The value the pipeline returned (loaded from the artifact store)."""
        if self._output is None or self._workspace is None:
            return None
        digest, kind = self._output
        return decode(kind, self._workspace.artifacts.get_bytes(digest), self._workspace.root)

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "pipeline": self.pipeline, "status": self.status,
                "partition": self.partition, "duration_s": round(self.duration_s, 6),
                "summary": self.summary(), "steps": [s.to_dict() for s in self.steps]}


def _task(node: Node, graph: Graph, outputs: dict[int, tuple[str, str]], run_id: str,
          ws: Workspace, inline: bool) -> StepTask:
    def swap(value: Any) -> Any:
        if isinstance(value, Handle):
            digest, kind = outputs[value.node]
            return OutputRef(digest, kind)
        if isinstance(value, list | tuple):
            return type(value)(swap(v) for v in value)
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        return value

    return StepTask(run_id=run_id, node=node.name, step_ref=node.step.ref, key=node.key,
                    args=swap(node.args), kwargs=swap(node.kwargs), retries=node.step.retries,
                    backoff_s=node.step.backoff_s, artifact_url=ws.artifact_url,
                    workspace_root=str(ws.root), settings=ws.settings.model_dump(),
                    step_object=node.step if inline else None)


def _record(node: Node, result: StepResult) -> StepRecord:
    return StepRecord(node=node.name, status="succeeded" if result.ok else "failed",
                      cache_key=node.key, attempts=result.attempts,
                      duration_s=round(result.ended - result.started, 6), error=result.error,
                      log=result.log or None, output_digest=result.digest, output_kind=result.kind)


@dataclass
class _Run:
    """The moving parts of one pipeline run while it executes."""

    graph: Graph
    ws: Workspace
    run_id: str
    tracking_run: Any
    notify: Callable[[StepRecord], None]
    outputs: dict[int, tuple[str, str]] = field(default_factory=dict)
    status: dict[int, StepRecord] = field(default_factory=dict)

    def use_cache(self, hits: dict[str, records.CacheHit], nodes: list[Node]) -> list[Node]:
        """Take the outputs of ``nodes`` found in ``hits``; returns the ones that were."""
        found = [n for n in nodes if n.step.cache and n.key in hits]
        for node in found:
            hit = hits[node.key]
            self.outputs[node.id] = (hit.digest, hit.kind)
            self.status[node.id] = StepRecord(node=node.name, status="cached", cache_key=node.key,
                                              output_digest=hit.digest, output_kind=hit.kind)
            for name, value, step, timestamp in hit.metrics:  # the run reports them too
                self.tracking_run.log_metric(name, value, step=step, timestamp=timestamp)
        if found:
            records.record_steps(self.ws, self.run_id,
                                 [(n.id, self.status[n.id], None) for n in found])
            for node in found:
                self.notify(self.status[node.id])
        return found

    def finish(self, node: Node, result: StepResult) -> str | None:
        """Record a step that ran; returns the failure message if it failed."""
        record = _record(node, result)
        self.status[node.id] = record
        records.record_steps(self.ws, self.run_id, [(node.id, record, result)])
        self.notify(record)
        for name, value, step, timestamp in result.metrics:
            self.tracking_run.log_metric(name, value, step=step, timestamp=timestamp)
        if result.ok and result.digest and result.kind:
            self.outputs[node.id] = (result.digest, result.kind)
            return None
        tries = f" after {result.attempts} attempts" if result.attempts > 1 else ""
        return f"Step '{node.name}' failed{tries}: {result.error}."

    def ready_keys(self, nodes: list[Node]) -> None:
        """Key the nodes that wait on an uncached step's output, now that it is known."""
        digests = {i: digest for i, (digest, _) in self.outputs.items()}
        for node in nodes:
            if not node.key:
                node.key = self.graph.key_of(node, digests) or ""


def run_pipeline(pipe: Pipeline, params: dict[str, Any], *, partition: str | None,
                 workspace: Any, executor: str, max_workers: int | None = None,
                 resumed_from: str | None = None,
                 on_step: Callable[[StepRecord], None] | None = None) -> PipelineRunResult:
    from mlwright.tracking import start_run

    started = time.perf_counter()
    check_executor(executor)
    ws = as_workspace(workspace)
    bound = pipe.bind(params, partition)
    graph, returned = pipe.trace(bound)
    order = graph.order()
    pipeline_id = records.register(
        ws, name=pipe.name, ref=pipe.ref, schedule=pipe.schedule,
        partitions=pipe.partitions.to_dict() if pipe.partitions else None,
        code_hash=pipe.code_hash)
    hits = records.cached(ws, [n.key for n in order if n.step.cache and n.key])
    with start_run(name=pipe.name, experiment=pipe.name, params=_loggable(bound),
                   tags={"partition": partition} if partition else None, kind="pipeline",
                   code_path=pipe.source_file, workspace=ws) as tracking_run:
        run_id = tracking_run.id
        records.start(ws, run_id=run_id, pipeline_id=pipeline_id, params=_loggable(bound),
                      partition=bound.get("partition"), executor=executor,
                      resumed_from=resumed_from)
        state = _Run(graph, ws, run_id, tracking_run, on_step or (lambda record: None))
        state.use_cache(hits, order)
        try:
            failure = _execute(state, order, executor, max_workers)
        except BaseException as exc:  # no executor, a broken pool: the run must not stay "running"
            records.finish(ws, run_id, status="failed", error=f"{type(exc).__name__}: {exc}",
                           output=None)
            raise
        skipped = [n for n in order if n.id not in state.status]
        for node in skipped:
            state.status[node.id] = StepRecord(node=node.name, status="skipped",
                                               cache_key=node.key)
        if skipped:
            records.record_steps(ws, run_id, [(n.id, state.status[n.id], None) for n in skipped])
            for node in skipped:
                state.notify(state.status[node.id])
        output = state.outputs.get(returned.node) if isinstance(returned, Handle) else None
        run_status = "failed" if failure else "succeeded"
        records.finish(ws, run_id, status=run_status, error=failure, output=output)
        result = PipelineRunResult(run_id=run_id, pipeline=pipe.name, status=run_status,
                                   steps=[state.status[n.id] for n in graph.nodes],
                                   duration_s=time.perf_counter() - started,
                                   partition=bound.get("partition"), _output=output,
                                   _workspace=ws)
        tracking_run.set_tag("summary", result.summary())
        if failure:
            tracking_run.end(status="failed", error=failure)
    if failure:
        raise StepFailedError(f"{failure} Pipeline '{pipe.name}' run {run_id} failed; fix it and "
                              f"run `mlwright pipeline resume {run_id}` to continue from there.",
                              result)
    return result


def _execute(state: _Run, order: list[Node], kind: str, max_workers: int | None) -> str | None:
    """Submit every node whose inputs are ready; returns the failure message, if any.

    A node downstream of an uncached step gets its key only once that step's output exists
    (the key then hashes the output itself), and is looked up in the cache at that moment.
    """
    pending = [n for n in order if n.id not in state.status]
    if not pending:
        return None
    executor = make_executor(kind, max_workers)
    running: dict[Future[StepResult], Node] = {}
    failure: str | None = None
    try:
        while pending or running:
            ready = [n for n in pending if all(u in state.outputs for u in n.upstream)]
            if failure is None and ready:
                late = [n for n in ready if not n.key]
                state.ready_keys(late)
                found = state.use_cache(records.cached(state.ws, [n.key for n in late
                                                                  if n.step.cache]), late)
                for node in ready:
                    pending.remove(node)
                    if node in found:
                        continue
                    # In-process and Ray tasks carry the step itself (Ray pickles it by
                    # reference, or by value for a file-loaded module); forked workers import it.
                    task = _task(node, state.graph, state.outputs, state.run_id, state.ws,
                                 inline=kind != "local")
                    running[executor.submit(execute, task)] = node
                if found:
                    continue  # cached outputs may have made more nodes ready
            if not running:
                break
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                node = running.pop(future)
                try:
                    result = future.result()
                except Exception as exc:  # the worker died (killed, out of memory), not the step
                    now = time.time()
                    result = StepResult(node.name, node.key, False, 1, now, now,
                                        error=f"its worker failed: {type(exc).__name__}: {exc}",
                                        error_type=type(exc).__name__)
                error = state.finish(node, result)
                failure = failure or error
    finally:
        executor.shutdown()
    return failure


def _loggable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, bool | int | float | str) or v is None else str(v)
            for k, v in params.items()}
