"""The dashboard over HTTP against a real server, on both backends: sign-in sessions,
CSRF, project scoping and roles, the executions list and one execution's page. The
browser drives the same pages in tests/browser/."""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
import threading
import zipfile

import httpx
import pytest
import sqlalchemy as sa

from execd.store.database import sync_url
from execd.store.schema import triggers
from tests.support import (
    ADMIN_TOKEN,
    Deployment,
    Server,
    insert_ended,
    new_project,
    submit,
    wait_for,
    wait_status,
)


def browser(server: Server) -> httpx.Client:
    """A cookie-keeping client with no token: what a browser is to the dashboard."""
    client = httpx.Client(base_url=server.url, timeout=30, follow_redirects=False)
    server.clients.append(client)
    return client


def sign_in(server: Server, token: str) -> httpx.Client:
    client = browser(server)
    form = client.get("/ui/sign-in")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce, form.text
    signed = client.post(
        "/ui/sign-in", data={"nonce": nonce.group(1), "token": token, "next": "/ui/executions"}
    )
    assert signed.status_code == 303, signed.text
    assert signed.headers["location"] == "/ui/executions"
    return client


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def test_the_base_url_leads_to_the_dashboard_and_pages_ask_to_sign_in(
    shared_server: Server,
) -> None:
    client = browser(shared_server)
    root = client.get("/")
    assert root.status_code == 303 and root.headers["location"] == "/ui/"
    page = client.get("/ui/executions?status=failed")
    assert page.status_code == 303
    assert page.headers["location"] == "/ui/sign-in?next=/ui/executions%3Fstatus%3Dfailed"
    form = client.get(page.headers["location"])
    assert form.status_code == 200 and "text/html" in form.headers["content-type"]
    policy = form.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert 'name="next" value="/ui/executions?status=failed"' in form.text
    # The API dialects keep their JSON errors.
    assert client.get("/api/v1/executions").json()["status"] == 401


def test_a_session_cookie_is_http_only_strict_and_stored_only_as_a_hash(
    shared_server: Server,
) -> None:
    client = sign_in(shared_server, ADMIN_TOKEN)
    cookie = next(c for c in client.cookies.jar if c.name == "execd_session")
    assert cookie.path == "/ui"
    assert cookie.has_nonstandard_attr("HttpOnly")
    assert cookie.get_nonstandard_attr("SameSite").lower() == "strict"
    url = shared_server.env["EXECD_DATABASE_URL"]
    engine = sa.create_engine(url.replace("+aiosqlite", ""))
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id_hash, token_hash FROM dashboard_sessions"))
            stored = {tuple(r) for r in rows}
    finally:
        engine.dispose()
    digest = hashlib.sha256(cookie.value.encode()).hexdigest()
    assert digest in {h for h, _ in stored}
    assert not any(cookie.value in h or ADMIN_TOKEN in t for h, t in stored)


def test_sign_in_refuses_a_bad_token_and_a_form_from_elsewhere(shared_server: Server) -> None:
    client = browser(shared_server)
    form = client.get("/ui/sign-in")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce
    bad = client.post("/ui/sign-in", data={"nonce": nonce.group(1), "token": "execd_nope"})
    assert bad.status_code == 401 and "not valid" in bad.text
    assert "execd_session" not in client.cookies
    # Another site's form has no nonce of this browser's: no session.
    forged = browser(shared_server).post("/ui/sign-in", data={"token": ADMIN_TOKEN})
    assert forged.status_code == 303 and forged.headers["location"].startswith("/ui/sign-in")
    assert "execd_session" not in forged.cookies


def test_sign_out_ends_the_session_on_the_server(shared_server: Server) -> None:
    client = sign_in(shared_server, ADMIN_TOKEN)
    page = client.get("/ui/executions")
    assert page.status_code == 200
    stolen = dict(client.cookies)
    out = client.post("/ui/sign-out", data={"csrf": csrf_of(page)})
    assert out.status_code == 303 and out.headers["location"] == "/ui/sign-in"
    replay = browser(shared_server)
    replay.cookies.update(stolen)
    assert replay.get("/ui/executions").status_code == 303


