"""`mlwright pipeline ...` and `mlwright runs ...`, through the real entry point, on a
pipeline defined in a file (the `file.py:function` reference users type)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

FLOW = '''
from pathlib import Path

from mlwright.pipelines import StaticPartitions, log_metric, pipeline, step


@step
def numbers(n: int) -> list:
    return list(range(n))


@step
def scaled(values: list, factor: float) -> list:
    return [v * factor for v in values]


@step
def total(values: list, gate: str) -> dict:
    if Path(gate).exists():
        raise RuntimeError("the gate file is there")
    log_metric("total", sum(values))
    return {"total": sum(values)}


@pipeline(schedule="0 3 * * *")
def flow(n: int = 5, factor: float = 2.0, gate: str = "/nonexistent/gate"):
    return total(scaled(numbers(n), factor=factor), gate=gate)


@step
def region_size(region: str) -> dict:
    return {"region": region, "size": len(region)}


@pipeline(partitions=StaticPartitions(("eu", "us", "apac")))
def regions(partition: str):
    return region_size(partition)


not_a_pipeline = 42
'''


Cli = Callable[..., Any]


@pytest.fixture
def cli(run_cli: Cli, tmp_path: Path) -> Cli:
    assert run_cli("init", "ws").code == 0
    (tmp_path / "flow.py").write_text(FLOW)
    return run_cli


def test_run_then_rerun_then_change_one_parameter(cli: Cli) -> None:
    first = cli("-w", "ws", "pipeline", "run", "flow.py:flow", "--json")
    assert first.code == 0, first.err
    data = first.json()
    assert isinstance(data, dict)
    assert data["summary"] == "3 steps: 3 ran, 0 cached"
    again = cli("-w", "ws", "pipeline", "run", "flow", "--json").json()  # by name now
    assert isinstance(again, dict)
    assert again["summary"] == "3 steps: 0 ran, 3 cached (nothing to do)"
    changed = cli("-w", "ws", "pipeline", "run", "flow", "-p", "factor=3", "--json").json()
    assert isinstance(changed, dict)
    assert [s["status"] for s in changed["steps"]] == ["cached", "succeeded", "succeeded"]
    people = cli("-w", "ws", "pipeline", "run", "flow", "-p", "factor=3")
    assert people.code == 0
    assert "nothing to do" in people.out


@pytest.mark.parametrize(("args", "message"), [
    (["-p", "n=abc"], "Parameter 'n' of pipeline 'flow' must be int"),
    (["-p", "colour=red"], "Pipeline 'flow' has no parameter 'colour'"),
    (["-p", "novalue"], "is not KEY=VALUE"),
    (["--executor", "threads"], "Unknown executor 'threads'"),
    (["--partition", "eu"], "Pipeline 'flow' is not partitioned"),
])
def test_bad_run_arguments_are_one_line_errors(cli: Cli, args: list[str], message: str) -> None:
    result = cli("-w", "ws", "pipeline", "run", "flow.py:flow", *args)
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) <= 2  # one message (rich may wrap it once)


@pytest.mark.parametrize(("ref", "message"), [
    ("missing.py:flow", "Pipeline file missing.py does not exist"),
    ("flow.py:not_a_pipeline", "not a pipeline"),
    ("flow.py:nothing_here", "has no 'nothing_here'"),
    ("never_ran", "No pipeline named 'never_ran'"),
    ("no_such_module_xyz:flow", "Cannot import module 'no_such_module_xyz'"),
])
def test_unknown_pipelines_are_one_line_errors(cli: Cli, ref: str, message: str) -> None:
    result = cli("-w", "ws", "pipeline", "run", ref)
    assert result.code == 2
    assert message in " ".join(result.err.split())


def test_a_failing_step_exits_1_and_resume_continues_from_it(cli: Cli, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.write_text("closed")
    failed = cli("-w", "ws", "pipeline", "run", "flow.py:flow", "-p", f"gate={gate}")
    assert failed.code == 1
    err = " ".join(failed.err.split())
    assert "Step 'total' failed: RuntimeError: the gate file is there" in err
    assert "mlwright pipeline resume" in err
    run_id = err.split("mlwright pipeline resume ")[1].split("`")[0]
    gate.unlink()
    resumed = cli("-w", "ws", "pipeline", "resume", run_id[:8], "--json")
    assert resumed.code == 0, resumed.err
    data = resumed.json()
    assert isinstance(data, dict)
    assert [s["status"] for s in data["steps"]] == ["cached", "cached", "succeeded"]
    shown = cli("-w", "ws", "runs", "show", run_id[:8], "--json").json()
    assert isinstance(shown, dict)
    assert shown["status"] == "failed"
    assert [s["status"] for s in shown["pipeline"]["steps"]] == ["succeeded", "succeeded", "failed"]
    logs = cli("-w", "ws", "runs", "show", run_id, "--logs")
    assert "RuntimeError" in logs.out


def test_register_schedule_list_and_show(cli: Cli) -> None:
    registered = cli("-w", "ws", "pipeline", "register", "flow.py:flow", "--json").json()
    assert isinstance(registered, dict)
    assert registered["schedule"] == "0 3 * * *"
    assert registered["next_run"] is not None
    assert cli("-w", "ws", "pipeline", "schedule", "flow", "*/5 * * * *").code == 0
    bad = cli("-w", "ws", "pipeline", "schedule", "flow", "every day")
    assert bad.code == 2
    assert "not a cron expression" in bad.err
    listed = cli("-w", "ws", "pipeline", "list", "--json").json()
    assert isinstance(listed, list)
    assert [(p["name"], p["schedule"]) for p in listed] == [("flow", "*/5 * * * *")]
    cli("-w", "ws", "pipeline", "run", "flow")  # a declared schedule survives a run
    assert cli("-w", "ws", "pipeline", "show", "flow", "--json").json()["schedule"] == "*/5 * * * *"  # type: ignore[index]
    cleared = cli("-w", "ws", "pipeline", "schedule", "flow", "--clear", "--json").json()
    assert isinstance(cleared, dict)
    assert cleared["schedule"] is None
    assert cli("-w", "ws", "pipeline", "schedule", "flow").code == 2  # neither cron nor --clear
    assert cli("-w", "ws", "pipeline", "show", "nope").code == 2
    people = cli("-w", "ws", "pipeline", "list")
    assert "flow" in people.out


def test_backfill_runs_missing_partitions_only(cli: Cli) -> None:
    first = cli("-w", "ws", "pipeline", "backfill", "flow.py:regions", "--to", "us", "--json")
    assert first.code == 0, first.err
    data = first.json()
    assert isinstance(data, dict)
    assert sorted(data["succeeded"]) == ["eu", "us"]
    second = cli("-w", "ws", "pipeline", "backfill", "regions", "--json").json()
    assert isinstance(second, dict)
    assert (second["already_done"], sorted(second["succeeded"])) == (["eu", "us"], ["apac"])
    bad = cli("-w", "ws", "pipeline", "backfill", "regions", "--from", "mars")
    assert bad.code == 2
    assert "'mars' is not one of the declared partitions" in bad.err
    flat = cli("-w", "ws", "pipeline", "backfill", "flow.py:flow")
    assert flat.code == 2
    assert "is not partitioned" in flat.err


def test_runs_list_show_compare_and_metric(cli: Cli) -> None:
    cli("-w", "ws", "pipeline", "run", "flow.py:flow", "--executor", "inline")
    cli("-w", "ws", "pipeline", "run", "flow", "-p", "n=7", "--executor", "inline")
    runs = cli("-w", "ws", "runs", "list", "--json").json()
    assert isinstance(runs, list)
    assert [r["params"]["n"] for r in runs] == [7, 5]
    assert [r["metrics"]["total"] for r in runs] == [42.0, 20.0]
    newest, oldest = runs[0]["id"], runs[1]["id"]
    compared = cli("-w", "ws", "runs", "compare", newest[:6], oldest[:6], "--json").json()
    assert isinstance(compared, dict)
    assert compared["differing_params"] == ["n"]
    assert compared["metrics"]["total"] == [42.0, 20.0]
    points = cli("-w", "ws", "runs", "metric", newest, "total", "--json").json()
    assert isinstance(points, list)
    assert [(p["step"], p["value"]) for p in points] == [(0, 42.0)]
    shown = cli("-w", "ws", "runs", "show", newest)
    assert "total" in shown.out and "Parameters" in shown.out
    table = cli("-w", "ws", "runs", "compare", newest, oldest)
    assert "≠" in table.out
    assert cli("-w", "ws", "runs", "list").code == 0
    assert cli("-w", "ws", "runs", "list", "--experiment", "nothing", "--json").json() == []
    unknown = cli("-w", "ws", "runs", "show", "ffffffff")
    assert unknown.code == 2
    assert "No run 'ffffffff'" in unknown.err
    missing = cli("-w", "ws", "runs", "metric", newest, "accuracy")
    assert missing.code == 2
    assert "has no metric 'accuracy' (it has: total)" in missing.err
    assert cli("-w", "ws", "runs", "compare", newest).code == 2


def test_runs_artifact_writes_the_file_or_stdout(cli: Cli, tmp_path: Path) -> None:
    from mlwright.tracking import start_run

    with start_run("by-hand", workspace=str(tmp_path / "ws")) as run:
        run.log_artifact(b"col,a\n1,2\n", name="sample.csv")
    target = tmp_path / "out" / "sample.csv"
    target.parent.mkdir()
    wrote = cli("-w", "ws", "runs", "artifact", run.id[:8], "sample.csv", "-o", str(target))
    assert wrote.code == 0, wrote.err
    assert target.read_bytes() == b"col,a\n1,2\n"
    assert not list(target.parent.glob("*.partial"))
    missing = cli("-w", "ws", "runs", "artifact", run.id, "nope.csv")
    assert missing.code == 2
    assert "has no artifact 'nope.csv'" in missing.err
    nowhere = cli("-w", "ws", "runs", "artifact", run.id, "sample.csv", "-o",
                  str(tmp_path / "no" / "such" / "dir" / "x.csv"))
    assert nowhere.code == 2
    assert "Cannot write artifact 'sample.csv'" in nowhere.err
