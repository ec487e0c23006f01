"""Enqueue-to-start latency of an idle server: one submission at a time.

    python bench/latency.py --spawn sqlite -n 200
    python bench/latency.py --spawn postgresql -n 200
    python bench/latency.py --url http://127.0.0.1:8080 --token $TOKEN

Each execution (core.noop by default) is submitted through
POST /api/v1/executions/execute once the one before it has ended, so the worker is
idle and waiting when it arrives. Reported: p50/p99/max of `started - created` (the
server's clock): the submission's commit, the wake-up signal, the claim and the
start. The client looks for the end only every 10 ms, so that its polling does not
load the server it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
from typing import Any

import httpx

from throughput import RawHttp, parse_ts, percentile, project_token, spawned_server

WARM_UP = 10


async def run(url: str, admin_token: str, n: int, action: str) -> dict[str, Any]:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=60
    ) as admin:
        token = await project_token(admin)
    starts: list[float] = []
    async with RawHttp(url, token) as http:
        for i in range(WARM_UP + n):
            status, body = await http.request(
                "POST", "/api/v1/executions/execute", {"action_ref": action}
            )
            if status != 201:
                raise SystemExit(f"submission answered {status}: {body}")
            path = f"/api/v1/executions/{body['data']['id']}"
            while True:
                await asyncio.sleep(0.01)
                execution = (await http.request("GET", path))[1]["data"]
                if execution["ended"]:
                    break
            if i >= WARM_UP:  # the first ones wait for the worker process to come up
                starts.append(parse_ts(execution["started"]) - parse_ts(execution["created"]))

    def figures(values: list[float]) -> dict[str, float]:
        return {
            "p50_ms": round(percentile(values, 50) * 1000, 2),
            "p99_ms": round(percentile(values, 99) * 1000, 2),
            "max_ms": round(max(values) * 1000, 2),
            "mean_ms": round(statistics.fmean(values) * 1000, 2),
        }

    return {"n": n, "action": action, "start": figures(starts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("EXECD_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--token", default=os.environ.get("EXECD_TOKEN"), help="an admin token")
    parser.add_argument("--spawn", choices=["sqlite", "postgresql"], help="start a server")
    parser.add_argument("-n", type=int, default=200, help="executions, one after another")
    parser.add_argument("--action", default="core.noop")
    args = parser.parse_args()
    if args.spawn:
        with spawned_server(args.spawn, {}) as (url, token):
            result = asyncio.run(run(url, token, args.n, args.action))
        result["backend"] = args.spawn
    else:
        if not args.token:
            raise SystemExit("--token (an admin token) is required with --url")
        result = asyncio.run(run(args.url, args.token, args.n, args.action))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
