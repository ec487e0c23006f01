"""The dashboard's sign-in and sign-out pages, and the choice of the project shown."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from execd.api.dashboard.pages import render
from execd.api.dashboard.session import (
    COOKIE,
    PREFIX,
    SIGN_IN_COOKIE,
    Posted,
    SignedIn,
    check_sign_in_nonce,
    clear_cookie,
    new_sign_in_nonce,
    read_form,
    runtime_of,
    set_cookie,
)
from execd.api.limits import RateLimits
from execd.domain.errors import ExecdError

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/sign-in")
async def sign_in_form(request: Request, next: str = "") -> HTMLResponse:
    return _sign_in_page(request, _local(next), None, 200)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await read_form(request)
    check_sign_in_nonce(request, form)
    runtime = runtime_of(request)
    target = _local(form.get("next", ""))
    token = form.get("token", "")
    limits: RateLimits = request.app.state.rate_limits
    await limits.admit(request, token)
    try:
        session_id = await runtime.accounts.sign_in(token, _lifetime(request))
    except ExecdError:
        await limits.failed(request, token)
        return _sign_in_page(request, target, "That token is not valid, or no longer.", 401)
    response = RedirectResponse(target, status_code=303)
    set_cookie(request, response, COOKIE, session_id, _lifetime(request))
    clear_cookie(request, response, SIGN_IN_COOKIE)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, signed: SignedIn, form: Posted) -> Response:
    await runtime_of(request).accounts.sign_out(signed.session_id)
    response = RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
    clear_cookie(request, response, COOKIE)
    return response


@router.post("/project")
async def show_project(request: Request, signed: SignedIn, form: Posted) -> Response:
    runtime = runtime_of(request)
    await runtime.accounts.show_project(signed.session_id, signed.session, form.get("project", ""))
    return RedirectResponse(f"{PREFIX}/executions", status_code=303)


def _sign_in_page(request: Request, target: str, error: str | None, status: int) -> HTMLResponse:
    nonce = new_sign_in_nonce()
    response = render(
        request, "sign_in.html", {"next": target, "nonce": nonce, "error": error}, status
    )
    set_cookie(request, response, SIGN_IN_COOKIE, nonce, 3600)
    return response


def _lifetime(request: Request) -> float:
    return runtime_of(request).settings.dashboard_session_hours * 3600


def _local(target: str) -> str:
    """Where to go after signing in: a dashboard path only, never another site."""
    if target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{PREFIX}/executions"
