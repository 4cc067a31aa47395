"""A failing step: what is raised, what is recorded, resuming, and retries with backoff."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlwright.errors import NotFoundError, PipelineError
from mlwright.pipelines import StepFailedError, pipeline_runs, records, resume
from mlwright.tracking import get_run as get_tracked_run
from mlwright.workspace import Workspace

from . import flows


def test_a_failing_step_raises_names_the_resume_command_and_is_recorded(
        workspace: Workspace, log: str, tmp_path: Path) -> None:
    flag = str(tmp_path / "flag")
    with pytest.raises(StepFailedError) as caught:
        flows.resumable.run(workspace=workspace, log=log, flag=flag, executor="inline")
    run_id = caught.value.result.run_id
    message = str(caught.value)
    assert "Step 'fragile' failed: RuntimeError: flag file" in message
    assert f"mlwright pipeline resume {run_id}" in message
    assert caught.value.result.summary() == "4 steps: 1 ran, 0 cached, failed at fragile"
    assert isinstance(caught.value, PipelineError)

    stored = records.get_run(workspace, run_id)
    assert stored.status == "failed" and "Step 'fragile' failed" in (stored.error or "")
    assert stored.ended_at is not None
    assert [(s.node, s.status) for s in stored.steps] == [
        ("load", "succeeded"), ("fragile", "failed"), ("scale", "skipped"), ("total", "skipped")]
    failed = stored.steps[1]
    assert failed.error == f"RuntimeError: flag file {flag} is missing"
    assert failed.log is not None
    assert "checking the flag" in failed.log  # print()
    assert f"WARNING flows: the flag should be at {flag}" in failed.log  # logging
    assert "Traceback" in failed.log and "RuntimeError" in failed.log
    tracked = get_tracked_run(run_id, workspace=workspace)
    assert tracked.status == "failed" and "fragile" in (tracked.error or "")
    assert flows.ran(log) == ["load", "fragile"]


def test_resume_starts_again_at_the_failed_step(workspace: Workspace, log: str,
                                                tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    with pytest.raises(StepFailedError) as caught:
        flows.resumable.run(workspace=workspace, log=log, flag=str(flag))  # local pool
    failed_id = caught.value.result.run_id
    flag.touch()  # the condition is fixed

    resumed = resume(failed_id, workspace=workspace)
    assert resumed.status == "succeeded"
    assert (resumed.cached, resumed.ran) == (["load"], ["fragile", "scale", "total"])
    assert resumed.output() == {"total": 6.0, "rows": 4}
    stored = records.get_run(workspace, resumed.run_id)
    assert (stored.resumed_from, stored.executor, stored.status) == (failed_id, "local", "succeeded")
    assert stored.params == {"log": log, "flag": str(flag), "n": 4}
    assert records.get_run(workspace, failed_id).status == "failed"  # history is kept
    assert flows.ran(log) == ["load", "fragile", "fragile", "scale", "total"]


def test_resume_of_an_unknown_run_says_so(workspace: Workspace) -> None:
    with pytest.raises(NotFoundError, match="No pipeline run 'nope'"):
        resume("nope", workspace=workspace)


def test_a_step_that_fails_twice_succeeds_on_its_third_attempt(workspace: Workspace,
                                                               tmp_path: Path) -> None:
    counter = str(tmp_path / "attempts")
    result = flows.retrying.run(workspace=workspace, counter=counter, failures=2, executor="inline")
    assert result.status == "succeeded" and result.output() == 3
    (step,) = records.get_run(workspace, result.run_id).steps
    assert (step.status, step.attempts, step.error) == ("succeeded", 3, None)
    assert flows.ran(counter) == ["attempt"] * 3


def test_a_step_out_of_retries_fails_with_its_attempt_count(workspace: Workspace,
                                                            tmp_path: Path) -> None:
    counter = str(tmp_path / "attempts")
    with pytest.raises(StepFailedError, match=r"Step 'flaky_once' failed after 2 attempts: "
                                              r"ConnectionError: attempt 2 of 3 failed"):
        flows.retrying_once.run(workspace=workspace, counter=counter, failures=2)
    assert flows.ran(counter) == ["attempt"] * 2
    with pytest.raises(StepFailedError) as caught:  # a fresh counter: attempts start at 1 again
        flows.retrying_once.run(workspace=workspace, counter=counter + "2", failures=2,
                                executor="inline")
    (step,) = records.get_run(workspace, caught.value.result.run_id).steps
    assert (step.status, step.attempts) == ("failed", 2)
    assert step.log is not None and step.log.count("ConnectionError") >= 2  # both attempts logged


def test_a_worker_that_dies_leaves_the_run_recorded_as_failed(workspace: Workspace,
                                                              log: str) -> None:
    with pytest.raises(StepFailedError, match=r"Step 'dies' failed: its worker failed: "
                                              r"BrokenProcessPool") as caught:
        flows.crashing.run(workspace=workspace, log=log, max_workers=1)
    assert flows.ran(log) == ["dies"]
    (run,) = pipeline_runs("crashing", workspace=workspace)
    assert run["status"] == "failed"
    assert "BrokenProcessPool" in (run["error"] or "")
    (step,) = [s for s in caught.value.result.steps if s.node == "dies"]
    assert step.status == "failed"
