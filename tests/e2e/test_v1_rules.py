"""Triggers, rules and enforcements (issue 5), against a real server on both backends:
webhooks (token and HMAC), criteria, parameter templates, execution triggers that
chain rules, timers, and the enforcement records."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx
import orjson
from sqlalchemy import create_engine, update

from execd.store.database import sync_url
from execd.store.schema import rules
from tests.support import Server, get, new_project, wait_for, wait_status


def make(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def enforcements(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/api/v1/enforcements", params={"per_page": 100, **params})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["data"]
    return found


def test_a_webhook_fires_a_rule_whose_execution_fires_a_second_rule(
    client: httpx.Client,
) -> None:
    make(client, "/api/v1/triggers", {"ref": "alerts", "type": "webhook"})
    make(
        client,
        "/api/v1/triggers",
        {"ref": "echo-done", "type": "execution",
         "config": {"action_ref": "core.echo", "statuses": ["completed"]}},
    )  # fmt: skip
    page = make(
        client,
        "/api/v1/rules",
        {
            "ref": "page-oncall",
            "trigger": "alerts",
            "action_ref": "core.echo",
            "criteria": {"and": [
                {"field": "payload.severity", "op": "equals", "value": "high"},
                {"field": "payload.host", "op": "regex", "value": "^web-[0-9]+$"},
            ]},
            "parameters": {"message": "{{ payload.host }} is {{ payload.severity }}"},
        },
    )  # fmt: skip
    make(
        client,
        "/api/v1/rules",
        {
            "ref": "log-echo",
            "trigger": "echo-done",
            "action_ref": "core.echo",
            # Only the first rule's executions: the second rule's own must not loop.
            "criteria": {"field": "payload.execution.rule", "op": "equals", "value": page["id"]},
            "parameters": {"message": "followed {{ payload.execution.result }}"},
        },
    )

    # Every completed echo, to see when the log has been followed past an execution.
    make(
        client,
        "/api/v1/rules",
        {"ref": "watch-all", "trigger": "echo-done", "action_ref": "core.noop"},
    )

    # Not matching the criteria: no enforcement, nothing runs.
    quiet = client.post("/api/v1/webhooks/alerts", json={"severity": "low", "host": "web-1"})
    assert quiet.status_code == 202, quiet.text
    assert quiet.json()["data"]["enforcements"] == []

    fired = client.post("/api/v1/webhooks/alerts", json={"severity": "high", "host": "web-7"})
    assert fired.status_code == 202, fired.text
    [first] = fired.json()["data"]["enforcements"]
    assert first["rule_ref"] == "page-oncall"
    assert first["status"] == "succeeded"
    assert first["payload"] == {"severity": "high", "host": "web-7"}
    [execution_id] = first["executions"]
    done = wait_status(client, execution_id)
    assert done["status"] == "completed"
    assert done["config"] == {"message": "web-7 is high"}
    assert done["enforcement"] == first["id"]
    assert done["rule"] is not None
    assert done["submitted_by"] == "rule:page-oncall"

    # The execution's completion fires the second rule.
    def chained() -> dict[str, Any] | None:
        found = enforcements(client, rule="log-echo")
        return found[0] if found else None

    second = wait_for(chained, message="the chained rule's enforcement")
    assert second["trigger_type"] == "execution"
    assert second["payload"]["execution"]["id"] == execution_id
    assert second["payload"]["execution"]["status"] == "completed"
    assert second["depth"] == 2
    assert second["payload"]["execution"]["submitted_by"] == "rule:page-oncall"
    [followed] = second["executions"]
    assert wait_status(client, followed)["status"] == "completed"
    assert get(client, followed)["config"] == {
        "message": "followed " + orjson.dumps(done["result"]).decode()
    }

    # The records: by id, in the list, and the seed's executions-by-enforcement.
    one = client.get(f"/api/v1/enforcements/{first['id']}")
    assert one.status_code == 200 and one.json()["data"]["executions"] == [execution_id]
    listed = client.get(f"/api/v1/executions/enforcement/{first['id']}").json()["data"]
    assert [e["id"] for e in listed] == [execution_id]
    # The second rule's execution completed too, but the criteria leave it out: once
    # the log has been followed past it, the chain has ended at two.
    wait_for(
        lambda: any(
            e["payload"]["execution"]["id"] == followed
            for e in enforcements(client, rule="watch-all")
        ),
        message="the log followed past the second execution",
    )
    assert len(enforcements(client, rule="log-echo")) == 1
    assert len(enforcements(client, rule="page-oncall")) == 1


def signed(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_hmac_webhooks_need_a_valid_signature(shared_server: Any, client: httpx.Client) -> None:
    trigger = make(
        client, "/api/v1/triggers", {"ref": "signed-hook", "type": "webhook",
                                     "config": {"auth": "hmac"}}
    )  # fmt: skip
    secret = trigger["secret"]
    assert len(secret) >= 32 and trigger["has_secret"]
    # The secret is shown once: never again.
    again = client.get("/api/v1/triggers/signed-hook").json()["data"]
    assert "secret" not in again and again["has_secret"] is True
    make(client, "/api/v1/rules", {"ref": "r", "trigger": "signed-hook", "action_ref": "core.noop"})

    anonymous = httpx.Client(base_url=shared_server.url, timeout=10)
    body = orjson.dumps({"event": "push"})
    headers = {"Content-Type": "application/json"}
    unsigned = anonymous.post("/api/v1/webhooks/signed-hook", content=body, headers=headers)
    assert unsigned.status_code == 401, unsigned.text
    assert unsigned.json()["status"] == 401
    forged = anonymous.post(
        "/api/v1/webhooks/signed-hook",
        content=body,
        headers={**headers, "X-Execd-Signature": signed("not-the-secret-at-all", body)},
    )
    assert forged.status_code == 401
    # A valid signature over a different body does not pass either.
    replayed = anonymous.post(
        "/api/v1/webhooks/signed-hook",
        content=orjson.dumps({"event": "delete"}),
        headers={**headers, "X-Execd-Signature": signed(secret, body)},
    )
    assert replayed.status_code == 401
    good = anonymous.post(
        "/api/v1/webhooks/signed-hook",
        content=body,
        headers={**headers, "X-Execd-Signature": signed(secret, body)},
    )
    assert good.status_code == 202, good.text
    odd = anonymous.post(
        "/api/v1/webhooks/signed-hook",
        content=body,
        headers={**headers, "X-Execd-Signature": "sha256=é".encode()},  # not ASCII
    )
    assert odd.status_code == 401
    [enforcement] = good.json()["data"]["enforcements"]
    assert enforcement["payload"] == {"event": "push"}
    assert wait_status(client, enforcement["executions"][0])["status"] == "completed"
    anonymous.close()


def test_definitions_are_checked_and_managed(client: httpx.Client) -> None:
    bad_triggers = [
        {"ref": "x", "type": "carrier-pigeon"},
        {"ref": "x", "type": "timer", "config": {}},
        {"ref": "x", "type": "timer", "config": {"cron": "61 * * * *"}},
        {"ref": "x", "type": "timer", "config": {"cron": "* * * * *", "timezone": "Mars/Olympus"}},
        {"ref": "x", "type": "timer", "config": {"interval": 0.1}},
        {"ref": "x", "type": "timer", "config": {"interval": 5, "catch_up": "sometimes"}},
        {"ref": "x", "type": "execution", "config": {"statuses": ["exploded"]}},
        {"ref": "x", "type": "webhook", "config": {"auth": "hmac"}, "secret": "short"},
        {"ref": "x", "type": "webhook", "secret": "a-long-enough-secret-value"},
        {"ref": "-bad ref", "type": "webhook"},
        {"ref": "newline\n", "type": "webhook"},
        {"ref": "x", "type": "timer", "config": {"cron": "* * * * * *"}},  # five fields
    ]
    for body in bad_triggers:
        response = client.post("/api/v1/triggers", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["status"] == 400 and response.json()["error"]
    make(client, "/api/v1/triggers", {"ref": "hook", "type": "webhook"})
    assert (
        client.post("/api/v1/triggers", json={"ref": "hook", "type": "webhook"}).status_code == 409
    )
    timer = {"ref": "hook", "type": "timer", "config": {"interval": 60}}
    retyped = client.put("/api/v1/triggers/hook", json=timer)  # a type stays what it is
    assert retyped.status_code == 409 and "type cannot change" in retyped.text
    # PATCH enables, disables and describes; config and secret change with PUT.
    off = client.patch("/api/v1/triggers/hook", json={"enabled": False, "description": "d"})
    assert off.status_code == 200, off.text
    assert (off.json()["data"]["enabled"], off.json()["data"]["description"]) == (False, "d")
    assert client.get("/api/v1/triggers/hook").json()["data"]["enabled"] is False
    on = client.patch("/api/v1/triggers/hook", json={"enabled": True})
    assert on.json()["data"]["enabled"] is True and on.json()["data"]["description"] == "d"
    assert client.patch("/api/v1/triggers/hook", json={"config": {}}).status_code == 400
    assert client.patch("/api/v1/triggers/none", json={"enabled": True}).status_code == 404

    bad_criteria = [
        {"field": "payload.x", "op": "resembles", "value": 1},
        {"field": "payload.x", "op": "regex", "value": "("},
        {"and": []},
        {"field": "payload.x", "op": "gt", "value": [1]},
        {"field": "payload.x", "op": "equals"},
        {"field": "payload.x", "op": "regex", "value": "(?:a{1000}){1000}"},
        {"field": "payload.x", "op": "regex", "value": "(?:" * 200 + "a" + ")" * 200},
    ]
    for criteria in bad_criteria:
        body = {"ref": "r", "trigger": "hook", "action_ref": "core.noop", "criteria": criteria}
        response = client.post("/api/v1/rules", json=body)
        assert response.status_code == 400, (criteria, response.text)
    long_ref = {"ref": "r" * 191, "trigger": "hook", "action_ref": "core.noop"}
    assert client.post("/api/v1/rules", json=long_ref).status_code == 400
    newline = {"ref": "r\n", "trigger": "hook", "action_ref": "core.noop"}
    assert client.post("/api/v1/rules", json=newline).status_code == 400
    # A placeholder is a look-up, nothing else: a filter, an expression or an unclosed
    # brace would go out as literal text, so the rule is refused when saved.
    for text in ("{{ payload.x | upper }}", "{{ payload.x", "a {{ payload }"):
        body = {
            "ref": "r",
            "trigger": "hook",
            "action_ref": "core.echo",
            "parameters": {"message": text},
        }
        refused = client.post("/api/v1/rules", json=body)
        assert refused.status_code == 400, (text, refused.text)
        assert "Not a placeholder" in refused.json()["error"]
    missing = {"ref": "r", "trigger": "nope", "action_ref": "core.noop"}
    refused = client.post("/api/v1/rules", json=missing)  # a body naming what is not there
    assert refused.status_code == 404 and "Trigger nope does not exist" in refused.text

    rule = make(client, "/api/v1/rules", {"ref": "r", "trigger": "hook", "action_ref": "core.noop"})
    assert rule["enabled"] is True and rule["trigger"] == "hook"
    listed = client.get("/api/v1/rules", params={"trigger": "hook"}).json()
    assert [r["ref"] for r in listed["data"]] == ["r"]
    assert listed["pagination"]["total_items"] == 1
    assert client.delete("/api/v1/triggers/hook").status_code == 409  # in use
    # A PUT replaces what its path names: a definition is not renamed in passing (the
    # webhook's URL and the rules name it).
    renamed = {"ref": "other", "trigger": "hook", "action_ref": "core.noop"}
    refused = client.put("/api/v1/rules/r", json=renamed)
    assert refused.status_code == 409 and "keeps its ref" in refused.json()["error"]
    refused = client.put("/api/v1/triggers/hook", json={"ref": "other", "type": "webhook"})
    assert refused.status_code == 409 and "keeps its ref" in refused.json()["error"]
    assert client.get("/api/v1/triggers/other").status_code == 404
    # Only a webhook is fired by a call; another type is named as such.
    make(
        client, "/api/v1/triggers", {"ref": "hourly", "type": "timer", "config": {"interval": 3600}}
    )
    fired = client.post("/api/v1/webhooks/hourly", json={})
    assert fired.status_code == 409 and "hourly is a timer trigger" in fired.json()["error"]

    # A disabled rule does not fire; enabling it again with PATCH does.
    off = client.patch("/api/v1/rules/r", json={"enabled": False})
    assert off.status_code == 200 and off.json()["data"]["enabled"] is False
    assert client.post("/api/v1/webhooks/hook", json={}).json()["data"]["enforcements"] == []
    assert client.patch("/api/v1/rules/r", json={"enabled": True}).status_code == 200
    assert len(client.post("/api/v1/webhooks/hook", json={}).json()["data"]["enforcements"]) == 1

    assert client.delete("/api/v1/rules/r").status_code == 204
    assert client.get("/api/v1/rules/r").status_code == 404
    assert client.delete("/api/v1/triggers/hook").status_code == 204
    assert client.get("/api/v1/triggers/hook").status_code == 404
    gone = client.post("/api/v1/webhooks/hook", json={})
    assert gone.status_code == 404 and gone.json()["status"] == 404
    assert client.post("/api/v1/webhooks/x", content=b"{not json").status_code == 400
    # The enforcement outlives its rule.
    assert [e["rule_ref"] for e in enforcements(client)] == ["r"]


def test_a_rule_saved_under_older_checks_can_still_be_disabled(
    shared_server: Server, client: httpx.Client
) -> None:
    make(client, "/api/v1/triggers", {"ref": "hook", "type": "webhook"})
    body = {"ref": "old", "trigger": "hook", "action_ref": "core.echo",
            "parameters": {"message": "x"}}  # fmt: skip
    make(client, "/api/v1/rules", body)
    # As a rule saved before templates were checked would be stored.
    project = client.get("/api/v1/me").json()["data"]["project_id"]
    engine = create_engine(sync_url(shared_server.env["EXECD_DATABASE_URL"]))
    with engine.begin() as conn:
        conn.execute(
            update(rules)
            .where(rules.c.project_id == project, rules.c.ref == "old")
            .values(parameters={"message": "{{ payload.x | upper }}"})
        )
    engine.dispose()
    off = client.patch("/api/v1/rules/old", json={"enabled": False})
    assert off.status_code == 200, off.text
    assert off.json()["data"]["enabled"] is False
    # A template that changes is checked.
    changed = client.patch("/api/v1/rules/old", json={"parameters": {"message": "{{ a | b }}"}})
    assert changed.status_code == 400, changed.text


def test_a_rule_that_cannot_run_leaves_a_failed_enforcement(client: httpx.Client) -> None:
    make(client, "/api/v1/triggers", {"ref": "hook", "type": "webhook"})
    make(
        client,
        "/api/v1/rules",
        {"ref": "needs-host", "trigger": "hook", "action_ref": "core.echo",
         "parameters": {"message": "{{ payload.host }}"}},
    )  # fmt: skip
    make(
        client,
        "/api/v1/rules",
        {"ref": "wrong-type", "trigger": "hook", "action_ref": "core.sleep",
         "parameters": {"seconds": "{{ payload.text }}"}},
    )  # fmt: skip
    fired = client.post("/api/v1/webhooks/hook", json={"text": "soon"})
    assert fired.status_code == 202
    found = {e["rule_ref"]: e for e in fired.json()["data"]["enforcements"]}
    assert found["needs-host"]["status"] == "failed"
    assert "payload.host" in found["needs-host"]["error"]
    assert found["wrong-type"]["status"] == "failed"
    assert found["wrong-type"]["executions"] == []
    failed = enforcements(client, status="failed")
    assert {e["rule_ref"] for e in failed} == {"needs-host", "wrong-type"}


def test_an_interval_timer_fires_on_time(client: httpx.Client) -> None:
    make(
        client,
        "/api/v1/triggers",
        {"ref": "tick", "type": "timer", "config": {"interval": 1}},
    )
    make(
        client,
        "/api/v1/rules",
        {"ref": "on-tick", "trigger": "tick", "action_ref": "core.echo",
         "parameters": {"message": "{{ payload.scheduled_time }}"}},
    )  # fmt: skip
    fired = wait_for(
        lambda: (found := enforcements(client, rule="on-tick")) and len(found) >= 3 and found,
        message="three firings",
    )
    times = sorted(e["payload"]["scheduled_time"] for e in fired)
    assert len(set(times)) == len(times)
    off = client.put(
        "/api/v1/triggers/tick",
        json={"ref": "tick", "type": "timer", "config": {"interval": 1}, "enabled": False},
    )
    assert off.status_code == 200 and off.json()["data"]["next_fire"] is None


def test_a_rule_that_triggers_itself_stops_at_the_chain_limit(client: httpx.Client) -> None:
    make(
        client,
        "/api/v1/triggers",
        {"ref": "noop-done", "type": "execution",
         "config": {"action_ref": "core.noop", "statuses": ["completed"]}},
    )  # fmt: skip
    make(
        client, "/api/v1/rules", {"ref": "again", "trigger": "noop-done", "action_ref": "core.noop"}
    )
    first = client.post("/api/v1/executions/execute", json={"action_ref": "core.noop"})
    assert first.status_code == 201

    def stopped() -> list[dict[str, Any]] | None:
        found = enforcements(client, rule="again")
        return found if any(e["status"] == "failed" for e in found) else None

    chain = sorted(
        wait_for(stopped, timeout=60, message="the chain to stop"), key=lambda e: e["id"]
    )
    assert [e["depth"] for e in chain] == list(range(1, 12))
    assert all(e["status"] == "succeeded" and len(e["executions"]) == 1 for e in chain[:10])
    assert chain[10]["executions"] == [] and "deeper than 10" in chain[10]["error"]
    assert chain[0]["payload"]["execution"]["id"] == first.json()["data"]["id"]


def test_a_secret_shared_by_two_projects_needs_the_project_named(
    shared_server: Any, admin: httpx.Client
) -> None:
    secret = "one-secret-for-two-projects-0123456789"
    projects = []
    for _ in range(2):
        _, project_id, token = new_project(admin)
        client = shared_server.client(token)
        body = {"ref": "deploys", "type": "webhook", "config": {"auth": "hmac"}, "secret": secret}
        created = make(client, "/api/v1/triggers", body)
        assert "secret" not in created  # given, so not echoed back
        make(client, "/api/v1/rules", {"ref": "r", "trigger": "deploys", "action_ref": "core.noop"})
        projects.append((project_id, client))
    anonymous = httpx.Client(base_url=shared_server.url, timeout=10)
    body = orjson.dumps({"ref": "main"})
    headers = {"Content-Type": "application/json", "X-Execd-Signature": signed(secret, body)}
    ambiguous = anonymous.post("/api/v1/webhooks/deploys", content=body, headers=headers)
    assert ambiguous.status_code == 409 and "project" in ambiguous.json()["error"]
    second_id, second = projects[1]
    named = anonymous.post(
        "/api/v1/webhooks/deploys", params={"project": second_id}, content=body, headers=headers
    )
    assert named.status_code == 202, named.text
    assert len(enforcements(second)) == 1 and enforcements(projects[0][1]) == []
    anonymous.close()

    # A viewer's token may not fire a webhook.
    _, _, viewer_token = new_project(admin, role="viewer")
    viewer = shared_server.client(viewer_token)
    assert viewer.post("/api/v1/webhooks/deploys", json={}).status_code == 403
