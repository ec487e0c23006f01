"""Authentication, roles and project scoping, against a real server."""

from __future__ import annotations

import asyncio

import httpx

from execd.domain.executions import NewExecution
from execd.store.database import Database
from execd.store.queue import Queue
from tests.support import ADMIN_TOKEN, Server, new_project, submit, wait_for


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
        assert bad.json() == {"error": "Invalid or revoked token", "status": 401}
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
