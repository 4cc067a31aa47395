"""Pipelines and parameters that are wrong: each is refused with a message naming the object."""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest
from sqlalchemy import select

from mlwright.errors import MlwrightError, PipelineError
from mlwright.pipelines import DailyPartitions, load_pipeline, pipeline, step
from mlwright.pipelines.executors import InlineExecutor, LocalExecutor, make_executor
from mlwright.pipelines.graph import Graph
from mlwright.store.pipeline_tables import PipelineRun
from mlwright.workspace import Workspace

from . import flows


def trace(pipe: Any, **params: Any) -> Graph:
    graph, _ = pipe.trace(pipe.bind(params, None))
    return graph


def test_a_handle_of_a_node_that_does_not_exist_yet_is_a_cycle() -> None:
    with pytest.raises(PipelineError, match=r"Step 'scale' takes the output of node 5, which does "
                                            r"not exist yet: pipeline 'forward_reference' has a cycle"):
        trace(flows.forward_reference, log="x")


def test_a_graph_with_a_cycle_names_the_steps_in_it() -> None:
    graph = trace(flows.chain, log="x")
    graph.nodes[0].upstream.append(2)  # load <- total <- scale <- load
    with pytest.raises(PipelineError, match=r"Pipeline 'chain' has a cycle among steps: "
                                            r"load, scale, total\."):
        graph.order()


def test_branching_on_a_step_output_is_refused() -> None:
    with pytest.raises(PipelineError, match=r"The output of step 'load' is not known while the "
                                            r"pipeline is traced; branch inside a step"):
        trace(flows.branches, log="x")
    with pytest.raises(PipelineError, match=r"The output of step 'load' cannot be unpacked"):
        trace(flows.unpacks, log="x")


def test_a_pipeline_must_call_steps_and_return_a_step_output() -> None:
    with pytest.raises(PipelineError, match=r"Pipeline 'calls_no_step' called no steps"):
        trace(flows.calls_no_step)
    with pytest.raises(PipelineError, match=r"Pipeline 'returns_a_constant' returned a int"):
        trace(flows.returns_a_constant, log="x")


def test_an_argument_that_cannot_be_hashed_names_the_step() -> None:
    with pytest.raises(PipelineError, match=r"Argument 'log' of step 'stamp' is a PosixPath|"
                                            r"An argument of step 'stamp' is a PosixPath"):
        trace(flows.path_argument, log="x")


@pytest.mark.parametrize(("params", "message"), [
    ({"log": "x", "n": "abc"}, r"Parameter 'n' of pipeline 'chain' must be int; got 'abc'"),
    ({"log": "x", "factor": [1]}, r"Parameter 'factor' of pipeline 'chain' must be float; got \[1\]"),
    ({"log": "x", "size": 3}, r"Pipeline 'chain' has no parameter 'size' \(parameters: log, n, factor\)"),
    ({"n": 3}, r"Pipeline 'chain' needs parameter 'log'"),
])
def test_bad_parameters_are_refused_before_anything_runs(params: dict[str, Any], message: str) -> None:
    with pytest.raises(PipelineError, match=message):
        flows.chain.bind(params, None)


def test_parameters_are_converted_to_their_annotation_where_safe() -> None:
    assert flows.chain.bind({"log": "x", "n": "7", "factor": 3}, None) == \
        {"log": "x", "n": 7, "factor": 3.0}


def test_bad_parameters_leave_no_run_behind(workspace: Workspace, log: str) -> None:
    with pytest.raises(PipelineError, match="must be int"):
        flows.chain.run(workspace=workspace, log=log, n="abc")
    with workspace.db.session() as session:
        assert session.execute(select(PipelineRun)).first() is None
    assert flows.ran(log) == []


