"""`mlwright model ...`: list, show, lineage, card, alias, aliases, predict, optimize, export,
import, import-mlflow."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markdown import Markdown
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from mlwright.cli.output import console, err_console, print_json, short, write_whole
from mlwright.cli.state import state
from mlwright.errors import RegistryError
from mlwright.registry import (
    LineageGraph,
    alias_history,
    get_model_version,
    lineage,
    list_model_versions,
    list_models,
    load_model,
    model_card,
    remove_alias,
    set_alias,
)

model_app = typer.Typer(help="The model registry: versions, lineage, aliases.",
                        no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _gates(passed: bool | None) -> str:
    return {True: "[green]passed[/]", False: "[red]FAILED[/]", None: "[dim]none[/]"}[passed]


@model_app.command("list")
def list_command(ctx: typer.Context, json_out: JsonFlag = False) -> None:
    """Registered models with their latest version and aliases."""
    workspace = state(ctx).open()
    models = list_models(workspace=workspace)
    workspace.close()
    if json_out:
        print_json([m.to_dict() for m in models])
        return
    if not models:
        console.print("No models yet; register one with mlwright.register_model(...).")
        return
    table = Table(title="Models")
    for column in ("name", "versions", "latest", "aliases", "description"):
        table.add_column(column, overflow="fold")
    for m in models:
        aliases = ", ".join(f"{a}→@{v}" for a, v in sorted(m.aliases.items()))
        table.add_row(escape(m.name), str(m.versions), f"@{m.latest}", escape(aliases),
                      escape(m.description or ""))
    console.print(table)


@model_app.command("show")
def show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME@N, NAME@latest or NAME@ALIAS.")],
    json_out: JsonFlag = False,
) -> None:
    """A version: flavor, signature, metrics, gates, lineage; and the model's other versions."""
    workspace = state(ctx).open()
    info = get_model_version(ref, workspace=workspace)
    versions = list_model_versions(info.name, workspace=workspace)
    workspace.close()
    if json_out:
        print_json({**info.to_dict(), "versions": [v.version for v in versions]})
        return
    aliases = f" · aliases {', '.join(info.aliases)}" if info.aliases else ""
    console.print(f"[bold]{escape(info.ref)}[/]  {info.flavor} · gates {_gates(info.gates_passed)}"
                  f"{aliases} · by {escape(info.created_by)} at {info.created_at:%Y-%m-%d %H:%M} UTC")
    console.print(f"  manifest sha256 {info.manifest_digest} ({len(info.files)} files)")
    if info.signature:
        inputs = ", ".join(f"{c.name}: {c.type}" for c in info.signature.inputs)
        output = info.signature.output
        console.print(f"  inputs   {escape(inputs)}")
        if output:
            console.print(f"  output   {escape(output.name)}: {output.type}")
    if info.metrics:
        console.print("  metrics  " + ", ".join(f"{k}={short(v, digits=4)}"
                                                 for k, v in info.metrics.items()))
    if info.gates:
        table = Table(title="Gates")
        for column in ("gate", "blocking", "result", "details"):
            table.add_column(column, overflow="fold")
        for r in info.gates.get("results", []):
            table.add_row(escape(str(r.get("gate_id"))), "yes" if r.get("blocking") else "no",
                          "[green]pass[/]" if r.get("passed") else "[red]FAIL[/]",
                          escape(str(r.get("message") or "")))
        console.print(table)
    console.print("  versions " + ", ".join(f"@{v.version}" for v in versions))


def _tree(graph: LineageGraph) -> Tree:
    by_id = {n["id"]: n for n in graph.nodes}
    root = by_id[graph.root]

    def label(node: dict[str, Any]) -> str:
        text = f"[bold]{escape(node['label'])}[/]"
        if node["kind"] == "model":
            extra = [node.get("flavor") or ""]
            if node.get("aliases"):
                extra.append("aliases " + ", ".join(node["aliases"]))
            if "gates_passed" in node:
                extra.append("gates " + _gates(node.get("gates_passed")))
            text += " " + " · ".join(e for e in extra if e)
        elif node["kind"] == "dataset" and node.get("num_rows") is not None:
            text += f" · {node['num_rows']:,} rows · sha256 {str(node.get('content_hash'))[:12]}"
        elif node["kind"] == "run" and node.get("params"):
            text += " · " + escape(", ".join(f"{k}={short(v, 12)}"
                                             for k, v in list(node["params"].items())[:6]))
        return text

    def grow(branch: Tree, node: dict[str, Any], seen: set[str]) -> None:
        for child in graph.children(node["id"]):
            if child["id"] in seen:
                continue
            grow(branch.add(label(child)), child, seen | {child["id"]})

    tree = Tree(label(root))
    grow(tree, root, {root["id"]})
    return tree


