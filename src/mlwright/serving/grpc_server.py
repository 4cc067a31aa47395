"""The Open Inference Protocol v2 over gRPC: ``inference.GRPCInferenceService`` on a host.

>>> server = build_grpc_server(host, "0.0.0.0:8081", verifier=TokenVerifier(ws))  # doctest: +SKIP
>>> await server.start()                     # on the worker's event loop  # doctest: +SKIP

The six RPCs of the KServe proto (``proto/grpc_predict_v2.proto``), so that standard clients
— ``tritonclient.grpc``, KServe's — work unchanged. They run on the worker's own event loop
(``grpc.aio``) beside the REST API and answer through the same :meth:`ModelHost.infer`, with
the same checks, batching, logging, limits and errors; only the encoding differs.

Tensors arrive either as typed ``contents`` (``fp64_contents``, ``int64_contents``,
``bytes_contents``, ...) or as ``raw_input_contents``: one little-endian byte string per
input, BYTES elements each prefixed by a 4-byte little-endian length (Triton's layout, what
``tritonclient`` sends by default). The response answers in kind: raw outputs for a raw
request, typed contents otherwise. A ``[n, 1]`` tensor is one value per row like ``[n]``.

Tokens travel as ``authorization: Bearer <token>`` metadata and need the ``predict`` scope;
the health RPCs (ServerLive, ServerReady, ModelReady) and ServerMetadata need none. Errors
map to status codes as the REST API maps them to HTTP ones: a bad token UNAUTHENTICATED, an
unknown model or version NOT_FOUND, a request that does not fit the signature
INVALID_ARGUMENT (naming every bad field), a request over a limit RESOURCE_EXHAUSTED, and
anything else INTERNAL with the request id, logged with its traceback; the server carries on.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
import numpy as np

from mlwright.errors import (
    AuthenticationError,
    LimitExceededError,
    MlwrightError,
    NotFoundError,
    RequestValidationError,
    ServingError,
)
from mlwright.security.tokens import INVALID, TokenVerifier
from mlwright.serving.host import datatype_of, new_request_id
from mlwright.serving.limits import RateLimiter
from mlwright.serving.proto import grpc_predict_v2_pb2 as pb
from mlwright.serving.proto import grpc_predict_v2_pb2_grpc as pb_grpc
from mlwright.serving.tensors import NUMPY, decode_bytes_elements, encode_bytes_elements

if TYPE_CHECKING:
    from mlwright.serving.host import ModelHost, ServedModel

log = logging.getLogger("mlwright.serving")
InputTensor = pb.ModelInferRequest.InferInputTensor
OutputTensor = pb.ModelInferResponse.InferOutputTensor
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_MESSAGE_CHARS = 4000  # status messages travel in a header: keep them well under its limit
# The typed field that carries each datatype (FP16 has none: it travels only as raw bytes).
CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
            "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
            "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
            "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents"}
_CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 401: grpc.StatusCode.UNAUTHENTICATED,
          403: grpc.StatusCode.PERMISSION_DENIED, 404: grpc.StatusCode.NOT_FOUND,
          409: grpc.StatusCode.FAILED_PRECONDITION, 413: grpc.StatusCode.RESOURCE_EXHAUSTED,
          422: grpc.StatusCode.INVALID_ARGUMENT, 429: grpc.StatusCode.RESOURCE_EXHAUSTED,
          503: grpc.StatusCode.UNAVAILABLE}
# The generated module is untyped; this is the one function of it that is called.
_register: Callable[[Any, Any], None] = pb_grpc.add_GRPCInferenceServiceServicer_to_server


# -- tensors ---------------------------------------------------------------------------------

def _count(shape: Iterable[int]) -> int:
    dims = list(shape)
    if any(d < 0 for d in dims):
        raise ValueError(f"shape {dims} has a negative dimension")
    return int(np.prod(dims)) if dims else 1


def decode_input(tensor: InputTensor, raw: bytes | None = None) -> np.ndarray:
    """One input tensor as a 1-D array: from ``raw`` (its ``raw_input_contents``) when given,
    else from its typed ``contents``; BYTES become ``str``. ``ValueError`` says what is wrong."""
    datatype, shape = tensor.datatype, list(tensor.shape)
    if datatype != "BYTES" and datatype not in NUMPY:
        raise ValueError(f"unknown datatype {datatype!r}; use one of BOOL, INT8..INT64, "
                         "UINT8..UINT64, FP16, FP32, FP64, BYTES")
    count = _count(shape)
    if raw is not None:
        values = _from_raw(datatype, raw, tensor.name)
    else:
        values = _from_contents(datatype, tensor.contents)
    if len(values) != count:
        raise ValueError(f"shape {shape} needs {count} values, got {len(values)}")
    if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
        raise ValueError(f"shape {shape} is not one value per row ([n] or [n, 1])")
    return values


def _from_raw(datatype: str, raw: bytes, name: str) -> np.ndarray:
    if datatype == "BYTES":
        try:
            return np.asarray(decode_bytes_elements(raw, name), dtype=object)
        except RequestValidationError as exc:
            raise ValueError(exc.errors[0]["problem"]) from None
    dtype = np.dtype(NUMPY[datatype]).newbyteorder("<")
    if len(raw) % dtype.itemsize:
        raise ValueError(f"{len(raw)} bytes of raw contents is not a whole number of {datatype} "
                         f"({dtype.itemsize} bytes each)")
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))


def _from_contents(datatype: str, contents: pb.InferTensorContents) -> np.ndarray:
    if datatype not in CONTENTS:
        raise ValueError(f"{datatype} has no typed contents; send it as raw_input_contents")
    expected = CONTENTS[datatype]
    values = list(getattr(contents, expected))
    if not values:
        used = [f.name for f, _ in contents.ListFields()]
        if used:
            raise ValueError(f"contents are in {used[0]}, but a {datatype} tensor's go in {expected}")
    if datatype == "BYTES":
        try:
            return np.asarray([v.decode("utf-8") for v in values], dtype=object)
        except UnicodeDecodeError:
            raise ValueError("BYTES element is not UTF-8 text") from None
    try:
        return np.asarray(values, dtype=NUMPY[datatype])
    except OverflowError:
        raise ValueError(f"a value is out of range for {datatype}") from None


def encode_output(tensor: OutputTensor, name: str, array: np.ndarray, *,
                  raw: bool) -> bytes | None:
    """Fill ``tensor`` with ``array``: name, datatype, shape, and the typed contents — or,
    with ``raw``, return the bytes that go in ``raw_output_contents`` instead."""
    datatype = datatype_of(array)
    tensor.name = name
    tensor.datatype = datatype
    tensor.shape.extend(array.shape)
    if datatype == "BYTES":
        values = array.ravel().tolist()
        if raw:
            return encode_bytes_elements(values)
        tensor.contents.bytes_contents.extend(
            v if isinstance(v, bytes) else str(v).encode("utf-8") for v in values)
        return None
    typed = np.ascontiguousarray(array, dtype=np.dtype(NUMPY[datatype]).newbyteorder("<"))
    if raw:
        return typed.tobytes()
    if datatype not in CONTENTS:
        raise ValueError(f"output '{name}' is {datatype}, which has no typed contents")
    getattr(tensor.contents, CONTENTS[datatype]).extend(typed.ravel().tolist())
    return None


def decode_request(request: pb.ModelInferRequest) -> dict[str, np.ndarray]:
    """The request's input tensors by name; every malformed one is reported at once."""
    raw = list(request.raw_input_contents)
    problems: list[dict[str, str]] = []
    if raw and len(raw) != len(request.inputs):
        problems.append({"field": "raw_input_contents",
                         "problem": f"{len(raw)} raw contents for {len(request.inputs)} inputs; "
                                    "send one per input, in the inputs' order"})
    columns: dict[str, np.ndarray] = {}
    for i, tensor in enumerate(request.inputs):
        name = tensor.name or f"inputs[{i}]"
        if name in columns:
            problems.append({"field": name, "problem": "given twice"})
            continue
        if raw and tensor.HasField("contents"):
            problems.append({"field": name, "problem": "has both contents and "
                                                       "raw_input_contents; send one of them"})
            continue
        try:
            columns[name] = decode_input(tensor, raw[i] if i < len(raw) else None)
        except ValueError as exc:
            problems.append({"field": name, "problem": str(exc)})
    if problems:
        raise RequestValidationError("The request's tensors are malformed: " + "; ".join(
            f"{p['field']}: {p['problem']}" for p in problems[:5]) + ".", problems)
    return columns


