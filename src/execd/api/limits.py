"""What one client may ask of the API: how large a request body is, how long it may take
to arrive, and how many requests a token, or failed authentications an address, may
make in a window (docs/security.md, "Request limits")."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Protocol

import structlog
from limits import RateLimitItem, parse
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from execd.config import Settings
from execd.domain.access import Principal
from execd.domain.errors import ExecdError, TooLarge, TooManyRequests


class Errors(Protocol):
    """How an error is answered in the dialect of its request (api/errors.py)."""

    def of(self, request: Request, exc: ExecdError) -> Response: ...


log = structlog.get_logger(__name__)

OFF = ("", "off", "none", "0")  # a rate limit set to one of these is no limit
WEBHOOKS = "/api/v1/webhooks/"
FORMS = "/ui/"


@dataclass(frozen=True)
class BodyLimits:
    json: int
    webhook: int
    form: int

    def for_path(self, path: str) -> tuple[int, str]:
        """The most a request body to `path` may hold, and what such a body is called."""
        if path.startswith(WEBHOOKS):
            return self.webhook, "A webhook payload"
        if path.startswith(FORMS):
            return self.form, "A form"
        return self.json, "A request body"


class RequestLimits:
    """ASGI middleware: a body declared larger than its route's limit is answered 413
    at once, unread; one that turns out larger as it arrives (chunked, or longer than
    declared) is cut off there and answered 413; one that takes longer than
    `body_seconds` to arrive is answered 408. Rate-limit headers that a route's
    authentication set (`scope["state"]["rate_limit"]`) are added to its answer."""

    def __init__(
        self, app: ASGIApp, errors: Errors, bodies: BodyLimits, body_seconds: float
    ) -> None:
        self.app = app
        self.errors = errors
        self.bodies = bodies
        self.body_seconds = body_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, what = self.bodies.for_path(scope["path"])
        too_large = f"{what} has at most {limit} bytes"
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            request = Request(scope)
            response = self.errors.of(request, TooLarge(too_large, limit=limit))
            response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.body_seconds
        received = 0
        done = False

        async def limited() -> Message:
            nonlocal received, done
            if done:  # the body is in: what follows is a disconnect, whenever it comes
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(408, "The request body was not sent in time") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, too_large)
                done = not message.get("more_body", False)
            return message

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                rate = scope.get("state", {}).get("rate_limit")
                if rate:
                    message["headers"] = [
                        *message.get("headers", []),
                        *((k.lower().encode(), v.encode()) for k, v in rate.items()),
                    ]
            await send(message)

        await self.app(scope, limited, with_headers)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value[:20])
            except ValueError:
                return None
    return None


class RateLimits:
    """Requests per token, and failed authentications per client address, in a sliding
    window (the current fixed window's count plus the previous one's, weighted by how
    much of it still overlaps: two counters a key, O(1) a request, where a moving
    window's log grows with the limit and costs more with each request), counted in
    `storage` (memory: this process alone; redis://: every process
    and node that names the same server). A storage that fails lets requests through,
    and says so in the log: a limit must not become an outage."""

    def __init__(
        self,
        per_token: str | None,
        failures: str | None,
        storage: str = "memory://",
        prefix: str = "execd",
    ) -> None:
        self.per_token = _item(per_token)
        self.failures = _item(failures)
        uri = storage if storage.startswith("async+") else f"async+{storage}"
        options = {} if uri.startswith("async+memory") else {"key_prefix": prefix}
        self.limiter = SlidingWindowCounterRateLimiter(storage_from_string(uri, **options))

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        return cls(
            settings.rate_limit,
            settings.auth_failure_limit,
            settings.rate_limit_storage,
            settings.rate_limit_prefix,
        )

    async def admit(self, connection: HTTPConnection, credentials: str | None) -> None:
        """Before credentials are checked: refused while the client's address is over
        its limit of failed authentications (even a right token: guessing must not pay)."""
        if self.failures is None or not credentials:
            return
        stats = await self._stats(self.failures, "failed", _address(connection))
        if stats is not None and stats[0] <= 0:
            raise TooManyRequests(
                "Too many failed authentications from this address: try again later",
                _headers(self.failures, *stats, retry=True),
            )

    async def failed(self, connection: HTTPConnection, credentials: str | None) -> None:
        """Credentials were sent and refused: one more against the client's address (a
        request that sent none is not a guess, and does not count)."""
        if self.failures is not None and credentials:
            await self._hit(self.failures, "failed", _address(connection))

    async def count(self, connection: HTTPConnection, caller: Principal) -> None:
        """A request of `caller`'s token (without one, anonymous: of the client's
        address): refused past the limit; its answer carries the limit headers either way."""
        if self.per_token is None:
            return
        if caller.token_id is None:
            key, who = ("anonymous", _address(connection)), "from this address without a token"
        else:
            key, who = ("token", str(caller.token_id)), "for this token"
        allowed = await self._hit(self.per_token, *key)
        stats = await self._stats(self.per_token, *key)
        if stats is None:
            return
        headers = _headers(self.per_token, *stats, retry=not allowed)
        if not allowed:
            raise TooManyRequests(f"Too many requests {who}: slow down", headers)
        connection.scope.setdefault("state", {})["rate_limit"] = headers

    async def _hit(self, item: RateLimitItem, *keys: str) -> bool:
        try:
            return await self.limiter.hit(item, *keys)
        except Exception as exc:
            log.warning("rate_limit_storage_failed", error=str(exc))
            return True

    async def _stats(self, item: RateLimitItem, *keys: str) -> tuple[int, float] | None:
        """What is left in the window, and when (epoch seconds) one more is allowed."""
        try:
            stats = await self.limiter.get_window_stats(item, *keys)
        except Exception as exc:
            log.warning("rate_limit_storage_failed", error=str(exc))
            return None
        return stats.remaining, stats.reset_time


def _address(connection: HTTPConnection) -> str:
    """The client's address (a trusted proxy's X-Forwarded-For, EXECD_TRUSTED_PROXIES)."""
    return connection.client.host if connection.client else "-"


def _item(text: str | None) -> RateLimitItem | None:
    return None if text is None or text.strip().lower() in OFF else parse(text)


def _headers(item: RateLimitItem, remaining: int, reset: float, *, retry: bool) -> dict[str, str]:
    """The rate-limit headers of the IETF draft (RateLimit-Limit, -Remaining, -Reset in
    seconds, -Policy as "<limit>;w=<window seconds>"), and Retry-After on a refusal."""
    wait = max(1, math.ceil(reset - time.time()))
    headers = {
        "RateLimit-Limit": str(item.amount),
        "RateLimit-Remaining": str(max(0, remaining)),
        "RateLimit-Reset": str(wait),
        "RateLimit-Policy": f"{item.amount};w={item.get_expiry()}",
    }
    if retry:
        headers["Retry-After"] = str(wait)
    return headers
