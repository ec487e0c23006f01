"""Wake-ups between processes that share one database: PostgreSQL's NOTIFY, and on
SQLite a datagram per commit to every other process's socket beside the file. Two
Database objects here stand for two processes (each has its own signals)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

from execd.store.database import Database, events_written
from execd.store.signals import EVENTS, JOBS

Run = Callable[[Callable[[Database], Awaitable[Any]]], Any]


async def _woken(event: asyncio.Event) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), 10)
    return event.is_set()


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_commit_wakes_the_workers_of_another_process(with_db: Run, database_url: str) -> None:
    async def scenario(db: Database) -> None:
        other = Database(database_url)
        listening = asyncio.create_task(other.listen())
        jobs = other.signals.subscribe(JOBS)
        try:
            await asyncio.sleep(0.3)  # it is listening (and fired once on connecting)
            jobs.clear()

            def submit(conn: Connection) -> None:
                conn.execute(text("SELECT 1"))
                db.notify_jobs(conn)

            await db.write(submit)
            assert await _woken(jobs)
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
            await other.dispose()

    with_db(scenario)


def test_sqlite_wakes_go_through_private_sockets_and_clean_up(tmp_path: Path) -> None:
    path = tmp_path / "execd.db"
    sockets = Path(f"{path}-signals")

    def bound() -> list[str]:
        found = os.listdir(sockets) if os.path.isdir(sockets) else []
        return [name for name in found if name.endswith(".sock")]

    async def scenario() -> None:
        first, second = Database(f"sqlite:///{path}"), Database(f"sqlite:///{path}")
        listening = [asyncio.create_task(db.listen()) for db in (first, second)]
        try:
            await until(lambda: len(bound()) == 2, "both to listen")
            assert stat.S_IMODE(os.stat(sockets).st_mode) == 0o700
            events = second.signals.subscribe(EVENTS)
            events.clear()
            await first.write(events_written)  # as a write to the event log does
            assert await _woken(events)  # live streams of the other process wake too
            # A process that died without cleaning up leaves a socket nobody reads.
            listening[1].cancel()
            await asyncio.gather(listening[1], return_exceptions=True)
            stale = sockets / f"{os.getpid() + 10**6}-dead.sock"
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as gone:
                gone.bind(str(stale))
            await first.write(first.notify_jobs)
            assert stale.name not in bound()  # removed by the first to find it dead
            assert len(bound()) == 1  # the first's own; the second's went when it stopped
        finally:
            for task in listening:
                task.cancel()
            await asyncio.gather(*listening, return_exceptions=True)
            await first.dispose()
            await second.dispose()
        assert bound() == []

    asyncio.run(scenario())
