"""Browser tests: Debian's Chromium, driven by Playwright's Python package, against a
real `execd serve`. Nothing downloads a browser: without /usr/bin/chromium (or the
playwright package) these tests skip, except under CI=true, where they fail.

Screenshots of every page go to build/screenshots/ (not committed)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import ADMIN_TOKEN, Deployment, Server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
# As the machine's notes advise: no background connections to the outside, no sandbox
# (the tests run as root in CI).
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _missing() -> str | None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (make test installs it)"
    if not os.path.exists(CHROMIUM):
        return "Chromium is not installed: sudo apt-get install chromium"
    return None


# Module-scoped: while Playwright's sync API is open, its event loop counts as running
# in this thread, and every later test's asyncio.run() would be refused.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    missing = _missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests must run in CI: {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(sqlite_databases: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    url = sqlite_databases.new()
    deployment = Deployment(database_url=url, root=tmp_path_factory.mktemp("browser"))
    yield deployment.server(workers=1)
    deployment.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page; fails the test on a page error.
    The pages' Content-Security-Policy forbids eval, which Playwright's waiting for a
    condition in the page uses: it is lifted for the test's own scripts."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, accept_downloads=True, bypass_csp=True
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(20_000)
    yield page
    context.close()
    assert not errors, f"errors in the page's scripts: {errors}"


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Any, server: Server, token: str = ADMIN_TOKEN, path: str = "/ui/") -> None:
    page.goto(server.url + path)
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("h1")


def accessibility_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now."""
    page.evaluate(AXE.read_text())  # evaluated by the test, as the page's policy allows
    result: dict[str, Any] = page.evaluate("async () => await axe.run(document)")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
