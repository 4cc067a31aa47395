"""A feature repository folder, diffed against the metadata store and applied.

>>> plan = apply_repository("features/", dry_run=True)       # doctest: +SKIP
>>> [(c.kind, c.name, c.action) for c in plan.changes]        # doctest: +SKIP
[('view', 'user_stats', 'new version')]

Every ``*.py`` file in the folder (not in sub-folders, not starting with ``_``) is imported and
the definitions at module level are collected. A view whose meaning changed (entities,
source, timestamps, features, TTL, time zone, SQL or transform code) gets a new version;
description, owner and tag changes update the current version; definitions no longer in the
folder are retired.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select

from mlwright.errors import FeatureError
from mlwright.features.catalog import ViewVersion, current_definitions, import_repo_file
from mlwright.features.definitions import (
    Definition,
    Entity,
    FeatureService,
    FeatureView,
    OnDemandFeatureView,
    fingerprint,
)
from mlwright.features.relations import check_view_source
from mlwright.store import FeatureDefinition, record_event
from mlwright.store.types import utcnow
from mlwright.workspace import Workspace, as_workspace

WorkspaceArg = Workspace | str | os.PathLike[str] | None
KINDS = {Entity: "entity", FeatureView: "view", OnDemandFeatureView: "on_demand",
         FeatureService: "service"}
_METADATA = ("owner", "tags", "description", "descriptions", "transform_ref", "online")


@dataclass(frozen=True)
class Change:
    """One line of a plan: what happens to a definition, and its version afterwards."""

    kind: str
    name: str
    action: str  # create | new version | update | unchanged | retire
    version: int
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "action": self.action,
                "version": self.version, "detail": self.detail}


@dataclass
class Plan:
    repo: str
    changes: list[Change] = field(default_factory=list)
    applied: bool = False

    @property
    def changed(self) -> list[Change]:
        return [c for c in self.changes if c.action != "unchanged"]

    def to_dict(self) -> dict[str, Any]:
        return {"repo": self.repo, "applied": self.applied,
                "changes": [c.to_dict() for c in self.changes]}


def _resolve(definition: Definition, base: Path, file: Path) -> Definition:
    if isinstance(definition, FeatureView) and hasattr(definition.source, "resolved"):
        return replace(definition, source=definition.source.resolved(base))
    if isinstance(definition, OnDemandFeatureView) and definition.transform is not None:
        function = getattr(definition.transform, "__name__", "")
        return replace(definition, transform_ref=f"{file.name}:{function}")
    return definition


def load_repository(path: str | os.PathLike[str]) -> list[Definition]:
    """Import the repository's files and return its definitions (names unique per kind)."""
    base = Path(path).expanduser().resolve()
    if not base.is_dir():
        raise FeatureError(f"Feature repository '{path}' is not a folder; pass the folder that "
                           "holds your definitions (*.py).")
    found: dict[tuple[str, str], tuple[Definition, Path]] = {}
    files = sorted(p for p in base.glob("*.py") if not p.name.startswith("_"))
    if not files:
        raise FeatureError(f"Feature repository '{base}' has no .py files with definitions.")
    for file in files:
        module = import_repo_file(file, fresh=True)
        for value in vars(module).values():
            kind = KINDS.get(type(value))
            if kind is None:
                continue
            key = ("view" if kind == "on_demand" else kind, value.name)
            resolved = _resolve(value, base, file)
            if key in found:
                if found[key][0].to_spec() == resolved.to_spec():
                    continue  # the same definition under two names, or declared alike twice
                raise FeatureError(f"{kind.replace('_', '-')} '{value.name}' is defined twice, "
                                   f"differently ({found[key][1].name} and {file.name}); "
                                   "names are unique.")
            found[key] = (resolved, file)
    definitions = [d for d, _ in found.values()]
    # Entities and views used by others count even when only referenced.
    for definition in list(definitions):
        if isinstance(definition, FeatureView):
            for entity in definition.entities:
                if ("entity", entity.name) not in found:
                    found[("entity", entity.name)] = (entity, base)
                    definitions.append(entity)
    return definitions


def _semantic(definition: Definition) -> dict[str, Any]:
    if isinstance(definition, FeatureView | OnDemandFeatureView):
        return definition.semantic_spec()
    spec = definition.to_spec()
    return {k: v for k, v in spec.items() if k not in _METADATA}


