"""`mlwright serve`: registered models behind the inference API."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from mlwright.cli.output import err_console
from mlwright.cli.state import state
from mlwright.errors import ServingError
from mlwright.serving.settings import ServeSettings


def serve_command(
    ctx: typer.Context,
    models: Annotated[list[str], typer.Argument(
        help="Models to serve: NAME@ALIAS (follows the alias), NAME@N or NAME (latest).")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port (0: any free port).")] = 8080,
    grpc_port: Annotated[int, typer.Option(help="gRPC port (0: no gRPC).")] = 0,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    auth: Annotated[bool, typer.Option(
        "--auth/--no-auth", help="Require an API token (--no-auth: local use only).")] = True,
    max_batch_rows: Annotated[int, typer.Option(help="Rows in one predict call.")] = 256,
    max_wait_us: Annotated[int, typer.Option(
        help="Longest a request waits for company before its batch runs (µs).")] = 1000,
    max_request_rows: Annotated[int, typer.Option(help="Rows in one request.")] = 10_000,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body.")] = 16 * 1024 * 1024,
    rate_limit: Annotated[float, typer.Option(
        help="Requests per second per token (0: no limit).")] = 0.0,
    rate_burst: Annotated[int, typer.Option(help="Burst allowed above the rate.")] = 100,
    log_predictions: Annotated[bool, typer.Option(
        "--log-predictions/--no-log-predictions",
        help="Write every request to the prediction log.")] = True,
    response_cache: Annotated[int, typer.Option(
        help="Cache this many responses per model, by input hash (0: off).")] = 0,
    drain_seconds: Annotated[float, typer.Option(
        help="How long SIGTERM waits for in-flight requests.")] = 30.0,
    follow_seconds: Annotated[float, typer.Option(
        help="How often to ask the registry whether a served alias moved.")] = 2.0,
) -> None:
    """Serve models over REST (Open Inference Protocol v2 and /v1 JSON) and gRPC until stopped."""
    from mlwright.serving.server import serve

    try:
        settings = ServeSettings(
            host=host, port=port, grpc_port=grpc_port, workers=workers, auth=auth,
            max_batch_rows=max_batch_rows, max_wait_us=max_wait_us,
            max_request_rows=max_request_rows, max_body_bytes=max_body_bytes,
            rate_limit=rate_limit, rate_burst=rate_burst, log_predictions=log_predictions,
            response_cache=response_cache, drain_seconds=drain_seconds,
            follow_seconds=follow_seconds)
    except ValidationError as exc:
        problem = exc.errors()[0]
        raise ServingError(f"--{str(problem['loc'][0]).replace('_', '-')}: {problem['msg']}.") \
            from None
    cli = state(ctx)
    if not auth:
        err_console.print("[yellow]auth is off: anyone who can reach the port can predict[/]")

    def announce(address: str) -> None:
        grpc = f", gRPC on {host}:{grpc_port}" if grpc_port else ""
        err_console.print(f"serving {', '.join(models)} on {address}{grpc} with {workers} "
                          f"worker(s); Ctrl-C or SIGTERM to stop", soft_wrap=True)

    serve(models, workspace=cli.workspace, overrides=cli.overrides, settings=settings,
          announce=announce)
