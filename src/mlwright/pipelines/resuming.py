"""Resuming a failed run: the same pipeline, parameters and partition; what succeeded before
comes from the cache, so work starts again at the step that failed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlwright.pipelines import records
from mlwright.pipelines.records import StepRecord
from mlwright.pipelines.refs import load_pipeline
from mlwright.pipelines.runner import PipelineRunResult, run_pipeline
from mlwright.workspace import as_workspace


def resume(run_id: str, *, workspace: Any = None, executor: str | None = None,
           on_step: Callable[[StepRecord], None] | None = None) -> PipelineRunResult:
    """Run a recorded pipeline run again, reusing every step that succeeded."""
    ws = as_workspace(workspace)
    previous = records.get_run(ws, run_id)
    pipe = load_pipeline(previous.ref, ws)
    params = {k: v for k, v in previous.params.items() if k != "partition"}
    return run_pipeline(pipe, params, partition=previous.partition, workspace=ws,
                        executor=executor or previous.executor, resumed_from=run_id,
                        on_step=on_step)
