"""The Open Inference Protocol over gRPC: the tensor codecs, then a real server answering the
real ``tritonclient.grpc`` client (and our own generated stub, for typed contents)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
import pandas as pd
import pytest
import tritonclient.grpc as triton
import tritonclient.grpc.service_pb2 as triton_pb
from sklearn.compose import make_column_transformer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder
from tritonclient.utils import (
    InferenceServerException,
    deserialize_bytes_tensor,
    serialize_byte_tensor,
    triton_to_np_dtype,
)

from mlwright.errors import RequestValidationError
from mlwright.registry import register_model
from mlwright.security import TokenVerifier, create_token
from mlwright.serving.grpc_server import (
    CONTENTS,
    InputTensor,
    OutputTensor,
    build_grpc_server,
    decode_input,
    decode_request,
    encode_output,
)
from mlwright.serving.host import ModelHost
from mlwright.serving.proto import grpc_predict_v2_pb2 as pb
from mlwright.serving.proto import grpc_predict_v2_pb2_grpc as pb_grpc
from mlwright.serving.settings import ServeSettings
from mlwright.serving.tensors import NUMPY
from mlwright.workspace import Workspace, init_workspace

from .support import free_port

T = TypeVar("T")
SAMPLES: dict[str, np.ndarray] = {
    "BOOL": np.array([True, False, True]),
    "INT8": np.array([-128, 0, 127], dtype=np.int8),
    "INT16": np.array([-32768, 1, 32767], dtype=np.int16),
    "INT32": np.array([-(2**31), 2, 2**31 - 1], dtype=np.int32),
    "INT64": np.array([-(2**63), 3, 2**63 - 1], dtype=np.int64),
    "UINT8": np.array([0, 1, 255], dtype=np.uint8),
    "UINT16": np.array([0, 2, 65535], dtype=np.uint16),
    "UINT32": np.array([0, 3, 2**32 - 1], dtype=np.uint32),
    "UINT64": np.array([0, 4, 2**64 - 1], dtype=np.uint64),
    "FP16": np.array([-1.5, 0.0, 65504.0], dtype=np.float16),
    "FP32": np.array([-1.25, 0.0, 3.4e38], dtype=np.float32),
    "FP64": np.array([-1e300, 0.1, np.pi]),
    "BYTES": np.array(["UA", "", "Zürich ✈"], dtype=object),
}


def _raw(array: np.ndarray, datatype: str) -> bytes:
    """What tritonclient puts in raw_input_contents for ``array``."""
    if datatype == "BYTES":
        return bytes(serialize_byte_tensor(array).item())
    return array.astype(np.dtype(array.dtype).newbyteorder("<")).tobytes()


def _typed(array: np.ndarray, datatype: str) -> pb.InferTensorContents:
    contents = pb.InferTensorContents()
    values = [v.encode() for v in array] if datatype == "BYTES" else array.tolist()
    getattr(contents, CONTENTS[datatype]).extend(values)
    return contents


# -- the proto -------------------------------------------------------------------------------

def _same_fields(ours: Any, theirs: Any, path: str) -> None:
    for field in ours.fields:
        other = theirs.fields_by_number.get(field.number)
        assert other is not None, f"{path}.{field.name}: no field {field.number} in tritonclient's"
        assert (other.name, other.type, other.is_repeated) == \
            (field.name, field.type, field.is_repeated), f"{path}.{field.name}"
        if field.message_type is not None:
            assert other.message_type.full_name == field.message_type.full_name
    for nested in ours.nested_types:
        _same_fields(nested, theirs.nested_types_by_name[nested.name], f"{path}.{nested.name}")


def test_the_proto_is_wire_compatible_with_tritonclients() -> None:
    for name, message in pb.DESCRIPTOR.message_types_by_name.items():
        _same_fields(message, triton_pb.DESCRIPTOR.message_types_by_name[name], name)
    ours = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    theirs = triton_pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert ours.full_name == theirs.full_name == "inference.GRPCInferenceService"
    for method in ours.methods:
        other = theirs.methods_by_name[method.name]
        assert (other.input_type.full_name, other.output_type.full_name) == \
            (method.input_type.full_name, method.output_type.full_name)
    assert len(ours.methods) == 6


def test_messages_cross_between_the_two_protos_unchanged() -> None:
    request = pb.ModelInferRequest(model_name="m", model_version="2", id="r-1",
                                   raw_input_contents=[b"\x00" * 8])
    tensor = request.inputs.add(name="x", datatype="FP64", shape=[1, 1])
    tensor.parameters["k"].int64_param = 3
    theirs = triton_pb.ModelInferRequest.FromString(request.SerializeToString())
    assert (theirs.model_name, theirs.id, list(theirs.inputs[0].shape)) == ("m", "r-1", [1, 1])
    assert pb.ModelInferRequest.FromString(theirs.SerializeToString()) == request


# -- tensor codecs ---------------------------------------------------------------------------

@pytest.mark.parametrize("datatype", list(SAMPLES))
def test_decodes_raw_contents_of_every_datatype(datatype: str) -> None:
    array = SAMPLES[datatype]
    tensor = InputTensor(name="x", datatype=datatype, shape=[3, 1])
    decoded = decode_input(tensor, _raw(array, datatype))
    assert decoded.shape == (3,)
    assert decoded.tolist() == array.tolist()
    assert decoded.dtype == (object if datatype == "BYTES" else np.dtype(NUMPY[datatype]))


@pytest.mark.parametrize("datatype", [d for d in SAMPLES if d != "FP16"])
def test_decodes_typed_contents_of_every_datatype(datatype: str) -> None:
    array = SAMPLES[datatype]
    tensor = InputTensor(name="x", datatype=datatype, shape=[3],
                         contents=_typed(array, datatype))
    decoded = decode_input(tensor)
    assert decoded.tolist() == array.tolist()
    assert decoded.dtype == (object if datatype == "BYTES" else np.dtype(NUMPY[datatype]))


@pytest.mark.parametrize("raw", [True, False], ids=["raw", "typed"])
@pytest.mark.parametrize("array", [
    SAMPLES["BOOL"], SAMPLES["INT8"], SAMPLES["INT32"], SAMPLES["INT64"], SAMPLES["UINT64"],
    SAMPLES["FP32"], SAMPLES["FP64"], SAMPLES["BYTES"],
    np.array([[0.25, 0.75], [1.0, 0.0]]),  # class probabilities: (n, k)
], ids=["bool", "int8", "int32", "int64", "uint64", "fp32", "fp64", "bytes", "fp64-2d"])
def test_outputs_round_trip(array: np.ndarray, raw: bool) -> None:
    tensor = OutputTensor()
    data = encode_output(tensor, "y", array, raw=raw)
    assert (data is not None) == raw
    assert tensor.name == "y" and list(tensor.shape) == list(array.shape)
    if raw:  # as tritonclient reads it back
        assert data is not None
        read = deserialize_bytes_tensor(data) if tensor.datatype == "BYTES" else \
            np.frombuffer(data, dtype=triton_to_np_dtype(tensor.datatype))
        expected = [v.encode() for v in array] if tensor.datatype == "BYTES" else array.tolist()
        assert read.reshape(array.shape).tolist() == expected
    else:
        assert len(getattr(tensor.contents, CONTENTS[tensor.datatype])) == array.size
    back = decode_input(InputTensor(name="y", datatype=tensor.datatype, shape=[array.size],
                                    contents=tensor.contents), data)
    assert back.tolist() == array.ravel().tolist()


def test_fp16_travels_only_raw() -> None:
    with pytest.raises(ValueError, match="FP16 has no typed contents"):
        decode_input(InputTensor(name="x", datatype="FP16", shape=[1]))


@pytest.mark.parametrize(("tensor", "raw", "problem"), [
    (InputTensor(name="x", datatype="FP64", shape=[3]), b"\x00" * 16, "needs 3 values, got 2"),
    (InputTensor(name="x", datatype="FP64", shape=[2]), b"\x00" * 15, "not a whole number of FP64"),
    (InputTensor(name="x", datatype="FP64", shape=[1, 2]), b"\x00" * 16, "not one value per row"),
    (InputTensor(name="x", datatype="FP64", shape=[2, 1, 1]), b"\x00" * 16, "not one value per row"),
    (InputTensor(name="x", datatype="FP64", shape=[-1]), b"", "negative dimension"),
    (InputTensor(name="x", datatype="DOUBLE", shape=[1]), b"\x00" * 8, "unknown datatype 'DOUBLE'"),
    (InputTensor(name="x", datatype="BYTES", shape=[1]), b"\x05\x00\x00\x00ab", "truncated"),
    (InputTensor(name="x", datatype="BYTES", shape=[1]), b"\x01\x00\x00\x00\xff", "not UTF-8"),
    (InputTensor(name="x", datatype="FP64", shape=[1],
                 contents=pb.InferTensorContents(fp32_contents=[1.0])), None,
     "contents are in fp32_contents, but a FP64 tensor's go in fp64_contents"),
    (InputTensor(name="x", datatype="INT8", shape=[1],
                 contents=pb.InferTensorContents(int_contents=[300])), None, "out of range for INT8"),
    (InputTensor(name="x", datatype="BYTES", shape=[1],
                 contents=pb.InferTensorContents(bytes_contents=[b"\xff"])), None, "not UTF-8"),
])
def test_malformed_tensors_say_what_is_wrong(tensor: Any, raw: bytes | None, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        decode_input(tensor, raw)


def test_a_request_reports_every_malformed_tensor_at_once() -> None:
    request = pb.ModelInferRequest(model_name="m")
    request.inputs.add(name="a", datatype="FP64", shape=[2], contents=_typed(np.ones(3), "FP64"))
    request.inputs.add(name="b", datatype="WHAT", shape=[1])
    request.inputs.add(name="a", datatype="FP64", shape=[1])
    request.inputs.add(name="c", datatype="INT64", shape=[1],
                       contents=_typed(np.ones(1, dtype=np.int64), "INT64"))
    with pytest.raises(RequestValidationError) as info:
        decode_request(request)
    assert [e["field"] for e in info.value.errors] == ["a", "b", "a"]
    assert "a: shape [2] needs 2 values, got 3" in str(info.value)
    assert "b: unknown datatype 'WHAT'" in str(info.value)


def test_raw_contents_must_come_one_per_input_and_alone() -> None:
    request = pb.ModelInferRequest(model_name="m", raw_input_contents=[b"\x00" * 8])
    request.inputs.add(name="a", datatype="FP64", shape=[1])
    request.inputs.add(name="b", datatype="FP64", shape=[1], contents=_typed(np.ones(1), "FP64"))
    with pytest.raises(RequestValidationError) as info:
        decode_request(request)
    assert [e["field"] for e in info.value.errors] == ["raw_input_contents", "b"]
    assert "1 raw contents for 2 inputs" in str(info.value)


# -- a real server and the real client -------------------------------------------------------

class _Loop:
    """An event loop in a thread of its own: where the server runs, as in a worker."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Served:
    """A running server: its address, tokens and the model it serves."""

    workspace: Workspace
    loop: _Loop
    address: str
    token: str
    feedback_token: str
    model: Pipeline
    start: Callable[..., str]  # another server on the same loop: start(settings, auth) -> address

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}


