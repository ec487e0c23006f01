"""The API's edges, tried as an attacker or a careless client would (real servers, both
backends): values no id or number can hold in every operation's path and query, bodies
past their limit, clients too slow to finish a request, too many requests or failed
authentications (docs/security.md, "Request limits")."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.test_isolation_matrix import operations
from tests.support import ADMIN_TOKEN, Deployment, Server

HUGE_NUMBER = "9" * 10_000  # past Python's int() limit of 4,300 digits
HUGE_TEXT = "a" * 10_000


def _answers(client: httpx.Client, method: str, url: str, params: dict[str, str]) -> int:
    """The status of a request, without waiting for a body (a stream may never end)."""
    with client.stream(method, url, params=params) as response:
        return response.status_code


def test_no_path_or_query_value_causes_a_server_error(
    shared_server: Server, admin: httpx.Client, tmp_path: Path
) -> None:
    me = admin.get("/api/v1/me").json()["data"]
    own = {"tenantId": me["tenant_id"], "projectId": me["project_id"]}
    tried, failures = 0, []
    for op in operations(shared_server, tmp_path):
        if op.method == "WS":
            continue
        # Each path parameter in turn gets the huge value, the others a plausible one.
        plain = {name: own.get(name, "1") for name in op.path_names}
        cases: list[tuple[dict[str, str], dict[str, str]]] = []
        for name in op.path_names:
            cases += [({**plain, name: HUGE_NUMBER}, {}), ({**plain, name: HUGE_TEXT}, {})]
        for query in op.parameters("query"):
            cases += [(plain, {query["name"]: HUGE_NUMBER}), (plain, {query["name"]: "-1e999"})]
        for values, params in cases:
            url = op.path.format(**values)
            status = _answers(admin, op.method, url, params)
            tried += 1
            if status >= 500:
                failures.append(f"{op.method} {op.path} {list(params)} -> {status}")
    assert tried > 300 and not failures, failures
    assert "unhandled_error" not in shared_server.log()


@pytest.mark.parametrize("suffix", ["executions/" + HUGE_NUMBER, "enforcements/" + HUGE_NUMBER])
def test_a_huge_id_is_a_404_in_the_v1_shape(admin: httpx.Client, suffix: str) -> None:
    response = admin.get("/api/v1/" + suffix)
    assert response.status_code == 404
    body = response.json()
    assert body["status"] == 404 and body["error"].startswith("No such endpoint")
    assert len(body["error"]) < 300  # the path is not echoed whole


# -- request bodies --------------------------------------------------------------------

MIB = 1024 * 1024


def _megabytes(count: int) -> Iterator[bytes]:
    """A body sent in chunks, without a Content-Length: it is cut off as it arrives."""
    for _ in range(count * 16):
        yield b"x" * (MIB // 16)


def test_bodies_past_their_route_limit_are_refused_before_they_are_read(
    shared_server: Server, admin: httpx.Client
) -> None:
    server = psutil.Process(shared_server.pid)
    me = admin.get("/api/v1/me").json()["data"]
    tenant_jobs = f"/api/{me['tenant_id']}/{me['project_id']}/execution/job"
    actions_before = len(admin.get("/api/v1/actions").json()["data"])
    memory_before = server.memory_info().rss
    hundred = b'{"ref": "big.one", "description": "' + b"x" * (100 * MIB) + b'"}'
    # Declared: answered at once, in each dialect's shape.
    v1 = admin.post("/api/v1/actions", content=hundred)
    assert v1.status_code == 413
    assert v1.json() == {"error": f"A request body has at most {10 * MIB} bytes", "status": 413}
    tenant = admin.post(tenant_jobs, content=hundred)
    assert tenant.status_code == 413 and tenant.json() == {"error": v1.json()["error"]}
    webhook = admin.post("/api/v1/webhooks/anything", content=b"{" + b" " * (2 * MIB) + b"}")
    assert webhook.status_code == 413
    assert webhook.json()["error"] == f"A webhook payload has at most {MIB} bytes"
    form = admin.post("/ui/sign-in", content=b"token=" + b"x" * MIB)
    assert form.status_code == 413 and "A form has at most" in form.text
    # Streamed without a length: cut off where it passes the limit.
    streamed = admin.post(
        "/api/v1/executions/execute",
        content=_megabytes(100),
        headers={"Content-Type": "application/json"},
    )
    assert streamed.status_code == 413 and streamed.json()["status"] == 413
    grown = (server.memory_info().rss - memory_before) / MIB
    print(f"[limits] server memory after 2 x 100 MiB bodies: {grown:+.1f} MiB")
    assert grown < 40  # at most the one cap (10 MiB) read and dropped, never 100 MiB
    assert len(admin.get("/api/v1/actions").json()["data"]) == actions_before
    # Below the limit a body is read as ever.
    fine = {"ref": f"edges.fine{shared_server.port}", "runner": "shell", "entry_point": "true"}
    ok = admin.post("/api/v1/actions", json={**fine, "description": "x" * 5000})
    assert ok.status_code == 201, ok.text


# -- slow clients ----------------------------------------------------------------------


def _closed(connection: socket.socket) -> bytes:
    """What the server sent before it closed the connection (it must, within 30 s)."""
    connection.settimeout(30)
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def test_slow_clients_are_dropped(deployment: Deployment) -> None:
    server = deployment.server(
        workers=0, EXECD_HEADER_TIMEOUT_SECONDS="1", EXECD_BODY_TIMEOUT_SECONDS="2"
    )
    address = ("127.0.0.1", server.port)
    # Half-sent headers, many at once (each held a connection for good before).
    waiting = [socket.create_connection(address) for _ in range(50)]
    for connection in waiting:
        connection.sendall(b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\nAuthor")
    silent = socket.create_connection(address)  # connects, never says a word
    assert all(_closed(c) == b"" for c in [*waiting, silent])
    # Headers in, the body never completed: answered 408 in the dialect's shape.
    slow_body = socket.create_connection(address)
    slow_body.sendall(
        b"POST /api/v1/actions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + ADMIN_TOKEN.encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    answer = _closed(slow_body)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert answer.endswith(b'{"error":"The request body was not sent in time","status":408}')
    for connection in [*waiting, silent, slow_body]:
        connection.close()
    # A client that keeps to time is served as ever, also over a kept-alive connection.
    client = server.client()
    assert all(client.get("/api/v1/me").status_code == 200 for _ in range(3))


# -- rate limits -----------------------------------------------------------------------


def _limited(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["RateLimit-Limit"] == str(limit)
    assert response.headers["RateLimit-Remaining"] == "0"
    assert response.headers["RateLimit-Policy"] == f"{limit};w=60"


def test_failed_authentications_and_requests_per_token_are_limited(
    deployment: Deployment,
) -> None:
    server = deployment.server(
        workers=0,
        EXECD_RATE_LIMIT="8/minute",
        EXECD_AUTH_FAILURE_LIMIT="5/minute",
        EXECD_TRUSTED_PROXIES="127.0.0.1",  # so that each test client is an address
    )
    guesser = {"X-Forwarded-For": "203.0.113.7"}
    anonymous = httpx.Client(base_url=server.url, headers=guesser)
    bad = {"Authorization": "Bearer execd_guess"}
    assert [anonymous.get("/api/v1/me", headers=bad).status_code for _ in range(5)] == [401] * 5
    # A request without credentials is no guess: it is not counted, nor refused.
    assert anonymous.get("/api/v1/me").status_code == 401
    _limited(anonymous.get("/api/v1/me", headers=bad), 5)
    # From that address even the right token waits: a guess that hits must not pay.
    right = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    blocked = anonymous.get("/api/v1/me", headers=right)
    _limited(blocked, 5)
    assert blocked.json()["error"].startswith("Too many failed authentications")
    # The same in the dashboard's sign-in form, and another address is not affected.
    page = httpx.Client(base_url=server.url, headers={"X-Forwarded-For": "203.0.113.8"})
    form = page.get("/ui/sign-in")
    for attempt in range(6):
        nonce = form.text.split('name="nonce" value="')[1].split('"')[0]
        form = page.post("/ui/sign-in", data={"nonce": nonce, "token": f"guess-{attempt}"})
        assert form.status_code == (401 if attempt < 5 else 429), attempt

    # Requests per token: the limit headers on every answer, then 429 in the shape of
    # the dialect called (here the tenant API's).
    client = server.client()
    client.headers["X-Forwarded-For"] = "203.0.113.9"
    me = client.get("/api/v1/me")
    assert me.headers["RateLimit-Limit"] == "8" and me.headers["RateLimit-Remaining"] == "7"
    base = f"/api/{me.json()['data']['tenant_id']}/{me.json()['data']['project_id']}"
    remaining = [int(client.get(f"{base}/execution/jobs").headers["RateLimit-Remaining"])]
    while remaining[-1] > 0:
        remaining.append(int(client.get(f"{base}/execution/jobs").headers["RateLimit-Remaining"]))
    assert remaining == list(range(6, -1, -1))
    refused = client.get(f"{base}/execution/jobs")
    _limited(refused, 8)
    assert refused.json() == {"error": "Too many requests for this token: slow down"}


def test_rate_limits_can_be_off(deployment: Deployment) -> None:
    server = deployment.server(workers=0, EXECD_RATE_LIMIT="off", EXECD_AUTH_FAILURE_LIMIT="off")
    client = server.client()
    answers = [client.get("/api/v1/me") for _ in range(3)]
    assert all(a.status_code == 200 and "RateLimit-Limit" not in a.headers for a in answers)
    bad = {"Authorization": "Bearer execd_guess"}
    assert {httpx.get(server.url + "/api/v1/me", headers=bad).status_code for _ in range(70)} == {
        401
    }


def _redis() -> str:
    url = "redis://127.0.0.1:6379"
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=2).close()
    except OSError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("no Redis on 127.0.0.1:6379")
    return url


def test_nodes_sharing_a_redis_share_the_limits(deployment: Deployment) -> None:
    shared = {
        "EXECD_RATE_LIMIT": "6/minute",
        "EXECD_AUTH_FAILURE_LIMIT": "3/minute",
        "EXECD_RATE_LIMIT_STORAGE": _redis(),
        "EXECD_RATE_LIMIT_PREFIX": f"execd-test-{uuid.uuid4().hex}",
    }
    nodes = [deployment.server(workers=0, **shared) for _ in range(2)]
    clients = [node.client() for node in nodes]
    answers = [clients[i % 2].get("/api/v1/me") for i in range(6)]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["5", "4", "3", "2", "1", "0"]
    _limited(clients[0].get("/api/v1/me"), 6)
    _limited(clients[1].get("/api/v1/me"), 6)
    bad = {"Authorization": "Bearer execd_guess"}
    guesses = [httpx.get(nodes[i % 2].url + "/api/v1/me", headers=bad) for i in range(3)]
    assert [g.status_code for g in guesses] == [401, 401, 401]
    _limited(httpx.get(nodes[1].url + "/api/v1/me", headers=bad), 3)
