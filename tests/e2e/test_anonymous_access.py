"""Anonymous access (EXECD_ANONYMOUS_ROLE), against real servers on both backends: off
by default; on, a request without credentials acts with the configured project role in
the default tenant's default project, exactly as a token of that role would, so the
curl examples of the flow history API and the v1 executions API work as printed. A
request that sends credentials is judged by them alone."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from starlette.requests import HTTPConnection

from execd.api.limits import RateLimits
from execd.config import Settings
from execd.domain.access import Principal
from execd.domain.errors import TooManyRequests
from tests.e2e.test_flows import define, echo, error, run, wait_flow
from tests.e2e.test_tenant_actions import Tenant
from tests.support import Deployment, Server, new_project, submit, wait_for, wait_status

SERVER_ENV = {"EXECD_ANONYMOUS_ROLE": "viewer", "EXECD_LOG_LEVEL": "info"}


@pytest.fixture
def anonymous(shared_server: Server) -> httpx.Client:
    """A client that sends no Authorization header, as the documents' curl lines do."""
    client = httpx.Client(base_url=shared_server.url, timeout=30)
    shared_server.clients.append(client)
    return client


def log_lines(server: Server) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]


def test_off_by_default_and_never_an_admin(deployment: Deployment) -> None:
    server = deployment.server(workers=0)
    without = httpx.Client(base_url=server.url, timeout=30)
    server.clients.append(without)
    for path in ("/api/history/executions?status=PASSED&limit=20&offset=0", "/api/v1/executions"):
        assert without.get(path).status_code == 401, path
    assert "anonymous_access" not in server.log()
    assert Settings().anonymous is None
    assert Settings(anonymous_role="Operator").anonymous == "operator"
    for refused in ("admin", "system", "root"):
        with pytest.raises(ValueError, match="EXECD_ANONYMOUS_ROLE"):
            Settings(anonymous_role=refused)


def test_the_curl_examples_work_as_printed(
    shared_server: Server, admin: httpx.Client, anonymous: httpx.Client
) -> None:
    flow = define(admin, "anonymously read", [echo("hello")])
    ran = wait_flow(admin, run(admin, flow)["id"])
    assert ran["status"] == "PASSED"
    listed = anonymous.get("/api/history/executions?status=PASSED&limit=20&offset=0")
    assert listed.status_code == 200, listed.text
    assert ran["id"] in [e["id"] for e in listed.json()["executions"]]
    for path in (
        f"/api/history/executions/flows/{flow}?limit=10",
        f"/api/history/executions/{ran['id']}",
        f"/api/history/execution-stats?days=30&flowId={flow}",
    ):
        assert anonymous.get(path).status_code == 200, path

    done = wait_status(admin, submit(admin, "core.noop")["id"])
    for path in (
        "/api/v1/executions",
        "/api/v1/executions?status=completed",
        "/api/v1/executions?action_ref=core.noop",
        "/api/v1/executions/status/running",
        "/api/v1/executions/stats",
        f"/api/v1/executions/{done['id']}",
    ):
        assert anonymous.get(path).status_code == 200, path
    assert done["id"] in [e["id"] for e in anonymous.get("/api/v1/executions").json()["data"]]
    me = anonymous.get("/api/v1/me").json()["data"]
    assert (me["role"], me["scope"], me["token_name"]) == ("viewer", "project", "anonymous")
    assert me["project_id"] == admin.get("/api/v1/me").json()["data"]["project_id"]


def test_an_anonymous_viewer_cannot_change_anything(
    admin: httpx.Client, anonymous: httpx.Client
) -> None:
    refused = anonymous.post("/api/v1/executions/execute", json={"action_ref": "core.noop"})
    assert refused.status_code == 403
    assert refused.json() == {"error": refused.json()["error"], "status": 403}
    assert "viewer" in refused.json()["error"]

    flow = define(admin, "not for anonymous", [echo("no")])
    error(anonymous.post(f"/api/flows/{flow}/execute", json={}), 403, "FORBIDDEN")
    ran = wait_flow(admin, run(admin, flow)["id"])
    error(anonymous.delete(f"/api/history/executions/{ran['id']}"), 403, "FORBIDDEN")
    error(anonymous.delete(f"/api/history/executions/flows/{flow}"), 403, "FORBIDDEN")

    tenant = Tenant(admin)  # the default project: the one anonymous callers act in
    action = tenant.define("anonymous-refused", "echo no")
    denied = anonymous.get(tenant.base + f"/action/execute/{action}")
    assert denied.status_code == 403 and set(denied.json()) == {"error"}
    assert anonymous.get(tenant.base + "/action").status_code == 200


def test_credentials_are_never_downgraded_to_anonymous(
    shared_server: Server, anonymous: httpx.Client
) -> None:
    for header in ("Bearer not-a-token", "Basic eDp5", "Bearer", ""):
        answer = anonymous.get("/api/v1/executions", headers={"Authorization": header})
        assert answer.status_code == 401, header
    for token in ("not-a-token", ""):  # on streams, ?token= is a credential too
        stream = anonymous.get("/api/v1/executions/stream", params={"token": token})
        assert stream.status_code == 401, token
    # A page of another site whose name it rebound to 127.0.0.1 (DNS rebinding) sends
    # its own name as the Host: no anonymous access for it.
    for host in ("rebound.example", "rebound.example:8080", "[::1"):
        rebound = anonymous.get("/api/v1/executions", headers={"Host": host})
        assert rebound.status_code == 401, host
    for host in ("localhost", f"localhost:{shared_server.port}", "[::1]:80", "127.0.0.2"):
        assert anonymous.get("/api/v1/executions", headers={"Host": host}).status_code == 200
    # A page of another site that sends a request to 127.0.0.1 (a link, an image, a
    # form): the browser says so, and the request is not let in either.
    # Through a proxy (which might forward anyone's requests): not let in either.
    for headers in (
        {"X-Forwarded-For": "203.0.113.9"},
        {"Forwarded": "for=203.0.113.9"},
        {"X-Real-IP": "127.0.0.1"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "https://elsewhere.example"},
        {"Origin": "null"},
    ):
        answer = anonymous.get("/api/v1/executions", headers=headers)
        assert answer.status_code == 401, headers
    own = {"Sec-Fetch-Site": "same-origin", "Origin": shared_server.url}
    assert anonymous.get("/api/v1/executions", headers=own).status_code == 200


