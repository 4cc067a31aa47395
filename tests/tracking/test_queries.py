"""Reading runs back: by id or prefix, lists, metric series, comparisons."""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlwright.errors import NotFoundError, TrackingError
from mlwright.store import Run as RunRow
from mlwright.tracking import (
    compare_runs,
    get_run,
    list_runs,
    metric_history,
    resolve_run_id,
    start_run,
)
from mlwright.workspace import Workspace


def test_compare_runs_lines_up_params_and_metrics(workspace: Workspace) -> None:
    with start_run("a", params={"lr": 0.1, "depth": 3, "model": "lgbm"}, workspace=workspace) as a:
        a.log_metric("auc", 0.8)
        a.log_metric("auc", 0.85)
    with start_run("b", params={"lr": 0.2, "model": "lgbm"}, workspace=workspace) as b:
        b.log_metric("loss", 0.3)
    comparison = compare_runs([a.id, b.id[:8]], workspace=workspace)
    assert [r.id for r in comparison.runs] == [a.id, b.id]
    assert comparison.params == {"depth": [3, None], "lr": [0.1, 0.2], "model": ["lgbm", "lgbm"]}
    assert comparison.differing_params == ["depth", "lr"]
    assert comparison.metrics == {"auc": [0.85, None], "loss": [None, 0.3]}
    data = comparison.to_dict()
    assert (data["differing_params"], data["metrics"]["auc"]) == (["depth", "lr"], [0.85, None])
    with pytest.raises(TrackingError, match=r"Comparing needs at least two runs; got 1"):
        compare_runs([a.id], workspace=workspace)


def add_run(workspace: Workspace, run_id: str) -> None:
    with workspace.db.session() as session:
        session.add(RunRow(id=run_id, experiment="ids", name=run_id[:8], kind="manual",
                           status="succeeded", environment={}, code_version={},
                           created_by="test"))


def test_a_run_is_found_by_a_unique_prefix_of_its_id(workspace: Workspace) -> None:
    first, second = "abcd1" + uuid.uuid4().hex[5:], "abcd2" + uuid.uuid4().hex[5:]
    add_run(workspace, first)
    add_run(workspace, second)
    assert get_run("abcd1", workspace=workspace).id == first
    assert get_run("ABCD2", workspace=workspace).id == second  # ids are lower-case hex
    assert resolve_run_id(workspace, f" {first} ") == first
    with pytest.raises(TrackingError, match=r"Run id prefix 'abcd' matches several runs; give more"):
        get_run("abcd", workspace=workspace)
    with pytest.raises(NotFoundError, match=r"No run 'abc' in this workspace"):  # too short
        get_run("abc", workspace=workspace)
    with pytest.raises(NotFoundError, match=r"No run 'ffff' in this workspace"):
        get_run("ffff", workspace=workspace)
    with pytest.raises(NotFoundError, match=r"No run 'nothex!'"):
        metric_history("nothex!", "loss", workspace=workspace)


def test_list_runs_newest_first_with_filters(workspace: Workspace) -> None:
    ids, runs = [], []
    for index, experiment in enumerate(["x", "y", "x"]):
        run = start_run(f"r{index}", experiment=experiment, params={"i": index},
                        workspace=workspace)
        run.log_metric("m", index)
        ids.append(run.id)
        runs.append(run)
        if index == 1:
            run.end("failed", error="no")
    listed = list_runs(workspace=workspace)
    assert {r.id for r in listed} == set(ids)
    assert [r.params["i"] for r in list_runs(experiment="x", workspace=workspace)] == [2, 0]
    assert [r.metrics for r in list_runs(experiment="x", workspace=workspace)] == [{"m": 2.0},
                                                                                   {"m": 0.0}]
    assert [r.id for r in list_runs(status="failed", workspace=workspace)] == [ids[1]]
    assert [r.id for r in list_runs(status="running", workspace=workspace, limit=1)] == [ids[2]]
    assert list_runs(experiment="none", workspace=workspace) == []
    assert listed[0].environment == {}  # lists leave the environment out
    for run_id in (ids[0], ids[2]):
        assert get_run(run_id, workspace=workspace).status == "running"
    for open_run in runs:
        open_run.end()


def test_metric_history_of_a_missing_series_names_the_ones_there(workspace: Workspace) -> None:
    with start_run(workspace=workspace) as run:
        run.log_metric("loss", 1.0)
        run.log_metric("auc", 0.5)
    with pytest.raises(NotFoundError, match=rf"Run {run.id} has no metric 'acc' \(it has: auc, loss\)"):
        metric_history(run.id, "acc", workspace=workspace)


KEYS = st.sampled_from(["loss", "auc", "lr"])
POINTS = st.lists(st.tuples(KEYS, st.floats(allow_nan=True, allow_infinity=True, width=64),
                            st.none() | st.integers(0, 6)), max_size=25)


def expected_history(points: list[tuple[str, float, int | None]]) -> dict[str, list[tuple[int, float]]]:
    """The plain-Python twin: steps count up per series from the highest one seen."""
    last: dict[str, int] = {}
    history: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for key, value, step in points:
        at = last.get(key, -1) + 1 if step is None else step
        last[key] = max(at, last.get(key, -1))
        history[key].append((at, value))
    return {k: sorted(v, key=lambda point: point[0]) for k, v in history.items()}  # stable


def same(left: list[tuple[int, float]], right: list[tuple[int, float]]) -> bool:
    return len(left) == len(right) and all(
        a_step == b_step and (a == b or (math.isnan(a) and math.isnan(b)))
        for (a_step, a), (b_step, b) in zip(left, right, strict=True))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(points=POINTS)
def test_metric_history_is_exactly_what_was_logged(workspace: Workspace,
                                                   points: list[Any]) -> None:
    with start_run(workspace=workspace) as run:
        for key, value, step in points:
            run.log_metric(key, value, step=step)
    expected = expected_history(points)
    for key in ("loss", "auc", "lr"):
        if key not in expected:
            with pytest.raises(NotFoundError):
                metric_history(run.id, key, workspace=workspace)
            continue
        got = [(p.step, p.value) for p in metric_history(run.id, key, workspace=workspace)]
        assert same(got, expected[key])
    latest = get_run(run.id, workspace=workspace).metrics
    assert sorted(latest) == sorted(expected)
    for key, history in expected.items():
        top = max(step for step, _ in history)
        assert same([(top, latest[key])], [[p for p in history if p[0] == top][-1]])
