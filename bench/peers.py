"""execd beside peer job systems: one no-op workload, 8 producers, interleaved rounds.

    .venv/bin/python bench/peers.py                      # 3 rounds, N=4,000, every system
    .venv/bin/python bench/peers.py -n 300 --rounds 1    # a quick look
    .venv/bin/python bench/peers.py --systems execd-sqlite,celery --json out.json

Each round runs every system once, in the order given, on fresh state (a new execd
server and database, a new Celery worker and queue, a new Procrastinate or PgQueuer
database and worker); the next round runs them again. Printed: each system's end-to-end
jobs per second (first enqueue to last job end) and enqueue-to-start p50/p99, per round
and the median of the rounds, and the ratios of execd's medians to each peer's.

Systems:

* execd-sqlite, execd-postgresql: `execd serve` with its defaults, spawned and measured
  by bench/throughput.py (8 keep-alive HTTP clients submitting `core.noop`);
* celery: Celery with Redis as the broker and no result backend, 8 producer threads
  calling `.delay()`, a worker of 2 prefork processes;
* procrastinate: Procrastinate on PostgreSQL, 8 asyncio producers calling
  `defer_async()`, a worker process of concurrency 16;
* pgqueuer: PgQueuer on PostgreSQL, 8 asyncio producers each on its own connection
  calling `Queries.enqueue()`, a worker process with PgQueuer's defaults.

The peers run in their own virtual environment (bench/.peers-venv, made from
bench/requirements-peers.txt on first use): this script re-runs itself there with
`--peer-run`, which starts the peer's worker with `--peer-worker`. Each peer job
records its enqueue time (an argument), its start and its end as 24 bytes appended to
a file of its worker process; execd's times are those of its executions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import os
import platform
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
PEERS_VENV = BENCH / ".peers-venv"
REQUIREMENTS = BENCH / "requirements-peers.txt"
SYSTEMS = ("execd-sqlite", "execd-postgresql", "celery", "procrastinate", "pgqueuer")
PEERS = ("celery", "procrastinate", "pgqueuer")
PG_ADMIN = os.environ.get("EXECD_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("EXECD_BENCH_REDIS", "redis://127.0.0.1:6379/9")
CELERY_PROCESSES = 2
PROCRASTINATE_CONCURRENCY = 16
RECORD = struct.Struct("<3d")  # enqueued, started, ended (time.time())
WARM_UP = -1.0  # the enqueue time of the one job that shows a worker is ready


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# --- what the peers' jobs record ---------------------------------------------------


class Recorder:
    """Appends one record per job to a file of the calling process: one write(2) of
    24 bytes, a few microseconds, and nothing shared between processes."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.pid = 0
        self.fd = -1

    def __call__(self, enqueued: float, started: float, ended: float) -> None:
        if self.pid != os.getpid():
            self.pid = os.getpid()
            path = os.path.join(self.directory, f"{self.pid}.bin")
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(self.fd, RECORD.pack(enqueued, started, ended))


def recorded(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir()) // RECORD.size


def read_records(directory: Path) -> list[tuple[float, float, float]]:
    records: list[tuple[float, float, float]] = []
    for path in directory.iterdir():
        data = path.read_bytes()
        records.extend(RECORD.iter_unpack(data[: len(data) - len(data) % RECORD.size]))
    return records


def wait_for(directory: Path, count: int, timeout: float, worker: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while (done := recorded(directory)) < count:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited ({worker.returncode}) after {done} jobs")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{done} of {count} jobs ended within {timeout:.0f} s")
        time.sleep(0.02)


# --- Celery ------------------------------------------------------------------------