def test_anonymous_callers_reach_only_the_default_project(
    shared_server: Server, admin: httpx.Client, anonymous: httpx.Client
) -> None:
    _, other_project, token = new_project(admin)
    other = shared_server.client(token)
    theirs = submit(other, "core.noop")
    theirs_flow = define(other, "someone else's", [echo("secret")])
    assert anonymous.get(f"/api/v1/executions/{theirs['id']}").status_code == 404
    assert theirs["id"] not in [e["id"] for e in anonymous.get("/api/v1/executions").json()["data"]]
    assert anonymous.get(f"/api/flows/{theirs_flow}").status_code == 404
    listed = anonymous.get("/api/history/executions").json()["executions"]
    assert all(e["flowId"] != theirs_flow for e in listed)
    foreign = Tenant(other)
    assert anonymous.get(foreign.base + "/action").status_code == 401
    assert anonymous.get(f"/api/v1/projects?tenant_id={foreign.tenant}").status_code == 403

    for method, path, body in (
        ("GET", "/api/v1/tenants", None),
        ("POST", "/api/v1/tenants", {"name": "anonymous-tenant"}),
        ("GET", "/api/v1/projects", None),
        ("GET", "/api/v1/tokens", None),
        ("POST", "/api/v1/tokens", {"name": "x", "role": "viewer"}),
        ("POST", "/api/v1/tokens", {"name": "x", "role": "admin", "project_id": other_project}),
        ("DELETE", "/api/v1/tokens/1", None),
        ("GET", "/api/v1/audit", None),
        ("GET", "/metrics", None),
    ):
        answer = anonymous.request(method, path, json=body)
        assert answer.status_code == 403, (method, path, answer.text)


def test_the_server_warns_and_names_anonymous_callers(
    shared_server: Server, admin: httpx.Client, anonymous: httpx.Client
) -> None:
    (warning,) = [e for e in log_lines(shared_server) if e["event"] == "anonymous_access"]
    assert warning["level"] == "warning" and warning["role"] == "viewer"
    assert "EXECD_ANONYMOUS_ROLE=viewer" in warning["warning"]
    assert "!!!\nWARNING: EXECD_ANONYMOUS_ROLE=viewer: requests without a token" in (
        shared_server.log()
    )
    # ... and so do the status pages, as long as it is on.
    shown = admin.get("/api/v1/system").json()["data"]["warnings"]
    assert [w for w in shown if w.startswith("EXECD_ANONYMOUS_ROLE=viewer")], shown
    me = admin.get("/api/v1/me").json()["data"]
    status = admin.get(f"/api/{me['tenant_id']}/execution/system/status").json()
    assert [w for w in status["warnings"] if "requests without a token" in w], status
    action = {"ref": "anonymous.refused", "runner": "shell", "entry_point": "true"}
    assert anonymous.post("/api/v1/actions", json=action).status_code == 403

    def logged() -> dict[str, Any] | None:
        requests = [e for e in log_lines(shared_server) if e["event"] == "request"]
        posted = [e for e in requests if e["route"] == "/api/v1/actions" and e["status"] == 403]
        return posted[-1] if posted else None

    line = wait_for(logged, message="the refused request in the access log")
    assert (line["token"], line["role"], line["caller"]) == (None, "viewer", "anonymous")
    entries = admin.get("/api/v1/audit", params={"route": "/api/v1/actions"}).json()["data"]
    entry = next(e for e in entries if e["outcome"] == "refused")
    assert entry["token"] == {"id": None, "name": "anonymous", "role": "viewer"}
    assert entry["project_id"] == admin.get("/api/v1/me").json()["data"]["project_id"]


def test_an_anonymous_operator_runs_and_deletes(deployment: Deployment) -> None:
    server = deployment.server(workers=1, EXECD_ANONYMOUS_ROLE="operator")
    anonymous = httpx.Client(base_url=server.url, timeout=30)
    server.clients.append(anonymous)
    made = anonymous.post("/api/v1/executions/execute", json={"action_ref": "core.noop"})
    assert made.status_code == 201, made.text
    done = wait_status(anonymous, made.json()["data"]["id"])
    assert done["submitted_by"] == "anonymous"
    flow = define(anonymous, "anonymous flow", [echo("hi")])
    ran = wait_flow(anonymous, run(anonymous, flow)["id"])
    assert anonymous.delete(f"/api/history/executions/{ran['id']}").status_code == 200
    assert anonymous.get("/api/v1/tokens").status_code == 403


def test_anonymous_requests_are_rate_limited_by_address() -> None:
    limits = RateLimits("2/minute", "off")
    caller = Principal(None, "tenant", "project", "viewer", "anonymous")

    def from_address(host: str) -> HTTPConnection:
        return HTTPConnection({"type": "http", "client": (host, 1234), "headers": []})

    async def scenario() -> None:
        first, second = from_address("10.0.0.1"), from_address("10.0.0.2")
        await limits.count(first, caller)
        await limits.count(first, caller)
        with pytest.raises(TooManyRequests, match="from this address without a token"):
            await limits.count(first, caller)
        await limits.count(second, caller)  # another address has its own window

    asyncio.run(scenario())
