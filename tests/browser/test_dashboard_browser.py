"""The dashboard in a real browser against a real server: what a person does with it."""

from __future__ import annotations

import re
import zipfile
from typing import Any

import httpx
import pytest

from tests.browser.conftest import accessibility_violations, shot, sign_in
from tests.support import Server, new_project, submit, wait_for, wait_status

pytestmark = pytest.mark.slow


@pytest.fixture
def project(server: Server) -> tuple[httpx.Client, str]:
    """An operator's API client and token in a fresh project."""
    _, _, token = new_project(server.client())
    return server.client(token), token


def a_rule(api: httpx.Client) -> None:
    """A timer trigger, "hourly", and a rule, "report", that it fires."""
    timer = {"ref": "hourly", "type": "timer", "config": {"interval": 3600}}
    assert api.post("/api/v1/triggers", json=timer).status_code == 201
    rule = {"ref": "report", "trigger": "hourly", "action_ref": "core.echo",
            "parameters": {"message": "tick {{ payload.fired_at }}"}}  # fmt: skip
    assert api.post("/api/v1/rules", json=rule).status_code == 201


def status_of(page: Any) -> str:
    return str(page.locator("#status").inner_text())


def keep_marker(page: Any) -> None:
    page.evaluate("window.__notReloaded = true")


def not_reloaded(page: Any) -> bool:
    return bool(page.evaluate("window.__notReloaded === true"))


def test_sign_in_then_sign_out(page: Any, server: Server, project: Any) -> None:
    _, token = project
    page.goto(server.url + "/")
    assert page.url.endswith("/ui/sign-in?next=/ui/executions")
    shot(page, "sign-in")
    assert accessibility_violations(page) == []
    page.get_by_label("Token").fill("execd_not_a_token")
    page.get_by_role("button", name="Sign in").click()
    assert "not valid" in page.get_by_role("alert").inner_text()
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/executions")
    assert page.get_by_role("heading", name="Executions").is_visible()
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/ui/sign-in")
    page.goto(server.url + "/ui/executions")
    assert "/ui/sign-in" in page.url


def test_filter_the_list_and_keep_the_filter_in_the_url(
    page: Any, server: Server, project: Any
) -> None:
    api, token = project
    failed = submit(api, "core.shell", {"cmd": "echo broken >&2; exit 3"})
    done = submit(api, "core.echo", {"message": "fine"})
    wait_status(api, failed["id"])
    wait_status(api, done["id"])
    sign_in(page, server, token)
    page.get_by_label("failed", exact=True).check()
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r".*status=failed.*"))
    rows = page.locator("#rows tr[data-id]")
    assert rows.count() == 1 and rows.first.get_attribute("data-id") == str(failed["id"])
    shot(page, "executions-filtered")
    bookmarked = page.url
    page.goto(server.url + "/ui/executions")
    assert page.locator("#rows tr[data-id]").count() == 2
    page.goto(bookmarked)
    assert page.get_by_label("failed", exact=True).is_checked()
    assert page.locator("#rows tr[data-id]").count() == 1
    assert accessibility_violations(page) == []


def test_the_list_shows_new_executions_and_their_end_without_reload(
    page: Any, server: Server, project: Any
) -> None:
    api, token = project
    sign_in(page, server, token)
    keep_marker(page)
    new = submit(api, "core.shell", {"cmd": "sleep 1.5"})
    row = page.locator(f'#rows tr[data-id="{new["id"]}"]')
    row.wait_for()
    assert row.locator(".status").inner_text() in {
        "requested", "scheduling", "scheduled", "running",
    }  # fmt: skip
    page.wait_for_selector(f'#rows tr[data-id="{new["id"]}"] .s-completed')
    assert not_reloaded(page)
    shot(page, "executions")


