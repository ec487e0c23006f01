"""HTTP requests via httpx, inside the worker (no subprocess)."""

from __future__ import annotations

from typing import Any

import httpx

from execd.domain.executions import Outcome
from execd.domain.states import Status
from execd.runners.base import RunContext

BODY_LIMIT = 256 * 1024


class HttpRunner:
    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=True)
        return self._client

    async def run(self, ctx: RunContext) -> Outcome:
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
            response = await self.client.request(**request)
        except httpx.HTTPError as exc:
            return Outcome(Status.FAILED, result={"error": str(exc)}, error=f"HTTP error: {exc}")
        result = {
            "status_code": response.status_code,
            "headers": dict(response.headers),
            "body": _body(response),
        }
        if response.is_error:
            return Outcome(Status.FAILED, result=result, error=f"HTTP {response.status_code}")
        return Outcome(Status.COMPLETED, result=result)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def _body(response: httpx.Response) -> Any:
    content = response.content[:BODY_LIMIT]
    if "json" in response.headers.get("content-type", ""):
        try:
            return response.json()
        except ValueError:
            pass
    return content.decode(response.encoding or "utf-8", errors="replace")
