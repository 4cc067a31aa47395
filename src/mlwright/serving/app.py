"""The REST API of an inference worker: Open Inference Protocol v2, ``/v1`` JSON, feedback,
metrics and the OpenAPI document.

>>> app = build_app(host, verifier=TokenVerifier(ws))      # doctest: +SKIP
>>> uvicorn.run(app, loop="uvloop", http="httptools")     # doctest: +SKIP

Handlers are plain Starlette endpoints, no middleware: every layer between the socket and
the model costs microseconds that a 0.2 ms request cannot spare. Each one runs the same
guard — request id, token, body limit, error → status — in a single function. Errors never
take the worker down: what the user did wrong is a 4xx naming it, anything else a 500 with
the request id, logged with its traceback.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlwright.errors import (
    AuthenticationError,
    LimitExceededError,
    MlwrightError,
    NotFoundError,
    RequestValidationError,
    ServingError,
)
from mlwright.security.tokens import TokenVerifier
from mlwright.serving.feedback import FeedbackItem, FeedbackLog
from mlwright.serving.fields import columns_from_records
from mlwright.serving.host import ModelHost, datatype_of, new_request_id
from mlwright.serving.limits import RateLimiter
from mlwright.serving.openapi import openapi_document
from mlwright.serving.tensors import decode_inputs, encode_output

log = logging.getLogger("mlwright.serving")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_JSON = "application/json"
Handler = Callable[[Request, "_Call"], Awaitable[Any]]


class _Call:
    """What the guard found out about one request, for its handler."""

    __slots__ = ("model", "request_id", "token")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.token: str | None = None
        self.model = "-"


def _json(content: Any, status: int = 200, request_id: str | None = None,
          headers: dict[str, str] | None = None) -> Response:
    extra = {"x-request-id": request_id} if request_id else {}
    return Response(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), status,
                    {**extra, **(headers or {})}, media_type=_JSON)


class ServingApp:
    """The endpoints, bound to one host, token verifier and limits."""

    def __init__(self, host: ModelHost, verifier: TokenVerifier | None,
                 feedback: FeedbackLog | None = None) -> None:
        self.host = host
        self.settings = host.settings
        self.verifier = verifier if host.settings.auth else None
        self.feedback = feedback
        self.limiter = RateLimiter(host.settings.rate_limit, host.settings.rate_burst) \
            if host.settings.rate_limit > 0 else None

    # -- the guard -------------------------------------------------------------------------

    def guarded(self, handler: Handler, *, scope: str | None = "predict",
                body: bool = False) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            given = request.headers.get("x-request-id")
            call = _Call(given if given and _REQUEST_ID.match(given) else new_request_id())
            call.model = request.path_params.get("name", "-")
            try:
                if scope is not None and self.verifier is not None:
                    call.token = self._authenticate(request, scope)
                if self.limiter is not None and scope is not None:
                    client = request.client.host if request.client is not None else "-"
                    self.limiter.check(call.token or client)
                result = await handler(request, call)
                if isinstance(result, Response):
                    result.headers["x-request-id"] = call.request_id
                    return result
                return _json(result, 200, call.request_id)
            except Exception as exc:
                return self._error(exc, call)
        return endpoint

    def _authenticate(self, request: Request, scope: str) -> str:
        assert self.verifier is not None
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        return self.verifier.verify(token, scope).name

    def _error(self, exc: Exception, call: _Call) -> Response:
        body: dict[str, Any] = {"error": str(exc), "request_id": call.request_id}
        headers: dict[str, str] = {}
        if isinstance(exc, AuthenticationError):
            status = 401
            headers["www-authenticate"] = "Bearer"
        elif isinstance(exc, NotFoundError):
            status = 404
        elif isinstance(exc, RequestValidationError):
            status = 422
            body["errors"] = exc.errors
        elif isinstance(exc, LimitExceededError | ServingError):
            status = exc.status
        elif isinstance(exc, MlwrightError):
            status = 400
        else:
            status = 500
            log.exception("request %s to %s failed", call.request_id, call.model)
            body["error"] = (f"Internal error while serving request {call.request_id}; the "
                             "server log has the details.")
        if call.model != "-":
            self.host.record_error(call.model, status)
        return _json(body, status, call.request_id, headers)

    async def _read(self, request: Request, *, binary: bool = False) -> tuple[Any, bytes]:
        """The JSON body (and, with the binary extension, the bytes after it), within limits."""
        limit = self.settings.max_body_bytes
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise LimitExceededError(f"The request body is {int(length)} bytes; the limit is "
                                     f"{limit} (send fewer rows per request).", 413)
        if length is not None and length.isdigit():
            raw = await request.body()  # the length is known and within the limit
        else:  # chunked: count as it comes
            chunks: list[bytes] = []
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise LimitExceededError(f"The request body is over the limit of {limit} "
                                             "bytes (send fewer rows per request).", 413)
                chunks.append(chunk)
            raw = b"".join(chunks)
        header_length = request.headers.get("inference-header-content-length") if binary else None
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if header_length is None and content_type not in (_JSON, "", "application/*+json") \
                and not content_type.endswith("+json"):
            unsupported = ServingError(f"Content type {content_type!r} is not supported; send "
                                       "application/json.")
            unsupported.status = 415
            raise unsupported
        rest = b""
        if header_length is not None:
            if not header_length.isdigit() or int(header_length) > len(raw):
                raise ServingError("Inference-Header-Content-Length is not a length within the "
                                   "body.")
            raw, rest = raw[:int(header_length)], raw[int(header_length):]
        if not raw:
            raise ServingError("The request body is empty; send a JSON object.")
        try:
            return orjson.loads(raw), rest
        except orjson.JSONDecodeError as exc:
            raise ServingError(f"The request body is not valid JSON: {exc}.") from None

    # -- Open Inference Protocol v2 --------------------------------------------------------

    async def live(self, request: Request, call: _Call) -> Any:
        return {"live": True}

    async def ready(self, request: Request, call: _Call) -> Any:
        ready = self.host.is_ready()
        return _json({"ready": ready}, 200 if ready else 503)

    async def server_metadata(self, request: Request, call: _Call) -> Any:
        from mlwright import __version__

        return {"name": "mlwright", "version": __version__, "extensions": ["binary_tensor_data"]}

    def _served(self, request: Request) -> Any:
        served = self.host.served(request.path_params["name"])
        version = request.path_params.get("version")
        if version is not None and version != str(served.version):
            raise NotFoundError(f"Model '{served.name}' serves version {served.version}, not "
                                f"{version!r}.")
        return served

    async def model_metadata(self, request: Request, call: _Call) -> Any:
        served = self._served(request)
        return {"name": served.name, "versions": [str(served.version)],
                "platform": f"mlwright_{served.flavor}",
                "inputs": [t.to_dict() for t in served.inputs],
                "outputs": [t.to_dict() for t in served.outputs]}

    async def model_ready(self, request: Request, call: _Call) -> Any:
        self._served(request)
        return {"name": request.path_params["name"], "ready": True}

    async def infer(self, request: Request, call: _Call) -> Any:
        header, binary = await self._read(request, binary=True)
        columns = decode_inputs(header, binary)
        request_id = header.get("id") if isinstance(header.get("id"), str) else None
        if request_id and _REQUEST_ID.match(request_id):
            call.request_id = request_id
        result = await self.host.infer(call.model, columns,
                                       version=request.path_params.get("version"),
                                       request_id=call.request_id, token_name=call.token)
        outputs = [encode_output(name, array, datatype_of(array))
                   for name, array in result.outputs.items()]
        return {"model_name": result.model, "model_version": str(result.version),
                "id": result.request_id, "outputs": outputs}

    # -- the plain JSON API ----------------------------------------------------------------

    async def predict(self, request: Request, call: _Call) -> Any:
        body, _ = await self._read(request)
        if not isinstance(body, dict) or "records" not in body:
            raise RequestValidationError("The body must be an object with 'records': a list of "
                                         "objects, one per row.",
                                         [{"field": "records", "problem": "missing"}])
        extra = [k for k in body if k != "records"]
        if extra:
            raise RequestValidationError(f"Unexpected field {extra[0]!r} in the body; send only "
                                         "'records'.", [{"field": extra[0],
                                                         "problem": "unexpected field"}])
        served = self.host.served(call.model)
        if isinstance(body["records"], list):  # refuse before checking every row
            self.host.check_rows(len(body["records"]))
        columns = columns_from_records(body["records"], served.path.fields)
        result = await self.host.infer(call.model, columns, request_id=call.request_id,
                                       token_name=call.token, checked=True)
        predictions = result.outputs[served.path.output_name]
        return {"predictions": predictions, "model": result.model, "version": result.version,
                "request_id": result.request_id}

    async def models(self, request: Request, call: _Call) -> Any:
        out = []
        for name in self.host.names():
            served = self.host.served(name)
            out.append({"name": name, "version": served.version, "ref": served.ref,
                        "flavor": served.flavor, "feature_service": served.path.feature_service,
                        "feature_views": served.path.feature_views,
                        "inputs": [f.to_dict() for f in served.path.fields],
                        "output": served.path.output_name})
        return {"models": out}

    async def feedback_endpoint(self, request: Request, call: _Call) -> Any:
        body, _ = await self._read(request)
        items = body.get("feedback") if isinstance(body, dict) and "feedback" in body else [body]
        if not isinstance(items, list) or not items:
            raise RequestValidationError("'feedback' must be a non-empty list of objects.",
                                         [{"field": "feedback", "problem": "expected a list"}])
        now = time.time_ns() // 1000
        parsed: list[FeedbackItem] = []
        problems: list[dict[str, str]] = []
        for i, item in enumerate(items):
            where = f"feedback[{i}]" if len(items) > 1 else "body"
            if not isinstance(item, dict):
                problems.append({"field": where, "problem": "expected an object"})
                continue
            unknown = set(item) - {"request_id", "label", "row"}
            rid, row = item.get("request_id"), item.get("row")
            if isinstance(row, float) and row.is_integer():  # JSON's 3.0 is the integer 3
                row = int(row)
            if unknown:
                problems.append({"field": f"{where}.{sorted(unknown)[0]}",
                                 "problem": "unexpected field"})
            if not isinstance(rid, str) or not _REQUEST_ID.match(rid):
                problems.append({"field": f"{where}.request_id",
                                 "problem": "expected the request id a prediction returned"})
            if "label" not in item:
                problems.append({"field": f"{where}.label", "problem": "missing"})
            elif not isinstance(item["label"], str | int | float | bool | type(None)):
                problems.append({"field": f"{where}.label",
                                 "problem": "expected a number, string or boolean"})
            if row is not None and (not isinstance(row, int) or isinstance(row, bool) or row < 0):
                problems.append({"field": f"{where}.row", "problem": "expected a row index >= 0"})
            if not problems and isinstance(rid, str):
                parsed.append(FeedbackItem(request_id=rid, label=item["label"], row=row,
                                           time_us=now))
        if problems:
            raise RequestValidationError("The feedback is not valid: " + "; ".join(
                f"{p['field']}: {p['problem']}" for p in problems[:5]) + ".", problems)
        if self.feedback is None:
            raise ServingError("This server does not record feedback (prediction logging is "
                               "off).")
        for entry in parsed:
            self.feedback.record(entry)
        return _json({"accepted": len(parsed)}, 202)

    async def metrics(self, request: Request, call: _Call) -> Any:
        content, media_type = self.host.metrics.render()
        return Response(content, 200, media_type=media_type)

    async def openapi(self, request: Request, call: _Call) -> Any:
        return openapi_document(self.host)


def build_app(host: ModelHost, *, verifier: TokenVerifier | None = None,
              on_start: Callable[[], Awaitable[None]] | None = None,
              on_stop: Callable[[], Awaitable[None]] | None = None) -> FastRoutes:
    """The worker's ASGI app; starting it loads the host's models, stopping it drains them."""
    feedback = FeedbackLog(host.workspace.feedback_dir, writer_id=host.worker_id,
                           flush_interval=host.settings.log_flush_seconds) \
        if host.settings.log_predictions else None
    api = ServingApp(host, verifier, feedback)
    guard = api.guarded

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not host.started:
            await host.start()
        # Everything loaded so far (modules, models) lives as long as the worker: keep the
        # cyclic garbage collector from walking it again on every full collection (those
        # walks were the slowest requests' 100 ms under load).
        gc.freeze()
        if on_start is not None:
            await on_start()
        try:
            yield
        finally:
            if on_stop is not None:
                await on_stop()
            await host.stop()
            if feedback is not None:
                feedback.close()

    v2 = "/v2/models/{name}"
    routes = [
        Route("/v2/health/live", guard(api.live, scope=None), methods=["GET"]),
        Route("/v2/health/ready", guard(api.ready, scope=None), methods=["GET"]),
        Route("/v2", guard(api.server_metadata, scope=None), methods=["GET"]),
        Route(v2, guard(api.model_metadata), methods=["GET"]),
        Route(v2 + "/versions/{version}", guard(api.model_metadata), methods=["GET"]),
        Route(v2 + "/ready", guard(api.model_ready), methods=["GET"]),
        Route(v2 + "/versions/{version}/ready", guard(api.model_ready), methods=["GET"]),
        Route(v2 + "/infer", guard(api.infer), methods=["POST"]),
        Route(v2 + "/versions/{version}/infer", guard(api.infer), methods=["POST"]),
        Route("/v1/models", guard(api.models), methods=["GET"]),
        Route("/v1/models/{name}/predict", guard(api.predict), methods=["POST"]),
        Route("/v1/feedback", guard(api.feedback_endpoint, scope="feedback"), methods=["POST"]),
        Route("/metrics", guard(api.metrics, scope=None), methods=["GET"]),
        Route("/openapi.json", guard(api.openapi, scope=None), methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.api = api
    return FastRoutes(app, guard(api.predict), guard(api.infer))


class FastRoutes:
    """The ASGI app: the prediction routes go straight to their (guarded) handlers; the rest,
    and the lifespan, through Starlette. Starlette's router and its two exception middlewares
    cost about a sixth of a one-row request; the guard already turns every error into a
    response, so on these routes they have nothing to do."""

    def __init__(self, app: Starlette, predict: Callable[[Request], Awaitable[Response]],
                 infer: Callable[[Request], Awaitable[Response]]) -> None:
        self.app = app
        self.predict = predict
        self.infer = infer

    @property
    def state(self) -> Any:
        return self.app.state

    @property
    def router(self) -> Any:
        return self.app.router

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            if path.startswith("/v1/models/") and path.endswith("/predict"):
                name, endpoint = path[11:-8], self.predict
            elif path.startswith("/v2/models/") and path.endswith("/infer") \
                    and "/versions/" not in path:
                name, endpoint = path[11:-6], self.infer
            else:
                name, endpoint = "", None
            if endpoint is not None and name and "/" not in name:
                scope["path_params"] = {"name": name}
                response = await endpoint(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
