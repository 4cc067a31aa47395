"""Logging to a run: parameters, metric series, tags, artifacts, and how a run ends."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mlwright.errors import NotFoundError, TrackingError
from mlwright.store import RunMetric
from mlwright.tracking import Run, get_run, load_artifact, metric_history, start_run
from mlwright.workspace import Workspace


def series(run_id: str, key: str, workspace: Workspace) -> list[tuple[int, float]]:
    return [(p.step, p.value) for p in metric_history(run_id, key, workspace=workspace)]


def test_parameters_come_back_with_their_types(workspace: Workspace, tmp_path: Path) -> None:
    params = {"lr": 0.05, "depth": 3, "use_gpu": False, "model": "lgbm", "seed": None,
              "layers": [64, 32], "optimizer": {"name": "adam", "beta": 0.9}}
    with start_run("typed", experiment="delays", params=params, workspace=workspace) as run:
        run.log_param("where", tmp_path)  # not JSON: kept as its text
    info = get_run(run.id, workspace=workspace)
    assert info.params == {**params, "where": str(tmp_path)}
    assert type(info.params["depth"]) is int and type(info.params["lr"]) is float
    assert info.params["use_gpu"] is False and info.params["seed"] is None
    assert (info.experiment, info.name, info.kind, info.status) == ("delays", "typed", "manual",
                                                                    "succeeded")


def test_a_parameter_may_be_logged_again_only_with_the_same_value(workspace: Workspace) -> None:
    with start_run(params={"lr": 0.1}, workspace=workspace) as run:
        run.log_param("lr", 0.1)
        run.log_params({"lr": 0.1, "depth": 4})
        with pytest.raises(TrackingError, match=rf"Parameter 'lr' of run {run.id} is already 0.1; "
                                                r"got 0.2\. Parameters are fixed once logged"):
            run.log_param("lr", 0.2)
        with pytest.raises(TrackingError, match=r"Parameter 'depth' .* is already 4; got '4'"):
            run.log_param("depth", "4")
    assert get_run(run.id, workspace=workspace).params == {"depth": 4, "lr": 0.1}


def test_another_writer_of_the_same_run_is_checked_against_what_is_stored(
        workspace: Workspace) -> None:
    with start_run(params={"lr": 0.1}, workspace=workspace) as run:
        other = Run(workspace, run_id=run.id, experiment=run.experiment, name=run.name,
                    owns_workspace=False)  # e.g. a second process writing to the same run
        other.log_params({"lr": 0.1, "depth": 2})  # the same value: accepted, depth added
        with pytest.raises(TrackingError, match=r"Parameter 'lr' .* is already 0.1; got 0.3"):
            other.log_param("lr", 0.3)
    assert get_run(run.id, workspace=workspace).params == {"depth": 2, "lr": 0.1}


def test_metric_steps_count_up_per_series(workspace: Workspace) -> None:
    with start_run(workspace=workspace) as run:
        for loss in (0.9, 0.5, 0.3):
            run.log_metric("loss", loss)
        run.log_metric("auc", 0.7)
        run.log_metric("loss", 0.25, step=10)
        run.log_metric("loss", 0.2)  # the step after the highest one so far
        run.log_metric("loss", 0.8, step=1)  # a late point for an early step
        run.log_metrics({"auc": 0.8, "f1": 0.6})
        run.log_metrics({"auc": 0.85, "f1": 0.65}, step=5)
    assert series(run.id, "loss", workspace) == [(0, 0.9), (1, 0.5), (1, 0.8), (2, 0.3),
                                                  (10, 0.25), (11, 0.2)]
    assert series(run.id, "auc", workspace) == [(0, 0.7), (1, 0.8), (5, 0.85)]
    assert series(run.id, "f1", workspace) == [(0, 0.6), (5, 0.65)]
    assert get_run(run.id, workspace=workspace).metrics == {"auc": 0.85, "f1": 0.65, "loss": 0.2}


def test_non_finite_metrics_round_trip(workspace: Workspace) -> None:
    with start_run(workspace=workspace) as run:
        run.log_metric("loss", float("nan"))
        run.log_metric("loss", 1.5)
        run.log_metric("loss", float("nan"))
        run.log_metric("grad", float("inf"))
        run.log_metric("grad", float("-inf"))
    values = [p.value for p in metric_history(run.id, "loss", workspace=workspace)]
    assert math.isnan(values[0]) and values[1] == 1.5 and math.isnan(values[2])
    assert [p.value for p in metric_history(run.id, "grad", workspace=workspace)] == \
        [math.inf, -math.inf]
    info = get_run(run.id, workspace=workspace)
    assert math.isnan(info.metrics["loss"]) and info.metrics["grad"] == -math.inf
    assert info.to_dict()["metrics"] == {"grad": "-inf", "loss": "nan"}
    with workspace.db.session() as session:  # NaN is stored as NULL on every database
        nulls = session.execute(select(func.count()).select_from(RunMetric).where(
            RunMetric.run_id == run.id, RunMetric.value.is_(None))).scalar_one()
    assert nulls == 2


def test_bad_metrics_are_refused(workspace: Workspace) -> None:
    with start_run(workspace=workspace) as run:
        with pytest.raises(TrackingError, match=rf"Metric 'auc' of run {run.id} must be a number; "
                                                r"got 'high'"):
            run.log_metric("auc", "high")  # type: ignore[arg-type]
        with pytest.raises(TrackingError, match=r"must be a number; got None"):
            run.log_metric("auc", None)  # type: ignore[arg-type]
        with pytest.raises(TrackingError, match=r"The metric name of run .* must be a non-empty string"):
            run.log_metric("", 1.0)
        with pytest.raises(TrackingError, match=r"The metric name .* got '   '"):
            run.log_metric("   ", 1.0)
        with pytest.raises(TrackingError, match=r"at most 250 characters"):
            run.log_metric("x" * 251, 1.0)
        with pytest.raises(TrackingError, match=r"The step of metric 'auc' .* must be an integer "
                                                r">= 0; got -1"):
            run.log_metric("auc", 1.0, step=-1)
        with pytest.raises(TrackingError, match=r"must be an integer >= 0; got 1.5"):
            run.log_metric("auc", 1.0, step=1.5)  # type: ignore[arg-type]
        with pytest.raises(TrackingError, match=r"must be an integer >= 0; got True"):
            run.log_metric("auc", 1.0, step=True)
        with pytest.raises(TrackingError, match=r"The parameter name"):
            run.log_param("", 1)
        run.log_metric("auc", 0.5)
    assert series(run.id, "auc", workspace) == [(0, 0.5)]  # nothing refused was half-written


def test_buffered_points_are_visible_before_the_run_ends(workspace: Workspace) -> None:
    run = start_run(workspace=workspace)
    run.log_metric("loss", 0.5, timestamp=1_700_000_000.25)
    run.log_metric("loss", 0.4)
    run.log_metric("acc", 0.9)
    assert get_run(run.id, workspace=workspace).metrics == {"acc": 0.9, "loss": 0.4}
    (first, second) = metric_history(run.id, "loss", workspace=workspace)
    assert (first.step, first.value, first.timestamp) == (0, 0.5, 1_700_000_000.25)
    assert second.step == 1
    assert get_run(run.id, workspace=workspace).status == "running"
    run.log_metric("loss", 0.3)
    run.flush()
    run.end()
    assert series(run.id, "loss", workspace) == [(0, 0.5), (1, 0.4), (2, 0.3)]


def test_a_with_block_ends_the_run_failed_on_an_exception(workspace: Workspace) -> None:
    with pytest.raises(ValueError, match="diverged"), \
            start_run("boom", workspace=workspace) as run:
        run.log_metric("loss", 1.0)
        raise ValueError("loss diverged")
    info = get_run(run.id, workspace=workspace)
    assert (info.status, info.error) == ("failed", "ValueError: loss diverged")
    assert info.metrics == {"loss": 1.0}  # written before the run closed
    assert info.ended_at is not None and info.duration_s is not None and info.duration_s >= 0

    with start_run("fine", workspace=workspace) as ok:
        pass
    assert (get_run(ok.id, workspace=workspace).status, ok.status) == ("succeeded", "succeeded")


def test_an_ended_run_refuses_more_logging(workspace: Workspace, tmp_path: Path) -> None:
    run = start_run(workspace=workspace)
    run.end()
    run.end("failed")  # a second end changes nothing
    assert get_run(run.id, workspace=workspace).status == "succeeded"
    for log in (lambda: run.log_metric("loss", 1.0), lambda: run.log_param("lr", 1),
                lambda: run.log_artifact(b"x", name="x")):
        with pytest.raises(TrackingError, match=rf"Run {run.id} has ended \(succeeded\); start a "
                                                r"new run"):
            log()


def test_tags_can_change(workspace: Workspace) -> None:
    with start_run(tags={"stage": "dev", "team": "risk"}, workspace=workspace) as run:
        run.set_tag("stage", "staging")
        run.set_tags({"stage": "prod", "ticket": 123})
        run.set_tags({})
    assert get_run(run.id, workspace=workspace).tags == {"stage": "prod", "team": "risk",
                                                         "ticket": "123"}


def test_artifacts_round_trip_from_bytes_and_from_a_path(workspace: Workspace,
                                                         tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    report.write_text("<h1>AUC 0.9</h1>", encoding="utf-8")
    with start_run(workspace=workspace) as run:
        digest = run.log_artifact(b"\x00weights", name="model.bin")
        run.log_artifact(report)
        run.log_artifact(report, name="copy.html")
        run.log_artifact(b"v2", name="notes.txt")
        run.log_artifact(b"v3", name="notes.txt")  # the newest wins
        with pytest.raises(TrackingError, match=rf"Cannot attach .*missing\.csv to run {run.id}: "
                                                r"No such file or directory"):
            run.log_artifact(tmp_path / "missing.csv")
        with pytest.raises(TrackingError, match=r"Artifact bytes of run .* need a name="):
            run.log_artifact(b"data")
    assert digest == hashlib.sha256(b"\x00weights").hexdigest()
    assert load_artifact(run.id, "model.bin", workspace=workspace) == b"\x00weights"
    assert load_artifact(run.id, "report.html", workspace=workspace) == report.read_bytes()
    assert load_artifact(run.id, "copy.html", workspace=workspace) == report.read_bytes()
    assert load_artifact(run.id, "notes.txt", workspace=workspace) == b"v3"
    info = get_run(run.id, workspace=workspace)
    assert sorted(info.artifacts) == ["copy.html", "model.bin", "notes.txt", "report.html"]
    assert info.artifacts["model.bin"] == {"digest": digest, "size": 8}
    with pytest.raises(NotFoundError, match=rf"Run {run.id} has no artifact 'missing.csv'"):
        load_artifact(run.id, "missing.csv", workspace=workspace)


def test_a_bad_experiment_name_is_refused(workspace: Workspace) -> None:
    with pytest.raises(TrackingError, match=r"experiment name of run .* must be a non-empty"):
        start_run(experiment="", workspace=workspace)


def test_a_run_opened_by_folder_closes_its_workspace(workspace: Workspace) -> None:
    with start_run("by-path", workspace=workspace.root) as run:
        run.log_metric("x", 1.0)
        assert run.workspace is not workspace
    assert run.workspace._db is None  # disposed when the run ended
    assert get_run(run.id, workspace=workspace).metrics == {"x": 1.0}
