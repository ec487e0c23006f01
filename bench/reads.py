"""Reads on a large history, one request at a time, against a real `execd serve`.

    python bench/seed.py --url sqlite:////tmp/big.db -n 1000000    # once
    python bench/reads.py --database sqlite:////tmp/big.db
    python bench/reads.py --database postgresql://postgres@127.0.0.1:5432/execd_bench_x

Starts `execd serve` with its defaults on a database bench/seed.py filled, makes an
operator token for its "bench" project, and sends each read R times in a row (after
two unmeasured ones; a slow read stops after 30 once it has taken `--seconds`), each
request waited for before the next: one execution, the v1
lists (filtered, one day of `created`, keyset pages deep in the history, a deep
numbered page), the v1 stats counts, the tenant API's history of the busy action
(its latest 1,000 executions), the flow history API's list and statistics, and the
tenant API's jobs list and system status. Then the server's resident memory, and
submission throughput (bench/throughput.py's run: 8 clients, `core.noop`) on this
database and on an empty one of the same backend. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select

from execd.store.database import sync_url
from execd.store.schema import actions, executions, projects
from throughput import RawHttp, percentile, run, spawned

DAY = 86400.0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmRSS")


def children(pid: int) -> list[int]:
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            lines = status.read_text().splitlines()
        except OSError:
            continue
        if any(line.split() == ["PPid:", str(pid)] for line in lines):
            found.append(int(status.parent.name))
    return found


def cursor(below: int) -> str:
    return base64.urlsafe_b64encode(f"below:{below}".encode()).decode().rstrip("=")


@dataclass(frozen=True)
class Seeded:
    """What bench/seed.py put in a database, as the read benchmarks need it."""

    tenant_id: str
    project_id: str
    low: int  # the project's smallest and largest execution ids
    high: int
    newest: float  # the latest `created`
    busy_action: str  # the uuid of bench.action0, the action with the most executions
    some_ids: list[int]  # ids of executions that exist, picked at random


def seeded(database: str, rng: random.Random) -> Seeded:
    engine = create_engine(sync_url(database))
    with engine.connect() as conn:
        project = conn.execute(
            select(projects.c.id, projects.c.tenant_id).where(projects.c.name == "bench")
        ).one()
        where = executions.c.project_id == project.id
        ids = executions.c.id
        low, high = conn.execute(select(func.min(ids), func.max(ids)).where(where)).one()
        newest = conn.execute(select(func.max(executions.c.created)).where(where)).scalar_one()
        busy = conn.execute(
            select(actions.c.uuid).where(
                actions.c.project_id == project.id, actions.c.ref == "bench.action0"
            )
        ).scalar_one()
        tried = [rng.randint(low, high) for _ in range(1000)]
        found = list(conn.execute(select(ids).where(where, ids.in_(tried))).scalars())
    engine.dispose()
    return Seeded(project.tenant_id, project.id, low, high, newest, busy, found)


def plan(database: str, rng: random.Random) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The seeded project and, per read, the paths to send (one is picked each time)."""
    facts = seeded(database, rng)
    low, high, newest, busy = facts.low, facts.high, facts.newest, facts.busy_action
    get_ids = [str(i) for i in facts.some_ids]
    span = high - low
    deep = [cursor(low + int(span * rng.uniform(0.02, 0.1))) for _ in range(50)]
    days = [newest - DAY * d for d in (3, 10, 20)]
    tenant = f"/api/{facts.tenant_id}/{facts.project_id}"
    paths = {
        "get_one": [f"/api/v1/executions/{i}" for i in get_ids],
        "list_default": ["/api/v1/executions"],
        "list_status_completed": ["/api/v1/executions?status=completed"],
        "list_status_failed": ["/api/v1/executions?status=failed&per_page=50"],
        "list_action": ["/api/v1/executions?action_ref=bench.action7&per_page=50"],
        "list_created_one_day": [
            "/api/v1/executions?created_after={}&created_before={}".format(
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(d - DAY)),
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(d)),
            )
            for d in days
        ],
        "list_keyset_deep": [f"/api/v1/executions?per_page=50&cursor={c}" for c in deep],
        "list_keyset_deep_status": [
            f"/api/v1/executions?status=failed&per_page=50&cursor={c}" for c in deep
        ],
        "list_page_25000": ["/api/v1/executions?page=25000&per_page=20"],
        "stats": ["/api/v1/executions/stats"],
        "stats_by_action_24h": ["/api/v1/executions/stats?group_by=action"],
        "tenant_action_history_1000": [f"{tenant}/actionexecution/action/{busy}"],
        "flow_history": ["/api/history/executions"],
        "flow_execution_stats": ["/api/history/execution-stats"],
        "tenant_jobs": [f"{tenant}/execution/jobs"],
        "tenant_system_status": [f"/api/{facts.tenant_id}/execution/system/status"],
    }
    return {"tenant_id": facts.tenant_id, "project_id": facts.project_id}, paths


