"""How long /api/v1/executions/stats analytics take on a large execution table.

    python bench/analytics.py --backend sqlite -n 1000000
    python bench/analytics.py --backend postgresql -n 1000000

Fills a fresh database (migrated like any other) with bench/seed.py's history of N
executions over 30 days, and times, on its "bench" project, the hourly rollups' first
computation (what `execd serve` does as hours end; here all 720 hours at once, and
the days they cover whole), the
document's plain counts, and the analytics the API answers:
by action, by hour, and both, over the last 24 hours and over all 30 days.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, create_engine, func, select

from execd.domain.executions import ExecutionFilter
from execd.store import analytics
from execd.store.database import Database, sync_url
from execd.store.executions import _conditions
from execd.store.migrate import upgrade
from execd.store.schema import executions, projects
from seed import DAY, drop_database, fill, fresh_database


async def timed(db: Database, label: str, work: Callable[[Connection], Any], repeat: int) -> None:
    """Through the service's own database layer: its threads, its JSON decoding."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        await db.read(work)
        times.append(time.perf_counter() - began)
    print(f"{label:<38} median {statistics.median(times) * 1000:8.0f} ms  (of {repeat})")


async def measure(url: str, project: str, now: float, repeat: int) -> None:
    db = Database(url)
    began = time.perf_counter()
    hours = 0
    while sealed := await db.write(lambda conn: analytics.seal(conn, max_hours=24)):
        hours += sealed
    print(f"rollups of {hours} hours computed in {time.perf_counter() - began:.1f} s")
    counts = (
        select(executions.c.status, func.count())
        .where(*_conditions(project, ExecutionFilter()))
        .group_by(executions.c.status)
    )
    await timed(db, "plain counts (the document's body)", lambda c: c.execute(counts).all(), 3)
    for days in (1, 30):
        since = time.time() - days * DAY
        for label, by_action, bucket in (
            ("by action", True, None),
            ("by hour", False, 3600),
            ("by action and hour", True, 3600),
            ("by day", False, 86400),
        ):

            def work(
                conn: Connection, b: bool = by_action, w: int | None = bucket, s: float = since
            ) -> Any:
                return analytics.aggregate(
                    conn, project, s, time.time(), by_action=b, bucket_seconds=w
                )

            await timed(db, f"{label}, last {days} day(s)", work, repeat)
    await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reuse", metavar="URL", help="a database an earlier run filled")
    args = parser.parse_args()
    url, pg_name = (args.reuse, None) if args.reuse else fresh_database(args.backend)
    try:
        upgrade(url)
        now = time.time()
        began = time.perf_counter()
        if args.reuse:
            with create_engine(sync_url(url)).begin() as conn:
                project = conn.execute(
                    select(projects.c.id).where(projects.c.name == "bench")
                ).scalar_one()
                analytics.rebuild(conn)
        else:
            project = fill(url, args.n, now, seal=False).bench.id
            took = time.perf_counter() - began
            print(f"{args.backend}: {args.n} executions written in {took:.0f} s")
        asyncio.run(measure(url, project, now, args.repeat))
    finally:
        drop_database(pg_name)


if __name__ == "__main__":
    main()
