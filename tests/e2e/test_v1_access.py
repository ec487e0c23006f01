"""Authentication, roles and project scoping, against a real server."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from execd.domain.executions import NewExecution
from execd.store.database import Database
from execd.store.queue import Queue
from tests.support import ADMIN_TOKEN, Deployment, Server, new_project, submit, wait_for


def test_every_api_route_needs_a_token(shared_server: Server) -> None:
    with httpx.Client(base_url=shared_server.url) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        for method, path in [
            ("GET", "/api/v1/executions"),
            ("GET", "/api/v1/executions/1"),
            ("GET", "/api/v1/executions/stats"),
            ("GET", "/api/v1/executions/status/running"),
            ("GET", "/api/v1/executions/enforcement/1"),
            ("POST", "/api/v1/executions/execute"),
            ("POST", "/api/v1/executions/1/cancel"),
            ("GET", "/api/v1/actions"),
            ("GET", "/api/v1/packs"),
            ("POST", "/api/v1/tokens"),
        ]:
            response = anonymous.request(method, path)
            assert response.status_code == 401, (method, path)
            assert response.json()["status"] == 401
            assert response.headers["www-authenticate"] == "Bearer"
        bad = anonymous.get("/api/v1/executions", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        assert bad.json() == {"error": "Invalid, expired or revoked token", "status": 401}
        basic = anonymous.get("/api/v1/executions", headers={"Authorization": "Basic eDp5"})
        assert basic.status_code == 401


def test_another_projects_execution_is_404(shared_server: Server, admin: httpx.Client) -> None:
    _, _, token_a = new_project(admin)
    _, _, token_b = new_project(admin)
    a, b = shared_server.client(token_a), shared_server.client(token_b)
    mine = submit(a, "core.noop")
    assert b.get(f"/api/v1/executions/{mine['id']}").status_code == 404
    assert b.post(f"/api/v1/executions/{mine['id']}/cancel").status_code == 404
    assert b.get(f"/api/v1/executions/{mine['id']}/history").status_code == 404
    assert b.get("/api/v1/executions").json()["data"] == []
    assert b.get("/api/v1/executions/stats").json()["data"]["total"] == 0
    assert a.get(f"/api/v1/executions/{mine['id']}").status_code == 200


def test_roles(shared_server: Server, admin: httpx.Client) -> None:
    _, project_id, operator_token = new_project(admin)
    viewer = admin.post(
        "/api/v1/tokens", json={"name": "ro", "role": "viewer", "project_id": project_id}
    ).json()["data"]
    viewer_client = shared_server.client(viewer["token"])
    operator = shared_server.client(operator_token)
    assert viewer_client.get("/api/v1/executions").status_code == 200
    denied = viewer_client.post("/api/v1/executions/execute", json={"action_ref": "core.noop"})
    assert denied.status_code == 403
    assert denied.json()["status"] == 403
    assert operator.post("/api/v1/tenants", json={"name": "nope"}).status_code == 403
    assert operator.post("/api/v1/tokens", json={"name": "x"}).status_code == 403
    me = operator.get("/api/v1/me").json()["data"]
    assert me == {
        "tenant_id": me["tenant_id"],
        "project_id": project_id,
        "role": "operator",
        "scope": "project",
        "token_name": "test",
    }


def test_token_is_shown_once_and_can_be_revoked(shared_server: Server, admin: httpx.Client) -> None:
    created = admin.post("/api/v1/tokens", json={"name": "ci", "role": "viewer"})
    assert created.status_code == 201
    token = created.json()["data"]
    assert token["token"].startswith("execd_")
    listed = admin.get("/api/v1/tokens").json()["data"]
    assert any(t["id"] == token["id"] for t in listed)
    assert all("token" not in t for t in listed)
    client = shared_server.client(token["token"])
    assert client.get("/api/v1/executions").status_code == 200
    assert admin.delete(f"/api/v1/tokens/{token['id']}").status_code == 204
    wait_for(
        lambda: client.get("/api/v1/executions").status_code == 401,
        timeout=5,
        message="revoked token refused",
    )


def test_tenant_and_project_validation(admin: httpx.Client) -> None:
    assert admin.post("/api/v1/tenants", json={"name": ""}).status_code == 400
    unknown = admin.post("/api/v1/projects", json={"tenant_id": "nope", "name": "p"})
    assert unknown.status_code == 404
    name = "dup-tenant-" + ADMIN_TOKEN[-4:]
    assert admin.post("/api/v1/tenants", json={"name": name}).status_code == 201
    assert admin.post("/api/v1/tenants", json={"name": name}).status_code == 409
    assert admin.post("/api/v1/tokens", json={"name": "x", "role": "root"}).status_code == 400


def test_by_enforcement(shared_server: Server, admin: httpx.Client) -> None:
    """Rule enforcements come with the rules engine; rows carrying one are listed here."""
    tenant_id, project_id, token = new_project(admin)
    client = shared_server.client(token)
    url = shared_server.env["EXECD_DATABASE_URL"]

    async def insert() -> list[int]:
        db = Database(url)
        try:
            queue = Queue(db)
            items = [
                NewExecution(
                    tenant_id=tenant_id,
                    project_id=project_id,
                    action_id=None,
                    action_ref="core.noop",
                    pack="core",
                    runner="local",
                    entry_point="noop",
                    parameters={},
                    enforcement_id=enforcement,
                )
                for enforcement in (42, 42, 7)
            ]
            return [s.execution.id for s in await queue.submit(items)]  # type: ignore[union-attr]
        finally:
            await db.dispose()

    first, second, other = asyncio.run(insert())
    body = client.get("/api/v1/executions/enforcement/42").json()
    assert [e["id"] for e in body["data"]] == [second, first]
    assert all(e["enforcement"] == 42 for e in body["data"])
    assert body["pagination"]["total_items"] == 2
    filtered = client.get("/api/v1/executions", params={"enforcement": 7}).json()
    assert [e["id"] for e in filtered["data"]] == [other]
    assert client.get("/api/v1/executions/enforcement/5").json()["data"] == []


# -- system and tenant admins ----------------------------------------------------------


def refused(response: httpx.Response, status: int) -> str:
    """The v1 error shape with `status`; the message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "status"} and body["status"] == status, body
    message: str = body["error"]
    return message


