"""/docs (Swagger UI) and /redoc, served with their scripts from the package: they work
with no internet access. The files are vendored from npm at pinned versions
(scripts/vendor.sh) under the dashboard's static files."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse

VENDOR = "/ui/static/vendor"
FAVICON = "/ui/static/favicon.svg"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"

router = APIRouter(include_in_schema=False)

# Nothing from elsewhere: ReDoc's sidebar shows a logo from its makers' site, which the
# browser is told not to fetch. Swagger UI starts from an inline script.
POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'none'"
)


def _local(request: Request, build: Callable[..., HTMLResponse], **assets: Any) -> HTMLResponse:
    page = build(openapi_url=request.app.openapi_url, title=f"{request.app.title} API", **assets)
    page.headers["Content-Security-Policy"] = POLICY
    return page


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    js, css = f"{VENDOR}/swagger-ui/swagger-ui-bundle.js", f"{VENDOR}/swagger-ui/swagger-ui.css"
    return _local(
        request, get_swagger_ui_html, swagger_js_url=js, swagger_css_url=css,
        swagger_favicon_url=FAVICON, oauth2_redirect_url=OAUTH2_REDIRECT,
    )  # fmt: skip


@router.get(OAUTH2_REDIRECT)
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    js = f"{VENDOR}/redoc/redoc.standalone.js"
    return _local(
        request, get_redoc_html, redoc_js_url=js, redoc_favicon_url=FAVICON,
        with_google_fonts=False,
    )  # fmt: skip
