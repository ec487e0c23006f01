"""The audit trail of the API: an entry for every state-changing request (domain/audit.py).

A request that changes something carries its entry into the transaction of its first
durable write (`AuditLog.carried`, engine/audit.py), so the entry is stored exactly when the
change is. A request that wrote nothing (refused, or a change that was not needed) is
recorded once it has been answered, with its status and error. Not recorded: reads,
requests that sent no credentials and were refused for it (nobody to name; the access
log has them), and answers of a rate limit (a flood must not become writes). A request
without credentials that anonymous access let in (EXECD_ANONYMOUS_ROLE) is recorded
under the name "anonymous", without a token id."""

from __future__ import annotations

import time
from typing import Any

import orjson
import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from execd.api.access import route_of
from execd.domain.audit import AuditEntry
from execd.engine.audit import AuditLog

log = structlog.get_logger(__name__)

CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SIGN_IN = "/ui/sign-in"
_ERROR_BYTES = 4096  # of an error answer's body, to find its message


class AuditTrail:
    def __init__(self, app: ASGIApp, audit: AuditLog) -> None:
        self.app = app
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in CHANGES:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        entry = AuditEntry(
            at=time.time(),
            method=scope["method"],
            path=scope["path"],
            address=client[0] if client else None,
        )
        status = 500
        body = b""

        async def sending(message: Message) -> None:
            nonlocal status, body
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status >= 400:
                body = (body + message.get("body", b""))[:_ERROR_BYTES]
            await send(message)

        with self.audit.carried(entry, lambda e: _complete(e, scope)) as carried:
            try:
                await self.app(scope, receive, sending)
            finally:
                if not carried.written:
                    carried.claimed = True  # a task the request started carries it no more
        if not carried.written:
            await self._record(scope, entry, status, body)

    async def _record(self, scope: Scope, entry: AuditEntry, status: int, body: bytes) -> None:
        """A request that wrote nothing: recorded with how it was answered."""
        _complete(entry, scope)
        entry.status = status
        if status == 429 or (entry.token_name is None and not _sent_credentials(scope)):
            return  # nobody to name (an anonymous caller is named: EXECD_ANONYMOUS_ROLE)
        entry.outcome = "refused" if status >= 400 else "unchanged"
        entry.error = _message(body) if status >= 400 else None
        try:
            await self.audit.record(entry)
        except Exception as exc:  # the answer is sent: the entry is lost, loudly
            log.error("audit_entry_lost", route=entry.route, status=status, error=str(exc))


def _complete(entry: AuditEntry, scope: Scope) -> None:
    """What is known once the request has been routed and authenticated."""
    caller: Any = scope.get("state", {}).get("caller")
    if caller is not None:
        entry.token_id = caller.token_id
        entry.token_name = caller.name
        entry.role = caller.role
        entry.tenant_id = caller.tenant_id
        entry.project_id = caller.project_id
    route = scope.get("route")
    entry.route = route_of(scope)
    entry.objects.update(scope.get("path_params", {}))
    entry.status = getattr(route, "status_code", None) or 200


def _sent_credentials(scope: Scope) -> bool:
    """A token in a header, a session cookie, or a token in the sign-in form."""
    if scope["path"] == SIGN_IN:
        return True
    return any(
        name == b"authorization" or (name == b"cookie" and b"execd_session=" in value)
        for name, value in scope.get("headers", ())
    )


def _message(body: bytes) -> str | None:
    """The error message of a dialect's JSON error body (its `error` or `message`)."""
    try:
        found = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(found, dict):
        for key in ("error", "message"):
            if isinstance(found.get(key), str):
                return str(found[key])
    return None