def startup_token(admin: httpx.Client) -> dict[str, Any]:
    listed = admin.get("/api/v1/tokens").json()["data"]
    [token] = [t for t in listed if t["startup"] and t["revoked"] is None]
    return token


def test_a_tenant_admin_manages_its_own_tenant_and_nothing_else(
    shared_server: Server, admin: httpx.Client
) -> None:
    tenant_a, project_a, token_a = new_project(admin, role="admin")
    tenant_b, project_b, token_b = new_project(admin, role="admin")
    a, b = shared_server.client(token_a), shared_server.client(token_b)
    assert b.get("/api/v1/me").json()["data"]["scope"] == "tenant"

    # Its own tenant: itself, its projects, their tokens.
    assert [t["id"] for t in b.get("/api/v1/tenants").json()["data"]] == [tenant_b]
    second = b.post("/api/v1/projects", json={"tenant_id": tenant_b, "name": "second"})
    assert second.status_code == 201, second.text
    second_id = second.json()["data"]["id"]
    listed = b.get("/api/v1/projects").json()["data"]
    assert {p["id"] for p in listed} == {project_b, second_id}
    made = b.post("/api/v1/tokens", json={"name": "ci", "project_id": second_id})
    assert made.status_code == 201, made.text
    ci = made.json()["data"]
    assert (ci["tenant_id"], ci["project_id"], ci["scope"]) == (tenant_b, second_id, "project")
    ci_client = shared_server.client(ci["token"])
    assert ci_client.get("/api/v1/me").json()["data"]["project_id"] == second_id
    in_second = b.get("/api/v1/tokens", params={"project_id": second_id}).json()["data"]
    assert [t["id"] for t in in_second] == [ci["id"]]
    assert b.delete(f"/api/v1/tokens/{ci['id']}").status_code == 204

    # Tenant A's ids get the answer of ids that do not exist.
    [a_token] = a.get("/api/v1/tokens").json()["data"]
    theirs = {"tenant": tenant_a, "project": project_a, "token": str(a_token["id"])}
    nowhere = {"tenant": str(uuid.uuid4()), "project": str(uuid.uuid4()), "token": "999999999"}
    for method, path, params, body in [
        ("GET", "/api/v1/projects", {"tenant_id": "{tenant}"}, None),
        ("POST", "/api/v1/projects", None, {"tenant_id": "{tenant}", "name": "intruder"}),
        ("GET", "/api/v1/tokens", {"project_id": "{project}"}, None),
        ("POST", "/api/v1/tokens", None, {"name": "x", "role": "admin", "project_id": "{project}"}),
        ("DELETE", "/api/v1/tokens/{token}", None, None),
    ]:
        answers = []
        for ids in (theirs, nowhere):
            response = b.request(
                method,
                path.format(**ids),
                params={k: v.format(**ids) for k, v in (params or {}).items()},
                json={k: v.format(**ids) for k, v in body.items()} if body else None,
            )
            message = refused(response, 404)
            for value in ids.values():
                message = message.replace(value, "?")
            answers.append(message)
        assert answers[0] == answers[1], (method, path)

    # No tenants, no system tokens, no startup token.
    assert "system admin" in refused(b.post("/api/v1/tenants", json={"name": "mine"}), 403)
    system = {"name": "x", "role": "admin", "scope": "system"}
    assert "system admin" in refused(b.post("/api/v1/tokens", json=system), 403)
    refused(b.delete(f"/api/v1/tokens/{startup_token(admin)['id']}"), 404)

    # Tenant A is as it was, and its admin sees none of B.
    assert a.get("/api/v1/me").status_code == 200
    assert [p["id"] for p in a.get("/api/v1/projects").json()["data"]] == [project_a]
    assert [t["id"] for t in a.get("/api/v1/tenants").json()["data"]] == [tenant_a]
    refused(a.get("/api/v1/tokens", params={"project_id": second_id}), 404)


