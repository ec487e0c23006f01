"""The audit log through the API, on a real server and both backends: who changed
what, when, from where and how it ended; who may read it; paging; no secret in it."""

from __future__ import annotations

import uuid

import httpx

from tests.support import Server, new_project, wait_status

SECRET = f"s3cret-{uuid.uuid4().hex}"
ACTION = {
    "ref": "audit.login",
    "runner": "shell",
    "entry_point": "true",
    "parameters": {
        "type": "object",
        "properties": {"password": {"type": "string", "secret": True}},
    },
}


def _token(admin: httpx.Client, project_id: str, role: str) -> str:
    made = admin.post("/api/v1/tokens", json={"name": role, "role": role, "project_id": project_id})
    assert made.status_code == 201, made.text
    token: str = made.json()["data"]["token"]
    return token


def _all(client: httpx.Client, **params: object) -> list[dict[str, object]]:
    answer = client.get("/api/v1/audit", params={"per_page": 500, **params})
    assert answer.status_code == 200, answer.text
    entries: list[dict[str, object]] = answer.json()["data"]
    return entries


def test_every_change_is_recorded_with_who_what_where_and_outcome(
    shared_server: Server, admin: httpx.Client
) -> None:
    tenant_id, project_id, operator_token = new_project(admin)
    operator = shared_server.client(operator_token)
    tenant_admin = shared_server.client(_token(admin, project_id, "admin"))
    viewer = shared_server.client(_token(admin, project_id, "viewer"))

    assert operator.post("/api/v1/actions", json=ACTION).status_code == 201
    runs = [
        operator.post(
            "/api/v1/executions/execute",
            json={"action_ref": "audit.login", "parameters": {"password": SECRET}},
        ).json()["data"]["id"]
        for _ in range(2)
    ]
    for run in runs:
        wait_status(operator, run, {"completed"})
    refused = viewer.post("/api/v1/actions", json={**ACTION, "ref": "audit.other"})
    assert refused.status_code == 403
    duplicate = operator.post("/api/v1/actions", json=ACTION)
    assert duplicate.status_code == 409
    tenant_path = f"/api/{tenant_id}/{project_id}/action"
    created = operator.post(
        tenant_path, json={"name": "t", "runner": "shell", "entryPoint": "true"}
    )
    assert created.status_code == 201
    # Without credentials: nobody to name, not recorded. A wrong token: recorded, with no
    # tenant (only a system admin sees it).
    assert httpx.post(shared_server.url + "/api/v1/actions", json=ACTION).status_code == 401
    wrong = {"Authorization": "Bearer execd_wrong-" + uuid.uuid4().hex}
    assert httpx.post(shared_server.url + "/api/v1/actions", headers=wrong).status_code == 401

    entries = _all(tenant_admin)
    assert {e["tenant_id"] for e in entries} == {tenant_id}
    by_route: dict[object, list[dict[str, object]]] = {}
    for entry in entries:
        by_route.setdefault((entry["method"], entry["route"], entry["outcome"]), []).append(entry)
    executed = by_route["POST", "/api/v1/executions/execute", "done"]
    assert sorted(e["objects"]["made"][0] for e in executed) == sorted(runs)  # type: ignore[index]
    one = executed[0]
    assert one["token"] == {"id": one["token"]["id"], "name": "test", "role": "operator"}  # type: ignore[index]
    assert (
        one["status"] == 201 and one["address"] == "127.0.0.1" and one["project_id"] == project_id
    )
    assert one["at"].endswith("Z") and one["error"] is None  # type: ignore[union-attr]
    (made_action,) = by_route["POST", "/api/v1/actions", "done"]
    assert "audit.login" in made_action["objects"]["made"]  # type: ignore[index]
    (forbidden,) = by_route["POST", "/api/v1/actions", "refused"][:1] and [
        e for e in by_route["POST", "/api/v1/actions", "refused"] if e["status"] == 403
    ]
    assert forbidden["token"]["role"] == "viewer"  # type: ignore[index]
    assert "needs the operator role" in forbidden["error"]  # type: ignore[operator]
    assert by_route["POST", "/api/{tenantId}/{projectId}/action", "done"][0]["objects"] == {
        "tenantId": tenant_id,
        "projectId": project_id,
        "made": by_route["POST", "/api/{tenantId}/{projectId}/action", "done"][0]["objects"][
            "made"
        ],  # type: ignore[index]
    }
    # The entries the tokens' creation left are the system admin's (its tenant), and no
    # entry holds a secret value or a token.
    everything = admin.get("/api/v1/audit", params={"per_page": 500}).text
    for value in (SECRET, operator_token, wrong["Authorization"].split()[1]):
        assert value not in everything and value not in str(entries)
    bad = _all(admin, status_code=401, route="/api/v1/actions")
    assert any(e["tenant_id"] is None and e["token"] is None for e in bad)


def test_only_admins_read_it_and_a_tenant_admin_only_its_tenant(
    shared_server: Server, admin: httpx.Client
) -> None:
    tenant_id, project_id, operator_token = new_project(admin)
    operator = shared_server.client(operator_token)
    tenant_admin = shared_server.client(_token(admin, project_id, "admin"))
    other_tenant, _, _ = new_project(admin)
    for _ in range(5):
        assert operator.post("/api/v1/tokens", json={"name": "x"}).status_code == 403
    assert operator.get("/api/v1/audit").status_code == 403
    denied = tenant_admin.get("/api/v1/audit", params={"tenant_id": other_tenant})
    assert denied.status_code == 403 and denied.json()["status"] == 403
    mine = _all(tenant_admin)
    assert len(mine) >= 5 and _all(admin, tenant_id=tenant_id) == mine
    assert _all(tenant_admin, outcome="refused", method="POST", status_code=403) == mine[:5]

    # Keyset paging, newest first: every entry once.
    seen, cursor = [], ""
    while cursor is not None:
        page = tenant_admin.get("/api/v1/audit", params={"per_page": 2, "cursor": cursor})
        seen += [e["id"] for e in page.json()["data"]]
        cursor = page.json()["pagination"]["next_cursor"]
    assert seen == [e["id"] for e in mine] and seen == sorted(seen, reverse=True)
    broken = tenant_admin.get("/api/v1/audit", params={"cursor": "bm9wZTox"})
    assert broken.status_code == 400 and "Invalid cursor" in broken.json()["error"]