def _flights(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"distance": rng.uniform(100, 3000, n),
                          "stops": rng.integers(0, 3, n).astype(np.int64),
                          "carrier": rng.choice(["UA", "AA", "DL"], n)})
    frame["delay"] = frame.distance / 100 + 5 * frame.stops + 3.0 * (frame.carrier == "UA") \
        + rng.normal(0, 1, n)
    return frame


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workspace = init_workspace(tmp_path_factory.mktemp("grpc") / "ws")
    frame = _flights()
    # An unknown carrier makes this model raise in predict: the INTERNAL case, for real.
    model = make_pipeline(make_column_transformer((OneHotEncoder(), ["carrier"]),
                                                  remainder="passthrough"), Ridge())
    model.fit(frame.drop(columns="delay"), frame["delay"])
    register_model("delays", model, training_data=frame, label="delay", workspace=workspace)
    token = create_token("grpc-tests", workspace=workspace).token
    feedback_token = create_token("grpc-feedback", scopes=["feedback"], workspace=workspace).token
    loop = _Loop()
    running: list[tuple[ModelHost, Any]] = []

    async def start_server(settings: ServeSettings, auth: bool) -> str:
        host = ModelHost(workspace, ["delays@1"], settings=settings)
        await host.start()
        address = f"127.0.0.1:{free_port()}"
        server = build_grpc_server(host, address, verifier=TokenVerifier(workspace), auth=auth)
        await server.start()
        running.append((host, server))
        return address

    def start(settings: ServeSettings | None = None, auth: bool = True) -> str:
        return loop.run(start_server(settings or ServeSettings(max_request_rows=1000), auth))

    async def stop_all() -> None:
        for host, server in running:
            await server.stop(None)
            await host.stop()

    try:
        yield Served(workspace, loop, start(), token, feedback_token, model, start)
    finally:
        loop.run(stop_all())
        loop.close()
        workspace.close()


