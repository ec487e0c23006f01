"""The app as `execd serve` builds it, served in the test's own process: requests go
through ASGI to an event loop in a thread of its own, with no socket and no process to
start. For tests of what the API answers, where a real server adds nothing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx

from execd.api.app import create_app
from execd.config import Settings
from execd.runtime import Runtime
from tests.support import ADMIN_TOKEN, FAST

T = TypeVar("T")


class AppTransport(httpx.BaseTransport):
    """Blocking requests to an app served by an event loop in another thread."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.asgi = httpx.ASGITransport(app)
        self.loop = loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def send() -> httpx.Response:
            answer = await self.asgi.handle_async_request(request)
            content = await answer.aread()
            return httpx.Response(answer.status_code, headers=answer.headers, content=content)

        return asyncio.run_coroutine_threadsafe(send(), self.loop).result()


class InProcessServer:
    """A started runtime and its app, with `workers` worker loops in the same event loop
    (none by default: what is submitted stays queued). `settings` are Settings fields,
    over the quick loops the process tests use (tests/support.py FAST)."""

    def __init__(self, database_url: str, root: Path, *, workers: int = 0, **settings: Any):
        fast = {name.removeprefix("EXECD_").lower(): value for name, value in FAST.items()}
        self.settings = Settings(
            **{
                **fast,
                "database_url": database_url,
                "data_dir": root / "data",
                "admin_token": ADMIN_TOKEN,
                **settings,
            }
        )
        self.runtime = Runtime(self.settings)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.clients: list[httpx.Client] = []
        try:
            self.run(self.runtime.start(workers=workers))
        except BaseException:
            self._stop_loop()
            raise
        self.transport = AppTransport(create_app(self.runtime, workers=workers), self.loop)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """`work` run on the app's event loop, from the test's thread."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()

    def client(self, token: str = ADMIN_TOKEN) -> httpx.Client:
        client = httpx.Client(
            transport=self.transport,
            base_url="http://127.0.0.1:8080",
            headers={"Authorization": f"Bearer {token}"},
        )
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()
        try:
            self.run(self.runtime.stop())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()
