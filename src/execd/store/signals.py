"""Wake-ups: a committed submission wakes idle workers; a cancel request wakes the
worker running the execution; events written to the log wake this process's live
streams (a local signal only: other processes' streams poll).

Within a process, waiters are woken directly after the commit. Across processes,
PostgreSQL LISTEN/NOTIFY carries the same signals (NOTIFY inside the transaction is
delivered on commit). Many signals while a waiter is busy collapse into one wake-up.
SQLite has no cross-process channel: other processes fall back to polling.
"""

from __future__ import annotations

import asyncio
import contextlib

import psycopg
import structlog

JOBS = "execd_jobs"
CANCEL = "execd_cancel"
CHANNELS = (JOBS, CANCEL)  # also sent between processes (PostgreSQL NOTIFY)
EVENTS = "execd_events"  # within this process only

log = structlog.get_logger(__name__)


class Signals:
    def __init__(self) -> None:
        self._waiters: dict[str, list[asyncio.Event]] = {c: [] for c in (*CHANNELS, EVENTS)}

    def subscribe(self, channel: str) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters[channel].append(event)
        return event

    def unsubscribe(self, channel: str, event: asyncio.Event) -> None:
        with contextlib.suppress(ValueError):
            self._waiters[channel].remove(event)

    def fire(self, channel: str) -> None:
        for event in self._waiters.get(channel, ()):
            event.set()

    def fire_all(self) -> None:
        for channel in CHANNELS:
            self.fire(channel)


async def listen_postgres(conninfo: str, signals: Signals, *, retry_seconds: float = 1.0) -> None:
    """Relay NOTIFYs to local waiters until cancelled; reconnects after errors."""
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                for channel in CHANNELS:
                    await conn.execute(f"LISTEN {channel}")
                # Anything sent while we were not listening would be lost: look once.
                signals.fire_all()
                async for notify in conn.notifies():
                    signals.fire(notify.channel)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("notify_listener_error", error=str(exc))
            await asyncio.sleep(retry_seconds)
