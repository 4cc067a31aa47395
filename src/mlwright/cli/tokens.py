"""`mlwright token ...`: create, list and revoke API tokens of the serving API."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from mlwright.cli.output import console, err_console, print_json
from mlwright.cli.state import state
from mlwright.data.contracts import parse_duration
from mlwright.errors import ContractError, SecurityError
from mlwright.security import SCOPES, create_token, list_tokens, revoke_token

token_app = typer.Typer(help="API tokens of the serving API (stored only as hashes).",
                        no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@token_app.command("create")
def create_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A unique name, e.g. the client it is for.")],
    scope: Annotated[list[str] | None, typer.Option(
        "--scope", help=f"Repeatable: {', '.join(SCOPES)} (default predict).")] = None,
    expires_in: Annotated[str | None, typer.Option(
        help="Lifetime, e.g. 30d or 12h (default: until revoked).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Create a token; it is printed once and cannot be shown again."""
    try:
        lifetime = parse_duration(expires_in) if expires_in is not None else None
    except ContractError as exc:
        raise SecurityError(f"--expires-in: {exc}") from None
    workspace = state(ctx).open()
    created = create_token(name, workspace=workspace, scopes=scope or ["predict"],
                           expires_in=lifetime)
    workspace.close()
    if json_out:
        print_json({**created.info.to_dict(), "token": created.token})
        return
    console.print(created.token, soft_wrap=True, highlight=False)
    err_console.print(f"Token '{name}' ({', '.join(created.info.scopes)}) created. Store it now: "
                      "it is not kept and cannot be shown again.")


@token_app.command("list")
def list_command(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """List tokens (names, scopes, expiry; never secrets)."""
    workspace = state(ctx).open()
    tokens = list_tokens(workspace=workspace)
    workspace.close()
    if json_out:
        print_json([t.to_dict() for t in tokens])
        return
    if not tokens:
        console.print("No tokens yet; create one with `mlwright token create NAME`.")
        return
    table = Table(title="API tokens")
    for column in ("name", "id", "scopes", "created (UTC)", "by", "expires", "state"):
        table.add_column(column)
    for t in tokens:
        state_ = "revoked" if t.revoked_at else ("active" if t.active else "expired")
        table.add_row(t.name, t.id, ", ".join(t.scopes), f"{t.created_at:%Y-%m-%d %H:%M}",
                      t.created_by, f"{t.expires_at:%Y-%m-%d %H:%M}" if t.expires_at else "-",
                      state_)
    console.print(table)


@token_app.command("revoke")
def revoke_command(ctx: typer.Context,
                   name: Annotated[str, typer.Argument(help="Token name or id.")],
                   json_out: JsonFlag = False) -> None:
    """Revoke a token (servers stop accepting it within seconds)."""
    workspace = state(ctx).open()
    info = revoke_token(name, workspace=workspace)
    workspace.close()
    if json_out:
        print_json(info.to_dict())
        return
    console.print(f"Revoked token '{info.name}' ({info.id}).")