def test_partition_keys_are_checked() -> None:
    with pytest.raises(PipelineError, match=r"Partition 2024-02-01 is outside the declared range "
                                            r"2024-01-01\.\.2024-01-10"):
        flows.daily.bind({"log": "x"}, "2024-02-01")
    with pytest.raises(PipelineError, match=r"Partition key 'yesterday' is not a date"):
        flows.daily.bind({"log": "x"}, "yesterday")
    with pytest.raises(PipelineError, match=r"Pipeline 'daily' is partitioned: give a partition key"):
        flows.daily.bind({"log": "x"}, None)
    with pytest.raises(PipelineError, match=r"Partition 'mars' is not one of the declared "
                                            r"partitions \(eu, us, apac\)"):
        flows.regional.bind({"log": "x"}, "mars")
    with pytest.raises(PipelineError, match=r"Pipeline 'chain' is not partitioned; drop the "
                                            r"partition '2024-01-01'"):
        flows.chain.bind({"log": "x"}, "2024-01-01")
    assert flows.daily.bind({"log": "x"}, "2024-01-03")["partition"] == "2024-01-03"


def test_a_partitioned_pipeline_needs_a_partition_parameter() -> None:
    def no_partition(log: str) -> None:
        return None

    with pytest.raises(PipelineError, match=r"Pipeline 'no_partition' declares partitions, so its "
                                            r"function needs a 'partition' parameter"):
        pipeline(partitions=DailyPartitions("2024-01-01", "2024-01-02"))(no_partition)


@pytest.mark.parametrize("schedule", ["every day", "61 * * * *", "* * *", ""])
def test_a_bad_cron_schedule_is_refused(schedule: str) -> None:
    def nightly() -> None:
        return None

    with pytest.raises(PipelineError, match=re.escape(f"Schedule {schedule!r} of pipeline 'nightly' "
                                                      "is not a cron expression")):
        pipeline(schedule=schedule)(nightly)
    assert pipeline(schedule="0 3 * * *")(nightly).schedule == "0 3 * * *"


def test_bad_retry_settings_are_refused() -> None:
    def fit() -> None:
        return None

    with pytest.raises(PipelineError, match=r"Step 'fit': retries and backoff must be >= 0"):
        step(retries=-1)(fit)


def test_executors_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(make_executor("inline"), InlineExecutor)
    assert isinstance(make_executor("local", 2), LocalExecutor)
    with pytest.raises(PipelineError, match=r"Unknown executor 'dask'; choose .*inline"):
        make_executor("dask")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if not installed
    with pytest.raises(PipelineError, match=r"The Ray executor needs Ray: pip install 'mlwright\[ray\]'"):
        make_executor("ray")


def test_an_unknown_executor_is_refused_before_anything_runs(workspace: Workspace,
                                                            log: str) -> None:
    with pytest.raises(PipelineError, match=r"Unknown executor 'dask'; choose .*inline"):
        flows.chain.run(workspace=workspace, log=log, executor="dask")
    assert flows.ran(log) == []
    with workspace.db.session() as session:
        assert session.execute(select(PipelineRun)).first() is None
    flows.chain.run(workspace=workspace, log=log, executor="inline")
    with pytest.raises(PipelineError, match=r"Unknown executor 'dask'"):  # even when all is cached
        flows.chain.run(workspace=workspace, log=log, executor="dask")


def test_load_pipeline_by_reference(workspace: Workspace) -> None:
    assert load_pipeline(flows.chain.ref) is flows.chain
    with pytest.raises(PipelineError, match=r"has no 'nothing_here'"):
        load_pipeline(f"{flows.__name__}:nothing_here")
    with pytest.raises(PipelineError, match=r"is a function, not a pipeline"):
        load_pipeline(f"{flows.__name__}:mark")
    with pytest.raises(PipelineError, match=r"Cannot import module 'no_such_module_xyz'"):
        load_pipeline("no_such_module_xyz:train")
    with pytest.raises(MlwrightError, match=r"No pipeline named 'never_ran'"):
        load_pipeline("never_ran", workspace)
