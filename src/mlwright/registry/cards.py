"""Model cards: one page per version — what it is for, the data, metrics, gates, lineage.

>>> card = model_card("delays@3", workspace=ws)          # doctest: +SKIP
>>> Path("card.md").write_text(card.markdown)            # doctest: +SKIP
>>> Path("card.html").write_text(card.html)              # doctest: +SKIP
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from typing import Any

from mlwright.registry.lineage import LineageGraph, lineage
from mlwright.registry.versions import ModelVersionInfo, get_model_version
from mlwright.workspace import Workspace, as_workspace

WorkspaceLike = Workspace | str | os.PathLike[str] | None

# A card is a list of sections, each a title and rows (label, value) or a table; both
# renderers walk the same list, so the Markdown and the HTML never say different things.
Section = tuple[str, list[tuple[str, str]] | list[list[str]]]


@dataclass(frozen=True)
class ModelCard:
    ref: str
    markdown: str
    html: str
    summary: str


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _sections(info: ModelVersionInfo, graph: LineageGraph, intended_use: str | None) -> list[Section]:
    sections: list[Section] = [("Model", [
        ("version", info.ref), ("flavor", info.flavor),
        ("registered", f"{info.created_at:%Y-%m-%d %H:%M} UTC by {info.created_by}"),
        ("aliases", ", ".join(info.aliases) or "none"),
        ("description", info.description or "—"),
        ("intended use", intended_use or info.params.get("intended_use") or "—"),
    ])]
    if info.signature:
        rows = [["input", c.name, c.type, "yes" if c.nullable else "no"]
                for c in info.signature.inputs]
        if info.signature.output:
            out = info.signature.output
            rows.append(["output", out.name, out.type, "yes" if out.nullable else "no"])
        sections.append(("Signature", [["role", "column", "type", "nullable"], *rows]))
    datasets = info.lineage.get("datasets", [])
    if datasets:
        sections.append(("Data", [["dataset", "rows", "sha256"],
                                  *[[d["ref"], f"{d.get('num_rows', 0):,}",
                                     str(d.get("content_hash", ""))[:16]] for d in datasets]]))
    if info.metrics:
        sections.append(("Metrics", [(k, _number(v)) for k, v in info.metrics.items()]))
    if info.gates:
        results = info.gates.get("results", [])
        sections.append(("Gates", [["gate", "blocking", "result", "details"],
                                   *[[str(r.get("gate_id")), "yes" if r.get("blocking") else "no",
                                      "pass" if r.get("passed") else "FAIL",
                                      str(r.get("message") or "")] for r in results]]))
        slices = [r for r in results if r.get("kind") == "slice"]
        for r in slices:
            per = (r.get("details") or {}).get("slices", [])
            if per:
                sections.append((f"Slices: {r.get('gate_id')}",
                                 [["slice", "rows", "value"],
                                  *[[str(e.get("slice")), str(e.get("rows", "")),
                                     _number(e.get("value"))] for e in per]]))
    sections.append(("Lineage", [(n["kind"], n["label"]) for n in graph.nodes]))
    if info.params:
        sections.append(("Parameters", [(k, _number(v)) for k, v in info.params.items()]))
    return sections


def _markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# Model card: {title}", ""]
    for heading, rows in sections:
        lines += [f"## {heading}", ""]
        if rows and isinstance(rows[0], list):
            header, *body = rows
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "---|" * len(header))
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
                      for row in body if isinstance(row, list)]
        else:
            lines += [f"- **{label}**: {value}" for label, value in rows]
        lines.append("")
    return "\n".join(lines)


def _html(title: str, sections: list[Section]) -> str:
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             f"<title>Model card: {e(title)}</title>",
             "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem}"
             "</style></head><body>", f"<h1>Model card: {e(title)}</h1>"]
    for heading, rows in sections:
        parts.append(f"<h2>{e(heading)}</h2>")
        if rows and isinstance(rows[0], list):
            header, *body = rows
            parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>"
                      for row in body if isinstance(row, list)]
            parts.append("</table>")
        else:
            parts.append("<dl>" + "".join(f"<dt>{e(label)}</dt><dd>{e(value)}</dd>"
                                          for label, value in rows) + "</dl>")
    parts.append("</body></html>")
    return "".join(parts)


def model_card(ref: str, *, intended_use: str | None = None,
               workspace: WorkspaceLike = None) -> ModelCard:
    """The card of a version, in Markdown and HTML, plus a one-line summary."""
    ws = as_workspace(workspace)
    info = get_model_version(ref, workspace=ws)
    sections = _sections(info, lineage(info.ref, workspace=ws), intended_use)
    gates = {True: "gates passed", False: "gates FAILED", None: "no gates"}[info.gates_passed]
    metrics = ", ".join(f"{k}={_number(v)}" for k, v in list(info.metrics.items())[:4])
    summary = f"{info.ref} ({info.flavor}) · {gates}" + (f" · {metrics}" if metrics else "")
    return ModelCard(info.ref, _markdown(info.ref, sections), _html(info.ref, sections), summary)