async def operator_token(url: str, admin_token: str, project_id: str) -> str:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=60
    ) as admin:
        answer = await admin.post(
            "/api/v1/tokens", json={"name": "reads", "role": "operator", "project_id": project_id}
        )
        answer.raise_for_status()
        return str(answer.json()["data"]["token"])


Get = Callable[[str], Awaitable[tuple[int, int, str]]]  # path -> (status, bytes, text)


async def timed(
    paths: dict[str, list[str]], repeat: int, seconds: float, rng: random.Random, get: Get
) -> dict[str, Any]:
    """Each read `repeat` times in a row (after two unmeasured ones; a slow read stops
    after 30 once it has taken `seconds`): its p50 and p99 in milliseconds."""
    figures: dict[str, Any] = {}
    for name, choices in paths.items():
        times: list[float] = []
        size = 0
        budget = time.monotonic() + seconds
        for i in range(repeat + 2):
            if i >= 32 and time.monotonic() > budget:
                break
            path = rng.choice(choices)
            began = time.perf_counter()
            status, size, text = await get(path)
            elapsed = (time.perf_counter() - began) * 1000
            if status != 200:
                raise SystemExit(f"{path}: {status} {text[:300]}")
            if i >= 2:
                times.append(elapsed)
        figures[name] = {
            "p50_ms": round(percentile(times, 50), 1),
            "p99_ms": round(percentile(times, 99), 1),
            "n": len(times),
            "bytes": size,
        }
        line = figures[name]
        print(f"{name:<32} p50 {line['p50_ms']:7.1f} ms  p99 {line['p99_ms']:7.1f} ms")
    return figures


async def reads(
    url: str,
    token: str,
    paths: dict[str, list[str]],
    repeat: int,
    seconds: float,
    rng: random.Random,
) -> dict[str, Any]:
    async with RawHttp(url, token) as http:

        async def get(path: str) -> tuple[int, int, str]:
            status, body = await http.request("GET", path)
            text = json.dumps(body)
            return status, len(text), text

        return await timed(paths, repeat, seconds, rng, get)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="a database bench/seed.py filled")
    parser.add_argument("-r", "--repeat", type=int, default=200, help="requests per read")
    parser.add_argument(
        "--seconds", type=float, default=20, help="per read, after its first 30 requests"
    )
    parser.add_argument("-n", type=int, default=4000, help="executions per throughput run")
    parser.add_argument("--only", help="these reads only (names separated by commas)")
    parser.add_argument("--no-throughput", action="store_true")
    args = parser.parse_args()
    backend = "sqlite" if args.database.startswith("sqlite") else "postgresql"
    rng = random.Random(11)
    seeded, paths = plan(args.database, rng)
    if args.only:
        paths = {name: paths[name] for name in args.only.split(",")}
    result: dict[str, Any] = {"backend": backend}
    with spawned(backend, {}, database_url=args.database) as server:
        token = asyncio.run(operator_token(server.url, server.token, seeded["project_id"]))
        pid = server.process.pid
        result["rss_mib_start"] = rss_mib(pid)
        result["reads"] = asyncio.run(
            reads(server.url, token, paths, args.repeat, args.seconds, rng)
        )
        result["rss_mib_after_reads"] = rss_mib(pid)
        result["worker_rss_mib"] = [rss_mib(child) for child in children(pid)]
        if not args.no_throughput:
            full = asyncio.run(run(server.url, server.token, args.n, 8, "core.noop"))
            result["throughput_full"] = full["end_to_end_jobs_per_s"]
            result["rss_mib_end"] = rss_mib(pid)
    if not args.no_throughput:
        with spawned(backend, {}) as server:
            empty = asyncio.run(run(server.url, server.token, args.n, 8, "core.noop"))
        result["throughput_empty"] = empty["end_to_end_jobs_per_s"]
        result["throughput_ratio"] = round(
            result["throughput_full"] / result["throughput_empty"], 3
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
