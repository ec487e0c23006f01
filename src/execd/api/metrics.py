"""GET /metrics: the service in Prometheus' text format.

Two kinds of figures. What this API process saw (HTTP requests by route template and
status, their latency, open streams, calls refused while the database was out of reach,
leases this process found expired, notifications it delivered) is counted in memory
here. What the whole service holds (executions waiting by priority, ended by status
ever, workers and their slots, recent waits and run times) is read from the database at
each scrape, so it is the same whichever process or node is asked, and right however
many worker processes or machines there are: scrape one API node for those (or take
`max` over nodes).

Who may read it (EXECD_METRICS): "admin" (default), a system admin's token; "open",
anyone who can reach the port; "off", 404. EXECD_METRICS_PORT serves it, without a
token, on a bind address of its own (EXECD_METRICS_HOST, loopback by default) for a
scraper on a private network.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from execd.api import responses
from execd.api.deps import get_caller
from execd.domain.errors import Forbidden, NotFound, StoreUnavailable

if TYPE_CHECKING:
    from execd.engine.job_queue import ClusterFigures
    from execd.runtime import Runtime

router = APIRouter(include_in_schema=False)
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics(Collector):
    """One per app: its own registry (no process-wide state, so several apps in one
    process, as the tests make them, do not mix their figures).

    With several API processes (EXECD_API_PROCESSES), each counts in files of
    prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by `execd
    serve` before anything is counted) and a scrape, whichever process answers it,
    adds up every process's: those that have exited included, so counters never go
    down."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.shared = os.environ.get(MULTIPROCESS_ENV) is not None
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "execd_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "execd_http_request_duration_seconds",
            "Time to answer an HTTP request (to its last byte), by method and route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.unavailable = Counter(
            "execd_store_unavailable",
            "Requests answered 503 because the database could not be reached or written",
            ["reason"],
            registry=self.registry,
        )
        self.streams = Gauge(
            "execd_open_streams",
            "Server-Sent Event streams open",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.expired = Counter(
            "execd_leases_expired",
            "Leases the API processes' reapers found expired, by what became of the execution "
            "(scheduling: queued again; abandoned: no attempt left)",
            ["outcome"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "execd_notifications",
            "Job notifications the API processes tried to deliver, by channel and outcome",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.submitted = Counter(
            "execd_executions_submitted",
            "Executions stored through the API (idempotent replays not counted), by action",
            ["action"],
            registry=self.registry,
        )
        self._counted: dict[tuple[str, tuple[str, ...]], int] = {}
        self._figures: ClusterFigures | None = None
        self._lock = asyncio.Lock()
        if self.shared:
            self.scraped = CollectorRegistry()
            MultiProcessCollector(self.scraped)  # type: ignore[no-untyped-call]
        else:
            self.scraped = self.registry
        self.scraped.register(self)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def sync(self) -> None:
        """Bring the counters that the service's parts keep as plain counts (the
        reaper's, the notifier's, the submissions') and the open streams up to date."""
        runtime = self.runtime
        reaper, notifier = runtime.reaper, runtime.notifier
        for outcome, count in (reaper.expired if reaper else {}).items():
            self._advance("expired", self.expired, (outcome,), count)
        for labels, count in (notifier.deliveries if notifier else {}).items():
            self._advance("deliveries", self.deliveries, labels, count)
        for action, count in runtime.executions.submitted.items():
            self._advance("submitted", self.submitted, (action,), count)
        self.streams.set(responses.open_streams)

    def _advance(self, name: str, counter: Counter, labels: tuple[str, ...], count: int) -> None:
        key = (name, labels)
        added = count - self._counted.get(key, 0)
        if added > 0:
            counter.labels(*labels).inc(added)
            self._counted[key] = count

    async def sync_forever(self, interval: float = 1.0) -> None:
        """With several API processes, a scrape reads the others' counts from their
        files: each process brings its own up to date this often."""
        while True:
            self.sync()
            await asyncio.sleep(interval)

    async def text(self) -> bytes:
        async with self._lock:  # the figures read, then written out, one scrape at a time
            self.sync()
            self._figures = await self.runtime.jobs.figures()
            try:
                return generate_latest(self.scraped)
            finally:
                self._figures = None

    def collect(self) -> Iterator[Any]:
        """What the database says now (called by generate_latest)."""
        if self._figures is not None:
            yield from _cluster(self._figures)


def process_exited(pid: int) -> None:
    """An API child has exited: its open streams are no longer open (its counts stay)."""
    if os.environ.get(MULTIPROCESS_ENV) is not None:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _cluster(figures: ClusterFigures) -> Iterator[Any]:
    waiting = GaugeMetricFamily(
        "execd_queue_depth", "Executions waiting to start, by priority", labels=["priority"]
    )
    for priority, count in sorted(figures.waiting.items(), key=lambda item: item[0].value):
        waiting.add_metric([priority.name.lower()], count)
    yield waiting
    ended = CounterMetricFamily(
        "execd_executions_ended",
        "Executions ended, ever, in every project, by final status and action",
        labels=["status", "action"],
    )
    for (status, action), count in sorted(
        figures.ended.items(), key=lambda i: (i[0][0].value, i[0][1])
    ):
        ended.add_metric([status.value, action], count)
    yield ended
    workers = GaugeMetricFamily("execd_workers", "Workers by state", labels=["state"])
    for state, count in sorted(figures.workers.items()):
        workers.add_metric([state], count)
    yield workers
    slots = GaugeMetricFamily(
        "execd_worker_slots", "Execution slots of the live workers", labels=["use"]
    )
    slots.add_metric(["total"], figures.slots[0])
    slots.add_metric(["busy"], figures.slots[1])
    yield slots
    started = CounterMetricFamily(
        "execd_executions_started",
        "Executions each worker process has started since it started, by action",
        labels=["worker", "action"],
    )
    waits = HistogramMetricFamily(
        "execd_execution_wait_seconds",
        "From submission (or the time it was due) to the start of a run, by worker",
        labels=["worker"],
    )
    runs = HistogramMetricFamily(
        "execd_execution_run_seconds",
        "Run time of the runs each worker process has ended, whatever their outcome",
        labels=["worker"],
    )
    for worker, ran in sorted(figures.runs.items()):
        for action, count in sorted(ran.started.items()):
            started.add_metric([worker, action], count)
        waits.add_metric([worker], ran.wait.cumulative(), ran.wait.total)
        runs.add_metric([worker], ran.run.cumulative(), ran.run.total)
    yield started
    yield waits
    yield runs


def metrics_of(request: Request) -> Metrics:
    found: Metrics = request.app.state.metrics
    return found


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    access = runtime.settings.metrics
    if access == "off":
        raise NotFound("No such endpoint: GET /metrics")
    if access == "admin":
        caller = await get_caller(request, request.headers.get("authorization"))
        if not caller.system:
            raise Forbidden("Metrics are for a system admin's token (or EXECD_METRICS=open)")
    return Response(await metrics_of(request).text(), media_type=CONTENT_TYPE_LATEST)


def count_unavailable(request: Request, exc: StoreUnavailable) -> None:
    metrics_found = getattr(request.app.state, "metrics", None)
    if metrics_found is not None:
        metrics_found.unavailable.labels(exc.reason).inc()


def serve_apart(found: Metrics, host: str, port: int) -> ThreadingHTTPServer:
    """GET /metrics without a token on a listener of its own (a thread; the figures
    are read on the app's event loop)."""
    loop = asyncio.get_running_loop()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404)
                return
            try:
                body = asyncio.run_coroutine_threadsafe(found.text(), loop).result(30)
            except Exception:
                self.send_error(503, "the figures could not be read")
                return
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None  # the scrapes are not worth a line each

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="execd-metrics", daemon=True).start()
    return server
