"""`mlwright webhook ...` (registry events to URLs) and `mlwright gc` (unreferenced artifacts)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mlwright.cli.output import console, err_console, human_bytes, print_json
from mlwright.cli.state import state
from mlwright.registry.webhooks import (
    EVENTS,
    add_webhook,
    deliver_pending,
    list_deliveries,
    list_webhooks,
    remove_webhook,
)
from mlwright.store.gc import collect_garbage

webhook_app = typer.Typer(help="Registry events (versions, aliases, gates) POSTed to URLs, "
                               "signed with HMAC-SHA256, retried.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else ""


@webhook_app.command("add")
def add(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="http:// or https:// URL to POST events to.")],
    secret: Annotated[str, typer.Option(envvar="MLWRIGHT_WEBHOOK_SECRET",
                                        help="Shared secret the signature is made with.")],
    event: Annotated[list[str] | None, typer.Option(
        "--event", help=f"Only this event (repeatable; default all): {', '.join(EVENTS)}.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Subscribe a URL to registry events from now on."""
    workspace = state(ctx).open()
    hook = add_webhook(url, secret=secret, events=event, workspace=workspace)
    workspace.close()
    if json_out:
        print_json(hook.to_dict())
        return
    console.print(f"Added webhook {hook.id}: {escape(hook.url)} (events: "
                  f"{escape(', '.join(hook.events))})")


@webhook_app.command("list")
def list_command(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """The webhooks, with their secrets masked."""
    workspace = state(ctx).open()
    hooks = list_webhooks(workspace=workspace)
    workspace.close()
    if json_out:
        print_json([h.to_dict() for h in hooks])
        return
    if not hooks:
        console.print("No webhooks yet; add one with `mlwright webhook add URL --secret S`.")
        return
    table = Table(title="Webhooks")
    for column in ("id", "url", "events", "secret", "active", "created (UTC)", "by"):
        table.add_column(column, overflow="fold")
    for h in hooks:
        table.add_row(str(h.id), escape(h.url), escape(", ".join(h.events)), h.masked_secret,
                      "yes" if h.active else "no", _when(h.created_at), escape(h.created_by))
    console.print(table)


@webhook_app.command("remove")
def remove(
    ctx: typer.Context,
    webhook_id: Annotated[int, typer.Argument(metavar="ID", help="The webhook's id.")],
    json_out: JsonFlag = False,
) -> None:
    """Remove a webhook and its delivery log."""
    workspace = state(ctx).open()
    hook = remove_webhook(webhook_id, workspace=workspace)
    workspace.close()
    if json_out:
        print_json(hook.to_dict())
        return
    console.print(f"Removed webhook {hook.id} ({escape(hook.url)})")


@webhook_app.command("deliver")
def deliver(
    ctx: typer.Context,
    max_attempts: Annotated[int, typer.Option(min=1, help="Attempts before a delivery "
                                                          "fails for good.")] = 5,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for a receiver.")] = 5.0,
    json_out: JsonFlag = False,
) -> None:
    """One pass: queue new registry events, send what is due, schedule retries."""
    workspace = state(ctx).open()
    report = deliver_pending(workspace, max_attempts=max_attempts, timeout=timeout)
    workspace.close()
    if json_out:
        print_json(report.to_dict())
        return
    for a in report.attempts:
        style = {"delivered": "green", "failed": "red"}.get(a.status, "yellow")
        console.print(f"  [{style}]{a.status:9}[/] #{a.id} → webhook {a.webhook_id} "
                      f"{escape(a.action)} {escape(a.object)}"
                      + (f" · {escape(a.last_error)}" if a.last_error else ""))
    nxt = f" (next attempt {_when(report.next_attempt_at)} UTC)" if report.next_attempt_at else ""
    console.print(f"Queued {report.queued}, delivered {report.delivered}, retrying "
                  f"{report.retrying}, failed {report.failed}; {report.pending} pending{nxt}.")


@webhook_app.command("deliveries")
def deliveries(
    ctx: typer.Context,
    webhook_id: Annotated[int | None, typer.Option("--webhook", help="Only this webhook.")] = None,
    status: Annotated[str | None, typer.Option(help="pending, delivered or failed.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 50,
    json_out: JsonFlag = False,
) -> None:
    """The delivery log, newest first."""
    workspace = state(ctx).open()
    rows = list_deliveries(webhook_id=webhook_id, status=status, limit=limit, workspace=workspace)
    workspace.close()
    if json_out:
        print_json([d.to_dict() for d in rows])
        return
    table = Table(title="Webhook deliveries (newest first)")
    for column in ("#", "hook", "event", "status", "next/done UTC"):
        table.add_column(column, no_wrap=True)
    table.add_column("error", overflow="fold", ratio=1)
    for d in rows:
        code = f" {d.last_status_code}" if d.last_status_code else ""
        table.add_row(str(d.id), str(d.webhook_id), f"{escape(d.action)}\n{escape(d.object)}",
                      f"{d.status} ×{d.attempts}{code}",
                      f"{d.delivered_at or d.next_attempt_at or '':%m-%d %H:%M:%S}"
                      if d.delivered_at or d.next_attempt_at else "", escape(d.last_error or ""))
    console.print(table)


def gc(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would go; remove "
                                                            "nothing.")] = False,
    grace: Annotated[float, typer.Option(min=0, help="Keep unreferenced objects younger than "
                                                     "this many seconds.")] = 3600.0,
    json_out: JsonFlag = False,
) -> None:
    """Remove artifacts that nothing references any more (deleted runs and versions)."""
    workspace = state(ctx).open()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, transient=True,
                  disable=json_out or not err_console.is_terminal) as progress:
        task = progress.add_task("listing artifacts", total=None)

        def tick(phase: str, done: int, total: int) -> None:
            progress.update(task, description=phase, completed=done, total=total)

        report = collect_garbage(workspace, grace=timedelta(seconds=grace), dry_run=dry_run,
                                 progress=tick)
    workspace.close()
    if json_out:
        print_json(report.to_dict())
        return
    if dry_run and report.garbage:
        table = Table(title="Would remove")
        for column in ("sha256", "size", "modified (UTC)"):
            table.add_column(column, no_wrap=True)
        for g in report.garbage:
            table.add_row(g.digest[:16] + "…", human_bytes(g.size), _when(g.modified))
        console.print(table)
    kept = (f"kept {report.kept} ({report.referenced} referenced, {report.young} younger than "
            f"{grace:g} s)")
    verb = f"would remove {report.removable} ({human_bytes(report.removable_bytes)})" if dry_run \
        else f"removed {report.removed} ({human_bytes(report.removed_bytes)})"
    console.print(f"{report.listed} objects: {verb}; {kept}.")
    for error in report.errors:
        err_console.print(f"[red]error:[/] {escape(error)}", soft_wrap=True)
    if report.errors:
        raise typer.Exit(1)


def add_maintenance_commands(app: typer.Typer) -> None:
    """`mlwright webhook ...` and `mlwright gc` on the main app."""
    app.add_typer(webhook_app, name="webhook")
    app.command("gc")(gc)