def test_a_revoked_token_ends_its_sessions(shared_server: Server, admin: httpx.Client) -> None:
    _, project_id, token = new_project(admin)
    client = sign_in(shared_server, token)
    assert client.get("/ui/executions").status_code == 200
    tokens = admin.get("/api/v1/tokens", params={"project_id": project_id}).json()["data"]
    assert admin.delete(f"/api/v1/tokens/{tokens[0]['id']}").status_code in (200, 204)
    assert client.get("/ui/executions").status_code == 303


def test_forms_need_the_session_csrf_token_and_this_origin(
    shared_server: Server, admin: httpx.Client
) -> None:
    _, _, token = new_project(admin)
    api = shared_server.client(token)
    running = submit(api, "core.sleep", {"seconds": 30})
    client = sign_in(shared_server, token)
    page = client.get(f"/ui/executions/{running['id']}")
    assert page.status_code == 200 and ">Cancel</button>" in page.text
    cancel = f"/ui/executions/{running['id']}/cancel"
    assert client.post(cancel, data={}).status_code == 403
    assert client.post(cancel, data={"csrf": "guess"}).status_code == 403
    elsewhere = client.post(
        cancel, data={"csrf": csrf_of(page)}, headers={"Origin": "https://evil.example"}
    )
    assert elsewhere.status_code == 403
    assert wait_status(api, running["id"], {"scheduled", "running"}, timeout=5)
    done = client.post(cancel, data={"csrf": csrf_of(page)})
    assert done.status_code == 303 and done.headers["location"] == f"/ui/executions/{running['id']}"
    assert wait_status(api, running["id"])["status"] == "cancelled"


def test_pages_show_the_token_project_only_and_refuse_what_its_role_may_not(
    shared_server: Server, admin: httpx.Client
) -> None:
    _, _, theirs = new_project(admin)
    foreign = submit(shared_server.client(theirs), "core.echo", {"message": "secret"})
    _, project_id, _ = new_project(admin)
    viewer_token = admin.post(
        "/api/v1/tokens", json={"name": "v", "role": "viewer", "project_id": project_id}
    ).json()["data"]["token"]
    operator = admin.post(
        "/api/v1/tokens", json={"name": "o", "role": "operator", "project_id": project_id}
    ).json()["data"]["token"]
    api = shared_server.client(operator)
    mine = submit(api, "core.sleep", {"seconds": 30})
    viewer = sign_in(shared_server, viewer_token)
    # Another project's execution is "not found", as in the API.
    other = viewer.get(f"/ui/executions/{foreign['id']}")
    assert other.status_code == 404 and "not found" in other.text
    assert "secret" not in other.text
    assert f'href="/ui/executions/{foreign["id"]}"' not in viewer.get("/ui/executions").text
    # A viewer sees no cancel button, and the server refuses the form anyway.
    page = viewer.get(f"/ui/executions/{mine['id']}")
    assert page.status_code == 200 and ">Cancel</button>" not in page.text
    refused = viewer.post(f"/ui/executions/{mine['id']}/cancel", data={"csrf": csrf_of(page)})
    assert refused.status_code == 403 and "operator" in refused.text
    assert api.post(f"/api/v1/executions/{mine['id']}/cancel").status_code == 200


def test_an_admin_switches_to_projects_it_manages_only(
    shared_server: Server, admin: httpx.Client
) -> None:
    tenant_id, project_id, token = new_project(admin)
    marked = submit(shared_server.client(token), "core.echo", {"message": "in-the-project"})
    wait_status(shared_server.client(token), marked["id"])
    tenant_admin = admin.post(
        "/api/v1/tokens",
        json={"name": "ta", "role": "admin", "project_id": project_id},
    ).json()["data"]["token"]
    _, other_project, _ = new_project(admin)
    # A tenant admin of another tenant: its sessions cannot show this project.
    outsider_token = admin.post(
        "/api/v1/tokens", json={"name": "x", "role": "admin", "project_id": other_project}
    ).json()["data"]["token"]
    outsider = sign_in(shared_server, outsider_token)
    page = outsider.get("/ui/executions")
    assert project_id not in page.text
    refused = outsider.post("/ui/project", data={"csrf": csrf_of(page), "project": project_id})
    assert refused.status_code == 404
    assert f'href="/ui/executions/{marked["id"]}"' not in outsider.get("/ui/executions").text
    # The system admin switches to it and sees its executions.
    system = sign_in(shared_server, ADMIN_TOKEN)
    page = system.get("/ui/executions")
    assert f'value="{project_id}"' in page.text
    switched = system.post("/ui/project", data={"csrf": csrf_of(page), "project": project_id})
    assert switched.status_code == 303
    assert f'href="/ui/executions/{marked["id"]}"' in system.get("/ui/executions").text
    # The tenant's own admin sees the tenant's projects, and another tenant's not.
    second = admin.post("/api/v1/projects", json={"tenant_id": tenant_id, "name": "second"})
    own = sign_in(shared_server, tenant_admin)
    page = own.get("/ui/executions")
    assert f'value="{second.json()["data"]["id"]}"' in page.text
    assert f'value="{other_project}"' not in page.text
    assert f'href="/ui/executions/{marked["id"]}"' in page.text


