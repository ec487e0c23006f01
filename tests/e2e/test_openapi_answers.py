"""The success answers the OpenAPI document describes are the answers the server gives:
real executions, made and read through the v1 executions API on both backends, are
checked against the schemas `/openapi.json` serves for each operation and status. (The
schemathesis run in test_v1_fuzz.py seldom reaches a success: its generated ids and
refs name nothing.)"""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema

from tests.support import submit, wait_status


class Document:
    def __init__(self, client: httpx.Client) -> None:
        self.spec: dict[str, Any] = client.get("/openapi.json").json()

    def check(self, method: str, path: str, response: httpx.Response) -> dict[str, Any]:
        """`response` against what the document gives for its status; its body."""
        answers = self.spec["paths"][path][method]["responses"]
        assert str(response.status_code) in answers, (method, path, response.status_code)
        schema = answers[str(response.status_code)]["content"]["application/json"]["schema"]
        assert schema, f"{method} {path}: {response.status_code} has no schema"
        # Component refs (#/components/...) resolve against the document's own.
        rooted = {**schema, "components": self.spec["components"]}
        body: dict[str, Any] = response.json()
        jsonschema.validate(body, rooted, format_checker=jsonschema.FormatChecker())
        return body


def test_execution_answers_match_their_schemas(client: httpx.Client) -> None:
    document = Document(client)
    one = "/api/v1/executions/{execution_id}"
    made = client.post(
        "/api/v1/executions/execute",
        json={"action_ref": "core.echo", "parameters": {"message": "hi"}},
        headers={"Idempotency-Key": "answers-1"},
    )
    created = document.check("post", "/api/v1/executions/execute", made)["data"]
    replayed = client.post(
        "/api/v1/executions/execute",
        json={"action_ref": "core.echo", "parameters": {"message": "hi"}},
        headers={"Idempotency-Key": "answers-1"},
    )
    assert replayed.status_code == 200
    assert (
        document.check("post", "/api/v1/executions/execute", replayed)["data"]["id"]
        == (created["id"])
    )
    done = wait_status(client, created["id"])
    assert done["status"] == "completed"
    read = document.check("get", one, client.get(f"/api/v1/executions/{created['id']}"))
    assert read["data"]["result"] is not None and read["data"]["started"] is not None
    events = client.get(f"/api/v1/executions/{created['id']}/history")
    assert len(document.check("get", f"{one}/history", events)["data"]) >= 3
    retried = client.post(f"/api/v1/executions/{created['id']}/retry", json={})
    assert document.check("post", f"{one}/retry", retried)["data"]["retry_of"] == created["id"]
    waiting = submit(client, "core.sleep", {"seconds": 30})
    cancelled = client.post(f"/api/v1/executions/{waiting['id']}/cancel")
    assert document.check("post", f"{one}/cancel", cancelled)["data"]["id"] == waiting["id"]
    # Pages: counted, not counted, by cursor, by status.
    listed = [
        client.get("/api/v1/executions", params={"per_page": 2}),
        client.get("/api/v1/executions", params={"include_total": "false"}),
        client.get("/api/v1/executions", params={"cursor": "", "per_page": 1}),
    ]
    for response in listed:
        assert document.check("get", "/api/v1/executions", response)["data"]
    by_status = client.get("/api/v1/executions/status/completed")
    assert document.check("get", "/api/v1/executions/status/{status}", by_status)["data"]
