"""HTTP requests via httpx, inside the worker (no subprocess). Each connection, redirect
hops included, goes only where the fetch allow list lets it (execd.fetching)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from execd import fetching
from execd.domain.executions import Outcome
from execd.domain.sandbox import SandboxOptions
from execd.domain.states import Status
from execd.runners.base import RunContext

BODY_LIMIT = 256 * 1024
NO_NETWORK = 'refused: the action says "network": false, and an http request needs the network'
NETWORK_OFF = "refused: no action has a network on this worker (EXECD_SANDBOX_NETWORK=none)"


class HttpRunner:
    def __init__(self, allow: fetching.AllowList) -> None:
        self.allow = allow
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = fetching.client(self.allow, follow_redirects=True)
        return self._client

    async def run(self, ctx: RunContext) -> Outcome:
        if not SandboxOptions.from_json(ctx.execution.sandbox).network:
            return Outcome(Status.FAILED, result={"error": NO_NETWORK}, error=NO_NETWORK)
        if not ctx.sandbox.network:
            return Outcome(Status.FAILED, result={"error": NETWORK_OFF}, error=NETWORK_OFF)
        params = ctx.execution.parameters
        url = ctx.execution.entry_point or params["url"]
        request: dict[str, Any] = {
            "method": str(params.get("method", "GET")).upper(),
            "url": url,
            "headers": params.get("headers") or {},
            "params": params.get("params") or {},
            "timeout": float(params.get("timeout", 30)),
        }
        if "json" in params:
            request["json"] = params["json"]
        elif "body" in params:
            request["content"] = str(params["body"])
        try:
            # Streamed, and read no further than the limit: a huge (or endless, or
            # compressed-to-explode) response costs the worker at most BODY_LIMIT bytes.
            async with self.client.stream(**request) as response:
                content, truncated = await _read_capped(response)
        except fetching.FetchRefused as exc:
            return Outcome(Status.FAILED, result={"error": str(exc)}, error=str(exc))
        except httpx.HTTPError as exc:
            return Outcome(Status.FAILED, result={"error": str(exc)}, error=f"HTTP error: {exc}")
        result: dict[str, Any] = {
            "status_code": response.status_code,
            "headers": dict(response.headers),
            "body": _body(response, content, truncated),
        }
        if truncated:
            result["truncated"] = True
        if response.is_error:
            return Outcome(Status.FAILED, result=result, error=f"HTTP {response.status_code}")
        return Outcome(Status.COMPLETED, result=result)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


async def _read_capped(response: httpx.Response) -> tuple[bytes, bool]:
    content = bytearray()
    async for chunk in response.aiter_bytes():
        content += chunk
        if len(content) > BODY_LIMIT:
            return bytes(content[:BODY_LIMIT]), True
    return bytes(content), False


def _body(response: httpx.Response, content: bytes, truncated: bool) -> Any:
    if not truncated and "json" in response.headers.get("content-type", ""):
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass
    return content.decode(response.encoding or "utf-8", errors="replace")