def test_the_list_filters_and_pages_by_keyset(shared_server: Server, admin: httpx.Client) -> None:
    _, _, token = new_project(admin)
    api = shared_server.client(token)
    ids = [submit(api, "core.echo", {"message": f"m{i}"})["id"] for i in range(55)]
    failed = submit(api, "core.shell", {"cmd": "exit 3"})
    for execution_id in [*ids, failed["id"]]:
        wait_status(api, execution_id)
    client = sign_in(shared_server, token)
    only_failed = client.get("/ui/executions", params={"status": "failed"})
    shown = set(map(int, re.findall(r'href="/ui/executions/(\d+)"', only_failed.text)))
    assert shown == {failed["id"]}
    by_result = client.get("/ui/executions", params={"result": "m54"})
    assert set(map(int, re.findall(r'<tr data-id="(\d+)"', by_result.text))) == {ids[54]}
    first = client.get("/ui/executions", params={"action": "core.echo"})
    rows = list(map(int, re.findall(r'<tr data-id="(\d+)"', first.text)))
    assert rows == sorted(ids, reverse=True)[:50]
    older = re.search(r'href="(/ui/executions\?[^"]*below=\d+[^"]*)" rel="next"', first.text)
    assert older, first.text
    second = client.get(older.group(1).replace("&amp;", "&"))
    assert list(map(int, re.findall(r'<tr data-id="(\d+)"', second.text))) == sorted(ids)[:5][::-1]
    bad = client.get("/ui/executions", params={"status": "sideways"})
    assert bad.status_code == 400 and "sideways" in bad.text


def test_a_search_for_text_in_results_reads_a_bounded_slice_and_goes_on_from_there(
    shared_server: Server, admin: httpx.Client
) -> None:
    _, _, token = new_project(admin)
    api = shared_server.client(token)
    needle = wait_status(api, submit(api, "core.echo", {"message": "needle-7"})["id"])
    # 20,000 newer executions without it (the slice one page reads), then one with it.
    insert_ended(shared_server.env["EXECD_DATABASE_URL"], api, 20_000)
    newest = wait_status(api, submit(api, "core.echo", {"message": "needle-8"})["id"])
    client = sign_in(shared_server, token)

    first = client.get("/ui/executions", params={"result": "needle"})
    assert re.findall(r'<tr data-id="(\d+)"', first.text) == [str(newest["id"])]
    assert "20,000 executions searched" in first.text
    on = re.search(r'href="(/ui/executions\?[^"]*)" rel="next">Search older', first.text)
    assert on, first.text
    second = client.get(html.unescape(on.group(1)))
    assert re.findall(r'<tr data-id="(\d+)"', second.text) == [str(needle["id"])]
    assert "Search older" not in second.text  # it reached the oldest: nothing more to search
    assert 'href="/ui/executions?result=needle">Newest' in second.text


