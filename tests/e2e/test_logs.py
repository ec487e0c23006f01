"""What the server writes to its log, read as an operator's log shipper would: JSON
lines (stderr is not a terminal), one per request and one as each execution starts and
ends, timers by their refs; never a token."""

from __future__ import annotations

import json
from typing import Any

from tests.support import ADMIN_TOKEN, Deployment, submit, wait_for, wait_status


def lines(log: str) -> list[dict[str, Any]]:
    found = []
    for line in log.splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def test_requests_and_executions_are_logged_as_json_lines_without_tokens(
    deployment: Deployment,
) -> None:
    server = deployment.server(workers=1, EXECD_LOG_LEVEL="info")
    admin = server.client(ADMIN_TOKEN)
    tenant = admin.post("/api/v1/tenants", json={"name": "logged"}).json()["data"]["id"]
    project = admin.post("/api/v1/projects", json={"tenant_id": tenant, "name": "p"})
    project_id = project.json()["data"]["id"]
    made = admin.post(
        "/api/v1/tokens", json={"name": "ops", "role": "operator", "project_id": project_id}
    ).json()["data"]
    api = server.client(made["token"])
    done = wait_status(api, submit(api, "core.shell", {"cmd": "echo hi"})["id"])
    assert api.get(f"/api/v1/executions/{done['id']}").status_code == 200
    assert server.client("not-a-token").get("/api/v1/executions").status_code == 401
    # A route whose last parameter spans several segments.
    assert api.get(f"/ui/executions/{done['id']}/files/a/b/c.txt").status_code in (303, 401)

    def logged() -> list[dict[str, Any]] | None:
        # A request's line is written once its answer has been sent: the client may
        # have it first.
        found = lines(server.log())
        ended = [e for e in found if e.get("event") == "execution_ended"]
        last = [e for e in found if e.get("route", "").startswith("/ui/executions/")]
        return found if ended and last else None

    found = wait_for(logged, message="the execution's end and the last request in the log")
    logged_text = json.dumps(found)  # the log lines (the start-up banner is stdout's)
    assert made["token"] not in logged_text and ADMIN_TOKEN not in logged_text
    requests = [e for e in found if e["event"] == "request"]
    read = [r for r in requests if r["route"] == "/api/v1/executions/{execution_id}"]
    assert read and read[-1]["method"] == "GET" and read[-1]["status"] == 200
    assert read[-1]["token"] == made["id"] and read[-1]["role"] == "operator"
    assert isinstance(read[-1]["ms"], float)
    files = [r for r in requests if r["route"].startswith("/ui/executions/{execution_id}/files/")]
    assert [r["route"] for r in files] == ["/ui/executions/{execution_id}/files/{path}"]
    refused = [r for r in requests if r["route"] == "/api/v1/executions" and r["status"] == 401]
    assert refused and refused[0]["token"] is None
    started = next(e for e in found if e["event"] == "execution_started")
    ended = next(e for e in found if e["event"] == "execution_ended")
    facts = {
        "execution": done["id"],
        "uuid": done["uuid"],
        "tenant": tenant,
        "project": project_id,
        "action": "core.shell",
        "attempt": 1,
    }
    assert {k: started[k] for k in facts} == facts and started["worker"]
    assert {k: ended[k] for k in facts} == facts and ended["status"] == "completed"
    assert ended["seconds"] >= 0 and ended["level"] == "info" and ended["timestamp"]


def test_a_timer_is_logged_by_its_ref_and_only_when_it_starts_something(
    deployment: Deployment,
) -> None:
    server = deployment.server(workers=1, EXECD_RULES_POLL_SECONDS="0.2", EXECD_LOG_LEVEL="info")
    api = server.client(ADMIN_TOKEN)
    timer = {"ref": "every-second", "type": "timer", "config": {"interval": 1}}
    assert api.post("/api/v1/triggers", json=timer).status_code == 201
    rule = {"ref": "tick", "trigger": "every-second", "action_ref": "core.noop", "enabled": False}
    assert api.post("/api/v1/rules", json=rule).status_code == 201
    first = api.get("/api/v1/triggers/every-second").json()["data"]["next_fire"]

    def fired_twice() -> bool:  # its next firing moved on twice: it fired, quietly
        seen.add(api.get("/api/v1/triggers/every-second").json()["data"]["next_fire"])
        return len(seen - {first}) >= 2

    seen: set[str] = set()
    wait_for(fired_twice, timeout=15, message="the timer firing with its rule disabled")
    assert not [e for e in lines(server.log()) if e["event"].startswith("timer_")]

    assert api.patch("/api/v1/rules/tick", json={"enabled": True}).status_code == 200

    def fired() -> dict[str, Any] | None:
        return next((e for e in lines(server.log()) if e["event"] == "timer_fired"), None)

    line = wait_for(fired, timeout=15, message="the timer's line once its rule is enabled")
    assert line["trigger"] == "every-second" and line["rules"] == ["tick"]
    assert line["enforcements"] == 1 and "trigger_id" not in line