@pytest.fixture
def client(served: Served) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(url=served.address) as client:
        yield client


def _inputs(distance: Any, stops: Any, carrier: Any, *,
            shape: Callable[[int], list[int]] = lambda n: [n]) -> list[triton.InferInput]:
    out = []
    for name, values, datatype in [("distance", distance, "FP64"), ("stops", stops, "INT64"),
                                   ("carrier", carrier, "BYTES")]:
        array = np.asarray(values, dtype=object if datatype == "BYTES" else None)
        tensor = triton.InferInput(name, shape(len(array)), datatype)
        tensor.set_data_from_numpy(array.reshape(shape(len(array))))
        out.append(tensor)
    return out


ROWS = {"distance": [1200.0, 250.5, 3000.0], "stops": [1, 0, 2], "carrier": ["UA", "DL", "AA"]}


def _expected(served: Served, rows: dict[str, list[Any]] = ROWS) -> np.ndarray:
    return np.asarray(served.model.predict(pd.DataFrame(rows)))


def _fails(call: Callable[[], Any]) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        call()
    return info.value


def _still_serves(client: triton.InferenceServerClient, served: Served) -> None:
    result = client.infer("delays", _inputs(**ROWS), headers=served.auth)
    np.testing.assert_allclose(result.as_numpy("delay"), _expected(served))