def test_only_system_admins_see_the_machines_behind_workers(
    shared_server: Server, admin: httpx.Client
) -> None:
    _, _, token = new_project(admin, role="admin")
    tenant_admin = shared_server.client(token)
    [shown] = wait_for(lambda: admin.get("/api/v1/workers").json()["data"], message="a worker")
    [hidden] = tenant_admin.get("/api/v1/workers").json()["data"]
    assert shown["host"] and shown["pid"]
    # The default name is `hostname-pid`: others see the worker's id instead.
    assert shown["name"].startswith(f"{shown['host']}-{shown['pid']}")
    assert hidden["name"] == f"worker-{shown['id']}"
    assert hidden["host"] is None and hidden["pid"] is None
    [system] = tenant_admin.get("/api/v1/system").json()["data"]["workers"]
    assert system["name"] == hidden["name"]
    me = tenant_admin.get("/api/v1/me").json()["data"]
    status = tenant_admin.get(f"/api/{me['tenant_id']}/execution/system/status").json()
    assert [n["nodeId"] for n in status["executionNodes"]] == [hidden["name"]]
    assert shown["name"] not in str([hidden, system, status])
    admins = admin.get("/api/v1/me").json()["data"]["tenant_id"]
    status = admin.get(f"/api/{admins}/execution/system/status").json()
    assert [n["nodeId"] for n in status["executionNodes"]] == [shown["name"]]


