"""End-to-end throughput and enqueue-to-start latency of a running execd server.

    python bench/throughput.py --url http://127.0.0.1:8080 --token $TOKEN -n 10000 -c 8
    python bench/throughput.py --spawn sqlite -n 10000 -c 8      # starts its own server
    python bench/throughput.py --spawn postgresql -n 10000 -c 8  # on a fresh database
    python bench/throughput.py --spawn sqlite -n 20000 -c 8 --batch 200

C concurrent clients submit N executions of an action (core.noop by default) through
POST /api/v1/executions/execute, one request each, or with --batch B through
POST /api/v1/executions/batch, B executions per request. The run ends when all N are
terminal. Reported: submissions per second (client clock), end-to-end jobs per second
(first `created` to last `ended`, server clock) and the enqueue-to-start latency
(`started - created`) percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

PG_ADMIN = os.environ.get("EXECD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def parse_ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summarize(
    created: list[float], started: list[float | None], ended: list[float | None]
) -> dict[str, float]:
    """The figures of one run from each job's enqueue, start and end times (one clock):
    end-to-end jobs per second over the window from the first enqueue to the last end,
    and the enqueue-to-start latency percentiles. Shared with bench/peers.py, so that
    every system's figures are computed alike."""
    ends = [t for t in ended if t is not None]
    latencies = [s - c for c, s in zip(created, started, strict=True) if s is not None]
    window = max(ends) - min(created)
    return {
        "end_to_end_jobs_per_s": round(len(ends) / window, 1),
        "latency_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "latency_p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "latency_mean_ms": round(statistics.fmean(latencies) * 1000, 1),
    }


@contextlib.contextmanager
def spawned_server(
    backend: str, env_extra: dict[str, str], worker_processes: int = 0
) -> Iterator[tuple[str, str]]:
    """`execd serve` on a fresh database: its URL and an admin token."""
    with spawned(backend, env_extra, worker_processes) as server:
        yield server.url, server.token


@dataclasses.dataclass
class Spawned:
    url: str
    token: str
    process: subprocess.Popen[bytes]


@contextlib.contextmanager
def spawned(
    backend: str,
    env_extra: dict[str, str],
    worker_processes: int = 0,
    *,
    database_url: str | None = None,
) -> Iterator[Spawned]:
    """`execd serve` (and `worker_processes` more workers) on `database_url`, or on a
    fresh database of `backend` dropped afterwards."""
    root = Path(tempfile.mkdtemp(prefix="execd-bench-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "execd_bench_" + uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECD_")}
    env.update(
        EXECD_DATA_DIR=str(root / "data"),
        EXECD_PORT=str(port),
        EXECD_ADMIN_TOKEN=token,
        EXECD_LOG_LEVEL="warning",
    )
    database = None
    if database_url is not None:
        env["EXECD_DATABASE_URL"] = database_url
    elif backend == "postgresql":
        import psycopg

        database = "execd_bench_" + uuid.uuid4().hex[:8]
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        env["EXECD_DATABASE_URL"] = PG_ADMIN.rsplit("/", 1)[0] + "/" + database
    env.update(env_extra)
    log = (root / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "execd", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "execd", "worker"],
            env={**env, "EXECD_WORKER_NAME": f"bench-{i}"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for i in range(worker_processes)
    ]
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            if server.poll() is not None:
                raise SystemExit(f"server exited:\n{(root / 'server.log').read_text()}")
            time.sleep(0.1)
        # The API answers before its worker processes have started (a second or more of
        # imports): jobs submitted then would wait for them, a start-up cost in the
        # figures. So a run begins once the workers it will have are registered.
        no_workers = env.get("EXECD_WORKER_PROCESSES") == "0" and env.get(
            "EXECD_EMBEDDED_WORKERS"
        ) in {"0", "false"}
        if not no_workers:
            headers = {"Authorization": f"Bearer {token}"}
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    found = httpx.get(url + "/api/v1/workers", headers=headers, timeout=2)
                    if len(found.json()["data"]) >= 1 + worker_processes:
                        break
                time.sleep(0.1)
        yield Spawned(url, token, server)
    finally:
        for process in [*workers, server]:
            process.terminate()
        for process in [*workers, server]:
            process.wait(timeout=60)
        log.close()
        if database is not None:
            import psycopg

            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        shutil.rmtree(root, ignore_errors=True)


