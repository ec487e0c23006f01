"""How long /api/v1/executions/stats analytics take on a large execution table.

    python bench/analytics.py --backend sqlite -n 1000000
    python bench/analytics.py --backend postgresql -n 1000000

Fills a fresh database (migrated like any other) with N ended executions of one
project: 20 actions, over 30 days, 5 % failed, durations 0.1-60 s. Then times the
hourly rollups' first computation (what `execd serve` does as hours end; here all
720 hours at once), the document's plain counts, and the analytics the API answers:
by action, by hour, and both, over the last 24 hours and over all 30 days.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Connection, create_engine, func, insert, select

from execd.domain.executions import ExecutionFilter
from execd.store import analytics
from execd.store.database import Database, sync_url
from execd.store.executions import _conditions
from execd.store.migrate import upgrade
from execd.store.schema import executions, projects, tenants

PG_ADMIN = os.environ.get("EXECD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
DAY = 86400.0


def fresh_database(backend: str) -> tuple[str, str | None]:
    if backend == "sqlite":
        return f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}", None
    name = "execd_bench_" + uuid.uuid4().hex[:8]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name, name


def fill(url: str, n: int, now: float) -> str:
    engine = create_engine(sync_url(url))
    tenant, project = str(uuid.uuid4()), str(uuid.uuid4())
    rng = random.Random(7)
    with engine.begin() as conn:
        conn.execute(insert(tenants).values(id=tenant, name="bench", created=now))
        conn.execute(
            insert(projects).values(id=project, tenant_id=tenant, name="bench", created=now)
        )
    batch = 10_000
    for start in range(0, n, batch):
        rows = []
        for _ in range(min(batch, n - start)):
            ended = now - rng.random() * 30 * DAY
            duration = rng.uniform(0.1, 60)
            failed = rng.random() < 0.05
            rows.append(
                {
                    "uuid": str(uuid.uuid4()),
                    "tenant_id": tenant,
                    "project_id": project,
                    "action_ref": f"bench.action{rng.randrange(20)}",
                    "pack": "bench",
                    "runner": "local",
                    "entry_point": "noop",
                    "parameters": {},
                    "status": "failed" if failed else "completed",
                    "priority": 1,
                    "attempt": 1,
                    "max_attempts": 1,
                    "fence": 1,
                    "created": ended - duration - 1,
                    "updated": ended,
                    "started": ended - duration,
                    "ended": ended,
                }
            )
        with engine.begin() as conn:
            conn.execute(insert(executions), rows)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE executions")
        else:
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return project


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
                project = conn.execute(select(projects.c.id)).scalar_one()
                analytics.rebuild(conn)
        else:
            project = fill(url, args.n, now)
            took = time.perf_counter() - began
            print(f"{args.backend}: {args.n} executions written in {took:.0f} s")
        asyncio.run(measure(url, project, now, args.repeat))
    finally:
        if pg_name:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
