"""Lineage: where a model version came from, as a graph, and what used a given input.

>>> graph = lineage("delays@3", workspace=ws)      # doctest: +SKIP
>>> [n["id"] for n in graph.nodes]                 # doctest: +SKIP
['model:delays@3', 'run:3f2a…', 'code:8a0a…', 'dataset:flights@2', 'model:delays@2']
>>> used_by("dataset", "flights@2", workspace=ws)  # doctest: +SKIP
['delays@3']
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from mlwright.errors import NotFoundError
from mlwright.registry.versions import get_model_version
from mlwright.store import Model, ModelLineage, ModelVersion
from mlwright.workspace import Workspace, as_workspace

WorkspaceLike = Workspace | str | os.PathLike[str] | None


@dataclass
class LineageGraph:
    """Nodes (``{"id", "kind", "label", ...}``) and edges (``(child, parent)``): the version
    at the root, then what it was made from, parents' parents included."""

    root: str
    nodes: list[dict[str, Any]] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)

    def add(self, node: dict[str, Any], parent_of: str | None = None) -> str:
        if all(n["id"] != node["id"] for n in self.nodes):
            self.nodes.append(node)
        if parent_of is not None and (parent_of, node["id"]) not in self.edges:
            self.edges.append((parent_of, node["id"]))
        return str(node["id"])

    def children(self, node_id: str) -> list[dict[str, Any]]:
        """What ``node_id`` was made from."""
        by_id = {n["id"]: n for n in self.nodes}
        return [by_id[b] for a, b in self.edges if a == node_id]

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root, "nodes": self.nodes,
                "edges": [{"from": a, "to": b} for a, b in self.edges]}


def lineage(ref: str, *, workspace: WorkspaceLike = None, depth: int = 10) -> LineageGraph:
    """The lineage graph of a model version, following parent versions up to ``depth``."""
    ws = as_workspace(workspace)
    info = get_model_version(ref, workspace=ws)
    graph = LineageGraph(root=f"model:{info.ref}")
    _add_version(ws, graph, info.ref, None, depth)
    return graph


def _add_version(ws: Workspace, graph: LineageGraph, ref: str, parent_of: str | None,
                 depth: int) -> None:
    info = get_model_version(ref, workspace=ws)
    me = graph.add({"id": f"model:{info.ref}", "kind": "model", "label": info.ref,
                    "flavor": info.flavor, "created_at": info.created_at.isoformat(),
                    "created_by": info.created_by, "aliases": info.aliases,
                    "gates_passed": info.gates_passed, "metrics": info.metrics}, parent_of)
    found = info.lineage
    if found.get("run"):
        run = graph.add({"id": f"run:{found['run']}", "kind": "run",
                         "label": f"{found.get('run_kind', 'run')} run {found['run'][:12]} "
                                  f"({found.get('experiment')})",
                         "params": found.get("run_params", {})}, me)
        code = found.get("code_version") or {}
        if code.get("git"):
            graph.add({"id": f"code:{code.get('commit')}", "kind": "code",
                       "label": f"code {str(code.get('commit'))[:12]} on {code.get('branch')}"
                                + (" + uncommitted changes" if code.get("dirty") else ""),
                       **{k: code.get(k) for k in ("repository", "dirty", "diff_sha256")}}, run)
    for dataset in found.get("datasets", []):
        graph.add({"id": f"dataset:{dataset['ref']}", "kind": "dataset",
                   "label": f"dataset {dataset['ref']}", **dataset}, me)
    for view in found.get("feature_views", []):
        graph.add({"id": f"feature_view:{view}", "kind": "feature_view",
                   "label": f"feature view {view}"}, me)
    if found.get("parent") and depth > 0:
        try:
            _add_version(ws, graph, found["parent"], me, depth - 1)
        except NotFoundError:  # the parent's model was removed; keep the reference
            graph.add({"id": f"model:{found['parent']}", "kind": "model",
                       "label": f"{found['parent']} (gone)"}, me)


def used_by(kind: str, ref: str, *, workspace: WorkspaceLike = None) -> list[str]:
    """The model versions that list ``ref`` (a dataset version, run, model) as an input."""
    ws = as_workspace(workspace)
    with ws.db.session() as session:
        rows = session.execute(
            select(Model.name, ModelVersion.version)
            .join(ModelVersion, ModelVersion.model_id == Model.id)
            .join(ModelLineage, ModelLineage.version_id == ModelVersion.id)
            .where(ModelLineage.kind == kind, ModelLineage.ref == ref)
            .order_by(Model.name, ModelVersion.version)).all()
    return [f"{name}@{version}" for name, version in rows]
