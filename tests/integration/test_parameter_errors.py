"""Patterns in parameter schemas run on a bounded engine, and parameter errors name a
secret parameter without showing its value (issue 12), through every API that
validates parameters, in process on both backends (what is answered needs no real server)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

SECRET = "S3c-val"  # 7 characters: too short for the schema below
TOO_SHORT = "Invalid parameter 'api_key' (secret): is too short: at least 8 characters"
PARAMETERS = {
    "type": "object",
    "properties": {
        "api_key": {"type": "string", "secret": True, "minLength": 8},
        "name": {"type": "string", "pattern": "^(a+)+$"},
        # Backtracks for ever on `re` and on `regex` alike: only the time limit stops it.
        "slow": {"type": "string", "pattern": "^(a|aa)+$"},
        "code": {"type": "string", "pattern": r"\d{3}"},
    },
}
STALLING = "a" * 40 + "!"


def define(client: httpx.Client, parameters: dict[str, Any] = PARAMETERS) -> None:
    body = {
        "ref": "vault.login",
        "runner": "shell",
        "entry_point": "true",
        "parameters": parameters,
    }
    created = client.post("/api/v1/actions", json=body)
    assert created.status_code == 201, created.text


@pytest.mark.alone  # values that match in time only if the process gets its turn
def test_v1_execute_answers_catastrophic_patterns_and_hides_secrets(client: httpx.Client) -> None:
    define(client)

    def execute(**parameters: str) -> httpx.Response:
        body = {"action_ref": "vault.login", "parameters": parameters}
        return client.post("/api/v1/executions/execute", json=body)

    accepted = execute(api_key="long enough", name="aaa", slow="aaaa", code="x123")
    assert accepted.status_code == 201, accepted.text

    # The case that took 15 s to validate with `re`: a plain "does not match".
    evil = execute(name="a" * 29 + "!")
    assert evil.status_code == 400, evil.text
    assert evil.json() == {
        "status": 400,
        "error": f"Invalid parameter 'name': {'a' * 29 + '!'!r} does not match '^(a+)+$'",
    }
    stalled = execute(slow=STALLING)
    assert stalled.status_code == 400, stalled.text
    assert set(stalled.json()) == {"status", "error"}
    assert stalled.json()["error"].startswith(
        "Invalid parameter 'slow': matching the pattern '^(a|aa)+$' took longer than"
    )
    assert client.get("/healthz").status_code == 200

    short = execute(code="12")
    assert short.status_code == 400
    assert short.json()["error"] == r"Invalid parameter 'code': '12' does not match '\\d{3}'"

    secret = execute(api_key=SECRET)
    assert secret.status_code == 400
    assert secret.json() == {"status": 400, "error": TOO_SHORT}
    assert SECRET not in secret.text


def test_an_error_about_the_whole_object_does_not_show_a_secret(client: httpx.Client) -> None:
    define(client, {**PARAMETERS, "minProperties": 3})
    body = {"action_ref": "vault.login", "parameters": {"api_key": "long enough secret"}}
    refused = client.post("/api/v1/executions/execute", json=body)
    assert refused.status_code == 400
    assert refused.json()["error"] == "Invalid parameters: has too few properties: at least 3"
    assert "long enough secret" not in refused.text


def test_patterns_that_could_stall_the_server_are_refused_when_defined(
    client: httpx.Client,
) -> None:
    for parameters, reason in [
        (
            {"type": "object", "properties": {"x": {"pattern": "((((a{100}){100}){100}){100})"}}},
            "counted repeats",
        ),
        (
            {"type": "object", "patternProperties": {"^a": {}}, "unevaluatedProperties": False},
            "patternProperties cannot be combined with unevaluatedProperties",
        ),
    ]:
        body = {"ref": "x.y", "runner": "shell", "entry_point": "true", "parameters": parameters}
        refused = client.post("/api/v1/actions", json=body)
        assert refused.status_code == 400, refused.text
        assert reason in refused.json()["error"]
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/v1/actions/x.y").status_code == 404


def test_tenant_execute_names_the_secret_without_showing_it(client: httpx.Client) -> None:
    me = client.get("/api/v1/me").json()["data"]
    base = f"/api/{me['tenant_id']}/{me['project_id']}"
    body = {"name": "login", "runner": "shell", "entryPoint": "true", "parameters": PARAMETERS}
    created = client.post(f"{base}/action", json=body)
    assert created.status_code == 201, created.text
    action_id = created.json()["actionId"]

    def execute(**parameters: str) -> httpx.Response:
        return client.post(f"{base}/action/execute/{action_id}", json={"parameters": parameters})

    refused = execute(api_key=SECRET)
    assert refused.status_code == 404, refused.text  # the dialect's "can't create execution"
    assert refused.json() == {
        "error": "Action can't create execution",
        "actionId": action_id,
        "reason": TOO_SHORT,
    }
    assert SECRET not in refused.text
    stalled = execute(slow=STALLING)
    assert stalled.status_code == 404
    assert stalled.json()["reason"].startswith("Invalid parameter 'slow': matching the pattern")


def test_a_flow_step_names_the_secret_without_showing_it(client: httpx.Client) -> None:
    define(client)
    step = {"action": "vault.login", "parameters": {"api_key": "{{ parameters.key }}"}}
    created = client.post("/api/flows", json={"name": "login", "steps": [step]})
    assert created.status_code == 201, created.text
    flow_id = created.json()["flow"]["id"]

    refused = client.post(f"/api/flows/{flow_id}/execute", json={"parameters": {"key": SECRET}})
    assert refused.status_code == 400, refused.text
    body = refused.json()
    assert body["success"] is False and body["code"] == "INVALID_PARAMETERS"
    assert body["message"] == f"flow 'login' step 1: {TOO_SHORT}"
    assert SECRET not in refused.text


def test_a_rule_stores_an_error_naming_the_secret_without_showing_it(
    client: httpx.Client,
) -> None:
    define(client)
    trigger = {"ref": "logins", "type": "webhook"}
    assert client.post("/api/v1/triggers", json=trigger).status_code == 201
    for ref, template in [("login", {"api_key": "{{ payload.key }}"}),
                          ("check", {"slow": "{{ payload.text }}"})]:  # fmt: skip
        rule = {"ref": ref, "trigger": "logins", "action_ref": "vault.login",
                "parameters": template}  # fmt: skip
        assert client.post("/api/v1/rules", json=rule).status_code == 201

    fired = client.post("/api/v1/webhooks/logins", json={"key": SECRET, "text": STALLING})
    assert fired.status_code == 202, fired.text
    answered = {e["rule_ref"]: e for e in fired.json()["data"]["enforcements"]}
    assert answered["login"]["status"] == "failed" and answered["login"]["executions"] == []
    assert answered["login"]["error"] == TOO_SHORT
    assert answered["check"]["status"] == "failed"
    assert answered["check"]["error"].startswith("Invalid parameter 'slow': matching the pattern")

    listed = client.get("/api/v1/enforcements", params={"status": "failed"})
    assert listed.status_code == 200
    stored = {e["rule_ref"]: e for e in listed.json()["data"]}
    assert stored["login"]["error"] == TOO_SHORT
    assert SECRET not in str([e["error"] for e in stored.values()])


# -- bounded cost, no 500s ---------------------------------------------------------------


def test_a_schema_whose_references_loop_is_refused_when_defined(client: httpx.Client) -> None:
    looping = {
        "type": "object",
        "$defs": {"a": {"$ref": "#/$defs/a"}},
        "properties": {"x": {"$ref": "#/$defs/a"}},
    }
    body = {"ref": "loop.a", "runner": "shell", "entry_point": "true", "parameters": looping}
    refused = client.post("/api/v1/actions", json=body)
    assert refused.status_code == 400, refused.text
    assert refused.json() == {
        "status": 400,
        "error": "Invalid parameters schema: $ref '#/$defs/a' loops: it leads back to a "
        "schema that applies it to the same value, so validating would never end (a "
        "reference back must go through a property or an item)",
    }
    assert client.get("/api/v1/actions/loop.a").status_code == 404

    me = client.get("/api/v1/me").json()["data"]
    tenant_body = {"name": "loop", "runner": "shell", "entryPoint": "true", "parameters": looping}
    tenant = client.post(f"/api/{me['tenant_id']}/{me['project_id']}/action", json=tenant_body)
    assert tenant.status_code == 400, tenant.text
    assert "$ref '#/$defs/a' loops" in tenant.text


NOT_FINITE = "is not a finite number (Infinity, NaN, or beyond the range of a double"


@pytest.mark.parametrize("number", ["1e400", "-1e400", "NaN", "Infinity", "-Infinity"])
def test_numbers_json_cannot_hold_are_refused_in_each_apis_shape(
    client: httpx.Client, number: str
) -> None:
    define(client, {"type": "object", "properties": {"n": {"multipleOf": 0.5}}})
    accepted = client.post(
        "/api/v1/executions/execute",
        json={"action_ref": "vault.login", "parameters": {"n": 1.5}},
    )
    assert accepted.status_code == 201, accepted.text

    def raw(path: str, text: str) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        return client.post(path, content=text.replace("N", number), headers=headers)

    v1 = raw("/api/v1/executions/execute", '{"action_ref": "vault.login", "parameters": {"n": N}}')
    assert v1.status_code == 400, v1.text
    assert v1.json() == {
        "status": 400,
        "error": f"The request body.parameters.n {NOT_FINITE} such as 1e400)",
    }

    me = client.get("/api/v1/me").json()["data"]
    body = {"name": "num", "runner": "shell", "entryPoint": "true", "parameters": {}}
    base = f"/api/{me['tenant_id']}/{me['project_id']}"
    action_id = client.post(f"{base}/action", json=body).json()["actionId"]
    tenant = raw(f"{base}/action/execute/{action_id}", '{"parameters": {"n": N}}')
    assert tenant.status_code == 400, tenant.text
    assert NOT_FINITE in tenant.text

    flow = client.post("/api/flows", json={"name": "num", "steps": [{"action": "core.noop"}]})
    assert flow.status_code == 201, flow.text
    flows = raw(f"/api/flows/{flow.json()['flow']['id']}/execute", '{"parameters": {"n": N}}')
    assert flows.status_code == 400, flows.text
    assert flows.json()["success"] is False and NOT_FINITE in flows.json()["message"]

    # Nothing was stored with the number turned into null: only the first execution is.
    [only] = client.get("/api/v1/executions").json()["data"]
    assert client.get(f"/api/v1/executions/{only['id']}").json()["data"]["config"] == {"n": 1.5}


def test_unique_items_of_8000_objects_are_checked_in_one_pass(client: httpx.Client) -> None:
    define(
        client, {"type": "object", "properties": {"items": {"type": "array", "uniqueItems": True}}}
    )
    items = [{"a": i} for i in range(8000)]

    def execute(values: list[dict[str, int]]) -> httpx.Response:
        body = {"action_ref": "vault.login", "parameters": {"items": values}}
        return client.post("/api/v1/executions/execute", json=body)

    accepted = execute(items)
    assert accepted.status_code == 201, accepted.text
    repeated = execute([*items, {"a": 7998}])
    assert repeated.status_code == 400, repeated.text
    assert repeated.json() == {
        "status": 400,
        "error": "Invalid parameter 'items': has non-unique elements: items 7998 and 8000 "
        "are equal",
    }
    assert client.get("/healthz").status_code == 200


def test_a_schema_that_multiplies_its_work_is_answered_400(client: httpx.Client) -> None:
    # Each level applies the next twice: 2**40 applications of the last one.
    defs: dict[str, Any] = {
        f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(40)
    }
    defs["d40"] = {"type": "string"}
    define(
        client,
        {"type": "object", "$defs": defs, "properties": {"x": {"$ref": "#/$defs/d0"}}},
    )
    body = {"action_ref": "vault.login", "parameters": {"x": "text"}}
    refused = client.post("/api/v1/executions/execute", json=body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"].startswith(
        "Invalid parameters: checking them against the action's schema takes more than the "
    )
    assert client.get("/healthz").status_code == 200