def test_a_worker_named_by_its_operator_shows_that_name(deployment: Deployment) -> None:
    server = deployment.server(EXECD_WORKER_NAME="batch-node")
    _, _, token = new_project(server.client(), role="admin")
    shown = wait_for(lambda: server.client(token).get("/api/v1/workers").json()["data"])
    assert [w["name"] for w in shown] == ["batch-node"]


def test_system_admins_and_the_startup_token(shared_server: Server, admin: httpx.Client) -> None:
    assert admin.get("/api/v1/me").json()["data"]["scope"] == "system"
    startup = startup_token(admin)
    assert (startup["role"], startup["scope"], startup["expires"]) == ("admin", "system", None)
    message = refused(admin.delete(f"/api/v1/tokens/{startup['id']}"), 409)
    assert "EXECD_ADMIN_TOKEN" in message

    # A system admin makes system tokens; they reach every tenant.
    made = admin.post("/api/v1/tokens", json={"name": "ops", "role": "admin", "scope": "system"})
    assert made.status_code == 201, made.text
    ops_token = made.json()["data"]
    assert (ops_token["scope"], ops_token["startup"]) == ("system", False)
    ops = shared_server.client(ops_token["token"])
    assert ops.get("/api/v1/me").json()["data"]["scope"] == "system"
    tenant_id, project_id, _ = new_project(ops)
    assert tenant_id in {t["id"] for t in ops.get("/api/v1/tenants").json()["data"]}
    assert [
        p["id"]
        for p in admin.get("/api/v1/projects", params={"tenant_id": tenant_id}).json()["data"]
    ] == [project_id]
    refused(ops.delete(f"/api/v1/tokens/{startup['id']}"), 409)

    # A tenant admin of the default tenant neither sees nor touches system tokens.
    local = admin.post("/api/v1/tokens", json={"name": "local", "role": "admin"}).json()["data"]
    assert local["scope"] == "tenant"
    local_admin = shared_server.client(local["token"])
    seen = {t["id"] for t in local_admin.get("/api/v1/tokens").json()["data"]}
    assert local["id"] in seen and not seen & {startup["id"], ops_token["id"]}
    refused(local_admin.delete(f"/api/v1/tokens/{startup['id']}"), 404)
    refused(local_admin.delete(f"/api/v1/tokens/{ops_token['id']}"), 404)
    assert [t["id"] for t in local_admin.get("/api/v1/tenants").json()["data"]] == [
        startup["tenant_id"]
    ]

    # Scopes that do not fit the role.
    for body in [
        {"role": "viewer", "scope": "system"},
        {"role": "operator", "scope": "tenant"},
        {"role": "admin", "scope": "project"},
        {"role": "admin", "scope": "galaxy"},
    ]:
        assert "scope" in refused(admin.post("/api/v1/tokens", json={"name": "x", **body}), 400)

    # A system token is revoked like any other; the startup token is still there.
    assert admin.delete(f"/api/v1/tokens/{ops_token['id']}").status_code == 204
    wait_for(lambda: ops.get("/api/v1/me").status_code == 401, timeout=5, message="revoked")
    assert admin.get("/api/v1/me").status_code == 200


def test_restarting_with_a_new_admin_token_replaces_the_startup_token(
    deployment: Deployment,
) -> None:
    first = deployment.server(workers=0)
    old = first.client()
    old_id = startup_token(old)["id"]
    first.stop()
    second = deployment.server(workers=0, EXECD_ADMIN_TOKEN="execd_replacement_admin_token_42")
    new = second.client("execd_replacement_admin_token_42")
    assert new.get("/api/v1/me").json()["data"]["scope"] == "system"
    assert second.client().get("/api/v1/me").status_code == 401
    listed = {t["id"]: t for t in new.get("/api/v1/tokens").json()["data"]}
    assert listed[old_id]["revoked"] is not None
    assert startup_token(new)["id"] != old_id


