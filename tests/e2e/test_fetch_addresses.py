"""URLs that tenants choose (core.http and `http` actions, job notification webhooks)
reach internal addresses only when EXECD_FETCH_ALLOW lists them: a real server on both
backends, local listeners that count every connection made to them.

Only loopback is ever a target of traffic here: the refused non-loopback addresses are
tried after the loopback ones have shown that a refusal sends nothing."""

from __future__ import annotations

import http.server
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.e2e.test_tenant_actions import Tenant
from tests.e2e.test_tenant_jobs import submit as submit_job
from tests.e2e.test_tenant_jobs import wait_job
from tests.support import Deployment, Server, new_project, submit, wait_for, wait_status

HINT = "; allow it with EXECD_FETCH_ALLOW"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Listener

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        if self.server.redirect_to is not None:
            self.send_response(302)
            self.send_header("Location", self.server.redirect_to)
            self.end_headers()
            return
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.paths.append(self.path)
        self._answer()

    def _answer(self) -> None:
        body = b'{"here": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


class Listener(http.server.ThreadingHTTPServer):
    """An HTTP server on a loopback address that counts the connections it accepts."""

    def __init__(self, host: str) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, 0), _Handler)
        self.connections = 0
        self.paths: list[str] = []
        self.redirect_to: str | None = None
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def process_request(self, request: Any, client_address: Any) -> None:
        self.connections += 1
        super().process_request(request, client_address)

    def url(self, path: str = "/", host: str | None = None) -> str:
        name = host or self.server_address[0]
        name = f"[{name}]" if ":" in name else name
        return f"http://{name}:{self.server_address[1]}{path}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


def _listener(host: str) -> Iterator[Listener]:
    listener = Listener(host)
    yield listener
    listener.close()


@pytest.fixture
def v4() -> Iterator[Listener]:
    yield from _listener("127.0.0.1")


@pytest.fixture
def other() -> Iterator[Listener]:
    yield from _listener("127.0.0.2")


@pytest.fixture
def v6() -> Iterator[Listener]:
    try:
        listener = Listener("::1")
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    yield listener
    listener.close()


@dataclass
class Servers:
    closed: Server  # the default: internal addresses refused
    allowing: Server  # EXECD_FETCH_ALLOW=127.0.0.1


@pytest.fixture(scope="module", params=BACKENDS)
def servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    """Two deployments of their own: one server's workers never run the other's work."""
    databases = request.getfixturevalue(f"{request.param}_databases")
    deployments: list[Deployment] = []

    def start(**env: str) -> Server:
        deployment = Deployment(databases.new(), tmp_path_factory.mktemp(request.param))
        deployments.append(deployment)
        return deployment.server(workers=1, EXECD_NOTIFY_SECONDS="0.2", **env)

    yield Servers(closed=start(), allowing=start(EXECD_FETCH_ALLOW="127.0.0.1"))
    for deployment in deployments:
        deployment.close()
        databases.drop(deployment.database_url)


def _operator(server: Server) -> httpx.Client:
    _, _, token = new_project(server.client())
    return server.client(token)


def _fetch(client: httpx.Client, urls: list[str]) -> list[dict[str, Any]]:
    ids = [submit(client, "core.http", {"url": url, "timeout": 5})["id"] for url in urls]
    return [wait_status(client, execution_id) for execution_id in ids]


