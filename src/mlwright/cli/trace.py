"""`mlwright trace REQUEST_ID`: one request, from the prediction log back to data and code."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.tree import Tree

from mlwright.cli.models import _tree as lineage_tree
from mlwright.cli.output import console, print_json, short
from mlwright.cli.state import state
from mlwright.serving.trace import FeatureViewTrace, PredictionTrace, Trace, trace


def _values(values: dict[str, Any] | None, width: int = 80) -> str:
    if not values:
        return "—"
    text = ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else
                     f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}"
                     for k, v in values.items())
    return short(text, width)


def _output(value: Any) -> str:
    if isinstance(value, list):
        return short("[" + ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v)
                                     for v in value) + "]", 60)
    return short(value, 40, digits=6)


def _view_branch(parent: Tree, view: FeatureViewTrace) -> None:
    if view.version is None:
        parent.add(f"[bold]feature view {escape(view.ref)}[/] · [yellow]{escape(view.note or '')}[/]")
        return
    detail = (f"on-demand, reads {escape(', '.join(view.input_views))}" if view.kind == "on_demand"
              else escape(view.source or ""))
    branch = parent.add(f"[bold]feature view {escape(view.name)}@{view.version}[/] · {detail}")
    for dataset in view.datasets:
        if dataset.get("ref") is None:
            branch.add(f"dataset {escape(dataset['declared'])} · [yellow]"
                       f"{escape(dataset.get('note') or '')}[/]")
            continue
        pinned = "" if dataset["declared"] == dataset["ref"] else \
            f" (declared {escape(dataset['declared'])}, current at the request)"
        branch.add(f"dataset [bold]{escape(dataset['ref'])}[/]{pinned} · "
                   f"{dataset['num_rows']:,} rows · sha256 {str(dataset['content_hash'])[:12]}")
    for path in view.paths:
        branch.add(f"files {escape(path)}")


def _prediction_tree(prediction: PredictionTrace, rows: int) -> Tree:
    info = prediction.model_version
    if info is None:
        root = Tree(f"[bold]{escape(prediction.ref)}[/] · [yellow]{escape(prediction.note or '')}[/]")
    else:
        aliases = f" · aliases {', '.join(info.aliases)}" if info.aliases else ""
        root = Tree(f"[bold]{escape(prediction.ref)}[/] {info.flavor}{escape(aliases)}")
    shown = prediction.rows[:rows]
    title = f"rows ({len(shown)} of {len(prediction.rows)})" if len(shown) < len(prediction.rows) \
        else "rows"
    branch = root.add(title)
    for row in shown:
        features = f" · features {_values(row['features'])}" if row.get("features") else ""
        branch.add(f"#{row['row']} {_values(row['inputs'])}{features} → "
                   f"[bold]{_output(row['output'])}[/]")
    for view in prediction.feature_views:
        _view_branch(root, view)
    if prediction.lineage is not None:  # training datasets, run, code, parent versions
        root.children.extend(lineage_tree(prediction.lineage).children)
    return root


def _print(found: Trace, rows: int) -> None:
    first = found.predictions[0]
    console.print(f"request [bold]{escape(found.request_id)}[/] · "
                  f"{first.time:%Y-%m-%d %H:%M:%S.%f} UTC · {first.latency_ms:.1f} ms · "
                  f"status {first.status} · {len(first.rows)} row(s)")
    for prediction in found.predictions:
        if prediction is not first:
            console.print(f"also answered by {escape(prediction.ref)} at "
                          f"{prediction.time:%H:%M:%S.%f} UTC · {prediction.latency_ms:.1f} ms "
                          f"· status {prediction.status}")
        console.print(_prediction_tree(prediction, rows))
    if not found.feedback:
        console.print("feedback: none yet")
    for item in found.feedback:
        which = "all rows" if item["row"] is None else f"row {item['row']}"
        console.print(f"feedback: {which} → [bold]{short(item['label'], 40)}[/] at "
                      f"{item['time']:%Y-%m-%d %H:%M:%S} UTC")


def trace_command(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="The request id the server answered with.")],
    rows: Annotated[int, typer.Option(min=0, help="How many rows to show.")] = 3,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """One request: its rows, model version, feature views and their data, run, code, feedback."""
    workspace = state(ctx).open()
    try:
        found = trace(request_id, workspace=workspace)
    finally:
        workspace.close()
    if json_out:
        print_json(found.to_dict())
        return
    _print(found, rows)