def test_one_execution_moves_live_queued_to_completed_with_its_progress(
    page: Any, server: Server, project: Any
) -> None:
    api, token = project
    sign_in(page, server, token)
    script = (
        "for p in 10 30 50 70 90; do "
        'echo "{\\"percent\\": $p, \\"stage\\": \\"step $p\\"}" >> "$EXECD_CONTROL_FILE"; '
        "echo line $p; sleep 0.8; done"
    )
    # Queued for two seconds, then started.
    slow = submit(api, "core.shell", {"cmd": script}, delay=2)
    page.goto(f"{server.url}/ui/executions/{slow['id']}")
    keep_marker(page)
    assert status_of(page) in {"requested", "scheduling", "scheduled"}
    assert page.locator("#progress-bar").count() == 0
    bar = "document.querySelector('#progress-bar')"
    page.wait_for_function(f"{bar} && {bar}.value >= 10 && {bar}.value < 90")
    first = page.evaluate(f"{bar}.value")
    shot(page, "execution-running")
    page.wait_for_function(f"{bar}.value > {first}")
    assert "step" in page.locator("#stage").inner_text()
    page.wait_for_selector("#status.s-completed", timeout=30_000)
    assert page.evaluate(f"{bar}.value") == 100
    page.wait_for_function("document.querySelector('#stdout').textContent.includes('line 90')")
    assert not_reloaded(page)
    history = page.locator(".timeline .status").all_inner_texts()
    assert history[0] == "requested" and history[-1] == "completed" and "running" in history
    shot(page, "execution")
    assert accessibility_violations(page) == []


def test_cancel_a_running_execution(page: Any, server: Server, project: Any) -> None:
    api, token = project
    running = submit(api, "core.sleep", {"seconds": 60})
    wait_status(api, running["id"], "running")
    sign_in(page, server, token, f"/ui/executions/{running['id']}")
    assert status_of(page) == "running"
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_selector("#status.s-cancelled", timeout=30_000)
    assert wait_status(api, running["id"])["status"] == "cancelled"


def test_retry_a_failed_execution_with_an_override(page: Any, server: Server, project: Any) -> None:
    api, token = project
    failed = submit(api, "core.shell", {"cmd": "echo broken; exit 3"})
    wait_status(api, failed["id"])
    sign_in(page, server, token, f"/ui/executions/{failed['id']}")
    assert status_of(page) == "failed"
    page.get_by_label("Parameter overrides (JSON object, optional)").fill(
        '{"cmd": "echo fixed-by-retry"}'
    )
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Retry").click()
    page.wait_for_url(re.compile(r".*/ui/executions/(\d+)$"))
    new_id = int(page.url.rsplit("/", 1)[1])
    assert new_id != failed["id"]
    page.wait_for_selector("#status.s-completed", timeout=30_000)
    page.wait_for_function(
        "document.querySelector('#stdout').textContent.includes('fixed-by-retry')"
    )
    retried = wait_status(api, new_id)
    assert retried["retry_of"] == failed["id"] and retried["config"]["cmd"] == "echo fixed-by-retry"


def test_download_the_result_package(page: Any, server: Server, project: Any) -> None:
    api, token = project
    script = 'echo data > "$EXECD_ARTIFACTS_DIR/table.csv"; echo \'{"ok": true}\''
    done = wait_status(api, submit(api, "core.shell", {"cmd": script})["id"])
    sign_in(page, server, token, f"/ui/executions/{done['id']}")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the result package (ZIP)").click()
    names = zipfile.ZipFile(download.value.path()).namelist()
    assert any(name.endswith("table.csv") for name in names), names


def test_a_flow_shows_its_steps_turning_green(page: Any, server: Server, project: Any) -> None:
    api, token = project
    inner = api.post(
        "/api/flows",
        json={"name": "Inner", "steps": [{"name": "inner-step", "action": "core.noop"}]},
    ).json()["flow"]
    created = api.post(
        "/api/flows",
        json={
            "name": "Three steps",
            "steps": [
                {"name": "first", "action": "core.sleep", "parameters": {"seconds": 1}},
                {"name": "second", "flowId": inner["id"]},
                {"name": "third", "action": "core.sleep", "parameters": {"seconds": 0.5}},
            ],
        },
    )
    assert created.status_code in (200, 201), created.text
    flow_id = created.json()["flow"]["id"]
    started = api.post(f"/api/flows/{flow_id}/execute", json={})
    assert started.status_code in (200, 201, 202), started.text
    top = [e for e in api.get("/api/v1/executions").json()["data"] if e["parent"] is None]
    assert len(top) == 1
    sign_in(page, server, token, f"/ui/executions/{top[0]['id']}")
    keep_marker(page)
    steps = "#live .steps"
    # Every planned step is listed from the start, those not run yet as pending.
    assert page.locator(f"{steps} > li").count() == 3
    assert page.locator(f"{steps} > li.s-pending").count() >= 1
    page.wait_for_function(
        "document.querySelectorAll('#live .steps li.step.s-completed').length === 4",
        timeout=30_000,
    )
    assert "inner-step" in page.locator(f"{steps} > li:nth-child(2) .steps").inner_text()
    page.wait_for_selector("#status.s-completed")
    assert not_reloaded(page)
    shot(page, "flow")


