"""Who is signed in to the dashboard, and the checks every form goes through.

The browser holds a random session id in an HttpOnly, SameSite=Strict cookie (Secure
over HTTPS); the token it signed in with never leaves the sign-in form. A form that
changes something carries the session's CSRF token and, when the browser sends an
Origin, must come from this server's own origin.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

from fastapi import Depends, Request, Response

from execd.domain.access import Principal
from execd.domain.errors import Forbidden, InvalidInput, Unauthorized
from execd.engine.accounts import Session
from execd.runtime import Runtime

PREFIX = "/ui"
COOKIE = "execd_session"
# Before sign-in: a random value in a cookie and in the form (a sign-in form posted
# from another site lacks it), so no other site can sign a browser in.
SIGN_IN_COOKIE = "execd_sign_in"


@dataclass(frozen=True)
class Signed:
    session_id: str
    session: Session

    @property
    def caller(self) -> Principal:
        return self.session.caller


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def signed_in(request: Request) -> Signed:
    """The session of the request's cookie (Unauthorized sends the browser to sign in)."""
    session_id = request.cookies.get(COOKIE)
    session = await runtime_of(request).accounts.session(session_id)
    assert session_id is not None
    request.state.caller = session.caller  # for the access log
    return Signed(session_id, session)


SignedIn = Annotated[Signed, Depends(signed_in)]


async def read_form(request: Request) -> dict[str, str]:
    """A URL-encoded form (what the dashboard's forms send), from this origin only."""
    origin = request.headers.get("origin")
    if origin is not None and origin not in own_origins(request):
        raise Forbidden("This form was sent from another site")
    body = await request.body()  # at most EXECD_MAX_FORM_BYTES (api/limits.py)
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=200))
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("The form could not be read") from None


async def posted(request: Request, signed: SignedIn) -> dict[str, str]:
    """A signed-in form: it must carry the session's CSRF token."""
    form = await read_form(request)
    if not hmac.compare_digest(form.get("csrf", ""), signed.session.csrf):
        raise Forbidden("This form has expired: reload the page and try again")
    return form


Posted = Annotated[dict[str, str], Depends(posted)]


def own_origins(request: Request) -> tuple[str, str]:
    """The origin the browser called (a form from it carries it), and the public URL's
    (behind a proxy that rewrites the Host header, only that one matches)."""
    called = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
    public = urlsplit(request.app.state.runtime.settings.public_base)
    return called, f"{public.scheme}://{public.netloc}"


def set_cookie(request: Request, response: Response, name: str, value: str, age: float) -> None:
    response.set_cookie(
        name,
        value,
        max_age=int(age),
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        name, path=PREFIX, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def new_sign_in_nonce() -> str:
    return secrets.token_urlsafe(24)


def check_sign_in_nonce(request: Request, form: dict[str, str]) -> None:
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    if not expected or not hmac.compare_digest(form.get("nonce", ""), expected):
        raise Unauthorized("The sign-in form has expired: try again")
