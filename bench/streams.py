"""What open live event streams cost the server.

    python bench/streams.py --spawn sqlite -s 500       # starts its own server
    python bench/streams.py --spawn postgresql -s 500

Opens S Server-Sent Event streams on /api/v1/executions/stream (one project, no
filter: a dashboard's view), then measures the server process's CPU while nothing
happens, and while executions run at a steady rate: its CPU, and how late events
reach the streams (receive time minus the event's own time; same machine, same clock).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time

import httpx
import psutil

from throughput import parse_ts, percentile, project_token, spawned_server


class Stream:
    """One SSE connection over a bare socket (the load generator shares the machine)."""

    def __init__(self) -> None:
        self.events = 0
        self.lags: list[float] = []
        self.ready = asyncio.Event()

    async def run(self, host: str, port: int, token: str) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            f"GET /api/v1/executions/stream HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        try:
            while (await reader.readline()) not in (b"\r\n", b""):
                pass  # the response head
            self.ready.set()
            while line := await reader.readline():
                if line.startswith(b"data: "):
                    at = json.loads(line[6:])["at"]
                    self.lags.append(time.time() - parse_ts(at))
                    self.events += 1
        finally:
            writer.close()


def server_process() -> psutil.Process:
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "serve" in child.cmdline():
                return child
    raise SystemExit("no server process found")


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


async def measure(url: str, admin_token: str, streams: int, rate: float, seconds: float) -> None:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {admin_token}"}
    ) as admin:
        token = await project_token(admin)
    parts = httpx.URL(url)
    host, port = parts.host, parts.port or 80
    server = server_process()
    opened = [Stream() for _ in range(streams)]
    tasks = [asyncio.create_task(s.run(host, port, token)) for s in opened]
    for s in opened:
        await s.ready.wait()
    await asyncio.sleep(1)  # let every stream catch up and settle

    before = cpu_seconds(server)
    await asyncio.sleep(seconds)
    idle = (cpu_seconds(server) - before) / seconds

    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        before = cpu_seconds(server)
        started = time.monotonic()
        submitted = 0
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * rate) + 1
            for _ in range(due - submitted):
                response = await client.post(
                    "/api/v1/executions/execute", json={"action_ref": "core.noop"}
                )
                response.raise_for_status()
            submitted = due
            await asyncio.sleep(1 / rate)
        await asyncio.sleep(2)  # the last events on their way
        busy = (cpu_seconds(server) - before) / (time.monotonic() - started)

    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    lags = [lag for s in opened for lag in s.lags]
    counts = [s.events for s in opened]
    print(f"streams                     {streams}")
    print(f"server CPU, idle            {idle * 100:6.1f} % of a core")
    print(f"server CPU, {rate:g} jobs/s      {busy * 100:6.1f} % of a core ({submitted} jobs)")
    print(f"events per stream           {min(counts)} to {max(counts)}")
    if lags:
        print(
            f"delivery lag                p50 {statistics.median(lags) * 1000:6.0f} ms"
            f"   p99 {percentile(lags, 99) * 1000:6.0f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spawn", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("-s", "--streams", type=int, default=500)
    parser.add_argument("--rate", type=float, default=10.0, help="executions per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    args = parser.parse_args()
    # The server is spawned: its CPU time is read from its process.
    with spawned_server(args.spawn, {}) as (url, token):
        asyncio.run(measure(url, token, args.streams, args.rate, args.seconds))


if __name__ == "__main__":
    main()
