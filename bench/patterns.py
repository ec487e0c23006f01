"""What a catastrophic pattern in a parameter schema costs the server, and everyone else.

    python bench/patterns.py --spawn sqlite          # starts its own server
    python bench/patterns.py --spawn postgresql

Defines three actions whose parameter schemas backtrack on the value "a" * L + "!":
`"pattern": "^(a+)+$"` (15 s with L=29 when schemas ran on Python's `re`),
`"^(a|aa)+$"` (backtracks on the `regex` engine too: only the time budget stops it),
and 300 parameters with that second pattern (one validation, 300 patterns). Then:

* each is submitted N times (POST /api/v1/executions/execute, one after another): the
  answer's status, and its time p50 and max;
* GET /healthz is timed every 50 ms for a few seconds: idle, then while 1 and while A
  clients send the `^(a+)+$` submission back to back, then the `^(a|aa)+$` one.

`--actions quick` times only the first (to measure a build without the bounds, where
one submission of the others takes minutes).

The machine's load average is printed first: other processes on a 2-core machine move
every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from throughput import percentile, project_token, spawned_server

QUICK, STALLING = "^(a+)+$", "^(a|aa)+$"
MANY = 300


def schemas() -> dict[str, dict[str, Any]]:
    one = {"type": "object", "properties": {"text": {"type": "string"}}}
    return {
        "bench.quick": {**one, "properties": {"text": {"type": "string", "pattern": QUICK}}},
        "bench.stalling": {
            **one,
            "properties": {"text": {"type": "string", "pattern": STALLING}},
        },
        "bench.many": {
            "type": "object",
            "properties": {
                f"text{i}": {"type": "string", "pattern": STALLING} for i in range(MANY)
            },
        },
    }


def body(ref: str, value: str) -> dict[str, Any]:
    names = [f"text{i}" for i in range(MANY)] if ref == "bench.many" else ["text"]
    return {"action_ref": ref, "parameters": dict.fromkeys(names, value)}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


async def submissions(client: httpx.AsyncClient, bodies: dict[str, dict[str, Any]], n: int) -> None:
    """Each body (by its label) submitted `n` times, one after another: the answer's
    status and time."""
    for label, sent in bodies.items():
        statuses, times = set(), []
        for _ in range(n):
            started = time.perf_counter()
            response = await client.post("/api/v1/executions/execute", json=sent)
            times.append(time.perf_counter() - started)
            statuses.add(response.status_code)
        print(
            f"{label:<16} status {sorted(statuses)}  p50 {ms(statistics.median(times))}"
            f"  max {ms(max(times))}"
        )


async def healthz_while(
    client: httpx.AsyncClient,
    label: str,
    sent: dict[str, Any] | None,
    attackers: int,
    seconds: float,
) -> None:
    """/healthz timed every 50 ms while `attackers` clients submit `sent` back to back."""
    stop = asyncio.Event()
    count = 0

    async def attack() -> None:
        nonlocal count
        while not stop.is_set():
            await client.post("/api/v1/executions/execute", json=sent)
            count += 1

    async def probe() -> list[float]:
        times = []
        while not stop.is_set():
            started = time.perf_counter()
            (await client.get("/healthz")).raise_for_status()
            times.append(time.perf_counter() - started)
            await asyncio.sleep(0.05)
        return times

    tasks = [asyncio.create_task(attack()) for _ in range(attackers if sent else 0)]
    probing = asyncio.create_task(probe())
    await asyncio.sleep(seconds)
    stop.set()
    times = await probing
    await asyncio.gather(*tasks)
    during = f"{attackers} x {label} ({count} sent)" if tasks else "idle"
    print(
        f"/healthz, {during:<32} p50 {ms(statistics.median(times))}"
        f"  p99 {ms(percentile(times, 99))}  max {ms(max(times))}"
    )


@contextlib.asynccontextmanager
async def operator_client(
    url: str, admin_token: str, attackers: int, timeout: float
) -> AsyncIterator[httpx.AsyncClient]:
    """A client with an operator token of a new project, for `attackers` at once."""
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {admin_token}"}
    ) as admin:
        token = await project_token(admin)
    limits = httpx.Limits(max_connections=attackers + 2)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout, limits=limits
    ) as client:
        yield client


async def measure(url: str, admin_token: str, args: argparse.Namespace) -> None:
    async with operator_client(url, admin_token, args.attackers, 120) as client:
        for ref, parameters in schemas().items():
            definition = {"ref": ref, "runner": "shell", "entry_point": "true"}
            created = await client.post(
                "/api/v1/actions", json={**definition, "parameters": parameters}
            )
            created.raise_for_status()
        value = "a" * args.length + "!"
        print(f"load average {os.getloadavg()[0]:.1f}")
        print(f'value "a" * {args.length} + "!", {args.n} submissions each')
        refs = [f"bench.{name}" for name in args.actions.split(",")]
        await submissions(client, {ref: body(ref, value) for ref in refs}, args.n)
        await healthz_while(client, "", None, 0, args.seconds)
        for ref in refs:
            if ref != "bench.many":
                for attackers in sorted({1, args.attackers}):
                    await healthz_while(client, ref, body(ref, value), attackers, args.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spawn", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("-n", type=int, default=20, help="submissions of each action")
    parser.add_argument("--length", type=int, default=29, help="L: the value is 'a' * L + '!'")
    parser.add_argument("-a", "--attackers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each /healthz phase")
    parser.add_argument(
        "--actions", default="quick,stalling,many", help="which of quick, stalling, many to time"
    )
    args = parser.parse_args()
    with spawned_server(args.spawn, {}) as (url, token):
        asyncio.run(measure(url, token, args))


if __name__ == "__main__":
    main()