def celery_app(queue: str, records: str) -> tuple[Any, Any]:
    from celery import Celery

    app = Celery("execd_bench", broker=REDIS_URL)
    app.conf.update(
        task_default_queue=queue,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    record = Recorder(records)

    @app.task(name="execd_bench.noop")
    def noop(enqueued: float) -> None:
        record(enqueued, time.time(), time.time())

    return app, noop


def celery_worker(queue: str, records: str) -> None:
    app, _ = celery_app(queue, records)
    app.worker_main(
        [
            "worker",
            f"--concurrency={CELERY_PROCESSES}",
            "--pool=prefork",
            f"--queues={queue}",
            f"--hostname=bench-{queue}@%h",
            "--loglevel=WARNING",
        ]
    )


def celery_run(n: int, producers: int, records: Path, worker_log: Path) -> float:
    """Returns the producers' time; the jobs' records are in `records`."""
    import redis

    queue = "execd-bench-" + uuid.uuid4().hex[:8]
    app, noop = celery_app(queue, str(records))
    worker = start_worker(["celery", "--queue", queue], records, worker_log)
    try:
        noop.delay(WARM_UP)
        wait_for(records, 1, 120, worker)
        shares = [n // producers + (i < n % producers) for i in range(producers)]

        def producer(count: int) -> None:
            for _ in range(count):
                noop.delay(time.time())

        threads = [threading.Thread(target=producer, args=(share,)) for share in shares]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        submitted = time.perf_counter() - start
        wait_for(records, n + 1, 60 + n / 20, worker)
        return submitted
    finally:
        stop(worker)
        app.close()
        client = redis.Redis.from_url(REDIS_URL)
        client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        client.close()


# --- Procrastinate -----------------------------------------------------------------


def procrastinate_app(dsn: str, records: str, pool_size: int | None) -> tuple[Any, Any]:
    import procrastinate

    # Tasks are named explicitly, so the app may live in the main module: not a warning.
    logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)
    sizes = {} if pool_size is None else {"min_size": pool_size, "max_size": pool_size}
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn, **sizes))
    record = Recorder(records)

    @app.task(name="execd_bench.noop")
    async def noop(enqueued: float) -> None:
        record(enqueued, time.time(), time.time())

    return app, noop


@contextlib.contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new PostgreSQL database for one peer's turn, dropped after it: its DSN."""
    import psycopg

    database = prefix + uuid.uuid4().hex[:8]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + "/" + database
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def procrastinate_worker(dsn: str, records: str) -> None:
    app, _ = procrastinate_app(dsn, records, None)  # the connector's default pool

    async def work() -> None:
        async with app.open_async():
            await app.run_worker_async(concurrency=PROCRASTINATE_CONCURRENCY)

    asyncio.run(work())


def procrastinate_run(n: int, producers: int, records: Path, worker_log: Path) -> float:
    with fresh_database("execd_bench_pq_") as dsn:
        app, noop = procrastinate_app(dsn, str(records), producers)
        worker = None
        try:

            async def produce() -> float:
                nonlocal worker
                async with app.open_async():
                    await app.schema_manager.apply_schema_async()
                    worker = start_worker(["procrastinate", "--dsn", dsn], records, worker_log)
                    await noop.defer_async(enqueued=WARM_UP)
                    await asyncio.to_thread(wait_for, records, 1, 120, worker)
                    await asyncio.sleep(0.5)  # its listener is up by now: let it settle
                    shares = [n // producers + (i < n % producers) for i in range(producers)]

                    async def producer(count: int) -> None:
                        for _ in range(count):
                            await noop.defer_async(enqueued=time.time())

                    start = time.perf_counter()
                    await asyncio.gather(*(producer(share) for share in shares))
                    submitted = time.perf_counter() - start
                    await asyncio.to_thread(wait_for, records, n + 1, 60 + n / 20, worker)
                    return submitted

            return asyncio.run(produce())
        finally:
            if worker is not None:
                stop(worker)


# --- PgQueuer ----------------------------------------------------------------------


def pgqueuer_worker(dsn: str, records: str) -> None:
    import psycopg
    from pgqueuer import PgQueuer, PsycopgDriver

    record = Recorder(records)

    async def work() -> None:
        connection = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
        pgq = PgQueuer(PsycopgDriver(connection))

        @pgq.entrypoint("execd_bench.noop")
        async def noop(job: Any) -> None:
            record(float(job.payload), time.time(), time.time())

        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, pgq.shutdown.set)
        await pgq.run()  # its defaults: batches of 10, no cap on concurrent jobs

    asyncio.run(work())


