"""Dependencies shared by the dialects: the runtime and the authenticated caller."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Annotated, Any
from urllib.parse import urlsplit

import orjson
from fastapi import Depends, Header, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.convertors import IntegerConvertor, register_url_convertor
from starlette.requests import HTTPConnection

from execd.api.limits import RateLimits
from execd.domain import jsonsafe
from execd.domain.access import Principal
from execd.domain.errors import InvalidInput, Unauthorized
from execd.runtime import Runtime

# A JSON body can only hold what the store cannot keep if it has an escaped NUL or
# surrogate, a number of 19 digits or more, an exponent of 3 digits (1e400 is parsed as
# infinity), NaN or Infinity (which Python's parser accepts), or many brackets; only
# then is it parsed a second time to look closer.
_SUSPECT_BODY = re.compile(rb"\\u0000|\\u[dD][89a-fA-F]|\d{19,}|[eE][-+]?\d{3,}|NaN|Infinity")


class RowId(IntegerConvertor):
    """`{name:id}` in a route: a row id, 1 to 19 digits. A longer number matches no
    route (404) instead of reaching int(), which refuses numbers of over 4,300 digits."""

    regex = "[0-9]{1,19}"


register_url_convertor("id", RowId())


async def get_runtime(request: HTTPConnection) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def authenticated(connection: HTTPConnection, authorization: str | None) -> Principal:
    """The caller of `Authorization: Bearer <token>`, within the rate limits: refused
    while the client's address has failed too often, counted against its token. No
    header at all: the anonymous caller where EXECD_ANONYMOUS_ROLE is on (counted
    against the client's address), else 401."""
    runtime: Runtime = connection.app.state.runtime
    limits: RateLimits = connection.app.state.rate_limits
    if authorization is None and runtime.settings.anonymous:
        refused = _not_anonymous(connection)
        if refused is not None:
            raise Unauthorized(
                "Missing Authorization header (expected 'Bearer <token>'; a request "
                f"without one is let in only {refused})"
            )
    await limits.admit(connection, authorization)
    try:
        caller = await runtime.accounts.authenticate(authorization)
    except Unauthorized:
        await limits.failed(connection, authorization)
        raise
    await limits.count(connection, caller)
    connection.state.caller = caller  # for the access log
    return caller


FORWARDED = ("forwarded", "x-forwarded-for", "x-real-ip")


def _not_anonymous(connection: HTTPConnection) -> str | None:
    """Why a request without credentials may not act anonymously, or None when it
    may: it must come from this machine, straight (no proxy in between), be addressed
    to this server by its own name, and not be sent for another site's page."""
    client = connection.client.host if connection.client else ""
    try:
        local = ipaddress.ip_address(client).is_loopback
    except ValueError:
        local = False
    if not local or any(h in connection.headers for h in FORWARDED):
        return "from this machine, not through a proxy"
    if not _own_host(connection):
        return "when addressed to this server's own host name"
    if _from_another_site(connection):
        return "when no page of another site sent it"
    return None


def _from_another_site(connection: HTTPConnection) -> bool:
    """Whether a browser sent the request for a page of another origin: what it says
    in Sec-Fetch-Site (every current browser), or an Origin that is not this server's.
    Such a page must not act anonymously here (a link, an image or a form POST to
    127.0.0.1 would run actions otherwise); curl and scripts send neither header."""
    site = connection.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    origin = connection.headers.get("origin")
    if origin is None:
        return False
    return urlsplit(origin).netloc.lower() != connection.headers.get("host", "").lower()


def _own_host(connection: HTTPConnection) -> bool:
    """Whether the Host header names this server: localhost, a loopback address, the
    bind address (EXECD_HOST) or the host of EXECD_PUBLIC_URL. A web page that rebinds
    a name of its own to 127.0.0.1 (DNS rebinding) sends that name, and so never gets
    anonymous access."""
    settings = connection.app.state.runtime.settings
    name = ""
    try:
        name = urlsplit("//" + connection.headers.get("host", "")).hostname or ""
        if ipaddress.ip_address(name).is_loopback:
            return True
    except ValueError:  # a name, or nothing readable
        pass
    own = {"localhost", urlsplit(settings.public_url or "").hostname}
    if settings.host not in ("", "0.0.0.0", "::"):  # a wildcard bind names no host
        own.add(settings.host.lower().strip("[]"))
    return name in own


# For the OpenAPI document only (its security scheme: Swagger UI's Authorize button):
# the header itself is read as it came, so that a malformed one is named as such.
BEARER = HTTPBearer(auto_error=False, description="An execd API token")
Documented = Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]


async def get_caller(
    request: HTTPConnection,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    _: Documented = None,
) -> Principal:
    return await authenticated(request, authorization)


Caller = Annotated[Principal, Depends(get_caller)]


async def get_stream_caller(
    request: HTTPConnection,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    token: Annotated[str | None, Query(include_in_schema=False, max_length=500)] = None,
    _: Documented = None,
) -> Principal:
    """Streams also take the token as `?token=`: browsers' EventSource and WebSocket
    cannot send an Authorization header."""
    if authorization is None and token is not None:  # an empty one is a wrong one
        authorization = f"Bearer {token}"
    return await authenticated(request, authorization)


StreamCaller = Annotated[Principal, Depends(get_stream_caller)]


def public_link(request: HTTPConnection, route: str, **params: str) -> str:
    """An absolute link to one of execd's routes: the public URL of the settings
    (EXECD_PUBLIC_URL) and the route's path, never the Host header a client sent."""
    runtime: Runtime = request.app.state.runtime
    return runtime.settings.public_base + str(request.app.url_path_for(route, **params))


def _fast_loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


async def screen_request(request: HTTPConnection) -> None:
    """Refuse, in the dialect's error shape, input that neither database can store."""
    if jsonsafe.NUL in request.url.path:
        raise InvalidInput("The path must not contain NUL characters")
    for name, value in request.query_params.multi_items():
        if jsonsafe.NUL in name or jsonsafe.NUL in value:
            raise InvalidInput(f"Query parameter '{name}' must not contain NUL characters")
    if not isinstance(request, Request) or request.method in ("GET", "HEAD", "OPTIONS"):
        return  # a WebSocket has no body
    body = await request.body()
    deep = body.count(b"[") + body.count(b"{") > jsonsafe.MAX_DEPTH
    suspect = _SUSPECT_BODY.search(body) is not None
    if not deep and not suspect:
        return
    try:
        # Without the suspect spellings orjson reads a body as json does (and ten times
        # faster: a batch of a few hundred executions is "deep" by its brackets). What
        # it refuses (nesting past 1,024 levels, say) json reads, or refuses, again.
        value = json.loads(body) if suspect else _fast_loads(body)
    except (ValueError, RecursionError):
        return  # not JSON: the route's own validation answers
    if problem := jsonsafe.problem(value, "the request body"):
        raise InvalidInput(problem[0].upper() + problem[1:])