def test_health_needs_no_token(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("delays")
    assert client.is_model_ready("delays", model_version="1")
    assert not client.is_model_ready("delays", model_version="7")
    assert not client.is_model_ready("nonesuch")
    metadata = client.get_server_metadata()
    assert metadata.name == "mlwright" and metadata.version


def test_model_metadata(client: triton.InferenceServerClient, served: Served) -> None:
    metadata = client.get_model_metadata("delays", headers=served.auth)
    assert (metadata.name, list(metadata.versions), metadata.platform) == \
        ("delays", ["1"], "mlwright_sklearn")
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == \
        [("distance", "FP64", [-1]), ("stops", "INT64", [-1]), ("carrier", "BYTES", [-1])]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == \
        [("delay", "FP64", [-1])]
    assert client.get_model_metadata("delays", "1", headers=served.auth).name == "delays"
    error = _fails(lambda: client.get_model_metadata("delays", "7", headers=served.auth))
    assert error.status() == "StatusCode.NOT_FOUND" and "serves version 1" in error.message()


@pytest.mark.parametrize("shape", [lambda n: [n], lambda n: [n, 1]], ids=["[n]", "[n, 1]"])
def test_infer_answers_what_the_model_predicts(client: triton.InferenceServerClient,
                                               served: Served, shape: Any) -> None:
    result = client.infer("delays", _inputs(**ROWS, shape=shape), headers=served.auth,
                          request_id="req-42")
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("delays", "1", "req-42")
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == \
        [("delay", "FP64", [3])]
    assert len(response.raw_output_contents) == 1  # a raw request is answered raw
    np.testing.assert_array_equal(result.as_numpy("delay"), _expected(served))


def test_infer_without_a_request_id_gets_one(client: triton.InferenceServerClient,
                                             served: Served) -> None:
    first = client.infer("delays", _inputs(**ROWS), headers=served.auth).get_response().id
    second = client.infer("delays", _inputs(**ROWS), headers=served.auth).get_response().id
    assert first and second and first != second


def test_infer_with_the_version_and_a_requested_output(client: triton.InferenceServerClient,
                                                       served: Served) -> None:
    result = client.infer("delays", _inputs(**ROWS), model_version="1", headers=served.auth,
                          outputs=[triton.InferRequestedOutput("delay")])
    np.testing.assert_array_equal(result.as_numpy("delay"), _expected(served))
    error = _fails(lambda: client.infer("delays", _inputs(**ROWS), headers=served.auth,
                                        outputs=[triton.InferRequestedOutput("score")]))
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    assert "score: not an output of model 'delays' (it has: delay)" in error.message()


def test_typed_contents_are_answered_typed(served: Served) -> None:
    request = pb.ModelInferRequest(model_name="delays", id="typed-1")
    for name, datatype in [("distance", "FP64"), ("stops", "INT64"), ("carrier", "BYTES")]:
        request.inputs.add(name=name, datatype=datatype, shape=[3],
                           contents=_typed(np.asarray(ROWS[name], dtype=object if datatype ==
                                                      "BYTES" else None), datatype))
    with grpc.insecure_channel(served.address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        response = stub.ModelInfer(request, metadata=list(served.auth.items()))
    assert not response.raw_output_contents and response.id == "typed-1"
    assert list(response.outputs[0].contents.fp64_contents) == _expected(served).tolist()


def test_concurrent_requests_each_get_their_own_rows(served: Served) -> None:
    rng = np.random.default_rng(7)

    def one(i: int) -> None:
        n = 1 + i % 5
        rows = {"distance": rng.uniform(100, 3000, n).tolist(), "stops": [i % 3] * n,
                "carrier": ["UA", "AA", "DL"][i % 3:][:1] * n}
        with triton.InferenceServerClient(url=served.address) as client:
            result = client.infer("delays", _inputs(**rows), headers=served.auth)
        np.testing.assert_allclose(result.as_numpy("delay"), _expected(served, rows))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(40)))