def pgqueuer_run(n: int, producers: int, records: Path, worker_log: Path) -> float:
    import psycopg
    from pgqueuer import PsycopgDriver, Queries

    with fresh_database("execd_bench_pgq_") as dsn:
        worker = None
        try:

            async def produce() -> float:
                nonlocal worker
                connections = [
                    await psycopg.AsyncConnection.connect(dsn, autocommit=True)
                    for _ in range(producers)
                ]
                queries = [Queries(PsycopgDriver(c)) for c in connections]
                await queries[0].install()
                worker = start_worker(["pgqueuer", "--dsn", dsn], records, worker_log)
                await queries[0].enqueue("execd_bench.noop", str(WARM_UP).encode())
                await asyncio.to_thread(wait_for, records, 1, 120, worker)
                await asyncio.sleep(0.5)
                shares = [n // producers + (i < n % producers) for i in range(producers)]

                async def producer(q: Any, count: int) -> None:
                    for _ in range(count):
                        await q.enqueue("execd_bench.noop", repr(time.time()).encode())

                start = time.perf_counter()
                await asyncio.gather(
                    *(producer(q, c) for q, c in zip(queries, shares, strict=True))
                )
                submitted = time.perf_counter() - start
                await asyncio.to_thread(wait_for, records, n + 1, 60 + n / 20, worker)
                for c in connections:
                    await c.close()
                return submitted

            return asyncio.run(produce())
        finally:
            if worker is not None:
                stop(worker)


# --- running a peer in its own environment -----------------------------------------


def start_worker(args: list[str], records: Path, worker_log: Path) -> subprocess.Popen[bytes]:
    with worker_log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, __file__, "--peer-worker", *args, "--records", str(records)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """A warm shutdown, then the whole process group if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # prefork children left behind


def peer_run(system: str, n: int, producers: int, out: Path) -> None:
    """In the peers' environment: one round of one peer; its records go to `out`."""
    from importlib import metadata

    work = Path(tempfile.mkdtemp(prefix=f"execd-peers-{system}-"))
    records = work / "records"
    records.mkdir()
    try:
        run = {"celery": celery_run, "procrastinate": procrastinate_run}.get(system, pgqueuer_run)
        submitted = run(n, producers, records, work / "worker.log")
        jobs = [r for r in read_records(records) if r[0] != WARM_UP]
    except BaseException:
        with contextlib.suppress(OSError):
            sys.stderr.write((work / "worker.log").read_text()[-4000:])
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    packages = {
        "celery": ["celery", "kombu", "redis"],
        "procrastinate": ["procrastinate"],
        "pgqueuer": ["pgqueuer"],
    }
    result = {
        "submitted_s": submitted,
        "versions": {p: metadata.version(p) for p in [*packages[system], "psycopg"]},
        "enqueued": [r[0] for r in jobs],
        "started": [r[1] for r in jobs],
        "ended": [r[2] for r in jobs],
    }
    out.write_text(json.dumps(result))


def peers_python() -> Path:
    """The peers' virtual environment, made or brought up to date from the pins."""
    python = PEERS_VENV / "bin" / "python"
    stamp = PEERS_VENV / ".requirements.sha256"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    log(f"installing the peers into {PEERS_VENV} from {REQUIREMENTS.name}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEERS_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)], check=True
    )
    stamp.write_text(digest)
    return python


def measure_peer(system: str, n: int, producers: int) -> dict[str, Any]:
    from throughput import summarize

    with tempfile.TemporaryDirectory(prefix="execd-peers-") as tmp:
        out = Path(tmp) / "result.json"
        subprocess.run(
            [
                *(str(peers_python()), __file__, "--peer-run", system, "-n", str(n)),
                *("--producers", str(producers), "--out", str(out)),
            ],
            check=True,
        )
        raw = json.loads(out.read_text())
    figures = summarize(raw["enqueued"], raw["started"], raw["ended"])
    return {
        "jobs": len(raw["ended"]),
        "submissions_per_s": round(n / raw["submitted_s"], 1),
        **figures,
        "versions": raw["versions"],
    }


def measure_execd(backend: str, n: int, producers: int) -> dict[str, Any]:
    from throughput import run, spawned_server

    with spawned_server(backend, {}) as (url, token):
        result = run(url, token, n, producers, "core.noop")
        figures = asyncio.run(result)
    keys = ("submissions_per_s", "end_to_end_jobs_per_s", "latency_p50_ms")
    keys += ("latency_p99_ms", "latency_mean_ms")
    return {
        "jobs": sum(figures["statuses"].values()),
        "statuses": figures["statuses"],
        "submit_failures": figures["submit_failures"],
        **{k: figures[k] for k in keys},
    }


# --- the rounds and the report -----------------------------------------------------


MEASURE: dict[str, Callable[[int, int], dict[str, Any]]] = {
    "execd-sqlite": lambda n, c: measure_execd("sqlite", n, c),
    "execd-postgresql": lambda n, c: measure_execd("postgresql", n, c),
    "celery": lambda n, c: measure_peer("celery", n, c),
    "procrastinate": lambda n, c: measure_peer("procrastinate", n, c),
    "pgqueuer": lambda n, c: measure_peer("pgqueuer", n, c),
}
FIGURES = (
    "end_to_end_jobs_per_s",
    "latency_p50_ms",
    "latency_p99_ms",
    "latency_mean_ms",
    "submissions_per_s",
)


def machine() -> dict[str, Any]:
    memory = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        memory = int(f.readline().split()[1]) * 1024
    commit = subprocess.run(
        ["git", "-C", str(BENCH), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1),
        "python": platform.python_version(),
        "commit": commit,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "servers": server_versions(),
    }


def server_versions() -> dict[str, str]:
    versions = {}
    with contextlib.suppress(Exception):
        import psycopg

        with psycopg.connect(PG_ADMIN) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            versions["postgresql"] = str(row[0]) if row else "?"
    redis_cli = shutil.which("redis-cli")
    if redis_cli:
        info = subprocess.run(
            [redis_cli, "-u", REDIS_URL, "INFO", "server"], capture_output=True, text=True
        ).stdout
        for line in info.splitlines():
            if line.startswith("redis_version:"):
                versions["redis"] = line.split(":", 1)[1].strip()
    return versions


def rounds(systems: list[str], n: int, count: int, producers: int) -> Iterator[dict[str, Any]]:
    for index in range(1, count + 1):
        for system in systems:
            log(f"round {index}/{count}: {system}, N={n}")
            load = os.getloadavg()[0]
            figures = MEASURE[system](n, producers)
            figures["load_before"] = round(load, 2)
            log(
                f"  {figures['end_to_end_jobs_per_s']} jobs/s, enqueue-to-start p50 "
                f"{figures['latency_p50_ms']} ms, p99 {figures['latency_p99_ms']} ms"
            )
            yield {"round": index, "system": system, **figures}


def report(runs: list[dict[str, Any]], systems: list[str]) -> dict[str, Any]:
    medians: dict[str, dict[str, Any]] = {}
    for system in systems:
        mine = [r for r in runs if r["system"] == system]
        medians[system] = {f: round(statistics.median(r[f] for r in mine), 1) for f in FIGURES}
        medians[system]["rounds"] = len(mine)
    ratios = {
        f"{execd} / {peer}": round(
            medians[execd]["end_to_end_jobs_per_s"] / medians[peer]["end_to_end_jobs_per_s"], 2
        )
        for execd in systems
        if execd.startswith("execd")
        for peer in systems
        if not peer.startswith("execd")
    }
    versions: dict[str, str] = {}
    for r in runs:
        versions.update(r.pop("versions", {}))
    return {"medians": medians, "ratios_end_to_end": ratios, "versions": versions, "runs": runs}


def table(result: dict[str, Any], systems: list[str]) -> str:
    count = max(r["round"] for r in result["runs"])
    head = ["system", "jobs/s (median)"]
    head += [f"round {i}" for i in range(1, count + 1)]
    head += ["p50 ms", "p99 ms", "submit/s"]
    lines = [head]
    for system in systems:
        m = result["medians"][system]
        per_round = {r["round"]: r for r in result["runs"] if r["system"] == system}
        line = [system, f"{m['end_to_end_jobs_per_s']:.1f}"]
        line += [
            f"{per_round[i]['end_to_end_jobs_per_s']:.1f}" if i in per_round else "-"
            for i in range(1, count + 1)
        ]
        line += [f"{m['latency_p50_ms']:.1f}", f"{m['latency_p99_ms']:.1f}"]
        line += [f"{m['submissions_per_s']:.1f}"]
        lines.append(line)
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    text = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in lines
    ]
    text.append("")
    text += [
        f"{pair}: {ratio:.2f}x end to end" for pair, ratio in result["ratios_end_to_end"].items()
    ]
    return "\n".join(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=4000, help="jobs per system per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--systems", default=",".join(SYSTEMS), help=f"comma-separated, of {', '.join(SYSTEMS)}"
    )
    parser.add_argument("--producers", type=int, default=8, help="concurrent producers")
    parser.add_argument("--json", type=Path, help="also write the JSON result to this file")
    parser.add_argument("--peer-run", choices=PEERS, help=argparse.SUPPRESS)
    parser.add_argument("--peer-worker", choices=PEERS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--records", help=argparse.SUPPRESS)
    parser.add_argument("--queue", help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.peer_worker == "celery":
        return celery_worker(args.queue, args.records)
    if args.peer_worker == "procrastinate":
        return procrastinate_worker(args.dsn, args.records)
    if args.peer_worker == "pgqueuer":
        return pgqueuer_worker(args.dsn, args.records)
    if args.peer_run:
        return peer_run(args.peer_run, args.n, args.producers, args.out)

    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    if any(s in PEERS for s in systems):
        peers_python()
    about = machine()
    runs = list(rounds(systems, args.n, args.rounds, args.producers))
    result = {
        "n": args.n,
        "producers": args.producers,
        "rounds": args.rounds,
        "machine": about,
        **report(runs, systems),
    }
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    print()
    print(table(result, systems))


if __name__ == "__main__":
    main()
