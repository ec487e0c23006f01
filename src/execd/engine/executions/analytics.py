"""Analytics: what ended in a window, per action and/or per time bucket; and sealing
the rollups of the hours that are over."""

from __future__ import annotations

import asyncio
import time

import structlog

from execd.domain.access import Principal
from execd.domain.analytics import BUCKETS, MAX_BUCKETS, Aggregate
from execd.domain.errors import InvalidInput
from execd.engine.executions.base import ExecutionsBase

log = structlog.get_logger(__name__)


class Analytics(ExecutionsBase):
    async def analytics(
        self,
        caller: Principal,
        since: float | None,
        until: float | None,
        *,
        by_action: bool,
        bucket: str | None,
        durations: bool = True,
    ) -> tuple[float, float, list[Aggregate]]:
        """What ended in [since, until) (default: the last 24 hours), per action and/or
        per bucket: the window and its groups (without `durations`: counts only, no
        run-time percentiles)."""
        until = until if until is not None else time.time()
        since = since if since is not None else until - 86400
        if since >= until:
            raise InvalidInput("since must be before until")
        width = BUCKETS.get(bucket) if bucket is not None else None
        if bucket is not None and width is None:
            raise InvalidInput(f"bucket is one of {', '.join(BUCKETS)}")
        if width is not None and (until - since) / width > MAX_BUCKETS:
            raise InvalidInput(f"That window has more than {MAX_BUCKETS} {bucket}s")
        groups = await self.queries.analytics(
            caller.project_id,
            since,
            until,
            by_action=by_action,
            bucket_seconds=width,
            durations=durations,
        )
        return since, until, groups

    async def roll_up(self, *, rebuild: bool = False) -> int:
        """Seal the analytics rollups of every hour that is over; `rebuild` first
        forgets them all (after executions were changed by hand, say)."""
        if rebuild:
            await self.queries.rebuild_rollups()
        sealed = 0
        while hours := await self.queries.seal_rollups():
            sealed += hours
        return sealed

    async def roll_up_forever(self, interval: float) -> None:
        while True:
            try:
                await self.queries.seal_rollups()
            except Exception as exc:
                log.warning("rollup_error", error=str(exc))
            await asyncio.sleep(interval)
