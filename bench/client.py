"""What the SDK and the CLI cost on top of the HTTP API.

    python bench/client.py --spawn sqlite        # starts its own server
    python bench/client.py --url URL --token T   # against a running one

Measured: the `execd` command's start-up (`execd version`, `execd executions list`),
sequential reads through `Client.get_execution` against the same requests made with a
bare httpx.Client, and concurrent submissions through `AsyncClient.execute` against a
bare httpx.AsyncClient. The difference is the SDK's own overhead (the sans-IO generator,
parsing into models).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from execd.client import AsyncClient, Client
from throughput import spawned_server

EXECD = str(Path(sys.executable).with_name("execd"))


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def cli_startup(url: str, token: str, runs: int) -> None:
    env = {**os.environ, "EXECD_URL": url, "EXECD_TOKEN": token}

    def run(*args: str) -> Callable[[], object]:
        return lambda: subprocess.run([EXECD, *args], env=env, capture_output=True, check=True)

    for args in (("version",), ("executions", "list", "-n", "20")):
        median = statistics.median(timed(run(*args), runs))
        print(f"execd {' '.join(args):<28} median {median * 1000:7.0f} ms over {runs} runs")


def sequential_reads(url: str, token: str, n: int) -> None:
    with (
        Client(url, token) as sdk,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as raw,
    ):
        execution_id = sdk.wait(sdk.execute("core.noop").id).id
        for name, call in (
            ("httpx.Client", lambda: raw.get(f"/api/v1/executions/{execution_id}").json()),
            ("Client.get_execution", lambda: sdk.get_execution(execution_id)),
        ):
            call()  # warm the connection
            total = sum(timed(call, n))
            print(f"{name:<28} {n / total:7.0f} reads/s  {total / n * 1e6:7.0f} µs each")


async def concurrent_submissions(url: str, token: str, n: int, concurrency: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    body = {"action_ref": "core.noop", "parameters": {}}
    async with (
        AsyncClient(url, token) as sdk,
        httpx.AsyncClient(base_url=url, headers=headers) as raw,
    ):

        async def raw_submit() -> None:
            (await raw.post("/api/v1/executions/execute", json=body)).raise_for_status()

        async def sdk_submit() -> None:
            await sdk.execute("core.noop")

        for name, submit in (
            ("httpx.AsyncClient", raw_submit),
            ("AsyncClient.execute", sdk_submit),
        ):
            rate = await _rate(submit, n, concurrency)
            print(f"{name:<28} {rate:7.0f} submissions/s ({concurrency} at once)")


async def _rate(submit: Callable[[], Awaitable[None]], n: int, concurrency: int) -> float:
    left = n

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await submit()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url")
    parser.add_argument("--token")
    parser.add_argument("--spawn", choices=("sqlite", "postgresql"))
    parser.add_argument("-n", type=int, default=1000, help="reads and submissions")
    parser.add_argument("-c", type=int, default=8, help="concurrent submissions")
    parser.add_argument("--runs", type=int, default=5, help="CLI start-ups to time")
    args = parser.parse_args()
    server: contextlib.AbstractContextManager[tuple[str, str]]
    if args.spawn:
        server = spawned_server(args.spawn, {"EXECD_WORKER_CONCURRENCY": "32"})
    else:
        server = contextlib.nullcontext((args.url, args.token))
    with server as (url, token):
        cli_startup(url, token, args.runs)
        sequential_reads(url, token, args.n)
        asyncio.run(concurrent_submissions(url, token, args.n, args.c))


if __name__ == "__main__":
    main()