def test_a_missing_input_is_invalid_argument(client: triton.InferenceServerClient,
                                             served: Served) -> None:
    inputs = _inputs(**ROWS)[:2]
    error = _fails(lambda: client.infer("delays", inputs, headers=served.auth))
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    assert "carrier: missing" in error.message()
    _still_serves(client, served)


def test_wrong_datatypes_are_invalid_argument_naming_every_field(
        client: triton.InferenceServerClient, served: Served) -> None:
    distance = triton.InferInput("distance", [1], "BYTES")
    distance.set_data_from_numpy(np.array(["far"], dtype=object))
    stops = triton.InferInput("stops", [1], "INT64")
    stops.set_data_from_numpy(np.array([1], dtype=np.int64))
    carrier = triton.InferInput("carrier", [1], "FP64")
    carrier.set_data_from_numpy(np.array([2.0]))
    error = _fails(lambda: client.infer("delays", [distance, stops, carrier], headers=served.auth))
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    assert "distance: expected a number, got str 'far'" in error.message()
    assert "carrier: expected a string, got float 2.0" in error.message()
    _still_serves(client, served)


def test_a_wrong_shape_is_invalid_argument(client: triton.InferenceServerClient,
                                           served: Served) -> None:
    inputs = _inputs(**ROWS)
    inputs[0] = triton.InferInput("distance", [3, 2], "FP64")
    inputs[0].set_data_from_numpy(np.ones((3, 2)))
    error = _fails(lambda: client.infer("delays", inputs, headers=served.auth))
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    assert "distance: shape [3, 2] is not one value per row" in error.message()
    _still_serves(client, served)


def test_unknown_models_and_versions_are_not_found(client: triton.InferenceServerClient,
                                                   served: Served) -> None:
    error = _fails(lambda: client.infer("nonesuch", _inputs(**ROWS), headers=served.auth))
    assert error.status() == "StatusCode.NOT_FOUND"
    assert "Model 'nonesuch' is not served here (served: delays)" in error.message()
    error = _fails(lambda: client.infer("delays", _inputs(**ROWS), model_version="3",
                                        headers=served.auth))
    assert error.status() == "StatusCode.NOT_FOUND" and "serves version 1" in error.message()
    _still_serves(client, served)


@pytest.mark.parametrize("headers", [
    None, {"authorization": "Bearer mlw_000000000000_nope"}, {"authorization": "mlw_x"},
], ids=["none", "unknown", "no-scheme"])
def test_a_missing_or_bad_token_is_unauthenticated(client: triton.InferenceServerClient,
                                                   served: Served, headers: Any) -> None:
    for call in (lambda: client.infer("delays", _inputs(**ROWS), headers=headers),
                 lambda: client.get_model_metadata("delays", headers=headers)):
        error = _fails(call)
        assert error.status() == "StatusCode.UNAUTHENTICATED"
        assert error.message() == "Invalid or missing API token."
    _still_serves(client, served)


