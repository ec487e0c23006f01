"""What every group of operations builds on: the token's identity (`me`), the tenant
dialect's paths it scopes, and the helpers they all use to read and write the API."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

from execd.client.errors import ClientError
from execd.client.models import Me
from execd.client.protocol import Operation, Reply, Request, Sleep, operation

M = TypeVar("M")
V1 = "/api/v1"


class WaitTimeout(ClientError):
    """`wait()` gave up before the execution ended (the execution goes on)."""


def data_of(reply: Reply) -> Any:
    return reply.json()["data"]


def when(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def segment(value: str) -> str:
    """One path segment: a ref or id as the user gave it, never a path of its own."""
    quoted = quote(str(value), safe="")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


def poll(
    fetch: Callable[[], Operation[M]],
    finished: Callable[[M], bool],
    signature: Callable[[M], Any],
    on_change: Callable[[M], None] | None,
    timeout: float | None,
    interval: float,
    what: str,
) -> Operation[M]:
    """Fetch until `finished`, calling `on_change` when `signature` changes."""
    deadline = None if timeout is None else time.monotonic() + timeout
    seen: Any = object()
    pause = min(0.1, interval)
    while True:
        current = yield from fetch()
        if on_change is not None and signature(current) != seen:
            seen = signature(current)
            on_change(current)
        if finished(current):
            return current
        if deadline is not None and time.monotonic() >= deadline:
            raise WaitTimeout(f"{what} has not ended after {timeout:g} s")
        yield Sleep(pause)
        pause = min(interval, pause * 2)


class OperationsBase:
    """The client's target, and who its token is (asked once)."""

    url: str
    token: str | None

    def __init__(self) -> None:
        self._me: Me | None = None

    @operation
    def me(self) -> Operation[Me]:
        """The token's tenant, project, role and name."""
        if self._me is None:
            self._me = Me.model_validate(data_of((yield Request("GET", f"{V1}/me"))))
        return self._me

    def _scope(self) -> Operation[str]:
        me = yield from OperationsBase.me.build(self)
        return f"/api/{me.tenant_id}/{me.project_id}"
