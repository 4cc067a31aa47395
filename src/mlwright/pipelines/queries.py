"""Reading pipelines back: what is registered, its schedule, its runs and their steps.

>>> [p.name for p in list_pipelines(workspace="demo")]      # doctest: +SKIP
['flight_delays']
>>> get_pipeline_run("3f2a9c", workspace="demo").steps[0].status   # doctest: +SKIP
'cached'
"""

from __future__ import annotations

import os
from typing import Any

from mlwright.pipelines import records
from mlwright.pipelines.definition import check_schedule
from mlwright.pipelines.records import PipelineInfo, PipelineRunInfo
from mlwright.workspace import Workspace, as_workspace

WorkspaceLike = Workspace | str | os.PathLike[str] | None


def list_pipelines(*, workspace: WorkspaceLike = None) -> list[PipelineInfo]:
    """Every pipeline that was registered or run, with its schedule and newest run."""
    return records.list_pipelines(as_workspace(workspace))


def get_pipeline(name: str, *, workspace: WorkspaceLike = None) -> PipelineInfo:
    """One registered pipeline."""
    return records.get_pipeline(as_workspace(workspace), name)


def pipeline_runs(name: str, *, limit: int = 20,
                  workspace: WorkspaceLike = None) -> list[dict[str, Any]]:
    """The newest runs of a pipeline: id, status, partition, times, error."""
    return records.recent_runs(as_workspace(workspace), name, limit)


def get_pipeline_run(run_id: str, *, workspace: WorkspaceLike = None) -> PipelineRunInfo:
    """A pipeline run with every step's status, attempts, duration, log and error
    (``run_id`` may be a unique prefix)."""
    from mlwright.tracking import resolve_run_id

    ws = as_workspace(workspace)
    return records.get_run(ws, resolve_run_id(ws, run_id))


def set_schedule(name: str, schedule: str | None, *,
                 workspace: WorkspaceLike = None) -> PipelineInfo:
    """Declare a cron schedule for a registered pipeline (None clears it); the control
    plane's scheduler fires it."""
    if schedule is not None:
        check_schedule(schedule, name)
    return records.set_schedule(as_workspace(workspace), name, schedule)
