"""The `mlwright` command: parses, calls the Python API, prints.

Exit codes: 0 success, 1 a check failed (e.g. a contract's error-severity rule),
2 a user error (bad input, missing workspace, unreachable database), 70 a bug in mlwright.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.text import Text

from mlwright.cli.audit import audit_app
from mlwright.cli.data import data_app
from mlwright.cli.features import features_app
from mlwright.cli.maintenance import add_maintenance_commands
from mlwright.cli.models import model_app
from mlwright.cli.output import err_console
from mlwright.cli.pipelines import pipeline_app
from mlwright.cli.predict import predict_command, stream_command
from mlwright.cli.runs import runs_app
from mlwright.cli.serving import serve_command
from mlwright.cli.state import CliState
from mlwright.cli.tokens import token_app
from mlwright.cli.trace import trace_command
from mlwright.cli.workspace import config_app, init
from mlwright.errors import MlwrightError

app = typer.Typer(
    name="mlwright",
    help="mlwright: data contracts, datasets, pipelines, run tracking and the rest of production "
         "ML, in one system.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("init")(init)
app.add_typer(config_app, name="config")
app.add_typer(data_app, name="data")
app.add_typer(features_app, name="features")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(runs_app, name="runs")
app.add_typer(model_app, name="model")
app.add_typer(audit_app, name="audit")
app.add_typer(token_app, name="token")
app.command("serve")(serve_command)
app.command("predict")(predict_command)
app.command("stream")(stream_command)
app.command("trace")(trace_command)
add_maintenance_commands(app)


@app.callback()
def global_options(
    ctx: typer.Context,
    workspace: Annotated[str | None, typer.Option(
        "--workspace", "-w", envvar="MLWRIGHT_WORKSPACE",
        help="Workspace folder (default: the nearest folder up with mlwright.toml).")] = None,
    metadata_url: Annotated[str | None, typer.Option(
        help="Metadata database URL (overrides mlwright.toml and the environment).")] = None,
    artifact_url: Annotated[str | None, typer.Option(
        help="Artifact store folder or fsspec URL.")] = None,
    actor: Annotated[str | None, typer.Option(help="Who is acting, for the audit log.")] = None,
    online_url: Annotated[str | None, typer.Option(
        help="Online feature store: sqlite:///PATH or redis://HOST:PORT/DB.")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    overrides = {"metadata_url": metadata_url, "artifact_url": artifact_url, "actor": actor,
                 "online_url": online_url}
    ctx.obj = CliState(workspace=workspace,
                       overrides={k: v for k, v in overrides.items() if v is not None},
                       debug=debug)


def main() -> None:
    debug = "--debug" in sys.argv[1:]
    try:
        app()
    except MlwrightError as exc:
        if debug:
            raise
        err_console.print(Text.assemble(("error: ", "red"), str(exc)), soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        err_console.print(Text.assemble(("internal error: ", "red"), f"{type(exc).__name__}: "
                                        f"{exc} — rerun with --debug for the traceback and "
                                        "report it."), soft_wrap=True)
        sys.exit(70)


if __name__ == "__main__":
    main()
