"""How a dashboard page is rendered: the Jinja2 templates, with their filters, and the
headers every page is sent with. The pages are server-rendered; static/dashboard.js
only refreshes parts of a page when the event stream says something changed. Every
page calls the same services as the API dialects, as the signed-in token (in the
project the session shows), so it sees and may do exactly what that token may through
the API."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from execd.api.dashboard.session import PREFIX, SignedIn, runtime_of
from execd.domain.states import Status

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
STATUSES = [s.value for s in Status]
# The pages load their own scripts and styles only, and are never framed.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


def _time(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(int(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {seconds:02d} s"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


templates.env.filters.update(time=_time, seconds=_seconds, pretty=_pretty)
templates.env.globals.update(prefix=PREFIX, statuses=STATUSES)


def render(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    response: HTMLResponse = templates.TemplateResponse(
        request, name, context, status_code=status_code
    )
    response.headers.update(PAGE_HEADERS)
    return response


async def page(request: Request, signed: SignedIn, name: str, **context: Any) -> HTMLResponse:
    """A whole page: the layout needs who is signed in and the projects it may show."""
    caller = signed.caller
    projects = []
    if signed.session.token.can("admin"):
        runtime = runtime_of(request)
        projects = await runtime.accounts.list_projects(signed.session.token, None)
    return render(
        request,
        name,
        {
            "caller": caller,
            "csrf": signed.session.csrf,
            "projects": projects,
            "can_operate": caller.can("operator"),
            **context,
        },
    )
