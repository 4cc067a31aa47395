"""Reading the audit log from Python.

>>> for event in mlwright.audit_log(limit=5):   # doctest: +SKIP
...     print(event["action"], event["object"])
"""

from __future__ import annotations

from typing import Any

from mlwright.store import list_events
from mlwright.workspace import Workspace, as_workspace


def audit_log(*, workspace: Workspace | str | None = None, limit: int = 100,
              action: str | None = None, object_ref: str | None = None) -> list[dict[str, Any]]:
    """The newest audit events first, as plain dicts."""
    ws = as_workspace(workspace)
    with ws.db.session() as session:
        return [
            {"id": e.id, "at": e.at, "actor": e.actor, "action": e.action,
             "object_type": e.object_type, "object": e.object_ref, "details": e.details}
            for e in list_events(session, limit=limit, action=action, object_ref=object_ref)
        ]
