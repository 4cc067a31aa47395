"""`mlwright pipeline ...`: run, resume, backfill, register, schedule, list, show."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mlwright.cli.output import console, err_console, print_json, short
from mlwright.cli.state import state
from mlwright.errors import PipelineError
from mlwright.pipelines import (
    PipelineRunResult,
    StepFailedError,
    StepRecord,
    get_pipeline,
    get_pipeline_run,
    list_pipelines,
    load_pipeline,
    pipeline_runs,
    resume,
    set_schedule,
)

pipeline_app = typer.Typer(help="Pipelines: cached steps, resumable runs, partitions, "
                                "schedules.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ParamOption = Annotated[list[str] | None, typer.Option(
    "--param", "-p", help="A pipeline parameter, KEY=VALUE (VALUE read as JSON when it parses: "
                          "3, 0.1, true, [1,2]; else as text). Repeat for more.")]
ExecutorOption = Annotated[str | None, typer.Option(
    help="Where steps run: local (a process pool, default), inline (this process) or ray.")]
_STYLE = {"succeeded": "green", "cached": "cyan", "failed": "red", "skipped": "dim"}


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``["lr=0.1", "name=x"]`` → ``{"lr": 0.1, "name": "x"}``."""
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise PipelineError(f"--param {item!r} is not KEY=VALUE (e.g. --param min_delay=15).")
        try:
            params[key.strip()] = json.loads(text)
        except ValueError:
            params[key.strip()] = text
    return params


def _progress(json_out: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err_console, transient=True,
                    disable=json_out or not err_console.is_terminal)


def steps_table(title: str, steps: list[StepRecord]) -> Table:
    table = Table(title=title)
    for column in ("step", "status", "attempts", "seconds", "output", "error"):
        table.add_column(column, overflow="fold")
    for s in steps:
        style = _STYLE.get(s.status, "")
        seconds = "" if s.duration_s is None else f"{s.duration_s:.3f}"
        output = f"{s.output_kind} {s.output_digest[:10]}" if s.output_digest else ""
        table.add_row(escape(s.node), f"[{style}]{s.status}[/]", str(s.attempts or ""), seconds,
                      output, escape(s.error or ""))
    return table


def _print_result(result: PipelineRunResult, json_out: bool) -> None:
    if json_out:
        print_json(result.to_dict())
        return
    where = f" [{result.partition}]" if result.partition else ""
    console.print(steps_table(f"Pipeline '{result.pipeline}'{where} run {result.run_id[:12]}",
                               result.steps))
    console.print(f"{result.summary()} · {result.duration_s:.2f} s · run id {result.run_id}")


def _run_with_progress(json_out: bool, total: int | None, label: str, call: Any) -> Any:
    with _progress(json_out) as progress:
        task = progress.add_task(label, total=total)

        def on_step(record: StepRecord) -> None:
            progress.update(task, advance=1, description=f"{label}: {record.node} {record.status}")

        return call(on_step)


def _finish(call: Any, json_out: bool) -> None:
    try:
        result = call()
    except StepFailedError as exc:
        _print_result(exc.result, json_out)
        err_console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None
    _print_result(result, json_out)


