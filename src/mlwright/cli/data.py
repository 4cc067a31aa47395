"""`mlwright data ...`: register, list, show, diff, validate, attach-contract."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from mlwright.cli.output import console, err_console, human_bytes, print_json, short, sparkline
from mlwright.cli.state import state
from mlwright.data.checks import attach_contract, validate_dataset
from mlwright.data.contracts import load_contract
from mlwright.data.datasets import (
    get_dataset_version,
    list_datasets,
    list_versions,
    register_dataset,
)
from mlwright.data.diff import diff_versions
from mlwright.data.report import ValidationReport

data_app = typer.Typer(help="Datasets: versions, profiles and data contracts.",
                       no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
STEPS = ("reading", "hashing", "profiling", "storing", "recording")


@data_app.command("register")
def register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    path: Annotated[str, typer.Argument(help="Parquet file, folder of Parquet files, or CSV.")],
    description: Annotated[str | None, typer.Option(help="What the dataset is.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Register a file as a new immutable dataset version (identical content: same version)."""
    workspace = state(ctx).open()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TimeElapsedColumn(), console=err_console, transient=True,
                  disable=json_out or not err_console.is_terminal) as progress:
        task = progress.add_task(f"registering {name}", total=len(STEPS))

        def step(phase: str) -> None:
            progress.update(task, completed=STEPS.index(phase), description=f"{name}: {phase}")

        info = register_dataset(name, path, workspace=workspace, description=description,
                                progress=step)
        progress.update(task, completed=len(STEPS))
    workspace.close()
    if json_out:
        print_json(info.to_dict(profile=False))
        return
    if info.created:
        console.print(f"Registered [bold]{info.ref}[/]: {info.num_rows:,} rows, "
                      f"{len(info.schema)} columns, {human_bytes(info.num_bytes)} "
                      f"(sha256 {info.content_hash[:12]})")
    else:
        console.print(f"Unchanged: identical content is already [bold]{info.ref}[/] "
                      f"(sha256 {info.content_hash[:12]})")


@data_app.command("list")
def list_command(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """List datasets with their latest version."""
    workspace = state(ctx).open()
    summaries = list_datasets(workspace=workspace)
    workspace.close()
    if json_out:
        print_json([s.to_dict() for s in summaries])
        return
    if not summaries:
        console.print("No datasets yet; register one with `mlwright data register NAME PATH`.")
        return
    table = Table(title="Datasets")
    for column in ("name", "versions", "latest", "rows", "updated (UTC)", "description"):
        table.add_column(column)
    for s in summaries:
        table.add_row(s.name, str(s.versions), f"@{s.latest}", f"{s.num_rows:,}",
                      s.updated_at.strftime("%Y-%m-%d %H:%M"), s.description or "")
    console.print(table)


def _profile_table(profile: dict[str, Any]) -> Table:
    table = Table(title="Profile")
    table.add_column("column", no_wrap=True)
    for column in ("type", "nulls", "min", "max", "mean"):
        table.add_column(column, overflow="fold")
    table.add_column("shape / top values", no_wrap=True, min_width=10, max_width=16,
                     overflow="ellipsis")
    for name, stats in profile["columns"].items():
        shape = ""
        if stats.get("histogram"):
            shape = sparkline(stats["histogram"]["counts"])
        elif stats.get("top_k"):
            shape = " ".join(short(t["value"], 8) for t in stats["top_k"][:3])
        table.add_row(escape(name), stats["type"], f"{stats['null_count']:,}",
                      short(stats.get("min"), 16), short(stats.get("max"), 16),
                      short(stats.get("mean"), 8, digits=4), shape)
    return table


@data_app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME@latest or NAME@N.")],
    json_out: JsonFlag = False,
) -> None:
    """Show a dataset version: hash, schema, statistics profile, and the other versions."""
    workspace = state(ctx).open()
    info = get_dataset_version(ref, workspace=workspace)
    versions = list_versions(info.name, workspace=workspace)
    workspace.close()
    if json_out:
        print_json({**info.to_dict(), "versions": [v.version for v in versions]})
        return
    console.print(f"[bold]{info.ref}[/]  {info.num_rows:,} rows · {len(info.schema)} columns · "
                  f"{human_bytes(info.num_bytes)} · by {info.created_by} at "
                  f"{info.created_at:%Y-%m-%d %H:%M} UTC")
    console.print(f"  content sha256 {info.content_hash}")
    console.print(f"  source         {info.source or '(in-memory table)'}")
    console.print(f"  versions       {', '.join(f'@{v.version}' for v in versions)}")
    console.print(_profile_table(info.profile))