@model_app.command("lineage")
def lineage_command(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@N (or NAME, NAME@ALIAS).")],
    json_out: JsonFlag = False,
) -> None:
    """Where a version came from: run, code, datasets, parent versions."""
    workspace = state(ctx).open()
    graph = lineage(ref, workspace=workspace)
    workspace.close()
    if json_out:
        print_json(graph.to_dict())
        return
    console.print(_tree(graph))


@model_app.command("alias")
def alias_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model.")],
    alias: Annotated[str, typer.Argument(help="champion, challenger, or any name.")],
    version: Annotated[str | None, typer.Argument(help="N or latest.")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the alias.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Point an alias at a version (atomically, recorded), or --remove it."""
    if (version is None) == (not remove):
        raise RegistryError("Give a version (N or latest) or --remove, not both nor neither.")
    workspace = state(ctx).open()
    move = remove_alias(name, alias, workspace=workspace) if remove else \
        set_alias(name, alias, version or "latest", workspace=workspace)
    workspace.close()
    if json_out:
        print_json(move.to_dict())
        return
    before = f"@{move.from_version}" if move.from_version else "nothing"
    after = f"@{move.to_version}" if move.to_version else "nothing (removed)"
    console.print(f"{escape(name)}: '{escape(alias)}' moved from {before} to {after}")


@model_app.command("aliases")
def aliases_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The model.")],
    alias: Annotated[str | None, typer.Option(help="Only this alias.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """The history of a model's aliases, oldest first."""
    workspace = state(ctx).open()
    moves = alias_history(name, alias, workspace=workspace)
    workspace.close()
    if json_out:
        print_json([m.to_dict() for m in moves])
        return
    table = Table(title=f"Aliases of {escape(name)}")
    for column in ("at (UTC)", "alias", "from", "to", "by"):
        table.add_column(column)
    for m in moves:
        table.add_row(f"{m.at:%Y-%m-%d %H:%M:%S}", escape(m.alias),
                      f"@{m.from_version}" if m.from_version else "",
                      f"@{m.to_version}" if m.to_version else "(removed)", escape(m.actor))
    console.print(table)


@model_app.command("predict")
def predict(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@N or NAME@ALIAS.")],
    data: Annotated[Path, typer.Argument(help="Parquet or CSV with the signature's columns.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Parquet file to write.")],
) -> None:
    """Batch predictions from a file: the input columns plus a `prediction` column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlwright.data.io import read_path

    workspace = state(ctx).open()
    model = load_model(ref, workspace=workspace)
    workspace.close()
    table = read_path(data)
    scores = model.predict(table)
    result = table.append_column("prediction", pa.array(list(scores) if getattr(scores, "ndim", 1)
                                                        > 1 else scores))
    write_whole(output, lambda target: pq.write_table(result, target), "predictions")
    err_console.print(f"Wrote {result.num_rows:,} predictions of {model.version.ref} to "
                      f"{escape(str(output))}")


@model_app.command("optimize")
def optimize_command(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@N or NAME@ALIAS of a scikit-learn, LightGBM or "
                                            "XGBoost version.")],
    data: Annotated[str, typer.Option(
        "--data", help="The validation rows: a Parquet or CSV file, or a registered dataset "
                       "(NAME@N).")],
    label: Annotated[str | None, typer.Option(help="A column of the data to leave out.")] = None,
    tolerance: Annotated[float, typer.Option(
        help="Largest |onnx - original| / max(|original|, 1) accepted on any row.")] = 1e-4,
    alias: Annotated[str | None, typer.Option(help="Point this alias at the new version.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Convert a version to ONNX; register it as the next version if its predictions on the
    validation rows match the original's within the tolerance."""
    from mlwright.registry import optimize_model

    workspace = state(ctx).open()
    try:
        result = optimize_model(ref, data, label=label, tolerance=tolerance, alias=alias,
                                workspace=workspace)
    finally:
        workspace.close()
    if json_out:
        print_json(result.to_dict())
        return
    parity = result.parity
    agreement = ("" if parity.label_agreement is None
                 else f" · predicted class agrees on {parity.label_agreement:.2%} of rows")
    aliases = f" · aliases {', '.join(result.version.aliases)}" if result.version.aliases else ""
    console.print(f"Parity on {parity.rows:,} rows: max |Δ| {parity.max_abs_diff:.3g}, scaled "
                  f"{parity.max_rel_diff:.3g} (tolerance {parity.tolerance:g}){agreement}")
    console.print(f"Predict: original {result.original_predict_s * 1000:.1f} ms, ONNX Runtime "
                  f"{result.onnx_predict_s * 1000:.1f} ms ({result.speedup:.1f}x)")
    console.print(f"Registered [bold]{escape(result.ref)}[/] (onnx, {escape(result.converter)}) from "
                  f"{escape(result.parent)}{escape(aliases)}")


@model_app.command("card")
def card(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@N or NAME@ALIAS.")],
    html: Annotated[Path | None, typer.Option(help="Also write the card as HTML here.")] = None,
    markdown: Annotated[Path | None, typer.Option(help="Also write it as Markdown here.")] = None,
    intended_use: Annotated[str | None, typer.Option(help="What the model is for.")] = None,
    summary: Annotated[bool, typer.Option("--summary", help="Only the one-line summary.")] = False,
) -> None:
    """The model card of a version: data, metrics, slices, gates, lineage, intended use."""
    workspace = state(ctx).open()
    made = model_card(ref, intended_use=intended_use, workspace=workspace)
    workspace.close()
    for path, text in ((html, made.html), (markdown, made.markdown)):
        if path is not None:
            write_whole(path, partial(Path.write_text, data=text, encoding="utf-8"),
                        "the model card")
            err_console.print(f"Wrote {escape(str(path))}")
    if summary:
        console.print(made.summary, markup=False, highlight=False)
    else:
        console.print(Markdown(made.markdown))


# -- bundles and MLflow imports ------------------------------------------------------------


@model_app.command("export")
def export_command(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME@N or NAME@ALIAS.")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="The .tar.gz to write (a folder: NAME-N.tar.gz in it; default: "
                               "NAME-N.tar.gz here).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Write a version to one self-contained file: its files and a manifest of their sha256."""
    from mlwright.cli.output import human_bytes
    from mlwright.registry.bundles import export_version

    workspace = state(ctx).open()
    try:
        bundle = export_version(ref, output or Path.cwd(), workspace=workspace)
    finally:
        workspace.close()
    if json_out:
        print_json(bundle.to_dict())
        return
    console.print(f"Wrote {escape(bundle.ref)} to {escape(str(bundle.path))} ({bundle.files} "
                  f"files, {human_bytes(bundle.size)}; manifest sha256 {bundle.manifest_sha256})")


@model_app.command("import")
def import_command(
    ctx: typer.Context,
    bundle: Annotated[Path, typer.Argument(help="A bundle written by `mlwright model export`.")],
    name: Annotated[str | None, typer.Option(
        "--name", help="Register it under this model (default: the bundle's model).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Register a bundle as the next version, after checking every file against its manifest."""
    from mlwright.registry.bundles import import_bundle

    workspace = state(ctx).open()
    try:
        info = import_bundle(bundle, name, workspace=workspace)
    finally:
        workspace.close()
    if json_out:
        print_json(info.to_dict())
        return
    origin = info.lineage["imported_from"]["model"]
    console.print(f"Imported {escape(origin)} from {escape(bundle.name)} as [bold]"
                  f"{escape(info.ref)}[/] ({info.flavor}, {len(info.files)} files verified)")


@model_app.command("import-mlflow")
def import_mlflow_command(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="An MLflow model directory (holds MLmodel).")],
    name: Annotated[str, typer.Option("--name", help="Register it under this model.")],
    json_out: JsonFlag = False,
) -> None:
    """Register an MLflow model (LightGBM, XGBoost, ONNX, skops scikit-learn, TorchScript)."""
    from mlwright.registry.mlflow_import import import_mlflow_model

    workspace = state(ctx).open()
    try:
        info = import_mlflow_model(directory, name, workspace=workspace)
    finally:
        workspace.close()
    if json_out:
        print_json(info.to_dict())
        return
    source = info.lineage["imported_from"]
    run = f" (MLflow run {source['run_id']})" if source.get("run_id") else ""
    console.print(f"Imported the MLflow {source['mlflow_flavor']} model {escape(str(directory))}"
                  f"{run} as [bold]{escape(info.ref)}[/] ({info.flavor})")
