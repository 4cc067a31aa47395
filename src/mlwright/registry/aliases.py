"""Aliases: names (``champion``, ``challenger``, anything) that point at one version and move
atomically, with every move kept in order.

>>> set_alias("delays", "champion", 3, workspace=ws)          # doctest: +SKIP
AliasMove(model='delays', alias='champion', from_version=2, to_version=3, ...)

Two processes moving the same alias at once are serialised by a lock held for the whole
read-then-write (``Database.exclusive``), so each move records the version it really
replaced and none is lost. A version that failed a blocking validation gate cannot take a
guarded alias (``champion``, ``challenger``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from mlwright.errors import GateError, NotFoundError, RegistryError
from mlwright.registry.versions import model_row, version_row
from mlwright.store import Model, ModelAlias, ModelAliasMove, ModelVersion, check_name, record_event
from mlwright.store.types import utcnow
from mlwright.workspace import Workspace, as_workspace

WorkspaceLike = Workspace | str | os.PathLike[str] | None
GUARDED = ("champion", "challenger")


@dataclass(frozen=True)
class AliasMove:
    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    at: datetime
    actor: str

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "alias": self.alias, "from_version": self.from_version,
                "to_version": self.to_version, "at": self.at.isoformat(), "actor": self.actor}


def _failed_gates(row: ModelVersion) -> str:
    """What blocked the version, and by how much, from its stored gate report."""
    results = (row.gates or {}).get("results", [])
    failed = [r for r in results if r.get("blocking", True) and not r.get("passed")]
    return "; ".join(str(r.get("message") or r.get("gate_id")) for r in failed) or "see its gates"


def set_alias(name: str, alias: str, version: int | str, *,
              workspace: WorkspaceLike = None) -> AliasMove:
    """Point ``alias`` of model ``name`` at ``version`` (a number, or ``latest``)."""
    ws = as_workspace(workspace)
    check_name("alias", alias)
    if alias == "latest" or alias.isdigit():
        raise RegistryError(f"'{alias}' cannot be an alias: it already means a version.")
    with ws.db.exclusive(f"alias:{name}:{alias}") as session:
        model, target = version_row(session, f"{name}@{version}")
        if alias in GUARDED and target.gates_passed is False:
            raise GateError(f"Model {name}@{target.version} failed its gates and cannot become "
                            f"'{alias}': {_failed_gates(target)}.")
        current = session.get(ModelAlias, (model.id, alias))
        before: int | None = None
        if current is not None:
            previous = session.get(ModelVersion, current.version_id)
            before = previous.version if previous is not None else None
            current.version_id, current.updated_at, current.updated_by = target.id, utcnow(), \
                ws.actor
        else:
            session.add(ModelAlias(model_id=model.id, alias=alias, version_id=target.id,
                                   updated_by=ws.actor))
        return _record(session, ws, model, alias, before, target.version)


def remove_alias(name: str, alias: str, *, workspace: WorkspaceLike = None) -> AliasMove:
    """Remove an alias (its history stays)."""
    ws = as_workspace(workspace)
    with ws.db.exclusive(f"alias:{name}:{alias}") as session:
        model = model_row(session, name)
        current = session.get(ModelAlias, (model.id, alias))
        if current is None:
            raise NotFoundError(f"Model '{name}' has no alias '{alias}'.")
        previous = session.get(ModelVersion, current.version_id)
        session.delete(current)
        return _record(session, ws, model, alias, previous.version if previous else None, None)


def _record(session: Any, ws: Workspace, model: Model, alias: str, before: int | None,
            after: int | None) -> AliasMove:
    move = ModelAliasMove(model_id=model.id, alias=alias, from_version=before, to_version=after,
                          actor=ws.actor, at=utcnow())
    session.add(move)
    record_event(session, actor=ws.actor, action="model.alias.moved" if after else
                 "model.alias.removed", object_type="model", object_ref=model.name,
                 details={"alias": alias, "from": before, "to": after})
    return AliasMove(model.name, alias, before, after, move.at, ws.actor)


def alias_history(name: str, alias: str | None = None, *,
                  workspace: WorkspaceLike = None) -> list[AliasMove]:
    """Every move of the model's aliases (or of one), oldest first."""
    ws = as_workspace(workspace)
    with ws.db.session() as session:
        model = model_row(session, name)
        query = select(ModelAliasMove).where(ModelAliasMove.model_id == model.id)
        if alias is not None:
            query = query.where(ModelAliasMove.alias == alias)
        return [AliasMove(name, m.alias, m.from_version, m.to_version, m.at, m.actor)
                for m in session.execute(query.order_by(ModelAliasMove.id)).scalars()]
