"""`mlwright features ...`: apply, list, show, historical, materialize, online, push, consume,
check-skew, materializations."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select

from mlwright.cli.output import console, err_console, print_json, short
from mlwright.cli.state import state
from mlwright.errors import FeatureError
from mlwright.features.catalog import current_definitions
from mlwright.features.historical import get_historical_features
from mlwright.features.materialize import materialize
from mlwright.features.online_read import OnlineReader
from mlwright.features.push import push
from mlwright.features.repository import apply_repository
from mlwright.features.skew import check_skew
from mlwright.store import FeatureMaterialization

features_app = typer.Typer(help="The feature store: definitions, training data, online features.",
                           no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ACTION_STYLE = {"create": "green", "new version": "yellow", "update": "cyan", "retire": "red",
                "unchanged": "dim"}


def _moment(text: str | None, what: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise FeatureError(f"--{what} '{text}' is not an ISO 8601 time; use e.g. "
                           "2026-01-31T00:00:00+00:00.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@features_app.command("apply")
def apply_command(
    ctx: typer.Context,
    repo: Annotated[str, typer.Argument(help="The feature repository folder.")] = "features",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan only.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Diff the repository's definitions against the workspace, show the plan, apply it."""
    workspace = state(ctx).open()
    plan = apply_repository(repo, workspace=workspace, dry_run=dry_run)
    workspace.close()
    if json_out:
        print_json(plan.to_dict())
        return
    table = Table(title=f"Plan for {escape(plan.repo)}" + (" (dry run)" if dry_run else ""))
    for column in ("kind", "name", "action", "version", "detail"):
        table.add_column(column)
    for change in plan.changes:
        style = ACTION_STYLE.get(change.action, "")
        table.add_row(change.kind, change.name, f"[{style}]{change.action}[/]",
                      str(change.version), escape(change.detail))
    console.print(table)
    verb = "Would change" if dry_run else "Applied"
    console.print(f"{verb} {len(plan.changed)} definition(s); {len(plan.changes) - len(plan.changed)}"
                  " unchanged.")