# -- the service -----------------------------------------------------------------------------

def _bearer(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str) and value[:7].lower() == "bearer ":
            return value[7:].strip()
    return None


def _failure(exc: Exception, model: str, request_id: str) -> tuple[int, str]:
    """The HTTP-equivalent status (for metrics) and the message of an error."""
    if isinstance(exc, AuthenticationError):
        return 401, INVALID
    if isinstance(exc, NotFoundError):
        return 404, str(exc)
    if isinstance(exc, RequestValidationError):
        if not exc.errors:
            return 422, str(exc)
        listed = "; ".join(f"{p.get('field')}: {p.get('problem')}" for p in exc.errors)
        message = f"{str(exc).split(':')[0]}: {listed}."
        return 422, message if len(message) <= _MESSAGE_CHARS else \
            message[:_MESSAGE_CHARS - 5] + " ..."
    if isinstance(exc, LimitExceededError | ServingError):
        return exc.status, str(exc)
    if isinstance(exc, MlwrightError):
        return 400, str(exc)
    log.error("gRPC request %s to %s failed", request_id, model, exc_info=exc)
    return 500, f"Internal error while serving request {request_id}; the server log has the details."


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The six RPCs, bound to one host, token verifier and rate limiter."""

    def __init__(self, host: ModelHost, verifier: TokenVerifier | None) -> None:
        self.host = host
        self.verifier = verifier
        settings = host.settings
        self.limiter = RateLimiter(settings.rate_limit, settings.rate_burst) \
            if settings.rate_limit > 0 else None

    def _authenticate(self, context: Any) -> str | None:
        """The token's name (None without auth); raises AuthenticationError or a limit."""
        token = None
        if self.verifier is not None:
            token = self.verifier.verify(_bearer(context.invocation_metadata()), "predict").name
        if self.limiter is not None:  # keyed by token, else by client address (not port)
            self.limiter.check(token or str(context.peer()).rsplit(":", 1)[0])
        return token

    def _served(self, name: str, version: str) -> ServedModel:
        served = self.host.served(name)
        if version and version != str(served.version):
            raise NotFoundError(f"Model '{served.name}' serves version {served.version}, not "
                                f"{version!r}.")
        return served

    async def _abort(self, context: Any, exc: Exception, model: str,
                     request_id: str) -> NoReturn:
        status, message = _failure(exc, model, request_id)
        if model != "-":
            self.host.record_error(model, status)
        await context.abort(_CODES.get(status, grpc.StatusCode.INTERNAL), message)
        raise AssertionError("context.abort returned")  # it raises; this is for the reader

    # -- health and metadata ---------------------------------------------------------------

    async def ServerLive(self, request: pb.ServerLiveRequest,  # noqa: N802
                         context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest,  # noqa: N802
                          context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.host.is_ready())

    async def ModelReady(self, request: pb.ModelReadyRequest,  # noqa: N802
                         context: Any) -> pb.ModelReadyResponse:
        try:
            served = self._served(request.name, request.version)
        except NotFoundError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=self.host.is_ready(served.name))

    async def ServerMetadata(self, request: pb.ServerMetadataRequest,  # noqa: N802
                             context: Any) -> pb.ServerMetadataResponse:
        from mlwright import __version__

        return pb.ServerMetadataResponse(name="mlwright", version=__version__, extensions=[])

    async def ModelMetadata(self, request: pb.ModelMetadataRequest,  # noqa: N802
                            context: Any) -> pb.ModelMetadataResponse:
        try:
            self._authenticate(context)
            served = self._served(request.name, request.version)
        except Exception as exc:
            await self._abort(context, exc, "-", new_request_id())
        tensor = pb.ModelMetadataResponse.TensorMetadata
        return pb.ModelMetadataResponse(
            name=served.name, versions=[str(served.version)], platform=f"mlwright_{served.flavor}",
            inputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape) for t in served.inputs],
            outputs=[tensor(name=t.name, datatype=t.datatype, shape=t.shape)
                     for t in served.outputs])

    # -- inference -------------------------------------------------------------------------

    async def ModelInfer(self, request: pb.ModelInferRequest,  # noqa: N802
                         context: Any) -> pb.ModelInferResponse:
        request_id = request.id if _REQUEST_ID.match(request.id) else new_request_id()
        model = request.model_name or "-"
        try:
            token = self._authenticate(context)
            served = self._served(request.model_name, request.model_version)
            model = served.name
            wanted = [o.name for o in request.outputs]
            unknown = [n for n in wanted if n not in {t.name for t in served.outputs}]
            if unknown:
                known = ", ".join(t.name for t in served.outputs)
                raise RequestValidationError(
                    f"The request asks for outputs the model does not have: {', '.join(unknown)}",
                    [{"field": n, "problem": f"not an output of model '{model}' (it has: {known})"}
                     for n in unknown])
            columns = decode_request(request)
            result = await self.host.infer(model, columns, version=request.model_version or None,
                                           request_id=request_id, token_name=token)
            response = pb.ModelInferResponse(model_name=result.model,
                                             model_version=str(result.version),
                                             id=result.request_id)
            raw = bool(request.raw_input_contents)
            for name, array in result.outputs.items():
                if wanted and name not in wanted:
                    continue
                data = encode_output(response.outputs.add(), name, np.asarray(array), raw=raw)
                if data is not None:
                    response.raw_output_contents.append(data)
        except Exception as exc:
            await self._abort(context, exc, model, request_id)
        return response


def build_grpc_server(host: ModelHost, address: str, *, verifier: TokenVerifier | None = None,
                      auth: bool = True) -> grpc.aio.Server:
    """A ``grpc.aio.Server`` answering the Open Inference Protocol for ``host`` on ``address``
    (``"0.0.0.0:8081"``); the caller starts and stops it. Build it inside the event loop that
    will run it (the worker's, where ``host`` lives).

    With ``auth`` every inference and model-metadata call needs a token with the ``predict``
    scope, checked by ``verifier`` (by default one reading ``host``'s workspace). Messages
    over the host's ``max_body_bytes`` are refused by gRPC itself (RESOURCE_EXHAUSTED). The
    port is bound with SO_REUSEPORT (gRPC's default on Linux), so every worker of one server
    binds the same address and the kernel spreads the connections among them.
    """
    if auth and verifier is None:
        verifier = TokenVerifier(host.workspace)
    limit = host.settings.max_body_bytes
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", limit)])
    _register(InferenceServicer(host, verifier if auth else None), server)
    server.add_insecure_port(address)
    return server
