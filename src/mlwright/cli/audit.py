"""`mlwright audit log`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from mlwright.cli.output import brief, console, print_json
from mlwright.cli.state import state
from mlwright.store import list_events

audit_app = typer.Typer(help="The append-only audit log of every state change.",
                        no_args_is_help=True)


@audit_app.command("log")
def audit_log(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="At most this many events.")] = 50,
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. "
                                                    "dataset.version.registered.")] = None,
    object_ref: Annotated[str | None, typer.Option("--object", help="Only events about this "
                                                   "object, e.g. flights@1.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Show the newest events first: who did what, to what, when."""
    workspace = state(ctx).open()
    with workspace.db.session() as session:
        events = [
            {"id": e.id, "at": e.at.isoformat(), "actor": e.actor, "action": e.action,
             "object_type": e.object_type, "object": e.object_ref, "details": e.details}
            for e in list_events(session, limit=limit, action=action, object_ref=object_ref)
        ]
    workspace.close()
    if json_out:
        print_json(events)
        return
    table = Table(title="Audit log (newest first)")
    for column in ("#", "at (UTC)", "actor"):
        table.add_column(column, no_wrap=True)
    table.add_column("action", overflow="fold", max_width=26)
    table.add_column("object", overflow="fold", min_width=10)
    table.add_column("details", overflow="fold", ratio=1)
    for e in events:
        details = ", ".join(f"{k}={brief(v)}" for k, v in (e["details"] or {}).items())
        table.add_row(str(e["id"]), e["at"][5:19].replace("T", " "), e["actor"], e["action"],
                      escape(e["object"]), escape(details))
    console.print(table)
