"""The OpenAPI 3.1 document of a running server, written from the models it serves.

>>> openapi_document(host)["paths"]["/v1/models/delays/predict"]    # doctest: +SKIP

Each served model gets its own ``/v1/models/NAME/predict`` path whose request schema is the
model's signature (types, nullability, no extra fields), so clients can be generated from it
and the API can be fuzzed against it (the test suite runs schemathesis on it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlwright.serving.fields import FieldSpec

if TYPE_CHECKING:
    from mlwright.serving.host import ModelHost

_TYPES = {"float": "number", "int": "integer", "bool": "boolean", "string": "string"}


def _field_schema(spec: FieldSpec) -> dict[str, Any]:
    kind = _TYPES[spec.kind]
    return {"type": [kind, "null"] if spec.nullable else kind}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


_ERRORS = {"400": _error("Malformed request (not JSON, wrong content type)."),
           "401": _error("Missing, unknown, revoked or expired token."),
           "404": _error("Unknown model or version."),
           "413": _error("Body or rows over the limit."),
           "422": _error("Fields that do not match the signature, each named."),
           "429": _error("Rate limit exceeded."),
           "500": _error("The model failed; the request id leads to the log.")}


def _predict_path(name: str, specs: list[FieldSpec], max_rows: int) -> dict[str, Any]:
    record = {"type": "object", "additionalProperties": False,
              "required": [s.name for s in specs],
              "properties": {s.name: _field_schema(s) for s in specs}}
    request = {"type": "object", "additionalProperties": False, "required": ["records"],
               "properties": {"records": {"type": "array", "minItems": 1, "maxItems": max_rows,
                                          "items": record}}}
    response = {"type": "object", "required": ["predictions", "model", "version", "request_id"],
                "properties": {"predictions": {"type": "array"}, "model": {"type": "string"},
                               "version": {"type": "integer"},
                               "request_id": {"type": "string"}}}
    return {"post": {
        "operationId": f"predict_{name}", "summary": f"Predict with model '{name}'.",
        "security": [{"bearer": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": request}}},
        "responses": {"200": {"description": "One prediction per record, in order.",
                              "content": {"application/json": {"schema": response}}},
                      **_ERRORS}}}


def openapi_document(host: ModelHost) -> dict[str, Any]:
    """The document for the models ``host`` serves now."""
    from mlwright import __version__

    paths: dict[str, Any] = {}
    for name in host.names():
        served = host.served(name)
        paths[f"/v1/models/{name}/predict"] = _predict_path(name, served.path.fields,
                                                             host.settings.max_request_rows)
    feedback_item = {"type": "object", "additionalProperties": False,
                     "required": ["request_id", "label"],
                     "properties": {"request_id": {"type": "string",
                                                   "pattern": "^[A-Za-z0-9_.:-]{1,64}$"},
                                    "label": {"type": ["number", "string", "boolean", "null"]},
                                    "row": {"type": ["integer", "null"], "minimum": 0}}}
    paths["/v1/feedback"] = {"post": {
        "operationId": "feedback", "summary": "Labels for earlier predictions, by request id.",
        "security": [{"bearer": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "oneOf": [feedback_item,
                      {"type": "object", "additionalProperties": False,
                       "required": ["feedback"],
                       "properties": {"feedback": {"type": "array", "minItems": 1,
                                                   "items": feedback_item}}}]}}}},
        "responses": {"202": {"description": "Accepted.", "content": {"application/json": {
            "schema": {"type": "object", "properties": {"accepted": {"type": "integer"}}}}}},
            **_ERRORS}}}
    paths["/v1/models"] = {"get": {
        "operationId": "models", "summary": "The served models and their inputs.",
        "security": [{"bearer": []}],
        "responses": {"200": {"description": "Served models.", "content": {
            "application/json": {"schema": {"type": "object"}}}}, **_ERRORS}}}
    paths["/v2/health/live"] = {"get": {"operationId": "live", "responses": {
        "200": {"description": "The worker is up.",
                "content": {"application/json": {"schema": {"type": "object"}}}}}}}
    paths["/v2/health/ready"] = {"get": {"operationId": "ready", "responses": {
        "200": {"description": "Every model is loaded.",
                "content": {"application/json": {"schema": {"type": "object"}}}},
        "503": {"description": "Still loading.",
                "content": {"application/json": {"schema": {"type": "object"}}}}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "mlwright inference API", "version": __version__,
                 "description": "Registered models behind the plain JSON API (/v1) and the "
                                "Open Inference Protocol v2 (/v2, also over gRPC)."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "required": ["error", "request_id"],
                                  "properties": {"error": {"type": "string"},
                                                 "request_id": {"type": "string"},
                                                 "errors": {"type": "array"}}}}},
    }
