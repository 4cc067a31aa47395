"""The REST API in process (Starlette's test client drives the real app and its lifespan):
/v1 JSON, Open Inference Protocol v2, auth, every bad input of the issue, limits, metrics,
feedback, the response cache and the prediction log."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from mlwright.registry import load_model
from mlwright.security import revoke_token
from mlwright.security.tokens import TokenVerifier
from mlwright.serving.app import build_app
from mlwright.serving.host import ModelHost
from mlwright.serving.settings import ServeSettings

from .conftest import Served
from .support import FEATURES, records


def make_app(served: Served, refs: list[str] | None = None, **settings: Any) -> Any:
    host = ModelHost(served.workspace, refs or ["risk@champion", "exploding"],
                     settings=ServeSettings(**settings))
    return build_app(host, verifier=TokenVerifier(served.workspace, refresh=0.0))


@pytest.fixture
def client(served: Served) -> Iterator[TestClient]:
    with TestClient(make_app(served), raise_server_exceptions=False) as test_client:
        test_client.headers.update(served.headers)
        yield test_client


def expected(served: Served, rows: list[dict[str, Any]], ref: str = "risk@1") -> list[float]:
    return load_model(ref, workspace=served.workspace).predict(pd.DataFrame(rows)).tolist()


def test_v1_predict_returns_the_models_predictions_with_version_and_request_id(
        client: TestClient, served: Served) -> None:
    rows = records(5)
    response = client.post("/v1/models/risk/predict", json={"records": rows})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "risk" and body["version"] == 1
    assert np.allclose(body["predictions"], expected(served, rows), rtol=0, atol=1e-12)
    assert response.headers["x-request-id"] == body["request_id"] and len(body["request_id"]) == 32


def test_a_request_id_sent_by_the_client_is_kept(client: TestClient) -> None:
    response = client.post("/v1/models/risk/predict", json={"records": records(1)},
                           headers={"x-request-id": "order-42"})
    assert response.json()["request_id"] == "order-42"
    odd = client.post("/v1/models/risk/predict", json={"records": records(1)},
                      headers={"x-request-id": "no spaces allowed"})
    assert odd.json()["request_id"] != "no spaces allowed"


def test_oip_v2_health_metadata_and_infer(client: TestClient, served: Served) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json()["name"] == "mlwright"
    meta = client.get("/v2/models/risk").json()
    assert meta["name"] == "risk" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "a", "datatype": "FP64", "shape": [-1]},
                              {"name": "b", "datatype": "FP64", "shape": [-1]},
                              {"name": "c", "datatype": "FP64", "shape": [-1]},
                              {"name": "n", "datatype": "INT64", "shape": [-1]}]
    assert meta["outputs"][0]["name"] == "y"
    assert client.get("/v2/models/risk/ready").json() == {"name": "risk", "ready": True}
    assert client.get("/v2/models/risk/versions/1/ready").status_code == 200
    assert client.get("/v2/models/risk/versions/2/ready").status_code == 404
    rows = records(4)
    tensors = [{"name": name, "shape": [4, 1] if name == "b" else [4],
                "datatype": "INT64" if name == "n" else "FP64",
                "data": [r[name] for r in rows]} for name in FEATURES]
    response = client.post("/v2/models/risk/infer", json={"id": "req-1", "inputs": tensors})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "risk" and body["model_version"] == "1" and body["id"] == "req-1"
    (output,) = body["outputs"]
    assert output["name"] == "y" and output["datatype"] == "FP64" and output["shape"] == [4]
    assert np.allclose(output["data"], expected(served, rows), rtol=0, atol=1e-12)
    versioned = client.post("/v2/models/risk/versions/1/infer", json={"inputs": tensors})
    assert versioned.status_code == 200
    assert client.post("/v2/models/risk/versions/9/infer", json={"inputs": tensors}).status_code == 404


def test_oip_v2_binary_tensor_extension(client: TestClient, served: Served) -> None:
    import orjson

    rows = records(3)
    raw = [np.asarray([r[n] for r in rows], dtype=np.int64 if n == "n" else np.float64).tobytes()
           for n in FEATURES]
    header = orjson.dumps({"inputs": [
        {"name": n, "shape": [3], "datatype": "INT64" if n == "n" else "FP64",
         "parameters": {"binary_data_size": len(r)}} for n, r in zip(FEATURES, raw, strict=True)]})
    response = client.post("/v2/models/risk/infer", content=header + b"".join(raw), headers={
        "inference-header-content-length": str(len(header)),
        "content-type": "application/octet-stream"})
    assert response.status_code == 200, response.text
    assert np.allclose(response.json()["outputs"][0]["data"], expected(served, rows), atol=1e-12)


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer mlw_nope_nope"},
                                     {"authorization": "Basic abc"},
                                     {"authorization": "Bearer "}])
def test_missing_or_wrong_token_is_401_revealing_nothing(served: Served,
                                                         headers: dict[str, str]) -> None:
    with TestClient(make_app(served)) as bare:
        response = bare.post("/v1/models/risk/predict", json={"records": records(1)},
                             headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "request_id" in response.json()
        first = response.json()["error"]
        other = bare.get("/v2/models/risk", headers=headers)
        assert other.status_code == 401 and other.json()["error"] == first
        assert bare.get("/v2/health/ready").status_code == 200  # health needs no token


def test_scopes_and_revocation(served: Served) -> None:
    with TestClient(make_app(served)) as bare:
        reader = {"authorization": f"Bearer {served.read_token}"}
        assert bare.post("/v1/models/risk/predict", json={"records": records(1)},
                         headers=reader).status_code == 401
        assert bare.post("/v1/feedback", json={"request_id": "x1", "label": 1},
                         headers=reader).status_code == 401
        assert bare.post("/v1/models/risk/predict", json={"records": records(1)},
                         headers=served.headers).status_code == 200
        revoke_token("tests", workspace=served.workspace)
        assert bare.post("/v1/models/risk/predict", json={"records": records(1)},
                         headers=served.headers).status_code == 401


def test_auth_can_be_switched_off(served: Served) -> None:
    with TestClient(make_app(served, auth=False)) as bare:
        assert bare.post("/v1/models/risk/predict", json={"records": records(1)}).status_code == 200


def problems(response: httpx.Response) -> dict[str, str]:
    return {p["field"]: p["problem"] for p in response.json()["errors"]}


def test_bad_requests_get_the_right_4xx_and_the_worker_keeps_serving(client: TestClient) -> None:
    url = "/v1/models/risk/predict"
    malformed = client.post(url, content=b'{"records": [', headers={"content-type": "application/json"})
    assert malformed.status_code == 400 and "not valid JSON" in malformed.json()["error"]
    wrong_type = client.post(url, content=b"a=1", headers={"content-type": "text/plain"})
    assert wrong_type.status_code == 415 and "application/json" in wrong_type.json()["error"]
    empty_body = client.post(url, content=b"", headers={"content-type": "application/json"})
    assert empty_body.status_code == 400
    not_object = client.post(url, json=[1, 2])
    assert not_object.status_code == 422
    missing = client.post(url, json={"records": [{"a": 1.0, "b": 2.0}]})
    assert missing.status_code == 422
    assert problems(missing) == {"records[0].c": "missing", "records[0].n": "missing"}
    extra = client.post(url, json={"records": [{**records(1)[0], "zzz": 1}]})
    assert extra.status_code == 422 and "records[0].zzz" in problems(extra)
    types = client.post(url, json={"records": [{"a": "x", "b": True, "c": None, "n": 1.5}]})
    assert types.status_code == 422
    found = problems(types)
    assert found["a"].startswith("expected a number") and "boolean" in found["b"]
    assert "fraction" in found["n"] and "c" not in found  # c is nullable: null is a NaN
    empty = client.post(url, json={"records": []})
    assert empty.status_code == 422 and problems(empty) == {"records": "empty"}
    other_field = client.post(url, json={"records": records(1), "extra": 1})
    assert other_field.status_code == 422
    unknown = client.post("/v1/models/nope/predict", json={"records": records(1)})
    assert unknown.status_code == 404 and "risk" in unknown.json()["error"]
    ok = client.post(url, json={"records": records(2)})
    assert ok.status_code == 200


def test_infinity_is_refused_and_nan_is_a_missing_value(client: TestClient) -> None:
    tensors = [{"name": n, "shape": [2], "datatype": "INT64" if n == "n" else "FP64",
                "data": [1, 2]} for n in FEATURES]
    raw = np.asarray([math.inf, 1.0]).tobytes()
    import orjson

    header = orjson.dumps({"inputs": [
        {"name": "a", "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": 16}},
        *tensors[1:]]})
    response = client.post("/v2/models/risk/infer", content=header + raw, headers={
        "inference-header-content-length": str(len(header)),
        "content-type": "application/octet-stream"})
    assert response.status_code == 422 and "infinity" in problems(response)["a"]
    nan = np.asarray([math.nan, 1.0]).tobytes()
    response = client.post("/v2/models/risk/infer", content=header + nan, headers={
        "inference-header-content-length": str(len(header)),
        "content-type": "application/octet-stream"})
    assert response.status_code == 200
    bad_tensor = client.post("/v2/models/risk/infer", json={"inputs": [{"name": "a"}]})
    assert bad_tensor.status_code == 422
    wrong_count = client.post("/v2/models/risk/infer", json={"inputs": [
        {"name": "a", "shape": [3], "datatype": "FP64", "data": [1, 2]}]})
    assert wrong_count.status_code == 422 and "needs 3 values" in problems(wrong_count)["a"]


def test_limits_body_rows_and_rate(served: Served) -> None:
    with TestClient(make_app(served, max_body_bytes=2048, max_request_rows=5)) as limited:
        limited.headers.update(served.headers)
        huge = limited.post("/v1/models/risk/predict", json={"records": records(60)})
        assert huge.status_code == 413 and "limit" in huge.json()["error"]
        rows = limited.post("/v1/models/risk/predict", json={"records": records(6)})
        assert rows.status_code == 413 and "6 rows" in rows.json()["error"]
        assert limited.post("/v1/models/risk/predict",
                            json={"records": records(5)}).status_code == 200
    with TestClient(make_app(served, rate_limit=0.001, rate_burst=3)) as rated:
        rated.headers.update(served.headers)
        codes = [rated.post("/v1/models/risk/predict", json={"records": records(1)}).status_code
                 for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]


def test_a_model_that_raises_is_a_500_with_the_request_id_and_the_next_request_works(
        client: TestClient) -> None:
    row = {**records(1)[0], "a": 13.0}
    failed = client.post("/v1/models/exploding/predict", json={"records": [row]})
    assert failed.status_code == 500
    body = failed.json()
    assert body["request_id"] in body["error"] and "boom" not in body["error"]
    ok = client.post("/v1/models/exploding/predict", json={"records": records(2)})
    assert ok.status_code == 200 and ok.json()["predictions"] == [r["a"] * 2 for r in records(2)]


def test_metrics_count_requests_latency_batches_and_errors(client: TestClient) -> None:
    for _ in range(3):
        client.post("/v1/models/risk/predict", json={"records": records(2)})
    client.post("/v1/models/risk/predict", json={"records": []})
    text = client.get("/metrics").text
    assert 'mlwright_requests_total{model="risk",version="1"} 3.0' in text
    assert 'mlwright_predicted_rows_total{model="risk",version="1"} 6.0' in text
    assert 'mlwright_request_latency_seconds_count{model="risk",version="1"} 3.0' in text
    assert 'mlwright_batch_rows_bucket{le="2.0",model="risk",version="1"} 3.0' in text
    assert 'mlwright_request_errors_total{code="422",model="risk",version="1"} 1.0' in text
    assert 'mlwright_model_version{model="risk"} 1.0' in text


def test_concurrent_requests_are_predicted_in_batches(served: Served) -> None:
    app = make_app(served, max_wait_us=20_000)
    host: ModelHost = app.state.api.host
    rows = records(40)

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=transport, base_url="http://test", headers=served.headers) as ac:
            return list(await asyncio.gather(*[
                ac.post("/v1/models/risk/predict", json={"records": [row]}) for row in rows]))

    responses = asyncio.run(run())
    assert all(r.status_code == 200 for r in responses)
    got = [r.json()["predictions"][0] for r in responses]
    assert np.allclose(got, expected(served, rows), atol=1e-12)  # each got its own row back
    sizes = host.batch_sizes()["risk"]
    assert sum(sizes) == 40 and max(sizes) > 1


def test_response_cache_answers_repeated_inputs(served: Served) -> None:
    app = make_app(served, response_cache=16)
    with TestClient(app) as cached:
        cached.headers.update(served.headers)
        first = cached.post("/v1/models/risk/predict", json={"records": records(2)}).json()
        second = cached.post("/v1/models/risk/predict", json={"records": records(2)}).json()
        assert first["predictions"] == second["predictions"]
        cache = app.state.api.host.served("risk").cache
        assert (cache.hits, cache.misses) == (1, 1)


def test_predictions_and_feedback_are_logged(served: Served) -> None:
    from mlwright.serving.trace import read_feedback, read_predictions

    with TestClient(make_app(served, log_flush_seconds=0.1)) as logged:
        logged.headers.update(served.headers)
        first = logged.post("/v1/models/risk/predict", json={"records": records(3)}).json()
        logged.post("/v1/models/exploding/predict", json={"records": records(1)})
        accepted = logged.post("/v1/feedback", json={"feedback": [
            {"request_id": first["request_id"], "label": 1, "row": 0},
            {"request_id": first["request_id"], "label": 0, "row": 2}]})
        assert accepted.status_code == 202 and accepted.json() == {"accepted": 2}
        bad = logged.post("/v1/feedback", json={"request_id": "x y", "lbl": 1})
        assert bad.status_code == 422
        assert set(problems(bad)) == {"body.lbl", "body.request_id", "body.label"}
    table = read_predictions(served.workspace, request_id=first["request_id"])
    assert table.num_rows == 3
    assert set(table.column("version").to_pylist()) == {1}
    assert np.allclose(table.column("output").to_pylist(), first["predictions"], atol=1e-12)
    assert read_predictions(served.workspace, model="exploding").num_rows == 1
    feedback = read_feedback(served.workspace, request_id=first["request_id"])
    assert sorted(feedback.column("row").to_pylist()) == [0, 2]


def test_openapi_document_describes_each_served_model(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    schema = document["paths"]["/v1/models/risk/predict"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]
    record = schema["properties"]["records"]["items"]
    assert record["required"] == FEATURES and record["additionalProperties"] is False
    assert record["properties"]["n"]["type"] == ["integer", "null"]


def test_requests_are_checked_against_the_training_datas_contract(served: Served) -> None:
    from mlwright import register_dataset
    from mlwright.data import Contract, Range
    from mlwright.data.checks import attach_contract
    from mlwright.registry import register_model

    from .support import fit_risk_model, risk_frame

    ws = served.workspace
    frame = risk_frame()
    register_dataset("risk_data", frame, workspace=ws)
    attach_contract("risk_data", Contract("risk", [Range("c", min=0, max=10),
                                                  Range("y", min=0, max=1)]), workspace=ws)
    version = register_model("guarded", fit_risk_model(), training_data="risk_data@1",
                             label="y", workspace=ws)
    assert version.signature is not None and version.signature.contract is not None
    with TestClient(make_app(served, refs=["guarded"])) as guarded:
        guarded.headers.update(served.headers)
        rows = records(2)
        assert guarded.post("/v1/models/guarded/predict",
                            json={"records": rows}).status_code == 200
        rows[1]["c"] = 11.0  # out of the contract's range (the label's rule says nothing here)
        refused = guarded.post("/v1/models/guarded/predict", json={"records": rows})
        assert refused.status_code == 422
        (problem,) = refused.json()["errors"]
        assert problem["field"] == "c[1]" and "range(c)" in problem["problem"]
