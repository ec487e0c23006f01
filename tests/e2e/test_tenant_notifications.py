"""Job notifications: real e-mail to an SMTP server running in this test process, and
webhook POSTs to a local HTTP server; retries, records, and jobs left as they ended."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.e2e.test_tenant_actions import Tenant
from tests.e2e.test_tenant_jobs import submit, wait_job
from tests.support import Deployment, free_port, wait_for


class Inbox:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


class Hooks(http.server.BaseHTTPRequestHandler):
    """Fails the first POST with a 500, accepts the rest."""

    received: list[dict[str, Any]] = []
    calls = 0

    def do_POST(self) -> None:
        type(self).calls += 1
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length))
        status = 500 if type(self).calls == 1 else 200
        if status == 200:
            type(self).received.append(body)
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def webhook() -> Iterator[str]:
    Hooks.received, Hooks.calls = [], 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/jobs"
    server.shutdown()
    server.server_close()


def _server(deployment: Deployment, smtp_port: int, **env: str) -> Tenant:
    server = deployment.server(
        workers=1,
        EXECD_SMTP_HOST="127.0.0.1",
        EXECD_SMTP_PORT=str(smtp_port),
        EXECD_SMTP_FROM="jobs@execd.test",
        EXECD_NOTIFY_SECONDS="0.2",
        EXECD_NOTIFY_BACKOFF_SECONDS="0.2",
        EXECD_FETCH_ALLOW="127.0.0.1",  # the receivers are local
        **env,
    )
    return Tenant(server.client())


def _deliveries(tenant: Tenant, job_id: str) -> list[dict[str, Any]]:
    body = tenant.get(f"/execution/job/{job_id}").json()
    found: list[dict[str, Any]] = body["notifications"]["deliveries"]
    return found


def test_completion_sends_mail_and_a_retried_webhook(
    deployment: Deployment, inbox: tuple[Inbox, int], webhook: str
) -> None:
    mailbox, port = inbox
    tenant = _server(deployment, port)
    action = tenant.define("reportable", "echo done")
    job_id = submit(
        tenant,
        action,
        jobName="Weekly Process Analysis",
        notifications={
            "onCompletion": True,
            "onFailure": True,
            "emailRecipients": ["analyst@company.test", "lead@company.test"],
            "webhookUrl": webhook,
        },
    ).json()["jobId"]
    wait_job(tenant, job_id, {"Completed"})
    wait_for(lambda: len(mailbox.messages) == 2, timeout=20, message="two e-mails")
    assert sorted(m["To"] for m in mailbox.messages) == [
        "analyst@company.test",
        "lead@company.test",
    ]
    mail = mailbox.messages[0]
    assert mail["From"] == "jobs@execd.test"
    assert "Weekly Process Analysis" in mail["Subject"] and "completed" in mail["Subject"]
    assert job_id in mail.get_payload()

    wait_for(lambda: Hooks.received, timeout=20, message="webhook delivered")
    assert Hooks.received[0]["jobId"] == job_id
    assert Hooks.received[0]["event"] == "job.completed"

    def recorded() -> list[dict[str, Any]] | None:
        found = _deliveries(tenant, job_id)
        return found if all(d["state"] == "sent" for d in found) else None

    deliveries = {d["target"]: d for d in wait_for(recorded, message="all recorded as sent")}
    assert deliveries[webhook]["attempts"] == 2  # the first POST got a 500
    assert deliveries[webhook]["lastError"] is None
    assert deliveries["analyst@company.test"]["attempts"] == 1
    assert deliveries["analyst@company.test"]["dateSent"] is not None


def test_failure_notifies_only_when_asked(deployment: Deployment, inbox: tuple[Inbox, int]) -> None:
    mailbox, port = inbox
    tenant = _server(deployment, port)
    failing = tenant.define("breaks", "echo nope >&2; exit 3")
    quiet = submit(
        tenant,
        failing,
        notifications={"onCompletion": True, "emailRecipients": ["x@company.test"]},
    ).json()["jobId"]
    loud = submit(
        tenant,
        failing,
        jobName="Nightly",
        notifications={"onFailure": True, "emailRecipients": ["oncall@company.test"]},
    ).json()["jobId"]
    wait_job(tenant, quiet, {"Failed"})
    wait_job(tenant, loud, {"Failed"})
    wait_for(lambda: mailbox.messages, timeout=20, message="failure e-mail")
    (mail,) = mailbox.messages
    assert mail["To"] == "oncall@company.test" and "failed" in mail["Subject"]
    assert "exit code 3: nope" in mail.get_payload()
    assert _deliveries(tenant, quiet) == []


def test_undeliverable_mail_is_retried_recorded_and_leaves_the_job_alone(
    deployment: Deployment,
) -> None:
    tenant = _server(deployment, free_port(), EXECD_NOTIFY_ATTEMPTS="2")  # nobody listens
    action = tenant.define("fine", "true")
    job_id = submit(
        tenant,
        action,
        notifications={"onCompletion": True, "emailRecipients": ["a@company.test"]},
    ).json()["jobId"]
    wait_job(tenant, job_id, {"Completed"})

    def failed() -> dict[str, Any] | None:
        (delivery,) = _deliveries(tenant, job_id)
        return delivery if delivery["state"] == "failed" else None

    delivery = wait_for(failed, timeout=20, message="recorded as failed")
    assert delivery["attempts"] == 2 and "Connection" in delivery["lastError"]
    assert tenant.get(f"/execution/job/{job_id}").json()["status"] == "Completed"