@features_app.command("list")
def list_command(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """List the applied entities, views, on-demand views and services."""
    workspace = state(ctx).open()
    rows = current_definitions(workspace)
    workspace.close()
    if json_out:
        print_json([{"kind": r.kind, "name": r.name, "version": r.version,
                     "created_at": r.created_at.isoformat(), "created_by": r.created_by,
                     "owner": r.spec.get("owner"), "description": r.spec.get("description")}
                    for r in rows])
        return
    if not rows:
        console.print("No feature definitions yet; write a repository and run "
                      "`mlwright features apply REPO`.")
        return
    table = Table(title="Feature definitions")
    for column in ("kind", "name", "version", "features", "owner", "description"):
        table.add_column(column)
    for r in rows:
        features = len(r.spec.get("features", [])) if r.kind != "entity" else ""
        table.add_row(r.kind, r.name, str(r.version), str(features),
                      escape(r.spec.get("owner") or ""), escape(r.spec.get("description") or ""))
    console.print(table)


@features_app.command("show")
def show_command(ctx: typer.Context,
                 name: Annotated[str, typer.Argument(help="View, on-demand view or service.")],
                 json_out: JsonFlag = False) -> None:
    """Show one definition: its spec, version and materialization watermark."""
    workspace = state(ctx).open()
    rows = [r for r in current_definitions(workspace) if r.name == name]
    if not rows:
        workspace.close()
        raise FeatureError(f"No feature definition named '{name}'; see `mlwright features list`.")
    row = rows[0]
    with workspace.db.session() as session:
        runs = list(session.execute(
            select(FeatureMaterialization).where(FeatureMaterialization.view == name)
            .order_by(FeatureMaterialization.id.desc()).limit(5)).scalars())
        history = [_materialization(m) for m in runs]
    workspace.close()
    data = {"kind": row.kind, "name": row.name, "version": row.version, "repo": row.repo,
            "created_at": row.created_at.isoformat(), "spec": row.spec,
            "materializations": history}
    if json_out:
        print_json(data)
        return
    console.print(f"[bold]{row.kind} {row.name}@{row.version}[/] (from {escape(row.repo or '-')})")
    spec = row.spec
    for key in ("description", "owner", "tags", "timestamp_field", "created_timestamp_field",
                "ttl_seconds", "timezone", "source", "join_keys"):
        if spec.get(key) not in (None, "", {}, []):
            console.print(f"  {key}: {escape(str(spec[key]))}")
    if spec.get("features"):
        table = Table(title="Features")
        table.add_column("name")
        table.add_column("type / reference")
        for feature in spec["features"]:
            name_, dtype = (feature, "") if isinstance(feature, str) else feature
            table.add_row(escape(name_), dtype)
        console.print(table)
    for m in history:
        console.print(f"  materialized {m['status']}: {m['start']} → {m['end']}, "
                      f"{m['rows']:,} rows into {escape(m['store'])}")


def _materialization(m: FeatureMaterialization) -> dict[str, Any]:
    def iso(us: int) -> str:
        return datetime.fromtimestamp(us / 1e6, UTC).isoformat()

    return {"view": m.view, "version": m.version, "store": m.store, "start": iso(m.start_us),
            "end": iso(m.end_us), "rows": m.rows, "status": m.status, "error": m.error,
            "started_at": m.started_at.isoformat(),
            "finished_at": m.finished_at.isoformat() if m.finished_at else None}


@features_app.command("materializations")
def materializations_command(ctx: typer.Context, view: Annotated[str | None, typer.Option(
        help="Only this view.")] = None, json_out: JsonFlag = False) -> None:
    """The materialization log: what was written, when, and whether it completed."""
    workspace = state(ctx).open()
    with workspace.db.session() as session:
        query = select(FeatureMaterialization).order_by(FeatureMaterialization.id.desc())
        if view:
            query = query.where(FeatureMaterialization.view == view)
        rows = [_materialization(m) for m in session.execute(query.limit(100)).scalars()]
    workspace.close()
    if json_out:
        print_json(rows)
        return
    table = Table(title="Materializations")
    for column in ("view", "version", "status", "start", "end", "rows", "store"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["view"], str(r["version"]), r["status"], r["start"], r["end"],
                      f"{r['rows']:,}", escape(r["store"]))
    console.print(table)


@features_app.command("materialize")
def materialize_command(
    ctx: typer.Context,
    start: Annotated[str | None, typer.Option(
        help="ISO time; omitted: from each view's watermark (incremental).")] = None,
    end: Annotated[str | None, typer.Option(help="ISO time; default now.")] = None,
    view: Annotated[list[str] | None, typer.Option("--view", help="Only these views.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Parallel key partitions.")] = 1,
    executor: Annotated[str, typer.Option(help="local or ray (with --workers > 1).")] = "local",
    batch_rows: Annotated[int, typer.Option(min=1, help="Rows per online write.")] = 50_000,
    json_out: JsonFlag = False,
) -> None:
    """Write the newest row per entity to the online store."""
    workspace = state(ctx).open()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=err_console, transient=True,
                  disable=json_out or not err_console.is_terminal) as progress:
        task = progress.add_task("materializing", total=None)

        def step(view_name: str, rows: int) -> None:
            progress.update(task, description=f"{view_name}: {rows:,} rows written")

        results = materialize(_moment(start, "start"), _moment(end, "end"), views=view,
                              workspace=workspace, workers=workers, executor=executor,
                              batch_rows=batch_rows, progress=step)
    workspace.close()
    if json_out:
        print_json([r.to_dict() for r in results])
        return
    for r in results:
        console.print(f"[bold]{r.view}@{r.version}[/]: {r.rows:,} entities from "
                      f"{r.start.isoformat()} to {r.end.isoformat()} in {r.seconds:.2f} s "
                      f"→ {escape(r.store)}")


@features_app.command("historical")
def historical_command(
    ctx: typer.Context,
    entities: Annotated[str, typer.Argument(help="Parquet file of entity rows.")],
    features: Annotated[list[str], typer.Argument(help="Service name or view:feature refs.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Parquet file to write.")],
    timestamp_column: Annotated[str, typer.Option(help="Entity timestamp column.")]
    = "event_timestamp",
    full_names: Annotated[bool, typer.Option("--full-names", help="view__feature columns.")]
    = False,
    json_out: JsonFlag = False,
) -> None:
    """Point-in-time correct training data: one output row per entity row, in order."""
    workspace = state(ctx).open()
    refs: str | list[str] = features[0] if len(features) == 1 and ":" not in features[0] \
        else features
    job = get_historical_features(entities, refs, workspace=workspace,
                                  timestamp_column=timestamp_column,
                                  full_feature_names=full_names)
    with Progress(SpinnerColumn(), TextColumn("joining features"), TimeElapsedColumn(),
                  console=err_console, transient=True,
                  disable=json_out or not err_console.is_terminal) as progress:
        progress.add_task("join", total=None)
        rows = job.to_parquet(output)
    workspace.close()
    summary = {"output": str(output), "rows": rows, "views": job.views, "datasets": job.datasets}
    if json_out:
        print_json(summary)
        return
    console.print(f"Wrote {rows:,} rows to {escape(str(output))} (views: {', '.join(job.views)})")


