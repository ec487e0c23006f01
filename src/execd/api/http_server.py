"""The HTTP server the API runs in (uvicorn), with the limits a public server needs:
a client that has not sent a request's headers within `header_timeout_seconds` of
connecting (or of starting the request) is disconnected; an idle kept-alive
connection is closed after 5 s (uvicorn's own timer); the body's deadline is the
app's (api/limits.py); forwarded addresses are believed only from trusted proxies."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from execd.config import Settings


class HeaderDeadline(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, which waits for headers as long as a client likes,
    with a deadline for them. Set `header_seconds` on a subclass (`guarded`)."""

    header_seconds = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.header_seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        """Headers not in yet: nothing of this request reached the app, so the
        connection is simply closed (a request in progress is never cut)."""
        self._deadline = None
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()


def guarded(header_seconds: float) -> type[HeaderDeadline]:
    return type("HeaderDeadline", (HeaderDeadline,), {"header_seconds": header_seconds})


def serve(application: Any, listener: socket.socket, settings: Settings) -> None:
    """Serve `application` on `listener` until SIGINT or SIGTERM."""
    trusted = ",".join(settings.trusted_proxies)
    config = uvicorn.Config(
        application,
        log_level="warning",
        access_log=False,
        lifespan="on",
        http=guarded(settings.header_timeout_seconds),
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        timeout_keep_alive=5,
    )
    uvicorn.Server(config).run(sockets=[listener])
