"""What the global options carry to every command."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import typer

from mlwright.workspace import Workspace, open_workspace


@dataclass
class CliState:
    workspace: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    debug: bool = False

    def open(self) -> Workspace:
        return open_workspace(self.workspace, overrides=self.overrides)


def state(ctx: typer.Context) -> CliState:
    found = ctx.find_object(CliState)
    return found if found is not None else CliState()
