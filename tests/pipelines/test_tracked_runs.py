"""A pipeline run is also a tracked run: its parameters, its steps' metrics, its outcome."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlwright.errors import PipelineError
from mlwright.pipelines import StepFailedError, log_metric
from mlwright.tracking import get_run, list_runs, metric_history
from mlwright.workspace import Workspace

from . import flows


def test_a_pipeline_run_is_tracked_with_its_params_and_step_metrics(workspace: Workspace,
                                                                    log: str) -> None:
    result = flows.chain.run(workspace=workspace, log=log, n=6, executor="inline")
    tracked = get_run(result.run_id, workspace=workspace)
    assert (tracked.kind, tracked.experiment, tracked.name, tracked.status) == \
        ("pipeline", "chain", "chain", "succeeded")
    assert tracked.params == {"log": log, "n": 6, "factor": 2.0}
    assert tracked.metrics == {"rows": 6.0, "total": 30.0}
    assert tracked.tags["summary"] == "3 steps: 3 ran, 0 cached"
    assert tracked.ended_at is not None and tracked.error is None
    assert tracked.environment["python"] and tracked.code_version["path"].endswith("flows.py")
    assert [p.value for p in metric_history(result.run_id, "total", workspace=workspace)] == [30.0]

    cached = flows.chain.run(workspace=workspace, log=log, n=6)
    again = get_run(cached.run_id, workspace=workspace)
    assert again.metrics == tracked.metrics  # a cached step reports the metrics it logged
    assert again.tags["summary"] == "3 steps: 0 ran, 3 cached (nothing to do)"
    assert {r.id for r in list_runs(experiment="chain", workspace=workspace)} == \
        {result.run_id, cached.run_id}


def test_a_partitioned_run_is_tagged_with_its_partition(workspace: Workspace, log: str) -> None:
    result = flows.daily.run(workspace=workspace, partition="2024-01-01", log=log,
                             executor="inline")
    tracked = get_run(result.run_id, workspace=workspace)
    assert tracked.tags["partition"] == "2024-01-01"
    assert tracked.params["partition"] == "2024-01-01"


def test_a_failed_pipeline_run_is_a_failed_tracked_run(workspace: Workspace, log: str,
                                                       tmp_path: Path) -> None:
    with pytest.raises(StepFailedError) as caught:
        flows.resumable.run(workspace=workspace, log=log, flag=str(tmp_path / "absent"),
                            executor="inline")
    tracked = get_run(caught.value.result.run_id, workspace=workspace)
    assert tracked.status == "failed"
    assert tracked.error is not None and tracked.error.startswith("Step 'fragile' failed")
    assert tracked.tags["summary"] == "4 steps: 1 ran, 0 cached, failed at fragile"


def test_log_metric_outside_a_step_says_where_it_works() -> None:
    with pytest.raises(PipelineError, match=r"No step is running here: log_metric and "
                                            r"current_step work inside a step"):
        log_metric("auc", 0.9)
