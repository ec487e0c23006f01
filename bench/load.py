"""Many clients at once, mixing submissions, reads and lists, for a fixed time.

    python bench/load.py --spawn sqlite                 # 64 clients, 60 s, a fresh server
    python bench/load.py --spawn postgresql -c 64 -d 60
    python bench/load.py --url http://127.0.0.1:8080 --token $ADMIN_TOKEN

Each client, on its own keep-alive connection and in a fresh project shared by all,
loops: it picks an operation by weight (half submissions of `core.noop`, a quarter
reads of one execution the clients submitted, a quarter lists: the v1 default page
with its total, a page filtered by status, the next page by cursor, and the counts),
sends it and waits for the answer. Reported per operation and in all: requests, requests per second,
p50/p99/max latency, and errors (any answer that is not 2xx, or a broken connection).
The server keeps running the submitted executions meanwhile, so reads and lists
compete with the workers for the database, as they would in production.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from typing import Any

import httpx

from throughput import RawHttp, percentile, project_token, spawned_server

MIX = {"submit": 50, "get": 25, "list": 10, "list_status": 5, "list_cursor": 5, "stats": 5}


async def client(
    url: str, token: str, mix: dict[str, int], until: float, seed: int, shared: list[int]
) -> dict[str, list[float] | int]:
    rng = random.Random(seed)
    names, weights = list(mix), list(mix.values())
    timings: dict[str, list[float] | int] = {name: [] for name in names}
    timings["errors"] = 0
    cursor: str | None = None
    async with RawHttp(url, token) as http:
        while time.monotonic() < until:
            name = rng.choices(names, weights)[0]
            if name == "get" and not shared:
                name = "submit"
            started = time.perf_counter()
            try:
                if name == "submit":
                    status, body = await http.request(
                        "POST", "/api/v1/executions/execute", {"action_ref": "core.noop"}
                    )
                    if status == 201:
                        shared.append(body["data"]["id"])
                elif name == "get":
                    execution_id = shared[rng.randrange(len(shared))]
                    status, _ = await http.request("GET", f"/api/v1/executions/{execution_id}")
                elif name == "list":  # the default page, with its total
                    status, _ = await http.request("GET", "/api/v1/executions")
                elif name == "list_status":
                    status, _ = await http.request(
                        "GET", "/api/v1/executions?status=completed&per_page=50"
                    )
                elif name == "list_cursor":  # keyset paging, page after page
                    path = f"/api/v1/executions?per_page=50&cursor={cursor or ''}"
                    status, body = await http.request("GET", path)
                    if status == 200:
                        cursor = body["pagination"]["next_cursor"]
                else:
                    status, _ = await http.request("GET", "/api/v1/executions/stats")
            except (OSError, asyncio.IncompleteReadError, json.JSONDecodeError):
                timings["errors"] = int(timings["errors"]) + 1  # type: ignore[call-overload]
                await asyncio.sleep(0.1)
                break
            elapsed = (time.perf_counter() - started) * 1000
            if not 200 <= status < 300:
                timings["errors"] = int(timings["errors"]) + 1  # type: ignore[call-overload]
            else:
                timing = timings[name]
                assert isinstance(timing, list)
                timing.append(elapsed)
    return timings


def summary(values: list[float], seconds: float) -> dict[str, Any]:
    if not values:
        return {"requests": 0}
    return {
        "requests": len(values),
        "per_s": round(len(values) / seconds, 1),
        "p50_ms": round(percentile(values, 50), 1),
        "p99_ms": round(percentile(values, 99), 1),
        "max_ms": round(max(values), 1),
    }


async def run(url: str, admin_token: str, clients: int, seconds: float) -> dict[str, Any]:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=60
    ) as admin:
        token = await project_token(admin)
    shared: list[int] = []
    started = time.monotonic()
    until = started + seconds
    results = await asyncio.gather(
        *(client(url, token, MIX, until, seed, shared) for seed in range(clients))
    )
    elapsed = time.monotonic() - started
    every: list[float] = []
    per_operation = {}
    for name in MIX:
        values = [v for r in results for v in r[name]]  # type: ignore[union-attr]
        every += values
        per_operation[name] = summary(values, elapsed)
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "errors": sum(int(r["errors"]) for r in results),  # type: ignore[call-overload]
        "all": summary(every, elapsed),
        "operations": per_operation,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url")
    parser.add_argument("--token")
    parser.add_argument("--spawn", choices=["sqlite", "postgresql"])
    parser.add_argument("-c", "--clients", type=int, default=64)
    parser.add_argument("-d", "--seconds", type=float, default=60.0)
    parser.add_argument("--server-env", action="append", default=[], help="KEY=VALUE")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.server_env)
    if args.spawn:
        with spawned_server(args.spawn, extra) as (url, token):
            result = asyncio.run(run(url, token, args.clients, args.seconds))
        result["backend"] = args.spawn
    elif args.url and args.token:
        result = asyncio.run(run(args.url, args.token, args.clients, args.seconds))
    else:
        parser.error("give --spawn, or --url and --token")
    result["server_env"] = extra
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