def test_one_execution_shows_its_history_result_output_and_package(
    shared_server: Server, admin: httpx.Client
) -> None:
    _, _, token = new_project(admin)
    api = shared_server.client(token)
    script = (
        'echo \'{"percent": 50, "stage": "Halfway"}\' >> "$EXECD_CONTROL_FILE"; '
        'echo hello-out; echo report > "$EXECD_ARTIFACTS_DIR/report.txt"; '
        'echo \'{"rows": 3}\' > "$EXECD_RESULT_FILE"'
    )
    done = wait_status(api, submit(api, "core.shell", {"cmd": script})["id"])
    assert done["status"] == "completed"
    client = sign_in(shared_server, token)
    page = client.get(f"/ui/executions/{done['id']}")
    assert page.status_code == 200
    for status in ("requested", "scheduled", "running", "completed"):
        assert f'class="status s-{status}">{status}</span>' in page.text
    assert '"rows": 3' in html.unescape(page.text) and "report.txt" in page.text
    assert 'value="100"' in page.text  # a completed execution's bar is full
    package = client.get(f"/ui/executions/{done['id']}/package")
    assert package.status_code == 200 and package.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(package.content)).namelist()
    assert any(n.endswith("report.txt") for n in names), names
    file = client.get(f"/ui/executions/{done['id']}/files/report.txt")
    assert file.status_code == 200 and file.text == "report\n"
    assert client.get(f"/ui/executions/{done['id']}/files/../../etc/passwd").status_code == 404

    def tail() -> str | None:
        with client.stream("GET", f"/ui/executions/{done['id']}/output/stdout") as stream:
            text = ""
            for line in stream.iter_lines():
                text += line + "\n"
                if line.startswith("event: done"):
                    return text
        return None

    assert "hello-out" in wait_for(tail, timeout=10, message="the stdout tail")


@pytest.mark.parametrize("fragment", ["rows", "live"])
def test_fragments_are_the_parts_the_page_refreshes(
    shared_server: Server, admin: httpx.Client, fragment: str
) -> None:
    _, _, token = new_project(admin)
    api = shared_server.client(token)
    done = wait_status(api, submit(api, "core.echo", {"message": "x"})["id"])
    client = sign_in(shared_server, token)
    path = "/ui/executions" if fragment == "rows" else f"/ui/executions/{done['id']}"
    part = client.get(path, params={"fragment": fragment})
    assert part.status_code == 200
    assert "<html" not in part.text and "completed" in part.text