# -- expiry and last use ---------------------------------------------------------------


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_tokens_expire(shared_server: Server, admin: httpx.Client) -> None:
    _, project_id, _ = new_project(admin)

    def create(**body: Any) -> httpx.Response:
        return admin.post(
            "/api/v1/tokens", json={"name": "t", "role": "viewer", "project_id": project_id, **body}
        )

    short = create(expires_in=2).json()["data"]
    assert (when(short["expires"]) - when(short["created"])).total_seconds() == pytest.approx(
        2, abs=0.01
    )
    reader = shared_server.client(short["token"])
    assert reader.get("/api/v1/executions").status_code == 200
    gone = wait_for(
        lambda: (r := reader.get("/api/v1/executions")).status_code == 401 and r,
        timeout=10,
        message="the token expired",
    )
    assert gone.json() == {"error": "Invalid, expired or revoked token", "status": 401}

    tomorrow = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    dated = create(expires=tomorrow.isoformat()).json()["data"]
    assert when(dated["expires"]) == tomorrow
    naive = create(expires=tomorrow.replace(tzinfo=None).isoformat()).json()["data"]
    assert when(naive["expires"]) == tomorrow  # UTC when no zone is given
    listed = {
        t["id"]: t
        for t in admin.get("/api/v1/tokens", params={"project_id": project_id}).json()["data"]
    }
    assert when(listed[dated["id"]]["expires"]) == tomorrow

    for body in [
        {"expires_in": 0},
        {"expires_in": 11 * 365 * 86400},
        {"expires_in": 60, "expires": tomorrow.isoformat()},
        {"expires": "2001-01-01T00:00:00Z"},
        {"expires": "tomorrow"},
    ]:
        refused(create(**body), 400)


def test_a_cached_token_stops_when_it_expires_not_when_the_cache_does(
    deployment: Deployment,
) -> None:
    server = deployment.server(workers=0, EXECD_TOKEN_CACHE_SECONDS="600")
    admin = server.client()
    _, project_id, _ = new_project(admin)
    made = admin.post(
        "/api/v1/tokens",
        json={"name": "brief", "role": "viewer", "project_id": project_id, "expires_in": 2},
    ).json()["data"]
    reader = server.client(made["token"])
    assert reader.get("/api/v1/me").status_code == 200  # now in the cache for 600 s
    gone = wait_for(
        lambda: (r := reader.get("/api/v1/me")).status_code == 401 and r,
        timeout=60,
        message="the cached token refused once expired",
    )
    assert datetime.now(UTC) >= when(made["expires"])
    assert gone.json() == {"error": "Invalid, expired or revoked token", "status": 401}


def test_tokens_record_their_last_use_at_most_once_a_minute(
    shared_server: Server, admin: httpx.Client
) -> None:
    _, project_id, _ = new_project(admin)
    made = admin.post(
        "/api/v1/tokens", json={"name": "seen", "role": "viewer", "project_id": project_id}
    ).json()["data"]

    def last_used() -> str | None:
        listed = admin.get("/api/v1/tokens", params={"project_id": project_id}).json()["data"]
        [token] = [t for t in listed if t["id"] == made["id"]]
        assert set(token) == {
            "id", "name", "role", "scope", "startup", "tenant_id", "project_id",
            "created", "expires", "last_used", "revoked",
        }  # fmt: skip
        value: str | None = token["last_used"]
        return value

    assert last_used() is None
    reader = shared_server.client(made["token"])
    before = datetime.now(UTC)
    assert reader.get("/api/v1/me").status_code == 200
    first = wait_for(last_used, timeout=5, message="the first use recorded")
    assert abs((when(first) - before).total_seconds()) < 5

    # Used over several lifetimes of the server's token cache: no new write.
    start = time.monotonic()
    wait_for(
        lambda: reader.get("/api/v1/me").status_code == 200 and time.monotonic() - start > 2,
        timeout=10,
        message="two seconds of requests",
    )
    assert last_used() == first