def _check_references(definitions: list[Definition]) -> None:
    views = {d.name: d for d in definitions if isinstance(d, FeatureView | OnDemandFeatureView)}
    for d in definitions:
        if isinstance(d, OnDemandFeatureView):
            for view in d.view_sources:
                if view.name not in views:
                    raise FeatureError(f"On-demand view '{d.name}' reads view '{view.name}', "
                                       "which is not in the repository.")
        if isinstance(d, FeatureService):
            for ref in d.references:
                view_name, _, feature = ref.partition(":")
                target = views.get(view_name)
                if target is None:
                    raise FeatureError(f"Feature service '{d.name}' names unknown view "
                                       f"'{view_name}' (views: {', '.join(sorted(views))}).")
                if feature != "*" and feature not in target.feature_names:
                    raise FeatureError(f"Feature service '{d.name}' names unknown feature "
                                       f"'{feature}' of view '{view_name}'.")


def apply_repository(
    path: str | os.PathLike[str],
    *,
    workspace: WorkspaceArg = None,
    dry_run: bool = False,
    check_sources: bool = True,
) -> Plan:
    """Diff the repository at ``path`` against the workspace and (unless ``dry_run``) apply it.

    Sources are checked first (they exist; their schema fits each view), so a broken
    definition is refused before anything is recorded. All changes commit together.
    """
    ws = as_workspace(workspace)
    repo = str(Path(path).expanduser().resolve())
    definitions = load_repository(path)
    current = {(r.kind, r.name): r for r in current_definitions(ws, include_retired=True)}
    _check_references(definitions)
    plan = Plan(repo)
    # definition, kind, version, action, spec, fingerprint
    writes: list[tuple[Definition, str, int, str, dict[str, Any], str]] = []
    seen: set[tuple[str, str]] = set()
    for definition in definitions:
        kind = KINDS[type(definition)]
        seen.add((kind, definition.name))
        spec = definition.to_spec()
        digest = fingerprint(_semantic(definition))
        row = current.get((kind, definition.name))
        if row is None or row.retired_at is not None:
            version = row.version + 1 if row is not None else 1
            action, detail = "create", ""
        elif row.fingerprint != digest:
            version, action = row.version + 1, "new version"
            detail = _difference(row.spec, spec)
        elif {k: row.spec.get(k) for k in _METADATA} != {k: spec.get(k) for k in _METADATA}:
            version, action, detail = row.version, "update", "metadata"
        else:
            version, action, detail = row.version, "unchanged", ""
        if action in ("create", "new version") and isinstance(definition, FeatureView) \
                and check_sources:
            check_view_source(ws, ViewVersion(definition, version))
        plan.changes.append(Change(kind, definition.name, action, version, detail))
        if action != "unchanged":
            writes.append((definition, kind, version, action, spec, digest))
    for (kind, name), row in sorted(current.items()):
        if (kind, name) not in seen and row.retired_at is None:
            plan.changes.append(Change(kind, name, "retire", row.version))
    if dry_run or not plan.changed:
        plan.applied = not dry_run
        return plan
    with ws.db.session() as session:
        for definition, kind, version, action, spec, digest in writes:
            if action == "update":
                row = session.execute(select(FeatureDefinition).where(
                    FeatureDefinition.kind == kind, FeatureDefinition.name == definition.name,
                    FeatureDefinition.version == version)).scalar_one()
                row.spec = spec
                row.repo = repo
            else:
                session.add(FeatureDefinition(kind=kind, name=definition.name, version=version,
                                              fingerprint=digest, spec=spec, repo=repo,
                                              created_by=ws.actor))
            record_event(session, actor=ws.actor, action=f"feature.{kind}.{action.replace(' ', '_')}",
                         object_type=f"feature_{kind}", object_ref=f"{definition.name}@{version}",
                         details={"fingerprint": digest})
        for change in plan.changes:
            if change.action == "retire":
                row = session.execute(select(FeatureDefinition).where(
                    FeatureDefinition.kind == change.kind, FeatureDefinition.name == change.name,
                    FeatureDefinition.version == change.version)).scalar_one()
                row.retired_at = utcnow()
                record_event(session, actor=ws.actor, action=f"feature.{change.kind}.retired",
                             object_type=f"feature_{change.kind}",
                             object_ref=f"{change.name}@{change.version}", details={})
    plan.applied = True
    return plan


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    changed = [key for key in sorted(set(old) | set(new))
               if key not in _METADATA and old.get(key) != new.get(key)]
    return "changed: " + ", ".join(changed) if changed else ""
