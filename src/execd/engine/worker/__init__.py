"""A worker: claims executions, runs them, keeps their leases alive, reports back.

One worker runs up to `capacity` executions at once (runs.py runs each and reports on
it; config.py is what a worker is told). Here: claiming work, renewing the leases of
what runs and stopping what was cancelled or lost, and handing work back at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time

import psutil
import structlog

from execd import __version__
from execd.domain.executions import Execution
from execd.domain.states import Status
from execd.domain.workers import ACTIVE, DRAINING, OFFLINE
from execd.engine.sealing import Sealer
from execd.engine.worker.config import WorkerConfig
from execd.engine.worker.runs import Running, Runs
from execd.runners.base import InlineRunner, Runner
from execd.runners.sandbox import Sandbox, Unsandboxed
from execd.store.artifacts import ArtifactStore
from execd.store.queue import Inline, Queue
from execd.store.signals import CANCEL, JOBS, Signals
from execd.store.workers import WorkerRegistry

__all__ = ["Worker", "WorkerConfig"]

log = structlog.get_logger(__name__)

# How many executions of inline runners (built-ins that end at once, see
# runners/base.py InlineRunner) one claim may run and end besides the free slots.
INLINE_PER_CLAIM = 200


class Worker:
    def __init__(
        self,
        config: WorkerConfig,
        *,
        queue: Queue,
        registry: WorkerRegistry,
        signals: Signals,
        runners: dict[str, Runner],
        artifacts: ArtifactStore,
        sealer: Sealer,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.config = config
        self.sandbox = sandbox or Unsandboxed()
        self.queue = queue
        self.registry = registry
        self.signals = signals
        self.runners = runners
        self.id: int | None = None
        self.running: dict[int, Running] = {}
        self.runs = Runs(
            config,
            self.running,
            queue=queue,
            runners=runners,
            artifacts=artifacts,
            sealer=sealer,
            sandbox=self.sandbox,
        )
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._ready = asyncio.Event()
        self._renewed_at = time.monotonic()  # when the last lease renewal was asked for
        inline = frozenset(n for n, r in runners.items() if isinstance(r, InlineRunner))
        self._inline = Inline(inline, self.runs.settle, INLINE_PER_CLAIM) if inline else None

    def stop(self) -> None:
        """Stop claiming, let running work finish (up to the shutdown grace), hand back the rest."""
        self._stopping.set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def run(self) -> None:
        node = await self.registry.register(
            self.config.name,
            socket.gethostname(),
            os.getpid(),
            self.config.labels,
            self.config.capacity,
            __version__,
            live_within=self.config.lease_seconds,
            devices=self.config.devices,
            cpu_count=psutil.cpu_count(),
            memory_total=psutil.virtual_memory().total,
            sandbox=self.sandbox.name,
        )
        self.id = node.id
        lost = await self.queue.recover_worker(node.id)
        if lost:
            log.warning("recovered_from_previous_run", worker=self.config.name, count=len(lost))
        jobs = self.signals.subscribe(JOBS)
        cancels = self.signals.subscribe(CANCEL)
        helpers = [
            asyncio.create_task(self._heartbeat_loop()),
            asyncio.create_task(self._cancel_loop(cancels)),
            asyncio.create_task(self.runs.progress_loop()),
        ]
        self._ready.set()
        log.info(
            "worker_started", worker=self.config.name, id=node.id, capacity=self.config.capacity
        )
        try:
            await self._claim_loop(jobs)
            await self._drain()
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            self.signals.unsubscribe(JOBS, jobs)
            self.signals.unsubscribe(CANCEL, cancels)
            await self.runs.drain()
            with contextlib.suppress(Exception):
                await self.registry.set_state(
                    node.id, OFFLINE, active=0, figures=self.runs.figures.to_json()
                )
            log.info("worker_stopped", worker=self.config.name)

    # -- claiming ---------------------------------------------------------------------

    async def _claim_loop(self, jobs: asyncio.Event) -> None:
        assert self.id is not None
        # Whether work is likely: after a wake-up signal or a full claim, claim at once;
        # after a quiet poll, look first with a cheap read instead of taking the write lock.
        likely = True
        while not self._stopping.is_set():
            free = self.config.capacity - len(self.running)
            if free <= 0:
                self._slot_freed.clear()
                await _wait_any(self._slot_freed, self._stopping)
                continue
            jobs.clear()
            claimed: list[Execution] = []
            try:
                if likely or await self.queue.has_work(self.config.devices):
                    claimed = await self.queue.claim(
                        self.id,
                        free,
                        self.config.lease_seconds,
                        self.config.devices,
                        self._inline,
                    )
            except Exception as exc:  # the database may be briefly unreachable
                log.warning("claim_failed", error=str(exc))
                await _wait_any(self._stopping, timeout=self.config.poll_seconds)
                continue
            started = [e for e in claimed if e.status is Status.SCHEDULED]
            for execution in started:
                self._start(execution)
            if len(started) == free or len(started) < len(claimed):
                continue  # more may be ready: the claim took all it could, or ran some
            timeout = self.config.poll_seconds
            with contextlib.suppress(Exception):
                due = await self.queue.next_due()
                if due is not None:
                    timeout = min(timeout, due + 0.001)
            likely = await _wait_any(jobs, self._stopping, timeout=timeout)

    def _start(self, execution: Execution) -> None:
        # The same execution again, under a newer fence: this worker's lease ran out while
        # it still ran the old attempt (say the database was out of reach) and the reaper
        # queued it again. The old run stops before the new one starts.
        previous = self.running.get(execution.id)
        if previous is not None:
            self._stop_one(execution.id, "lost")
        task = asyncio.create_task(
            self.runs.execute(execution, previous.task if previous is not None else None)
        )
        self.running[execution.id] = Running(execution, task)
        task.add_done_callback(lambda done: self._finished(execution.id, done))

    def _finished(self, execution_id: int, task: asyncio.Task[None]) -> None:
        entry = self.running.get(execution_id)
        if entry is None or entry.task is not task:
            return  # an older run of an execution this worker has claimed again
        del self.running[execution_id]
        self.runs.forget(execution_id)
        self._slot_freed.set()

    # -- leases, cancellation, shutdown ------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        assert self.id is not None
        psutil.cpu_percent()
        while True:
            await asyncio.sleep(self.config.heartbeat_seconds)
            try:
                await self._check_leases()
                memory = psutil.virtual_memory()
                await self.registry.heartbeat(
                    self.id,
                    active=len(self.running),
                    cpu_percent=psutil.cpu_percent(),
                    memory_percent=memory.percent,
                    memory_bytes=memory.total - memory.available,
                    state=DRAINING if self._stopping.is_set() else ACTIVE,
                    figures=self.runs.figures.to_json(),
                )
            except Exception as exc:
                log.warning("heartbeat_failed", error=str(exc))
                self._give_up_expired_leases()

    def _give_up_expired_leases(self) -> None:
        """Without a renewal for a whole lease, the leases may have run out and the work
        may be running elsewhere already: stop it here rather than run it twice."""
        if time.monotonic() - self._renewed_at < self.config.lease_seconds:
            return
        stale = [i for i, r in self.running.items() if r.reason is None]
        if stale:
            log.warning("leases_expired", worker=self.config.name, count=len(stale))
        for execution_id in stale:
            self._stop_one(execution_id, "lost")

    async def _cancel_loop(self, cancels: asyncio.Event) -> None:
        while True:
            await cancels.wait()
            cancels.clear()
            with contextlib.suppress(Exception):
                await self._check_leases()

    async def _check_leases(self) -> None:
        assert self.id is not None
        held = {i: r.execution.fence for i, r in self.running.items() if r.reason is None}
        asked = time.monotonic()
        statuses = await self.queue.renew_leases(self.id, held, self.config.lease_seconds)
        self._renewed_at = asked
        cancelling = [i for i, status in statuses.items() if status is Status.CANCELING]
        requests = await self.queue.cancel_requests(cancelling) if cancelling else {}
        for execution_id, status in statuses.items():
            if status is None:
                self._stop_one(execution_id, "lost")
            elif status is Status.CANCELING:
                entry = self.running.get(execution_id)
                if entry is not None and entry.reason is None:
                    entry.cancel_request = requests.get(execution_id) or {}
                self._stop_one(execution_id, "cancel")

    def _stop_one(self, execution_id: int, reason: str) -> None:
        entry = self.running.get(execution_id)
        if entry is not None and entry.reason is None:
            entry.reason = reason
            entry.stop.set()

    async def _drain(self) -> None:
        assert self.id is not None
        if not self.running:
            return
        with contextlib.suppress(Exception):
            await self.registry.set_state(self.id, DRAINING, active=len(self.running))
        tasks = [r.task for r in self.running.values()]
        _, pending = await asyncio.wait(tasks, timeout=self.config.shutdown_grace_seconds)
        if not pending:
            return
        handed_back = {i: r.execution.fence for i, r in self.running.items()}
        for execution_id in handed_back:
            self._stop_one(execution_id, "shutdown")
        await asyncio.gather(*pending, return_exceptions=True)
        await self.queue.release(self.id, handed_back)
        log.info("handed_back", count=len(handed_back))


async def _wait_any(*events: asyncio.Event, timeout: float | None = None) -> bool:
    """Wait until one of `events` is set or `timeout` passes; True if an event was set."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return bool(done)
