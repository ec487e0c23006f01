"""Secrets sealed at rest, on SQLite and PostgreSQL: every way a secret value reaches
the database leaves it sealed (a grep of the SQLite file and its WAL, or of a pg_dump,
finds none of them), the action still gets the value, every answer masks it, and key
rotation keeps everything working with the new key alone."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import create_engine, update

from execd.engine.sealing import Sealer, new_key
from execd.store.database import sync_url
from execd.store.schema import enforcements, executions, triggers
from tests.e2e.test_flows import define, run, wait_flow
from tests.e2e.test_tenant_actions import Tenant
from tests.e2e.test_tenant_jobs import submit as submit_job
from tests.e2e.test_tenant_jobs import wait_job
from tests.support import IN_CI, Deployment, Server, free_port, submit, wait_for, wait_status

MASK = "********"
ACTION = {
    "ref": "vault.check",
    "runner": "shell",
    # The action never prints its secret: only the SHA-256 of what it was given. It
    # fails when its note says so (after printing).
    "entry_point": 'printf "%s" "$PARAM_TOKEN" | sha256sum | cut -c1-64; [ "$PARAM_NOTE" != fail ]',
    "parameters": {
        "type": "object",
        "properties": {"token": {"type": "string", "secret": True}, "note": {"type": "string"}},
        "required": ["token"],
    },
}
RULE_PARAMETERS = {"token": "{{ payload.token }}", "note": "{{ payload.note }}"}
FLOW_STEP = {"action": "vault.check", "parameters": {"token": "{{ parameters.pw }}"}}


def secret(label: str) -> str:
    return f"{label}-{secrets.token_hex(12)}"


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def signed(key: str, body: bytes) -> dict[str, str]:
    digest = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Execd-Signature": f"sha256={digest}"}


def output(client: httpx.Client, execution_id: int) -> str:
    response = client.get(f"/api/v1/executions/{execution_id}/output/stdout")
    assert response.status_code == 200, response.text
    return response.text.strip()


def completed(client: httpx.Client, execution_id: int) -> str:
    """What a finished run of vault.check printed (the SHA-256 of its token)."""
    done = wait_status(client, execution_id)
    assert done["status"] == "completed", done
    assert done["config"]["token"] == MASK
    return output(client, execution_id)


def checks(client: httpx.Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get(
        "/api/v1/executions", params={"action_ref": ACTION["ref"], "per_page": 100}
    ).json()["data"]
    return found


def stored_text(deployment: Deployment) -> bytes:
    """Everything the database holds, as the bytes on disk (SQLite and its WAL) or as
    a plain-text dump (PostgreSQL)."""
    url = deployment.database_url
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        return b"".join(
            Path(f"{path}{suffix}").read_bytes()
            for suffix in ("", "-wal")
            if Path(f"{path}{suffix}").exists()
        )
    pg_dump = shutil.which("pg_dump") or "/usr/lib/postgresql/15/bin/pg_dump"
    if not Path(pg_dump).exists():
        message = "pg_dump is missing: install Debian's postgresql-client to check a dump"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    dump = subprocess.run([pg_dump, "--dbname", url], capture_output=True, timeout=120)
    assert dump.returncode == 0, dump.stderr.decode()
    assert b"COPY public.executions" in dump.stdout  # a real dump, with the data
    return dump.stdout


def assert_not_stored(deployment: Deployment, values: list[str], visible: str) -> None:
    """None of `values` is in what the database holds; `visible` (a value that is not
    secret) is, which shows the search sees the data."""
    data = stored_text(deployment)
    found = [v for v in values if v.encode() in data]
    assert not found, f"stored in clear: {found}"
    assert visible.encode() in data


class Hooks(http.server.BaseHTTPRequestHandler):
    """Keeps what each notification POST carried."""

    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        type(self).received.append(
            {
                "path": self.path,
                "authorization": self.headers.get("Authorization"),
                "body": json.loads(self.rfile.read(length)),
            }
        )
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def hooks() -> Iterator[int]:
    Hooks.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_secret_values_are_sealed_wherever_they_are_stored(
    deployment: Deployment, hooks: int
) -> None:
    server = deployment.server(EXECD_FETCH_ALLOW="127.0.0.1")  # the webhook receiver is local
    client = server.client()
    key_file = deployment.root / "data" / "secret-key"
    assert key_file.stat().st_mode & 0o777 == 0o600  # made on first start
    assert client.post("/api/v1/actions", json=ACTION).status_code == 201
    expected: Counter[str] = Counter()

    # A submission, and a retry of it (the sealed value is copied).
    direct, note = secret("direct"), secret("not-secret")
    first = submit(client, "vault.check", {"token": direct, "note": note})
    assert first["config"] == {"token": MASK, "note": note}
    assert completed(client, first["id"]) == sha(direct)
    again = client.post(f"/api/v1/executions/{first['id']}/retry", json={})
    assert again.status_code == 201 and again.json()["data"]["config"]["token"] == MASK
    expected.update([sha(direct), sha(direct)])

    # A retry with the secret overridden.
    override = secret("override")
    retried = client.post(
        f"/api/v1/executions/{first['id']}/retry", json={"parameters": {"token": override}}
    )
    assert retried.status_code == 201, retried.text
    assert retried.json()["data"]["config"] == {"token": MASK, "note": note}
    expected[sha(override)] += 1

    # An HMAC webhook whose rule maps a payload field into the secret parameter.
    made = client.post(
        "/api/v1/triggers",
        json={"ref": "vault-hook", "type": "webhook", "config": {"auth": "hmac"}},
    )
    assert made.status_code == 201, made.text
    hmac_secret = made.json()["data"]["secret"]
    rule = {"ref": "vault-rule", "trigger": "vault-hook", "action_ref": "vault.check"}
    created = client.post("/api/v1/rules", json={**rule, "parameters": RULE_PARAMETERS})
    assert created.status_code == 201, created.text
    hooked = secret("webhook")
    body = orjson.dumps({"token": hooked, "note": "visible"})
    fired = httpx.post(
        f"{server.url}/api/v1/webhooks/vault-hook", content=body, headers=signed(hmac_secret, body)
    )
    assert fired.status_code == 202, fired.text
    [enforcement] = fired.json()["data"]["enforcements"]
    assert enforcement["payload"] == {"token": MASK, "note": "visible"}
    listed = client.get("/api/v1/enforcements").json()["data"]
    assert [e["payload"] for e in listed] == [{"token": MASK, "note": "visible"}]
    expected[sha(hooked)] += 1

    # A flow whose parameter feeds the secret parameter of a step.
    flowed = secret("flow")
    flow_id = define(client, "vault-flow", [FLOW_STEP])
    flow_run = run(client, flow_id, parameters={"pw": flowed})
    assert flow_run["parameters"] == {"pw": MASK}
    assert wait_flow(client, flow_run["id"])["status"] == "PASSED"
    expected[sha(flowed)] += 1

    # A tenant-API job, with a notification webhook URL that carries credentials: it
    # fails, and its retry (secret and URL carried over) completes and notifies.
    tenant = Tenant(client)
    action_uuid = client.get("/api/v1/actions/vault.check").json()["data"]["uuid"]
    password, url_token, job_secret = secret("hookpw"), secret("urltoken"), secret("job")
    url = f"http://hookuser:{password}@127.0.0.1:{hooks}/hook?token={url_token}"
    response = submit_job(
        tenant,
        action_uuid,
        parameters={"token": job_secret, "note": "fail"},
        notifications={"onCompletion": True, "webhookUrl": url},
    )
    assert response.status_code == 201, response.text
    failed = wait_job(tenant, response.json()["jobId"], {"Completed", "Failed"})
    assert failed["status"] == "Failed"
    retry = tenant.post(
        f"/execution/job/{failed['jobId']}/retry", json={"updatedParameters": {"note": "ok"}}
    )
    assert retry.status_code == 200, retry.text
    job = wait_job(tenant, retry.json()["jobId"], {"Completed", "Failed"})
    assert job["status"] == "Completed"
    results = tenant.get(f"/execution/job/{job['jobId']}/results?format=detailed")
    assert results.status_code == 200 and results.json()["parameters"]["token"] == MASK
    shown_url = f"http://hookuser:{MASK}@127.0.0.1:{hooks}/hook?token={MASK}"
    assert job["notifications"]["webhookUrl"] == shown_url
    assert "sealed" not in json.dumps(job)
    [delivery] = wait_for(lambda: Hooks.received, message="the job's notification")
    basic = base64.b64encode(f"hookuser:{password}".encode()).decode()
    assert delivery["authorization"] == f"Basic {basic}"  # the notifier opened the URL
    assert delivery["path"] == f"/hook?token={url_token}"

    def sent() -> list[dict[str, Any]]:
        shown = tenant.get(f"/execution/job/{job['jobId']}").json()["notifications"]
        return [d for d in shown["deliveries"] if d["state"] == "sent"]

    deliveries = wait_for(sent, message="the delivery recorded")
    assert deliveries[0]["target"] == shown_url
    expected[sha(job_secret)] += 2

    # Every run got its value; every answer masked it.
    ran = [wait_status(client, e["id"]) for e in checks(client)]
    assert {e["config"]["token"] for e in ran} == {MASK}
    assert Counter(output(client, e["id"]) for e in ran) == expected

    everything = [direct, override, hooked, flowed, password, url_token, job_secret, hmac_secret]
    assert_not_stored(deployment, everything, note)
    server.stop()
    assert_not_stored(deployment, everything, note)


def test_rotation_to_a_new_key(deployment: Deployment) -> None:
    key_a, key_b = new_key(), new_key()
    id_b = Sealer([key_b]).key_ids[0]
    server = deployment.server(EXECD_SECRET_KEY=key_a)
    client = server.client()
    assert not (deployment.root / "data" / "secret-key").exists()
    assert client.post("/api/v1/actions", json=ACTION).status_code == 201
    direct, hooked, flowed = secret("direct"), secret("hooked"), secret("flowed")
    first = submit(client, "vault.check", {"token": direct})
    hook_secret, legacy_hook_secret = secret("hmac-secret"), secret("legacy-hmac")
    for ref, key in (("vault-hook", hook_secret), ("legacy-hook", legacy_hook_secret)):
        trigger = {"ref": ref, "type": "webhook", "config": {"auth": "hmac"}, "secret": key}
        assert client.post("/api/v1/triggers", json=trigger).status_code == 201
        rule = {"ref": f"{ref}-rule", "trigger": ref, "action_ref": "vault.check"}
        made = client.post("/api/v1/rules", json={**rule, "parameters": RULE_PARAMETERS})
        assert made.status_code == 201
    body = orjson.dumps({"token": hooked, "note": "n"})
    fired = httpx.post(
        f"{server.url}/api/v1/webhooks/vault-hook", content=body, headers=signed(hook_secret, body)
    )
    assert fired.status_code == 202, fired.text
    hooked_id = fired.json()["data"]["enforcements"][0]["executions"][0]
    flow_id = define(client, "vault-flow", [FLOW_STEP])
    flow_run = run(client, flow_id, parameters={"pw": flowed})
    assert wait_flow(client, flow_run["id"])["status"] == "PASSED"
    assert completed(client, first["id"]) == sha(direct)
    assert completed(client, hooked_id) == sha(hooked)
    server.stop()

    # What an older version left in clear: a secret parameter, an HMAC secret, a
    # payload that a rule mapped into a secret parameter.
    legacy, legacy_payload = secret("legacy-param"), secret("legacy-payload")
    engine = create_engine(sync_url(deployment.database_url))
    with engine.begin() as conn:
        conn.execute(
            update(executions)
            .where(executions.c.id == first["id"])
            .values(parameters={"token": legacy})
        )
        conn.execute(
            update(triggers)
            .where(triggers.c.ref == "legacy-hook")
            .values(secret=legacy_hook_secret)
        )
        conn.execute(update(enforcements).values(payload={"token": legacy_payload, "note": "n"}))
    engine.dispose()

    # Every node gets "B,A" (B seals, A still opens); new secrets are sealed with B.
    server = deployment.server(EXECD_SECRET_KEY=f"{key_b},{key_a}")
    client = server.client()
    later = secret("later")
    later_id = submit(client, "vault.check", {"token": later})["id"]
    assert completed(client, later_id) == sha(later)
    server.stop()

    rotated = execd(deployment, "secrets", "rotate", EXECD_SECRET_KEY=f"{key_b},{key_a}")
    assert rotated.returncode == 0, rotated.stderr
    assert f"key {id_b}:" in rotated.stdout and "2 sealed from plain text" in rotated.stdout
    assert "1 shown values masked" in rotated.stdout, rotated.stdout
    again = execd(deployment, "secrets", "rotate", EXECD_SECRET_KEY=f"{key_b},{key_a}")
    assert "0 values sealed again, 0 sealed from plain text" in again.stdout, again.stdout
    # Nothing is left that only A opens: a run with A alone cannot open anything.
    only_a = execd(deployment, "secrets", "rotate", EXECD_SECRET_KEY=key_a)
    assert only_a.returncode == 1 and f"sealed with key {id_b}" in only_a.stderr
    assert "0 values sealed again, 0 sealed from plain text" in only_a.stdout
    everything = [direct, hooked, flowed, later, legacy, legacy_payload, hook_secret]
    assert_not_stored(deployment, [*everything, legacy_hook_secret], "vault-flow")

    # B alone: everything still opens and runs.
    server = deployment.server(EXECD_SECRET_KEY=key_b)
    client = server.client()
    shown = client.get("/api/v1/enforcements").json()["data"]
    assert {e["payload"]["token"] for e in shown} == {MASK}
    rerun = {}
    for old in (first["id"], hooked_id, later_id):
        again_response = client.post(f"/api/v1/executions/{old}/retry", json={})
        assert again_response.status_code == 201, again_response.text
        rerun[old] = again_response.json()["data"]["id"]
    assert completed(client, rerun[first["id"]]) == sha(legacy)
    assert completed(client, rerun[hooked_id]) == sha(hooked)
    assert completed(client, rerun[later_id]) == sha(later)
    fresh = secret("fresh")
    for ref, key in (("vault-hook", hook_secret), ("legacy-hook", legacy_hook_secret)):
        body = orjson.dumps({"token": fresh, "note": ref})
        fired = httpx.post(
            f"{server.url}/api/v1/webhooks/{ref}", content=body, headers=signed(key, body)
        )
        assert fired.status_code == 202, fired.text
        assert completed(client, fired.json()["data"]["enforcements"][0]["executions"][0]) == sha(
            fresh
        )
    flows = client.get("/api/v1/executions", params={"action_ref": "core.flow"}).json()["data"]
    flow_again = client.post(f"/api/v1/executions/{flows[0]['id']}/retry", json={})
    assert flow_again.status_code == 201, flow_again.text
    wait_status(client, flow_again.json()["data"]["id"], "completed")
    assert Counter(output(client, e["id"]) for e in checks(client))[sha(flowed)] == 2
    server.stop()

    # A node with a key missing says so: at start, and by failing what needs it.
    server = deployment.server(EXECD_SECRET_KEY=key_a)
    client = server.client()
    assert id_b in wait_for(lambda: id_b in server.log() and server.log(), message="a warning")
    failed = client.post(f"/api/v1/executions/{later_id}/retry", json={}).json()["data"]
    done = wait_status(client, failed["id"])
    assert done["status"] == "failed", done
    assert f"sealed with key {id_b}" in done["error"] and "'token'" in done["error"]
    assert output(client, failed["id"]) == ""  # it never ran
    body = orjson.dumps({"token": "x", "note": "y"})
    refused = httpx.post(
        f"{server.url}/api/v1/webhooks/vault-hook", content=body, headers=signed(hook_secret, body)
    )
    assert refused.status_code == 503 and "secret keys" in refused.json()["error"]


def execd(deployment: Deployment, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "execd", *args],
        env={**deployment.env(**env), "PYTHONWARNINGS": os.environ.get("PYTHONWARNINGS", "")},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_secrets_are_masked_by_the_cli_and_the_sdk(
    shared_server: Server, admin: httpx.Client, tmp_path: Path
) -> None:
    from execd.client import Client
    from tests.e2e.test_cli_client import Cli, plain_env
    from tests.support import new_project

    _, _, token = new_project(admin)
    cli = Cli(plain_env(tmp_path, EXECD_URL=shared_server.url, EXECD_TOKEN=token), tmp_path)
    value, other, hooked = secret("cli"), secret("cli-retry"), secret("sdk-hook")
    with Client(shared_server.url, token) as sdk:
        sdk.create_action(ACTION)
        ran = cli.json("run", "vault.check", "--param", f"token={value}", "--wait")
        assert ran["config"]["token"] == MASK and ran["status"] == "completed"
        shown = cli.ok("executions", "get", str(ran["id"])).stdout
        assert MASK in shown and value not in shown
        assert cli.json("executions", "get", str(ran["id"]))["config"]["token"] == MASK
        retried = cli.json("executions", "retry", str(ran["id"]), "--param", f"token={other}")
        assert retried["config"]["token"] == MASK
        assert sdk.get_execution(ran["id"]).config["token"] == MASK
        assert sdk.wait(retried["id"]).config["token"] == MASK
        assert sdk.output(retried["id"]).strip() == sha(other)
        exported = cli.ok("executions", "export").stdout
        assert MASK in exported and value not in exported and other not in exported

        sdk.create_trigger({"ref": "sdk-hook", "type": "webhook"})
        sdk.create_rule({"ref": "sdk-rule", "trigger": "sdk-hook", "action_ref": "vault.check",
                         "parameters": RULE_PARAMETERS})  # fmt: skip
        answer = sdk.fire_webhook("sdk-hook", {"token": hooked, "note": "kept"})
        assert answer["enforcements"][0]["payload"] == {"token": MASK, "note": "kept"}
        [enforcement] = sdk.list_enforcements().items
        assert enforcement.payload == {"token": MASK, "note": "kept"}
        fired = sdk.wait(enforcement.executions[0])
        assert fired.config["token"] == MASK and sdk.output(fired.id).strip() == sha(hooked)


def test_unusable_keys_are_refused_in_one_line(deployment: Deployment) -> None:
    bad = execd(deployment, "serve", EXECD_SECRET_KEY="not-a-key", EXECD_PORT=str(free_port()))
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "error: EXECD_SECRET_KEY: each key is 32 random bytes" in bad.stderr
    assert "Traceback" not in bad.stderr
    # Rotation never makes a key of its own: it would seal with a key no server has.
    keyless = execd(deployment, "secrets", "rotate")
    assert keyless.returncode == 2 and "No secret key" in keyless.stderr
    assert not (deployment.root / "data" / "secret-key").exists()
    made = execd(deployment, "secrets", "new-key")
    assert made.returncode == 0 and Sealer([made.stdout.strip()]).key_ids
