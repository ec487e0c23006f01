"""The OpenAPI document says what the server does: the errors each operation can
answer in its dialect's shape (never FastAPI's 422, which execd does not send), the
bearer scheme on every operation that takes a token, one operationId each, the media
types of what is not JSON."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from execd.api.app import create_app
from execd.config import Settings
from execd.runtime import Runtime


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data = tmp_path_factory.mktemp("openapi")
    runtime = Runtime(Settings(database_url=f"sqlite:///{data / 'x.db'}", data_dir=data))
    try:
        return create_app(runtime, workers=0).openapi()
    finally:
        asyncio.run(runtime.db.dispose())


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, m, op) for path, item in document["paths"].items() for m, op in item.items()]


def test_errors_are_documented_in_each_dialects_shape_and_no_422(
    document: dict[str, Any],
) -> None:
    shapes = {"/api/v1/": "V1Error", "/api/history/": "FlowError", "/api/flows": "FlowError"}
    for path, method, op in _operations(document):
        answers = op["responses"]
        assert "422" not in answers, (method, path)
        assert "503" in answers, (method, path)
        if op.get("security"):
            assert {"401", "403", "429"} <= set(answers), (method, path)
        if "requestBody" in op:
            assert {"400", "413"} <= set(answers), (method, path)
        for prefix, shape in shapes.items():
            if path.startswith(prefix):
                schema = answers["503"]["content"]["application/json"]["schema"]
                assert schema == {"$ref": f"#/components/schemas/{shape}"}, (method, path)
    tenant = document["paths"]["/api/{tenantId}/{projectId}/execution/job/{jobId}"]["get"]
    assert tenant["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TenantError"
    }
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_the_bearer_scheme_covers_every_operation_that_takes_a_token(
    document: dict[str, Any],
) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes == {
        "HTTPBearer": {"type": "http", "scheme": "bearer", "description": "An execd API token"}
    }
    open_ = sorted((m, p) for p, m, op in _operations(document) if not op.get("security"))
    # Health probes, and webhooks (a token is optional: a signed call needs none).
    assert open_ == [
        ("get", "/api/{tenantId}/{projectId}/action/unauthorized-ping"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("post", "/api/v1/webhooks/{trigger_ref}"),
    ]


def test_operation_ids_are_unique_and_media_types_are_what_is_sent(
    document: dict[str, Any],
) -> None:
    ids = Counter(op["operationId"] for _, _, op in _operations(document))
    assert [name for name, count in ids.items() if count > 1] == []
    export = document["paths"]["/api/v1/executions/export"]["get"]["responses"]["200"]
    assert set(export["content"]) == {"application/x-ndjson", "text/csv"}
    execute = document["paths"]["/api/{tenantId}/{projectId}/action/execute/{actionId}"]
    assert set(execute) == {"get", "post"} and "requestBody" in execute["post"]
    batch = document["paths"]["/api/v1/executions/batch"]["post"]["responses"]
    assert {"200", "201", "207"} <= set(batch)


def test_the_document_is_written_once(tmp_path: Path) -> None:
    runtime = Runtime(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}", data_dir=tmp_path))
    try:
        app = create_app(runtime, workers=0)
        assert app.openapi() is app.openapi()
    finally:
        asyncio.run(runtime.db.dispose())


def _parameter(document: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    found = [p for p in document["paths"][path][method]["parameters"] if p["name"] == name]
    assert len(found) == 1, (path, name)
    schema: dict[str, Any] = found[0]["schema"]
    return schema


def test_what_a_request_may_hold_is_in_the_schemas(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    # What the store keeps, stated once: free-form objects are JsonObjects, text has no NUL.
    value = schemas["JsonValue"]["anyOf"]
    assert {"type": "string", "pattern": "^[^\\u0000]*$"} in value
    assert schemas["JsonObject"]["propertyNames"] == {"pattern": "^[^\\u0000]*$"}
    body = schemas["StepBody"]
    assert body["properties"]["parameters"]["allOf"] == [
        {"$ref": "#/components/schemas/JsonObject"}
    ]
    assert body["properties"]["name"]["anyOf"][0]["pattern"] == "^[^\\u0000]*$"
    # Values the handlers check themselves, shown as what they take.
    limit = _parameter(document, "/api/history/executions", "get", "limit")
    assert limit["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 1000}
    status = _parameter(document, "/api/v1/executions/status/{status}", "get", "status")
    assert "abandoned" in status["enum"] and "timeout" in status["enum"]
    cursor = _parameter(document, "/api/v1/audit", "get", "cursor")
    assert cursor["anyOf"][0]["pattern"] == "^(a[0-9]{1,19})?$"
    # Bounds past 2**53 are cut to what a double reads exactly, inside the real bound.
    parent = schemas["ExecuteBody"]["properties"]["parent"]
    assert parent["anyOf"][0]["maximum"] == 9223372036854770000
    assert float(parent["anyOf"][0]["maximum"]) == 9.22337203685477e18
    # Rules between fields: an admin token's scope, a step's one kind.
    assert len(schemas["TokenBody"]["allOf"]) == 2
    assert len(body["anyOf"]) == 2
    # Error bodies quote what was refused: they carry no such pattern.
    assert "pattern" not in schemas["V1Error"]["properties"]["error"]