def test_a_token_without_the_predict_scope_is_unauthenticated(
        client: triton.InferenceServerClient, served: Served) -> None:
    headers = {"authorization": f"Bearer {served.feedback_token}"}
    error = _fails(lambda: client.infer("delays", _inputs(**ROWS), headers=headers))
    assert error.status() == "StatusCode.UNAUTHENTICATED"
    assert error.message() == "Invalid or missing API token."


def test_a_model_that_raises_is_internal_and_the_server_carries_on(
        client: triton.InferenceServerClient, served: Served) -> None:
    rows = {**ROWS, "carrier": ["UA", "ZZ", "AA"]}  # a carrier the encoder never saw
    with pytest.raises(ValueError, match="unknown categories"):
        served.model.predict(pd.DataFrame(rows))
    error = _fails(lambda: client.infer("delays", _inputs(**rows), headers=served.auth,
                                        request_id="boom-1"))
    assert error.status() == "StatusCode.INTERNAL"
    assert error.message() == ("Internal error while serving request boom-1; the server log has "
                               "the details.")
    _still_serves(client, served)


def test_a_request_over_the_row_limit_is_resource_exhausted(
        client: triton.InferenceServerClient, served: Served) -> None:
    n = 1001
    error = _fails(lambda: client.infer("delays", _inputs([1.0] * n, [1] * n, ["UA"] * n),
                                        headers=served.auth))
    assert error.status() == "StatusCode.RESOURCE_EXHAUSTED"
    assert "1001 rows; the limit is 1000" in error.message()
    _still_serves(client, served)


def test_the_rate_limit_is_resource_exhausted(served: Served) -> None:
    address = served.start(ServeSettings(rate_limit=0.001, rate_burst=1))
    with triton.InferenceServerClient(url=address) as client:
        client.infer("delays", _inputs(**ROWS), headers=served.auth)
        error = _fails(lambda: client.infer("delays", _inputs(**ROWS), headers=served.auth))
    assert error.status() == "StatusCode.RESOURCE_EXHAUSTED"
    assert "Rate limit" in error.message() and "grpc-tests" in error.message()


def test_without_a_token_the_rate_limit_is_per_client_address(served: Served) -> None:
    address = served.start(ServeSettings(rate_limit=0.001, rate_burst=1), auth=False)
    with triton.InferenceServerClient(url=address) as client:
        client.infer("delays", _inputs(**ROWS))
    with triton.InferenceServerClient(url=address) as other:  # a new connection, same address
        error = _fails(lambda: other.infer("delays", _inputs(**ROWS)))
    assert error.status() == "StatusCode.RESOURCE_EXHAUSTED"


def test_without_auth_no_token_is_needed(served: Served) -> None:
    address = served.start(ServeSettings(), auth=False)
    with triton.InferenceServerClient(url=address) as client:
        result = client.infer("delays", _inputs(**ROWS))
        assert client.get_model_metadata("delays").name == "delays"
    np.testing.assert_array_equal(result.as_numpy("delay"), _expected(served))


def test_messages_over_the_body_limit_are_refused(served: Served) -> None:
    address = served.start(ServeSettings(max_body_bytes=4096))
    n = 1000  # 8 kB of distances alone
    with triton.InferenceServerClient(url=address) as client:
        error = _fails(lambda: client.infer("delays", _inputs([1.0] * n, [1] * n, ["UA"] * n),
                                            headers=served.auth))
        assert error.status() == "StatusCode.RESOURCE_EXHAUSTED"
        result = client.infer("delays", _inputs(**ROWS), headers=served.auth)
    np.testing.assert_array_equal(result.as_numpy("delay"), _expected(served))


def test_the_server_answers_the_aio_client_too(served: Served) -> None:
    import tritonclient.grpc.aio as triton_aio

    async def call() -> np.ndarray:
        async with triton_aio.InferenceServerClient(url=served.address) as client:
            assert await client.is_model_ready("delays")
            result = await client.infer("delays", _inputs(**ROWS), headers=served.auth)
            return np.asarray(result.as_numpy("delay"))

    np.testing.assert_array_equal(asyncio.run(call()), _expected(served))


def test_the_generated_modules_live_in_the_package() -> None:
    # The service module imports the messages package-qualified, not as a top-level module.
    source = Path(pb_grpc.__file__).read_text()
    assert "from mlwright.serving.proto import grpc_predict_v2_pb2" in source
    assert pb.ModelInferRequest.DESCRIPTOR.file.pool is not triton_pb.DESCRIPTOR.pool