def test_internal_addresses_are_refused_by_default(
    servers: Servers, v4: Listener, v6: Listener
) -> None:
    client = _operator(servers.closed)
    loopback = {
        v4.url(): "127.0.0.1 is a loopback address",
        v6.url(): "::1 is a loopback address",
        v4.url(host="localhost"): "localhost resolves to 127.0.0.1, a loopback address",
        v4.url(host="0x7f.1"): "0x7f.1 resolves to 127.0.0.1, a loopback address",
        v4.url(host="::ffff:127.0.0.1"): "::ffff:127.0.0.1 is a loopback address",
        v4.url(host="0.0.0.0"): "0.0.0.0 is an unspecified address",
    }
    done = _fetch(client, list(loopback))
    assert [(d["status"], d["error"]) for d in done] == [
        ("failed", f"refused: {reason}{HINT}") for reason in loopback.values()
    ]
    assert done[0]["result"] == {"error": f"refused: {loopback[v4.url()]}{HINT}"}
    assert (v4.connections, v6.connections) == (0, 0)

    internal = {
        "http://169.254.169.254/latest/meta-data/": "169.254.169.254 is a link-local address",
        "http://10.1.2.3/": "10.1.2.3 is a private address",
        "http://192.168.0.1/": "192.168.0.1 is a private address",
        "http://100.64.0.1/": "100.64.0.1 is a shared (carrier-grade NAT) address",
        "http://[fd00::1]/": "fd00::1 is a private (unique local) address",
        "http://[fe80::1]/": "fe80::1 is a link-local address",
        "http://224.0.0.1/": "224.0.0.1 is a multicast address",
    }
    done = _fetch(client, list(internal))
    assert [(d["status"], d["error"]) for d in done] == [
        ("failed", f"refused: {reason}{HINT}") for reason in internal.values()
    ]


def test_an_allow_listed_address_is_fetched(servers: Servers, v4: Listener) -> None:
    client = _operator(servers.allowing)
    (done,) = _fetch(client, [v4.url("/status")])
    assert done["status"] == "completed", done
    assert done["result"]["status_code"] == 200 and done["result"]["body"] == {"here": True}
    assert v4.paths == ["/status"]


def test_a_redirect_to_a_refused_address_is_not_followed(
    servers: Servers, v4: Listener, other: Listener
) -> None:
    client = _operator(servers.allowing)
    v4.redirect_to = other.url("/inside")
    (done,) = _fetch(client, [v4.url("/outside")])
    assert done["status"] == "failed", done
    assert done["error"] == f"refused: 127.0.0.2 is a loopback address{HINT}"
    assert v4.paths == ["/outside"]  # the allowed hop was made, the next one was not
    assert other.connections == 0


def test_an_http_action_without_network_fetches_nothing(servers: Servers, v4: Listener) -> None:
    client = _operator(servers.allowing)
    body = {"ref": "ops.probe", "runner": "http", "entry_point": v4.url(), "network": False}
    created = client.post("/api/v1/actions", json=body)
    assert created.status_code == 201, created.text
    done = wait_status(client, submit(client, "ops.probe")["id"])
    assert done["status"] == "failed"
    assert done["error"] == (
        'refused: the action says "network": false, and an http request needs the network'
    )
    assert v4.connections == 0


def _webhook_job(server: Server, url: str) -> tuple[Tenant, str]:
    tenant = Tenant(server.client())
    action = tenant.define(f"notify-{uuid.uuid4().hex[:8]}", "true")
    notifications = {"onCompletion": True, "webhookUrl": url}
    job_id: str = submit_job(tenant, action, notifications=notifications).json()["jobId"]
    wait_job(tenant, job_id, {"Completed"})
    return tenant, job_id


def _settled_delivery(tenant: Tenant, job_id: str) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        body = tenant.get(f"/execution/job/{job_id}").json()
        (delivery,) = body["notifications"]["deliveries"]
        return delivery if delivery["state"] in ("sent", "failed") else None

    found: dict[str, Any] = wait_for(settled, message="the delivery settled")
    return found


def test_a_webhook_to_a_refused_address_fails_at_once(servers: Servers, v4: Listener) -> None:
    tenant, job_id = _webhook_job(servers.closed, v4.url("/hooks"))
    delivery = _settled_delivery(tenant, job_id)
    assert delivery["state"] == "failed"
    assert delivery["attempts"] == 1  # a refusal is not tried again
    assert delivery["lastError"] == f"refused: 127.0.0.1 is a loopback address{HINT}"
    assert v4.connections == 0


def test_a_webhook_to_an_allow_listed_address_is_sent(servers: Servers, v4: Listener) -> None:
    tenant, job_id = _webhook_job(servers.allowing, v4.url("/hooks"))
    delivery = _settled_delivery(tenant, job_id)
    assert (delivery["state"], delivery["attempts"], delivery["lastError"]) == ("sent", 1, None)
    assert v4.paths == ["/hooks"]
