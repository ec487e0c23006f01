"""The dashboard: server-rendered pages for people, under /ui, beside the API dialects.

`install` adds its pages, its static files (scripts and styles served from the package:
nothing is loaded from another site) and `/`, which leads to it. Its errors are pages:
a request that is not signed in goes to the sign-in page, any other error is shown as
a page with the same status code as the API would answer.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from execd.api.dashboard import catalog, events, executions, queue, sign_in, stats
from execd.api.dashboard.pages import render
from execd.api.dashboard.session import PREFIX
from execd.api.errors import ErrorInfo, ErrorShape, default_body

STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="dashboard-static")
    app.include_router(sign_in.router)
    app.include_router(executions.router)
    app.include_router(queue.router)
    app.include_router(events.router)
    app.include_router(catalog.router)
    app.include_router(stats.router)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=303)


def _respond(request: Request, status: int, info: ErrorInfo) -> Response:
    if status == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET" or request.url.path.startswith(f"{PREFIX}/sign-in"):
            target = f"{PREFIX}/executions"
        return RedirectResponse(f"{PREFIX}/sign-in?next={quote(target)}", status_code=303)
    title = {404: "Not found", 403: "Not allowed", 409: "Not now"}.get(status, "Error")
    if status == 400:
        title = "Not understood"
    context = {"status": status, "title": title, "message": info.message}
    return render(request, "error.html", context, status)


ERRORS = ErrorShape(
    matches=lambda path: path == PREFIX or path.startswith(PREFIX + "/"),
    body=default_body,
    respond=_respond,
)
