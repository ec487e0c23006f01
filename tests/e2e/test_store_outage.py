"""The database out of reach: every call answers 503 with Retry-After in its API's own
error shape, the client's connection stays open through it, and the service is back
by itself once the database is. /healthz and /readyz say what a probe needs."""

from __future__ import annotations

import http.client
import json
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support import ADMIN_TOKEN, Deployment, new_project, submit, wait_for, wait_status


def _block(database_url: str, blocked: bool) -> None:
    """Turn the test's own database away (its sessions ended, no new ones), or back."""
    name = make_url(database_url).database
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as pg:
        pg.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {str(not blocked).lower()}')
        if blocked:
            pg.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )


class KeptAlive:
    """One HTTP/1.1 connection, used for every request: it fails if the server
    closes it."""

    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.token = token
        self.sock: Any = None

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        self.conn.request(method, path, body=payload, headers=headers)
        answer = self.conn.getresponse()
        data = answer.read()
        if self.sock is None:
            self.sock = self.conn.sock
        assert self.conn.sock is self.sock, "the server closed the connection"
        return answer.status, dict(answer.getheaders()), json.loads(data) if data else None


def test_an_unreachable_database_is_503_on_one_kept_connection_then_recovers(
    deployment: Deployment, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("an SQLite file cannot be taken away from a running server")
    server = deployment.server(workers=1)
    admin = server.client(ADMIN_TOKEN)
    _, _, token = new_project(admin)
    api = server.client(token)
    done = wait_status(api, submit(api, "core.noop")["id"])
    client = KeptAlive(server.port, token)
    assert client.call("GET", f"/api/v1/executions/{done['id']}")[0] == 200

    _block(deployment.database_url, True)
    try:
        probes = [httpx.get(f"{server.url}/{probe}", timeout=10) for probe in ("healthz", "readyz")]
        calls = [
            ("GET", f"/api/v1/executions/{done['id']}", None),
            ("POST", "/api/v1/executions/execute", {"action_ref": "core.noop"}),
            ("GET", "/api/v1/executions", None),
            ("GET", "/api/history/executions", None),  # the flow history API
            ("GET", "/api/v1/executions/stats", None),
        ]
        answers = [client.call(*call) for call in calls]
    finally:
        _block(deployment.database_url, False)
    for (status, headers, body), (_, path, _) in zip(answers, calls, strict=True):
        assert status == 503, (path, status, body)
        assert headers.get("retry-after") == "5", path
        assert "store is unavailable" in json.dumps(body), (path, body)
    assert [p.status_code for p in probes] == [503, 503]
    assert probes[0].json() == {"status": "unavailable", "error": "database unreachable"}
    assert probes[1].json()["checks"]["database"] == "database unreachable"
    v1 = answers[0][2]
    assert v1["status"] == 503 and set(v1) == {"error", "status"}, v1  # the v1 shape
    assert "database unreachable" in v1["error"]

    # Back by itself, on the same connection.
    def working() -> bool:
        return client.call("GET", f"/api/v1/executions/{done['id']}")[0] == 200

    wait_for(working, timeout=30, message="the service once the database is back")
    status, _, body = client.call("POST", "/api/v1/executions/execute", {"action_ref": "core.noop"})
    assert status == 201, body
    assert wait_status(api, body["data"]["id"])["status"] == "completed"
    assert httpx.get(f"{server.url}/readyz", timeout=10).json()["status"] == "ready"


def test_ready_once_a_worker_is_there(deployment: Deployment) -> None:
    server = deployment.server(workers=0)  # an API node, no worker anywhere yet
    alive = httpx.get(f"{server.url}/healthz", timeout=10)
    assert alive.status_code == 200 and alive.json()["status"] == "ok"
    waiting = httpx.get(f"{server.url}/readyz", timeout=10)
    assert waiting.status_code == 503
    assert waiting.json() == {
        "status": "not ready",
        "checks": {
            "database": "ok",
            "schema": "ok",
            "workers": "no worker has been heard from in a lease length",
        },
    }
    deployment.worker("w-ready")

    def ready() -> bool:
        return httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200

    wait_for(ready, timeout=30, message="ready once the worker registered")