class RawHttp:
    """A minimal HTTP/1.1 keep-alive client: the load generator shares the machine with
    the server, so it must cost as little CPU per request as possible (httpx costs
    more per request than the server does)."""

    def __init__(self, url: str, token: str) -> None:
        parts = httpx.URL(url)
        self.host, self.port = parts.host, parts.port or 80
        self.token = token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> RawHttp:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        assert self.reader is not None and self.writer is not None
        payload = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {self.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        self.writer.write(head.encode() + payload)
        status_line = await self.reader.readuntil(b"\r\n")
        length = 0
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        data = await self.reader.readexactly(length)
        return int(status_line.split()[1]), json.loads(data) if data else None


async def project_token(client: httpx.AsyncClient) -> str:
    """A fresh project, so that counts and lists hold only this run's executions."""
    name = "bench-" + uuid.uuid4().hex[:8]
    tenant = (await client.post("/api/v1/tenants", json={"name": name})).json()["data"]
    project = (
        await client.post("/api/v1/projects", json={"tenant_id": tenant["id"], "name": name})
    ).json()["data"]
    token = await client.post(
        "/api/v1/tokens", json={"name": name, "role": "operator", "project_id": project["id"]}
    )
    return str(token.json()["data"]["token"])


async def run(
    url: str,
    admin_token: str,
    n: int,
    concurrency: int,
    action: str,
    parameters: dict[str, Any] | None = None,
    batch: int = 0,
) -> dict[str, Any]:
    limits = httpx.Limits(
        max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4
    )
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=60
    ) as admin:
        token = await project_token(admin)
    remaining = iter(range(n))
    failures = 0

    async def submitter() -> None:
        nonlocal failures
        body = {"action_ref": action, "parameters": parameters or {}}
        async with RawHttp(url, token) as http:
            while count := len(list(itertools.islice(remaining, batch or 1))):
                if batch:
                    many = {"executions": [body] * count}
                    status, _ = await http.request("POST", "/api/v1/executions/batch", many)
                else:
                    status, _ = await http.request("POST", "/api/v1/executions/execute", body)
                failures += count if status != 201 else 0

    start = time.perf_counter()
    await asyncio.gather(*(submitter() for _ in range(concurrency)))
    submitted = time.perf_counter() - start
    async with RawHttp(url, token) as http:
        while True:
            _, stats = await http.request("GET", "/api/v1/executions/stats")
            if stats["data"]["pending"] + stats["data"]["running"] == 0:
                break
            await asyncio.sleep(0.05)
    drained = time.perf_counter() - start

    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60, limits=limits
    ) as client:
        records: list[dict[str, Any]] = []
        page = 1
        while True:
            body = (
                await client.get("/api/v1/executions", params={"page": page, "per_page": 100})
            ).json()
            records.extend(body["data"])
            if page >= body["pagination"]["total_pages"]:
                break
            page += 1
        semaphore = asyncio.Semaphore(concurrency)

        async def detail(execution_id: int) -> dict[str, Any]:
            async with semaphore:
                response = await client.get(f"/api/v1/executions/{execution_id}")
                return dict(response.json()["data"])

        full = await asyncio.gather(*(detail(r["id"]) for r in records))

    statuses: dict[str, int] = {}
    for e in full:
        statuses[e["status"]] = statuses.get(e["status"], 0) + 1
    return {
        "n": n,
        "concurrency": concurrency,
        "batch": batch or None,
        "action": action,
        "submit_failures": failures,
        "statuses": statuses,
        "submissions_per_s": round(n / submitted, 1),
        "client_drain_s": round(drained, 2),
        **summarize(
            [parse_ts(e["created"]) for e in full],
            [parse_ts(e["started"]) if e["started"] else None for e in full],
            [parse_ts(e["ended"]) if e["ended"] else None for e in full],
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=os.environ.get("EXECD_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--token", default=os.environ.get("EXECD_TOKEN"), help="an admin token")
    parser.add_argument("--spawn", choices=["sqlite", "postgresql"], help="start a server")
    parser.add_argument("-n", type=int, default=10_000, help="executions")
    parser.add_argument("-c", type=int, default=8, help="concurrent clients")
    parser.add_argument("--action", default="core.noop")
    parser.add_argument("--parameters", type=json.loads, help='e.g. \'{"cmd": "true"}\'')
    parser.add_argument(
        "--batch",
        type=int,
        default=0,
        metavar="B",
        help="submit through /api/v1/executions/batch, B executions per request (1-1000)",
    )
    parser.add_argument(
        "--server-env", action="append", default=[], help="KEY=VALUE for a spawned server"
    )
    parser.add_argument(
        "--worker-processes",
        type=int,
        default=0,
        help="with --spawn: also start this many `execd worker` processes",
    )
    args = parser.parse_args()
    if not 0 <= args.batch <= 1000:
        parser.error("--batch is 1 to 1000 executions per request")
    extra = dict(item.split("=", 1) for item in args.server_env)
    if args.spawn:
        with spawned_server(args.spawn, extra, args.worker_processes) as (url, token):
            result = asyncio.run(
                run(url, token, args.n, args.c, args.action, args.parameters, args.batch)
            )
        result["backend"] = args.spawn
        result["worker_processes"] = args.worker_processes
        result["server_env"] = extra
    else:
        if not args.token:
            raise SystemExit("--token (an admin token) is required with --url")
        result = asyncio.run(
            run(args.url, args.token, args.n, args.c, args.action, args.parameters, args.batch)
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