def _entity_rows(pairs: list[str], keys: dict[str, str]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise FeatureError(f"--entity '{pair}' is not KEY=VALUE.")
        if keys.get(name) == "int64":
            try:
                columns.setdefault(name, []).append(int(value))
            except ValueError:
                raise FeatureError(f"--entity {name}={value}: {name} is an int64 key.") from None
        else:
            columns.setdefault(name, []).append(value)
    return columns


@features_app.command("online")
def online_command(
    ctx: typer.Context,
    features: Annotated[list[str], typer.Argument(help="Service name or view:feature refs.")],
    entity: Annotated[list[str], typer.Option("--entity", "-e",
                                              help="KEY=VALUE; repeat for more entities.")],
    json_out: JsonFlag = False,
) -> None:
    """Read features online for some entities, with the status of each value."""
    workspace = state(ctx).open()
    refs: str | list[str] = features[0] if len(features) == 1 and ":" not in features[0] \
        else features
    with OnlineReader(workspace, refs) as reader:
        result = reader.get(_entity_rows(entity, reader.selection.join_keys))
    workspace.close()
    if json_out:
        print_json({"values": result.to_dict(), "statuses": result.statuses})
        return
    table = Table(title="Online features")
    for column in [*result.keys, *result.values]:
        table.add_column(column)
    n = len(next(iter(result.keys.values()), []))
    for i in range(n):
        cells = [short(v[i]) for v in result.keys.values()]
        for name, values in result.values.items():
            status = result.statuses[name][i]
            cells.append(short(values[i]) if status == "present" else f"[dim]{status}[/]")
        table.add_row(*cells)
    console.print(table)


@features_app.command("push")
def push_command(
    ctx: typer.Context,
    view: Annotated[str, typer.Argument(help="Feature view.")],
    path: Annotated[str, typer.Argument(help="Parquet or CSV file of rows.")],
    to: Annotated[str, typer.Option(help="online, offline or online_and_offline.")]
    = "online_and_offline",
    json_out: JsonFlag = False,
) -> None:
    """Push rows to a view: online at once, and appended to its offline data."""
    from mlwright.data.io import read_path

    workspace = state(ctx).open()
    count = push(view, read_path(path), workspace=workspace, to=to)  # type: ignore[arg-type]
    workspace.close()
    if json_out:
        print_json({"view": view, "rows": count, "to": to})
        return
    console.print(f"Pushed {count:,} rows to {view} ({to}).")


@features_app.command("consume")
def consume_command(
    ctx: typer.Context,
    view: Annotated[str, typer.Argument(help="Feature view to push to.")],
    redis_url: Annotated[str, typer.Option("--redis", help="redis://HOST:PORT/DB")],
    stream: Annotated[str, typer.Option(help="Stream key.")],
    group: Annotated[str, typer.Option(help="Consumer group.")] = "mlwright-features",
    batch: Annotated[int, typer.Option(min=1, help="Events per micro-batch.")] = 500,
    max_events: Annotated[int | None, typer.Option(help="Stop after this many.")] = None,
    idle_exit: Annotated[bool, typer.Option("--idle-exit", help="Stop when nothing new.")]
    = False,
    json_out: JsonFlag = False,
) -> None:
    """Push events from a Redis Stream to a view (at least once; bad events dead-lettered)."""
    from mlwright.features.streaming import consume_stream

    workspace = state(ctx).open()
    stats = consume_stream(view, redis_url, stream, workspace=workspace, group=group,
                           batch=batch, max_events=max_events, idle_exit=idle_exit)
    workspace.close()
    if json_out:
        print_json(stats.to_dict())
        return
    console.print(f"Read {stats.read:,} events: {stats.pushed:,} pushed, {stats.dead:,} to "
                  f"{stream}:dead.")


@features_app.command("check-skew")
def check_skew_command(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="Feature service (or view:* reference).")],
    sample: Annotated[int, typer.Option(min=1, help="Entities sampled per view.")] = 100,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    json_out: JsonFlag = False,
) -> None:
    """Compare offline (as of now) and online values for sampled entities; exit 1 on skew."""
    workspace = state(ctx).open()
    report = check_skew(service, workspace=workspace, sample=sample, seed=seed)
    workspace.close()
    if json_out:
        print_json(report.to_dict())
    else:
        verdict = "[green]no skew[/]" if report.ok else \
            f"[red]{len(report.mismatches)} mismatch(es)[/]"
        console.print(f"{service}: {report.entities} entities, {report.values} values compared: "
                      f"{verdict}")
        if report.skipped:
            console.print(f"  skipped on-demand features (need request data): "
                          f"{', '.join(report.skipped)}")
        if report.mismatches:
            table = Table(title="Mismatches (first 20)")
            for column in ("view", "entity", "feature", "offline", "online", "status"):
                table.add_column(column)
            for m in report.mismatches[:20]:
                table.add_row(m.view, escape(str(m.entity)), m.feature, short(m.offline),
                              short(m.online), m.status)
            console.print(table)
    if not report.ok:
        raise typer.Exit(1)

