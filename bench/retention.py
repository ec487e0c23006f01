"""How long a retention sweep takes on a large history.

    python bench/retention.py --backend sqlite -n 200000
    python bench/retention.py --backend postgresql -n 200000

Fills a fresh database with bench/seed.py's history (N executions of 20 actions per
project over 30 days), then times, through the service's own classes, a dry run and a real sweep
of the policy "keep 15 days, and always the newest K of each action": about half the
history goes, in batches of 200.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from execd.domain.retention import Policy
from execd.domain.states import Status
from execd.engine.retention import Retention
from execd.store.artifacts import ArtifactStore
from execd.store.database import Database
from execd.store.migrate import upgrade
from execd.store.retention import RetentionStore
from seed import drop_database, fill, fresh_database


async def sweep(url: str, keep: int) -> None:
    db = Database(url)
    policy = Policy(days={Status.COMPLETED: 15, Status.FAILED: 15}, keep_per_action=keep)
    retention = Retention(
        RetentionStore(db), ArtifactStore(Path(tempfile.mkdtemp()) / "artifacts"), policy
    )
    try:
        start = time.perf_counter()
        would = await retention.sweep(dry_run=True)
        counted = time.perf_counter() - start
        print(f"dry run         {counted:8.2f} s   would delete {would.deleted}")
        start = time.perf_counter()
        done = await retention.sweep()
        took = time.perf_counter() - start
        print(
            f"sweep           {took:8.2f} s   deleted {done.deleted} in {done.batches} batches"
            f" ({took / max(done.batches, 1) * 1000:.0f} ms a batch)"
        )
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("-n", type=int, default=200_000)
    parser.add_argument("--keep", type=int, default=5, help="newest kept per action")
    args = parser.parse_args()
    url, pg_name = fresh_database(args.backend)
    try:
        upgrade(url)
        start = time.perf_counter()
        fill(url, args.n, time.time())
        print(f"filled {args.n} in {time.perf_counter() - start:.0f} s ({args.backend})")
        asyncio.run(sweep(url, args.keep))
    finally:
        drop_database(pg_name)


if __name__ == "__main__":
    main()
