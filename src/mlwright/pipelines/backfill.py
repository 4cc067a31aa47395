"""Backfill: run the partitions of a range that have no successful run, in parallel."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlwright.errors import MlwrightError, PipelineError
from mlwright.pipelines import records
from mlwright.pipelines.executors import check_executor, make_executor
from mlwright.workspace import as_workspace, open_workspace

if TYPE_CHECKING:
    from mlwright.pipelines.definition import Pipeline


@dataclass
class BackfillResult:
    pipeline: str
    requested: list[str]
    already_done: list[str]
    succeeded: dict[str, str] = field(default_factory=dict)  # partition -> run id
    failed: dict[str, str] = field(default_factory=dict)  # partition -> error

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "requested": len(self.requested),
                "already_done": self.already_done, "succeeded": self.succeeded,
                "failed": self.failed}


def _run_partition(ref: str, key: str, params: dict[str, Any], root: str,
                   overrides: dict[str, Any]) -> tuple[str, bool, str]:
    """In a worker: one partition, its steps run inline (the partitions are the parallelism)."""
    from mlwright.pipelines.refs import load_pipeline

    try:
        with open_workspace(root, overrides=overrides) as ws:
            result = load_pipeline(ref).run(workspace=ws, partition=key, executor="inline",
                                            **params)
        return key, True, result.run_id
    except MlwrightError as exc:  # a failed step included: recorded, resumable
        return key, False, str(exc)
    except Exception as exc:  # anything else must not take the other partitions down
        return key, False, f"{type(exc).__name__}: {exc}"


def backfill(pipe: Pipeline, start: str | None, end: str | None, *, params: dict[str, Any],
             workspace: Any, workers: int | None = None, executor: str = "local",
             progress: Callable[[str, bool], None] | None = None) -> BackfillResult:
    """Run the partitions in [start, end] that have no successful run, ``workers`` at a time,
    each in a worker of ``executor`` (local processes, or Ray: then the workspace's stores
    must be reachable from the cluster, e.g. PostgreSQL and an object store)."""
    if pipe.partitions is None:
        raise PipelineError(f"Pipeline '{pipe.name}' is not partitioned; use `pipeline run`.")
    check_executor(executor)
    ws = as_workspace(workspace)
    keys = pipe.partitions.keys(start, end)
    pipe.bind(params, keys[0])  # bad parameters fail here, before any worker starts
    pipeline_id = records.register(
        ws, name=pipe.name, ref=pipe.ref, schedule=pipe.schedule,
        partitions=pipe.partitions.to_dict(), code_hash=pipe.code_hash)
    done = records.succeeded_partitions(ws, pipeline_id)
    result = BackfillResult(pipe.name, keys, [k for k in keys if k in done])
    missing = [k for k in keys if k not in done]
    if not missing:
        return result
    overrides = dict(ws.resolved.settings.model_dump())
    pool = make_executor(executor, min(workers or 2, len(missing)))
    try:
        futures = [pool.submit(_run_partition, pipe.ref, key, params, str(ws.root), overrides)
                   for key in missing]
        keys_of = dict(zip(futures, missing, strict=True))
        for future in as_completed(futures):
            try:
                key, ok, detail = future.result()
            except Exception as exc:  # the worker itself died
                key, ok, detail = keys_of[future], False, f"its worker failed: {exc!r}"
            (result.succeeded if ok else result.failed)[key] = detail
            if progress is not None:
                progress(key, ok)
    finally:
        pool.shutdown()
    return result