def test_another_projects_execution_is_not_found(page: Any, server: Server, project: Any) -> None:
    _, token = project
    _, _, other_token = new_project(server.client())
    theirs = submit(server.client(other_token), "core.echo", {"message": "theirs"})
    sign_in(page, server, token)
    response = page.goto(f"{server.url}/ui/executions/{theirs['id']}")
    assert response.status == 404
    assert page.get_by_role("heading", name="Not found").is_visible()
    assert "theirs" not in page.content()
    shot(page, "not-found")


def test_pages_fit_a_narrow_screen(page: Any, server: Server, project: Any) -> None:
    api, token = project
    done = wait_status(api, submit(api, "core.echo", {"message": "narrow"})["id"])
    page.set_viewport_size({"width": 360, "height": 740})
    sign_in(page, server, token)
    a_rule(api)
    pages = ["executions", f"executions/{done['id']}", "queue", "actions", "actions/core.shell"]
    more = ["flows", "rules", "rules/report", "triggers/hourly", "stats"]
    for path in [f"/ui/{p}" for p in [*pages, *more]]:
        page.goto(server.url + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"{path} is {width} px wide"
    shot(page, "execution-narrow")


def test_the_api_docs_work_offline(browser: Any, server: Server) -> None:
    """Their pages' own policy keeps the browser from fetching anything elsewhere."""
    context = browser.new_context()
    page = context.new_page()
    outside: list[str] = []

    def only_this_server(route: Any) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    page.goto(server.url + "/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "execd" in page.locator(".swagger-ui .info .title").inner_text()
    shot(page, "docs")
    page.goto(server.url + "/redoc")
    wait_for(
        lambda: page.locator("h1").count() > 0 and "execd" in page.locator("h1").first.inner_text(),
        timeout=30,
        message="ReDoc rendered",
    )
    context.close()
    assert outside == []


def test_every_page_is_accessible_and_pictured(page: Any, server: Server, project: Any) -> None:
    api, token = project
    done = wait_status(api, submit(api, "core.shell", {"cmd": "echo done"})["id"])
    a_rule(api)
    sign_in(page, server, token)
    for name, path in [
        ("queue", "/ui/queue"),
        ("actions", "/ui/actions"),
        ("action", "/ui/actions/core.sleep"),
        ("flows", "/ui/flows"),
        ("rules", "/ui/rules"),
        ("rule", "/ui/rules/report"),
        ("trigger", "/ui/triggers/hourly"),
        ("stats", "/ui/stats"),
        ("execution-completed", f"/ui/executions/{done['id']}"),
    ]:
        response = page.goto(server.url + path)
        assert response.status == 200, path
        shot(page, name)
        assert accessibility_violations(page) == [], path


def test_an_invalid_run_shows_its_error_next_to_the_field(
    page: Any, server: Server, project: Any
) -> None:
    _, token = project
    sign_in(page, server, token, "/ui/actions/core.sleep")
    page.get_by_label("seconds").fill("-1")
    page.get_by_role("button", name="Run core.sleep").click()
    error = page.locator("#p-seconds-error")
    assert "minimum" in error.inner_text()
    assert page.get_by_label("seconds").get_attribute("aria-invalid") == "true"
    shot(page, "action-invalid")
    page.get_by_label("seconds").fill("0.2")
    page.get_by_role("button", name="Run core.sleep").click()
    page.wait_for_url(re.compile(r".*/ui/executions/\d+$"))
    page.wait_for_selector("#status.s-completed", timeout=30_000)


def test_the_pages_work_under_their_own_security_policy(
    browser: Any, server: Server, project: Any
) -> None:
    """The other tests lift the pages' policy for Playwright's own scripts: here it holds,
    and the live list still updates, with nothing refused."""
    api, token = project
    context = browser.new_context()
    page = context.new_page()
    refused: list[str] = []
    page.on(
        "console",
        lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
    )
    sign_in(page, server, token)
    new = submit(api, "core.echo", {"message": "policy"})
    page.locator(f'#rows tr[data-id="{new["id"]}"] .s-completed').wait_for()
    page.goto(f"{server.url}/ui/executions/{new['id']}")
    page.locator("#status.s-completed").wait_for()
    page.goto(f"{server.url}/ui/stats")
    page.locator("svg.chart").first.wait_for()
    context.close()
    assert refused == []
