"""The access log: a line per request, written when its answer has been sent, with
what an operator needs to follow traffic and never what would let anyone act with it
(no token, no query string: they may carry one)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog
from starlette.convertors import PathConvertor
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("execd.access")
Observe = Callable[[str, str, int, float], None]  # method, route, status, seconds


class AccessLog:
    """ASGI middleware: method, route template (`/api/v1/executions/{execution_id}`,
    so lines group by operation and carry no ids), status, duration, and the token's id
    and role once the request has been authenticated (without a token, EXECD_ANONYMOUS_ROLE:
    no id, and `caller="anonymous"`); each request is also counted in
    the metrics (`observe`), and logged unless `log_lines` is off."""

    def __init__(self, app: ASGIApp, observe: Observe, log_lines: bool = True) -> None:
        self.app = app
        self.observe = observe
        self.log_lines = log_lines

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # what the client gets if nothing is sent

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            seconds = time.perf_counter() - began
            route = route_of(scope)
            self.observe(scope["method"], route, status, seconds)
            if self.log_lines:
                caller: Any = scope.get("state", {}).get("caller")
                log.info(
                    "request",
                    method=scope["method"],
                    route=route,
                    status=status,
                    ms=round(seconds * 1000, 1),
                    token=caller.token_id if caller is not None else None,
                    role=caller.role if caller is not None else None,
                    # A caller without a token (EXECD_ANONYMOUS_ROLE) says so.
                    **({"caller": caller.name} if caller is not None and caller.anonymous else {}),
                )


def route_of(scope: Scope) -> str:
    """The template of the route that answered, prefix included: the matched route
    knows its own part (`/executions/{execution_id}`), the path it matched holds the
    routers' prefixes before it, static text or parameters of theirs (the tenant API's
    `/api/{tenantId}/{projectId}`: a segment that is such a parameter's value is named)."""
    route = scope.get("route")
    template = getattr(route, "path_format", None)
    if template is None:
        return "(no route)"
    params = scope.get("path_params", {})
    depth = template.count("/")
    for name, convertor in getattr(route, "param_convertors", {}).items():
        if isinstance(convertor, PathConvertor):  # one parameter, several segments
            depth += str(params.get(name, "")).count("/")
    own = set(getattr(route, "param_convertors", {}))
    prefixed = {str(value): name for name, value in params.items() if name not in own}
    parts = str(scope["path"]).split("/")
    prefix = [f"{{{prefixed[p]}}}" if p in prefixed else p for p in parts[: len(parts) - depth]]
    return "/".join(prefix) + str(template)