@pipeline_app.command("run")
def run(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="module:function, file.py:function, or the name of "
                                            "a pipeline that ran before.")],
    param: ParamOption = None,
    partition: Annotated[str | None, typer.Option(help="The partition key to run.")] = None,
    executor: ExecutorOption = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Run a pipeline: steps whose code, inputs and parameters are unchanged come from the
    cache; exit 1 if a step fails (then `pipeline resume RUN_ID`)."""
    workspace = state(ctx).open()
    pipe = load_pipeline(ref, workspace)
    params = parse_params(param)
    _finish(lambda: _run_with_progress(
        json_out, None, pipe.name,
        lambda on_step: pipe.run(workspace=workspace, partition=partition, executor=executor,
                                 max_workers=workers, on_step=on_step, **params)), json_out)
    workspace.close()


@pipeline_app.command("resume")
def resume_command(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The failed run's id (or a unique prefix).")],
    executor: ExecutorOption = None,
    json_out: JsonFlag = False,
) -> None:
    """Run a failed run again with the same parameters: what succeeded comes from the cache."""
    workspace = state(ctx).open()
    full = get_pipeline_run(run_id, workspace=workspace).id
    _finish(lambda: _run_with_progress(
        json_out, None, f"resume {full[:8]}",
        lambda on_step: resume(full, workspace=workspace, executor=executor, on_step=on_step)),
        json_out)
    workspace.close()


@pipeline_app.command("backfill")
def backfill_command(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="A partitioned pipeline: name or module:function.")],
    start: Annotated[str | None, typer.Option("--from", help="First partition (default: the "
                                                              "first declared).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last partition (default: the last "
                                                          "declared).")] = None,
    param: ParamOption = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Partitions run at once "
                                                            "(default 2).")] = None,
    executor: Annotated[str, typer.Option(help="Where partitions run: local processes or "
                                               "ray.")] = "local",
    json_out: JsonFlag = False,
) -> None:
    """Run every partition in [--from, --to] without a successful run, in parallel; partitions
    done before are skipped, so running it twice does nothing the second time."""
    from mlwright.pipelines.backfill import backfill

    workspace = state(ctx).open()
    pipe = load_pipeline(ref, workspace)
    if pipe.partitions is None:
        raise PipelineError(f"Pipeline '{pipe.name}' is not partitioned; use `mlwright pipeline "
                            "run`.")
    total = len(pipe.partitions.keys(start, end))
    with _progress(json_out) as progress:
        task = progress.add_task(f"backfill {pipe.name}", total=total)

        def done(key: str, ok: bool) -> None:
            progress.update(task, advance=1, description=f"{pipe.name}: {key} "
                                                         f"{'ok' if ok else 'FAILED'}")

        result = backfill(pipe, start, end, params=parse_params(param), workspace=workspace,
                          workers=workers, executor=executor, progress=done)
    workspace.close()
    if json_out:
        print_json(result.to_dict())
    else:
        console.print(f"Backfill of '{pipe.name}': {len(result.requested)} partitions requested, "
                      f"{len(result.already_done)} already done, {len(result.succeeded)} ran, "
                      f"{len(result.failed)} failed.")
        for key, error in sorted(result.failed.items()):
            console.print(f"  [red]{escape(key)}[/]: {escape(error)}")
    if result.failed:
        raise typer.Exit(1)


@pipeline_app.command("register")
def register(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="module:function or file.py:function.")],
    schedule: Annotated[str | None, typer.Option(help="Cron expression, e.g. '0 3 * * *'.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Record a pipeline (and its schedule) without running it."""
    workspace = state(ctx).open()
    info = load_pipeline(ref, workspace).register(workspace=workspace, schedule=schedule)
    workspace.close()
    if json_out:
        print_json(info.to_dict())
        return
    when = f"; schedule '{info.schedule}', next run {info.next_run:%Y-%m-%d %H:%M} UTC" \
        if info.schedule and info.next_run else ""
    console.print(f"Registered pipeline [bold]{info.name}[/] ({escape(info.ref)}){when}")


@pipeline_app.command("schedule")
def schedule_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A registered pipeline.")],
    cron: Annotated[str | None, typer.Argument(help="Cron expression, e.g. '0 3 * * *'.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the schedule.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Declare (or --clear) the cron schedule the control plane runs the pipeline on."""
    if (cron is None) == (not clear):
        raise PipelineError("Give a cron expression (e.g. '0 3 * * *') or --clear, not both "
                            "nor neither.")
    workspace = state(ctx).open()
    info = set_schedule(name, None if clear else cron, workspace=workspace)
    workspace.close()
    if json_out:
        print_json(info.to_dict())
    elif info.schedule and info.next_run:
        console.print(f"Pipeline [bold]{info.name}[/] runs on '{info.schedule}'; next "
                      f"{info.next_run:%Y-%m-%d %H:%M} UTC")
    else:
        console.print(f"Pipeline [bold]{info.name}[/] has no schedule.")


@pipeline_app.command("list")
def list_command(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Registered pipelines with their schedules and newest runs."""
    workspace = state(ctx).open()
    infos = list_pipelines(workspace=workspace)
    workspace.close()
    if json_out:
        print_json([i.to_dict() for i in infos])
        return
    if not infos:
        console.print("No pipelines yet; run one with `mlwright pipeline run module:function`.")
        return
    table = Table(title="Pipelines")
    for column in ("name", "ref", "schedule", "next run (UTC)", "partitions", "last run"):
        table.add_column(column, overflow="fold")
    for i in infos:
        last = i.last_run
        nxt = i.next_run
        table.add_row(i.name, escape(i.ref), i.schedule or "",
                      f"{nxt:%Y-%m-%d %H:%M}" if nxt else "",
                      (i.partitions or {}).get("kind", ""),
                      f"{last['status']} {last['started_at'][:16].replace('T', ' ')}" if last else "")
    console.print(table)


@pipeline_app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A registered pipeline.")],
    limit: Annotated[int, typer.Option(min=1, help="Runs to show.")] = 10,
    json_out: JsonFlag = False,
) -> None:
    """A pipeline's definition and its newest runs."""
    workspace = state(ctx).open()
    info = get_pipeline(name, workspace=workspace)
    runs = pipeline_runs(name, limit=limit, workspace=workspace)
    workspace.close()
    if json_out:
        print_json({**info.to_dict(), "runs": runs})
        return
    console.print(f"[bold]{info.name}[/]  {escape(info.ref)} · code {info.code_hash[:12]}")
    if info.schedule:
        console.print(f"  schedule   {info.schedule} (next {info.next_run:%Y-%m-%d %H:%M} UTC)")
    if info.partitions:
        console.print(f"  partitions {info.partitions}")
    table = Table(title="Runs (newest first)")
    for column in ("run", "status", "partition", "started (UTC)", "error"):
        table.add_column(column, overflow="fold")
    for r in runs:
        table.add_row(r["id"][:12], f"[{_STYLE.get(r['status'], '')}]{r['status']}[/]",
                      r["partition"] or "", r["started_at"][:19].replace("T", " "),
                      short(r["error"], 60))
    console.print(table)
