"""`mlwright runs ...`: list, show, compare, metric, artifact."""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mlwright.cli.output import (
    console,
    err_console,
    print_json,
    short,
    sparkline,
    write_whole,
)
from mlwright.cli.pipelines import steps_table
from mlwright.cli.state import state
from mlwright.errors import NotFoundError
from mlwright.pipelines import get_pipeline_run
from mlwright.tracking import (
    RunInfo,
    compare_runs,
    get_run,
    list_runs,
    load_artifact,
    metric_history,
)

runs_app = typer.Typer(help="Tracked runs: parameters, metrics, artifacts, environment, code.",
                       no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
_STYLE = {"succeeded": "green", "running": "yellow", "failed": "red"}
SHOWN = 4


def _status(status: str) -> str:
    return f"[{_STYLE.get(status, '')}]{status}[/]"


def _shape(values: list[float]) -> str:
    """A metric series as a one-line sparkline (value levels, not a histogram)."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return ""
    low, high = min(finite), max(finite)
    width = min(24, len(finite))
    chunk = -(-len(finite) // width)
    means = [sum(finite[i:i + chunk]) / len(finite[i:i + chunk])
             for i in range(0, len(finite), chunk)]
    levels = [1 + round(7 * (m - low) / (high - low)) if high > low else 4 for m in means]
    return sparkline(levels, width=len(levels))


def _pairs(values: dict[str, object]) -> str:
    """``key=value`` lines for a table cell, at most SHOWN of them."""
    lines = [f"{short(k, 18)}={short(v, 10)}" for k, v in list(values.items())[:SHOWN]]
    if len(values) > SHOWN:
        lines.append(f"(+{len(values) - SHOWN} more)")
    return "\n".join(lines)


@runs_app.command("list")
def list_command(
    ctx: typer.Context,
    experiment: Annotated[str | None, typer.Option(help="Only this experiment (a pipeline's "
                                                        "runs are under its name).")] = None,
    status: Annotated[str | None, typer.Option(help="running, succeeded or failed.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs.")] = 30,
    json_out: JsonFlag = False,
) -> None:
    """The newest runs first, with their parameters and latest metrics."""
    workspace = state(ctx).open()
    infos = list_runs(experiment=experiment, status=status, limit=limit, workspace=workspace)
    workspace.close()
    if json_out:
        print_json([i.to_dict(environment=False) for i in infos])
        return
    if not infos:
        console.print("No runs yet: run a pipeline, or use mlwright.tracking.start_run.")
        return
    # Only what tells the runs apart: parameters whose values differ among the listed runs.
    keys = sorted({k for i in infos for k in i.params})
    differing = [k for k in keys if len({repr(i.params.get(k)) for i in infos}) > 1]
    table = Table(title="Runs (newest first)")
    table.add_column("run", no_wrap=True, max_width=16, overflow="ellipsis")
    for column in ("status", "started", "s"):
        table.add_column(column, no_wrap=True)
    table.add_column("params that differ", overflow="fold", min_width=10, ratio=1)
    table.add_column("metrics", overflow="fold", min_width=14, ratio=2)
    for i in infos:
        seconds = "" if i.duration_s is None else f"{i.duration_s:.1f}"
        params = {k: i.params[k] for k in differing if k in i.params}
        table.add_row(f"{i.id[:8]}\n[dim]{short(i.name, 16)}[/]", _status(i.status),
                      f"{i.started_at:%m-%d %H:%M}", seconds, _pairs(params),
                      _pairs(dict(i.metrics)))
    console.print(table)


def _print_run(info: RunInfo) -> None:
    console.print(f"[bold]{escape(info.name)}[/] run {info.id} · experiment "
                  f"{escape(info.experiment)} · {info.kind} · {_status(info.status)} · by "
                  f"{escape(info.created_by)}")
    seconds = "" if info.duration_s is None else f" · {info.duration_s:.2f} s"
    console.print(f"  started {info.started_at:%Y-%m-%d %H:%M:%S} UTC{seconds}")
    if info.error:
        console.print(f"  [red]error[/] {escape(info.error)}")
    code = info.code_version
    if code.get("git"):
        dirty = f" [yellow]+ uncommitted changes (diff {code['diff_sha256'][:12]})[/]" \
            if code.get("dirty") else ""
        console.print(f"  code    {code.get('commit', '')[:12]} on {code.get('branch')} in "
                      f"{escape(code.get('repository', ''))}{dirty}")
    elif code:
        console.print(f"  code    {escape(str(code.get('path')))} (not in a git repository)")
    env = info.environment
    if env:
        console.print(f"  python  {env.get('python')} on {escape(str(env.get('platform')))} · "
                      f"{len(env.get('packages', {}))} packages recorded")


@runs_app.command("show")
def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="A run id or a unique prefix of one.")],
    logs: Annotated[bool, typer.Option(help="Print each step's captured log too.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Everything about one run; for a pipeline run, its steps too."""
    workspace = state(ctx).open()
    info = get_run(run_id, workspace=workspace)
    histories = {key: [p.value for p in metric_history(info.id, key, workspace=workspace)]
                 for key in info.metrics}
    steps = None
    if info.kind == "pipeline":
        try:
            steps = get_pipeline_run(info.id, workspace=workspace)
        except NotFoundError:  # the run failed before its pipeline record was written
            steps = None
    workspace.close()
    if json_out:
        data = info.to_dict()
        data["metric_points"] = {k: len(v) for k, v in histories.items()}
        if steps is not None:
            data["pipeline"] = steps.to_dict()
        print_json(data)
        return
    _print_run(info)
    if info.params:
        table = Table(title="Parameters")
        table.add_column("name")
        table.add_column("value", overflow="fold")
        for key, value in info.params.items():
            table.add_row(escape(key), escape(repr(value) if isinstance(value, str) else
                                              str(value)))
        console.print(table)
    if info.metrics:
        table = Table(title="Metrics")
        for column in ("name", "latest", "points", "min", "max", "series"):
            table.add_column(column)
        for key, value in info.metrics.items():
            series = histories[key]
            finite = [v for v in series if math.isfinite(v)]
            table.add_row(escape(key), short(value, digits=6), str(len(series)),
                          short(min(finite)) if finite else "", short(max(finite)) if finite else "",
                          _shape(series))
        console.print(table)
    if info.tags:
        console.print("  tags    " + escape(", ".join(f"{k}={v}" for k, v in info.tags.items())))
    for name, meta in info.artifacts.items():
        console.print(f"  artifact {escape(name)} ({meta['size']:,} bytes, sha256 "
                      f"{meta['digest'][:12]})")
    if steps is not None:
        console.print(steps_table("Steps", steps.steps))
        if logs:
            for s in steps.steps:
                if s.log:
                    console.rule(f"log of {escape(s.node)}")
                    console.print(escape(s.log), highlight=False)


@runs_app.command("compare")
def compare(
    ctx: typer.Context,
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids (or prefixes).")],
    all_params: Annotated[bool, typer.Option("--all", help="Show equal parameters too.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Runs side by side: the parameters that differ and every latest metric."""
    workspace = state(ctx).open()
    comparison = compare_runs(run_ids, workspace=workspace)
    workspace.close()
    if json_out:
        print_json(comparison.to_dict())
        return
    table = Table(title="Runs compared")
    table.add_column("")
    for r in comparison.runs:
        table.add_column(f"{escape(r.name)}\n{r.id[:8]}", overflow="fold")
    table.add_row("[bold]code[/]", *[escape(str(r.code_version.get("commit") or "")[:10]) +
                                     (" +dirty" if r.code_version.get("dirty") else "")
                                     for r in comparison.runs])
    differing = set(comparison.differing_params)
    for key, values in comparison.params.items():
        if key in differing or all_params:
            mark = "[yellow]≠[/] " if key in differing else ""
            table.add_row(f"{mark}{escape(key)}", *[short(v) for v in values])
    for key, metric_values in comparison.metrics.items():
        table.add_row(f"[bold]{escape(key)}[/]", *[short(v) for v in metric_values])
    console.print(table)
    equal = len(comparison.params) - len(differing)
    if equal and not all_params:
        console.print(f"  {equal} equal parameters not shown (--all shows them)")


@runs_app.command("metric")
def metric(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="A run id or a unique prefix of one.")],
    key: Annotated[str, typer.Argument(help="The metric's name.")],
    json_out: JsonFlag = False,
) -> None:
    """Every point of one metric series, with its shape."""
    workspace = state(ctx).open()
    points = metric_history(run_id, key, workspace=workspace)
    workspace.close()
    if json_out:
        print_json([p.to_dict() for p in points])
        return
    values = [p.value for p in points]
    console.print(f"[bold]{escape(key)}[/]: {len(points)} points {_shape(values)}")
    table = Table()
    for column in ("step", "value", "logged (UTC)"):
        table.add_column(column)
    shown = points if len(points) <= 40 else points[:20] + points[-20:]
    for index, p in enumerate(shown):
        if len(points) > 40 and index == 20:
            table.add_row("…", f"({len(points) - 40} more)", "")
        table.add_row(str(p.step), short(p.value, digits=8),
                      f"{datetime.fromtimestamp(p.timestamp, UTC):%Y-%m-%d %H:%M:%S}")
    console.print(table)


@runs_app.command("artifact")
def artifact(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="A run id or a unique prefix of one.")],
    name: Annotated[str, typer.Argument(help="The artifact's name (see `runs show`).")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write it to this file "
                                                "(default: standard output).")] = None,
) -> None:
    """Fetch an artifact of a run (its hash is verified on the way out)."""
    workspace = state(ctx).open()
    data = load_artifact(run_id, name, workspace=workspace)
    workspace.close()
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    write_whole(output, lambda target: target.write_bytes(data), f"artifact '{name}'")
    err_console.print(f"Wrote {len(data):,} bytes to {escape(str(output))}")
