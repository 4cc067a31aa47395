"""schemathesis fuzzes the REST API against its own OpenAPI document, on a real uvicorn
server: no input it generates (valid or not) may get a 500, an undocumented status or a body
that breaks the documented schema — and the server answers normally afterwards."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings

from mlwright.security.tokens import TokenVerifier
from mlwright.serving.app import build_app
from mlwright.serving.host import ModelHost
from mlwright.serving.settings import ServeSettings

from .conftest import Served
from .support import free_port, records

pytestmark = pytest.mark.xdist_group("server")


@pytest.fixture
def server_url(served: Served) -> Iterator[str]:
    host = ModelHost(served.workspace, ["risk@champion"],
                     settings=ServeSettings(max_request_rows=50, log_flush_seconds=0.2))
    app = build_app(host, verifier=TokenVerifier(served.workspace))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                                           loop="asyncio", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    yield url
    server.should_exit = True
    thread.join(30)


def test_the_api_survives_fuzzing_against_its_own_openapi_document(
        served: Served, server_url: str) -> None:
    document = httpx.get(f"{server_url}/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=server_url)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/models/risk/predict", "/v1/feedback"}
    headers = {"Authorization": f"Bearer {served.token}"}  # the spelling schemathesis strips
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers)

        fuzz()
    after = httpx.post(f"{server_url}/v1/models/risk/predict", json={"records": records(2)},
                       headers=headers)
    assert after.status_code == 200
