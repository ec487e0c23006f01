"""The web framework's own ceiling on this machine: a FastAPI route that does nothing.

    python bench/floor.py                 # 20,000 requests, 8 clients
    python bench/floor.py -n 50000 -c 8 --server-processes 2

It starts a server with one route shaped like the v1 executions API's submission
(`POST /api/v1/executions/execute`: a bearer token header, a JSON body read into a
pydantic model, a 201 JSON answer) served by uvicorn as `execd serve` serves (uvloop,
httptools, no access log), but with no database, no queue and no worker behind it. The
same load generator as throughput.py (its keep-alive HTTP/1.1 client, C clients) sends
N requests, spread over P server processes sharing the port. Reported: requests per
second, and the CPU each side spent per request (the server's from /proc, so Linux
only; the client's from its own clock).

What it is for: execd's per-request submission can be no faster than this on the same
machine, since every submission also writes, claims, runs and records a job.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Header
from pydantic import BaseModel

from throughput import RawHttp  # bench/ is on the path of a script run from it

PATH = "/api/v1/executions/execute"


class Submission(BaseModel):
    action: str
    parameters: dict[str, Any] = {}


def serve(port: int) -> None:
    import uvicorn

    app = FastAPI()
    counter = iter(range(1, sys.maxsize))

    @app.post(PATH, status_code=201)
    async def execute(body: Submission, authorization: str = Header()) -> dict[str, Any]:
        return {"data": {"id": next(counter), "action": body.action, "status": "scheduled"}}

    # Several server processes share the port (SO_REUSEPORT): the kernel spreads the
    # clients' connections over them.
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("127.0.0.1", port))
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[listener])


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def drive(url: str, n: int, concurrency: int) -> float:
    remaining = iter(range(n))
    body = {"action": "core.noop", "parameters": {}}

    async def client() -> None:
        async with RawHttp(url, "floor") as http:
            for _ in remaining:
                status, _ = await http.request("POST", PATH, body)
                if status != 201:
                    raise SystemExit(f"unexpected status {status}")

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.perf_counter() - started


async def ready(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            async with RawHttp(url, "floor") as http:
                await http.request("POST", PATH, {"action": "warm-up"})
                return
        except OSError:
            await asyncio.sleep(0.1)
    raise SystemExit("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20_000, help="requests")
    parser.add_argument("-c", type=int, default=8, help="concurrent clients")
    parser.add_argument("--server-processes", type=int, default=1, metavar="P")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    servers = [
        subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
        for _ in range(args.server_processes)
    ]
    pids = [server.pid for server in servers]
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(ready(url, time.monotonic() + 30))
        time.sleep(1)  # the other processes are listening too
        server_before, client_before = cpu_seconds(pids), time.process_time()
        wall = asyncio.run(drive(url, args.n, args.c))
        server_cpu = cpu_seconds(pids) - server_before
        client_cpu = time.process_time() - client_before
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)
    print(
        json.dumps(
            {
                "requests": args.n,
                "clients": args.c,
                "server_processes": args.server_processes,
                "requests_per_s": round(args.n / wall, 1),
                "server_cpu_ms_per_request": round(server_cpu / args.n * 1000, 3),
                "client_cpu_ms_per_request": round(client_cpu / args.n * 1000, 3),
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
