"""The same pipeline in this process, in a local process pool and on Ray gives the same outputs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlwright.pipelines import records
from mlwright.workspace import WORKSPACE_ENV, Workspace, init_workspace

from . import flows


def test_inline_and_local_give_the_same_outputs(workspace: Workspace, tmp_path: Path) -> None:
    inline = flows.chain.run(workspace=workspace, log=str(tmp_path / "a"), n=7, executor="inline")
    local = flows.chain.run(workspace=workspace, log=str(tmp_path / "b"), n=7, executor="local")
    assert inline.ran == local.ran == ["load", "scale", "total"]
    assert inline.output() == local.output() == {"total": 42.0, "rows": 7}
    assert [s.output_digest for s in inline.steps] == [s.output_digest for s in local.steps]


def test_a_diamond_runs_its_independent_steps_side_by_side(workspace: Workspace, log: str) -> None:
    result = flows.diamond.run(workspace=workspace, log=log, n=10, pause=0.5, executor="local",
                               max_workers=2)
    assert result.output() == {"sum": 45, "max": 9}
    assert result.ran == ["source", "left", "right", "join"]
    lines = {name: (float(start), float(end), int(pid)) for name, start, end, pid in
             (line.split() for line in Path(log).read_text(encoding="utf-8").splitlines())}
    (left_start, left_end, left_pid), (right_start, right_end, right_pid) = \
        lines["left"], lines["right"]
    assert left_start < right_end and right_start < left_end  # they overlapped in time
    assert left_pid != right_pid != os.getpid()
    stored = records.get_run(workspace, result.run_id)
    assert [s.status for s in stored.steps] == ["succeeded"] * 4
    again = flows.diamond.run(workspace=workspace, log=log, n=10, pause=0.5, max_workers=2)
    assert again.summary() == "4 steps: 0 ran, 4 cached (nothing to do)"


def test_an_inline_run_leaves_the_environment_as_it_was(workspace: Workspace, log: str) -> None:
    flows.chain.run(workspace=workspace, log=log, executor="inline")
    assert WORKSPACE_ENV not in os.environ


@pytest.fixture
def ray_module() -> Iterator[Any]:
    """Ray, shut down again after the test (the executor leaves its instance running)."""
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    yield ray
    ray.shutdown()


def run_on_ray(tmp_path: Path) -> None:
    with init_workspace(tmp_path / "ws") as workspace:
        log = str(tmp_path / "ran.log")
        result = flows.chain.run(workspace=workspace, log=log, n=4, executor="ray")
        assert result.output() == {"total": 12.0, "rows": 4}
        assert result.ran == ["load", "scale", "total"]
        assert flows.ran(log) == ["load", "scale", "total"]
        assert records.get_run(workspace, result.run_id).executor == "ray"
        inline = flows.chain.run(workspace=workspace, log=str(tmp_path / "other"), n=4,
                                 executor="inline")
        assert [s.output_digest for s in inline.steps] == [s.output_digest for s in result.steps]


@pytest.mark.xdist_group("ray")
def test_the_ray_executor_starts_a_local_ray_and_runs_a_pipeline_on_it(
        ray_module: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    run_on_ray(tmp_path)
    assert ray_module.is_initialized()


@pytest.mark.xdist_group("ray")
def test_the_ray_executor_runs_a_pipeline_on_a_ray_the_caller_started(
        ray_module: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    ray_module.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    run_on_ray(tmp_path)