@data_app.command("diff")
def diff(
    ctx: typer.Context,
    before: Annotated[str, typer.Argument(help="NAME@N (the older version).")],
    after: Annotated[str, typer.Argument(help="NAME@M (the newer version).")],
    json_out: JsonFlag = False,
) -> None:
    """Schema and profile differences between two dataset versions."""
    workspace = state(ctx).open()
    result = diff_versions(get_dataset_version(before, workspace=workspace),
                           get_dataset_version(after, workspace=workspace))
    workspace.close()
    if json_out:
        print_json(result.to_dict())
        return
    console.print(f"[bold]{result.before}[/] → [bold]{result.after}[/]: rows "
                  f"{result.rows_before:,} → {result.rows_after:,}")
    if result.identical:
        console.print("No schema or notable profile differences.")
        return
    for item in result.added:
        console.print(f"  [green]+ column {item['name']}[/] ({item['type']})")
    for item in result.removed:
        console.print(f"  [red]- column {item['name']}[/] ({item['type']})")
    for item in result.retyped:
        console.print(f"  [yellow]~ column {item['name']}[/]: {item['before']} → {item['after']}")
    if result.changes:
        table = Table(title="Profile changes")
        for column in ("column", "statistic", "before", "after", "change"):
            table.add_column(column, overflow="fold")
        for change in result.changes:
            relative = "" if change.relative is None else f"{change.relative:+.1%}"
            table.add_row(change.column, change.statistic, short(change.before, 40),
                          short(change.after, 40), relative)
        console.print(table)


def print_report(report: ValidationReport) -> None:
    table = Table(title=f"Contract '{report.contract}' on {report.target}")
    for column in ("rule", "severity", "result", "failing rows", "details"):
        table.add_column(column, overflow="fold")
    for r in report.results:
        status = "[green]pass[/]" if r.passed else ("[red]FAIL[/]" if r.severity == "error"
                                                    else "[yellow]warn[/]")
        failing = "" if r.failing_rows is None else f"{r.failing_rows:,}"
        table.add_row(escape(r.rule_id), r.severity, status, failing,
                      "" if r.passed else escape(r.message))
    console.print(table)
    for r in report.results:
        if r.samples:
            shown = ", ".join(
                f"row {s['row']}: " + " ".join(f"{c}={short(s.get(c), 30)}" for c in r.columns)
                for s in r.samples[:5])
            console.print(f"  [dim]{escape(r.rule_id)} samples[/] {shown}")
    verdict = "[green]PASSED[/]" if report.passed else "[red]FAILED[/]"
    console.print(f"{verdict}: {len(report.errors)} errors, {len(report.warnings)} warnings · "
                  f"{report.num_rows:,} rows · {len(report.results)} rules · "
                  f"{report.duration_s:.3f} s")


@data_app.command("validate")
def validate(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME@latest or NAME@N.")],
    contract: Annotated[str | None, typer.Option(
        "--contract", "-c", help="Contract YAML; default: the contract attached to the dataset."
    )] = None,
    record: Annotated[bool, typer.Option(help="Record the result in the workspace.")] = True,
    json_out: JsonFlag = False,
) -> None:
    """Check a dataset version against a contract; exit 1 if an error-severity rule fails."""
    loaded = load_contract(contract) if contract else None
    workspace = state(ctx).open()
    report = validate_dataset(ref, loaded, workspace=workspace, record=record)
    workspace.close()
    if json_out:
        print_json(report.to_dict())
    else:
        print_report(report)
    if not report.passed:
        raise typer.Exit(1)


@data_app.command("attach-contract")
def attach(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    contract: Annotated[str, typer.Argument(help="Contract YAML file.")],
    json_out: JsonFlag = False,
) -> None:
    """Attach a contract to a dataset; `data validate NAME` then uses it by default."""
    loaded = load_contract(contract)
    workspace = state(ctx).open()
    attached = attach_contract(name, loaded, workspace=workspace)
    workspace.close()
    if json_out:
        print_json(attached.to_dict())
        return
    verb = "Attached" if attached.created else "Unchanged:"
    console.print(f"{verb} contract '{loaded.name}' v{attached.version} on dataset "
                  f"[bold]{name}[/] ({len(loaded.rules)} rules)")
