"""`mlwright serve`: inference workers under a supervisor.

>>> serve(["delays@champion"], workspace="demo", settings=ServeSettings(workers=2))  # doctest: +SKIP

The supervisor binds the port once and starts N worker processes that share the socket
(uvicorn's multiprocess supervisor: a worker that dies or stops answering its health check is
replaced; SIGTERM stops accepting, lets in-flight requests finish within ``drain_seconds``,
then exits). Each worker is a uvicorn server on uvloop and httptools running the REST app
and, when ``grpc_port`` is set, the gRPC service on the same event loop (the gRPC port is
shared with SO_REUSEPORT). Workers get their configuration through one environment variable,
since they are fresh interpreters (spawned, not forked: no inherited database connections).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlwright.errors import ServingError
from mlwright.serving.settings import ServeSettings
from mlwright.workspace import open_workspace

if TYPE_CHECKING:
    from mlwright.serving.app import FastRoutes

CONFIG_ENV = "MLWRIGHT_SERVE_CONFIG"
log = logging.getLogger("mlwright.serving")


def create_app() -> FastRoutes:
    """The worker's app, from the configuration the supervisor put in the environment."""
    from mlwright.security.tokens import TokenVerifier
    from mlwright.serving.app import build_app
    from mlwright.serving.host import ModelHost

    # The prediction log's writer thread turns buffered requests into Arrow tables in Python,
    # under the GIL: with the default 5 ms switch interval a request arriving meanwhile waited
    # up to tens of milliseconds (p99 at one connection 23 ms). Half a millisecond bounds it.
    sys.setswitchinterval(0.0005)
    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise ServingError(f"{CONFIG_ENV} is not set; start workers with `mlwright serve`.")
    config = json.loads(raw)
    settings = ServeSettings(**config["settings"])
    workspace = open_workspace(config["workspace"], overrides=config.get("overrides") or {})
    host = ModelHost(workspace, config["refs"], settings=settings,
                     worker_id=f"{socket.gethostname()}-{os.getpid()}")
    verifier = TokenVerifier(workspace) if settings.auth else None
    grpc_server: Any = None

    async def start_grpc() -> None:
        nonlocal grpc_server
        if settings.grpc_port:
            from mlwright.serving.grpc_server import build_grpc_server

            grpc_server = build_grpc_server(host, f"{settings.host}:{settings.grpc_port}",
                                            verifier=verifier, auth=settings.auth)
            await grpc_server.start()

    async def stop_grpc() -> None:
        if grpc_server is not None:
            await grpc_server.stop(settings.drain_seconds)

    return build_app(host, verifier=verifier, on_start=start_grpc, on_stop=stop_grpc)


def serve(refs: list[str], *, workspace: str | os.PathLike[str] | None = None,
          overrides: dict[str, Any] | None = None, settings: ServeSettings | None = None,
          announce: Callable[[str], None] | None = None) -> None:
    """Serve ``refs`` until SIGTERM/SIGINT. ``announce`` is told the address once bound."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    settings = settings or ServeSettings()
    if not refs:
        raise ServingError("Name at least one model to serve, e.g. `mlwright serve "
                           "delays@champion`.")
    ws = open_workspace(workspace, overrides=overrides)
    from mlwright.registry.versions import get_model_version

    for ref in refs:  # fail here, with the reason, rather than in every worker, forever
        if get_model_version(ref, workspace=ws).signature is None:
            raise ServingError(f"Model {ref} has no signature, so requests cannot be checked; "
                               "register it with training_data= or signature= to serve it.")
    if settings.auth:
        from mlwright.security.tokens import list_tokens

        if not any(t.active for t in list_tokens(workspace=ws)):
            log.warning("auth is on and no token is active: every request will get 401; "
                        "create one with `mlwright token create NAME`.")
    root = str(ws.root)
    ws.close()
    _check_port(settings.host, settings.port)  # uvicorn would exit, leaking its socket
    config = uvicorn.Config(
        "mlwright.serving.server:create_app", factory=True, host=settings.host,
        port=settings.port, workers=settings.workers, loop="uvloop", http="httptools",
        lifespan="on", timeout_graceful_shutdown=int(settings.drain_seconds) or None,
        access_log=False, log_level="warning", proxy_headers=False, server_header=False,
        timeout_worker_healthcheck=30)
    metrics_dir = tempfile.mkdtemp(prefix="mlwright-metrics-")
    # Spawned workers read both from the environment; put back what was there afterwards
    # (serve may run inside a longer-lived process, e.g. a test).
    saved = {key: os.environ.get(key) for key in ("PROMETHEUS_MULTIPROC_DIR", CONFIG_ENV)}
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    os.environ[CONFIG_ENV] = json.dumps({"workspace": root, "overrides": overrides or {},
                                         "refs": refs, "settings": settings.model_dump()})
    try:
        sock = config.bind_socket()
        host, port = sock.getsockname()[:2]
        if announce is not None:
            announce(f"http://{host}:{port}")
        try:
            Multiprocess(config, sockets=[sock]).run()
        finally:
            sock.close()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(Path(metrics_dir), ignore_errors=True)


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ServingError(f"Cannot listen on {host}:{port} ({exc.strerror or exc}); pick "
                               "another --port or stop what uses it.") from None