def test_the_event_stream_tells_the_page_what_changed_in_its_project_only(
    shared_server: Server, admin: httpx.Client
) -> None:
    _, _, token = new_project(admin)
    _, _, other_token = new_project(admin)
    api, other = shared_server.client(token), shared_server.client(other_token)
    client = sign_in(shared_server, token)
    submitted: list[int] = []
    stop = threading.Event()

    def keep_submitting() -> None:  # until the stream, opened first, has seen one
        while not stop.wait(0.3):
            submit(other, "core.noop")
            submitted.append(submit(api, "core.noop")["id"])

    seen: list[dict[str, object]] = []
    with client.stream("GET", "/ui/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        thread = threading.Thread(target=keep_submitting)
        thread.start()
        try:
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
                    if len(seen) >= 3:
                        break
        finally:
            stop.set()
            thread.join()
    assert {e["execution"] for e in seen} <= set(submitted)


def test_the_queue_page_shows_places_running_work_and_workers(deployment: Deployment) -> None:
    server = deployment.server(
        workers=1, EXECD_WORKER_CONCURRENCY="1", EXECD_WORKER_DEVICES="rig-1"
    )
    _, _, token = new_project(server.client())
    api = server.client(token)
    running = submit(
        api, "core.shell", {"cmd": 'echo \'{"percent": 40}\' >> "$EXECD_CONTROL_FILE"; sleep 60'}
    )
    wait_status(api, running["id"], "running")
    low = submit(api, "core.echo", {"message": "low"}, priority="low")
    high = submit(api, "core.echo", {"message": "high"}, priority="high")
    client = sign_in(server, token)

    def shown() -> str | None:
        page = client.get("/ui/queue")
        return page.text if 'value="40' in page.text else None

    text = wait_for(shown, timeout=10, message="the running execution's progress")
    waiting = text[text.index('id="waiting"') : text.index('id="running"')]
    places = re.findall(r'<tr data-id="(\d+)">\s*<td>(\d+)</td>', waiting)
    assert [(int(i), int(p)) for i, p in places] == [(high["id"], 1), (low["id"], 2)]
    assert f'<tr data-id="{running["id"]}">' in text[text.index('id="running"') :]
    assert re.search(r'<meter min="0" max="1" value="1"', text)  # the worker is busy
    devices = text[text.index('id="devices"') :]
    assert re.search(r"<td>rig-1</td>\s*<td>free</td>\s*<td>0</td>\s*<td>[^<]+</td>", devices)
    assert api.post(f"/api/v1/executions/{running['id']}/cancel").status_code == 200


def test_run_an_action_from_its_form_with_errors_next_to_the_field(
    shared_server: Server, admin: httpx.Client
) -> None:
    _, project_id, token = new_project(admin)
    api = shared_server.client(token)
    body = {
        "ref": "ops.pick",
        "runner": "command",
        "entry_point": '["echo", "{color}", "{count}"]',
        "parameters": {
            "type": "object",
            "properties": {
                "color": {"type": "string", "enum": ["red", "green"]},
                "count": {"type": "integer", "minimum": 1},
                "loud": {"type": "boolean", "default": False},
            },
            "required": ["color", "count"],
        },
    }
    assert api.post("/api/v1/actions", json=body).status_code == 201
    client = sign_in(shared_server, token)
    page = client.get("/ui/actions/ops.pick")
    assert page.status_code == 200
    assert '<select id="p-color" name="color"' in page.text
    assert 'type="number"' in page.text and 'type="checkbox" id="p-loud"' in page.text
    csrf = csrf_of(page)
    run = "/ui/actions/ops.pick/run"
    low = client.post(run, data={"csrf": csrf, "color": "red", "count": "0"})
    assert low.status_code == 400
    assert re.search(r'id="p-count-error">Invalid parameter &#39;count&#39;: 0 is less', low.text)
    assert 'value="0"' in low.text  # what was sent stays in the form
    missing = client.post(run, data={"csrf": csrf, "count": "2"})
    assert 'id="p-color-error">' in missing.text and "required" in missing.text
    word = client.post(run, data={"csrf": csrf, "color": "red", "count": "two"})
    assert 'id="p-count-error">a whole number is expected' in word.text
    ran = client.post(run, data={"csrf": csrf, "color": "green", "count": "3", "loud": "true"})
    assert ran.status_code == 303
    execution_id = int(ran.headers["location"].rsplit("/", 1)[1])
    done = wait_status(api, execution_id)
    assert done["config"] == {"color": "green", "count": 3, "loud": True}
    # Disabled, it runs no more; enabled again, it does.
    off = client.post("/ui/actions/ops.pick/enabled", data={"csrf": csrf, "enabled": "false"})
    assert off.status_code == 303
    assert api.get("/api/v1/actions/ops.pick").json()["data"]["enabled"] is False
    refused = client.post(run, data={"csrf": csrf, "color": "red", "count": "1"})
    assert refused.status_code == 409 and "disabled" in refused.text
    client.post("/ui/actions/ops.pick/enabled", data={"csrf": csrf, "enabled": "true"})
    assert api.get("/api/v1/actions/ops.pick").json()["data"]["enabled"] is True
    # A viewer sees the form's button disabled, and the server refuses anyway.
    viewer_token = admin.post(
        "/api/v1/tokens", json={"name": "v", "role": "viewer", "project_id": project_id}
    ).json()["data"]["token"]
    viewer = sign_in(shared_server, viewer_token)
    seen = viewer.get("/ui/actions/ops.pick")
    assert re.search(r'<button type="submit" class="primary"\s+disabled>Run ops.pick', seen.text)
    denied = viewer.post(run, data={"csrf": csrf_of(seen), "color": "red", "count": "1"})
    assert denied.status_code == 403


def test_run_a_flow_and_switch_a_rule_off(shared_server: Server, admin: httpx.Client) -> None:
    _, _, token = new_project(admin)
    api = shared_server.client(token)
    flow = api.post(
        "/api/flows",
        json={
            "name": "Greet",
            "parameters": {"who": "world"},
            "steps": [
                {"action": "core.echo", "parameters": {"message": "hi {{ parameters.who }}"}}
            ],
        },
    )
    assert flow.status_code in (200, 201), flow.text
    flow_id = flow.json()["flow"]["id"]
    client = sign_in(shared_server, token)
    assert "Greet" in client.get("/ui/flows").text
    page = client.get(f"/ui/flows/{flow_id}")
    ran = client.post(f"/ui/flows/{flow_id}/run", data={"csrf": csrf_of(page), "p:who": '"ann"'})
    assert ran.status_code == 303
    done = wait_status(api, int(ran.headers["location"].rsplit("/", 1)[1]))
    assert done["status"] == "completed"
    bad = client.post(f"/ui/flows/{flow_id}/run", data={"csrf": csrf_of(page), "p:who": "ann"})
    assert bad.status_code == 400 and "JSON is expected" in bad.text
    # Next to its field, which keeps what was typed.
    assert re.search(r'value="ann"\s+aria-invalid="true" aria-describedby="fp-1-error"', bad.text)
    assert '<p class="error field-error" id="fp-1-error">JSON is expected' in bad.text

    assert api.post("/api/v1/triggers", json={"ref": "hook", "type": "webhook"}).status_code == 201
    rule = {"ref": "on-hook", "trigger": "hook", "action_ref": "core.noop"}
    assert api.post("/api/v1/rules", json=rule).status_code == 201
    rules = client.get("/ui/rules")
    assert "on-hook" in rules.text and "hook" in rules.text
    off = client.post(
        "/ui/rules/on-hook/enabled", data={"csrf": csrf_of(rules), "enabled": "false"}
    )
    assert off.status_code == 303
    assert api.get("/api/v1/rules/on-hook").json()["data"]["enabled"] is False


def test_rules_and_triggers_have_pages_and_switch_off_and_on(
    shared_server: Server, admin: httpx.Client
) -> None:
    _, project_id, token = new_project(admin)
    api = shared_server.client(token)
    assert (
        api.post("/api/v1/triggers", json={"ref": "alerts", "type": "webhook"}).status_code == 201
    )
    signed = {"ref": "signed", "type": "webhook", "config": {"auth": "hmac"}}
    created = api.post("/api/v1/triggers", json=signed)
    assert created.status_code == 201, created.text
    secret = created.json()["data"]["secret"]
    rule = {
        "ref": "page-ops",
        "trigger": "alerts",
        "action_ref": "core.echo",
        "criteria": {"field": "payload.severity", "op": "equals", "value": "high"},
        "parameters": {"message": "{{ payload.host }}"},
    }
    assert api.post("/api/v1/rules", json=rule).status_code == 201
    fired = api.post("/api/v1/webhooks/alerts", json={"severity": "high", "host": "web-7"})
    assert fired.status_code == 202, fired.text
    client = sign_in(shared_server, token)

    listed = client.get("/ui/rules")
    assert 'href="/ui/rules/page-ops"' in listed.text
    assert 'href="/ui/triggers/alerts"' in listed.text
    page = client.get("/ui/rules/page-ops")
    assert page.status_code == 200
    assert "{{ payload.host }}" in html.unescape(page.text) and "severity" in page.text
    enforced = re.search(r'href="/ui/executions/(\d+)"', page.text)
    assert enforced, "the enforcement links the execution it started"
    assert wait_status(api, int(enforced.group(1)))["result"] == {"message": "web-7"}

    trigger = client.get("/ui/triggers/alerts")
    assert trigger.status_code == 200 and "token" in trigger.text
    assert 'href="/ui/rules/page-ops"' in trigger.text
    # Off from its own page, back there; on again from the list, back to the list.
    off = client.post(
        "/ui/triggers/alerts/enabled",
        data={"csrf": csrf_of(trigger), "enabled": "false", "back": "detail"},
    )
    assert off.status_code == 303 and off.headers["location"] == "/ui/triggers/alerts"
    assert api.get("/api/v1/triggers/alerts").json()["data"]["enabled"] is False
    assert api.post("/api/v1/webhooks/alerts", json={}).status_code == 409  # disabled
    on = client.post(
        "/ui/triggers/alerts/enabled",
        data={"csrf": csrf_of(trigger), "enabled": "true", "back": "list"},
    )
    assert on.status_code == 303 and on.headers["location"] == "/ui/rules"
    assert api.get("/api/v1/triggers/alerts").json()["data"]["enabled"] is True
    # An HMAC webhook keeps its secret through off and on; the page never shows it.
    hmac_page = client.get("/ui/triggers/signed")
    assert secret not in hmac_page.text and "never shown again" in hmac_page.text
    for enabled in ("false", "true"):
        client.post(
            "/ui/triggers/signed/enabled", data={"csrf": csrf_of(hmac_page), "enabled": enabled}
        )
    kept = api.get("/api/v1/triggers/signed").json()["data"]
    assert kept["enabled"] is True and kept["has_secret"] is True
    # A trigger stored under older checks (a timer more often than they allow now)
    # can still be switched off.
    timer = {"ref": "often", "type": "timer", "config": {"interval": 60}}
    assert api.post("/api/v1/triggers", json=timer).status_code == 201
    engine = sa.create_engine(sync_url(shared_server.env["EXECD_DATABASE_URL"]))
    with engine.begin() as conn:
        conn.execute(
            sa.update(triggers)
            .where(triggers.c.project_id == project_id, triggers.c.ref == "often")
            .values(config={"interval": 0.5, "catch_up": "latest"})
        )
    engine.dispose()
    often = client.post(
        "/ui/triggers/often/enabled", data={"csrf": csrf_of(hmac_page), "enabled": "false"}
    )
    assert often.status_code == 303, often.text
    assert api.get("/api/v1/triggers/often").json()["data"]["enabled"] is False
    off = client.post(
        "/ui/rules/page-ops/enabled",
        data={"csrf": csrf_of(page), "enabled": "false", "back": "detail"},
    )
    assert off.headers["location"] == "/ui/rules/page-ops"
    assert "disabled" in client.get("/ui/rules/page-ops").text

    # A viewer sees the buttons disabled and is refused; another project's are not found.
    viewer = sign_in(
        shared_server,
        admin.post(
            "/api/v1/tokens", json={"name": "v", "role": "viewer", "project_id": project_id}
        ).json()["data"]["token"],
    )
    seen = viewer.get("/ui/triggers/alerts")
    assert re.search(
        r"<button type=\"submit\" disabled aria-label=\"Disable trigger alerts\"", seen.text
    )
    refused = viewer.post(
        "/ui/triggers/alerts/enabled", data={"csrf": csrf_of(seen), "enabled": "false"}
    )
    assert refused.status_code == 403
    _, _, stranger = new_project(admin)
    outsider = sign_in(shared_server, stranger)
    for path in ("/ui/triggers/alerts", "/ui/rules/page-ops"):
        assert outsider.get(path).status_code == 404


def test_statistics_count_what_ended_per_action_and_the_flows(
    shared_server: Server, admin: httpx.Client
) -> None:
    _, _, token = new_project(admin)
    api = shared_server.client(token)
    runs = [submit(api, "core.shell", {"cmd": f"exit {i % 2}"}) for i in range(4)]
    runs.append(submit(api, "core.echo", {"message": "x"}))
    flow = api.post("/api/flows", json={"name": "One", "steps": [{"action": "core.noop"}]}).json()[
        "flow"
    ]
    api.post(f"/api/flows/{flow['id']}/execute", json={})
    for run in runs:
        wait_status(api, run["id"])
    client = sign_in(shared_server, token)

    def shown() -> str | None:
        page = client.get("/ui/stats", params={"window": "24h"})
        return page.text if 'id="flow-success">100.0 %' in page.text else None

    text = wait_for(shown, timeout=20, message="the flow's run in the statistics")
    row = re.search(r"core\.shell</a></td><td>(\d+)</td>\s*<td>([\d.]+) %", text)
    assert row and row.groups() == ("4", "50.0")
    assert '<svg class="chart"' in text and 'aria-label="Executions ended per hour"' in text
    assert 'id="flow-total">1<' in text
    assert client.get("/ui/stats", params={"window": "1y"}).status_code == 400


def test_what_executions_carry_is_shown_as_text_never_as_markup(
    shared_server: Server, admin: httpx.Client
) -> None:
    _, _, token = new_project(admin)
    api = shared_server.client(token)
    mark = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    done = wait_status(api, submit(api, "core.echo", {"message": mark})["id"])
    failed = wait_status(api, submit(api, "core.shell", {"cmd": f"echo '{mark}'; exit 1"})["id"])
    client = sign_in(shared_server, token)
    for path in (
        f"/ui/executions/{done['id']}",
        f"/ui/executions/{failed['id']}",
        f"/ui/executions?result={mark}",
    ):
        page = client.get(path)
        assert page.status_code == 200
        assert "<script>alert" not in page.text and "<img src=x" not in page.text
        assert "&lt;script&gt;alert(2)" in page.text or "&lt;img" in page.text
