"""`mlwright init` and `mlwright config show`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mlwright.cli.output import console, print_json
from mlwright.cli.state import state
from mlwright.config import CONFIG_FILE, Settings
from mlwright.store import mask_url
from mlwright.workspace import init_workspace

config_app = typer.Typer(help="Show the resolved configuration.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def init(
    ctx: typer.Context,
    path: Annotated[str | None, typer.Argument(help="Folder for the workspace.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Create a workspace: mlwright.toml, .mlwright/ with the database and artifacts."""
    cli = state(ctx)
    target = path or cli.workspace or "."
    already = (Path(target) / CONFIG_FILE).is_file()
    workspace = init_workspace(target, metadata_url=cli.overrides.get("metadata_url"),
                               artifact_url=cli.overrides.get("artifact_url"))
    result = {"root": str(workspace.root), "metadata_url": mask_url(workspace.metadata_url),
              "artifact_url": workspace.artifact_url, "created": not already}
    workspace.close()
    if json_out:
        print_json(result)
        return
    verb = "Reinitialized existing" if already else "Initialized"
    console.print(f"{verb} mlwright workspace in [bold]{workspace.root}[/]")
    console.print(f"  metadata   {result['metadata_url']}")
    console.print(f"  artifacts  {result['artifact_url']}")


@config_app.command("show")
def config_show(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Print every setting, its resolved value and where the value came from."""
    workspace = state(ctx).open()
    rows = []
    for key in Settings.model_fields:
        value = getattr(workspace.settings, key)
        shown = mask_url(value) if key == "metadata_url" else value
        rows.append({"key": key, "value": shown, "source": workspace.resolved.origins[key]})
    if json_out:
        print_json({"workspace": str(workspace.root), "settings": rows})
        return
    table = Table(title=f"Configuration of {workspace.root}")
    table.add_column("setting")
    table.add_column("value")
    table.add_column("from", style="dim")
    for row in rows:
        table.add_row(row["key"], str(row["value"]), row["source"])
    console.print(table)
