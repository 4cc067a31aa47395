"""The applied definitions, read back from the metadata store, and feature references.

>>> catalog = load_catalog(workspace)                                       # doctest: +SKIP
>>> selection = catalog.select(["user_stats:clicks", "ratios:*"])          # doctest: +SKIP

A reference is ``view:feature``, ``view:*`` or the name of a feature service.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from mlwright.errors import FeatureError
from mlwright.features.definitions import Entity, FeatureView, Field, OnDemandFeatureView
from mlwright.features.online import OnlineTable
from mlwright.store import FeatureDefinition
from mlwright.workspace import Workspace


@dataclass(frozen=True)
class ViewVersion:
    """A feature view as applied: its definition and version number."""

    view: FeatureView
    version: int

    @property
    def name(self) -> str:
        return self.view.name

    @property
    def ref(self) -> str:
        return f"{self.view.name}@{self.version}"

    @property
    def online_table(self) -> OnlineTable:
        return OnlineTable(f"{self.view.name}__v{self.version}",
                           tuple((f.name, f.dtype) for f in self.view.features))


@dataclass(frozen=True)
class OnDemandVersion:
    """An on-demand view as applied; its transform is imported from the repository lazily."""

    name: str
    version: int
    spec: dict[str, Any]
    repo: str | None

    @property
    def features(self) -> list[Field]:
        return [Field(n, t) for n, t in self.spec["features"]]

    @property
    def input_views(self) -> list[str]:
        return list(self.spec["views"])

    @property
    def request_fields(self) -> list[Field]:
        return [Field(n, t) for r in self.spec["request"] for n, t in r["schema"]]

    def transform(self) -> Callable[[Any], Any]:
        return load_transform(self.name, self.spec.get("transform_ref", ""), self.repo,
                              self.spec.get("code", ""))


_TRANSFORMS: dict[tuple[str, str, str], Callable[[Any], Any]] = {}


def load_transform(name: str, ref: str, repo: str | None, code: str = "") -> Callable[[Any], Any]:
    """Import ``file.py:function`` from the repository folder the view was applied from
    (once per version of its code)."""
    key = (ref, repo or "", code)
    if key in _TRANSFORMS:
        return _TRANSFORMS[key]
    file_name, _, function = ref.partition(":")
    path = Path(repo or ".") / file_name
    if not file_name or not function or not path.is_file():
        raise FeatureError(f"The transform of on-demand view '{name}' ({ref or 'no reference'}) "
                           f"is not found in the feature repository {repo}; run "
                           "`mlwright features apply` from where the repository is now.")
    module = import_repo_file(path, fresh=True)
    transform = getattr(module, function, None)
    if transform is None:
        transform_view = next((v for v in vars(module).values()
                               if isinstance(v, OnDemandFeatureView) and v.name == name), None)
        transform = transform_view.transform if transform_view else None
    if not callable(transform):
        raise FeatureError(f"{path} has no function '{function}' for on-demand view '{name}'.")
    _TRANSFORMS[key] = transform
    return transform


def import_repo_file(path: Path, *, fresh: bool = False) -> Any:
    """Import one file of a feature repository under a name private to its location
    (``fresh``: again, even if it was imported before, to see edits)."""
    module_name = "mlwright_repo_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]
    if module_name in sys.modules and not fresh:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise FeatureError(f"Cannot import {path}: not a Python file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except FeatureError:
        del sys.modules[module_name]
        raise
    except Exception as exc:
        del sys.modules[module_name]
        raise FeatureError(f"Importing {path} failed: {type(exc).__name__}: {exc}") from exc
    return module


@dataclass(frozen=True)
class Selected:
    """One requested feature: where it comes from and the column it becomes."""

    view: str
    feature: str
    dtype: str
    column: str
    on_demand: bool = False


@dataclass
class Selection:
    """Requested features grouped by view, plus what on-demand views need as inputs."""

    features: list[Selected]
    views: list[ViewVersion]  # every stored view that must be read, requested or needed
    on_demand: list[OnDemandVersion]
    hidden: list[Selected] = field(default_factory=list)  # inputs of transforms, not returned

    @property
    def join_keys(self) -> dict[str, str]:
        keys: dict[str, str] = {}
        for view in self.views:
            keys.update(view.view.join_keys)
        return keys

    @property
    def request_fields(self) -> list[Field]:
        return [f for od in self.on_demand for f in od.request_fields]


@dataclass
class Catalog:
    """Current versions of every applied definition."""

    entities: dict[str, Entity]
    views: dict[str, ViewVersion]
    on_demand: dict[str, OnDemandVersion]
    services: dict[str, dict[str, Any]]

    def view(self, name: str) -> ViewVersion:
        try:
            return self.views[name]
        except KeyError:
            raise FeatureError(f"Unknown feature view '{name}' (views: "
                               f"{', '.join(sorted(self.views)) or 'none applied'}); check the "
                               "name or run `mlwright features apply`.") from None

    def expand(self, features: str | Sequence[str]) -> list[str]:
        """Service names and ``view:*`` turned into ``view:feature`` references."""
        if isinstance(features, str):
            features = [features]
        refs: list[str] = []
        for item in features:
            if ":" not in item:
                if item not in self.services:
                    raise FeatureError(
                        f"'{item}' is neither a feature service (services: "
                        f"{', '.join(sorted(self.services)) or 'none'}) nor a 'view:feature' "
                        "reference.")
                refs.extend(self.expand(self.services[item]["features"]))
                continue
            view, _, feature = item.partition(":")
            if feature == "*":
                names = (self.views[view].view.feature_names if view in self.views else
                         [f.name for f in self.on_demand[view].features] if view in self.on_demand
                         else [])
                if not names:
                    self.view(view)  # raises: unknown view
                refs.extend(f"{view}:{n}" for n in names)
            else:
                refs.append(item)
        return list(dict.fromkeys(refs))

    def _lookup(self, ref: str, full_names: bool) -> Selected:
        view, _, feature = ref.partition(":")
        column = f"{view}__{feature}" if full_names else feature
        if view in self.on_demand:
            fields = {f.name: f for f in self.on_demand[view].features}
            on_demand = True
        else:
            fields = {f.name: f for f in self.view(view).view.features}
            on_demand = False
        if feature not in fields:
            raise FeatureError(f"Unknown feature '{feature}' in view '{view}' (features: "
                               f"{', '.join(fields)}).")
        return Selected(view, feature, fields[feature].dtype, column, on_demand)

    def select(self, features: str | Sequence[str], *, full_names: bool = False) -> Selection:
        """Resolve references; on-demand features pull in the view features they read."""
        chosen = [self._lookup(ref, full_names) for ref in self.expand(features)]
        if not chosen:
            raise FeatureError("No features requested; name at least one 'view:feature'.")
        columns = [s.column for s in chosen]
        clash = sorted({c for c in columns if columns.count(c) > 1})
        if clash:
            raise FeatureError(f"Features named {', '.join(clash)} come from more than one view; "
                               "ask for full feature names (view__feature) to keep both.")
        on_demand = [self.on_demand[v] for v in dict.fromkeys(s.view for s in chosen
                                                              if s.on_demand)]
        hidden: list[Selected] = []
        present = {(s.view, s.feature) for s in chosen}
        for od in on_demand:
            for name in od.input_views:
                for feature in self.view(name).view.features:
                    if (name, feature.name) not in present:
                        present.add((name, feature.name))
                        hidden.append(Selected(name, feature.name, feature.dtype,
                                               f"__in_{name}__{feature.name}"))
        view_names = dict.fromkeys(s.view for s in [*chosen, *hidden] if not s.on_demand)
        return Selection(chosen, [self.views[n] for n in view_names], on_demand, hidden)


def _current(ws: Workspace) -> list[FeatureDefinition]:
    latest = (select(FeatureDefinition.kind, FeatureDefinition.name,
                     func.max(FeatureDefinition.version).label("version"))
              .group_by(FeatureDefinition.kind, FeatureDefinition.name).subquery())
    query = select(FeatureDefinition).join(
        latest, (FeatureDefinition.kind == latest.c.kind)
        & (FeatureDefinition.name == latest.c.name)
        & (FeatureDefinition.version == latest.c.version))
    with ws.db.session() as session:
        rows = list(session.execute(query).scalars())
        session.expunge_all()
    return rows


def current_definitions(ws: Workspace, *, include_retired: bool = False) -> list[FeatureDefinition]:
    """The newest row of every definition (retired ones only when asked)."""
    return [r for r in _current(ws) if include_retired or r.retired_at is None]


def load_catalog(ws: Workspace) -> Catalog:
    entities: dict[str, Entity] = {}
    views: dict[str, ViewVersion] = {}
    on_demand: dict[str, OnDemandVersion] = {}
    services: dict[str, dict[str, Any]] = {}
    for row in current_definitions(ws):
        if row.kind == "entity":
            entities[row.name] = Entity.from_spec(row.spec)
        elif row.kind == "view":
            views[row.name] = ViewVersion(FeatureView.from_spec(row.name, row.spec), row.version)
        elif row.kind == "on_demand":
            on_demand[row.name] = OnDemandVersion(row.name, row.version, dict(row.spec), row.repo)
        elif row.kind == "service":
            services[row.name] = dict(row.spec)
    return Catalog(entities, views, on_demand, services)
